//! Issue 7's freshness benchmark: the time from the collector's 200 to the
//! row being queryable in the warehouse, p50/p95/max, at a steady rate, in
//! single-machine mode (`sluice up`, SQLite) and AWS-emulated mode (moto,
//! PostgreSQL, four stage processes). Targets: p95 <= 5 s single-machine,
//! <= 10 s AWS-emulated.
//!
//! ```text
//! flock /tmp/sluice-bench.lock cargo bench -p sluice-e2e --bench freshness
//! ```
//!
//! Environment: `FRESHNESS_RATE` (events/s, default 5000), `FRESHNESS_SECS`
//! (default 60), `FRESHNESS_MODES` (`single,aws` by default).
//!
//! Each event's 200 time is when its batch's answer arrived. The warehouse
//! is polled every 100 ms for the batches not yet fully seen (by id range,
//! which the loaders' `id` index serves), and an event's first-seen time is
//! the start of the poll that found it: at most one poll interval late.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::binaries::binaries;
use sluice_e2e::events::event_id;
use sluice_e2e::pipeline::AwsPipeline;
use sluice_e2e::sender::{CollectorAddress, Protocol, Sender};
use sluice_e2e::single_machine::SingleMachine;
use sluice_e2e::warehouse::{EVENT_TABLES, Warehouse};

const BATCH: u64 = 100;
const SENDERS: usize = 16;
const POLL_EVERY: Duration = Duration::from_millis(100);
/// After the last 200, how long the rest may take to show up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// A pipeline under measurement: where to send, and which events its
/// warehouse holds.
trait Target {
    fn name(&self) -> &'static str;
    /// The p95 the issue asks for.
    fn target_p95(&self) -> Duration;
    fn collector(&self) -> CollectorAddress;
    /// Which events of `ranges` (event numbers of `run`) the warehouse holds.
    async fn find(&mut self, run: &str, ranges: &[Range<u64>]) -> Vec<u64>;
    /// Everything the target's processes logged lately, for a failed run.
    fn logs(&mut self) -> String;
}

/// AWS-emulated mode, exactly as the `aws_emulated` test runs it.
struct Aws {
    pipeline: AwsPipeline,
    warehouse: Warehouse,
}

impl Aws {
    async fn start() -> Aws {
        let pipeline = AwsPipeline::start().await;
        let warehouse = Warehouse::connect(&pipeline.warehouse_url).await;
        Aws {
            pipeline,
            warehouse,
        }
    }
}

impl Target for Aws {
    fn name(&self) -> &'static str {
        "aws-emulated"
    }

    fn target_p95(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn collector(&self) -> CollectorAddress {
        self.pipeline.address.clone()
    }

    async fn find(&mut self, run: &str, ranges: &[Range<u64>]) -> Vec<u64> {
        let (low, high) = bounds(run, ranges);
        let mut found = Vec::new();
        for table in EVENT_TABLES {
            // One index range scan per batch.
            let sql = format!(
                "SELECT t.id FROM unnest($1::text[], $2::text[]) AS r(low, high) \
                 JOIN {table} AS t ON t.id >= r.low AND t.id < r.high"
            );
            let rows = self.warehouse.query_params(&sql, &[&low, &high]).await;
            found.extend(rows.iter().map(|row| row.get::<_, String>(0)));
        }
        numbers(run, found)
    }

    fn logs(&mut self) -> String {
        self.pipeline.logs(30)
    }
}

/// Single-machine mode: `sluice up` on a fresh data directory, its SQLite
/// warehouse read through a read-only connection (`sluice sql` per poll
/// would cost a process start every 100 ms).
struct Single {
    single: SingleMachine,
    warehouse: Option<rusqlite::Connection>,
}

impl Single {
    async fn start() -> Single {
        Single {
            single: SingleMachine::start().await,
            warehouse: None,
        }
    }

    /// The warehouse, once the loader has created its file.
    fn connection(&mut self) -> Option<&rusqlite::Connection> {
        let path = self.single.warehouse_path();
        if self.warehouse.is_none() && path.exists() {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let connection = rusqlite::Connection::open_with_flags(&path, flags)
                .expect("open the warehouse read-only");
            // The loader holds write locks briefly; wait rather than fail.
            connection
                .busy_timeout(Duration::from_secs(5))
                .expect("set a busy timeout");
            self.warehouse = Some(connection);
        }
        self.warehouse.as_ref()
    }
}

impl Target for Single {
    fn name(&self) -> &'static str {
        "single-machine"
    }

    fn target_p95(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn collector(&self) -> CollectorAddress {
        self.single.address.clone()
    }

    async fn find(&mut self, run: &str, ranges: &[Range<u64>]) -> Vec<u64> {
        let (low, high) = bounds(run, ranges);
        let Some(connection) = self.connection() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        tokio::task::block_in_place(|| {
            for table in EVENT_TABLES {
                let sql = format!("SELECT id FROM {table} WHERE id >= ?1 AND id < ?2");
                let mut statement = match connection.prepare(&sql) {
                    Ok(statement) => statement,
                    // Created with its first rows.
                    Err(e) if e.to_string().contains("no such table") => continue,
                    Err(e) => panic!("{sql}: {e}"),
                };
                for (low, high) in low.iter().zip(&high) {
                    let ids = statement
                        .query_map([low, high], |row| row.get::<_, String>(0))
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                    found.extend(ids);
                }
            }
        });
        numbers(run, found)
    }

    fn logs(&mut self) -> String {
        self.single.up.log_tail(60)
    }
}

