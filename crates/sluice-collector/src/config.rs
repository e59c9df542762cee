//! `[collector]`: ports, limits, sources and the stream writer's knobs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_events::Limits;

use crate::CollectorError;

/// Kinesis refuses records over 1 MiB. A record's uncompressed batch is kept
/// this far below it, so even incompressible events (zstd then adds a few KiB
/// of framing) and the partition key fit.
pub const MAX_RECORD_PLAIN_BYTES: usize = sluice_backends::aws::MAX_RECORD_BYTES - 64 * 1024;

/// When the collector answers a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// 200 only after every accepted event of the request is in the stream.
    #[default]
    Stream,
    /// 200 once the events are in the bounded in-memory buffer; the buffer
    /// is flushed on shutdown. Lower latency, loses the buffer on a crash.
    Buffered,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address the binary binds its three ports on.
    pub listen_address: String,
    pub http_port: u16,
    pub grpc_port: u16,
    pub admin_port: u16,
    /// Per-event limits (`[collector.limits]`: max_event_bytes, max_depth,
    /// max_properties, max_id_bytes).
    pub limits: Limits,
    /// A request body, after decompression.
    pub max_request_bytes: usize,
    /// Accept writes without a known write key (source "anonymous").
    pub allow_anonymous: bool,
    /// Source name -> write key (`[collector.sources] web = "wk_..."`).
    pub sources: BTreeMap<String, String>,
    /// Origins allowed to call from a browser; `*` allows any (the Origin is
    /// echoed, as credentials are allowed).
    pub cors_origins: Vec<String>,
    /// Take the client IP from the first `X-Forwarded-For` entry (behind a
    /// load balancer) instead of the peer address.
    pub trust_forwarded_for: bool,
    /// This instance's name in each event's collector metadata; empty means
    /// `$HOSTNAME`.
    pub host: String,
    /// Uncompressed size at which a stream record is closed. 512 KiB of JSON
    /// envelopes compresses to roughly 50-100 KB: a few full 25 KB PUT
    /// payload units (so little is paid for a partly filled last unit), about
    /// 10-20 records/s at a shard's 1 MB/s limit (far below its 1,000
    /// records/s) and one zstd call of about a millisecond.
    pub record_bytes: usize,
    /// The longest an event waits for others to join it in a record. It
    /// waits only while a call to the stream is in flight, or less than
    /// half this since the last call started, so calls are spaced but a
    /// quiet collector sends at once.
    pub linger_ms: u64,
    /// Bytes of accepted events not yet in the stream. When full, HTTP
    /// answers 503 with `Retry-After` and gRPC `RESOURCE_EXHAUSTED`.
    pub max_in_flight_bytes: usize,
    /// PutRecords calls in flight at once.
    pub max_concurrent_puts: usize,
    pub ack: AckMode,
    /// How long to keep buffering rejected events before writing them under
    /// `rejected/` in the object store.
    pub rejected_flush_ms: u64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            listen_address: "0.0.0.0".into(),
            http_port: 8080,
            grpc_port: 50051,
            admin_port: 9090,
            limits: Limits::default(),
            max_request_bytes: 5 * 1024 * 1024,
            allow_anonymous: false,
            sources: BTreeMap::new(),
            cors_origins: vec!["*".into()],
            trust_forwarded_for: false,
            host: String::new(),
            record_bytes: 512 * 1024,
            linger_ms: 5,
            max_in_flight_bytes: 64 * 1024 * 1024,
            max_concurrent_puts: 8,
            ack: AckMode::Stream,
            rejected_flush_ms: 1_000,
        }
    }
}

impl CollectorConfig {
    /// Refuses settings that could never work, naming the key and the limit.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let bad = |msg: String| Err(CollectorError::Config(msg));
        if !(1..=MAX_RECORD_PLAIN_BYTES).contains(&self.record_bytes) {
            return bad(format!(
                "collector.record_bytes is {}, must be 1..={MAX_RECORD_PLAIN_BYTES} (Kinesis' 1 MiB record limit)",
                self.record_bytes
            ));
        }
        // An event larger than a record goes alone in its record, which must
        // still fit the record limit.
        if self.limits.max_event_bytes > MAX_RECORD_PLAIN_BYTES / 2 {
            return bad(format!(
                "collector.limits.max_event_bytes is {}, must be at most {}",
                self.limits.max_event_bytes,
                MAX_RECORD_PLAIN_BYTES / 2
            ));
        }
        if self.max_request_bytes == 0 || self.max_in_flight_bytes < self.max_request_bytes {
            return bad(format!(
                "collector.max_in_flight_bytes ({}) must be at least collector.max_request_bytes ({}), which must be positive",
                self.max_in_flight_bytes, self.max_request_bytes
            ));
        }
        if self.max_in_flight_bytes > u32::MAX as usize {
            return bad(format!(
                "collector.max_in_flight_bytes is {}, must be at most {}",
                self.max_in_flight_bytes,
                u32::MAX
            ));
        }
        if self.max_concurrent_puts == 0 {
            return bad("collector.max_concurrent_puts must be at least 1".into());
        }
        let mut keys = std::collections::HashSet::new();
        for (name, key) in &self.sources {
            if key.is_empty() {
                return bad(format!("collector.sources.{name}: the write key is empty"));
            }
            if !keys.insert(key) {
                return bad(format!(
                    "collector.sources.{name}: write key already used by another source"
                ));
            }
        }
        Ok(())
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// The configured host, else `$HOSTNAME`, else "collector".
    pub fn host_name(&self) -> String {
        if !self.host.is_empty() {
            return self.host.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "collector".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_named() {
        assert!(CollectorConfig::default().validate().is_ok());
        let c = CollectorConfig {
            record_bytes: 2 << 20,
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("record_bytes")
        );
        let mut c = CollectorConfig::default();
        c.sources.insert("a".into(), "k".into());
        c.sources.insert("b".into(), "k".into());
        assert!(c.validate().unwrap_err().to_string().contains("sources.b"));
    }

    #[test]
    fn reads_toml_keys() {
        let c: CollectorConfig = serde_json::from_value(serde_json::json!({
            "http_port": 1, "ack": "buffered", "sources": {"web": "wk_1"},
            "limits": {"max_event_bytes": 100}
        }))
        .unwrap();
        assert_eq!(c.ack, AckMode::Buffered);
        assert_eq!(c.limits.max_event_bytes, 100);
        assert_eq!(c.limits.max_depth, Limits::default().max_depth);
        assert_eq!(c.sources["web"], "wk_1");
    }
}
