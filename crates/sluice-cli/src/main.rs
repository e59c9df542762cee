//! `sluice`: the command line. Each subcommand is a module.

mod setup;
mod tail;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sluice_backends::config::BackendsConfig;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: own your event-analytics pipeline"
)]
struct Cli {
    /// Configuration file (TOML); SLUICE_<SECTION>__<KEY> variables override it.
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Use the local, on-disk backends in this directory (what `sluice up`
    /// runs on) instead of the configured ones.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the stream, bucket, queues (with dead-letter queues) and the
    /// bucket notification the configuration names. Safe to run again.
    Setup,
    /// Print events as they reach the stream, one JSON object per line.
    Tail(tail::TailArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let backends = match &cli.data_dir {
        Some(dir) => BackendsConfig::local(dir),
        None => sluice_runtime::load_config(cli.config.as_deref(), "SLUICE")?,
    };
    match cli.command {
        Command::Setup => setup::run(&backends).await,
        Command::Tail(args) => tail::run(&backends, args).await,
    }
}
