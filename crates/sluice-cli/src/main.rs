//! `sluice`: the command line. Each subcommand is a module.

mod send;
mod setup;
mod sql;
mod tail;
mod up;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use sluice_backends::config::BackendsConfig;
use sluice_loader::WarehouseConfig;

/// Where `sluice up` keeps everything unless told otherwise.
const DEFAULT_DATA_DIR: &str = "data";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: own your event-analytics pipeline",
    long_about = "Sluice: own your event-analytics pipeline.\n\n\
        Start here: `sluice up` runs the whole pipeline on this machine, \
        `sluice send --demo` sends it realistic events, and `sluice sql` \
        queries the rows they become."
)]
struct Cli {
    /// Configuration file (TOML); SLUICE_<SECTION>__<KEY> variables override it.
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Single-machine data directory: `up` runs there (default ./data);
    /// `sql`, `tail` and `setup` then use it instead of the configuration.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in this process: collector, archiver,
    /// transcoder and loader on local backends and an embedded warehouse.
    Up(up::UpArgs),
    /// Send events to a collector: from a file, stdin, or --demo traffic.
    Send(send::SendArgs),
    /// Run a query on the warehouse and print the result.
    Sql(sql::SqlArgs),
    /// Print events as they reach the stream, one JSON object per line.
    Tail(tail::TailArgs),
    /// Create the stream, bucket, queues (with dead-letter queues) and the
    /// bucket notification the configuration names. Safe to run again.
    Setup,
}

/// The part of the configuration `sluice sql` reads.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct SqlConfig {
    warehouse: WarehouseConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Up(args) => {
            // The transcoder in this process allocates and frees every
            // object's columns again.
            sluice_runtime::keep_freed_memory();
            let dir = cli.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
            up::run(&dir, config, args).await
        }
        Command::Send(args) => send::run(args).await,
        Command::Sql(args) => {
            let warehouse = match &cli.data_dir {
                Some(dir) => up::embedded_warehouse(dir),
                None => sluice_runtime::load_config::<SqlConfig>(config, "SLUICE")?.warehouse,
            };
            sql::run(&warehouse, args).await
        }
        Command::Tail(args) => tail::run(&backends(&cli.data_dir, config)?, args).await,
        Command::Setup => setup::run(&backends(&cli.data_dir, config)?).await,
    }
}

fn backends(data_dir: &Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<BackendsConfig> {
    Ok(match data_dir {
        Some(dir) => BackendsConfig::local(dir),
        None => sluice_runtime::load_config(config, "SLUICE")?,
    })
}
