//! `stream-archiver`: reads its config (`--config PATH`, `SLUICE_*` env),
//! binds the admin port, connects the stream and object store, and archives
//! until SIGTERM/SIGINT, then writes every shard's buffer and exits.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_archiver::{ArchiverConfig, serve};
use sluice_backends::config::{BackendsConfig, connect};
use sluice_runtime::{
    LogFormat, bind_admin, config_path, init_logging, load_config, run_stage, shutdown_signal,
};

/// Enough to write every shard's last object and checkpoint; the chart's
/// termination grace period is longer.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(50);

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    archiver: ArchiverConfig,
    #[serde(flatten)]
    backends: BackendsConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = config_path(std::env::args_os().skip(1));
    let config: Config = load_config(path.as_deref(), "SLUICE")?;
    init_logging(config.log_format)?;
    let signal = shutdown_signal()?;

    let admin = bind_admin("archiver.admin_port", config.archiver.admin_port).await?;
    let backends = connect(&config.backends)
        .await
        .context("connecting the stream and object store")?;

    run_stage(
        signal,
        admin,
        SHUTDOWN_GRACE,
        |registry, token| async move {
            serve(
                config.archiver,
                backends.stream,
                backends.stream_name,
                backends.objects,
                &registry,
                token,
            )
            .await
        },
    )
    .await
    .context("stream archiver failed")
}
