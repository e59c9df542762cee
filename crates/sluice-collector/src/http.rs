//! The HTTP API on hyper: routing, bodies, CORS and answers shaped the way
//! tracking libraries expect (200 with a small JSON body; several treat
//! 202/204 as failure).

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::CollectorError;
use crate::auth::LastAuthorization;
use crate::body::{decompress, read_limited};
use crate::drain::UntilStopped;
use crate::ingest::{Intake, MetaCache, Outcome, Request as IngestRequest};
use crate::protocols::Endpoint;
use crate::utf8::BodyText;

/// How long requests still in flight at shutdown get to finish (waiting for
/// the stream included); below Kubernetes' 30 s default grace period.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub async fn serve_http(listener: TcpListener, intake: Arc<Intake>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // Answers are a few dozen bytes: copied behind the head into one buffer,
    // they cost less than a queue of buffers written with `writev`
    // (callgrind: ~300 fewer instructions per single-event request).
    http.writev(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Passing errors (a reset peer, no free fds) must not stop the
                // server; the pause keeps fd exhaustion from spinning.
                Err(error) => {
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::new(Shared {
            intake: intake.clone(),
            peer_ip: peer.ip().to_string(),
            authorization: LastAuthorization::default(),
            meta: MetaCache::default(),
        });
        let service = service_fn(move |request| handle(shared.clone(), request));
        let connection = UntilStopped::new(
            http.serve_connection(TokioIo::new(stream), service),
            shutdown.clone(),
        );
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("http requests still open after the drain timeout; dropping them");
    }
}

/// What the requests of one connection share.
struct Shared {
    intake: Arc<Intake>,
    /// The peer's address as text, formatted once: a keep-alive client
    /// sends many requests, and formatting costs more than a copy.
    peer_ip: String,
    authorization: LastAuthorization,
    meta: MetaCache,
}

/// Answers one request. What the answer needs from the head is read before
/// the first wait, so the future that waits for the body and the stream
/// holds a few fields rather than the whole request: hyper moves each
/// request's future into place, and keeps one per connection.
fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> {
    let started = Instant::now();
    let origin = allowed_origin(&shared.intake, request.headers());
    let endpoint = Endpoint::from_path(request.uri().path());
    let protocol = endpoint.map_or("unknown", Endpoint::protocol);
    let route = match (request.method(), endpoint) {
        (&Method::OPTIONS, _) => Route::Answer(preflight()),
        (&Method::POST, Some(endpoint)) => Route::Receive(Upload::new(&shared, request, endpoint)),
        (method, Some(_)) => Route::Answer(error_response(&CollectorError::MethodNotAllowed(
            method.to_string(),
        ))),
        (_, None) => Route::Answer(error_response(&CollectorError::NotFound(
            request.uri().path().to_owned(),
        ))),
    };
    async move {
        let intake = &shared.intake;
        let mut response = match route {
            Route::Answer(response) => response,
            Route::Receive(upload) => {
                let result = match upload {
                    Ok(upload) => receive(&shared, upload).await,
                    Err(error) => Err(error),
                };
                let outcome = match &result {
                    Ok(o) if o.accepted == 0 && !o.rejections.is_empty() => "all_rejected",
                    Ok(_) => "ok",
                    Err(e) => e.cause(),
                };
                intake.metrics.count_request(protocol, outcome);
                match result {
                    Ok(outcome) => outcome_response(&outcome),
                    Err(error) => {
                        tracing::debug!(%error, protocol, "request refused");
                        error_response(&error)
                    }
                }
            }
        };
        if let Some(origin) = origin {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        intake
            .metrics
            .observe_request_seconds(protocol, started.elapsed().as_secs_f64());
        Ok(response)
    }
}

/// What a request leads to, decided from its head.
enum Route {
    /// An answer that needs no body: a preflight, a wrong method or path.
    Answer(Response<Full<Bytes>>),
    /// Events to receive, or why the head alone refuses them.
    Receive(Result<Upload, CollectorError>),
}

/// A POST of events: its body, and what its head says about it.
struct Upload {
    body: Incoming,
    endpoint: Endpoint,
    gzip: bool,
    auth_key: Option<Arc<str>>,
    /// The client's address from `X-Forwarded-For`, when that is trusted;
    /// otherwise the peer's is used.
    forwarded_for: Option<String>,
}

impl Upload {
    fn new(
        shared: &Shared,
        request: Request<Incoming>,
        endpoint: Endpoint,
    ) -> Result<Self, CollectorError> {
        let intake = &shared.intake;
        let limit = intake.config.max_request_bytes;
        let headers = request.headers();
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(CollectorError::BodyTooLarge { limit });
        }
        // Refuse before reading a body that could not be taken anyway.
        if !intake.writer.has_room(declared.unwrap_or(1).max(1)) {
            return Err(CollectorError::Overloaded {
                limit: intake.config.max_in_flight_bytes,
            });
        }
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
        let auth_key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| shared.authorization.write_key(v));
        let forwarded_for = forwarded_for(intake, headers);
        Ok(Self {
            body: request.into_body(),
            endpoint,
            gzip,
            auth_key,
            forwarded_for,
        })
    }
}

