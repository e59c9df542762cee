//! The writing side of a local stream: recovery on open, appends, segment
//! rolling, resharding and retention. Everything here runs with the stream's
//! lock file held, so several processes may write the same stream; a
//! process notices another one's writes (file sizes or `shards.json`
//! changed) and reloads its state before it writes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fsutil::sync_dir;
use super::segment::{self, Entry};
use super::shard_map::ShardMap;
use crate::{BackendError, PutOutcome, Result, SequenceNumber};

pub const MAP_FILE: &str = "shards.json";

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The active (last) segment of an open shard, opened for appending.
struct Tail {
    path: PathBuf,
    file: File,
    len: u64,
}

/// Identifies one version of `shards.json`: it is replaced by rename, so a
/// rewrite changes the inode.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

fn stamp(path: &Path) -> Result<Stamp> {
    let m = fs::metadata(path).map_err(|e| BackendError::io(path, e))?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
    })
}

pub struct Writer {
    dir: PathBuf,
    pub map: ShardMap,
    map_stamp: Stamp,
    /// The next sequence number to assign; unique across the stream.
    next_seq: u64,
    tails: HashMap<String, Tail>,
    /// Set after a failed write: the in-memory view may be wrong.
    pub stale: bool,
}

/// One record to append, already routed.
pub struct Append<'a> {
    pub index: usize,
    pub shard_id: &'a str,
    pub partition_key: &'a str,
    pub data: &'a bytes::Bytes,
}

impl Writer {
    /// Loads the stream's state from disk, truncating torn tails (left by a
    /// writer that died mid-append) and finishing an interrupted reshard.
    /// Only call with the lock held: then no write is in progress.
    pub fn recover(dir: &Path) -> Result<Self> {
        let map_path = dir.join(MAP_FILE);
        let map = ShardMap::load(&map_path)?.ok_or_else(|| BackendError::Corrupt {
            path: map_path.display().to_string(),
            message: "stream has no shard map".into(),
        })?;
        let mut next_seq = 1u64;
        let mut scans = HashMap::new();
        for shard in &map.shards {
            next_seq = next_seq.max(seq_u64(&shard.starting_sequence));
            if let Some(end) = &shard.ending_sequence {
                next_seq = next_seq.max(seq_u64(end).saturating_add(1));
            }
            let shard_dir = dir.join(&shard.shard_id);
            if let Some((first, path)) = segment::list(&shard_dir)?.pop() {
                next_seq = next_seq.max(first);
                let scan = segment::scan(&path)?;
                if scan.valid_len < scan.file_len {
                    tracing::warn!(
                        path = %path.display(),
                        dropped_bytes = scan.file_len - scan.valid_len,
                        "truncating torn tail of stream segment"
                    );
                    truncate(&path, scan.valid_len)?;
                }
                if let Some(seq) = scan.last_record_seq {
                    next_seq = next_seq.max(seq + 1);
                }
                scans.insert(shard.shard_id.clone(), (path, scan));
            }
        }
        let mut writer = Writer {
            dir: dir.to_owned(),
            map_stamp: stamp(&map_path)?,
            map,
            next_seq,
            tails: HashMap::new(),
            stale: false,
        };
        for shard in writer.map.shards.clone() {
            let scan = scans.remove(&shard.shard_id);
            match (&shard.ending_sequence, scan) {
                // A reshard died between saving the map and marking the end.
                (Some(end), Some((path, scan))) if scan.ended.is_none() => {
                    let mut tail = open_tail(path)?;
                    append(
                        &mut tail,
                        &[Entry::End {
                            ending_seq: seq_u64(end),
                        }],
                    )?;
                }
                (Some(_), _) => {}
                (None, Some((path, scan))) if !scan.sealed && scan.ended.is_none() => {
                    writer
                        .tails
                        .insert(shard.shard_id.clone(), open_tail(path)?);
                }
                (None, _) => {
                    let tail = writer.new_segment(&shard.shard_id)?;
                    writer.tails.insert(shard.shard_id.clone(), tail);
                }
            }
        }
        Ok(writer)
    }

