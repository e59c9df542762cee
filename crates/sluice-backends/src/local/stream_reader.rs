//! Reading one shard of a local stream. Readers need no lock and may live in
//! another process than the writer: they learn everything from the files
//! (frames are checksummed, segments end in a seal or end marker), and read
//! only whole frames, so a write in progress is simply not seen yet.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;

use super::frame::{self, Next};
use super::fsutil::blocking;
use super::segment::{self, Entry};
use super::shard_map::ShardMap;
use super::stream_writer::{MAP_FILE, now_ms};
use crate::{
    BackendError, ReadBatch, Result, SequenceNumber, ShardReader, StartPosition, StreamRecord,
};

/// What one `next_batch` returns at most, as GetRecords does.
const MAX_BATCH_BYTES: usize = 10 << 20;
const MAX_BATCH_RECORDS: usize = 10_000;

pub struct LocalShardReader {
    cursor: Cursor,
}

/// A position in the shard. Cloned into each blocking read and replaced only
/// when the read finishes, so cancelling `next_batch` loses nothing.
#[derive(Clone)]
struct Cursor {
    stream_dir: PathBuf,
    shard_id: String,
    shard_dir: PathBuf,
    /// The open segment (kept open so a segment deleted by retention can
    /// still be read to its end) and its first sequence number.
    segment: Option<(u64, Arc<File>)>,
    offset: u64,
    /// Records below this sequence number are skipped (At/AfterSequence).
    min_seq: u64,
    /// Set once the shard's end marker has been read: its children.
    ended: Option<Vec<String>>,
}

impl LocalShardReader {
    pub(super) fn open(
        stream_dir: PathBuf,
        shard_id: String,
        start: StartPosition,
    ) -> Result<Self> {
        let map = load_map(&stream_dir)?;
        if map.get(&shard_id).is_none() {
            return Err(BackendError::NotFound(format!("shard {shard_id}")));
        }
        let mut cursor = Cursor {
            shard_dir: stream_dir.join(&shard_id),
            stream_dir,
            shard_id,
            segment: None,
            offset: 0,
            min_seq: 0,
            ended: None,
        };
        let target = match &start {
            StartPosition::TrimHorizon | StartPosition::Latest => None,
            StartPosition::AtSequence(seq) => Some(parse_seq(seq)?),
            StartPosition::AfterSequence(seq) => Some(parse_seq(seq)?.saturating_add(1)),
        };
        if let Some(target) = target {
            cursor.min_seq = target;
            let segments = segment::list(&cursor.shard_dir)?;
            // The last segment that can hold `target`: names are not above
            // their records' sequence numbers.
            let found = segments.iter().rev().find(|(first, _)| *first <= target);
            if let Some((first, path)) = found.or(segments.first()) {
                cursor.segment = Some((*first, open_segment(path)?));
            }
        } else if start == StartPosition::Latest {
            cursor.seek_to_end()?;
        }
        Ok(Self { cursor })
    }
}

fn parse_seq(seq: &SequenceNumber) -> Result<u64> {
    seq.as_str().parse().map_err(|_| {
        BackendError::InvalidArgument(format!("sequence number {seq} is not from this stream"))
    })
}

fn load_map(stream_dir: &Path) -> Result<ShardMap> {
    let path = stream_dir.join(MAP_FILE);
    ShardMap::load(&path)?.ok_or_else(|| BackendError::NotFound(path.display().to_string()))
}

fn open_segment(path: &Path) -> Result<Arc<File>> {
    File::open(path)
        .map(Arc::new)
        .map_err(|e| BackendError::io(path, e))
}

impl Cursor {
    /// Positions after the last whole frame of the newest segment.
    fn seek_to_end(&mut self) -> Result<()> {
        loop {
            let Some((first, path)) = segment::list(&self.shard_dir)?.pop() else {
                return Ok(());
            };
            let file = match File::open(&path) {
                Ok(f) => Arc::new(f),
                // Deleted between listing and opening: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackendError::io(&path, e)),
            };
            let scan = segment::scan(&path)?;
            if scan.sealed {
                continue; // rolled meanwhile; the next segment exists
            }
            if scan.ended.is_some() {
                self.ended = Some(self.children()?);
            }
            self.segment = Some((first, file));
            self.offset = scan.valid_len;
            return Ok(());
        }
    }

    fn children(&self) -> Result<Vec<String>> {
        Ok(load_map(&self.stream_dir)?.children_of(&self.shard_id))
    }