async fn receive(shared: &Shared, upload: Upload) -> Result<Outcome, CollectorError> {
    let intake = &shared.intake;
    let limit = intake.config.max_request_bytes;
    let body = read_limited(upload.body, limit).await?;
    // The body goes before the wait for the stream: it shares hyper's read
    // buffer, which the connection's next request can then reuse.
    let validated = {
        let body = decompress(body, upload.gzip, limit)?;
        let text = BodyText::new(&body);
        let decoded = upload.endpoint.decode(text.as_str())?;
        let client_ip = match upload.forwarded_for {
            Some(ip) => Cow::Owned(ip),
            None => Cow::Borrowed(shared.peer_ip.as_str()),
        };
        intake.validate(IngestRequest {
            decoded,
            text: Some(&text),
            auth_key: upload.auth_key,
            client_ip,
            meta_cache: Some(&shared.meta),
            want_ids: false,
        })?
    };
    intake.finish(validated).await
}

/// The first address of `X-Forwarded-For`, when the config trusts it.
fn forwarded_for(intake: &Intake, headers: &HeaderMap) -> Option<String> {
    if !intake.config.trust_forwarded_for {
        return None;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The Origin to echo, when the request has one that is allowed.
fn allowed_origin(intake: &Intake, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    intake
        .config
        .cors_origins
        .iter()
        .any(|o| o == "*" || o == text)
        .then(|| origin.clone())
}

fn preflight() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Content-Encoding"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

fn outcome_response(outcome: &Outcome) -> Response<Full<Bytes>> {
    if outcome.rejections.is_empty() && outcome.accepted == 1 {
        // A single event (what analytics.js sends, an event a request): the
        // answer is always the same, and a static body needs no allocation.
        const ONE: &[u8] = br#"{"success":true,"accepted":1,"rejected":0}"#;
        return json_response(StatusCode::OK, Bytes::from_static(ONE));
    }
    if outcome.rejections.is_empty() {
        // The common case, without building a JSON tree or running
        // `format!` (serde_json writes a number without it). The body is
        // allocated at its exact size, which `Bytes` takes over as it is
        // (any spare capacity would cost it a second allocation).
        const HEAD: &[u8] = br#"{"success":true,"accepted":"#;
        const TAIL: &[u8] = br#","rejected":0}"#;
        let mut digits = [0u8; 20];
        let mut free = &mut digits[..];
        serde_json::to_writer(&mut free, &outcome.accepted).expect("20 digits hold any usize");
        let written = 20 - free.len();
        let mut body = Vec::with_capacity(HEAD.len() + written + TAIL.len());
        body.extend_from_slice(HEAD);
        body.extend_from_slice(&digits[..written]);
        body.extend_from_slice(TAIL);
        return json_response(StatusCode::OK, body);
    }
    let errors: Vec<_> = outcome
        .rejections
        .iter()
        .map(|(index, reject)| {
            json!({
                "index": index,
                "cause": reject.cause(),
                "field": reject.field(),
                "limit": reject.limit(),
                "error": reject.to_string(),
            })
        })
        .collect();
    let success = outcome.accepted > 0;
    let mut body = json!({
        "success": success,
        "accepted": outcome.accepted,
        "rejected": outcome.rejections.len(),
        "errors": errors,
    });
    // Nothing accepted: the request as a whole is bad, so a client does not
    // count it as delivered; the events are still kept under rejected/.
    let status = if success {
        StatusCode::OK
    } else {
        body["error"] = CollectorError::AllRejected(errors_summary(outcome))
            .to_string()
            .into();
        StatusCode::BAD_REQUEST
    };
    json_response(status, body.to_string())
}

fn errors_summary(outcome: &Outcome) -> String {
    let (index, reject) = &outcome.rejections[0];
    match outcome.rejections.len() {
        1 => format!("event {index}: {reject}"),
        n => format!("event {index}: {reject} (and {} more)", n - 1),
    }
}

fn error_response(error: &CollectorError) -> Response<Full<Bytes>> {
    let body = json!({"success": false, "error": error.to_string(), "cause": error.cause()});
    let mut response = json_response(error.status(), body.to_string());
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_text(response: Response<Full<Bytes>>) -> String {
        let body = response.into_body().collect().await.unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn accepted_answer_is_the_exact_json_clients_get() {
        for accepted in [0, 1, 20, 1234, usize::MAX] {
            let response = outcome_response(&Outcome {
                accepted,
                ..Outcome::default()
            });
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(
                body_text(response).await,
                format!(r#"{{"success":true,"accepted":{accepted},"rejected":0}}"#)
            );
        }
    }
}
