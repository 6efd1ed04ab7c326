//! The runner-svc binary: secrets out of the environment, configuration, telemetry, then the
//! app until SIGTERM.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    // First, before any thread: re-executes without secrets in the environment if need be.
    let secrets = runner_svc::secrets::scrub()?;
    runner_svc::secrets::protect()?;
    let mut config = runner_svc::Config::parse();
    secrets.apply(&mut config);
    tokio::runtime::Runtime::new()?.block_on(async {
        gitweave_http::init_telemetry(config.log_format);
        let app = runner_svc::App::build(config).await?;
        app.run_until_stopped(gitweave_http::shutdown_signal())
            .await
    })
}
