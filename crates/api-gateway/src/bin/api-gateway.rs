//! The api-gateway binary: configuration, telemetry, then the app until SIGTERM.

use clap::Parser;

// Every proxied request allocates and frees its headers and body buffers on both worker
// threads; glibc's malloc spent ~8 % of the gateway's time under `wrk`, some of it waiting on
// its arena locks (bench/FINDINGS.md #18).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = api_gateway::Config::parse();
    gitweave_http::init_telemetry(config.log_format);
    let app = api_gateway::App::build(config).await?;
    app.run_until_stopped(gitweave_http::shutdown_signal())
        .await
}
