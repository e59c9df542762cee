use std::collections::HashSet;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use sluice_backends::config::{BackendsConfig, connect};
use sluice_backends::{ShardReader, StartPosition};
use sluice_events::proto::{Envelope, EventType};
use sluice_events::{decode_record, time::format_us};

#[derive(Args)]
pub struct TailArgs {
    /// Only events with this name (track events) or type (identify, page, ...).
    #[arg(long)]
    event: Option<String>,
    /// Start from the oldest retained record instead of from now.
    #[arg(long)]
    from_start: bool,
}

fn matches(envelope: &Envelope, filter: Option<&str>) -> bool {
    let kind = EventType::try_from(envelope.r#type).unwrap_or_default();
    filter.is_none_or(|f| envelope.event == f || kind_name(kind) == f)
}

fn kind_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Track => "track",
        EventType::Identify => "identify",
        EventType::Page => "page",
        EventType::Screen => "screen",
        EventType::Group => "group",
        EventType::Alias => "alias",
        EventType::Unspecified => "unspecified",
    }
}

fn raw_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn line(e: &Envelope) -> String {
    json!({
        "event_id": e.event_id,
        "type": kind_name(EventType::try_from(e.r#type).unwrap_or_default()),
        "event": e.event,
        "user_id": e.user_id,
        "anonymous_id": e.anonymous_id,
        "timestamp": format_us(e.timestamp_us),
        "received_at": format_us(e.received_at_us),
        "properties": raw_json(&e.properties_json),
        "traits": raw_json(&e.traits_json),
    })
    .to_string()
}

/// Follows every shard, including children that appear after resharding,
/// polling each about five times a second (the Kinesis per-shard limit).
pub async fn run(config: &BackendsConfig, args: TailArgs) -> anyhow::Result<()> {
    let backends = connect(config).await?;
    let stream = backends.stream;
    let mut start = if args.from_start {
        StartPosition::TrimHorizon
    } else {
        StartPosition::Latest
    };
    let mut followed = HashSet::new();
    let mut readers: Vec<Box<dyn ShardReader>> = Vec::new();
    loop {
        for shard in stream.list_shards().await? {
            // Closed shards hold nothing new when tailing from now.
            let wanted = args.from_start || shard.is_open();
            if wanted && followed.insert(shard.shard_id.clone()) {
                readers.push(stream.open_shard(&shard.shard_id, start.clone()).await?);
            }
        }
        // A shard that appears later (a reshard's child) is read from its
        // start, or what it received before we noticed it would be missed.
        start = StartPosition::TrimHorizon;
        for _ in 0..25 {
            let mut ended = Vec::new();
            for (i, reader) in readers.iter_mut().enumerate() {
                let batch = reader.next_batch(1000).await?;
                for record in &batch.records {
                    match decode_record(&record.data) {
                        Ok(events) => events
                            .iter()
                            .filter(|e| matches(e, args.event.as_deref()))
                            .for_each(|e| println!("{}", line(e))),
                        Err(e) => eprintln!("skipping record {}: {e}", record.sequence_number),
                    }
                }
                if batch.shard_ended {
                    ended.push(i);
                }
            }
            ended
                .into_iter()
                .rev()
                .for_each(|i| drop(readers.remove(i)));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
