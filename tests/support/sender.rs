//! Load senders: Segment-style batches over HTTP (`POST /v1/batch`) and the
//! same events over gRPC (`SendBatch`), each batch retried with the same
//! message ids until the collector accepts it, and a record of which events
//! got their 2xx.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::json;
use sluice_events::proto::SendBatchRequest;
use sluice_events::proto::collector_client::CollectorClient;
use sluice_events::time::{format_us, now_us};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::events::{grpc_event, segment_event};

/// One attempt may wait this long for its answer; a healthy collector
/// answers in milliseconds, a killed one resets the connection at once.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// A batch not accepted within this long fails the test: the collector
/// never came back.
const BATCH_DEADLINE: Duration = Duration::from_secs(180);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Where a collector listens, and the write key it knows.
#[derive(Clone, Debug)]
pub struct CollectorAddress {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub write_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

/// One client connection to the collector, over one protocol.
pub struct Sender {
    collector: CollectorAddress,
    protocol: Protocol,
    http: Option<SendRequest<Full<Bytes>>>,
    grpc: Option<CollectorClient<Channel>>,
    /// Attempts that got no 2xx (collector down, pushing back).
    failed_attempts: u64,
    last_failure: String,
}

impl Sender {
    pub fn new(collector: CollectorAddress, protocol: Protocol) -> Sender {
        Sender {
            collector,
            protocol,
            http: None,
            grpc: None,
            failed_attempts: 0,
            last_failure: String::new(),
        }
    }

    pub fn failed_attempts(&self) -> u64 {
        self.failed_attempts
    }

    /// Sends events `numbers` of `run` as one batch until the collector
    /// accepts all of them, resending the same events (same message ids)
    /// after any failure; returns when the 2xx arrived.
    ///
    /// Panics if the collector refuses the batch as bad (a test bug) or
    /// never accepts it.
    pub async fn send(&mut self, run: &str, numbers: Range<u64>) -> Instant {
        let count = numbers.end - numbers.start;
        let batch = Batch::new(self.protocol, run, numbers);
        let deadline = Instant::now() + BATCH_DEADLINE;
        loop {
            let attempt = async {
                match self.protocol {
                    Protocol::Http => self.try_http(&batch, count).await,
                    Protocol::Grpc => self.try_grpc(&batch, count).await,
                }
            };
            let failure = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
                Ok(Ok(())) => return Instant::now(),
                Ok(Err(failure)) => failure,
                Err(_) => format!("no answer within {ATTEMPT_TIMEOUT:?}"),
            };
            // A connection that failed once is not trusted again.
            self.http = None;
            self.grpc = None;
            self.failed_attempts += 1;
            self.last_failure = failure;
            assert!(
                Instant::now() < deadline,
                "the collector did not accept a batch within {BATCH_DEADLINE:?}; last failure: {}",
                self.last_failure
            );
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn try_http(&mut self, batch: &Batch, count: u64) -> Result<(), String> {
        if self.http.is_none() {
            let stream = TcpStream::connect(self.collector.http)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (send, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            // Ends by itself when the connection closes.
            tokio::spawn(connection);
            self.http = Some(send);
        }
        let send = self.http.as_mut().expect("connected above");
        send.ready().await.map_err(|e| e.to_string())?;
        let request = Request::post("/v1/batch")
            .header(HOST, self.collector.http.to_string())
            .header(AUTHORIZATION, basic_auth(&self.collector.write_key))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(batch.http_body()))
            .expect("a valid request");
        let response = send
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        match status {
            StatusCode::OK => {
                let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                assert_eq!(
                    answer["accepted"], count,
                    "the collector refused events: {text}"
                );
                Ok(())
            }
            // Pushing back, or not ready: the documented answers to retry.
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Err(format!("{status}: {text}"))
            }
            status if status.is_server_error() => Err(format!("{status}: {text}")),
            status => panic!("the collector refused a batch: {status}: {text}"),
        }
    }

