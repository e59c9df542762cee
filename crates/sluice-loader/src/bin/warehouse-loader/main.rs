//! `warehouse-loader`: reads its config (`--config PATH`, `SLUICE_*` env),
//! connects the warehouse, the object store and the load queues, serves the
//! admin port, and loads manifests until SIGTERM/SIGINT.

mod backends;

use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use sluice_loader::{LoaderConfig, WarehouseConfig, connect_warehouse, serve};
use sluice_runtime::{
    LogFormat, Readiness, Shutdown, config_path, init_logging, load_config, serve_admin,
    shutdown_signal,
};
use tokio::net::TcpListener;

/// A load in flight finishes its transaction before the process exits; a
/// large file can take a while, and the chart's grace period allows it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(120);

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    loader: LoaderConfig,
    warehouse: WarehouseConfig,
    aws: backends::AwsSection,
    object_store: backends::ObjectStoreSection,
    queues: backends::QueuesSection,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = config_path(std::env::args_os().skip(1));
    let config: Config = load_config(path.as_deref(), "SLUICE")?;
    init_logging(config.log_format)?;
    config.loader.validate()?;
    let signal = shutdown_signal()?;

    let admin_addr = format!("0.0.0.0:{}", config.loader.admin_port);
    let admin = TcpListener::bind(&admin_addr)
        .await
        .with_context(|| format!("binding the admin port {admin_addr}"))?;
    let registry = Registry::new();
    let readiness = Readiness::new();
    let shutdown = Shutdown::new();
    shutdown.spawn(serve_admin(
        admin,
        registry.clone(),
        readiness.clone(),
        shutdown.token().cancelled_owned(),
    ));

    let warehouse = connect_warehouse(&config.warehouse)
        .await
        .context("connecting the warehouse")?;
    let backends = backends::connect(&config.aws, &config.object_store, &config.queues).await?;
    let token = shutdown.token();
    let loader = shutdown.spawn(async move {
        serve(
            config.loader,
            warehouse,
            backends.objects,
            backends.load_queue,
            backends.load_dlq,
            &registry,
            token,
        )
        .await
    });
    readiness.set_ready(true);

    tokio::select! {
        () = signal => {}
        // serve only returns early on an error.
        result = loader => result??,
    }
    readiness.set_ready(false);
    shutdown.drain(SHUTDOWN_GRACE).await?;
    Ok(())
}
