//! Cutting an event object into its top-level fields: serde's `RawValue`s
//! for any input, or one hand-written pass for an event whose batch parse
//! already proved it valid JSON (the collector's hot path).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::limits::{Shape, find_quote_or_backslash, shape_of_value};

/// The fields an event may have. `scan_valid_event` matches the same names
/// (renames and aliases included): keep the two in step.
#[derive(Deserialize)]
pub(super) struct RawEvent<'a> {
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
pub(super) struct Fields<'a> {
    pub(super) message_id: Option<&'a str>,
    pub(super) kind: Option<&'a str>,
    pub(super) event: Option<&'a str>,
    pub(super) user_id: Option<&'a str>,
    pub(super) anonymous_id: Option<&'a str>,
    pub(super) timestamp: Option<&'a str>,
    pub(super) sent_at: Option<&'a str>,
    pub(super) properties: Option<&'a str>,
    pub(super) context: Option<&'a str>,
    pub(super) traits: Option<&'a str>,
    pub(super) name: Option<&'a str>,
    pub(super) group_id: Option<&'a str>,
    pub(super) previous_id: Option<&'a str>,
    /// Shapes of `properties`, `context`, `traits`.
    pub(super) shapes: [Option<Shape>; 3],
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
pub(super) fn scan_valid_event(json: &str) -> Option<Fields<'_>> {
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
