//! Archive throughput from a local stream, against a baseline measured in
//! the same run.
//!
//! The stream (4 shards, on disk) is filled with realistic aggregated
//! records: `encode_record` batches of ~200 Segment-like envelopes with
//! properties and context JSON. Then:
//!
//! - baseline: read every shard from the start and write each record's data
//!   into one zstd file (the archive's level), fsynced: no framing, no
//!   checkpoints, no objects. What archiving cannot beat.
//! - archiver: the real `serve` with the default settings (64 MiB objects,
//!   5 GetRecords/s per shard, 10,000 records per read) except a 1 s object
//!   age (the single-machine setting, so the tail flushes without waiting a
//!   minute), into a local object store, until every checkpoint covers the
//!   last record.
//!
//! Throughput is reported per wall second and per CPU second (user + system
//! of the whole process, so "per core"); the ratio compares the per-core
//! figures, which do not depend on how many cores each side keeps busy.
//! The two sides alternate for three rounds (the archiver into a fresh
//! object store each time) and each side's least-CPU round is compared.
//!
//! `cargo bench -p sluice-archiver --bench archive_throughput`
//! (`BENCH_MB=512` for a larger stream).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_archiver::checkpoint::Checkpoint;
use sluice_archiver::keys::checkpoint_key;
use sluice_archiver::{ArchiverConfig, serve};
use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{
    EventStream, ObjectStore, PutOutcome, PutRecord, SequenceNumber, StartPosition,
};
use sluice_events::encode_record;
use sluice_events::proto::{CollectorMeta, Envelope, EventType, Source};
use tokio_util::sync::CancellationToken;

const SHARDS: u32 = 4;
const ROUNDS: usize = 3;
const EVENTS_PER_RECORD: usize = 200;
const EVENT_NAMES: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Signed Up",
    "Video Played",
    "Search Performed",
    "Coupon Applied",
    "Page Scrolled",
    "Form Submitted",
];

fn envelope(rng: &mut StdRng, i: u64) -> Envelope {
    let user = rng.random_range(0..50_000);
    let received = 1_732_600_000_000_000 + i as i64 * 1_000;
    let event = EVENT_NAMES[rng.random_range(0..EVENT_NAMES.len())];
    let properties = format!(
        r#"{{"product_id":"sku-{}","price":{:.2},"quantity":{},"currency":"USD","category":"cat-{}","in_stock":{},"tags":["t{}","t{}"],"session_seconds":{}}}"#,
        rng.random_range(0..10_000),
        rng.random_range(1.0..500.0),
        rng.random_range(1..5),
        rng.random_range(0..40),
        rng.random_bool(0.8),
        rng.random_range(0..100),
        rng.random_range(0..100),
        rng.random_range(0..3_600),
    );
    let context = format!(
        r#"{{"library":{{"name":"analytics.js","version":"5.2.{}"}},"ip":"10.{}.{}.{}","userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/1{}.0","page":{{"path":"/products/{}","referrer":"https://www.google.com/"}},"locale":"en-US"}}"#,
        rng.random_range(0..9),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(10..30),
        rng.random_range(0..10_000),
    );
    Envelope {
        event_id: format!("{:032x}", rng.random::<u128>()),
        r#type: EventType::Track as i32,
        event: event.into(),
        user_id: format!("user-{user}"),
        anonymous_id: format!("{:032x}", rng.random::<u128>()),
        timestamp_us: received - 150_000,
        sent_at_us: received - 20_000,
        received_at_us: received,
        properties_json: properties,
        context_json: context,
        source: Some(Source {
            name: "web".into(),
            write_key: "wk_live_3f9a".into(),
        }),
        collector: Some(CollectorMeta {
            protocol: "segment".into(),
            host: "collector-0".into(),
            version: "0.1.0".into(),
            client_ip: "10.0.0.1".into(),
        }),
        ..Default::default()
    }
}

/// Fills the stream with about `target_bytes` of aggregated records.
async fn fill(stream: &dyn EventStream, target_bytes: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut records, mut bytes, mut event) = (0u64, 0u64, 0u64);
    while bytes < target_bytes {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        while batch.len() < 100 && batch_bytes < 4 << 20 {
            let events: Vec<Envelope> = (0..EVENTS_PER_RECORD)
                .map(|_| {
                    event += 1;
                    envelope(&mut rng, event)
                })
                .collect();
            let data = encode_record(&events);
            batch_bytes += data.len();
            batch.push(PutRecord {
                partition_key: format!("pk-{}", rng.random::<u32>()),
                data,
                explicit_hash_key: None,
            });
        }
        records += batch.len() as u64;
        for outcome in stream.put_records(batch).await.expect("put_records") {
            assert!(matches!(outcome, PutOutcome::Written { .. }), "{outcome:?}");
        }
        bytes += batch_bytes as u64;
    }
    (records, bytes)
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

struct Measured {
    wall: f64,
    cpu: f64,
}

/// The round that used the least CPU.
fn best(rounds: &[Measured]) -> &Measured {
    rounds
        .iter()
        .min_by(|a, b| a.cpu.total_cmp(&b.cpu))
        .expect("at least one round")
}

async fn measure<F: std::future::Future<Output = ()>>(work: F) -> Measured {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    work.await;
    Measured {
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
    }
}

