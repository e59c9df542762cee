//! The durable state of a local queue: an append-only journal of operations
//! (`sent`, `received`, `visibility`, `deleted`) in checksummed frames,
//! replayed into memory. Every change is one appended write plus one
//! `fdatasync`, so a message, its receive count and its invisibility survive
//! a restart. All access happens under the queue's lock file; a process
//! catches up with what others appended before it acts, and a journal that
//! was compacted (replaced by rename) is reloaded from scratch.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::frame::{self, Next};
use super::fsutil::atomic_write;
use crate::{BackendError, Result};

/// Compaction is considered once the journal passes this size, and again
/// after each further step of it.
const COMPACT_STEP: u64 = 1 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Sent {
        id: String,
        body: String,
        sent_ms: u64,
    },
    Received {
        id: String,
        receipt: String,
        count: u32,
        visible_ms: u64,
    },
    Visibility {
        id: String,
        visible_ms: u64,
    },
    Deleted {
        id: String,
    },
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    /// The receipt handle of the latest receive; only it may act on the
    /// message.
    pub receipt: Option<String>,
    /// Unix millis from which the message may be received.
    pub visible_ms: u64,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`: a compaction by anyone replaces it.
    identity: (u64, u64),
    /// Bytes of the journal applied to memory.
    offset: u64,
    next_compact_check: u64,
    /// Live messages in send order.
    messages: BTreeMap<u64, Message>,
    by_id: HashMap<String, u64>,
    next_order: u64,
}

fn open_append(path: &Path) -> Result<(File, (u64, u64))> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| BackendError::io(path, e))?;
    let m = file.metadata().map_err(|e| BackendError::io(path, e))?;
    Ok((file, (m.dev(), m.ino())))
}

impl Journal {
    /// Opens and replays the journal. Call with the lock held.
    pub fn open(path: PathBuf) -> Result<Self> {
        let mut journal = Journal::open_empty(path)?;
        journal.catch_up()?;
        Ok(journal)
    }

    /// Applies what other processes appended since we last looked. Call
    /// with the lock held: then an invalid frame is a torn tail left by a
    /// process that died mid-write, and is cut off.
    pub fn catch_up(&mut self) -> Result<()> {
        let on_disk = match fs::metadata(&self.path) {
            Ok(m) => Some(((m.dev(), m.ino()), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(BackendError::io(&self.path, e)),
        };
        match on_disk {
            Some((identity, len)) if identity == self.identity && len == self.offset => {
                return Ok(());
            }
            Some((identity, len)) if identity == self.identity && len > self.offset => {}
            // Compacted (or removed) by someone else: start over.
            _ => {
                *self = Journal {
                    next_compact_check: self.next_compact_check,
                    ..Journal::open_empty(self.path.clone())?
                };
            }
        }
        let path = self.path.clone();
        let io = |e| BackendError::io(&path, e);
        let mut reader = BufReader::with_capacity(256 << 10, &self.file);
        reader.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut ops = Vec::new();
        let mut offset = self.offset;
        loop {
            match frame::read_next(&mut reader).map_err(io)? {
                Next::Frame { body, len } => {
                    let op: Op =
                        serde_json::from_slice(&body).map_err(|e| BackendError::Corrupt {
                            path: self.path.display().to_string(),
                            message: format!("journal entry at {offset}: {e}"),
                        })?;
                    ops.push(op);
                    offset += len;
                }
                Next::End => break,
                Next::Invalid => {
                    tracing::warn!(path = %self.path.display(), offset, "truncating torn tail of queue journal");
                    self.file.set_len(offset).map_err(io)?;
                    self.file.sync_all().map_err(io)?;
                    break;
                }
            }
        }
        for op in ops {
            self.apply(op);
        }
        self.offset = offset;
        Ok(())
    }

    /// The journal at `path`, opened for appending, with nothing replayed.
    fn open_empty(path: PathBuf) -> Result<Self> {
        let (file, identity) = open_append(&path)?;
        Ok(Journal {
            path,
            file,
            identity,
            offset: 0,
            next_compact_check: COMPACT_STEP,
            messages: BTreeMap::new(),
            by_id: HashMap::new(),
            next_order: 0,
        })
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Sent { id, body, sent_ms } => {
                let order = self.next_order;
                self.next_order += 1;
                self.by_id.insert(id.clone(), order);
                self.messages.insert(
                    order,
                    Message {
                        id,
                        body,
                        receive_count: 0,
                        receipt: None,
                        visible_ms: sent_ms,
                    },
                );
            }
            Op::Received {
                id,
                receipt,
                count,
                visible_ms,
            } => {
                if let Some(m) = self.get_mut(&id) {
                    m.receipt = Some(receipt);
                    m.receive_count = count;
                    m.visible_ms = visible_ms;
                }
            }
            Op::Visibility { id, visible_ms } => {
                if let Some(m) = self.get_mut(&id) {
                    m.visible_ms = visible_ms;
                }
            }
            Op::Deleted { id } => {
                if let Some(order) = self.by_id.remove(&id) {
                    self.messages.remove(&order);
                }
            }
        }
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Message> {
        let order = self.by_id.get(id)?;
        self.messages.get_mut(order)
    }

    pub fn get(&self, id: &str) -> Option<&Message> {
        self.messages.get(self.by_id.get(id)?)
    }

    /// Live messages, oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    /// Makes `ops` durable, then applies them.
    pub fn append(&mut self, ops: Vec<Op>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for op in &ops {
            let body = serde_json::to_vec(op).map_err(|e| BackendError::Corrupt {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
            frame::encode_into(&mut buf, &body);
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(self.offset);
            return Err(BackendError::io(&self.path, e));
        }
        self.offset += buf.len() as u64;
        for op in ops {
            self.apply(op);
        }
        if self.offset >= self.next_compact_check {
            self.maybe_compact()?;
        }
        Ok(())
    }

    /// Rewrites the journal as just the live state once most of it is
    /// history (deleted messages, superseded receives).
    fn maybe_compact(&mut self) -> Result<()> {
        let mut snapshot = Vec::new();
        for m in self.messages.values() {
            let mut ops = vec![Op::Sent {
                id: m.id.clone(),
                body: m.body.clone(),
                sent_ms: m.visible_ms,
            }];
            if let Some(receipt) = &m.receipt {
                ops.push(Op::Received {
                    id: m.id.clone(),
                    receipt: receipt.clone(),
                    count: m.receive_count,
                    visible_ms: m.visible_ms,
                });
            }
            for op in ops {
                let body = serde_json::to_vec(&op).map_err(|e| BackendError::Corrupt {
                    path: self.path.display().to_string(),
                    message: e.to_string(),
                })?;
                frame::encode_into(&mut snapshot, &body);
            }
        }
        let snapshot_len = snapshot.len() as u64;
        if snapshot_len * 2 > self.offset {
            self.next_compact_check = self.offset + COMPACT_STEP;
            return Ok(());
        }
        atomic_write(&self.path, &snapshot, true)?;
        let (file, identity) = open_append(&self.path)?;
        self.file = file;
        self.identity = identity;
        self.offset = snapshot_len;
        self.next_compact_check = snapshot_len + COMPACT_STEP;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str) -> Op {
        Op::Sent {
            id: id.into(),
            body: "b".repeat(4000),
            sent_ms: 0,
        }
    }

    #[test]
    fn replays_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut j = Journal::open(path.clone()).unwrap();
        for i in 0..600 {
            let mut ops = vec![sent(&format!("m{i}"))];
            if i % 3 != 0 {
                ops.push(Op::Deleted {
                    id: format!("m{i}"),
                });
            }
            j.append(ops).unwrap();
        }
        j.append(vec![Op::Received {
            id: "m3".into(),
            receipt: "r".into(),
            count: 2,
            visible_ms: 99,
        }])
        .unwrap();
        // 600 bodies of 4 KB were written; compaction kept it near the 200
        // live ones.
        let len = fs::metadata(&path).unwrap().len();
        assert!(len < 400 * 4100, "journal is {len} bytes");

        let reopened = Journal::open(path).unwrap();
        let ids: Vec<_> = reopened.messages().map(|m| m.id.clone()).collect();
        assert_eq!(ids.len(), 200);
        assert_eq!(ids[..3], ["m0", "m3", "m6"]);
        let m3 = reopened.get("m3").unwrap();
        assert_eq!((m3.receive_count, m3.visible_ms), (2, 99));
        assert_eq!(m3.receipt.as_deref(), Some("r"));
    }

    #[test]
    fn sees_other_handles_appends_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut a = Journal::open(path.clone()).unwrap();
        let mut b = Journal::open(path.clone()).unwrap();
        a.append(vec![sent("x")]).unwrap();
        b.catch_up().unwrap();
        assert!(b.get("x").is_some());
        // A half-written frame, as a crash leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xA7, 50, 0, 0, 0, 1, 2]).unwrap();
        b.catch_up().unwrap();
        b.append(vec![sent("y")]).unwrap();
        let c = Journal::open(path).unwrap();
        assert!(c.get("x").is_some() && c.get("y").is_some());
    }
}