    /// Whether another process changed the stream since we last looked.
    pub fn changed_on_disk(&self) -> Result<bool> {
        if self.stale || stamp(&self.dir.join(MAP_FILE))? != self.map_stamp {
            return Ok(true);
        }
        for tail in self.tails.values() {
            let len = tail
                .file
                .metadata()
                .map_err(|e| BackendError::io(&tail.path, e))?
                .len();
            if len != tail.len {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Appends routed records, rolling full segments first. Each shard's
    /// records are written with one `write` and made durable with one
    /// `fdatasync`. Returns each record's outcome by `index`; an I/O error
    /// fails only the entries of the shard it happened on.
    pub fn append_records(
        &mut self,
        records: &[Append<'_>],
        segment_bytes: u64,
    ) -> Vec<(usize, PutOutcome)> {
        let arrival_ms = now_ms();
        let mut by_shard: Vec<(&str, Vec<&Append<'_>>)> = Vec::new();
        for r in records {
            match by_shard.iter_mut().find(|(id, _)| *id == r.shard_id) {
                Some((_, list)) => list.push(r),
                None => by_shard.push((r.shard_id, vec![r])),
            }
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for (shard_id, list) in by_shard {
            let result = self.append_shard(shard_id, &list, arrival_ms, segment_bytes);
            match result {
                Ok(seqs) => outcomes.extend(list.iter().zip(seqs).map(|(r, seq)| {
                    let outcome = PutOutcome::Written {
                        shard_id: shard_id.to_owned(),
                        sequence_number: SequenceNumber::from_u128(u128::from(seq)),
                    };
                    (r.index, outcome)
                })),
                Err(e) => {
                    self.stale = true;
                    outcomes.extend(list.iter().map(|r| {
                        let outcome = PutOutcome::Failed {
                            code: "InternalFailure".into(),
                            message: e.to_string(),
                        };
                        (r.index, outcome)
                    }));
                }
            }
        }
        outcomes
    }

    fn append_shard(
        &mut self,
        shard_id: &str,
        list: &[&Append<'_>],
        arrival_ms: u64,
        segment_bytes: u64,
    ) -> Result<Vec<u64>> {
        let full = self
            .tails
            .get(shard_id)
            .is_some_and(|t| t.len > 0 && t.len >= segment_bytes);
        if full {
            self.roll(shard_id)?;
        }
        let first = self.next_seq;
        let entries: Vec<Entry> = list
            .iter()
            .enumerate()
            .map(|(i, r)| Entry::Record {
                seq: first + i as u64,
                arrival_ms,
                partition_key: r.partition_key.to_owned(),
                data: r.data.clone(),
            })
            .collect();
        let tail = self.tails.get_mut(shard_id).ok_or_else(|| {
            BackendError::NotFound(format!("open shard {shard_id} has no segment"))
        })?;
        // Sequence numbers are spent even if the write fails: never reused.
        self.next_seq += entries.len() as u64;
        append(tail, &entries)?;
        Ok((first..self.next_seq).collect())
    }

    /// Starts a new segment for an open shard: the new file exists (and is
    /// durable) before the old one is sealed, so a reader that reads the
    /// seal always finds where to continue.
    fn roll(&mut self, shard_id: &str) -> Result<()> {
        let new = self.new_segment(shard_id)?;
        if let Some(mut old) = self.tails.insert(shard_id.to_owned(), new) {
            append(&mut old, &[Entry::Seal])?;
        }
        Ok(())
    }

    fn new_segment(&self, shard_id: &str) -> Result<Tail> {
        let shard_dir = self.dir.join(shard_id);
        fs::create_dir_all(&shard_dir).map_err(|e| BackendError::io(&shard_dir, e))?;
        let path = segment::segment_path(&shard_dir, self.next_seq);
        let tail = open_tail(path)?;
        if tail.len > 0 {
            return Err(BackendError::Corrupt {
                path: tail.path.display().to_string(),
                message: "new segment is not empty".into(),
            });
        }
        sync_dir(&shard_dir)?;
        Ok(tail)
    }

    /// Closes every open shard and opens `target` children over the whole
    /// key space. The saved map is the commit point; the parents' `End`
    /// markers follow (recovery adds them if we die in between).
    pub fn reshard(&mut self, target: u32) -> Result<()> {
        // One sequence number is spent as the parents' ending sequence, so
        // it is never below a parent's starting one.
        let ending = SequenceNumber::from_u128(u128::from(self.next_seq));
        self.next_seq += 1;
        let starting = SequenceNumber::from_u128(u128::from(self.next_seq));
        let mut map = self.map.clone();
        let mut parents = Vec::new();
        for shard in map.shards.iter_mut().filter(|s| s.is_open()) {
            let (start, end) = shard.range();
            parents.push((shard.shard_id.clone(), start, end));
            shard.ending_sequence = Some(ending.clone());
        }
        let children = map.add_children(target, &parents, &starting);
        let mut new_tails = Vec::new();
        for id in &children {
            // Left over from a reshard that died before saving the map.
            let stale = self.dir.join(id);
            if stale.exists() {
                fs::remove_dir_all(&stale).map_err(|e| BackendError::io(&stale, e))?;
            }
            new_tails.push((id.clone(), self.new_segment(id)?));
        }
        sync_dir(&self.dir)?;
        let map_path = self.dir.join(MAP_FILE);
        map.save(&map_path)?;
        self.map = map;
        self.map_stamp = stamp(&map_path)?;
        let ending_seq = seq_u64(&ending);
        for (id, _, _) in &parents {
            if let Some(mut tail) = self.tails.remove(id) {
                append(&mut tail, &[Entry::End { ending_seq }])?;
            }
        }
        self.tails.extend(new_tails);
        Ok(())
    }

    /// Deletes whole segments whose last write is older than `retention`.
    /// An open shard's active segment is rolled first when it is that old,
    /// so old records do not linger; closed shards whose segments are all
    /// gone leave the map, as Kinesis stops listing them.
    pub fn enforce_retention(&mut self, retention: Duration) -> Result<()> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(UNIX_EPOCH);
        let is_old = |path: &Path| -> Result<bool> {
            match fs::metadata(path).and_then(|m| m.modified()) {
                Ok(modified) => Ok(modified < cutoff),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(BackendError::io(path, e)),
            }
        };
        let mut expired_shards = Vec::new();
        for shard in self.map.shards.clone() {
            let id = &shard.shard_id;
            // Sealing touches the rolled segment's mtime; it expires anyway.
            let mut rolled = None;
            if let Some(tail) = self.tails.get(id)
                && tail.len > 0
                && is_old(&tail.path)?
            {
                rolled = Some(tail.path.clone());
                self.roll(id)?;
            }
            let shard_dir = self.dir.join(id);
            let mut segments = segment::list(&shard_dir)?;
            let active = self.tails.get(id).map(|t| t.path.clone());
            segments.retain(|(_, path)| Some(path) != active.as_ref());
            let mut remaining = shard.is_open();
            for (_, path) in segments {
                if rolled.as_ref() == Some(&path) || is_old(&path)? {
                    fs::remove_file(&path).map_err(|e| BackendError::io(&path, e))?;
                } else {
                    remaining = true;
                }
            }
            if !remaining {
                expired_shards.push(id.clone());
            }
        }
        if !expired_shards.is_empty() {
            let map_path = self.dir.join(MAP_FILE);
            self.map
                .shards
                .retain(|s| !expired_shards.contains(&s.shard_id));
            self.map.save(&map_path)?;
            self.map_stamp = stamp(&map_path)?;
            for id in expired_shards {
                let _ = fs::remove_dir_all(self.dir.join(id));
            }
        }
        Ok(())
    }
}

/// Sequence numbers this backend wrote always fit in `u64`.
pub fn seq_u64(seq: &SequenceNumber) -> u64 {
    seq.as_str().parse().unwrap_or(u64::MAX)
}

fn open_tail(path: PathBuf) -> Result<Tail> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| BackendError::io(&path, e))?;
    let len = file
        .metadata()
        .map_err(|e| BackendError::io(&path, e))?
        .len();
    Ok(Tail { path, file, len })
}

/// Appends entries with one write and one `fdatasync`; on failure the file
/// is cut back so no partial frame stays behind.
fn append(tail: &mut Tail, entries: &[Entry]) -> Result<()> {
    let now = now_ms();
    let mut buf = Vec::new();
    for entry in entries {
        segment::encode(&mut buf, entry, now);
    }
    let written = tail
        .file
        .write_all(&buf)
        .and_then(|()| tail.file.sync_data());
    if let Err(e) = written {
        let _ = tail.file.set_len(tail.len);
        return Err(BackendError::io(&tail.path, e));
    }
    tail.len += buf.len() as u64;
    Ok(())
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| BackendError::io(path, e))
}
