//! The pipeline-svc binary: configuration, telemetry, then the app until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = pipeline_svc::Config::parse();
    gitweave_http::init_telemetry(config.log_format);
    let app = pipeline_svc::App::build(config).await?;
    app.run_until_stopped(gitweave_http::shutdown_signal())
        .await
}
