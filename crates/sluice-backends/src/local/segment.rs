//! Segment files: one shard's records, appended as checksummed frames.
//!
//! A shard directory holds `<first-seq>.seg` files (20-digit, zero-padded, so
//! name order is sequence order); a segment's name is not greater than the
//! sequence number of any record in it. A frame body is
//! `kind u8 | seq u64 LE | arrival unix-millis u64 LE | key_len u16 LE | key | data`.
//! Two marker kinds end a segment: `Seal` (continue in the next segment) and
//! `End` (the shard was closed; `seq` is its ending sequence number). Readers
//! in other processes learn everything from the files, with no side channel.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::frame::{self, Next};
use crate::{BackendError, Result};

const KIND_RECORD: u8 = 1;
const KIND_SEAL: u8 = 2;
const KIND_END: u8 = 3;
const FIXED_LEN: usize = 1 + 8 + 8 + 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Record {
        seq: u64,
        arrival_ms: u64,
        partition_key: String,
        data: Bytes,
    },
    Seal,
    End {
        ending_seq: u64,
    },
}

pub fn encode(out: &mut Vec<u8>, entry: &Entry, now_ms: u64) {
    let (kind, seq, arrival, key, data): (u8, u64, u64, &[u8], &[u8]) = match entry {
        Entry::Record {
            seq,
            arrival_ms,
            partition_key,
            data,
        } => (
            KIND_RECORD,
            *seq,
            *arrival_ms,
            partition_key.as_bytes(),
            data,
        ),
        Entry::Seal => (KIND_SEAL, 0, now_ms, b"", b""),
        Entry::End { ending_seq } => (KIND_END, *ending_seq, now_ms, b"", b""),
    };
    let mut body = Vec::with_capacity(FIXED_LEN + key.len() + data.len());
    body.push(kind);
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&arrival.to_le_bytes());
    body.extend_from_slice(&(key.len() as u16).to_le_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(data);
    frame::encode_into(out, &body);
}

/// Decodes a checksummed frame body; a body that passed its checksum but
/// does not parse was written by something else, so it is corruption.
pub fn decode(body: Vec<u8>, path: &Path) -> Result<Entry> {
    let corrupt = |message: &str| BackendError::Corrupt {
        path: path.display().to_string(),
        message: message.to_owned(),
    };
    if body.len() < FIXED_LEN {
        return Err(corrupt("short segment frame"));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (seq, arrival_ms) = (u64_at(1), u64_at(9));
    let key_len = usize::from(u16::from_le_bytes([body[17], body[18]]));
    if body.len() < FIXED_LEN + key_len {
        return Err(corrupt("partition key overruns its frame"));
    }
    match body[0] {
        KIND_RECORD => {
            let partition_key = std::str::from_utf8(&body[FIXED_LEN..FIXED_LEN + key_len])
                .map_err(|_| corrupt("partition key is not UTF-8"))?
                .to_owned();
            let mut body = Bytes::from(body);
            Ok(Entry::Record {
                seq,
                arrival_ms,
                partition_key,
                data: body.split_off(FIXED_LEN + key_len),
            })
        }
        KIND_SEAL => Ok(Entry::Seal),
        KIND_END => Ok(Entry::End { ending_seq: seq }),
        _ => Err(corrupt("unknown segment frame kind")),
    }
}

pub fn segment_path(shard_dir: &Path, first_seq: u64) -> PathBuf {
    shard_dir.join(format!("{first_seq:020}.seg"))
}

/// The shard's segments, oldest first, by first sequence number.
pub fn list(shard_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(shard_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackendError::io(shard_dir, e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BackendError::io(shard_dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            segments.push((first, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What a segment holds, up to its first invalid byte.
#[derive(Debug, Default)]
pub struct Scan {
    /// Bytes of whole, valid frames from the start.
    pub valid_len: u64,
    pub file_len: u64,
    pub last_record_seq: Option<u64>,
    pub last_arrival_ms: Option<u64>,
    pub sealed: bool,
    pub ended: Option<u64>,
}

pub fn scan(path: &Path) -> Result<Scan> {
    let io = |e| BackendError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let mut out = Scan {
        file_len: file.metadata().map_err(io)?.len(),
        ..Scan::default()
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    while let Next::Frame { body, len } = frame::read_next(&mut reader).map_err(io)? {
        match decode(body, path)? {
            Entry::Record {
                seq, arrival_ms, ..
            } => {
                out.last_record_seq = Some(seq);
                out.last_arrival_ms = Some(arrival_ms);
            }
            Entry::Seal => out.sealed = true,
            Entry::End { ending_seq } => out.ended = Some(ending_seq),
        }
        out.valid_len += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let path = Path::new("x.seg");
        let record = Entry::Record {
            seq: 7,
            arrival_ms: 1_700_000_000_000,
            partition_key: "ünï".into(),
            data: Bytes::from_static(b"\x00payload"),
        };
        for entry in [record, Entry::Seal, Entry::End { ending_seq: 9 }] {
            let mut buf = Vec::new();
            encode(&mut buf, &entry, 5);
            let Next::Frame { body, .. } = frame::read_next(&mut &buf[..]).unwrap() else {
                panic!("no frame");
            };
            assert_eq!(decode(body, path).unwrap(), entry);
        }
    }
}
