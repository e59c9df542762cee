//! `sluice up`: the whole pipeline in one process, on the local backends in
//! a data directory and the embedded SQLite warehouse, tuned for seconds of
//! latency rather than for AWS request costs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use sluice_archiver::ArchiverConfig;
use sluice_backends::config::{Backends, BackendsConfig, connect};
use sluice_collector::{CollectorConfig, Listeners};
use sluice_loader::{LoaderConfig, Warehouse, WarehouseConfig, WarehouseKind, connect_warehouse};
use sluice_runtime::{LogFormat, Readiness, init_logging, load_config, serve_admin};
use sluice_transcoder::TranscoderConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The embedded warehouse's file inside the data directory.
const WAREHOUSE_FILE: &str = "warehouse.db";

/// How long each stage may take to finish its in-flight work on Ctrl-C.
const STAGE_GRACE: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct UpArgs {
    /// HTTP port for tracking clients (Segment-compatible and native JSON).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// gRPC port (sluice.v1.Collector).
    #[arg(long, default_value_t = 50051)]
    grpc_port: u16,
    /// Port for /metrics, /healthz and /readyz.
    #[arg(long, default_value_t = 9090)]
    admin_port: u16,
    /// Address to listen on; 0.0.0.0 accepts events from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    listen: String,
}

/// The stages' settings, from `--config` and `SLUICE_*` variables over
/// single-machine defaults. Backends and warehouse are fixed: the data
/// directory is the whole point of `sluice up`.
#[derive(Serialize, Deserialize)]
#[serde(default)]
struct UpConfig {
    log_format: LogFormat,
    collector: CollectorConfig,
    archiver: ArchiverConfig,
    transcoder: TranscoderConfig,
    loader: LoaderConfig,
}

impl Default for UpConfig {
    fn default() -> Self {
        UpConfig {
            log_format: LogFormat::Text,
            collector: CollectorConfig::default(),
            // Objects every second instead of every minute: on local disk an
            // object costs nothing, and freshness is what a newcomer sees.
            archiver: ArchiverConfig {
                max_object_age_secs: 1,
                idle_poll_millis: 100,
                ..ArchiverConfig::default()
            },
            transcoder: TranscoderConfig::default(),
            loader: LoaderConfig::default(),
        }
    }
}

pub async fn run(data_dir: &Path, config_file: Option<&Path>, args: UpArgs) -> anyhow::Result<()> {
    let mut config: UpConfig = load_config(config_file, "SLUICE")?;
    init_logging(config.log_format)?;
    // Installed before anything starts, so an early Ctrl-C still stops cleanly.
    let signal = sluice_runtime::shutdown_signal()?;
    let collector = &mut config.collector;
    collector.listen_address = args.listen.clone();
    collector.http_port = args.http_port;
    collector.grpc_port = args.grpc_port;
    // A client library works unchanged on first try; configuring write keys
    // turns the check on.
    collector.allow_anonymous |= collector.sources.is_empty();
    collector.validate()?;

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let listeners = Listeners {
        http: bind(&args.listen, args.http_port, "--http-port").await?,
        grpc: bind(&args.listen, args.grpc_port, "--grpc-port").await?,
    };
    let admin = bind(&args.listen, args.admin_port, "--admin-port").await?;
    let backends = connect(&BackendsConfig::local(data_dir))
        .await
        .with_context(|| format!("opening the local backends in {}", data_dir.display()))?;
    let warehouse = connect_warehouse(&embedded_warehouse(data_dir))
        .await
        .with_context(|| format!("opening the warehouse in {}", data_dir.display()))?;

    let registry = Registry::new();
    let readiness = Readiness::new();
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(serve_admin(
        admin,
        registry.clone(),
        readiness.clone(),
        admin_stop.clone().cancelled_owned(),
    ));
    let stages = Stages::start(config, listeners, backends, warehouse, &registry);
    readiness.set_ready(true);
    print_banner(data_dir, &args);

    let outcome = tokio::select! {
        () = signal => Ok(()),
        failed = stages.first_failure() => failed,
    };
    readiness.set_ready(false);
    eprintln!("stopping: finishing in-flight events...");
    let stopped = stages.stop().await;
    admin_stop.cancel();
    admin_task.await?;
    outcome.and(stopped)
}

/// The SQLite warehouse `sluice up` loads in `data_dir`.
pub fn embedded_warehouse(data_dir: &Path) -> WarehouseConfig {
    WarehouseConfig {
        kind: WarehouseKind::Sqlite,
        path: Some(data_dir.join(WAREHOUSE_FILE)),
        ..WarehouseConfig::default()
    }
}

