//! Project tasks that are not part of the product.
//!
//! `xtask bench` builds the release binaries, starts a throw-away Postgres and the three
//! services from `target/release` on free loopback ports, runs the workloads of the
//! benchmark side by side with their baselines (A B A B …), and writes `bench/RESULTS.md`.
//! `xtask stack` starts the same stack and waits, for profiling by hand.
//!
//! The bench is not a test: it measures and reports, it never fails on a time.

mod api;
mod bench;
mod machine;
mod report;
mod stack;
mod stats;
mod workloads;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// GitWeave project tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask", about = "GitWeave project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures what GitWeave adds to the work it runs; writes bench/RESULTS.md.
    Bench(bench::BenchArgs),
    /// Starts Postgres, pipeline-svc, the gateway and a docker runner, prints where they are,
    /// and waits for Ctrl-C (for profiling with perf, tokio-console, psql…).
    Stack(StackArgs),
}

/// `xtask stack` options.
#[derive(Debug, clap::Args)]
struct StackArgs {
    /// Do not run `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// Runner engine: `docker` or `shell`.
    #[arg(long, default_value = "docker")]
    engine: String,
    /// How many runner-svc processes.
    #[arg(long, default_value_t = 1)]
    runners: u32,
    /// `RUST_LOG` of the services.
    #[arg(long, default_value = "info")]
    rust_log: String,
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    // crates/xtask → the workspace root, wherever cargo was run from.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = here
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow::anyhow!("cannot find the workspace root from {}", here.display()))?;
    Ok(root.to_path_buf())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    match cli.command {
        Command::Bench(args) => bench::run(&root, args).await,
        Command::Stack(args) => {
            if !args.no_build {
                stack::build_release(&root).await?;
            }
            let engine = stack::Engine::parse(&args.engine)?;
            let mut s = stack::Stack::start(&root, &args.rust_log).await?;
            for i in 0..args.runners {
                s.start_runner(engine, &format!("{}-{i}", engine.as_str()), 1)
                    .await?;
            }
            s.describe();
            println!("Ctrl-C stops everything.");
            let _ = tokio::signal::ctrl_c().await;
            s.shutdown().await;
            Ok(())
        }
    }
}
