//! Rows per second loaded into PostgreSQL from Parquet, against the limit:
//! `psql \copy` of the same rows from CSV into an equivalent table, on the
//! same throwaway server in the same run.
//!
//! `cargo bench -p sluice-loader --bench load` (EVENTS=n to change the
//! 1,000,000 events, ROUNDS=n the 3 rounds). The loader's run includes what it always does:
//! creating the table, adding the column a later manifest brings, and
//! skipping replayed events.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_backends::local::LocalObjectStore;
use sluice_backends::{ObjectStore, PutCondition};
use sluice_events::proto::{Column, ColumnType, LoadManifest, TableLoad};
use sluice_events::time::format_us;
use sluice_loader::{LoadJob, LoadOutcome, PgWarehouse, Warehouse};
use sluice_testkit::Postgres;

const MANIFESTS: usize = 10;
/// Events each later manifest repeats from the one before (replays).
const REPLAYED: usize = 1_000;
const T0: i64 = 1_714_521_600_000_000;
const TABLE: &str = "order_completed";
/// The manifest from which the files carry the new `gift_wrap` property.
const GIFT_WRAP_FROM: usize = 3;

/// One generated event; the columns the transcoder would write for an
/// `Order Completed` track event with a typical e-commerce payload.
struct Event {
    n: usize,
}

impl Event {
    fn id(&self) -> String {
        format!("0190c5a8-{:04x}-7000-8000-{:012x}", self.n % 65536, self.n)
    }
    fn received_at(&self) -> i64 {
        T0 + self.n as i64 * 1_000
    }
    fn user_id(&self) -> String {
        format!("user-{}", self.n % 50_000)
    }
    fn revenue(&self) -> f64 {
        (self.n % 10_000) as f64 / 100.0
    }
    fn quantity(&self) -> i64 {
        (self.n % 7) as i64 + 1
    }
    fn currency(&self) -> &'static str {
        ["USD", "EUR", "GBP"][self.n % 3]
    }
    fn category(&self) -> &'static str {
        ["books", "games", "garden", "kitchen", "toys"][self.n % 5]
    }
    fn coupon(&self) -> Option<String> {
        self.n
            .is_multiple_of(4)
            .then(|| format!("SAVE{}", self.n % 30))
    }
    fn first_order(&self) -> bool {
        self.n.is_multiple_of(9)
    }
    fn properties(&self) -> String {
        let coupon = self.coupon().map_or("null".into(), |c| format!("\"{c}\""));
        format!(
            r#"{{"order_id":"o-{}","revenue":{},"quantity":{},"currency":"{}","category":"{}","coupon":{coupon},"first_order":{}}}"#,
            self.n,
            self.revenue(),
            self.quantity(),
            self.currency(),
            self.category(),
            self.first_order()
        )
    }
    fn context(&self) -> String {
        format!(
            r#"{{"library":{{"name":"analytics.js","version":"5.2.0"}},"ip":"10.1.{}.{}","locale":"en-US","page":{{"path":"/checkout","url":"https://shop.example.com/checkout"}},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"}}"#,
            self.n % 256,
            self.n / 256 % 256
        )
    }
}

/// (name, type, nullable) in file order; `gift_wrap` only from manifest 3.
fn schema(with_gift_wrap: bool) -> Vec<(&'static str, DataType)> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut columns = vec![
        ("id", DataType::Utf8),
        ("received_at", ts.clone()),
        ("timestamp", ts.clone()),
        ("sent_at", ts),
        ("user_id", DataType::Utf8),
        ("anonymous_id", DataType::Utf8),
        ("context", DataType::Utf8),
        ("context_library_name", DataType::Utf8),
        ("context_ip", DataType::Utf8),
        ("context_page_path", DataType::Utf8),
        ("event", DataType::Utf8),
        ("event_text", DataType::Utf8),
        ("properties", DataType::Utf8),
        ("order_id", DataType::Utf8),
        ("revenue", DataType::Float64),
        ("quantity", DataType::Int64),
        ("currency", DataType::Utf8),
        ("category", DataType::Utf8),
        ("coupon", DataType::Utf8),
        ("first_order", DataType::Boolean),
    ];
    if with_gift_wrap {
        columns.push(("gift_wrap", DataType::Boolean));
    }
    columns
}

