//! Segment's HTTP Tracking API, as analytics-python, analytics-node and
//! analytics.js send it (RudderStack's SDKs share it): `/v1/batch` with
//! `{"batch": [...], "sentAt", "writeKey"?}`, one event per call on
//! `/v1/track` and friends, and analytics.js' short paths (`/v1/t`, ...).

use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_events::proto::EventType;
use sluice_events::time::parse_iso8601_us;

use super::{Decoded, Endpoint};
use crate::CollectorError;

pub const PROTOCOL: &str = "segment";

pub fn endpoint(path: &str) -> Option<Endpoint> {
    let single = |kind| Some(Endpoint::SegmentSingle(kind));
    match path.strip_prefix("/v1/")? {
        "batch" | "b" | "import" => Some(Endpoint::SegmentBatch),
        "track" | "t" => single(EventType::Track),
        "identify" | "i" => single(EventType::Identify),
        "page" | "p" => single(EventType::Page),
        "screen" | "s" => single(EventType::Screen),
        "group" | "g" => single(EventType::Group),
        "alias" | "a" => single(EventType::Alias),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(borrow, default, rename = "sentAt")]
    sent_at: Option<&'a RawValue>,
    #[serde(default, rename = "writeKey")]
    write_key: Option<String>,
}

/// Only to explain why a body is not a [`Batch`]: which field is wrong.
#[derive(Deserialize)]
struct LooseBatch<'a> {
    #[serde(borrow, default)]
    batch: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SingleMeta {
    #[serde(default, rename = "writeKey")]
    write_key: Option<String>,
}

pub fn decode_batch(body: &str) -> Result<Decoded<'_>, CollectorError> {
    let batch: Batch = serde_json::from_str(body).map_err(|e| explain_batch_error(body, e))?;
    let sent_at_us = match batch.sent_at.filter(|raw| raw.get() != "null") {
        None => None,
        Some(raw) => {
            let text: String =
                serde_json::from_str(raw.get()).map_err(|_| CollectorError::BadField {
                    field: "sentAt",
                    reason: format!("expected an ISO-8601 string, got {}", raw.get()),
                })?;
            Some(
                parse_iso8601_us("sentAt", &text).map_err(|e| CollectorError::BadField {
                    field: "sentAt",
                    reason: e.to_string(),
                })?,
            )
        }
    };
    Ok(Decoded {
        protocol: PROTOCOL,
        events: batch.batch.into_iter().map(|raw| Ok(raw.get())).collect(),
        parsed: true,
        write_key: batch.write_key,
        sent_at_us,
        default_type: None,
    })
}

fn explain_batch_error(body: &str, error: serde_json::Error) -> CollectorError {
    match serde_json::from_str::<LooseBatch>(body) {
        Ok(LooseBatch { batch: None }) => CollectorError::BadField {
            field: "batch",
            reason: "is required (an array of events)".into(),
        },
        Ok(LooseBatch { batch: Some(raw) }) if !raw.get().starts_with('[') => {
            CollectorError::BadField {
                field: "batch",
                reason: "expected an array of events".into(),
            }
        }
        _ => CollectorError::Json(error.to_string()),
    }
}

pub fn decode_single(body: &str, kind: EventType) -> Result<Decoded<'_>, CollectorError> {
    let event = body.trim();
    if !event.starts_with('{') {
        return Err(CollectorError::Json(
            "expected one event as a JSON object".into(),
        ));
    }
    let meta: SingleMeta =
        serde_json::from_str(event).map_err(|e| CollectorError::Json(e.to_string()))?;
    Ok(Decoded {
        protocol: PROTOCOL,
        events: vec![Ok(event)],
        // Parsed whole for its write key.
        parsed: true,
        write_key: meta.write_key,
        sent_at_us: None,
        default_type: Some(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_long_and_short_paths() {
        assert_eq!(endpoint("/v1/b"), Some(Endpoint::SegmentBatch));
        assert_eq!(
            endpoint("/v1/p"),
            Some(Endpoint::SegmentSingle(EventType::Page))
        );
        assert_eq!(endpoint("/v1/nope"), None);
    }

    #[test]
    fn batch_fields_and_errors() {
        let d = decode_batch(
            r#"{"batch":[{"type":"track"},{"x":[[1]]}],"sentAt":"2024-01-01T00:00:00Z","writeKey":"wk"}"#,
        )
        .unwrap();
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.write_key.as_deref(), Some("wk"));
        assert_eq!(d.sent_at_us, Some(1_704_067_200_000_000));
        let err = decode_batch(r#"{"batch":{}}"#).unwrap_err();
        assert_eq!(err.to_string(), "batch: expected an array of events");
        let err = decode_batch(r#"{"events":[]}"#).unwrap_err();
        assert!(err.to_string().starts_with("batch: is required"), "{err}");
        let err = decode_batch(r#"{"batch":[],"sentAt":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().starts_with("sentAt: "), "{err}");
        assert!(matches!(
            decode_batch(r#"{"batch":[{"a":}]}"#),
            Err(CollectorError::Json(_))
        ));
    }

    #[test]
    fn single_event_carries_its_write_key() {
        let d = decode_single(r#" {"writeKey":"wk","event":"x"} "#, EventType::Track).unwrap();
        assert_eq!(d.write_key.as_deref(), Some("wk"));
        assert_eq!(d.events, vec![Ok(r#"{"writeKey":"wk","event":"x"}"#)]);
        assert!(decode_single("[1]", EventType::Track).is_err());
    }
}
