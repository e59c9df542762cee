//! Raw archive objects: what the stream-archiver writes to `raw/` and the
//! transcoder reads. See `proto/sluice/v1/archive.proto` for the layout.

use bytes::Bytes;
use prost::Message;
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};

use crate::EventError;
use crate::proto::{ArchiveHeader, ArchivedRecord};

const MAGIC: &[u8; 4] = b"SLA1";
/// A good ratio at a cost the archiver can afford: it compresses each byte
/// once, off the client's path.
const ZSTD_LEVEL: i32 = 3;
/// Refuse to inflate an archive beyond this, whatever its frames claim.
pub const MAX_ARCHIVE_DECODED_BYTES: u64 = 1 << 32;
/// Room left in front of the compressed records for the magic and the
/// header, which is only known at the end: finishing then writes the header
/// into it instead of copying a 64 MiB object behind it. A header is about
/// 100 bytes, 450 with Kinesis' longest names and sequence numbers; a longer
/// one still works, at the cost of that copy.
const HEADER_ROOM: usize = 512;
/// Free room the compressor is always given in the output, so that every
/// call makes progress (zstd's recommended output chunk).
const OUT_ROOM: usize = 1 << 17;

/// Builds one archive object incrementally, compressing records as they are
/// added, so a shard's buffer is held compressed. The output starts with
/// `HEADER_ROOM` bytes kept for the header.
pub struct ArchiveWriter {
    /// Compresses straight into `out`, with no staging buffer in between.
    encoder: Encoder<'static>,
    out: Vec<u8>,
    frame: Vec<u8>,
    uncompressed_bytes: u64,
}

impl ArchiveWriter {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Reserves `capacity` bytes of compressed records up front, so the
    /// buffer never grows by copying itself (reserved pages that are never
    /// written cost no memory).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(HEADER_ROOM + capacity))
    }

    /// Builds the object in `buffer`, emptied first: a buffer kept from an
    /// earlier object is reused with its pages already mapped.
    pub fn with_buffer(mut out: Vec<u8>) -> Self {
        out.clear();
        out.resize(HEADER_ROOM, 0);
        Self {
            encoder: Encoder::new(ZSTD_LEVEL).expect("zstd encoder"),
            out,
            frame: Vec::new(),
            uncompressed_bytes: 0,
        }
    }

    pub fn push(&mut self, record: &ArchivedRecord) {
        self.frame.clear();
        record
            .encode_length_delimited(&mut self.frame)
            .expect("encoding into a Vec cannot fail");
        self.uncompressed_bytes += self.frame.len() as u64;
        compress(&mut self.encoder, &mut self.out, &self.frame);
    }

    /// [`ArchiveWriter::push`] from borrowed fields: the same bytes, without
    /// building an `ArchivedRecord` (which would copy `data` into it) or
    /// framing `data` before compressing it. Only the few bytes in front of
    /// `data` are framed; `data` goes to the compressor as it is.
    pub fn push_parts(
        &mut self,
        sequence_number: &str,
        arrival_us: i64,
        partition_key: &str,
        data: &[u8],
    ) {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

        // Proto3 as prost encodes it: fields in number order, defaults left out.
        let delimited = |len: usize| 1 + encoded_len_varint(len as u64) + len;
        let mut body_len = 0;
        if !sequence_number.is_empty() {
            body_len += delimited(sequence_number.len());
        }
        if arrival_us != 0 {
            body_len += 1 + encoded_len_varint(arrival_us as u64);
        }
        if !partition_key.is_empty() {
            body_len += delimited(partition_key.len());
        }
        if !data.is_empty() {
            body_len += delimited(data.len());
        }
        let frame = &mut self.frame;
        frame.clear();
        encode_varint(body_len as u64, frame);
        if !sequence_number.is_empty() {
            encode_key(1, WireType::LengthDelimited, frame);
            encode_varint(sequence_number.len() as u64, frame);
            frame.extend_from_slice(sequence_number.as_bytes());
        }
        if arrival_us != 0 {
            encode_key(2, WireType::Varint, frame);
            encode_varint(arrival_us as u64, frame);
        }
        if !partition_key.is_empty() {
            encode_key(3, WireType::LengthDelimited, frame);
            encode_varint(partition_key.len() as u64, frame);
            frame.extend_from_slice(partition_key.as_bytes());
        }
        if !data.is_empty() {
            encode_key(4, WireType::LengthDelimited, frame);
            encode_varint(data.len() as u64, frame);
        }
        self.uncompressed_bytes += (frame.len() + data.len()) as u64;
        compress(&mut self.encoder, &mut self.out, frame);
        compress(&mut self.encoder, &mut self.out, data);
    }

    /// Bytes of framed records added so far, before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    /// The finished object: magic, header, compressed records.
    pub fn finish(self, header: &ArchiveHeader) -> Vec<u8> {
        // Moves the object to the start of its own buffer, no new allocation.
        self.finish_bytes(header).into()
    }

    /// [`ArchiveWriter::finish`] without moving the records: the magic and
    /// header are written into the room in front of them.
    pub fn finish_bytes(self, header: &ArchiveHeader) -> Bytes {
        let (out, start) = self.finish_in_place(header);
        Bytes::from(out).slice(start..)
    }

    /// [`ArchiveWriter::finish_bytes`] as the buffer and where the object
    /// starts in it (`buffer[start..]`), so the caller can keep the buffer
    /// for the next object.
    pub fn finish_in_place(self, header: &ArchiveHeader) -> (Vec<u8>, usize) {
        let Self {
            mut encoder,
            mut out,
            ..
        } = self;
        loop {
            make_room(&mut out);
            let pos = out.len();
            let left = encoder
                .finish(&mut OutBuffer::around_pos(&mut out, pos), true)
                .expect("finishing zstd in memory cannot fail");
            if left == 0 {
                break;
            }
        }
        let len = header.encoded_len();
        let mut head = Vec::with_capacity(MAGIC.len() + prost::length_delimiter_len(len) + len);
        head.extend_from_slice(MAGIC);
        header
            .encode_length_delimited(&mut head)
            .expect("encoding into a Vec cannot fail");
        match HEADER_ROOM.checked_sub(head.len()) {
            Some(start) => {
                out[start..HEADER_ROOM].copy_from_slice(&head);
                (out, start)
            }
            None => {
                head.extend_from_slice(&out[HEADER_ROOM..]);
                (head, 0)
            }
        }
    }
}

