//! Shared by the integration tests: a collector on port 0 over real
//! sockets, an HTTP client, and reading every envelope back from a stream.

#![allow(dead_code)] // each test binary uses its own part of this

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::Registry;
use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{EventStream, ObjectStore, StartPosition};
use sluice_collector::{CollectorConfig, Listeners, serve};
use sluice_events::decode_record;
use sluice_events::proto::Envelope;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WRITE_KEY: &str = "wk_test_web";

pub fn config() -> CollectorConfig {
    let mut config = CollectorConfig {
        linger_ms: 2,
        rejected_flush_ms: 50,
        ..CollectorConfig::default()
    };
    config.sources.insert("web".into(), WRITE_KEY.into());
    config
}

pub struct Running {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub registry: Registry,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), sluice_collector::CollectorError>>,
}

impl Running {
    pub async fn start(
        config: CollectorConfig,
        stream: Arc<dyn EventStream>,
        objects: Arc<dyn ObjectStore>,
    ) -> Self {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
        let registry = Registry::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (registry, shutdown) = (registry.clone(), shutdown.clone());
            async move {
                serve(
                    config,
                    Listeners { http, grpc },
                    stream,
                    objects,
                    &registry,
                    shutdown,
                )
                .await
            }
        });
        Self {
            http: http_addr,
            grpc: grpc_addr,
            registry,
            shutdown,
            task,
        }
    }

    /// Shuts down and waits: everything accepted is then in the stream and
    /// every rejected event in the object store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("collector stops")
            .unwrap()
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A metric's value summed over its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_where(name, &[])
    }

    /// A metric's value summed over the label sets that have `labels`; for
    /// a histogram, its count of observations.
    pub fn metric_where(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus::proto::MetricType;
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                let kind = f.get_field_type();
                f.get_metric()
                    .iter()
                    .filter(|m| {
                        labels.iter().all(|(name, value)| {
                            m.get_label()
                                .iter()
                                .any(|l| l.name() == *name && l.value() == *value)
                        })
                    })
                    .map(move |m| match kind {
                        MetricType::COUNTER => m.get_counter().get_value(),
                        MetricType::HISTOGRAM => m.get_histogram().get_sample_count() as f64,
                        _ => m.get_gauge().get_value(),
                    })
            })
            .sum()
    }
}

pub struct Local {
    pub dir: tempfile::TempDir,
    pub stream: Arc<LocalStream>,
    pub objects: Arc<LocalObjectStore>,
}

impl Local {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stream = Arc::new(LocalStream::open(dir.path().join("stream"), 2).unwrap());
        let objects = Arc::new(LocalObjectStore::open(dir.path().join("objects")).unwrap());
        Self {
            dir,
            stream,
            objects,
        }
    }

    pub async fn start(&self, config: CollectorConfig) -> Running {
        Running::start(config, self.stream.clone(), self.objects.clone()).await
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(request: Request<Full<Bytes>>) -> Answer {
    let response = client().request(request).await.expect("http request");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    }
}

/// POST with HTTP Basic auth for [`WRITE_KEY`].
pub async fn post(url: &str, body: impl Into<Bytes>) -> Answer {
    send(
        Request::post(url)
            .header("authorization", basic(WRITE_KEY))
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap(),
    )
    .await
}

pub fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

/// Every envelope in every shard, from the start.
pub async fn read_all(stream: &dyn EventStream) -> Vec<Envelope> {
    let mut out = Vec::new();
    for shard in stream.list_shards().await.unwrap() {
        let mut reader = stream
            .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .unwrap();
        loop {
            let batch = reader.next_batch(1000).await.unwrap();
            for record in &batch.records {
                out.extend(decode_record(&record.data).expect("a collector record"));
            }
            if batch.records.is_empty() && batch.millis_behind_latest.unwrap_or(0) == 0 {
                break;
            }
        }
    }
    out
}

/// A realistic track event, ~550 bytes, with nested properties.
pub fn track_event(i: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": format!("msg-{i:06}"),
        "userId": format!("user-{}", i % 97),
        "anonymousId": "b2f0c8a4-6c1e-4a77-9f6b-5f1c3d2e1a00",
        "timestamp": "2024-05-01T12:00:00.250Z",
        "properties": {
            "order_id": format!("ord-{i}"), "total": 129.95, "currency": "EUR",
            "coupon": null, "products": [{"sku": "A-1", "price": 59.95, "qty": 1}],
            "shipping": {"method": "express", "address": {"country": "DE", "city": "Berlin"}}
        },
        "context": {
            "library": {"name": "analytics-python", "version": "2.3.2"},
            "ip": "203.0.113.9", "locale": "de-DE",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
        }
    })
}
