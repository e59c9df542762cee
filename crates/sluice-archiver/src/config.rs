//! The `[archiver]` configuration section, checked against the service
//! limits it must respect before anything starts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ArchiverError;

/// Kinesis allows five GetRecords calls per second per shard, shared by every
/// consumer of the shard.
pub const MAX_GETS_PER_SEC_LIMIT: u32 = 5;
/// GetRecords returns at most this many records per call.
pub const MAX_RECORDS_PER_READ: u32 = 10_000;
/// One object holds at most this much (framed, before compression); S3's
/// single PUT limit is 5 GiB, and the transcoder holds an object in memory.
pub const MAX_OBJECT_BYTES_LIMIT: u64 = 1 << 30;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiverConfig {
    /// Port of `/metrics`, `/healthz`, `/readyz`.
    pub admin_port: u16,
    /// An object is written once its framed records reach this size.
    pub max_object_bytes: u64,
    /// ... or once its first record has waited this long.
    pub max_object_age_secs: u64,
    /// This replica's share of the shards (see [`crate::assignment`]). When
    /// unset, the ordinal at the end of `POD_NAME` (`stream-archiver-2`, as a
    /// StatefulSet names its pods), else 0.
    pub replica_index: Option<u32>,
    pub replica_count: u32,
    /// How often the shard list is read to pick up new shards.
    pub shard_discovery_interval_secs: u64,
    /// GetRecords calls per second per shard, at most 5.
    pub max_gets_per_sec: u32,
    /// Records asked for per GetRecords call, at most 10,000.
    pub records_per_read: u32,
    /// Wait after a read that found nothing new, so idle shards are not polled
    /// at the full rate.
    pub idle_poll_millis: u64,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            admin_port: 9090,
            max_object_bytes: 64 << 20,
            max_object_age_secs: 60,
            replica_index: None,
            replica_count: 1,
            shard_discovery_interval_secs: 30,
            max_gets_per_sec: MAX_GETS_PER_SEC_LIMIT,
            records_per_read: MAX_RECORDS_PER_READ,
            idle_poll_millis: 1_000,
        }
    }
}

/// A validated [`ArchiverConfig`], in the units the archiver works in.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub max_object_bytes: u64,
    pub max_object_age: Duration,
    pub replica_index: u32,
    pub replica_count: u32,
    pub discovery_interval: Duration,
    /// The shortest time between the starts of two reads of one shard.
    pub read_interval: Duration,
    pub records_per_read: usize,
    pub idle_poll: Duration,
}

impl ArchiverConfig {
    /// Checks every field against its limit; `pod_name` is the `POD_NAME`
    /// environment variable, the fallback for `replica_index`.
    pub(crate) fn settings(&self, pod_name: Option<&str>) -> Result<Settings, ArchiverError> {
        let bad = |field: &str, why: String| {
            Err(ArchiverError::Config(format!("archiver.{field} {why}")))
        };
        if !(1..=MAX_OBJECT_BYTES_LIMIT).contains(&self.max_object_bytes) {
            return bad(
                "max_object_bytes",
                format!(
                    "must be 1..={MAX_OBJECT_BYTES_LIMIT}, is {}",
                    self.max_object_bytes
                ),
            );
        }
        if self.max_object_age_secs == 0 {
            return bad("max_object_age_secs", "must be at least 1".into());
        }
        if self.replica_count == 0 {
            return bad("replica_count", "must be at least 1".into());
        }
        let replica_index = match self.replica_index {
            Some(index) => index,
            None => pod_name.and_then(pod_ordinal).unwrap_or(0),
        };
        if replica_index >= self.replica_count {
            return bad(
                "replica_index",
                format!(
                    "must be below replica_count ({}), is {replica_index}",
                    self.replica_count
                ),
            );
        }
        if self.shard_discovery_interval_secs == 0 {
            return bad("shard_discovery_interval_secs", "must be at least 1".into());
        }
        if !(1..=MAX_GETS_PER_SEC_LIMIT).contains(&self.max_gets_per_sec) {
            return bad(
                "max_gets_per_sec",
                format!(
                    "must be 1..={MAX_GETS_PER_SEC_LIMIT} (the Kinesis per-shard read limit), is {}",
                    self.max_gets_per_sec
                ),
            );
        }
        if !(1..=MAX_RECORDS_PER_READ).contains(&self.records_per_read) {
            return bad(
                "records_per_read",
                format!(
                    "must be 1..={MAX_RECORDS_PER_READ}, is {}",
                    self.records_per_read
                ),
            );
        }
        Ok(Settings {
            max_object_bytes: self.max_object_bytes,
            max_object_age: Duration::from_secs(self.max_object_age_secs),
            replica_index,
            replica_count: self.replica_count,
            discovery_interval: Duration::from_secs(self.shard_discovery_interval_secs),
            read_interval: Duration::from_secs(1) / self.max_gets_per_sec,
            records_per_read: self.records_per_read as usize,
            idle_poll: Duration::from_millis(self.idle_poll_millis),
        })
    }
}

/// The StatefulSet ordinal at the end of a pod name: `stream-archiver-2` -> 2.
fn pod_ordinal(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_suited_to_aws() {
        let s = ArchiverConfig::default().settings(None).unwrap();
        assert_eq!(s.max_object_bytes, 64 << 20);
        assert_eq!(s.max_object_age, Duration::from_secs(60));
        assert_eq!(s.read_interval, Duration::from_millis(200));
        assert_eq!((s.replica_index, s.replica_count), (0, 1));
    }

    #[test]
    fn errors_name_the_field_and_the_limit() {
        let config = ArchiverConfig {
            max_gets_per_sec: 6,
            ..Default::default()
        };
        let e = config.settings(None).unwrap_err().to_string();
        assert!(
            e.contains("archiver.max_gets_per_sec") && e.contains("1..=5"),
            "{e}"
        );

        let config = ArchiverConfig {
            records_per_read: 10_001,
            ..Default::default()
        };
        let e = config.settings(None).unwrap_err().to_string();
        assert!(e.contains("records_per_read") && e.contains("10000"), "{e}");

        let config = ArchiverConfig {
            replica_index: Some(2),
            replica_count: 2,
            ..Default::default()
        };
        let e = config.settings(None).unwrap_err().to_string();
        assert!(
            e.contains("replica_index") && e.contains("below replica_count (2)"),
            "{e}"
        );
    }

    #[test]
    fn takes_the_single_machine_object_age_of_one_second() {
        let one = ArchiverConfig {
            max_object_age_secs: 1,
            ..Default::default()
        };
        let s = one.settings(None).unwrap();
        assert_eq!(s.max_object_age, Duration::from_secs(1));
        let zero = ArchiverConfig {
            max_object_age_secs: 0,
            ..Default::default()
        };
        let e = zero.settings(None).unwrap_err().to_string();
        assert!(e.contains("archiver.max_object_age_secs"), "{e}");
    }

    #[test]
    fn replica_index_falls_back_to_the_pod_ordinal() {
        let config = ArchiverConfig {
            replica_count: 3,
            ..Default::default()
        };
        let index = |pod| config.settings(pod).unwrap().replica_index;
        assert_eq!(index(Some("stream-archiver-2")), 2);
        assert_eq!(index(Some("archiver")), 0);
        assert_eq!(index(None), 0);
        let explicit = ArchiverConfig {
            replica_index: Some(1),
            ..config.clone()
        };
        assert_eq!(
            explicit
                .settings(Some("stream-archiver-2"))
                .unwrap()
                .replica_index,
            1
        );
        assert!(config.settings(Some("stream-archiver-7")).is_err());
    }
}
