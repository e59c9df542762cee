//! One event object in the Segment spec's shape (which RudderStack and
//! Sluice's native API share; snake_case spellings are accepted too) into a
//! [`BorrowedEnvelope`] (or an owned [`Envelope`]). Nested objects are kept
//! as the client's original JSON text.

mod fields;
pub(crate) mod grammar;
mod split;

use std::borrow::Cow;

use fields::{Fields, RawEvent, scan_event};
pub use split::{ScannedBatch, scan_batch, scan_event_array};

use crate::BorrowedEnvelope;
use crate::limits::{Shape, shape};
use crate::proto::{Envelope, EventType};
use crate::time::{parse_iso8601_us, skew_corrected};
use crate::{EventError, Limits};

/// What the collector knows about the request an event came in.
#[derive(Clone, Debug, Default)]
pub struct IngestContext {
    /// The collector's clock when the request arrived.
    pub received_at_us: i64,
    /// `sentAt` of the enclosing batch, used when the event has none.
    pub batch_sent_at_us: Option<i64>,
    /// The type the endpoint implies (`/v1/track`), used when the event
    /// has none.
    pub default_type: Option<EventType>,
}

fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn is_null(raw: Option<&str>) -> bool {
    raw.is_none_or(|r| r == "null")
}

/// The text of a JSON string without escapes, borrowed; `None` when it has
/// escapes and must be decoded. `raw` is the string's valid JSON text.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.get(1..raw.len().checked_sub(1)?)?;
    // A byte search: `str::contains` sets up a general pattern searcher,
    // which costs more than the search itself on an id-sized string.
    (!inner.as_bytes().contains(&b'\\')).then_some(inner)
}

/// A string field. Ids may arrive as numbers from some libraries; their
/// text is kept as the id. Borrowed from the event's text unless escaped.
fn id_field<'a>(
    field: &'static str,
    raw: Option<&'a str>,
    limits: &Limits,
) -> Result<Cow<'a, str>, EventError> {
    let Some(raw) = raw.filter(|r| *r != "null") else {
        return Ok(Cow::Borrowed(""));
    };
    let text = match json_kind(raw) {
        "string" => match plain_string(raw) {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(serde_json::from_str::<String>(raw).map_err(|e| {
                EventError::InvalidValue {
                    field,
                    reason: e.to_string(),
                }
            })?),
        },
        "number" => Cow::Borrowed(raw),
        got => {
            return Err(EventError::WrongType {
                field,
                expected: "a string",
                got,
            });
        }
    };
    if text.len() > limits.max_id_bytes {
        return Err(EventError::InvalidValue {
            field,
            reason: format!(
                "{} bytes, over the limit of {} bytes",
                text.len(),
                limits.max_id_bytes
            ),
        });
    }
    Ok(text)
}

fn object_field<'a>(
    field: &'static str,
    raw: Option<&'a str>,
    measured: Option<Shape>,
    limits: &Limits,
) -> Result<&'a str, EventError> {
    if is_null(raw) {
        return Ok("");
    }
    let raw = raw.expect("checked by is_null");
    match json_kind(raw) {
        "object" => {
            // The event object itself is one level above its fields.
            let shape = measured.unwrap_or_else(|| shape(raw));
            limits.check_shape(field, shape, 1)?;
            Ok(raw)
        }
        got => Err(EventError::WrongType {
            field,
            expected: "a JSON object",
            got,
        }),
    }
}

