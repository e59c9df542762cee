//! An envelope whose text fields borrow the request body they were read
//! from: what decoding an event makes, so that the collector encodes an
//! accepted event straight from the client's bytes instead of copying its
//! ids and JSON objects into owned strings first and encoding those.

use std::borrow::Cow;

use prost::encoding::{WireType, encode_varint, encoded_len_varint, key_len};

use crate::proto::{Envelope, EventType};
use crate::tag;

/// An [`Envelope`] without `source` and `collector` (those belong to the
/// whole request; [`crate::EncodedEvents`] adds them). Text fields are
/// borrowed, or owned where the client escaped them and they had to be
/// decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BorrowedEnvelope<'a> {
    pub event_id: Cow<'a, str>,
    pub kind: EventType,
    pub event: Cow<'a, str>,
    pub user_id: Cow<'a, str>,
    pub anonymous_id: Cow<'a, str>,
    pub timestamp_us: i64,
    pub sent_at_us: i64,
    pub received_at_us: i64,
    pub properties_json: &'a str,
    pub context_json: &'a str,
    pub traits_json: &'a str,
    pub name: Cow<'a, str>,
    pub group_id: Cow<'a, str>,
    pub previous_id: Cow<'a, str>,
}

/// Proto3 leaves default values out: an empty string, a zero number.
fn string_len(tag: u32, text: &str) -> usize {
    match text.len() {
        0 => 0,
        len => key_len(tag) + encoded_len_varint(len as u64) + len,
    }
}

fn encode_string(tag: u32, text: &str, buf: &mut Vec<u8>) {
    if !text.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        put_varint(text.len() as u64, buf);
        buf.extend_from_slice(text.as_bytes());
    }
}

/// prost's `encode_varint`, with the one-byte case (every key here, most
/// ids' lengths) first: it writes through `BufMut`, which costs more than
/// the byte it writes.
#[inline]
pub(crate) fn put_varint(value: u64, buf: &mut Vec<u8>) {
    match value {
        0..0x80 => buf.push(value as u8),
        _ => encode_varint(value, buf),
    }
}

/// A field's key: its tag and wire type, one byte for tags below 16.
#[inline]
pub(crate) fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// An `int64` (or enum) is its two's complement as a varint, as prost
/// writes it: ten bytes when negative.
fn int_len(tag: u32, value: i64) -> usize {
    match value {
        0 => 0,
        value => key_len(tag) + encoded_len_varint(value as u64),
    }
}

fn encode_int(tag: u32, value: i64, buf: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        put_varint(value as u64, buf);
    }
}

impl BorrowedEnvelope<'_> {
    /// Bytes of [`Self::encode_raw`]: what prost's `encoded_len` gives for
    /// the same envelope.
    pub fn encoded_len(&self) -> usize {
        string_len(tag::EVENT_ID, &self.event_id)
            + int_len(tag::TYPE, self.kind as i64)
            + string_len(tag::EVENT, &self.event)
            + string_len(tag::USER_ID, &self.user_id)
            + string_len(tag::ANONYMOUS_ID, &self.anonymous_id)
            + int_len(tag::TIMESTAMP_US, self.timestamp_us)
            + int_len(tag::SENT_AT_US, self.sent_at_us)
            + int_len(tag::RECEIVED_AT_US, self.received_at_us)
            + string_len(tag::PROPERTIES_JSON, self.properties_json)
            + string_len(tag::CONTEXT_JSON, self.context_json)
            + string_len(tag::TRAITS_JSON, self.traits_json)
            + string_len(tag::NAME, &self.name)
            + string_len(tag::GROUP_ID, &self.group_id)
            + string_len(tag::PREVIOUS_ID, &self.previous_id)
    }

    /// The fields as prost writes the same [`Envelope`]'s (in tag order,
    /// defaults left out), so the bytes decode as one.
    pub fn encode_raw(&self, buf: &mut Vec<u8>) {
        encode_string(tag::EVENT_ID, &self.event_id, buf);
        encode_int(tag::TYPE, self.kind as i64, buf);
        encode_string(tag::EVENT, &self.event, buf);
        encode_string(tag::USER_ID, &self.user_id, buf);
        encode_string(tag::ANONYMOUS_ID, &self.anonymous_id, buf);
        encode_int(tag::TIMESTAMP_US, self.timestamp_us, buf);
        encode_int(tag::SENT_AT_US, self.sent_at_us, buf);
        encode_int(tag::RECEIVED_AT_US, self.received_at_us, buf);
        encode_string(tag::PROPERTIES_JSON, self.properties_json, buf);
        encode_string(tag::CONTEXT_JSON, self.context_json, buf);
        encode_string(tag::TRAITS_JSON, self.traits_json, buf);
        encode_string(tag::NAME, &self.name, buf);
        encode_string(tag::GROUP_ID, &self.group_id, buf);
        encode_string(tag::PREVIOUS_ID, &self.previous_id, buf);
    }

    /// The owned envelope, `source` and `collector` unset.
    pub fn to_envelope(&self) -> Envelope {
        Envelope {
            event_id: self.event_id.clone().into_owned(),
            r#type: self.kind as i32,
            event: self.event.clone().into_owned(),
            user_id: self.user_id.clone().into_owned(),
            anonymous_id: self.anonymous_id.clone().into_owned(),
            timestamp_us: self.timestamp_us,
            sent_at_us: self.sent_at_us,
            received_at_us: self.received_at_us,
            properties_json: self.properties_json.to_owned(),
            context_json: self.context_json.to_owned(),
            traits_json: self.traits_json.to_owned(),
            name: self.name.clone().into_owned(),
            group_id: self.group_id.clone().into_owned(),
            previous_id: self.previous_id.clone().into_owned(),
            source: None,
            collector: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn borrowed(text: &str, number: i64, kind: EventType) -> BorrowedEnvelope<'_> {
        BorrowedEnvelope {
            event_id: Cow::Borrowed(text),
            kind,
            event: Cow::Owned(text.repeat(3)),
            user_id: Cow::Borrowed(""),
            anonymous_id: Cow::Borrowed(text),
            timestamp_us: number,
            sent_at_us: number.wrapping_neg(),
            received_at_us: 0,
            properties_json: text,
            context_json: "",
            traits_json: text,
            name: Cow::Borrowed(text),
            group_id: Cow::Borrowed(""),
            previous_id: Cow::Borrowed(text),
        }
    }

    #[test]
    fn encodes_the_bytes_prost_gives_the_owned_envelope() {
        // Lengths on both sides of the varint steps, numbers of every size
        // and sign, and empty texts left out as prost leaves them out.
        let texts = [
            "",
            "a",
            &"é".repeat(63),
            &"x".repeat(128),
            &"y".repeat(20_000),
        ];
        let numbers = [
            0,
            1,
            127,
            128,
            1_714_564_800_000_000,
            i64::MAX,
            -1,
            i64::MIN,
        ];
        let kinds = [EventType::Unspecified, EventType::Track, EventType::Alias];
        for text in texts {
            for (i, number) in numbers.into_iter().enumerate() {
                let envelope = borrowed(text, number, kinds[i % kinds.len()]);
                let mut bytes = Vec::new();
                envelope.encode_raw(&mut bytes);
                let owned = envelope.to_envelope();
                assert_eq!(bytes, owned.encode_to_vec(), "{text:?} {number}");
                assert_eq!(envelope.encoded_len(), bytes.len());
                assert_eq!(Envelope::decode(bytes.as_slice()).unwrap(), owned);
            }
        }
    }
}
