//! The aggregated stream record: many envelopes in one Kinesis record, like
//! the Kinesis Producer Library does, so the per-shard limit of 1,000
//! records/s does not cap events/s and each PUT payload unit is filled.
//!
//! Layout: the 4-byte magic `SLR1`, one codec byte, then an `EventBatch`
//! protobuf, compressed by the codec. The magic lets a reader refuse foreign
//! records with a clear error instead of decoding garbage.

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::EventError;
use crate::batch::{entry_len, put_entry_head};
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
    entry_len(envelope.encoded_len())
}

/// Encodes envelopes into one record, compressed with zstd.
pub fn encode_record(events: &[Envelope]) -> Bytes {
    ENCODER.with(|encoder| encoder.borrow_mut().encode(events))
}

/// Makes one record of `EventBatch` bytes, such as a run of
/// [`crate::EncodedEvents`] entries: the same record as [`encode_record`]
/// of the envelopes they hold.
pub fn record_from_batch(batch: &[u8]) -> Bytes {
    ENCODER.with(|encoder| encoder.borrow_mut().compress(batch))
}

thread_local! {
    /// Reused per thread: a compression context costs more to create than
    /// a small record costs to compress, and freeing buffers of records'
    /// size makes the allocator consolidate its free lists every time.
    static ENCODER: RefCell<Encoder> = RefCell::new(Encoder::default());
}

#[derive(Default)]
struct Encoder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    plain: Vec<u8>,
    compressed: Vec<u8>,
    lens: Vec<usize>,
}

impl Encoder {
    fn encode(&mut self, events: &[Envelope]) -> Bytes {
        // Each envelope's length once: for the buffer's size and its prefix
        // (`prost::encoding::message::encode` would compute it again).
        self.lens.clear();
        self.lens.extend(events.iter().map(Message::encoded_len));
        let batch_len: usize = self.lens.iter().map(|&len| entry_len(len)).sum();
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        plain.reserve(batch_len);
        for (event, &len) in events.iter().zip(&self.lens) {
            put_entry_head(len, &mut plain);
            event.encode_raw(&mut plain);
        }
        debug_assert_eq!(plain.len(), batch_len);
        let record = self.compress(&plain);
        // A one-off huge record does not stay pinned in every thread.
        if plain.capacity() <= KEEP_BUFFER_BYTES {
            self.plain = plain;
        }
        record
    }

    fn compress(&mut self, plain: &[u8]) -> Bytes {
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            none => none.insert(
                zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context at a valid level"),
            ),
        };
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(plain.len()));
        compressor
            .compress_to_buffer(plain, &mut self.compressed)
            .expect("zstd compression of a buffer in memory");
        let mut out = BytesMut::with_capacity(MAGIC.len() + 1 + self.compressed.len());
        out.put_slice(MAGIC);
        out.put_u8(CODEC_ZSTD);
        out.put_slice(&self.compressed);
        if self.compressed.capacity() > KEEP_BUFFER_BYTES {
            self.compressed = Vec::new();
        }
        out.freeze()
    }
}

/// Buffers up to this size are kept for the next record.
const KEEP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Decodes a record written by [`encode_record`].
pub fn decode_record(record: &[u8]) -> Result<Vec<Envelope>, EventError> {
    let mut scratch = Vec::new();
    let batch = record_batch(record, &mut scratch)?;
    EventBatch::decode(batch)
        .map(|b| b.events)
        .map_err(|e| EventError::Record(format!("protobuf: {e}")))
}

/// The `EventBatch` bytes of a record written by [`encode_record`]:
/// decompressed into `scratch` (reused from record to record) when the
/// record is compressed, else borrowed from `record`.
pub fn record_batch<'a>(
    record: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], EventError> {
    let Some(rest) = record.strip_prefix(MAGIC.as_slice()) else {
        return Err(EventError::Record("not a Sluice record (bad magic)".into()));
    };
    let (&codec, payload) = rest
        .split_first()
        .ok_or_else(|| EventError::Record("truncated header".into()))?;
    match codec {
        CODEC_NONE => Ok(payload),
        CODEC_ZSTD => {
            decompress(payload, scratch)?;
            Ok(scratch)
        }
        other => Err(EventError::Record(format!("unknown codec {other}"))),
    }
}

/// Decompresses one zstd frame into `out`, sized from the frame header's
/// content size (which [`encode_record`] always writes) so that no more
/// than the batch is allocated, and never over the limit.
fn decompress(frame: &[u8], out: &mut Vec<u8>) -> Result<(), EventError> {
    let zstd_error = |e: &dyn std::fmt::Display| EventError::Record(format!("zstd: {e}"));
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => usize::try_from(size).unwrap_or(usize::MAX),
        Ok(None) => MAX_DECODED_RECORD_BYTES,
        Err(_) => return Err(zstd_error(&"not a zstd frame")),
    };
    if size > MAX_DECODED_RECORD_BYTES {
        return Err(EventError::Record(format!(
            "zstd: decompresses to {size} bytes, over the limit of {MAX_DECODED_RECORD_BYTES}"
        )));
    }
    out.clear();
    out.reserve(size);
    zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(frame, out))
        .map_err(|e| zstd_error(&e))?;
    Ok(())
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
