//! Cutting an event object into its top-level fields: one hand-written pass
//! that also checks the JSON grammar (the hot path), or serde's `RawValue`s
//! for what that pass leaves to serde, and for serde's error messages.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::grammar::{object_members, skip_ws, value_end};
use crate::limits::Shape;

/// The fields an event may have. `event_fields` matches the same names
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
#[derive(Clone, Debug, Default)]
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
    /// Segment's `writeKey`, which a single event may carry in its body;
    /// only the one pass takes it (serde's path reads it on its own).
    pub(super) write_key: Option<&'a str>,
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
            write_key: None,
            shapes: [None; 3],
        }
    }
}

/// One pass over the event object at `start` of `text`: its top-level
/// fields, spans identical to serde's `RawValue`s, the shapes of its object
/// fields, and the offset just past it. The pass checks the grammar as
/// strictly as serde_json does, so an answer means valid JSON. `None` is
/// invalid JSON or what the serde path must decide (an escaped key, a
/// repeated field), so errors come from exactly the code that produced them
/// before.
pub(super) fn event_fields(text: &str, start: usize) -> Option<(Fields<'_>, usize)> {
    let b = text.as_bytes();
    let mut fields = Fields::default();
    let end = object_members(text, start, |key, i| {
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
            "writeKey" => (Some(&mut fields.write_key), None),
            _ => (None, None),
        };
        let (shape, end) = value_end(b, i)?;
        if let Some(slot) = slot {
            if slot.is_some() {
                return None;
            }
            *slot = Some(text.get(i..end)?);
        }
        if let Some(k) = shape_slot {
            fields.shapes[k] = Some(shape);
        }
        Some(end)
    })?;
    Some((fields, end))
}

/// [`event_fields`] of a text that is one event object.
pub(super) fn scan_event(json: &str) -> Option<Fields<'_>> {
    let b = json.as_bytes();
    let (fields, end) = event_fields(json, skip_ws(b, 0))?;
    (skip_ws(b, end) == b.len()).then_some(fields)
}
