//! The transcoder benchmark's Rust side (driven by `bench/run.sh`):
//!
//! - `generate DIR EVENTS OBJECTS`: realistic Segment-style events (nested
//!   properties, ~600 bytes of JSON each, several event names, some pages and
//!   identifies), written as raw archive objects the way the collector and
//!   the archiver build them (`DIR/raw-N.pb.zst`) and as the same events in
//!   NDJSON for the baseline (`DIR/events-N.ndjson`), plus `DIR/meta.json`.
//! - `run DIR`: transcodes every raw object in turn on this thread and
//!   prints one JSON line: events, wall and CPU seconds, events/s, peak RSS.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Instant;

use sluice_events::proto::{ArchiveHeader, ArchivedRecord, CollectorMeta, Envelope, Source};
use sluice_events::{
    ArchiveWriter, IngestContext, Limits, encode_record, encoded_len_in_batch, envelope_from_json,
};
use sluice_testkit::Xorshift;

/// Events per aggregated stream record (~1 MiB Kinesis record limit).
const EVENTS_PER_RECORD: usize = 500;
const T0_US: i64 = 1_714_564_800_000_000;

const PRODUCTS: &[&str] = &["Widget", "Gadget", "Sprocket", "Gizmo", "Doohickey"];
const CATEGORIES: &[(&str, &str)] = &[
    ("tools", "hand"),
    ("garden", "outdoor"),
    ("kitchen", "cookware"),
];

fn event_json(i: u64, rng: &mut Xorshift) -> String {
    let product = PRODUCTS[rng.below(PRODUCTS.len())];
    let (primary, secondary) = CATEGORIES[rng.below(CATEGORIES.len())];
    let user = rng.below(50_000);
    let ts = T0_US + i as i64 * 1_000;
    let time = |us: i64| sluice_events::time::format_us(us);
    let context = format!(
        r#"{{"library":{{"name":"analytics.js","version":"4.1.{v}"}},"page":{{"path":"/p/{user}","title":"{product} store"}},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0","ip":"203.0.113.{ip}","locale":"en-US"}}"#,
        v = rng.below(9),
        ip = rng.below(250),
    );
    let common = format!(
        r#""messageId":"msg-{i:012}","userId":"user-{user}","anonymousId":"anon-{user:08x}","timestamp":"{}","sentAt":"{}","context":{context}"#,
        time(ts),
        time(ts + 150_000),
    );
    let mut out = String::with_capacity(640);
    match rng.below(20) {
        0 => write!(
            out,
            r#"{{"type":"identify",{common},"traits":{{"email":"user{user}@example.com","plan":{{"name":"pro","seats":{}}},"created_at":"{}"}}}}"#,
            rng.below(50),
            time(ts - 86_400_000_000),
        ),
        1 | 2 => write!(
            out,
            r#"{{"type":"page","name":"{product} page",{common},"properties":{{"path":"/p/{user}","title":"{product}","url":"https://www.example.com/p/{user}","search":"?ref=home"}}}}"#,
        ),
        n => {
            let event = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Video Played", "Search Performed"]
                [n % 6];
            write!(
                out,
                r#"{{"type":"track","event":"{event}",{common},"properties":{{"product_id":"sku-{}","name":"{product} {}","price":{}.{:02},"quantity":{},"currency":"EUR","in_stock":{},"category":{{"primary":"{primary}","secondary":"{secondary}"}},"tags":["new","sale"]}}}}"#,
                rng.below(100_000),
                rng.below(100),
                rng.below(500),
                rng.below(100),
                1 + rng.below(5),
                rng.below(2) == 0,
            )
        }
    }
    .expect("writing to a String");
    out
}

