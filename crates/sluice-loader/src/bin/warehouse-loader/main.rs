//! `warehouse-loader`: reads its config (`--config PATH`, `SLUICE_*` env),
//! connects the warehouse, the object store and the load queues, serves the
//! admin port, and loads manifests until SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_backends::config::{BackendsConfig, connect};
use sluice_loader::{LoaderConfig, WarehouseConfig, connect_warehouse, serve};
use sluice_runtime::{
    LogFormat, bind_admin, config_path, init_logging, load_config, run_stage, shutdown_signal,
};

/// A load in flight finishes its transaction before the process exits; a
/// large file can take a while, and the chart's grace period allows it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(120);

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    loader: LoaderConfig,
    warehouse: WarehouseConfig,
    #[serde(flatten)]
    backends: BackendsConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = config_path(std::env::args_os().skip(1));
    let config: Config = load_config(path.as_deref(), "SLUICE")?;
    init_logging(config.log_format)?;
    config.loader.validate()?;
    let signal = shutdown_signal()?;

    let admin = bind_admin("loader.admin_port", config.loader.admin_port).await?;
    let warehouse = connect_warehouse(&config.warehouse)
        .await
        .context("connecting the warehouse")?;
    let backends = connect(&config.backends)
        .await
        .context("connecting the object store and queues")?;
    run_stage(
        signal,
        admin,
        SHUTDOWN_GRACE,
        |registry, token| async move {
            let (objects, queue, dlq) = (backends.objects, backends.load_queue, backends.load_dlq);
            serve(
                config.loader,
                warehouse,
                objects,
                queue,
                dlq,
                &registry,
                token,
            )
            .await
        },
    )
    .await
    .context("warehouse loader failed")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sluice_backends::config::{ObjectStoreKind, QueueKind};
    use sluice_loader::WarehouseKind;

    use super::*;

    /// The compose stack's file has the keys the Helm chart renders from
    /// its `config:` values; every section must read, the other stages'
    /// included.
    #[test]
    fn reads_the_shared_config_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose/sluice.toml");
        let config: Config = load_config(Some(&path), "SLUICE_LOADER_TEST").unwrap();
        assert_eq!(config.warehouse.kind, WarehouseKind::Postgres);
        assert_eq!(config.backends.object_store.kind, ObjectStoreKind::S3);
        assert_eq!(config.backends.queues.kind, QueueKind::Sqs);
        assert_eq!(config.backends.queues.load_name, "sluice-load");
        assert_eq!(config.backends.queues.load_dlq_name, "sluice-load-dlq");
        assert_eq!(
            config.backends.aws.endpoint_url.as_deref(),
            Some("http://moto:5000")
        );
        assert!(config.backends.aws.force_path_style);
    }
}
