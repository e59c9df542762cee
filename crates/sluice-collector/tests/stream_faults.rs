//! The stream misbehaving: entries failing in every PutRecords (nothing
//! lost, nothing written twice), a stalled stream (503 with Retry-After,
//! bounded memory, recovery), buffered mode flushing on shutdown, and
//! shutdown answering the requests that wait on the stream.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Local, Running, WRITE_KEY, basic, config, post, read_all, track_event};
use hyper::StatusCode;
use serde_json::{Value, json};
use sluice_backends::local::LocalStream;
use sluice_backends::{
    EventStream, PutOutcome, PutRecord, Result, ShardInfo, ShardReader, StartPosition,
};
use sluice_collector::AckMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

fn batch(range: std::ops::Range<usize>) -> String {
    let events: Vec<Value> = range.map(track_event).collect();
    json!({ "batch": events }).to_string()
}

fn assert_each_once(got: &[sluice_events::proto::Envelope], expected: usize) {
    let mut ids: Vec<_> = got.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(got.len(), expected, "events in the stream");
    assert_eq!(ids.len(), expected, "distinct event ids");
}

#[tokio::test]
async fn failed_entries_are_retried_alone_until_written() {
    let local = Local::new();
    // Some entries of every call fail, for the first 40 calls.
    local
        .stream
        .fail_entries(|a| a.call < 40 && (a.call + a.index as u64).is_multiple_of(3));
    // Small records, so each call carries many entries.
    let running = local
        .start(sluice_collector::CollectorConfig {
            record_bytes: 4096,
            ..config()
        })
        .await;
    let posts = (0..10).map(|i| {
        let url = running.url("/v1/batch");
        async move { post(&url, batch(i * 100..(i + 1) * 100)).await }
    });
    for answer in futures::future::join_all(posts).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["accepted"], 100);
    }
    assert!(running.metric("sluice_collector_put_records_failed_entries_total") > 0.0);
    assert!(running.metric("sluice_collector_put_records_retries_total") > 0.0);
    running.stop().await;
    assert_each_once(&read_all(&*local.stream).await, 1000);
}

/// A real stream behind a gate: puts wait while the gate is closed.
struct Stalling {
    inner: Arc<LocalStream>,
    open: watch::Receiver<bool>,
}

impl Stalling {
    /// A stalling stream over `local`'s, with the gate that opens it.
    fn over(local: &Local, open: bool) -> (watch::Sender<bool>, Arc<Self>) {
        let (gate, open) = watch::channel(open);
        let stalling = Arc::new(Self {
            inner: local.stream.clone(),
            open,
        });
        (gate, stalling)
    }
}

#[async_trait]
impl EventStream for Stalling {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        self.inner.list_shards().await
    }

    async fn put_records(&self, records: Vec<PutRecord>) -> Result<Vec<PutOutcome>> {
        let mut open = self.open.clone();
        open.wait_for(|o| *o).await.expect("gate kept");
        self.inner.put_records(records).await
    }

    async fn open_shard(&self, shard: &str, start: StartPosition) -> Result<Box<dyn ShardReader>> {
        self.inner.open_shard(shard, start).await
    }

    async fn update_shard_count(&self, target: u32) -> Result<()> {
        self.inner.update_shard_count(target).await
    }
}

#[tokio::test]
async fn a_stalled_stream_yields_503_with_bounded_memory_then_recovers() {
    let local = Local::new();
    let (gate, stalling) = Stalling::over(&local, false);
    let limit = 256 * 1024;
    let config = sluice_collector::CollectorConfig {
        max_in_flight_bytes: limit,
        max_request_bytes: 64 * 1024,
        ..config()
    };
    let running = Running::start(config, stalling, local.objects.clone()).await;

    // 50 events are ~40 KB in flight: about six requests fit.
    let url = running.url("/v1/batch");
    let requests: Vec<_> = (0..20)
        .map(|i| tokio::spawn(post_owned(url.clone(), batch(i * 50..(i + 1) * 50))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_flight = running.metric("sluice_collector_in_flight_bytes");
    assert!(in_flight > 0.0 && in_flight <= limit as f64, "{in_flight}");
    let (mut refused, mut waiting) = (0, Vec::new());
    for request in requests {
        if request.is_finished() {
            let answer = request.await.unwrap();
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                answer.text
            );
            assert_eq!(answer.headers["retry-after"], "1");
            assert_eq!(answer.body["cause"], "overloaded");
            refused += 1;
        } else {
            waiting.push(request);
        }
    }
    assert!(refused >= 10, "{refused} refused");
    assert!(!waiting.is_empty());

    // The stream recovers: the waiting requests complete, new ones pass.
    gate.send(true).unwrap();
    let accepted = waiting.len();
    for request in waiting {
        let answer = request.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let answer = post(&url, batch(5000..5050)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(running.metric("sluice_collector_in_flight_bytes"), 0.0);
    running.stop().await;
    assert_each_once(&read_all(&*local.stream).await, (accepted + 1) * 50);
}

async fn post_owned(url: String, body: String) -> common::Answer {
    post(&url, body).await
}

#[tokio::test]
async fn buffered_mode_answers_at_once_and_flushes_on_shutdown() {
    let local = Local::new();
    let (gate, stalling) = Stalling::over(&local, false);
    let config = sluice_collector::CollectorConfig {
        ack: AckMode::Buffered,
        ..config()
    };
    let running = Running::start(config, stalling, local.objects.clone()).await;
    let answer = post(&running.url("/v1/batch"), batch(0..100)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "answered while the stream stalls"
    );
    assert!(read_all(&*local.stream).await.is_empty());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.send(true).unwrap();
    });
    running.stop().await;
    assert_each_once(&read_all(&*local.stream).await, 100);
}

/// Sends one single-event request on `connection` and reads its answer,
/// leaving the connection open (HTTP/1.1 keeps it alive).
async fn track_on(connection: &mut TcpStream) -> String {
    let body = track_event(9_999).to_string();
    let request = format!(
        "POST /v1/track HTTP/1.1\r\nhost: test\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        basic(WRITE_KEY),
        body.len()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"}") {
        let mut chunk = [0; 1024];
        let read = connection.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed before the answer");
        answer.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(answer).unwrap()
}

/// Whether the server closed `connection` (within a second).
async fn closed_by_server(connection: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(1), connection.read(&mut byte)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight_and_closes_idle_connections() {
    let local = Local::new();
    let (gate, stalling) = Stalling::over(&local, true);
    let running = Running::start(config(), stalling, local.objects.clone()).await;
    // A keep-alive connection that has been answered and now waits, and
    // one that never sent anything.
    let mut kept = TcpStream::connect(running.http).await.unwrap();
    let answer = track_on(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut silent = TcpStream::connect(running.http).await.unwrap();

    // A request waiting on the stream when shutdown starts.
    gate.send(false).unwrap();
    let waiting = tokio::spawn(post_owned(running.url("/v1/batch"), batch(0..50)));
    while running.metric("sluice_collector_in_flight_bytes") == 0.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        gate.send(true).unwrap();
    });
    let stopping = std::time::Instant::now();
    running.stop().await;
    // Idle connections holding shutdown up would take the drain timeout (25 s).
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );

    let answer = waiting.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 50);
    assert!(
        closed_by_server(&mut kept).await,
        "idle keep-alive connection left open"
    );
    assert!(
        closed_by_server(&mut silent).await,
        "silent connection left open"
    );
    assert_each_once(&read_all(&*local.stream).await, 51);
}
