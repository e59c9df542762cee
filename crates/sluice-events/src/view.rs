//! Envelopes read in place from a record's `EventBatch` bytes: every text
//! field borrows from the batch, so reading a record allocates nothing per
//! event. This is the transcoder's hot path; [`crate::decode_record`], which
//! builds owned [`Envelope`](crate::proto::Envelope)s, serves everything else.
//!
//! The wire format is protobuf's, read the way prost reads it: fields in any
//! order, the last occurrence of a scalar wins, unknown fields are skipped,
//! a wrong wire type or invalid UTF-8 is an error.

use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use crate::EventError;
use crate::proto::{CollectorMeta, EventType, Source};
use crate::tag;

/// An [`Envelope`](crate::proto::Envelope) whose text borrows from the batch it was read from.
/// Fields have the same names and meaning as in `event.proto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvelopeView<'a> {
    pub event_id: &'a str,
    pub r#type: i32,
    pub event: &'a str,
    pub user_id: &'a str,
    pub anonymous_id: &'a str,
    pub timestamp_us: i64,
    pub sent_at_us: i64,
    pub received_at_us: i64,
    pub properties_json: &'a str,
    pub context_json: &'a str,
    pub traits_json: &'a str,
    pub name: &'a str,
    pub group_id: &'a str,
    pub previous_id: &'a str,
    /// The encoded `source` and `collector` messages, decoded on demand.
    source: &'a [u8],
    collector: &'a [u8],
}

impl<'a> EnvelopeView<'a> {
    /// The event type, `Unspecified` for a value this build does not know.
    pub fn event_type(&self) -> EventType {
        EventType::try_from(self.r#type).unwrap_or(EventType::Unspecified)
    }

    /// The source, or `None` when absent or undecodable.
    pub fn source(&self) -> Option<Source> {
        (!self.source.is_empty())
            .then(|| Source::decode(self.source).ok())
            .flatten()
    }

    /// The collector's metadata, or `None` when absent or undecodable.
    pub fn collector(&self) -> Option<CollectorMeta> {
        (!self.collector.is_empty())
            .then(|| CollectorMeta::decode(self.collector).ok())
            .flatten()
    }

    fn read(mut buf: &'a [u8]) -> Result<Self, EventError> {
        let mut view = EnvelopeView::default();
        while buf.has_remaining() {
            let (field, wire_type) = decode_key(&mut buf).map_err(protobuf)?;
            match field {
                tag::EVENT_ID => view.event_id = text(wire_type, &mut buf)?,
                tag::TYPE => view.r#type = varint(wire_type, &mut buf)? as i32,
                tag::EVENT => view.event = text(wire_type, &mut buf)?,
                tag::USER_ID => view.user_id = text(wire_type, &mut buf)?,
                tag::ANONYMOUS_ID => view.anonymous_id = text(wire_type, &mut buf)?,
                tag::TIMESTAMP_US => view.timestamp_us = varint(wire_type, &mut buf)? as i64,
                tag::SENT_AT_US => view.sent_at_us = varint(wire_type, &mut buf)? as i64,
                tag::RECEIVED_AT_US => view.received_at_us = varint(wire_type, &mut buf)? as i64,
                tag::PROPERTIES_JSON => view.properties_json = text(wire_type, &mut buf)?,
                tag::CONTEXT_JSON => view.context_json = text(wire_type, &mut buf)?,
                tag::TRAITS_JSON => view.traits_json = text(wire_type, &mut buf)?,
                tag::NAME => view.name = text(wire_type, &mut buf)?,
                tag::GROUP_ID => view.group_id = text(wire_type, &mut buf)?,
                tag::PREVIOUS_ID => view.previous_id = text(wire_type, &mut buf)?,
                tag::SOURCE => view.source = bytes(wire_type, &mut buf)?,
                tag::COLLECTOR => view.collector = bytes(wire_type, &mut buf)?,
                _ => skip_field(wire_type, field, &mut buf, DecodeContext::default())
                    .map_err(protobuf)?,
            }
        }
        Ok(view)
    }
}

// Errors are rare: made out of line, so that the field readers below stay
// small.
#[cold]
#[inline(never)]
fn protobuf(error: impl std::fmt::Display) -> EventError {
    EventError::Record(format!("protobuf: {error}"))
}

fn check(expected: WireType, actual: WireType) -> Result<(), EventError> {
    if expected == actual {
        Ok(())
    } else {
        Err(protobuf(format_args!(
            "invalid wire type: {actual:?} (expected {expected:?})"
        )))
    }
}

// The field readers are forced inline into the loop over an envelope's
// fields, which the compiler does not do by itself for a dozen call
// sites: for fields this short the calls cost as much as the reading.
#[inline(always)]
fn varint(wire_type: WireType, buf: &mut &[u8]) -> Result<u64, EventError> {
    check(WireType::Varint, wire_type)?;
    decode_varint(buf).map_err(protobuf)
}

#[inline(always)]
fn bytes<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], EventError> {
    check(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf).map_err(protobuf)?;
    if len > buf.len() as u64 {
        return Err(protobuf("buffer underflow"));
    }
    let (value, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(value)
}

#[inline(always)]
fn text<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Result<&'a str, EventError> {
    std::str::from_utf8(bytes(wire_type, buf)?)
        .map_err(|_| protobuf("invalid string value: data is not UTF-8 encoded"))
}

