//! The stream's shard metadata (`shards.json`): which shards exist, their
//! hash key ranges and lineage, and how records are routed to them.

use std::path::Path;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::fsutil::atomic_write;
use crate::{BackendError, Result, SequenceNumber, ShardInfo};

/// On-disk form. 128-bit numbers are decimal strings: JSON numbers that
/// large do not survive every parser.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShardMap {
    pub next_shard_index: u32,
    pub shards: Vec<ShardEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardEntry {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_start: String,
    pub hash_key_end: String,
    pub starting_sequence: SequenceNumber,
    pub ending_sequence: Option<SequenceNumber>,
}

impl ShardEntry {
    pub fn range(&self) -> (u128, u128) {
        (
            self.hash_key_start.parse().unwrap_or(0),
            self.hash_key_end.parse().unwrap_or(0),
        )
    }

    pub fn is_open(&self) -> bool {
        self.ending_sequence.is_none()
    }

    pub fn info(&self) -> ShardInfo {
        let (start, end) = self.range();
        ShardInfo {
            shard_id: self.shard_id.clone(),
            parent_shard_id: self.parent_shard_id.clone(),
            adjacent_parent_shard_id: self.adjacent_parent_shard_id.clone(),
            hash_key_start: start,
            hash_key_end: end,
            starting_sequence: self.starting_sequence.clone(),
            ending_sequence: self.ending_sequence.clone(),
        }
    }
}

pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Kinesis's hash key for a record: the explicit one, or MD5 of the
/// partition key read as a big-endian 128-bit number.
pub fn hash_key(partition_key: &str, explicit: Option<&str>) -> Result<u128> {
    if let Some(explicit) = explicit {
        return explicit.parse::<u128>().map_err(|_| {
            BackendError::InvalidArgument(format!(
                "explicit hash key {explicit:?} is not a decimal in 0..=2^128-1"
            ))
        });
    }
    let digest = Md5::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    Ok(u128::from_be_bytes(bytes))
}

/// Splits 0..=u128::MAX into `n` contiguous ranges as Kinesis does:
/// shard `i` starts at floor(i * 2^128 / n).
pub fn uniform_ranges(n: u32) -> Vec<(u128, u128)> {
    if n <= 1 {
        return vec![(0, u128::MAX)];
    }
    let n128 = u128::from(n);
    // 2^128 = q * n + r, computed without overflowing (q < 2^128 as n > 1).
    let (mut q, mut r) = (u128::MAX / n128, u128::MAX % n128 + 1);
    if r == n128 {
        q += 1;
        r = 0;
    }
    let start = |i: u128| i * q + (i * r) / n128;
    (0..n128)
        .map(|i| {
            let end = if i + 1 == n128 {
                u128::MAX
            } else {
                start(i + 1) - 1
            };
            (start(i), end)
        })
        .collect()
}

impl ShardMap {
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| BackendError::Corrupt {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::io(path, e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| BackendError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        atomic_write(path, &json, true)
    }

    pub fn get(&self, shard_id: &str) -> Option<&ShardEntry> {
        self.shards.iter().find(|s| s.shard_id == shard_id)
    }

    /// The open shard owning `hash`; the open shards always cover the whole
    /// key space.
    pub fn route(&self, hash: u128) -> Option<&ShardEntry> {
        self.shards.iter().find(|s| {
            let (start, end) = s.range();
            s.is_open() && start <= hash && hash <= end
        })
    }

    /// Shards naming `shard_id` as a parent.
    pub fn children_of(&self, shard_id: &str) -> Vec<String> {
        self.shards
            .iter()
            .filter(|s| {
                s.parent_shard_id.as_deref() == Some(shard_id)
                    || s.adjacent_parent_shard_id.as_deref() == Some(shard_id)
            })
            .map(|s| s.shard_id.clone())
            .collect()
    }

    /// Adds `n` open shards covering the key space uniformly. Each child's
    /// parent is the (closing) shard whose range holds the child's first hash
    /// key; its adjacent parent the one holding its last, when different.
    /// Returns the new shard ids.
    pub fn add_children(
        &mut self,
        n: u32,
        parents: &[(String, u128, u128)],
        starting_sequence: &SequenceNumber,
    ) -> Vec<String> {
        let owner = |hash: u128| {
            parents
                .iter()
                .find(|(_, start, end)| *start <= hash && hash <= *end)
                .map(|(id, _, _)| id.clone())
        };
        let mut ids = Vec::new();
        for (start, end) in uniform_ranges(n) {
            let id = shard_id(self.next_shard_index);
            self.next_shard_index += 1;
            let parent = owner(start);
            let adjacent = owner(end).filter(|a| Some(a) != parent.as_ref());
            self.shards.push(ShardEntry {
                shard_id: id.clone(),
                parent_shard_id: parent,
                adjacent_parent_shard_id: adjacent,
                hash_key_start: start.to_string(),
                hash_key_end: end.to_string(),
                starting_sequence: starting_sequence.clone(),
                ending_sequence: None,
            });
            ids.push(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_ranges_match_kinesis() {
        assert_eq!(uniform_ranges(1), vec![(0, u128::MAX)]);
        let two = uniform_ranges(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, u128::MAX));
        for n in [3, 4, 7, 10] {
            let r = uniform_ranges(n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].0, 0);
            assert_eq!(r.last().unwrap().1, u128::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
        }
    }

    #[test]
    fn hashes_like_kinesis() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            hash_key("", None).unwrap(),
            0xd41d8cd98f00b204e9800998ecf8427e
        );
        assert_eq!(hash_key("x", Some("42")).unwrap(), 42);
        assert!(hash_key("x", Some("-1")).is_err());
        assert!(hash_key("x", Some("340282366920938463463374607431768211456")).is_err());
    }

    #[test]
    fn lineage_for_split_and_merge() {
        let seq = SequenceNumber::from_u128(1);
        let mut map = ShardMap::default();
        map.add_children(2, &[], &seq);
        let parents: Vec<_> = map
            .shards
            .iter()
            .map(|s| (s.shard_id.clone(), s.range().0, s.range().1))
            .collect();
        let kids = map.add_children(4, &parents, &seq);
        let parent_of = |id: &str| {
            let s = map.get(id).unwrap();
            (
                s.parent_shard_id.clone().unwrap(),
                s.adjacent_parent_shard_id.clone(),
            )
        };
        assert_eq!(parent_of(&kids[0]), (shard_id(0), None));
        assert_eq!(parent_of(&kids[1]), (shard_id(0), None));
        assert_eq!(parent_of(&kids[2]), (shard_id(1), None));
        assert_eq!(parent_of(&kids[3]), (shard_id(1), None));

        let mut merge = ShardMap::default();
        merge.add_children(2, &[], &seq);
        let parents: Vec<_> = merge
            .shards
            .iter()
            .map(|s| (s.shard_id.clone(), s.range().0, s.range().1))
            .collect();
        let kid = merge.add_children(1, &parents, &seq);
        let k = merge.get(&kid[0]).unwrap();
        assert_eq!(k.parent_shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(
            k.adjacent_parent_shard_id.as_deref(),
            Some("shardId-000000000001")
        );
    }
}
