//! The whole pipeline in AWS-emulated mode, as separate processes: moto for
//! Kinesis, S3 and SQS, a throwaway PostgreSQL as the warehouse, `sluice
//! setup`, then collector, stream-archiver, transcoder and warehouse-loader,
//! each configured only by `SLUICE_*` environment variables.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_backends::config::{BackendsConfig, connect};
use sluice_testkit::{MotoServer, Postgres, unique_name};
use tempfile::TempDir;

use crate::binaries::binaries;
use crate::sender::CollectorAddress;
use crate::stage::Stage;
use crate::trace::trace_missing;
use crate::warehouse::Warehouse;

const WRITE_KEY: &str = "wk_e2e";
/// Kinesis shards: more than one, so ordering across shards is exercised.
const SHARDS: u32 = 2;
/// How long a message a killed stage was working on stays hidden before
/// another receive gets it; stages extend it while they work.
const VISIBILITY_SECS: u64 = 10;

pub struct AwsPipeline {
    // Stages first: fields drop in order, and they must stop before the
    // servers they talk to.
    pub collector: Stage,
    pub archiver: Stage,
    pub transcoder: Stage,
    pub loader: Stage,
    pub address: CollectorAddress,
    pub warehouse_url: String,
    /// The same resources, for looking into them from the test.
    backends: BackendsConfig,
    _logs: TempDir,
    _postgres: Postgres,
    _moto: MotoServer,
}

impl AwsPipeline {
    /// Starts everything and waits until the collector answers.
    pub async fn start() -> AwsPipeline {
        // Building takes a while on first use: off the async workers, and
        // while the servers start.
        let (binaries, moto, postgres) = tokio::join!(
            tokio::task::spawn_blocking(binaries),
            MotoServer::start(),
            Postgres::start()
        );
        let binaries = binaries.expect("building the stage binaries");
        let warehouse_url = postgres.fresh_database().await;
        let logs = tempfile::Builder::new()
            .prefix("sluice-e2e-logs-")
            .tempdir()
            .expect("a log directory");

        let backends = emulated_backends(&moto.endpoint());
        let env = backends_env(&backends);
        setup(&binaries.sluice, &env);

        let address = CollectorAddress {
            http: free_address(),
            grpc: free_address(),
            write_key: WRITE_KEY.to_owned(),
        };
        let log_dir = logs.path();
        let visibility = VISIBILITY_SECS.to_string();
        let stage_env = |own: &[(&str, &str)]| {
            let mut all = env.clone();
            all.extend(own.iter().map(|(k, v)| (k.to_string(), OsString::from(v))));
            all
        };
        let (http_port, grpc_port) = (
            address.http.port().to_string(),
            address.grpc.port().to_string(),
        );
        let collector = Stage::start(
            "collector",
            &binaries.collector,
            &[],
            stage_env(&[
                ("SLUICE_COLLECTOR__LISTEN_ADDRESS", "127.0.0.1"),
                ("SLUICE_COLLECTOR__HTTP_PORT", &http_port),
                ("SLUICE_COLLECTOR__GRPC_PORT", &grpc_port),
                ("SLUICE_COLLECTOR__ADMIN_PORT", "0"),
                ("SLUICE_COLLECTOR__SOURCES__E2E", WRITE_KEY),
                // moto numbers a shard's records as "last + 1" without a lock,
                // so concurrent PutRecords calls can get the same sequence
                // number and one record silently replaces the other (AWS does
                // not do that). One call at a time keeps moto from losing
                // accepted events.
                ("SLUICE_COLLECTOR__MAX_CONCURRENT_PUTS", "1"),
            ]),
            log_dir,
        );
        let archiver = Stage::start(
            "stream-archiver",
            &binaries.archiver,
            &[],
            stage_env(&[
                ("SLUICE_ARCHIVER__ADMIN_PORT", "0"),
                ("SLUICE_ARCHIVER__MAX_OBJECT_AGE_SECS", "1"),
                ("SLUICE_ARCHIVER__IDLE_POLL_MILLIS", "200"),
            ]),
            log_dir,
        );
        let transcoder = Stage::start(
            "transcoder",
            &binaries.transcoder,
            &[],
            stage_env(&[
                ("SLUICE_TRANSCODER__ADMIN_PORT", "0"),
                ("SLUICE_TRANSCODER__WAIT_SECS", "1"),
                ("SLUICE_TRANSCODER__VISIBILITY_TIMEOUT_SECS", &visibility),
                ("SLUICE_TRANSCODER__RETRY_DELAY_SECS", "1"),
            ]),
            log_dir,
        );
        let loader = Stage::start(
            "warehouse-loader",
            &binaries.loader,
            &[],
            stage_env(&[
                ("SLUICE_LOADER__ADMIN_PORT", "0"),
                ("SLUICE_LOADER__POLL_WAIT_SECS", "1"),
                ("SLUICE_LOADER__VISIBILITY_TIMEOUT_SECS", &visibility),
                ("SLUICE_WAREHOUSE__KIND", "postgres"),
                ("SLUICE_WAREHOUSE__URL", &warehouse_url),
            ]),
            log_dir,
        );
        let mut pipeline = AwsPipeline {
            collector,
            archiver,
            transcoder,
            loader,
            address,
            warehouse_url,
            backends,
            _logs: logs,
            _postgres: postgres,
            _moto: moto,
        };
        pipeline.wait_for_collector().await;
        pipeline
    }

