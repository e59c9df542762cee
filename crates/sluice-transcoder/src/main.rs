//! `transcoder`: reads its config (`--config PATH`, `SLUICE_*` env), binds
//! the admin port, connects the object store and queues, and transcodes
//! until SIGTERM/SIGINT, then finishes the objects in flight and exits.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_backends::config::{BackendsConfig, connect};
use sluice_runtime::{
    LogFormat, bind_admin, config_path, init_logging, keep_freed_memory, load_config, run_stage,
    shutdown_signal,
};
use sluice_transcoder::{TranscoderConfig, serve};

/// Enough to finish a 64 MiB object and send its manifest; the chart's
/// termination grace period is longer.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(50);

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    transcoder: TranscoderConfig,
    #[serde(flatten)]
    backends: BackendsConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Every object allocates and frees its columns again.
    keep_freed_memory();
    let path = config_path(std::env::args_os().skip(1));
    let config: Config = load_config(path.as_deref(), "SLUICE")?;
    init_logging(config.log_format)?;
    let signal = shutdown_signal()?;

    let admin = bind_admin("transcoder.admin_port", config.transcoder.admin_port).await?;
    let backends = connect(&config.backends)
        .await
        .context("connecting the object store and queues")?;

    run_stage(
        signal,
        admin,
        SHUTDOWN_GRACE,
        |registry, token| async move {
            serve(
                config.transcoder,
                backends.objects,
                backends.transcode_queue,
                backends.transcode_dlq,
                backends.load_queue,
                &registry,
                token,
            )
            .await
        },
    )
    .await
    .context("transcoder failed")
}