fn batch(events: &[Event], with_gift_wrap: bool) -> RecordBatch {
    let strings = |f: &dyn Fn(&Event) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(events.iter().map(f)))
    };
    let times = |f: &dyn Fn(&Event) -> Option<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from_iter(events.iter().map(f)).with_timezone("UTC"))
    };
    let mut arrays: Vec<ArrayRef> = vec![
        strings(&|e| Some(e.id())),
        times(&|e| Some(e.received_at())),
        times(&|e| Some(e.received_at() - 250_000)),
        times(&|e| Some(e.received_at() - 50_000)),
        strings(&|e| Some(e.user_id())),
        strings(&|e| Some(format!("anon-{}", e.n % 80_000))),
        strings(&|e| Some(e.context())),
        strings(&|_| Some("analytics.js".into())),
        strings(&|e| Some(format!("10.1.{}.{}", e.n % 256, e.n / 256 % 256))),
        strings(&|_| Some("/checkout".into())),
        strings(&|_| Some(TABLE.into())),
        strings(&|_| Some("Order Completed".into())),
        strings(&|e| Some(e.properties())),
        strings(&|e| Some(format!("o-{}", e.n))),
        Arc::new(Float64Array::from_iter_values(
            events.iter().map(Event::revenue),
        )),
        Arc::new(Int64Array::from_iter_values(
            events.iter().map(Event::quantity),
        )),
        strings(&|e| Some(e.currency().into())),
        strings(&|e| Some(e.category().into())),
        strings(&|e| e.coupon()),
        Arc::new(BooleanArray::from_iter(
            events.iter().map(|e| Some(e.first_order())),
        )),
    ];
    if with_gift_wrap {
        arrays.push(Arc::new(BooleanArray::from_iter(
            events.iter().map(|e| Some(e.n % 2 == 0)),
        )));
    }
    let fields: Vec<Field> = schema(with_gift_wrap)
        .into_iter()
        .map(|(name, ty)| Field::new(name, ty, name != "id"))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn parquet(batch: &RecordBatch) -> Bytes {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .build();
    let mut body = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut body, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    Bytes::from(body)
}

fn column_type(ty: &DataType) -> ColumnType {
    match ty {
        DataType::Utf8 => ColumnType::String,
        DataType::Float64 => ColumnType::Float64,
        DataType::Int64 => ColumnType::Int64,
        DataType::Boolean => ColumnType::Boolean,
        _ => ColumnType::Timestamp,
    }
}

fn csv_field(out: &mut String, value: Option<&str>) {
    match value {
        None => {}
        Some(v) if v.contains([',', '"', '\n']) || v.is_empty() => {
            out.push('"');
            out.push_str(&v.replace('"', "\"\""));
            out.push('"');
        }
        Some(v) => out.push_str(v),
    }
}

