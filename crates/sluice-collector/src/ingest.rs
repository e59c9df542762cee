//! What every protocol shares once a body is split into events: the
//! source, validation into envelopes, room in the in-flight budget, the
//! rejected events kept, and the wait for the stream.

use std::borrow::Cow;
use std::sync::Arc;

use sluice_events::time::now_us;

use sluice_events::proto::{CollectorMeta, Source};
use sluice_events::{EncodedEvents, EncodedMeta, EventJson, IngestContext};

use crate::auth::Sources;
use crate::config::AckMode;
use crate::last_answer::LastAnswer;
use crate::metrics::Metrics;
use crate::protocols::Decoded;
use crate::rejection::{Reject, RejectedEvent, RejectedSink};
use crate::utf8::BodyText;
use crate::writer::{Reservation, StreamWriter};
use crate::{CollectorConfig, CollectorError};

pub struct Intake {
    pub config: CollectorConfig,
    pub metrics: Metrics,
    pub writer: StreamWriter,
    pub rejected: RejectedSink,
    sources: Sources,
    host: String,
}

/// One request, decoded.
pub struct Request<'a> {
    pub decoded: Decoded<'a>,
    /// The body the events were cut from, to find invalid UTF-8 in them.
    pub text: Option<&'a BodyText<'a>>,
    /// From the `Authorization` header (or gRPC metadata); a key in the body
    /// wins.
    pub auth_key: Option<Arc<str>>,
    pub client_ip: Cow<'a, str>,
    /// The metadata of the connection's previous request, when the protocol
    /// keeps connections apart (HTTP does; tonic does not tell).
    pub meta_cache: Option<&'a MetaCache>,
    /// Return the accepted events' ids (gRPC answers per event).
    pub want_ids: bool,
}

/// A request's events, validated, with room reserved for the accepted. It
/// holds nothing of the request, so the body can go before the wait for
/// the stream.
pub struct Validated<'a> {
    /// The answer so far; its rejections are filled once they are kept.
    outcome: Outcome,
    /// None when every event was rejected.
    accepted: Option<(EncodedEvents, Reservation)>,
    /// Index in the request, reason, and the event's text.
    rejected: Vec<(usize, Reject, String)>,
    source: Cow<'a, Source>,
    received_at_us: i64,
    protocol: &'static str,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub accepted: usize,
    /// `event_id` of each accepted event, in order, when asked for.
    pub event_ids: Vec<String>,
    /// Index in the request and reason, in index order.
    pub rejections: Vec<(usize, Reject)>,
}

impl Intake {
    pub fn new(
        config: CollectorConfig,
        metrics: Metrics,
        writer: StreamWriter,
        rejected: RejectedSink,
    ) -> Self {
        Self {
            sources: Sources::new(&config),
            host: config.host_name(),
            config,
            metrics,
            writer,
            rejected,
        }
    }

    pub async fn ingest(&self, request: Request<'_>) -> Result<Outcome, CollectorError> {
        let validated = self.validate(request)?;
        self.finish(validated).await
    }

    /// Keeps the rejected events, then hands the accepted to the stream
    /// and (unless answers are buffered) waits for it. Validation ran to its
    /// end before, so this future holds only its results across the waits:
    /// hyper moves each request's future into place, and keeps one per
    /// connection.
    pub async fn finish(&self, validated: Validated<'_>) -> Result<Outcome, CollectorError> {
        let Validated {
            mut outcome,
            accepted,
            rejected,
            source,
            received_at_us,
            protocol,
        } = validated;
        if !rejected.is_empty() {
            // Boxed: its future is large (the event being sent), and inline
            // it would enlarge every request's future, rejections or not.
            let keeping = self.keep_rejected(rejected, &source, received_at_us, protocol);
            outcome.rejections = Box::pin(keeping).await;
        }
        if let Some((events, reservation)) = accepted {
            let written = self.writer.submit(events, reservation)?;
            if self.config.ack == AckMode::Stream {
                written
                    .await
                    .map_err(|_| CollectorError::ShuttingDown)?
                    .map_err(CollectorError::Stream)?;
            }
            self.metrics.count_accepted(protocol, outcome.accepted);
        }
        Ok(outcome)
    }