/// Reads every envelope of an `EventBatch` (see [`crate::record_batch`]);
/// one bad envelope fails the whole batch, as decoding it with prost does.
pub fn envelope_views(mut batch: &[u8]) -> Result<Vec<EnvelopeView<'_>>, EventError> {
    let mut views = Vec::new();
    while batch.has_remaining() {
        let (field, wire_type) = decode_key(&mut batch).map_err(protobuf)?;
        if field == tag::BATCH_EVENTS {
            views.push(EnvelopeView::read(bytes(wire_type, &mut batch)?)?);
        } else {
            skip_field(wire_type, field, &mut batch, DecodeContext::default()).map_err(protobuf)?;
        }
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Envelope, EventBatch};

    /// What prost would have decoded, from the view.
    fn owned(view: &EnvelopeView<'_>) -> Envelope {
        Envelope {
            event_id: view.event_id.to_owned(),
            r#type: view.r#type,
            event: view.event.to_owned(),
            user_id: view.user_id.to_owned(),
            anonymous_id: view.anonymous_id.to_owned(),
            timestamp_us: view.timestamp_us,
            sent_at_us: view.sent_at_us,
            received_at_us: view.received_at_us,
            properties_json: view.properties_json.to_owned(),
            context_json: view.context_json.to_owned(),
            traits_json: view.traits_json.to_owned(),
            name: view.name.to_owned(),
            group_id: view.group_id.to_owned(),
            previous_id: view.previous_id.to_owned(),
            source: view.source(),
            collector: view.collector(),
        }
    }

    fn envelope(i: usize) -> Envelope {
        Envelope {
            event_id: format!("id-{i}"),
            r#type: EventType::Track as i32,
            event: "Vidéo Played".into(),
            user_id: format!("user-{i}"),
            anonymous_id: "anon".into(),
            timestamp_us: 1_714_564_800_000_000 + i as i64,
            sent_at_us: -5,
            received_at_us: 1_714_564_800_000_123,
            properties_json: format!(r#"{{"n":{i}}}"#),
            context_json: r#"{"ip":"10.0.0.1"}"#.into(),
            traits_json: String::new(),
            name: "home".into(),
            group_id: "g".into(),
            previous_id: "p".into(),
            source: Some(Source {
                name: "web".into(),
                write_key: "k".into(),
            }),
            collector: Some(CollectorMeta {
                protocol: "segment".into(),
                host: "c-1".into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn reads_what_prost_reads() {
        let events: Vec<_> = (0..20).map(envelope).collect();
        let batch = EventBatch {
            events: events.clone(),
        }
        .encode_to_vec();
        let views = envelope_views(&batch).unwrap();
        let read: Vec<Envelope> = views.iter().map(owned).collect();
        assert_eq!(read, events);
    }

    #[test]
    fn skips_unknown_fields_and_keeps_the_last_scalar() {
        let mut batch = EventBatch {
            events: vec![envelope(1)],
        }
        .encode_to_vec();
        // Field 1 of the batch is the envelope; append to it, by hand, an
        // unknown field 99 (varint 7) and event_id again: "last".
        let extra = [&[0x98, 0x06, 7][..], &[0x0a, 4], b"last"].concat();
        let mut envelope_bytes = envelope(1).encode_to_vec();
        envelope_bytes.extend_from_slice(&extra);
        batch.clear();
        prost::encoding::encode_key(1, WireType::LengthDelimited, &mut batch);
        prost::encoding::encode_varint(envelope_bytes.len() as u64, &mut batch);
        batch.extend_from_slice(&envelope_bytes);
        let views = envelope_views(&batch).unwrap();
        let expected = EventBatch::decode(batch.as_slice()).unwrap().events;
        assert_eq!(views[0].event_id, "last");
        assert_eq!(owned(&views[0]), expected[0]);
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let good = EventBatch {
            events: vec![envelope(1)],
        }
        .encode_to_vec();
        let truncated = &good[..good.len() - 3];
        let mut bad_utf8 = good.clone();
        let at = bad_utf8
            .windows(4)
            .position(|w| w == b"anon")
            .expect("anonymous_id is in the batch");
        bad_utf8[at] = 0xff;
        // event_id (field 1) sent as a varint.
        let wrong_wire_type = [0x0a, 0x02, 0x08, 0x01];
        for bytes in [truncated, &bad_utf8[..], &wrong_wire_type[..]] {
            assert!(EventBatch::decode(bytes).is_err());
            let error = envelope_views(bytes).unwrap_err().to_string();
            assert!(error.contains("protobuf"), "{error}");
        }
    }
}