/// The same event as one CSV line, columns in `schema(true)` order;
/// `gift_wrap` only where the loader's file has it.
fn csv_line(out: &mut String, e: &Event, with_gift_wrap: bool) {
    let coupon = e.coupon();
    let fields: [Option<String>; 21] = [
        Some(e.id()),
        Some(format_us(e.received_at())),
        Some(format_us(e.received_at() - 250_000)),
        Some(format_us(e.received_at() - 50_000)),
        Some(e.user_id()),
        Some(format!("anon-{}", e.n % 80_000)),
        Some(e.context()),
        Some("analytics.js".into()),
        Some(format!("10.1.{}.{}", e.n % 256, e.n / 256 % 256)),
        Some("/checkout".into()),
        Some(TABLE.into()),
        Some("Order Completed".into()),
        Some(e.properties()),
        Some(format!("o-{}", e.n)),
        Some(e.revenue().to_string()),
        Some(e.quantity().to_string()),
        Some(e.currency().into()),
        Some(e.category().into()),
        coupon,
        Some(e.first_order().to_string()),
        with_gift_wrap.then(|| e.n.is_multiple_of(2).to_string()),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, field.as_deref());
    }
    out.push('\n');
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let per_manifest = events / MANIFESTS;
    let dir = tempfile::tempdir().unwrap();
    let objects = LocalObjectStore::open(dir.path().join("objects")).unwrap();

    // The transcoder's output: MANIFESTS files, each replaying the previous
    // file's last REPLAYED events; from the fourth on, a new property.
    eprintln!("generating {events} events in {MANIFESTS} parquet files...");
    let mut manifests = Vec::new();
    for m in 0..MANIFESTS {
        let start = (m * per_manifest).saturating_sub(if m > 0 { REPLAYED } else { 0 });
        let batch_events: Vec<Event> = (start..(m + 1) * per_manifest)
            .map(|n| Event { n })
            .collect();
        let gift_wrap = m >= GIFT_WRAP_FROM;
        let key = format!("tables/{TABLE}/dt=2024-05-01/bench-{m}.parquet");
        let body = parquet(&batch(&batch_events, gift_wrap));
        objects.put(&key, body, PutCondition::None).await.unwrap();
        let columns = schema(gift_wrap)
            .iter()
            .map(|(name, ty)| Column {
                name: name.to_string(),
                r#type: column_type(ty) as i32,
            })
            .collect();
        manifests.push(LoadManifest {
            manifest_id: format!("raw/bench/{m}"),
            source_key: format!("raw/bench/{m}.pb.zst"),
            tables: vec![TableLoad {
                table: TABLE.into(),
                object_key: key,
                row_count: batch_events.len() as u64,
                columns,
                min_event_time_us: T0,
                max_event_time_us: T0,
            }],
            created_at_us: T0,
        });
    }

    // The baseline's input: the same rows as CSV, columns in file order.
    let csv_path = dir.path().join("events.csv");
    {
        let mut csv = String::with_capacity(events * 900);
        for n in 0..events {
            csv_line(&mut csv, &Event { n }, n >= GIFT_WRAP_FROM * per_manifest);
        }
        std::fs::write(&csv_path, csv).unwrap();
    }

    // Each round loads both sides into a fresh database. Other work on the
    // machine slows either side now and then, so the medians are compared.
    let postgres = Postgres::start().await;
    let (mut loader_secs, mut baseline_secs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let url = postgres.fresh_database().await;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // Each side starts with no dirty pages of the other's to write out.
        client.batch_execute("CHECKPOINT").await.unwrap();
        eprintln!("round {round}: loading through the warehouse-loader...");
        loader_secs.push(load_with_loader(&url, &manifests, &objects, events).await);
        client
            .batch_execute(&format!(
                "CREATE TABLE baseline (LIKE {TABLE} INCLUDING ALL); CHECKPOINT"
            ))
            .await
            .unwrap();
        eprintln!("round {round}: loading the same rows with psql \\copy...");
        baseline_secs.push(load_with_psql(&url, &csv_path));
        if round == 1 {
            check_same_tables(&client, events).await;
        }
        eprintln!(
            "round {round}: loader {:.2} s, psql {:.2} s",
            loader_secs[round - 1],
            baseline_secs[round - 1]
        );
    }

    let loader_rate = events as f64 / median(&mut loader_secs);
    let baseline_rate = events as f64 / median(&mut baseline_secs);
    println!(
        "events: {events} ({MANIFESTS} manifests, {} replayed rows skipped), median of {rounds} rounds",
        REPLAYED * (MANIFESTS - 1)
    );
    println!("warehouse-loader (parquet -> postgres): {loader_rate:.0} rows/s");
    println!("baseline (psql \\copy csv -> postgres): {baseline_rate:.0} rows/s");
    println!(
        "ratio: {:.0}% of baseline (target >= 80%)",
        100.0 * loader_rate / baseline_rate
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Loads every manifest through the warehouse-loader; the seconds taken.
async fn load_with_loader(
    url: &str,
    manifests: &[LoadManifest],
    objects: &LocalObjectStore,
    events: usize,
) -> f64 {
    let warehouse = PgWarehouse::postgres(url, 2).await.unwrap();
    let started = Instant::now();
    let mut loaded = 0;
    for manifest in manifests {
        let outcome = warehouse
            .load(LoadJob {
                manifest,
                objects,
                dedupe_window_days: 7,
            })
            .await
            .unwrap();
        let LoadOutcome::Loaded(reports) = outcome else {
            panic!("loaded before")
        };
        loaded += reports[0].rows_loaded;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(loaded as usize, events, "every event once");
    secs
}

/// The baseline: the CSV into `baseline` with psql's `\copy`; the seconds
/// taken.
fn load_with_psql(url: &str, csv_path: &Path) -> f64 {
    let mut columns = String::new();
    for (i, (name, _)) in schema(true).iter().enumerate() {
        let _ = write!(columns, "{}\"{name}\"", if i > 0 { ", " } else { "" });
    }
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!(
            "\\copy baseline ({columns}) FROM '{}' WITH (FORMAT csv)",
            csv_path.display()
        ))
        .status()
        .expect("psql runs");
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "psql \\copy failed");
    secs
}

/// Both sides hold the same rows and values, with the same columns and
/// indexes.
async fn check_same_tables(client: &tokio_postgres::Client, events: usize) {
    let copied: i64 = client
        .query_one("SELECT count(*) FROM baseline", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied as usize, events);
    for (a, b) in [(TABLE, "baseline"), ("baseline", TABLE)] {
        let differ: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(differ, 0, "rows of {a} missing from {b}");
    }
    let mut indexes = Vec::new();
    for table in [TABLE, "baseline"] {
        let rows = client
            .query(
                "SELECT regexp_replace(indexdef, '.* USING ', '') FROM pg_indexes \
                 WHERE tablename = $1 ORDER BY 1",
                &[&table],
            )
            .await
            .unwrap();
        indexes.push(rows.iter().map(|r| r.get(0)).collect::<Vec<String>>());
    }
    assert_eq!(indexes[0], indexes[1], "indexes differ");
}