    /// Resolves the source, turns each event into an envelope or a
    /// rejection, and takes room in the in-flight budget for the accepted.
    pub fn validate(&self, request: Request<'_>) -> Result<Validated<'_>, CollectorError> {
        let Request {
            decoded,
            text,
            auth_key,
            client_ip,
            meta_cache,
            want_ids,
        } = request;
        let write_key = decoded.write_key.as_deref().or(auth_key.as_deref());
        let source = self.sources.resolve(write_key)?;
        let meta = match meta_cache {
            Some(cache) => cache.get(&source, decoded.protocol, &self.host, &client_ip),
            None => encode_meta(&source, decoded.protocol, &self.host, &client_ip),
        };
        let ctx = IngestContext {
            received_at_us: now_us(),
            batch_sent_at_us: decoded.sent_at_us,
            default_type: decoded.default_type,
        };

        let json_bytes = decoded
            .events
            .iter()
            .flatten()
            .map(|e| e.text().len())
            .sum();
        let mut accepted = EncodedEvents::with_capacity(meta, decoded.events.len(), json_bytes);
        let mut event_ids = Vec::new();
        let mut rejected = Vec::new();
        for (index, item) in decoded.events.into_iter().enumerate() {
            let raw = item.as_ref().map_or("", EventJson::text);
            let envelope = item.and_then(|event| {
                if let Some(offset) = text.and_then(|t| t.invalid_in(event.text())) {
                    return Err(Reject::InvalidUtf8 { offset });
                }
                ctx.envelope(event, &self.config.limits)
                    .map_err(Reject::Event)
            });
            match envelope {
                Ok(envelope) => {
                    accepted.push(&envelope);
                    if want_ids {
                        event_ids.push(envelope.event_id.into_owned());
                    }
                }
                Err(reject) => rejected.push((index, reject, raw.to_owned())),
            }
        }

        let outcome = Outcome {
            accepted: accepted.len(),
            event_ids,
            rejections: Vec::new(),
        };
        // Room first: a client told to retry resends the whole request, so
        // its rejected events are kept only once it gets through.
        let accepted = match accepted.is_empty() {
            true => None,
            false => {
                let reservation = self.writer.reserve(accepted.byte_len())?;
                Some((accepted, reservation))
            }
        };
        Ok(Validated {
            outcome,
            accepted,
            rejected,
            source,
            received_at_us: ctx.received_at_us,
            protocol: decoded.protocol,
        })
    }

    /// Counts and keeps a request's rejected events (index, reason and raw
    /// text), returning their indexes and reasons for the answer.
    async fn keep_rejected(
        &self,
        rejected: Vec<(usize, Reject, String)>,
        source: &Source,
        received_at_us: i64,
        protocol: &'static str,
    ) -> Vec<(usize, Reject)> {
        let mut rejections = Vec::with_capacity(rejected.len());
        for (index, reject, raw) in rejected {
            self.metrics
                .events_rejected
                .with_label_values(&[reject.cause()])
                .inc();
            self.rejected
                .send(RejectedEvent {
                    source: source.name.clone(),
                    received_at_us,
                    protocol,
                    index,
                    reject: reject.clone(),
                    raw,
                })
                .await;
            rejections.push((index, reject));
        }
        rejections
    }
}

/// The metadata every envelope of a request ends with: its source and the
/// collector's own (the version is this build's).
fn encode_meta(source: &Source, protocol: &str, host: &str, client_ip: &str) -> EncodedMeta {
    let collector = CollectorMeta {
        protocol: protocol.into(),
        host: host.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        client_ip: client_ip.into(),
    };
    EncodedMeta::new(source, &collector)
}

/// A connection's last encoded metadata, with the source, protocol and
/// client IP of the request it was encoded from (the host is the
/// collector's, the same for all).
#[derive(Default)]
pub struct MetaCache(LastAnswer<(Source, &'static str, String), EncodedMeta>);

impl MetaCache {
    /// The encoded metadata for these inputs: the last one when source,
    /// protocol and client IP are the last request's (`host` is the
    /// collector's own, the same for every request), otherwise encoded anew
    /// (and kept in its place).
    fn get(
        &self,
        source: &Source,
        protocol: &'static str,
        host: &str,
        client_ip: &str,
    ) -> EncodedMeta {
        self.0.get(
            |(s, p, ip)| s == source && *p == protocol && ip == client_ip,
            || {
                let meta = encode_meta(source, protocol, host, client_ip);
                ((source.clone(), protocol, client_ip.to_owned()), meta)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, write_key: &str) -> Source {
        Source {
            name: name.into(),
            write_key: write_key.into(),
        }
    }

    #[test]
    fn meta_cache_gives_what_encoding_gives_and_never_stale_metadata() {
        let cache = MetaCache::default();
        let web = source("web", "wk_web");
        let inputs = [
            (web.clone(), "segment", "h", "203.0.113.9"),
            // The same again: from the cache, still the same bytes.
            (web.clone(), "segment", "h", "203.0.113.9"),
            (source("web", "wk_other"), "segment", "h", "203.0.113.9"),
            (source("app", "wk_other"), "segment", "h", "203.0.113.9"),
            (web.clone(), "native", "h", "203.0.113.9"),
            (web.clone(), "native", "h", "198.51.100.1"),
            // Back to the first: the cache holds only the last one.
            (web, "segment", "h", "203.0.113.9"),
        ];
        let mut previous: Option<EncodedMeta> = None;
        for (i, (source, protocol, host, ip)) in inputs.iter().enumerate() {
            let cached = cache.get(source, protocol, host, ip);
            assert_eq!(cached, encode_meta(source, protocol, host, ip), "input {i}");
            if let Some(previous) = previous {
                // Only the repeated input may give the same bytes.
                assert_eq!(previous == cached, i == 1, "input {i}");
            }
            previous = Some(cached);
        }
    }
}
