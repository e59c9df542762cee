//! One event object in the Segment spec's shape (which RudderStack and
//! Sluice's native API share; snake_case spellings are accepted too) into an
//! [`Envelope`]. Nested objects are kept as the client's original JSON text.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::limits::{Shape, find_quote_or_backslash, shape, shape_of_value};
use crate::proto::{CollectorMeta, Envelope, EventType, Source};
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
    pub source: Source,
    pub collector: CollectorMeta,
}

/// The fields an event may have. `scan_valid_event` matches the same names
/// (renames and aliases included): keep the two in step.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(
        borrow,
        default,
        rename = "messageId",
        alias = "message_id",
        alias = "event_id"
    )]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "userId", alias = "user_id")]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "anonymousId", alias = "anonymous_id")]
    anonymous_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "sentAt", alias = "sent_at")]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "groupId", alias = "group_id")]
    group_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "previousId", alias = "previous_id")]
    previous_id: Option<&'a RawValue>,
}

/// The event's top-level fields as JSON texts, whichever way they were cut
/// out, with the shapes of its object fields when the cut measured them.
#[derive(Default)]
struct Fields<'a> {
    message_id: Option<&'a str>,
    kind: Option<&'a str>,
    event: Option<&'a str>,
    user_id: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    sent_at: Option<&'a str>,
    properties: Option<&'a str>,
    context: Option<&'a str>,
    traits: Option<&'a str>,
    name: Option<&'a str>,
    group_id: Option<&'a str>,
    previous_id: Option<&'a str>,
    /// Shapes of `properties`, `context`, `traits`.
    shapes: [Option<Shape>; 3],
}

impl<'a> From<RawEvent<'a>> for Fields<'a> {
    fn from(raw: RawEvent<'a>) -> Self {
        Fields {
            message_id: raw.message_id.map(RawValue::get),
            kind: raw.kind.map(RawValue::get),
            event: raw.event.map(RawValue::get),
            user_id: raw.user_id.map(RawValue::get),
            anonymous_id: raw.anonymous_id.map(RawValue::get),
            timestamp: raw.timestamp.map(RawValue::get),
            sent_at: raw.sent_at.map(RawValue::get),
            properties: raw.properties.map(RawValue::get),
            context: raw.context.map(RawValue::get),
            traits: raw.traits.map(RawValue::get),
            name: raw.name.map(RawValue::get),
            group_id: raw.group_id.map(RawValue::get),
            previous_id: raw.previous_id.map(RawValue::get),
            shapes: [None; 3],
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// Offset just past the string whose opening quote is at `i`, and whether
/// it holds an escape.
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    i += 1;
    loop {
        i = find_quote_or_backslash(b, i);
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            _ => {
                escaped = true;
                i += 2;
            }
        }
    }
}

/// One pass over an event object known to be valid JSON: its top-level
/// fields, spans identical to serde's `RawValue`s, and the shapes of its
/// object fields. `None` for anything the serde path must decide (an escaped
/// key, a repeated field, text that is not a lone object), so errors come
/// from exactly the code that produced them before.
fn scan_valid_event(json: &str) -> Option<Fields<'_>> {
    let b = json.as_bytes();
    let mut fields = Fields::default();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (key_end, escaped) = string_end(b, i)?;
            if escaped {
                return None;
            }
            let key = json.get(i + 1..key_end - 1)?;
            i = skip_ws(b, key_end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let (slot, shape_slot) = match key {
                "messageId" | "message_id" | "event_id" => (Some(&mut fields.message_id), None),
                "type" => (Some(&mut fields.kind), None),
                "event" => (Some(&mut fields.event), None),
                "userId" | "user_id" => (Some(&mut fields.user_id), None),
                "anonymousId" | "anonymous_id" => (Some(&mut fields.anonymous_id), None),
                "timestamp" => (Some(&mut fields.timestamp), None),
                "sentAt" | "sent_at" => (Some(&mut fields.sent_at), None),
                "properties" => (Some(&mut fields.properties), Some(0)),
                "context" => (Some(&mut fields.context), Some(1)),
                "traits" => (Some(&mut fields.traits), Some(2)),
                "name" => (Some(&mut fields.name), None),
                "groupId" | "group_id" => (Some(&mut fields.group_id), None),
                "previousId" | "previous_id" => (Some(&mut fields.previous_id), None),
                _ => (None, None),
            };
            let start = i;
            let end = match b.get(i)? {
                b'"' => string_end(b, i)?.0,
                b'{' | b'[' => {
                    let (shape, end) = shape_of_value(b, i);
                    if let Some(k) = shape_slot {
                        fields.shapes[k] = Some(shape);
                    }
                    end
                }
                _ => {
                    while !matches!(
                        b.get(i),
                        None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                    ) {
                        i += 1;
                    }
                    i
                }
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    return None;
                }
                *slot = Some(json.get(start..end)?);
            }
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(fields)
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
    (!inner.contains('\\')).then_some(inner)
}

