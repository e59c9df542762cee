//! `collector`: reads its config (`--config PATH`, `SLUICE_*` env), binds
//! the HTTP, gRPC and admin ports, connects the stream and object store,
//! and serves until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_backends::config::{BackendsConfig, connect};
use sluice_collector::{CollectorConfig, Listeners, serve};
use sluice_runtime::{
    LogFormat, config_path, init_logging, load_config, run_stage, shutdown_signal,
};
use tokio::net::TcpListener;

/// The HTTP drain (25 s) plus the last flush to the stream. The chart's
/// `collector.terminationGracePeriodSeconds` (50) covers this and the 5 s
/// preStop sleep before SIGTERM, so Kubernetes never kills a drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(40);

/// Every request allocates a few dozen small buffers (hyper's, the body, the
/// encoded events) and frees them on another task; mimalloc spends less than
/// half the instructions glibc's allocator does on them (measured with
/// callgrind on the ingest benchmark's single-event requests).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    collector: CollectorConfig,
    #[serde(flatten)]
    backends: BackendsConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = config_path(std::env::args_os().skip(1));
    let config: Config = load_config(path.as_deref(), "SLUICE")?;
    init_logging(config.log_format)?;
    config.collector.validate()?;
    let signal = shutdown_signal()?;

    let c = &config.collector;
    let listeners = Listeners {
        http: bind(&c.listen_address, c.http_port).await?,
        grpc: bind(&c.listen_address, c.grpc_port).await?,
    };
    let admin = bind(&c.listen_address, c.admin_port).await?;

    let backends = connect(&config.backends)
        .await
        .context("connecting the stream and object store")?;

    run_stage(
        signal,
        admin,
        SHUTDOWN_GRACE,
        |registry, token| async move {
            let (stream, objects) = (backends.stream, backends.objects);
            serve(
                config.collector,
                listeners,
                stream,
                objects,
                &registry,
                token,
            )
            .await
        },
    )
    .await
    .context("collector failed")
}

async fn bind(address: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = format!("{address}:{port}")
        .parse()
        .with_context(|| format!("collector.listen_address {address:?}"))?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The compose stack's file has the keys the Helm chart renders from its
    /// `config:` values; an unknown or misplaced key there would stop the
    /// collector at startup.
    #[test]
    fn reads_the_shared_config_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose/sluice.toml");
        let config: Config = load_config(Some(&path), "SLUICE_COLLECTOR_TEST").unwrap();
        let collector = &config.collector;
        assert_eq!(collector.limits.max_event_bytes, 32_768);
        assert_eq!(collector.max_request_bytes, 5_242_880);
        assert!(collector.allow_anonymous);
        assert_eq!(collector.sources["local"], "wk_local_dev");
        assert_eq!(config.backends.stream.name, "sluice-events");
    }
}
