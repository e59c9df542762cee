//! The gRPC API (`sluice.v1.Collector`): a unary batch and a client stream,
//! both answered with one result per event.

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use sluice_events::EventJson;
use sluice_events::proto::collector_server::{Collector, CollectorServer};
use sluice_events::proto::{Envelope, EventResult, SendBatchRequest, SendBatchResponse};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::CollectorError;
use crate::auth::write_key_from_authorization;
use crate::ingest::{Intake, Outcome, Request as IngestRequest};
use crate::protocols::Decoded;
use crate::protocols::protobuf::{PROTOCOL, event_json};

pub async fn serve_grpc(
    listener: TcpListener,
    intake: Arc<Intake>,
    shutdown: CancellationToken,
) -> Result<(), CollectorError> {
    let limit = intake.config.max_request_bytes;
    let service = CollectorServer::new(GrpcCollector { intake }).max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| CollectorError::Io(std::io::Error::other(e)))
}

struct GrpcCollector {
    intake: Arc<Intake>,
}

#[tonic::async_trait]
impl Collector for GrpcCollector {
    async fn send_batch(
        &self,
        request: Request<SendBatchRequest>,
    ) -> Result<Response<SendBatchResponse>, Status> {
        let client_ip = client_ip(&request);
        let auth_key = metadata_key(request.metadata());
        let batch = request.into_inner();
        let key = Some(batch.write_key).filter(|k| !k.is_empty()).or(auth_key);
        self.ingest(batch.events, key, client_ip).await
    }

    async fn send_stream(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<SendBatchResponse>, Status> {
        let client_ip = client_ip(&request);
        let key = metadata_key(request.metadata());
        let limit = self.intake.config.max_request_bytes;
        let mut stream = request.into_inner();
        let (mut events, mut bytes) = (Vec::new(), 0);
        while let Some(event) = stream.message().await? {
            bytes += event.encoded_len();
            if bytes > limit {
                return Err(CollectorError::BodyTooLarge { limit }.into());
            }
            events.push(event);
        }
        self.ingest(events, key, client_ip).await
    }
}

impl GrpcCollector {
    async fn ingest(
        &self,
        events: Vec<Envelope>,
        auth_key: Option<String>,
        client_ip: String,
    ) -> Result<Response<SendBatchResponse>, Status> {
        let started = Instant::now();
        let texts: Vec<_> = events.iter().map(event_json).collect();
        let decoded = Decoded {
            protocol: PROTOCOL,
            events: texts
                .iter()
                .map(|t| t.as_deref().map(EventJson::new).map_err(Clone::clone))
                .collect(),
            write_key: None,
            sent_at_us: None,
            default_type: None,
        };
        let result = self
            .intake
            .ingest(IngestRequest {
                decoded,
                text: None,
                auth_key: auth_key.map(Arc::from),
                client_ip: client_ip.into(),
                meta_cache: None,
                want_ids: true,
            })
            .await;
        let outcome = result.as_ref().map_or_else(|e| e.cause(), |_| "ok");
        let metrics = &self.intake.metrics;
        metrics.count_request(PROTOCOL, outcome);
        metrics.observe_request_seconds(PROTOCOL, started.elapsed().as_secs_f64());
        Ok(Response::new(results(texts.len(), result?)))
    }
}

/// One result per event, in request order.
fn results(count: usize, outcome: Outcome) -> SendBatchResponse {
    let mut rejections = outcome.rejections.into_iter().peekable();
    let mut ids = outcome.event_ids.into_iter();
    let results = (0..count)
        .map(|index| {
            let index32 = index as u32;
            match rejections.next_if(|(i, _)| *i == index) {
                Some((_, reject)) => EventResult {
                    index: index32,
                    accepted: false,
                    event_id: String::new(),
                    error: reject.to_string(),
                },
                None => EventResult {
                    index: index32,
                    accepted: true,
                    event_id: ids.next().unwrap_or_default(),
                    error: String::new(),
                },
            }
        })
        .collect::<Vec<_>>();
    let accepted = results.iter().filter(|r| r.accepted).count() as u32;
    SendBatchResponse {
        rejected: count as u32 - accepted,
        accepted,
        results,
    }
}

/// `authorization` metadata: `Basic`/`Bearer` like HTTP, or the bare key.
fn metadata_key(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    write_key_from_authorization(value).or_else(|| Some(value.trim().to_owned()))
}

fn client_ip<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}