/// A string field. Ids may arrive as numbers from some libraries; their
/// text is kept as the id.
fn id_field(field: &'static str, raw: Option<&str>, limits: &Limits) -> Result<String, EventError> {
    let Some(raw) = raw.filter(|r| *r != "null") else {
        return Ok(String::new());
    };
    let text = match json_kind(raw) {
        "string" => match plain_string(raw) {
            Some(text) => text.to_owned(),
            None => serde_json::from_str::<String>(raw).map_err(|e| EventError::InvalidValue {
                field,
                reason: e.to_string(),
            })?,
        },
        "number" => raw.to_owned(),
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

fn object_field(
    field: &'static str,
    raw: Option<&str>,
    measured: Option<Shape>,
    limits: &Limits,
) -> Result<String, EventError> {
    if is_null(raw) {
        return Ok(String::new());
    }
    let raw = raw.expect("checked by is_null");
    match json_kind(raw) {
        "object" => {
            // The event object itself is one level above its fields.
            let shape = measured.unwrap_or_else(|| shape(raw));
            limits.check_shape(field, shape, 1)?;
            Ok(raw.to_owned())
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

/// Decodes and validates one event. `json` is the event object's text.
pub fn envelope_from_json(
    json: &str,
    ctx: &IngestContext,
    limits: &Limits,
) -> Result<Envelope, EventError> {
    decode(json, false, ctx, limits)
}

impl IngestContext {
    /// [`envelope_from_json`] for the text of a value a JSON parser has
    /// already accepted (an element of a batch parsed into `RawValue`s):
    /// fields and limits are then read in one pass, without parsing the
    /// event again. Results and errors are those of `envelope_from_json`;
    /// text that is not valid JSON must not be passed here, as its syntax
    /// errors would go unnoticed.
    pub fn envelope_from_parsed_json(
        &self,
        json: &str,
        limits: &Limits,
    ) -> Result<Envelope, EventError> {
        decode(json, true, self, limits)
    }
}

fn decode(
    json: &str,
    parsed: bool,
    ctx: &IngestContext,
    limits: &Limits,
) -> Result<Envelope, EventError> {
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
    let scanned = if parsed { scan_valid_event(json) } else { None };
    let raw = match scanned {
        Some(fields) => fields,
        None => Fields::from(
            serde_json::from_str::<RawEvent>(json)
                .map_err(|e| EventError::Malformed(e.to_string()))?,
        ),
    };

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
        id if id.is_empty() => uuid::Uuid::now_v7().to_string(),
        id => id,
    };

    Ok(Envelope {
        event_id,
        r#type: kind as i32,
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
        source: Some(ctx.source.clone()),
        collector: Some(ctx.collector.clone()),
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
        let slow = envelope_from_json(json, &ctx, limits);
        let fast = ctx.envelope_from_parsed_json(json, limits);
        match (slow, fast) {
            (Ok(mut slow), Ok(mut fast)) => {
                // Generated ids differ by design.
                if !json.contains("essage") && !json.contains("event_id") {
                    slow.event_id.clear();
                    fast.event_id.clear();
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
            let fields = scan_valid_event(&text).expect("a plain event takes the one pass");
            let measured = [fields.properties, fields.context, fields.traits];
            for (text, shape_seen) in measured.iter().zip(fields.shapes) {
                assert_eq!(text.map(shape), shape_seen, "{text:?}");
            }
            same_both_ways(&event.to_string(), &Limits::default());
            same_both_ways(&serde_json::to_string_pretty(&event).unwrap(), &tight);
        }
    }
}
