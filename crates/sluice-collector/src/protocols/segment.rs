//! Segment's HTTP Tracking API, as analytics-python, analytics-node and
//! analytics.js send it (RudderStack's SDKs share it): `/v1/batch` with
//! `{"batch": [...], "sentAt", "writeKey"?}`, one event per call on
//! `/v1/track` and friends, and analytics.js' short paths (`/v1/t`, ...).

use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_events::proto::EventType;
use sluice_events::time::parse_iso8601_us;
use sluice_events::{EventJson, ScannedBatch, scan_batch};

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

/// A batch body's parts.
struct Batch<'a> {
    events: Vec<EventJson<'a>>,
    /// JSON text.
    sent_at: Option<&'a str>,
    write_key: Option<String>,
}

/// What serde reads of a batch body.
#[derive(Deserialize)]
struct SerdeBatch<'a> {
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

impl<'a> Batch<'a> {
    /// One pass that checks the body's grammar and cuts out each event's
    /// fields too. `None` leaves the body to serde: it is invalid, or holds
    /// what serde decides (escaped or repeated keys, a `writeKey` that is
    /// not a string).
    fn scan(body: &'a str) -> Option<Self> {
        let ScannedBatch { events, members } = scan_batch(body, "batch")?;
        let (mut sent_at, mut write_key) = (None, None);
        for (key, value) in members {
            let slot = match key {
                "sentAt" => &mut sent_at,
                "writeKey" => &mut write_key,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(Self {
            events,
            // Serde reads `null` as no value.
            sent_at: sent_at.filter(|raw| *raw != "null"),
            write_key: read_write_key(write_key)?,
        })
    }

    /// The serde parse, for the bodies [`Batch::scan`] leaves to it and for
    /// the errors clients have always got.
    fn parse(body: &'a str) -> Result<Self, CollectorError> {
        let batch: SerdeBatch =
            serde_json::from_str(body).map_err(|e| explain_batch_error(body, e))?;
        Ok(Self {
            events: batch
                .batch
                .into_iter()
                .map(|raw| EventJson::new(raw.get()))
                .collect(),
            sent_at: batch.sent_at.map(RawValue::get),
            write_key: batch.write_key,
        })
    }
}

pub fn decode_batch(body: &str) -> Result<Decoded<'_>, CollectorError> {
    let batch = match Batch::scan(body) {
        Some(batch) => batch,
        None => Batch::parse(body)?,
    };
    let sent_at_us = match batch.sent_at {
        None => None,
        Some(raw) => {
            let text: String = serde_json::from_str(raw).map_err(|_| CollectorError::BadField {
                field: "sentAt",
                reason: format!("expected an ISO-8601 string, got {raw}"),
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
        events: batch.events.into_iter().map(Ok).collect(),
        write_key: batch.write_key,
        sent_at_us,
        default_type: None,
    })
}

/// A `writeKey` member's JSON text (if any) read as serde reads the field,
/// `null` being no key; `None` when it is not a string, for serde's parse
/// to refuse in its own words.
fn read_write_key(raw: Option<&str>) -> Option<Option<String>> {
    match raw {
        Some(raw) => serde_json::from_str(raw).ok(),
        None => Some(None),
    }
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
    // One pass when it can; a `writeKey` that is not a string, and what
    // the pass leaves to serde, get serde's reading and errors.
    let scanned = EventJson::scan(event)
        .and_then(|(json, write_key)| Some((json, read_write_key(write_key)?)));
    let (json, write_key) = match scanned {
        Some(scanned) => scanned,
        None => {
            let meta: SingleMeta =
                serde_json::from_str(event).map_err(|e| CollectorError::Json(e.to_string()))?;
            (EventJson::new(event), meta.write_key)
        }
    };
    Ok(Decoded {
        protocol: PROTOCOL,
        events: smallvec::smallvec![Ok(json)],
        write_key,
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

    /// The one pass must accept only bodies serde accepts, and read them as
    /// serde does.
    fn scan_agrees_with_serde(body: &str) -> bool {
        let Some(scanned) = Batch::scan(body) else {
            return false;
        };
        let parsed = Batch::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let texts = |batch: &Batch| -> Vec<String> {
            batch.events.iter().map(|e| e.text().to_owned()).collect()
        };
        assert_eq!(texts(&scanned), texts(&parsed), "{body}");
        assert_eq!(scanned.sent_at, parsed.sent_at, "{body}");
        assert_eq!(scanned.write_key, parsed.write_key, "{body}");
        true
    }

    #[test]
    fn one_pass_agrees_with_serde() {
        let mut demo = sluice_events::demo::DemoEvents::new(3);
        let events: Vec<_> = (0..3)
            .map(|i| demo.next_event(1_714_564_800_000_000, &format!("m{i}")))
            .collect();
        let body =
            serde_json::json!({"writeKey": "wk", "batch": events, "sentAt": null}).to_string();
        assert!(scan_agrees_with_serde(&body));
        for body in [
            r#" { "batch" : [ 1 , "x" , { } ] , "sentAt" : "2024-01-01T00:00:00Z" } "#,
            r#"{"batch":[],"writeKey":null,"other":{"batch":1},"other":[]}"#,
            r#"{"batch":[],"writeKey":"w\u00e9"}"#,
            r#"{"batch":[],"writeKey":5}"#,
            r#"{"batch":[],"writeKey":"a","writeKey":"b"}"#,
            r#"{"batch":[],"sentAt":1,"sentAt":2}"#,
            r#"{"b\u0061tch":[]}"#,
            r#"[[], null, "wk"]"#,
        ] {
            scan_agrees_with_serde(body);
        }
        // Every position of the body, one byte deleted or inserted.
        let (mut scanned, mut left) = (0, 0);
        for at in (0..body.len()).filter(|&at| body.is_char_boundary(at)) {
            let mut deleted = body.clone();
            deleted.remove(at);
            let inserted = ['"', '\\', ',', ':', '{', ']', '0', ' ', '\u{1}'].map(|c| {
                let mut text = body.clone();
                text.insert(at, c);
                text
            });
            for text in std::iter::once(deleted).chain(inserted) {
                if scan_agrees_with_serde(&text) {
                    scanned += 1;
                } else {
                    left += 1;
                }
            }
        }
        assert!(
            scanned > 1_000 && left > 1_000,
            "{scanned} scanned, {left} left"
        );
    }

    #[test]
    fn single_event_carries_its_write_key() {
        let d = decode_single(r#" {"writeKey":"wk","event":"x"} "#, EventType::Track).unwrap();
        assert_eq!(d.write_key.as_deref(), Some("wk"));
        assert_eq!(d.texts(), vec![Ok(r#"{"writeKey":"wk","event":"x"}"#)]);
        assert!(decode_single("[1]", EventType::Track).is_err());
        // Read by serde instead: an escape in the key, or in the value.
        for (body, key) in [
            (r#"{"writeKey":"wk"}"#, Some("wk")),
            (r#"{"writeKey":"wk"}"#, Some("wk")),
            (r#"{"writeKey":null}"#, None),
        ] {
            let d = decode_single(body, EventType::Track).unwrap();
            assert_eq!(d.write_key.as_deref(), key, "{body}");
        }
        for body in [r#"{"writeKey":1}"#, r#"{"writeKey":"wk",}"#] {
            assert!(
                matches!(
                    decode_single(body, EventType::Track),
                    Err(CollectorError::Json(_))
                ),
                "{body}"
            );
        }
    }
}