async fn bind(address: &str, port: u16, flag: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = format!("{address}:{port}")
        .parse()
        .with_context(|| format!("--listen {address} is not an IP address"))?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} ({flag}); is another sluice already running?"))
}

/// One running stage: its own token, so stages stop in pipeline order.
struct Stage {
    name: &'static str,
    token: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

struct Stages(Vec<Stage>);

fn stage<F>(name: &'static str, work: impl FnOnce(CancellationToken) -> F) -> Stage
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let token = CancellationToken::new();
    let task = tokio::spawn(work(token.clone()));
    Stage { name, token, task }
}

impl Stages {
    /// Starts the stages in pipeline order (the order `stop` follows), all on
    /// the same backends and one metrics registry.
    fn start(
        config: UpConfig,
        listeners: Listeners,
        backends: Backends,
        warehouse: Arc<dyn Warehouse>,
        registry: &Registry,
    ) -> Stages {
        let (r, b) = (registry.clone(), backends.clone());
        let collector = stage("collector", move |token| async move {
            let serve = sluice_collector::serve(
                config.collector,
                listeners,
                b.stream,
                b.objects,
                &r,
                token,
            );
            Ok(serve.await?)
        });
        let (r, b) = (registry.clone(), backends.clone());
        let archiver = stage("stream-archiver", move |token| async move {
            let serve = sluice_archiver::serve(
                config.archiver,
                b.stream,
                b.stream_name,
                b.objects,
                &r,
                token,
            );
            Ok(serve.await?)
        });
        let (r, b) = (registry.clone(), backends.clone());
        let transcoder = stage("transcoder", move |token| async move {
            let serve = sluice_transcoder::serve(
                config.transcoder,
                b.objects,
                b.transcode_queue,
                b.transcode_dlq,
                b.load_queue,
                &r,
                token,
            );
            Ok(serve.await?)
        });
        let (r, b) = (registry.clone(), backends);
        let loader = stage("warehouse-loader", move |token| async move {
            let serve = sluice_loader::serve(
                config.loader,
                warehouse,
                b.objects,
                b.load_queue,
                b.load_dlq,
                &r,
                token,
            );
            Ok(serve.await?)
        });
        Stages(vec![collector, archiver, transcoder, loader])
    }

    /// Resolves only if a stage ends by itself, which it does only on a bad
    /// configuration or a failed start.
    async fn first_failure(&self) -> anyhow::Result<()> {
        loop {
            for stage in &self.0 {
                if stage.task.is_finished() {
                    anyhow::bail!("{} stopped unexpectedly", stage.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the stages upstream first, so each one's last output is written
    /// before the next one is asked to stop: the collector flushes to the
    /// stream, the archiver writes its buffers, the transcoder and loader
    /// finish the messages they hold. What remains in the queues is picked up
    /// by the next `sluice up` on the same directory.
    async fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for stage in self.0 {
            stage.token.cancel();
            let outcome = match tokio::time::timeout(STAGE_GRACE, stage.task).await {
                Ok(Ok(result)) => result.with_context(|| format!("{} failed", stage.name)),
                Ok(Err(panic)) => Err(anyhow::anyhow!("{} panicked: {panic}", stage.name)),
                Err(_) => Err(anyhow::anyhow!(
                    "{} did not stop within {} s",
                    stage.name,
                    STAGE_GRACE.as_secs()
                )),
            };
            if let Err(error) = outcome {
                tracing::error!("{error:#}");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn print_banner(data_dir: &Path, args: &UpArgs) {
    let host = match args.listen.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        other => other,
    };
    let dir = data_dir.display();
    let http = format!("http://{host}:{}", args.http_port);
    println!(
        "Sluice is up: collector, archiver, transcoder and loader on {dir}\n\
         \n  HTTP   {http}/v1/batch (Segment and RudderStack clients: set the host to {http})\
         \n  gRPC   {host}:{} (sluice.v1.Collector)\
         \n  admin  http://{host}:{}/metrics\
         \n\nSend an event:\
         \n  curl -s {http}/v1/track -H 'Content-Type: application/json' \\\
         \n    -d '{{\"userId\":\"u1\",\"event\":\"Signed Up\",\"properties\":{{\"plan\":\"pro\"}}}}'\
         \n  sluice send --demo --url {http}\
         \n\nQuery (tables appear a few seconds after their first event):\
         \n  sluice sql --data-dir {dir} \"SELECT event, count(*) FROM tracks GROUP BY 1\"\
         \n\nCtrl-C stops, finishing in-flight events.",
        args.grpc_port, args.admin_port,
    );
}