    /// The segment after the current one, if any.
    fn next_segment(&self) -> Result<Option<(u64, PathBuf)>> {
        let current = self.segment.as_ref().map(|(first, _)| *first);
        Ok(segment::list(&self.shard_dir)?
            .into_iter()
            .find(|(first, _)| current.is_none_or(|c| *first > c)))
    }

    fn switch_to(&mut self, first: u64, path: &Path) -> Result<()> {
        self.segment = Some((first, open_segment(path)?));
        self.offset = 0;
        Ok(())
    }

    fn read(&mut self, max: usize) -> Result<ReadBatch> {
        let mut batch = ReadBatch::default();
        let mut bytes = 0usize;
        let mut caught_up = false;
        let mut last_arrival = None;
        'segments: while self.ended.is_none() && batch.records.len() < max {
            let Some((_, file)) = self.segment.clone() else {
                match self.next_segment()? {
                    Some((first, path)) => {
                        self.switch_to(first, &path)?;
                        continue;
                    }
                    None => {
                        // No segment at all: an expired closed shard, or one
                        // not yet written.
                        let map = load_map(&self.stream_dir)?;
                        if map.get(&self.shard_id).is_none_or(|s| !s.is_open()) {
                            self.ended = Some(map.children_of(&self.shard_id));
                        }
                        caught_up = true;
                        break;
                    }
                }
            };
            let path = self.shard_dir.clone();
            let io = |e| BackendError::io(&path, e);
            let mut reader = BufReader::with_capacity(256 << 10, &*file);
            reader.seek(SeekFrom::Start(self.offset)).map_err(io)?;
            loop {
                if batch.records.len() >= max || bytes >= MAX_BATCH_BYTES {
                    break 'segments;
                }
                let (body, len) = match frame::read_next(&mut reader).map_err(io)? {
                    Next::Frame { body, len } => (body, len),
                    Next::End => {
                        caught_up = true;
                        break 'segments;
                    }
                    Next::Invalid => {
                        self.check_invalid_is_tail(&file)?;
                        caught_up = true;
                        break 'segments;
                    }
                };
                self.offset += len;
                match segment::decode(body, &self.shard_dir)? {
                    Entry::Record {
                        seq,
                        arrival_ms,
                        partition_key,
                        data,
                    } => {
                        if seq < self.min_seq {
                            continue;
                        }
                        bytes += data.len() + partition_key.len();
                        last_arrival = Some(arrival_ms);
                        batch.records.push(StreamRecord {
                            sequence_number: SequenceNumber::from_u128(u128::from(seq)),
                            partition_key,
                            data,
                            arrival: UNIX_EPOCH + Duration::from_millis(arrival_ms),
                        });
                    }
                    Entry::Seal => {
                        match self.next_segment()? {
                            Some((first, path)) => self.switch_to(first, &path)?,
                            // The rest was deleted with its shard (retention).
                            None => self.ended = Some(self.children()?),
                        }
                        continue 'segments;
                    }
                    Entry::End { .. } => {
                        self.ended = Some(self.children()?);
                        break 'segments;
                    }
                }
            }
        }
        if let Some(children) = &self.ended {
            batch.shard_ended = true;
            batch.child_shards = children.clone();
            caught_up = true;
        }
        batch.millis_behind_latest = Some(match (caught_up, last_arrival) {
            (false, Some(arrival)) => now_ms().saturating_sub(arrival),
            _ => 0,
        });
        Ok(batch)
    }

    /// An invalid frame is normal at the tail of the active segment (a write
    /// in progress). Once a later segment exists this one is final, so an
    /// invalid frame that is still there is corruption, not a race.
    fn check_invalid_is_tail(&self, file: &File) -> Result<()> {
        if self.next_segment()?.is_none() {
            return Ok(());
        }
        let mut reader = BufReader::new(file);
        let path = &self.shard_dir;
        reader
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| BackendError::io(path, e))?;
        match frame::read_next(&mut reader).map_err(|e| BackendError::io(path, e))? {
            Next::Invalid => Err(BackendError::Corrupt {
                path: path.display().to_string(),
                message: format!(
                    "invalid frame at offset {} of a finished segment",
                    self.offset
                ),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ShardReader for LocalShardReader {
    async fn next_batch(&mut self, max: usize) -> Result<ReadBatch> {
        if max == 0 || max > MAX_BATCH_RECORDS {
            return Err(BackendError::InvalidArgument(format!(
                "batch size must be 1..={MAX_BATCH_RECORDS}, not {max}"
            )));
        }
        let mut cursor = self.cursor.clone();
        let (batch, cursor) = blocking(move || cursor.read(max).map(|b| (b, cursor))).await?;
        self.cursor = cursor;
        Ok(batch)
    }
}
