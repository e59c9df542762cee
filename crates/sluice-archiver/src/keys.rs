//! Where things live in the object store.
//!
//! A raw object's key is a function of its content only: stream, shard,
//! sequence range and the first record's arrival hour (the stream's clock,
//! not ours). So a range written twice, after a crash or by two replicas,
//! lands on the same key: a rewrite, never a second copy.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sluice_backends::SequenceNumber;

pub const OBJECT_SUFFIX: &str = ".pb.zst";

/// `raw/<stream>/dt=YYYY-MM-DD/hh=HH/<shard>/<first>-<last>.pb.zst`, the date
/// and hour (UTC) of `first_arrival`.
pub fn object_key(
    stream: &str,
    shard_id: &str,
    first: &SequenceNumber,
    last: &SequenceNumber,
    first_arrival: SystemTime,
) -> String {
    let at: DateTime<Utc> = first_arrival.into();
    format!(
        "raw/{stream}/dt={}/hh={}/{shard_id}/{first}-{last}{OBJECT_SUFFIX}",
        at.format("%Y-%m-%d"),
        at.format("%H"),
    )
}

/// `raw/<stream>/`: every raw object of the stream.
pub fn raw_prefix(stream: &str) -> String {
    format!("raw/{stream}/")
}

/// `checkpoints/<stream>/<shard>.json`.
pub fn checkpoint_key(stream: &str, shard_id: &str) -> String {
    format!("checkpoints/{stream}/{shard_id}.json")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn seq(n: u128) -> SequenceNumber {
        SequenceNumber::from_u128(n)
    }

    #[test]
    fn object_key_follows_the_layout() {
        // 2024-03-05T23:59:59.999Z
        let arrival = UNIX_EPOCH + Duration::from_millis(1_709_683_199_999);
        assert_eq!(
            object_key("events", "shardId-000000000003", &seq(9), &seq(10), arrival),
            "raw/events/dt=2024-03-05/hh=23/shardId-000000000003/9-10.pb.zst"
        );
        // One millisecond later is the next day and hour.
        let next = arrival + Duration::from_millis(1);
        assert!(
            object_key("events", "s", &seq(9), &seq(10), next)
                .starts_with("raw/events/dt=2024-03-06/hh=00/s/")
        );
        assert!(
            object_key("events", "s", &seq(1), &seq(2), arrival).starts_with(&raw_prefix("events"))
        );
    }

    #[test]
    fn object_key_is_deterministic_and_keeps_sequence_digits() {
        let arrival = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let aws = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
            .unwrap();
        let a = object_key("s", "shardId-000000000000", &aws, &aws, arrival);
        assert_eq!(
            a,
            object_key("s", "shardId-000000000000", &aws, &aws, arrival)
        );
        assert!(a.ends_with(&format!("/{aws}-{aws}.pb.zst")));
    }

    #[test]
    fn checkpoint_key_follows_the_layout() {
        assert_eq!(
            checkpoint_key("events", "shardId-000000000001"),
            "checkpoints/events/shardId-000000000001.json"
        );
    }
}