    /// Waits until the collector accepts connections on both ports.
    pub async fn wait_for_collector(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            let http = tokio::net::TcpStream::connect(self.address.http).await;
            let grpc = tokio::net::TcpStream::connect(self.address.grpc).await;
            if http.is_ok() && grpc.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the collector does not listen; its log:\n{}",
                self.collector.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stages_mut(&mut self) -> [&mut Stage; 4] {
        [
            &mut self.collector,
            &mut self.archiver,
            &mut self.transcoder,
            &mut self.loader,
        ]
    }

    /// Panics, with its log, if a stage exited on its own.
    pub fn assert_running(&mut self) {
        for stage in self.stages_mut() {
            stage.assert_running();
        }
    }

    /// For a failure message: the end of every stage's log, and its last
    /// warnings and errors.
    pub fn logs(&mut self, lines: usize) -> String {
        self.stages_mut()
            .iter()
            .map(|s| {
                format!(
                    "--- {name}: last {lines} lines ---\n{}\n--- {name}: last {lines} warnings, errors and starts ---\n{}\n",
                    s.log_tail(lines),
                    s.log_problems(lines),
                    name = s.name(),
                )
            })
            .collect()
    }

    /// Where the `missing` events got lost (see [`trace_missing`]).
    pub async fn trace_missing(&self, warehouse: &Warehouse, missing: &BTreeSet<String>) -> String {
        let backends = connect(&self.backends).await.expect("connect to moto");
        trace_missing(&backends, warehouse, missing).await
    }

    /// The messages in both dead-letter queues (left in place).
    pub async fn dead_letters(&self) -> Vec<String> {
        let backends = connect(&self.backends).await.expect("connect to moto");
        let mut found = Vec::new();
        for dlq in [backends.transcode_dlq, backends.load_dlq] {
            let messages = dlq
                .receive(10, Duration::ZERO, Some(Duration::from_secs(1)))
                .await
                .expect("receive from a dead-letter queue");
            found.extend(messages.into_iter().map(|m| m.body));
        }
        found
    }
}

/// Backends on moto at `endpoint`, with resource names no other test uses.
fn emulated_backends(endpoint: &str) -> BackendsConfig {
    let prefix = unique_name("e2e");
    let mut backends = BackendsConfig::emulated_aws(endpoint);
    backends.stream.name = format!("{prefix}-events");
    backends.stream.shards = SHARDS;
    backends.object_store.bucket = format!("{prefix}-bucket");
    let queues = &mut backends.queues;
    queues.transcode_name = format!("{prefix}-transcode");
    queues.transcode_dlq_name = format!("{prefix}-transcode-dlq");
    queues.load_name = format!("{prefix}-load");
    queues.load_dlq_name = format!("{prefix}-load-dlq");
    queues.visibility_timeout_secs = VISIBILITY_SECS;
    backends
}

/// `backends` as the `SLUICE_*` variables every stage and `sluice setup`
/// read their `[aws]`, `[stream]`, `[object_store]` and `[queues]` from.
fn backends_env(backends: &BackendsConfig) -> Vec<(String, OsString)> {
    let (aws, queues) = (&backends.aws, &backends.queues);
    let text = |value: &Option<String>| value.clone().expect("set for the emulator");
    [
        ("AWS__ENDPOINT_URL", text(&aws.endpoint_url)),
        ("AWS__FORCE_PATH_STYLE", aws.force_path_style.to_string()),
        ("AWS__ACCESS_KEY_ID", text(&aws.access_key_id)),
        ("AWS__SECRET_ACCESS_KEY", text(&aws.secret_access_key)),
        ("STREAM__KIND", "kinesis".to_owned()),
        ("STREAM__NAME", backends.stream.name.clone()),
        ("STREAM__SHARDS", backends.stream.shards.to_string()),
        ("OBJECT_STORE__KIND", "s3".to_owned()),
        ("OBJECT_STORE__BUCKET", backends.object_store.bucket.clone()),
        ("QUEUES__KIND", "sqs".to_owned()),
        ("QUEUES__TRANSCODE_NAME", queues.transcode_name.clone()),
        (
            "QUEUES__TRANSCODE_DLQ_NAME",
            queues.transcode_dlq_name.clone(),
        ),
        ("QUEUES__LOAD_NAME", queues.load_name.clone()),
        ("QUEUES__LOAD_DLQ_NAME", queues.load_dlq_name.clone()),
        (
            "QUEUES__VISIBILITY_TIMEOUT_SECS",
            queues.visibility_timeout_secs.to_string(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("SLUICE_{key}"), OsString::from(value)))
    .collect()
}

/// `sluice setup`, as an operator runs it before the first deploy.
fn setup(sluice: &std::path::Path, env: &[(String, OsString)]) {
    let out = Command::new(sluice)
        .arg("setup")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run sluice setup");
    assert!(
        out.status.success(),
        "sluice setup failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback address that was free a moment ago. The collector keeps its
/// ports across restarts, so they are chosen here rather than left to it.
pub fn free_address() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
}
