//! A shard's records waiting to become one object, and when to write it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sluice_backends::{SequenceNumber, StreamRecord};
use sluice_events::ArchiveWriter;
use sluice_events::proto::ArchiveHeader;
use sluice_events::time::now_us;

use crate::keys::object_key;

/// Records held for one object, compressed as they arrive (so a 64 MiB
/// object does not hold 64 MiB of memory).
pub(crate) struct ShardBuffer {
    /// Opened by the first record of each object.
    writer: Option<ArchiveWriter>,
    /// Reserved for each object's compressed records: the size limit, so
    /// the buffer of a full object never grows by copying itself.
    object_bytes: usize,
    /// The last object's buffer, back once its put is done and every copy
    /// of its body is dropped: the next object reuses it, pages already
    /// mapped, instead of faulting in a fresh one.
    spare: Spare,
    first: Option<(SequenceNumber, SystemTime)>,
    last: Option<SequenceNumber>,
    records: u64,
    data_bytes: u64,
    /// When the first record was added: the age policy's start.
    opened_at: Option<Instant>,
}

/// A finished object, ready to be claimed and written.
pub(crate) struct SealedObject {
    pub key: String,
    pub first: SequenceNumber,
    pub last: SequenceNumber,
    pub records: u64,
    pub data_bytes: u64,
    /// The object, shared cheaply by write retries.
    pub body: Bytes,
}

impl ShardBuffer {
    pub fn new(object_bytes: usize) -> Self {
        Self {
            writer: None,
            object_bytes,
            spare: Spare::default(),
            first: None,
            last: None,
            records: 0,
            data_bytes: 0,
            opened_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// `now` is the caller's clock, so the age policy is testable.
    pub fn push(&mut self, record: StreamRecord, now: Instant) {
        let arrival_us = record
            .arrival
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        if self.first.is_none() {
            self.first = Some((record.sequence_number.clone(), record.arrival));
            self.opened_at = Some(now);
        }
        self.records += 1;
        self.data_bytes += record.data.len() as u64;
        let writer = self.writer.get_or_insert_with(|| match self.spare.take() {
            Some(buffer) if buffer.capacity() >= self.object_bytes => {
                ArchiveWriter::with_buffer(buffer)
            }
            _ => ArchiveWriter::with_buffer(object_buffer(self.object_bytes)),
        });
        // Framed straight from the record: its data is not copied before
        // the compressor reads it.
        writer.push_parts(
            &record.sequence_number.to_string(),
            arrival_us,
            &record.partition_key,
            &record.data,
        );
        self.last = Some(record.sequence_number);
    }

    /// Frees the last object's buffer if it is back: for a shard caught up
    /// with its stream, which needs no large buffer soon.
    pub fn release_spare(&mut self) {
        drop(self.spare.take());
    }

    /// Bytes of framed records so far, before compression.
    pub fn framed_bytes(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, ArchiveWriter::uncompressed_bytes)
    }

    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Finishes the object and empties the buffer; `None` when empty.
    pub fn seal(&mut self, stream: &str, shard_id: &str) -> Option<SealedObject> {
        let spare = self.spare.clone();
        let taken = std::mem::replace(self, Self::new(self.object_bytes));
        self.spare = spare;
        let ((first, first_arrival), last) = (taken.first?, taken.last?);
        let writer = taken.writer?;
        let header = ArchiveHeader {
            stream: stream.to_owned(),
            shard_id: shard_id.to_owned(),
            first_sequence: first.to_string(),
            last_sequence: last.to_string(),
            record_count: taken.records,
            created_at_us: now_us(),
        };
        Some(SealedObject {
            key: object_key(stream, shard_id, &first, &last, first_arrival),
            body: self.spare.wrap(writer.finish_in_place(&header)),
            first,
            last,
            records: taken.records,
            data_bytes: taken.data_bytes,
        })
    }
}

/// An empty buffer for an object of up to `object_bytes` (plus its header).
fn object_buffer(object_bytes: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(object_bytes + 4096);
    advise_huge_pages(&buffer);
    buffer
}

/// Asks for the buffer to be mapped in 2 MiB pages as it is written: a
/// 64 MiB object then costs 32 page faults instead of 16,384. Only advice;
/// where transparent huge pages are off, nothing changes.
#[cfg(target_os = "linux")]
fn advise_huge_pages(buffer: &Vec<u8>) {
    const HUGE_PAGE: usize = 2 << 20;
    let at = buffer.as_ptr() as usize;
    let (start, end) = (
        at.next_multiple_of(HUGE_PAGE),
        (at + buffer.capacity()) / HUGE_PAGE * HUGE_PAGE,
    );
    if end > start {
        // SAFETY: madvise only changes how the kernel backs these pages,
        // which the buffer owns and nothing else maps; their contents and
        // validity stay the same whether the advice is taken or not.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: &Vec<u8>) {}

/// Where a sealed object's buffer goes back once the object is written.
#[derive(Clone, Default)]
struct Spare(Arc<Mutex<Option<Vec<u8>>>>);

impl Spare {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.take()
    }

    /// The object `buffer[start..]`, as a body that hands `buffer` back here
    /// when its last copy is dropped.
    fn wrap(&self, (buffer, start): (Vec<u8>, usize)) -> Bytes {
        Bytes::from_owner(Returned {
            buffer,
            start,
            spare: self.clone(),
        })
    }
}

struct Returned {
    buffer: Vec<u8>,
    start: usize,
    spare: Spare,
}

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if let Ok(mut spare) = self.spare.0.lock() {
            *spare = Some(std::mem::take(&mut self.buffer));
        }
    }
}

