//! The events of one request, encoded as soon as they are accepted: what a
//! producer packs into records without keeping (and later encoding) every
//! envelope. The request's source and collector metadata are encoded once
//! and appended to each event, rather than copied into every envelope.

use std::sync::Arc;

use prost::encoding::WireType;

use crate::BorrowedEnvelope;
use crate::borrowed::{encode_key, put_varint};
use crate::proto::{CollectorMeta, Source};
use crate::tag;

/// The `source` and `collector` fields an envelope ends with, encoded. They
/// are the same for every request of a client, so a caller may keep them and
/// share them between requests rather than encode them for each. They are
/// the envelope's last fields, so an envelope encoded without them and
/// followed by them has the very bytes prost gives the whole envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedMeta(Arc<[u8]>);

impl EncodedMeta {
    pub fn new(source: &Source, collector: &CollectorMeta) -> Self {
        use prost::encoding::message::{encode, encoded_len};
        // Sized up front: growing it would copy it twice.
        let len = encoded_len(tag::SOURCE, source) + encoded_len(tag::COLLECTOR, collector);
        let mut bytes = Vec::with_capacity(len);
        encode(tag::SOURCE, source, &mut bytes);
        encode(tag::COLLECTOR, collector, &mut bytes);
        Self(bytes.into())
    }
}

/// Bytes an `EventBatch` entry of an envelope of `len` bytes takes: its
/// key (one byte, the field number being below 16), length and envelope.
pub(crate) fn entry_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// Opens an `EventBatch` entry for an envelope of `len` bytes: its key and
/// length, the same bytes prost writes for the batch's repeated field.
pub(crate) fn put_entry_head(len: usize, buf: &mut Vec<u8>) {
    encode_key(tag::BATCH_EVENTS, WireType::LengthDelimited, buf);
    put_varint(len as u64, buf);
}

/// Envelopes as `EventBatch` entries, back to back: the bytes of an
/// `EventBatch` holding them, which [`crate::record_from_batch`] compresses
/// into a record. Any run of whole entries is also such a batch.
#[derive(Debug)]
pub struct EncodedEvents {
    /// The metadata fields every event of this request ends with.
    meta: EncodedMeta,
    bytes: Vec<u8>,
    /// Entries in `bytes`. Their bounds are read back from their heads
    /// rather than kept: a list of them was a second allocation for every
    /// request, most of which hold one event.
    count: usize,
}

impl EncodedEvents {
    /// Room for `events` events of `bytes` bytes in all: the size of their
    /// JSON is a close guess, and growing the buffer would copy it again.
    pub fn with_capacity(meta: EncodedMeta, events: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes + events * meta.0.len()),
            count: 0,
            meta,
        }
    }

    /// Appends a decoded event; it gets this request's `source` and
    /// `collector`.
    pub fn push(&mut self, envelope: &BorrowedEnvelope<'_>) {
        let len = envelope.encoded_len() + self.meta.0.len();
        put_entry_head(len, &mut self.bytes);
        envelope.encode_raw(&mut self.bytes);
        self.bytes.extend_from_slice(&self.meta.0);
        self.count += 1;
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of all entries: what they add to a record before compression.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Each event's entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            // [`Self::push`] wrote every head: a one-byte key, then the
            // length as a varint.
            let mut body = rest.get(1..)?;
            let len = prost::encoding::decode_varint(&mut body)
                .expect("an entry head written by push") as usize;
            let end = rest.len() - body.len() + len;
            let (entry, next) = rest.split_at(end);
            rest = next;
            Some(entry)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    use crate::proto::{Envelope, EventBatch};

    #[test]
    fn entries_are_the_bytes_of_whole_envelopes() {
        let source = Source {
            name: "web".into(),
            write_key: "wk".into(),
        };
        let collector = CollectorMeta {
            protocol: "segment".into(),
            host: "h".into(),
            version: "1".into(),
            client_ip: "203.0.113.9".into(),
        };
        let mut encoded =
            EncodedEvents::with_capacity(EncodedMeta::new(&source, &collector), 1, 10);
        let mut whole = Vec::new();
        for i in 0..3 {
            let properties = "x".repeat(i * 100);
            let bare = BorrowedEnvelope {
                event_id: format!("id-{i}").into(),
                event: "Played".into(),
                properties_json: &properties,
                ..BorrowedEnvelope::default()
            };
            encoded.push(&bare);
            whole.push(Envelope {
                source: Some(source.clone()),
                collector: Some(collector.clone()),
                ..bare.to_envelope()
            });
        }
        let batch = EventBatch { events: whole };
        assert_eq!(encoded.bytes, batch.encode_to_vec());
        assert_eq!(encoded.len(), 3);
        assert_eq!(encoded.byte_len(), batch.encoded_len());
        let record = crate::record_from_batch(&encoded.bytes);
        assert_eq!(crate::decode_record(&record).unwrap(), batch.events);
        // Each entry alone is a batch of its one envelope; the entries' sizes
        // (0, 100 and 200 bytes of properties) take one- and two-byte
        // lengths.
        let entries: Vec<&[u8]> = encoded.entries().collect();
        assert_eq!(entries.len(), 3);
        for (entry, envelope) in entries.iter().zip(&batch.events) {
            assert_eq!(
                EventBatch::decode(*entry).unwrap().events,
                std::slice::from_ref(envelope)
            );
        }
        assert_eq!(entries.concat(), encoded.bytes);
    }
}
