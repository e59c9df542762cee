//! Raw archive objects: what the stream-archiver writes to `raw/` and the
//! transcoder reads. See `proto/sluice/v1/archive.proto` for the layout.

use std::io::Write;

use prost::Message;

use crate::EventError;
use crate::proto::{ArchiveHeader, ArchivedRecord};

const MAGIC: &[u8; 4] = b"SLA1";
/// A good ratio at a cost the archiver can afford: it compresses each byte
/// once, off the client's path.
const ZSTD_LEVEL: i32 = 3;
/// Refuse to inflate an archive beyond this, whatever its frames claim.
pub const MAX_ARCHIVE_DECODED_BYTES: u64 = 1 << 32;

/// Builds one archive object incrementally, compressing records as they are
/// added, so a shard's buffer is held compressed.
pub struct ArchiveWriter {
    encoder: zstd::stream::Encoder<'static, Vec<u8>>,
    frame: Vec<u8>,
    uncompressed_bytes: u64,
}

impl ArchiveWriter {
    pub fn new() -> Self {
        let encoder =
            zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL).expect("zstd encoder over a Vec");
        Self {
            encoder,
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
        self.encoder
            .write_all(&self.frame)
            .expect("writing into a Vec cannot fail");
    }

    /// Bytes of framed records added so far, before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    /// The finished object: magic, header, compressed records.
    pub fn finish(self, header: &ArchiveHeader) -> Vec<u8> {
        let compressed = self
            .encoder
            .finish()
            .expect("finishing zstd into a Vec cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + 64 + compressed.len());
        out.extend_from_slice(MAGIC);
        header
            .encode_length_delimited(&mut out)
            .expect("encoding into a Vec cannot fail");
        out.extend_from_slice(&compressed);
        out
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