/// Reads every shard to its end and writes the records into one zstd file.
async fn baseline(stream: &dyn EventStream, out: &std::path::Path) -> (u64, u64) {
    let file = std::fs::File::create(out).unwrap();
    let mut encoder = zstd::stream::Encoder::new(std::io::BufWriter::new(file), 3).unwrap();
    let (mut records, mut bytes) = (0u64, 0u64);
    for shard in stream.list_shards().await.unwrap() {
        let mut reader = stream
            .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .unwrap();
        loop {
            let batch = reader.next_batch(10_000).await.unwrap();
            if batch.records.is_empty() {
                break;
            }
            for record in batch.records {
                records += 1;
                bytes += record.data.len() as u64;
                encoder.write_all(&record.data).unwrap();
            }
        }
    }
    let file = encoder.finish().unwrap().into_inner().unwrap();
    file.sync_all().unwrap();
    (records, bytes)
}

/// The last sequence number of every shard.
async fn tips(stream: &dyn EventStream) -> Vec<(String, SequenceNumber)> {
    let mut tips = Vec::new();
    for shard in stream.list_shards().await.unwrap() {
        let mut reader = stream
            .open_shard(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .unwrap();
        let mut last = None;
        loop {
            let batch = reader.next_batch(10_000).await.unwrap();
            match batch.records.last() {
                Some(r) => last = Some(r.sequence_number.clone()),
                None => break,
            }
        }
        tips.push((shard.shard_id, last.expect("every shard has records")));
    }
    tips
}

async fn archive(
    stream: Arc<dyn EventStream>,
    objects: Arc<dyn ObjectStore>,
    tips: &[(String, SequenceNumber)],
) {
    let config = ArchiverConfig {
        max_object_age_secs: 1,
        shard_discovery_interval_secs: 1,
        ..ArchiverConfig::default()
    };
    let shutdown = CancellationToken::new();
    let task = {
        let (objects, shutdown) = (objects.clone(), shutdown.clone());
        tokio::spawn(async move {
            serve(
                config,
                stream,
                "bench".into(),
                objects,
                &Registry::new(),
                shutdown,
            )
            .await
            .unwrap();
        })
    };
    loop {
        let mut done = true;
        for (shard, tip) in tips {
            let object = objects.get(&checkpoint_key("bench", shard)).await.unwrap();
            let at = object.and_then(|o| {
                serde_json::from_slice::<Checkpoint>(&o.body)
                    .unwrap()
                    .sequence
            });
            done &= at.as_ref() == Some(tip);
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::main]
async fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStream::open(dir.path().join("stream"), SHARDS).unwrap();
    let stream: Arc<dyn EventStream> = Arc::new(local);
    let (written_records, written_bytes) = fill(stream.as_ref(), mb << 20).await;
    let tips = tips(stream.as_ref()).await;
    println!(
        "stream: {SHARDS} shards, {written_records} aggregated records of {EVENTS_PER_RECORD} events, {:.1} MB",
        written_bytes as f64 / 1e6
    );

    // Rounds alternate the two sides, and each side's best round counts:
    // on a shared machine a round can lose CPU time to cache contention
    // from other processes, which says nothing about the code.
    let (mut bases, mut archs, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let (mut records, mut bytes) = (0, 0);
    for round in 0..ROUNDS {
        bases.push(
            measure(async {
                (records, bytes) =
                    baseline(stream.as_ref(), &dir.path().join("baseline.zst")).await;
            })
            .await,
        );
        assert_eq!(records, written_records);
        let objects: Arc<dyn ObjectStore> =
            Arc::new(LocalObjectStore::open(dir.path().join(format!("objects-{round}"))).unwrap());
        archs.push(measure(archive(stream.clone(), objects.clone(), &tips)).await);
        raw = objects.list("raw/bench/").await.unwrap();
    }
    let archived_bytes: u64 = raw.iter().map(|m| m.size).sum();

    let mb_ = bytes as f64 / 1e6;
    let report = |name: &str, m: &Measured| {
        println!(
            "{name:>9}: {:6.2} s wall, {:6.2} s cpu | {:7.1} MB/s {:8.0} records/s wall | {:7.1} MB/s {:8.0} records/s per core",
            m.wall,
            m.cpu,
            mb_ / m.wall,
            records as f64 / m.wall,
            mb_ / m.cpu,
            records as f64 / m.cpu,
        );
    };
    for (round, (base, arch)) in bases.iter().zip(&archs).enumerate() {
        println!("round {}:", round + 1);
        report("baseline", base);
        report("archiver", arch);
        println!(
            "    ratio (archiver / baseline, per core): {:.0}%",
            100.0 * base.cpu / arch.cpu
        );
    }
    let (base, arch) = (best(&bases), best(&archs));
    println!("best of {ROUNDS} rounds:");
    report("baseline", base);
    report("archiver", arch);
    println!(
        "archiver: {} objects, {:.1} MB written",
        raw.len(),
        archived_bytes as f64 / 1e6
    );
    println!(
        "ratio (archiver / baseline, per core): {:.0}% (wall: {:.0}%); target >= 80%",
        100.0 * base.cpu / arch.cpu,
        100.0 * base.wall / arch.wall,
    );
}
