//! One event object in the Segment spec's shape (which RudderStack and
//! Sluice's native API share; snake_case spellings are accepted too) into an
//! [`Envelope`]. Nested objects are kept as the client's original JSON text.

use serde::Deserialize;
use serde_json::value::RawValue;

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

fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

/// A string field. Ids may arrive as numbers from some libraries; their
/// text is kept as the id.
fn id_field(
    field: &'static str,
    raw: Option<&RawValue>,
    limits: &Limits,
) -> Result<String, EventError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(String::new());
    };
    let text = match json_kind(raw) {
        "string" => {
            serde_json::from_str::<String>(raw.get()).map_err(|e| EventError::InvalidValue {
                field,
                reason: e.to_string(),
            })?
        }
        "number" => raw.get().to_owned(),
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
    raw: Option<&RawValue>,
    limits: &Limits,
) -> Result<String, EventError> {
    if is_null(raw) {
        return Ok(String::new());
    }
    let raw = raw.expect("checked by is_null");
    match json_kind(raw) {
        "object" => {
            // The event object itself is one level above its fields.
            limits.check_object(field, raw.get(), 1)?;
            Ok(raw.get().to_owned())
        }
        got => Err(EventError::WrongType {
            field,
            expected: "a JSON object",
            got,
        }),
    }
}

fn time_field(field: &'static str, raw: Option<&RawValue>) -> Result<Option<i64>, EventError> {
    if is_null(raw) {
        return Ok(None);
    }
    let raw = raw.expect("checked by is_null");
    match json_kind(raw) {
        "string" => {
            let text: String =
                serde_json::from_str(raw.get()).map_err(|e| EventError::InvalidValue {
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

fn event_type(raw: Option<&RawValue>, default: Option<EventType>) -> Result<EventType, EventError> {
    if is_null(raw) {
        return default.ok_or(EventError::Missing {
            field: "type",
            when: "",
        });
    }
    let raw = raw.expect("checked by is_null");
    let name: String = match json_kind(raw) {
        "string" => serde_json::from_str(raw.get()).unwrap_or_default(),
        got => {
            return Err(EventError::WrongType {
                field: "type",
                expected: "a string",
                got,
            });
        }
    };
    Ok(match name.as_str() {
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
    let raw: RawEvent =
        serde_json::from_str(json).map_err(|e| EventError::Malformed(e.to_string()))?;

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
        properties_json: object_field("properties", raw.properties, limits)?,
        context_json: object_field("context", raw.context, limits)?,
        traits_json: object_field("traits", raw.traits, limits)?,
        name: id_field("name", raw.name, limits)?,
        group_id,
        previous_id,
        source: Some(ctx.source.clone()),
        collector: Some(ctx.collector.clone()),
    })
}
