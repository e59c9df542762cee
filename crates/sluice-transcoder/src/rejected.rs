//! The `rejected` table: events (or whole stream records) that could not be
//! turned into rows, with the reason and everything needed to replay them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{ArrayBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_schema::{DataType, Field};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sluice_events::EnvelopeView;
use sluice_events::proto::ArchivedRecord;
use sluice_events::time::format_us;

use crate::column::{UTC, timestamp_type};

pub const TABLE: &str = "rejected";

/// Why one event or record was refused: a metrics label and a message that
/// names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub cause: &'static str,
    pub reason: String,
}

pub struct RejectedRows {
    source_key: String,
    id: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
    reason: StringBuilder,
    raw: StringBuilder,
    source: StringBuilder,
    /// Rows per cause, for the metrics.
    pub by_cause: BTreeMap<&'static str, u64>,
    min_time_us: i64,
    max_time_us: i64,
}

pub struct FinishedRejected {
    pub columns: Vec<(Field, ArrayRef)>,
    pub min_time_us: i64,
    pub max_time_us: i64,
}

impl RejectedRows {
    pub fn new(source_key: &str) -> Self {
        Self {
            source_key: source_key.to_owned(),
            id: StringBuilder::new(),
            received_at: TimestampMicrosecondBuilder::new(),
            reason: StringBuilder::new(),
            raw: StringBuilder::new(),
            source: StringBuilder::new(),
            by_cause: BTreeMap::new(),
            min_time_us: i64::MAX,
            max_time_us: i64::MIN,
        }
    }

    pub fn rows(&self) -> usize {
        self.id.len()
    }

    fn push(&mut self, id: &str, received_at_us: i64, rejection: Rejection, raw: &str) {
        self.id.append_value(id);
        self.received_at.append_value(received_at_us);
        self.reason.append_value(&rejection.reason);
        self.raw.append_value(raw);
        self.source.append_value(&self.source_key);
        *self.by_cause.entry(rejection.cause).or_default() += 1;
        self.min_time_us = self.min_time_us.min(received_at_us);
        self.max_time_us = self.max_time_us.max(received_at_us);
    }

    /// An event that decoded but cannot become a row. Its JSON fields are
    /// kept as the text they were (they may be what is wrong).
    pub fn event(&mut self, envelope: &EnvelopeView<'_>, rejection: Rejection) {
        let raw = envelope_json(envelope);
        self.push(envelope.event_id, envelope.received_at_us, rejection, &raw);
    }

    /// A stream record whose events could not be decoded at all: its bytes
    /// are kept, base64-encoded, so it can be decoded again once fixed.
    pub fn record(&mut self, shard_id: &str, record: &ArchivedRecord, rejection: Rejection) {
        let raw = json!({
            "shard_id": shard_id,
            "sequence_number": record.sequence_number,
            "arrival": format_us(record.arrival_us),
            "partition_key": record.partition_key,
            "data_base64": STANDARD.encode(&record.data),
        })
        .to_string();
        let id = format!("{shard_id}/{}", record.sequence_number);
        self.push(&id, record.arrival_us, rejection, &raw);
    }

    pub fn finish(mut self) -> FinishedRejected {
        let text = |name: &str, b: &mut StringBuilder| {
            (
                Field::new(name, DataType::Utf8, false),
                Arc::new(b.finish()) as ArrayRef,
            )
        };
        let received_at = (
            Field::new("received_at", timestamp_type(), false),
            Arc::new(self.received_at.finish().with_timezone(UTC)) as ArrayRef,
        );
        FinishedRejected {
            columns: vec![
                text("id", &mut self.id),
                received_at,
                text("reason", &mut self.reason),
                text("raw", &mut self.raw),
                text("source_key", &mut self.source),
            ],
            min_time_us: self.min_time_us,
            max_time_us: self.max_time_us,
        }
    }
}

/// The envelope as JSON, field for field. The source's write key is left
/// out: it is a credential, and the source name identifies it.
fn envelope_json(e: &EnvelopeView<'_>) -> String {
    let time = |us: i64| (us != 0).then(|| format_us(us));
    let collector = e.collector();
    json!({
        "event_id": e.event_id,
        "type": e.event_type().as_str_name(),
        "event": e.event,
        "user_id": e.user_id,
        "anonymous_id": e.anonymous_id,
        "timestamp": time(e.timestamp_us),
        "sent_at": time(e.sent_at_us),
        "received_at": time(e.received_at_us),
        "properties": e.properties_json,
        "context": e.context_json,
        "traits": e.traits_json,
        "name": e.name,
        "group_id": e.group_id,
        "previous_id": e.previous_id,
        "source": e.source().map(|s| s.name),
        "collector": collector.map(|c| json!({
            "protocol": c.protocol,
            "host": c.host,
            "version": c.version,
            "client_ip": c.client_ip,
        })),
    })
    .to_string()
}