/// Compresses `data` onto the end of `out`, growing it only when it lacks
/// [`OUT_ROOM`].
fn compress(encoder: &mut Encoder<'static>, out: &mut Vec<u8>, data: &[u8]) {
    let mut input = InBuffer::around(data);
    while input.pos() < data.len() {
        make_room(out);
        let pos = out.len();
        encoder
            .run(&mut input, &mut OutBuffer::around_pos(out, pos))
            .expect("zstd compression in memory cannot fail");
    }
}

fn make_room(out: &mut Vec<u8>) {
    if out.capacity() - out.len() < OUT_ROOM {
        out.reserve(OUT_ROOM);
    }
}

impl Default for ArchiveWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads only the header of an archive object.
pub fn decode_archive_header(object: &[u8]) -> Result<(ArchiveHeader, &[u8]), EventError> {
    let mut rest = object
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| EventError::Record("not a Sluice archive (bad magic)".into()))?;
    let header = ArchiveHeader::decode_length_delimited(&mut rest)
        .map_err(|e| EventError::Record(format!("archive header: {e}")))?;
    Ok((header, rest))
}

/// Decodes a whole archive object, checking that the records match the
/// header's count and sequence range.
pub fn decode_archive(object: &[u8]) -> Result<(ArchiveHeader, Vec<ArchivedRecord>), EventError> {
    use std::io::Read;

    let (header, compressed) = decode_archive_header(object)?;
    let mut plain = Vec::new();
    zstd::stream::Decoder::new(compressed)
        .map_err(|e| EventError::Record(format!("archive zstd: {e}")))?
        .take(MAX_ARCHIVE_DECODED_BYTES)
        .read_to_end(&mut plain)
        .map_err(|e| EventError::Record(format!("archive zstd: {e}")))?;
    let mut buf = plain.as_slice();
    let mut records = Vec::with_capacity(header.record_count as usize);
    while !buf.is_empty() {
        let record = ArchivedRecord::decode_length_delimited(&mut buf)
            .map_err(|e| EventError::Record(format!("archive record {}: {e}", records.len())))?;
        records.push(record);
    }
    if records.len() as u64 != header.record_count {
        return Err(EventError::Record(format!(
            "archive holds {} records, its header says {}",
            records.len(),
            header.record_count
        )));
    }
    let (first, last) = (records.first(), records.last());
    if first.map(|r| r.sequence_number.as_str()) != Some(header.first_sequence.as_str())
        || last.map(|r| r.sequence_number.as_str()) != Some(header.last_sequence.as_str())
    {
        return Err(EventError::Record(
            "archive records do not match the header's sequence range".into(),
        ));
    }
    Ok((header, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u32) -> ArchivedRecord {
        ArchivedRecord {
            sequence_number: seq.to_string(),
            arrival_us: 1_700_000_000_000_000 + i64::from(seq),
            partition_key: format!("pk-{seq}"),
            data: vec![seq as u8; 100],
        }
    }

    fn header(first: u32, last: u32, count: u64) -> ArchiveHeader {
        ArchiveHeader {
            stream: "events".into(),
            shard_id: "shardId-000000000001".into(),
            first_sequence: first.to_string(),
            last_sequence: last.to_string(),
            record_count: count,
            created_at_us: 1,
        }
    }

    #[test]
    fn round_trips_and_compresses() {
        let mut writer = ArchiveWriter::new();
        let records: Vec<_> = (10..1010).map(record).collect();
        records.iter().for_each(|r| writer.push(r));
        assert!(writer.uncompressed_bytes() > 100_000);
        let object = writer.finish(&header(10, 1009, 1000));
        assert!(object.len() < 50_000, "{}", object.len());
        let (h, decoded) = decode_archive(&object).unwrap();
        assert_eq!(h, header(10, 1009, 1000));
        assert_eq!(decoded, records);
        assert_eq!(decode_archive_header(&object).unwrap().0, h);

        // Pre-sized, and finished in place: the same bytes.
        let mut presized = ArchiveWriter::with_capacity(1 << 20);
        records.iter().for_each(|r| presized.push(r));
        assert_eq!(presized.finish_bytes(&header(10, 1009, 1000)), object);
    }

    #[test]
    fn pushing_parts_frames_like_prost() {
        let mut records: Vec<_> = (10..300).map(record).collect();
        records.push(ArchivedRecord::default());
        records.push(ArchivedRecord {
            arrival_us: -5,
            data: vec![1; 300],
            ..Default::default()
        });
        records.push(ArchivedRecord {
            sequence_number: "s".repeat(200),
            partition_key: "k".repeat(256),
            ..Default::default()
        });
        let (mut whole, mut parts) = (ArchiveWriter::new(), ArchiveWriter::with_buffer(vec![9; 7]));
        for r in &records {
            whole.push(r);
            parts.push_parts(&r.sequence_number, r.arrival_us, &r.partition_key, &r.data);
        }
        assert_eq!(whole.uncompressed_bytes(), parts.uncompressed_bytes());
        let header = header(10, 299, records.len() as u64);
        let (buffer, start) = parts.finish_in_place(&header);
        assert_eq!(whole.finish(&header), buffer[start..]);
    }

    #[test]
    fn headers_longer_than_their_room_still_round_trip() {
        let mut long = header(1, 3, 3);
        long.stream = "s".repeat(2 * HEADER_ROOM);
        let records: Vec<_> = (1..=3).map(record).collect();
        for capacity in [0, 1 << 16] {
            let mut writer = ArchiveWriter::with_capacity(capacity);
            records.iter().for_each(|r| writer.push(r));
            let object = writer.finish_bytes(&long);
            assert_eq!(
                decode_archive(&object).unwrap(),
                (long.clone(), records.clone())
            );
        }
    }

    #[test]
    fn refuses_inconsistent_archives() {
        let mut writer = ArchiveWriter::new();
        writer.push(&record(1));
        let object = writer.finish(&header(1, 1, 2));
        assert!(
            decode_archive(&object)
                .unwrap_err()
                .to_string()
                .contains("header says 2")
        );

        let mut writer = ArchiveWriter::new();
        writer.push(&record(1));
        let object = writer.finish(&header(1, 5, 1));
        assert!(decode_archive(&object).is_err());
        assert!(
            decode_archive(b"SLR1....")
                .unwrap_err()
                .to_string()
                .contains("bad magic")
        );
        let mut truncated = ArchiveWriter::new();
        (1..100).for_each(|s| truncated.push(&record(s)));
        let mut object = truncated.finish(&header(1, 99, 99));
        object.truncate(object.len() - 10);
        assert!(decode_archive(&object).is_err());
    }
}