fn time_field(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, EventError> {
    if is_null(raw) {
        return Ok(None);
    }
    let raw = raw.expect("checked by is_null");
    match json_kind(raw) {
        "string" => {
            if let Some(text) = plain_string(raw) {
                return parse_iso8601_us(field, text).map(Some);
            }
            let text: String = serde_json::from_str(raw).map_err(|e| EventError::InvalidValue {
                field,
                reason: e.to_string(),
            })?;
            parse_iso8601_us(field, &text).map(Some)
        }
        got => Err(EventError::WrongType {
            field,
            expected: "an ISO-8601 string",
            got,
        }),
    }
}

fn event_type(raw: Option<&str>, default: Option<EventType>) -> Result<EventType, EventError> {
    if is_null(raw) {
        return default.ok_or(EventError::Missing {
            field: "type",
            when: "",
        });
    }
    let raw = raw.expect("checked by is_null");
    let decoded: String;
    let name = match json_kind(raw) {
        "string" => match plain_string(raw) {
            Some(name) => name,
            None => {
                decoded = serde_json::from_str(raw).unwrap_or_default();
                &decoded
            }
        },
        got => {
            return Err(EventError::WrongType {
                field: "type",
                expected: "a string",
                got,
            });
        }
    };
    Ok(match name {
        "track" => EventType::Track,
        "identify" => EventType::Identify,
        "page" => EventType::Page,
        "screen" => EventType::Screen,
        "group" => EventType::Group,
        "alias" => EventType::Alias,
        other => {
            return Err(EventError::InvalidValue {
                field: "type",
                reason: format!(
                    "{other:?} is not one of track, identify, page, screen, group, alias"
                ),
            });
        }
    })
}

/// One event's JSON text, cut out of a request body. When the pass that
/// cut it out also checked its grammar and took its fields
/// ([`scan_batch`]), they come along, so the event is not read again.
#[derive(Clone, Debug)]
pub struct EventJson<'a> {
    text: &'a str,
    fields: Option<Fields<'a>>,
}

impl<'a> EventJson<'a> {
    /// An event's text, not yet read.
    pub fn new(text: &'a str) -> Self {
        Self { text, fields: None }
    }

    /// One event sent on its own (Segment's `/v1/track`): its grammar
    /// checked and its fields taken in one pass, with its `writeKey`
    /// member's JSON text. `None` leaves it to serde, as [`scan_batch`]
    /// does.
    pub fn scan(text: &'a str) -> Option<(Self, Option<&'a str>)> {
        let fields = scan_event(text)?;
        let write_key = fields.write_key;
        let event = Self {
            text,
            fields: Some(fields),
        };
        Some((event, write_key))
    }

    pub fn text(&self) -> &'a str {
        self.text
    }
}

/// Decodes and validates one event. `json` is the event object's text.
/// The envelope has no `source` or `collector`: those belong to the whole
/// request, and [`crate::EncodedEvents`] adds them to each of its events
/// once, rather than every envelope copying them.
pub fn envelope_from_json(
    json: &str,
    ctx: &IngestContext,
    limits: &Limits,
) -> Result<Envelope, EventError> {
    ctx.envelope(EventJson::new(json), limits)
        .map(|envelope| envelope.to_envelope())
}

impl IngestContext {
    /// [`envelope_from_json`] for an event whose text may have been scanned
    /// already (see [`EventJson::scan`]), borrowing from its text.
    pub fn envelope<'a>(
        &self,
        event: EventJson<'a>,
        limits: &Limits,
    ) -> Result<BorrowedEnvelope<'a>, EventError> {
        check_outline(event.text, limits)?;
        // One pass both checks the grammar and takes the fields, unless the
        // event's fields came with it; serde decides the rest and words
        // errors.
        let fields = match event.fields.or_else(|| scan_event(event.text)) {
            Some(fields) => fields,
            None => serde_fields(event.text)?,
        };
        envelope(fields, self, limits)
    }
}

fn serde_fields(json: &str) -> Result<Fields<'_>, EventError> {
    serde_json::from_str::<RawEvent>(json)
        .map(Fields::from)
        .map_err(|e| EventError::Malformed(e.to_string()))
}

