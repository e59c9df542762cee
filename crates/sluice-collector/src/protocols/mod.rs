//! Client protocols, one module each: each turns a request body into the
//! JSON text of its events plus what the batch says about them. Another
//! protocol (Mixpanel, PostHog, Snowplow) is another module and another
//! [`Endpoint`].

pub mod native;
pub mod protobuf;
pub mod segment;

use sluice_events::EventJson;
use sluice_events::proto::EventType;
use smallvec::SmallVec;

use crate::rejection::Reject;

/// One event's JSON text, or why it could not even be cut out of the body.
pub type EventText<'a> = Result<EventJson<'a>, Reject>;

/// A request's events: one is held inline, without an allocation, as most
/// requests (analytics.js sends an event a request) carry just one.
pub type EventTexts<'a> = SmallVec<[EventText<'a>; 1]>;

/// A request body, split into events.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The protocol's name, kept in each envelope's collector metadata.
    pub protocol: &'static str,
    pub events: EventTexts<'a>,
    /// A write key the body carries (`writeKey`); the Authorization header
    /// is used when there is none.
    pub write_key: Option<String>,
    /// The batch's `sentAt`, for events without their own.
    pub sent_at_us: Option<i64>,
    /// The type the endpoint implies (`/v1/track`).
    pub default_type: Option<EventType>,
}

#[cfg(test)]
impl<'a> Decoded<'a> {
    /// The events' texts, to compare.
    pub fn texts(&self) -> Vec<Result<&'a str, Reject>> {
        let text = |event: &EventJson<'a>| event.text();
        self.events
            .iter()
            .map(|event| event.as_ref().map(text).map_err(Clone::clone))
            .collect()
    }
}

/// Which decoder an HTTP path goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Native,
    SegmentBatch,
    SegmentSingle(EventType),
}

impl Endpoint {
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/events" => Endpoint::Native,
            other => segment::endpoint(other)?,
        })
    }

    pub fn protocol(self) -> &'static str {
        match self {
            Endpoint::Native => native::PROTOCOL,
            Endpoint::SegmentBatch | Endpoint::SegmentSingle(_) => segment::PROTOCOL,
        }
    }

    pub fn decode(self, body: &str) -> Result<Decoded<'_>, crate::CollectorError> {
        match self {
            Endpoint::Native => native::decode(body),
            Endpoint::SegmentBatch => segment::decode_batch(body),
            Endpoint::SegmentSingle(kind) => segment::decode_single(body, kind),
        }
    }
}
