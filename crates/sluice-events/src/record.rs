//! The aggregated stream record: many envelopes in one Kinesis record, like
//! the Kinesis Producer Library does, so the per-shard limit of 1,000
//! records/s does not cap events/s and each PUT payload unit is filled.
//!
//! Layout: the 4-byte magic `SLR1`, one codec byte, then an `EventBatch`
//! protobuf, compressed by the codec. The magic lets a reader refuse foreign
//! records with a clear error instead of decoding garbage.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::EventError;
use crate::proto::{Envelope, EventBatch};

const MAGIC: &[u8; 4] = b"SLR1";
const CODEC_NONE: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// Fast level: the collector compresses on its hot path, and the archiver
/// compresses its objects again at a higher level.
const ZSTD_LEVEL: i32 = 1;
/// Decompressed batches larger than this are refused, so a hostile record
/// cannot make a reader allocate without bound.
pub const MAX_DECODED_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Bytes an envelope adds to an [`EventBatch`] before compression: what a
/// producer sums to decide when a record is full.
pub fn encoded_len_in_batch(envelope: &Envelope) -> usize {
    let len = envelope.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// Encodes envelopes into one record, compressed with zstd.
pub fn encode_record(events: &[Envelope]) -> Bytes {
    let batch_len: usize = events.iter().map(encoded_len_in_batch).sum();
    let mut plain = Vec::with_capacity(batch_len);
    for event in events {
        // Field 1 of EventBatch, repeated: same bytes as encoding the batch.
        prost::encoding::message::encode(1, event, &mut plain);
    }
    let compressed =
        zstd::bulk::compress(&plain, ZSTD_LEVEL).expect("zstd compression of a buffer in memory");
    let mut out = BytesMut::with_capacity(MAGIC.len() + 1 + compressed.len());
    out.put_slice(MAGIC);
    out.put_u8(CODEC_ZSTD);
    out.put_slice(&compressed);
    out.freeze()
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record(record: &[u8]) -> Result<Vec<Envelope>, EventError> {
    let Some(rest) = record.strip_prefix(MAGIC.as_slice()) else {
        return Err(EventError::Record("not a Sluice record (bad magic)".into()));
    };
    let (&codec, payload) = rest
        .split_first()
        .ok_or_else(|| EventError::Record("truncated header".into()))?;
    let batch = match codec {
        CODEC_NONE => EventBatch::decode(payload),
        CODEC_ZSTD => {
            let plain = zstd::bulk::decompress(payload, MAX_DECODED_RECORD_BYTES)
                .map_err(|e| EventError::Record(format!("zstd: {e}")))?;
            EventBatch::decode(plain.as_slice())
        }
        other => return Err(EventError::Record(format!("unknown codec {other}"))),
    };
    batch
        .map(|b| b.events)
        .map_err(|e| EventError::Record(format!("protobuf: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(i: usize) -> Envelope {
        Envelope {
            event_id: format!("id-{i}"),
            event: "Video Played".into(),
            properties_json: format!(r#"{{"n":{i},"nested":{{"ok":true}}}}"#),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_many_envelopes() {
        let events: Vec<_> = (0..500).map(envelope).collect();
        let record = encode_record(&events);
        let plain: usize = events.iter().map(encoded_len_in_batch).sum();
        assert_eq!(
            plain,
            EventBatch {
                events: events.clone()
            }
            .encoded_len()
        );
        assert!(record.len() < plain / 3, "{} vs {plain}", record.len());
        assert_eq!(decode_record(&record).unwrap(), events);
    }

    #[test]
    fn refuses_foreign_and_corrupt_records() {
        assert!(
            decode_record(b"{\"json\":true}")
                .unwrap_err()
                .to_string()
                .contains("bad magic")
        );
        assert!(decode_record(b"SLR1").is_err());
        assert!(
            decode_record(b"SLR1\x07abc")
                .unwrap_err()
                .to_string()
                .contains("unknown codec 7")
        );
        let mut record = encode_record(&[envelope(1)]).to_vec();
        record.truncate(record.len() - 3);
        assert!(decode_record(&record).is_err());
    }
}