fn generate(dir: &Path, events: u64, objects: u64) {
    fs::create_dir_all(dir).unwrap();
    let ctx = IngestContext {
        received_at_us: T0_US + 200_000,
        batch_sent_at_us: None,
        default_type: None,
    };
    // As the collector adds them to every event of a request.
    let source = Source {
        name: "bench".into(),
        write_key: String::new(),
    };
    let collector = CollectorMeta {
        protocol: "segment".into(),
        host: "collector-0".into(),
        version: "0.1.0".into(),
        client_ip: "203.0.113.1".into(),
    };
    let limits = Limits::default();
    let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
    let per_object = events / objects;
    let (mut json_bytes, mut envelope_bytes, mut raw_bytes) = (0u64, 0u64, 0u64);
    for object in 0..objects {
        let mut ndjson = String::new();
        let mut writer = ArchiveWriter::new();
        let mut batch = Vec::with_capacity(EVENTS_PER_RECORD);
        let mut sequence = object * 1_000_000;
        let first = sequence;
        let mut object_envelope_bytes = 0u64;
        for i in 0..per_object {
            let json = event_json(object * per_object + i, &mut rng);
            ndjson.push_str(&json);
            ndjson.push('\n');
            let envelope = Envelope {
                source: Some(source.clone()),
                collector: Some(collector.clone()),
                ..envelope_from_json(&json, &ctx, &limits).expect("generated events are valid")
            };
            object_envelope_bytes += encoded_len_in_batch(&envelope) as u64;
            batch.push(envelope);
            if batch.len() == EVENTS_PER_RECORD || i + 1 == per_object {
                writer.push(&ArchivedRecord {
                    sequence_number: sequence.to_string(),
                    arrival_us: T0_US + 300_000,
                    partition_key: format!("pk-{sequence}"),
                    data: encode_record(&batch).to_vec(),
                });
                batch.clear();
                sequence += 1;
            }
        }
        let header = ArchiveHeader {
            stream: "events".into(),
            shard_id: "shardId-000000000000".into(),
            first_sequence: first.to_string(),
            last_sequence: (sequence - 1).to_string(),
            record_count: sequence - first,
            created_at_us: T0_US + 60_000_000,
        };
        let raw = writer.finish(&header);
        let key = format!(
            "raw/events/dt=2024-05-01/hh=12/shardId-000000000000/{first}-{}.pb.zst",
            sequence - 1
        );
        fs::write(dir.join(format!("raw-{object}.pb.zst")), &raw).unwrap();
        fs::write(dir.join(format!("raw-{object}.key")), key).unwrap();
        fs::write(dir.join(format!("events-{object}.ndjson")), &ndjson).unwrap();
        json_bytes = json_bytes.max(ndjson.len() as u64);
        envelope_bytes = envelope_bytes.max(object_envelope_bytes);
        raw_bytes = raw_bytes.max(raw.len() as u64);
    }
    let meta = serde_json::json!({
        "objects": objects,
        "events": per_object * objects,
        "events_per_object": per_object,
        "avg_event_json_bytes": json_bytes / per_object.max(1),
        "max_object_ndjson_bytes": json_bytes,
        "max_object_uncompressed_bytes": envelope_bytes,
        "max_object_raw_bytes": raw_bytes,
    });
    fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    println!("{meta}");
}

/// A number field of `/proc/self/status` (`VmHWM:  1234 kB`).
fn status_field(name: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

fn peak_rss_bytes() -> u64 {
    status_field("VmHWM") * 1024
}

/// CPU time this thread has run, from the scheduler (nanoseconds): the
/// rate per core, whatever else the machine is doing. `run` checks that
/// the process has no other thread, so this is all of its CPU time, as
/// pyarrow's side counts.
fn thread_cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn run(dir: &Path) {
    let mut objects: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".pb.zst")
                .and_then(|n| n.strip_prefix("raw-"))
                .map(|n| n.parse::<u32>().unwrap())
        })
        .collect();
    objects.sort();
    let (mut events, mut seconds, mut cpu_seconds) = (0u64, 0f64, 0f64);
    let (mut bytes_out, mut tables) = (0usize, 0usize);
    for n in objects {
        let raw = fs::read(dir.join(format!("raw-{n}.pb.zst"))).unwrap();
        let key = fs::read_to_string(dir.join(format!("raw-{n}.key"))).unwrap();
        let (start, cpu_start) = (Instant::now(), thread_cpu_seconds());
        let output = sluice_transcoder::transcode(&key, &raw).unwrap();
        seconds += start.elapsed().as_secs_f64();
        cpu_seconds += thread_cpu_seconds() - cpu_start;
        events += output.events;
        bytes_out += output.files.iter().map(|f| f.body.len()).sum::<usize>();
        tables = tables.max(output.files.len());
        assert!(output.rejected.is_empty(), "{:?}", output.rejected);
    }
    assert_eq!(
        status_field("Threads"),
        1,
        "CPU time is counted on this thread only"
    );
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "events_per_second": events as f64 / seconds,
            "events_per_cpu_second": events as f64 / cpu_seconds,
            "parquet_bytes": bytes_out,
            "tables_per_object": tables,
            "max_rss_bytes": peak_rss_bytes(),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 5 => generate(
            Path::new(&args[2]),
            args[3].parse().expect("EVENTS"),
            args[4].parse().expect("OBJECTS"),
        ),
        Some("run") if args.len() == 3 => {
            // As the transcoder binary does.
            sluice_runtime::keep_freed_memory();
            run(Path::new(&args[2]))
        }
        _ => {
            eprintln!("usage: bench_transcode generate DIR EVENTS OBJECTS | run DIR");
            std::process::exit(2);
        }
    }
}