/// The id bounds of each range: ids sort as their numbers do.
fn bounds(run: &str, ranges: &[Range<u64>]) -> (Vec<String>, Vec<String>) {
    ranges
        .iter()
        .map(|r| (event_id(run, r.start), event_id(run, r.end)))
        .unzip()
}

fn numbers(run: &str, ids: Vec<String>) -> Vec<u64> {
    ids.iter()
        .map(|id| sluice_e2e::events::event_number(run, id).expect("an id of this run"))
        .collect()
}

/// One batch: when its 200 came, and when each of its events was first seen.
#[derive(Default)]
struct BatchTimes {
    answered: Option<Instant>,
    seen: BTreeMap<u64, Instant>,
}

struct Summary {
    sent: u64,
    achieved_rate: f64,
    seen: usize,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

async fn measure<T: Target>(target: &mut T, rate: u64, secs: u64) -> Summary {
    let run = sluice_testkit::unique_name("fresh");
    let events = rate * secs;
    let batches: Vec<Range<u64>> = (0..events.div_ceil(BATCH))
        .map(|k| k * BATCH..((k + 1) * BATCH).min(events))
        .collect();
    let times: Arc<Mutex<Vec<BatchTimes>>> = Arc::new(Mutex::new(
        batches.iter().map(|_| BatchTimes::default()).collect(),
    ));
    let batch_interval = Duration::from_secs_f64(BATCH as f64 / rate as f64);

    // Senders take batches in order, each at its scheduled time; a slow
    // answer delays only the sender waiting for it.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(batches);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let protocol = [Protocol::Http, Protocol::Grpc][s % 2];
        let mut sender = Sender::new(target.collector(), protocol);
        let (next, batches, times, run) =
            (next.clone(), batches.clone(), times.clone(), run.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(k) else { break };
                tokio::time::sleep_until((started + batch_interval * k as u32).into()).await;
                let answered = sender.send(&run, batch.clone()).await;
                times.lock().expect("not poisoned")[k].answered = Some(answered);
            }
        }));
    }

    let mut sending_done_at = None;
    loop {
        let poll = Instant::now();
        let pending: Vec<(usize, Range<u64>)> = {
            let times = times.lock().expect("not poisoned");
            times
                .iter()
                .enumerate()
                .filter(|(k, t)| t.answered.is_some() && t.seen.len() < batches[*k].clone().count())
                .map(|(k, _)| (k, batches[k].clone()))
                .collect()
        };
        let all_sent = senders.iter().all(|s| s.is_finished());
        if all_sent && pending.is_empty() {
            break;
        }
        if all_sent {
            let done = *sending_done_at.get_or_insert_with(Instant::now);
            if done.elapsed() > DRAIN_TIMEOUT {
                eprintln!(
                    "{}: {} batches still not fully loaded {DRAIN_TIMEOUT:?} after the last 200\n{}",
                    target.name(),
                    pending.len(),
                    target.logs()
                );
                break;
            }
        }
        if !pending.is_empty() {
            let ranges: Vec<Range<u64>> = pending.iter().map(|(_, r)| r.clone()).collect();
            let found = target.find(&run, &ranges).await;
            let mut times = times.lock().expect("not poisoned");
            for i in found {
                let k = (i / BATCH) as usize;
                times[k].seen.entry(i).or_insert(poll);
            }
        }
        tokio::time::sleep_until((poll + POLL_EVERY).into()).await;
    }
    let send_time = sending_done_at.unwrap_or_else(Instant::now) - started;
    for sender in senders {
        sender.await.expect("a sender panicked");
    }

    let times = times.lock().expect("not poisoned");
    let mut freshness: Vec<Duration> = times
        .iter()
        .flat_map(|t| {
            let answered = t.answered.expect("every batch was answered");
            t.seen
                .values()
                .map(move |&seen| seen.saturating_duration_since(answered))
        })
        .collect();
    freshness.sort();
    let at = |q: f64| {
        freshness
            .get(((freshness.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Summary {
        sent: events,
        achieved_rate: events as f64 / send_time.as_secs_f64(),
        seen: freshness.len(),
        p50: at(0.50),
        p95: at(0.95),
        max: freshness.last().copied().unwrap_or_default(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not valid")),
        Err(_) => default,
    }
}

async fn report<T: Target>(mut target: T, rate: u64, secs: u64) {
    let s = measure(&mut target, rate, secs).await;
    let verdict = match s.p95 <= target.target_p95() && s.seen as u64 == s.sent {
        true => "meets",
        false => "MISSES",
    };
    println!(
        "{:<15} sent {} at {:.0}/s, {} loaded; freshness p50 {:.2} s, p95 {:.2} s, max {:.2} s; {verdict} the p95 target of {} s",
        target.name(),
        s.sent,
        s.achieved_rate,
        s.seen,
        s.p50.as_secs_f64(),
        s.p95.as_secs_f64(),
        s.max.as_secs_f64(),
        target.target_p95().as_secs(),
    );
}

fn main() {
    let rate: u64 = env_or("FRESHNESS_RATE", 5_000);
    let secs: u64 = env_or("FRESHNESS_SECS", 60);
    let modes: String = env_or("FRESHNESS_MODES", "single,aws".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Built before any clock starts.
    binaries();
    runtime.block_on(async {
        for mode in modes.split(',').map(str::trim) {
            match mode {
                "single" => report(Single::start().await, rate, secs).await,
                "aws" => report(Aws::start().await, rate, secs).await,
                other => panic!("FRESHNESS_MODES: unknown mode {other:?} (single, aws)"),
            }
        }
    });
}
