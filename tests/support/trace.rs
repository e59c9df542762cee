//! Where missing events were lost: in the stream or not (collector), in a
//! raw object or not (archiver), with a load recorded for that object or
//! not (transcoder, loader). Run when a test finds events missing, so the
//! failure names the stage.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;

use sluice_backends::config::Backends;
use sluice_backends::{SequenceNumber, StartPosition};
use sluice_events::decode_record;

use crate::warehouse::Warehouse;

/// A report on `missing` (event ids): which stream records hold them, the
/// raw objects covering those records, the checkpoints of their shards, and
/// whether the loader recorded loading those objects.
pub async fn trace_missing(
    backends: &Backends,
    warehouse: &Warehouse,
    missing: &BTreeSet<String>,
) -> String {
    if missing.is_empty() {
        return String::new();
    }
    let mut report = String::from("tracing the missing events:\n");
    // (shard, sequence number) -> missing ids in that record.
    let mut records: BTreeMap<(String, SequenceNumber), usize> = BTreeMap::new();
    let mut in_stream = HashSet::new();
    let shards = backends.stream.list_shards().await.expect("list shards");
    for shard in &shards {
        let mut reader = backends
            .stream
            .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .expect("open a shard");
        loop {
            let batch = reader.next_batch(10_000).await.expect("read a shard");
            for record in &batch.records {
                let events = decode_record(&record.data).expect("a collector record");
                for event in events.iter().filter(|e| missing.contains(&e.event_id)) {
                    in_stream.insert(event.event_id.clone());
                    *records
                        .entry((shard.shard_id.clone(), record.sequence_number.clone()))
                        .or_default() += 1;
                }
            }
            if batch.records.is_empty() && batch.millis_behind_latest.unwrap_or(0) == 0 {
                break;
            }
        }
    }
    let _ = writeln!(
        report,
        "- {} of {} missing ids are in the stream, in records (shard, sequence number, ids): {:?}",
        in_stream.len(),
        missing.len(),
        records.iter().take(20).collect::<Vec<_>>()
    );

    let raw = backends.objects.list("raw/").await.expect("list raw/");
    let ranges: Vec<(String, String, SequenceNumber, SequenceNumber)> = raw
        .iter()
        .filter_map(|object| {
            // raw/<stream>/dt=.../hh=.../<shard>/<first>-<last>.pb.zst
            let mut parts = object.key.rsplit('/');
            let (first, last) = parts.next()?.strip_suffix(".pb.zst")?.split_once('-')?;
            let shard = parts.next()?;
            Some((
                object.key.clone(),
                shard.to_owned(),
                SequenceNumber::parse(first)?,
                SequenceNumber::parse(last)?,
            ))
        })
        .collect();
    let _ = writeln!(report, "- {} raw objects", ranges.len());
    let mut covering = BTreeSet::new();
    for (shard, sequence) in records.keys() {
        let objects: Vec<&String> = ranges
            .iter()
            .filter(|(_, s, first, last)| s == shard && first <= sequence && sequence <= last)
            .map(|(key, ..)| key)
            .collect();
        let _ = writeln!(
            report,
            "- record {shard}/{sequence} is in raw objects {objects:?}"
        );
        covering.extend(objects.into_iter().cloned());
    }
    for shard in records.keys().map(|(s, _)| s).collect::<BTreeSet<_>>() {
        let key = format!("checkpoints/{}/{shard}.json", backends.stream_name);
        let checkpoint = backends.objects.get(&key).await.expect("get a checkpoint");
        let text = checkpoint.map(|c| String::from_utf8_lossy(&c.body).into_owned());
        let _ = writeln!(report, "- checkpoint {key}: {text:?}");
    }
    for key in &covering {
        let loads = warehouse
            .query_params(
                "SELECT tables FROM _sluice_loads WHERE manifest_id = $1",
                &[key],
            )
            .await;
        let tables: Vec<String> = loads.iter().map(|row| row.get(0)).collect();
        let _ = writeln!(report, "- loads of {key}: {tables:?}");
    }
    report
}