/// What is checked before the event is read: its size, and that it is an
/// object at all.
fn check_outline(json: &str, limits: &Limits) -> Result<(), EventError> {
    if json.len() > limits.max_event_bytes {
        return Err(EventError::TooLarge {
            size: json.len(),
            limit: limits.max_event_bytes,
        });
    }
    let first = json.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        let kind = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            None => "nothing",
            _ => "a scalar",
        };
        return Err(EventError::NotAnObject(kind));
    }
    Ok(())
}

fn envelope<'a>(
    raw: Fields<'a>,
    ctx: &IngestContext,
    limits: &Limits,
) -> Result<BorrowedEnvelope<'a>, EventError> {
    let kind = event_type(raw.kind, ctx.default_type)?;
    let event = id_field("event", raw.event, limits)?;
    if kind == EventType::Track && event.is_empty() {
        return Err(EventError::Missing {
            field: "event",
            when: " for track events",
        });
    }
    let user_id = id_field("userId", raw.user_id, limits)?;
    let anonymous_id = id_field("anonymousId", raw.anonymous_id, limits)?;
    if user_id.is_empty() && anonymous_id.is_empty() {
        return Err(EventError::Missing {
            field: "userId or anonymousId",
            when: "",
        });
    }
    let group_id = id_field("groupId", raw.group_id, limits)?;
    if kind == EventType::Group && group_id.is_empty() {
        return Err(EventError::Missing {
            field: "groupId",
            when: " for group events",
        });
    }
    let previous_id = id_field("previousId", raw.previous_id, limits)?;
    if kind == EventType::Alias && previous_id.is_empty() {
        return Err(EventError::Missing {
            field: "previousId",
            when: " for alias events",
        });
    }

    let sent_at_us = time_field("sentAt", raw.sent_at)?.or(ctx.batch_sent_at_us);
    let timestamp_us = match time_field("timestamp", raw.timestamp)? {
        Some(ts) => skew_corrected(ts, sent_at_us, ctx.received_at_us),
        None => ctx.received_at_us,
    };
    let event_id = match id_field("messageId", raw.message_id, limits)? {
        id if id.is_empty() => Cow::Owned(uuid::Uuid::now_v7().to_string()),
        id => id,
    };

    Ok(BorrowedEnvelope {
        event_id,
        kind,
        event,
        user_id,
        anonymous_id,
        timestamp_us,
        sent_at_us: sent_at_us.unwrap_or_default(),
        received_at_us: ctx.received_at_us,
        properties_json: object_field("properties", raw.properties, raw.shapes[0], limits)?,
        context_json: object_field("context", raw.context, raw.shapes[1], limits)?,
        traits_json: object_field("traits", raw.traits, raw.shapes[2], limits)?,
        name: id_field("name", raw.name, limits)?,
        group_id,
        previous_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::DemoEvents;

    /// The one-pass path must answer exactly what the serde path answers.
    fn same_both_ways(json: &str, limits: &Limits) {
        let ctx = IngestContext {
            received_at_us: 1_714_564_810_000_000,
            ..Default::default()
        };
        let slow =
            check_outline(json, limits).and_then(|()| envelope(serde_fields(json)?, &ctx, limits));
        let fast = ctx.envelope(EventJson::new(json), limits);
        match (slow, fast) {
            (Ok(mut slow), Ok(mut fast)) => {
                // Generated ids differ by design.
                if slow.event_id != fast.event_id && generated_id(json, limits) {
                    slow.event_id = Cow::Borrowed("");
                    fast.event_id = Cow::Borrowed("");
                }
                assert_eq!(slow, fast, "{json}");
            }
            (slow, fast) => assert_eq!(slow, fast, "{json}"),
        }
    }

    #[test]
    fn one_pass_agrees_with_serde() {
        let cases = [
            r#"{"type":"track","event":"x","userId":"u"}"#,
            r#" { "type" : "track" , "event" : "x" , "userId" : 12 , "messageId" : -1.5e3 } "#,
            "{\n\t\"type\":\"identify\",\r\n\"userId\":\"u\",\"traits\":{\"a\":[1,{\"b\":2}],\"c\":null}\n}",
            r#"{}"#,
            r#"{ }"#,
            r#"{"type":"track"}"#,
            r#"{"type":"trac\u006b","event":"\"quoted\" \\ x","anonymousId":"a\u00e9"}"#,
            r#"{"type":"track","event":"x","userId":"u","properties":{"a":"}{][,:\"","b":[[[]]]}}"#,
            r#"{"typ\u0065":"track","event":"x","userId":"u"}"#,
            r#"{"type":"track","event":"x","userId":"u","userId":"v"}"#,
            r#"{"type":"track","event":"x","userId":"u","user_id":"v"}"#,
            r#"{"type":"track","event":"x","userId":"u","extra":1,"extra":2}"#,
            r#"{"type":"track","event":"x","userId":"u","integrations":{"properties":{"x":[1]}}}"#,
            r#"{"type":"track","event":"x","userId":"u","properties":[1,2]}"#,
            r#"{"type":"track","event":"x","userId":"u","properties":"p","context":{}}"#,
            r#"{"type":"track","event":"x","userId":"u","properties":null,"traits":null}"#,
            r#"{"type":"track","event":"x","userId":"u","context":{"a":{"b":{"c":{"d":1}}}}}"#,
            r#"{"type":"track","event":"x","userId":"u","properties":{"a":1,"b":"2","c":true,"d":[1]}}"#,
            r#"{"type":"group","userId":"u","groupId":null}"#,
            r#"{"type":"alias","userId":"u","previousId":"p","timestamp":"2024-05-01T12:00:00Z","sentAt":"2024-05-01T12:00:05Z"}"#,
            r#"{"type":"page","anonymousId":"a","name":"Home","timestamp":"yesterday"}"#,
            r#"{"type":"page","anonymousId":"a","timestamp":"2024-05-01T12:00:00\u005a"}"#,
            r#"{"type":"nope","anonymousId":"a"}"#,
            r#"{"type":1,"anonymousId":"a"}"#,
            r#"{"type":"track","event":"x","userId":"\ud800"}"#,
            r#"{"type":"track","event":"x","userId":true}"#,
            r#"[1]"#,
            r#""string""#,
        ];
        let tight = Limits {
            max_depth: 3,
            max_properties: 3,
            max_id_bytes: 8,
            ..Limits::default()
        };
        for json in cases {
            same_both_ways(json, &Limits::default());
            same_both_ways(json, &tight);
        }
        let mut demo = DemoEvents::new(11);
        for i in 0..2_000 {
            let event = demo.next_event(1_714_564_800_000_000, &format!("m{i}"));
            let text = event.to_string();
            let fields = scan_event(&text).expect("a plain event takes the one pass");
            let measured = [fields.properties, fields.context, fields.traits];
            for (text, shape_seen) in measured.iter().zip(fields.shapes) {
                assert_eq!(text.map(shape), shape_seen, "{text:?}");
            }
            same_both_ways(&event.to_string(), &Limits::default());
            same_both_ways(&serde_json::to_string_pretty(&event).unwrap(), &tight);
            for mutated in near_misses(&text, i) {
                same_both_ways(&mutated, &Limits::default());
            }
        }
    }

    fn generated_id(json: &str, limits: &Limits) -> bool {
        serde_fields(json).is_ok_and(|f| {
            id_field("messageId", f.message_id, limits).is_ok_and(|id| id.is_empty())
        })
    }

    /// `text` with one byte deleted, and with one inserted, where `seed`
    /// says: mostly no longer JSON, or JSON of another meaning.
    fn near_misses(text: &str, seed: usize) -> [String; 2] {
        let mut at = seed.wrapping_mul(7_919) % text.len();
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut deleted = text.to_owned();
        deleted.remove(at);
        let mut inserted = text.to_owned();
        inserted.insert(at, ['"', '\\', ',', '{', ']', '0', '\u{1}'][seed % 7]);
        [deleted, inserted]
    }
}