    async fn try_grpc(&mut self, batch: &Batch, count: u64) -> Result<(), String> {
        if self.grpc.is_none() {
            let client = CollectorClient::connect(format!("http://{}", self.collector.grpc))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            self.grpc = Some(client);
        }
        let client = self.grpc.as_mut().expect("connected above");
        let request = SendBatchRequest {
            events: batch.grpc.clone(),
            write_key: self.collector.write_key.clone(),
        };
        match client.send_batch(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                let refused = reply.results.iter().find(|r| !r.accepted);
                assert!(
                    reply.accepted as u64 == count && refused.is_none(),
                    "the collector refused events: {refused:?}"
                );
                Ok(())
            }
            // What a well-formed batch can still get: the collector killed
            // mid-call (Unavailable, Unknown, Cancelled...), or pushing back.
            Err(status)
                if !matches!(
                    status.code(),
                    Code::InvalidArgument
                        | Code::Unauthenticated
                        | Code::PermissionDenied
                        | Code::Unimplemented
                ) =>
            {
                Err(format!("{:?}: {}", status.code(), status.message()))
            }
            Err(status) => panic!("the collector refused a batch: {status}"),
        }
    }
}

/// One batch, encoded once for all its attempts.
struct Batch {
    run: String,
    numbers: Range<u64>,
    grpc: Vec<sluice_events::proto::Envelope>,
}

impl Batch {
    fn new(protocol: Protocol, run: &str, numbers: Range<u64>) -> Batch {
        let grpc = match protocol {
            Protocol::Grpc => numbers.clone().map(|i| grpc_event(run, i)).collect(),
            Protocol::Http => Vec::new(),
        };
        Batch {
            run: run.to_owned(),
            numbers,
            grpc,
        }
    }

    /// Built per attempt, as a real client's retry is: a new `sentAt`.
    fn http_body(&self) -> Bytes {
        let events: Vec<_> = self
            .numbers
            .clone()
            .map(|i| segment_event(&self.run, i))
            .collect();
        Bytes::from(json!({"batch": events, "sentAt": format_us(now_us())}).to_string())
    }
}

/// Segment's HTTP Basic auth: the write key as the user, no password.
fn basic_auth(write_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{write_key}:")))
}

/// A load: events `0..events` of `run`, cut into batches of
/// `batch_sizes` events (a size drawn for each batch), sent by `senders`
/// concurrent senders, alternately over HTTP and gRPC.
#[derive(Clone, Debug)]
pub struct Load {
    pub run: String,
    pub events: u64,
    pub batch_sizes: Range<u64>,
    pub senders: usize,
}

/// What a load achieved.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The event numbers that got a 2xx.
    pub accepted: BTreeSet<u64>,
    pub http_events: u64,
    pub grpc_events: u64,
    /// Attempts that got no 2xx and were retried.
    pub failed_attempts: u64,
    pub elapsed: Duration,
}

/// Event numbers `0..load.events` in consecutive batches of random sizes.
fn cut_batches(load: &Load) -> Vec<Range<u64>> {
    let mut rng = rand::rng();
    let mut batches = Vec::new();
    let mut next = 0;
    while next < load.events {
        let size = rng.random_range(load.batch_sizes.clone());
        let end = (next + size).min(load.events);
        batches.push(next..end);
        next = end;
    }
    batches
}

/// Sends `load` to `collector` and waits until every batch was accepted.
pub async fn send_load(collector: &CollectorAddress, load: &Load) -> LoadReport {
    assert!(load.senders > 0 && load.batch_sizes.start > 0);
    let started = Instant::now();
    let batches = Arc::new(cut_batches(load));
    // Senders take the next batch as they finish one, so a sender stuck
    // retrying does not hold back the others' share.
    let taken = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in 0..load.senders {
        let protocol = match s % 2 {
            0 => Protocol::Http,
            _ => Protocol::Grpc,
        };
        let mut sender = Sender::new(collector.clone(), protocol);
        let (batches, taken, run) = (batches.clone(), taken.clone(), load.run.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            while let Some(batch) = batches.get(taken.fetch_add(1, Ordering::Relaxed)) {
                sender.send(&run, batch.clone()).await;
                sent.push(batch.clone());
            }
            (protocol, sent, sender.failed_attempts())
        }));
    }
    let mut report = LoadReport::default();
    for task in tasks {
        let (protocol, sent, failed) = task.await.expect("a sender panicked");
        report.failed_attempts += failed;
        for batch in sent {
            let events = batch.end - batch.start;
            match protocol {
                Protocol::Http => report.http_events += events,
                Protocol::Grpc => report.grpc_events += events,
            }
            report.accepted.extend(batch);
        }
    }
    report.elapsed = started.elapsed();
    report
}
