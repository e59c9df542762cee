//! Which replica archives which shard.
//!
//! Replicas share the shards statically: replica `i` of `n` owns the shards
//! whose slot is `i` modulo `n`. The Helm chart runs the archiver as a
//! StatefulSet, so each pod has a stable ordinal for its index. We chose this
//! over leases held by conditional puts because it needs no lease renewal, no
//! expiry clock and no extra writes, and a shard never pauses for a lease to
//! expire when its replica restarts (the same pod comes back). Its weak spot,
//! two pods with the same index during a rolling update, is made harmless by
//! the checkpoint's compare-and-set (see [`crate::checkpoint`]): the two may
//! both read a shard, but only one can claim each range.
//!
//! A shard's slot is the number at the end of its id (Kinesis names shards
//! `shardId-000000000007`), which spreads consecutive shards, and so the
//! children of a reshard, evenly over the replicas. An id without such a
//! number falls back to its 64-bit FNV-1a hash, which is stable across
//! processes and versions (unlike `std`'s `DefaultHasher`).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub index: u32,
    pub count: u32,
}

impl Assignment {
    pub fn owns(&self, shard_id: &str) -> bool {
        shard_slot(shard_id) % u64::from(self.count.max(1)) == u64::from(self.index)
    }
}

/// The shard's stable slot number (see the module docs).
pub fn shard_slot(shard_id: &str) -> u64 {
    let digits = shard_id.len()
        - shard_id
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
    shard_id[shard_id.len() - digits..]
        .parse()
        .unwrap_or_else(|_| fnv1a(shard_id.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinesis_ids_use_their_number() {
        assert_eq!(shard_slot("shardId-000000000000"), 0);
        assert_eq!(shard_slot("shardId-000000000007"), 7);
        // 20 digits overflow u64: hashed, but still stable.
        let long = "shardId-99999999999999999999";
        assert_eq!(shard_slot(long), fnv1a(long.as_bytes()));
        // Reference value of FNV-1a 64 for "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(shard_slot("custom"), fnv1a(b"custom"));
    }

    #[test]
    fn every_shard_has_exactly_one_owner_and_shares_are_even() {
        let shards: Vec<String> = (0..12).map(|i| format!("shardId-{i:012}")).collect();
        for count in 1..=4u32 {
            let replicas: Vec<_> = (0..count)
                .map(|index| Assignment { index, count })
                .collect();
            for shard in &shards {
                assert_eq!(
                    replicas.iter().filter(|r| r.owns(shard)).count(),
                    1,
                    "{shard}"
                );
            }
            for r in &replicas {
                let owned = shards.iter().filter(|s| r.owns(s)).count();
                assert_eq!(owned, 12 / count as usize, "replica {} of {count}", r.index);
            }
        }
        // Children of 0 and 1 after a 2 -> 4 reshard (shards 2..=5) split 2/2.
        let two = |index| Assignment { index, count: 2 };
        let children: Vec<String> = (2..6).map(|i| format!("shardId-{i:012}")).collect();
        assert_eq!(children.iter().filter(|s| two(0).owns(s)).count(), 2);
    }
}