/// Write an object once it is big enough or old enough.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlushPolicy {
    pub max_bytes: u64,
    pub max_age: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlushReason {
    Size,
    Age,
}

impl FlushPolicy {
    pub fn due(&self, buffer: &ShardBuffer, now: Instant) -> Option<FlushReason> {
        let opened_at = buffer.opened_at()?;
        if buffer.framed_bytes() >= self.max_bytes {
            Some(FlushReason::Size)
        } else if now.saturating_duration_since(opened_at) >= self.max_age {
            Some(FlushReason::Age)
        } else {
            None
        }
    }

    /// When the buffer turns old enough, if it holds anything.
    pub fn deadline(&self, buffer: &ShardBuffer) -> Option<Instant> {
        buffer.opened_at().map(|opened| opened + self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn record(seq: u128, size: usize) -> StreamRecord {
        StreamRecord {
            sequence_number: SequenceNumber::from_u128(seq),
            partition_key: format!("pk{seq}"),
            data: Bytes::from(vec![7u8; size]),
            arrival: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seq as u64),
        }
    }

    #[test]
    fn flushes_on_age_measured_from_the_first_record() {
        let policy = FlushPolicy {
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let mut buffer = ShardBuffer::new(1 << 16);
        assert_eq!(
            policy.due(&buffer, t0 + Duration::from_secs(3600)),
            None,
            "empty never flushes"
        );
        assert_eq!(policy.deadline(&buffer), None);
        buffer.push(record(1, 10), t0);
        buffer.push(record(2, 10), t0 + Duration::from_secs(50));
        assert_eq!(policy.due(&buffer, t0 + Duration::from_secs(59)), None);
        assert_eq!(policy.deadline(&buffer), Some(t0 + Duration::from_secs(60)));
        assert_eq!(
            policy.due(&buffer, t0 + Duration::from_secs(60)),
            Some(FlushReason::Age)
        );
        // Sealing restarts the clock at the next record.
        buffer.seal("s", "shard").unwrap();
        buffer.push(record(3, 10), t0 + Duration::from_secs(100));
        assert_eq!(policy.due(&buffer, t0 + Duration::from_secs(159)), None);
        assert_eq!(
            policy.due(&buffer, t0 + Duration::from_secs(160)),
            Some(FlushReason::Age)
        );
    }

    #[test]
    fn reuses_an_object_buffer_once_its_body_is_dropped() {
        let t0 = Instant::now();
        let mut buffer = ShardBuffer::new(1 << 20);
        buffer.push(record(1, 1_000), t0);
        let first = buffer.seal("s", "shard").unwrap();
        let at = first.body.as_ptr();
        let copy = first.body.clone();
        drop(first);
        // Still in use: the next object gets a fresh buffer.
        buffer.push(record(2, 1_000), t0);
        let second = buffer.seal("s", "shard").unwrap();
        let second_at = second.body.as_ptr();
        assert_ne!(second_at, at);
        drop((copy, second));
        buffer.push(record(3, 1_000), t0);
        let third = buffer.seal("s", "shard").unwrap();
        let (header, records) = sluice_events::decode_archive(&third.body).unwrap();
        assert_eq!(
            (header.record_count, records[0].partition_key.as_str()),
            (1, "pk3")
        );
        // The second object's buffer, which went back last.
        assert_eq!(third.body.as_ptr(), second_at);
        drop(third);
        buffer.release_spare();
        buffer.push(record(4, 1_000), t0);
        let fourth = buffer.seal("s", "shard").unwrap();
        assert_eq!(
            sluice_events::decode_archive(&fourth.body)
                .unwrap()
                .0
                .first_sequence,
            "4"
        );
    }

    #[test]
    fn flushes_on_size_of_framed_records() {
        let policy = FlushPolicy {
            max_bytes: 10_000,
            max_age: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let mut buffer = ShardBuffer::new(1 << 16);
        for seq in 1..=9 {
            buffer.push(record(seq, 1_000), t0);
        }
        assert_eq!(policy.due(&buffer, t0), None);
        buffer.push(record(10, 1_000), t0);
        assert_eq!(policy.due(&buffer, t0), Some(FlushReason::Size));
    }

    #[test]
    fn sealed_object_carries_range_count_and_key() {
        let mut buffer = ShardBuffer::new(1 << 16);
        assert!(buffer.seal("s", "shard").is_none());
        let t0 = Instant::now();
        for seq in [8, 9, 10] {
            buffer.push(record(seq, 100), t0);
        }
        let sealed = buffer.seal("events", "shardId-000000000001").unwrap();
        assert!(buffer.is_empty());
        assert_eq!(sealed.records, 3);
        assert_eq!(sealed.data_bytes, 300);
        // 1_700_000_008 s is 2023-11-14T22:13:28Z.
        assert_eq!(
            sealed.key,
            "raw/events/dt=2023-11-14/hh=22/shardId-000000000001/8-10.pb.zst"
        );
        let (header, records) = sluice_events::decode_archive(&sealed.body).unwrap();
        assert_eq!(
            (
                header.first_sequence.as_str(),
                header.last_sequence.as_str()
            ),
            ("8", "10")
        );
        assert_eq!(records[1].arrival_us, 1_700_000_009_000_000);
        assert_eq!(records[2].partition_key, "pk10");
    }
}
