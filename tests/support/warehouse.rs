//! Reading back what the loader wrote to PostgreSQL: which event ids each
//! table holds, and whether every expected event is there exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::events::{Kind, event_id};

/// Every event lands in exactly one of these (Segment's layout)...
pub const EVENT_TABLES: &[&str] = &["tracks", "identifies", "pages"];
/// ... and every track event also in the table of its event name.
pub const TRACK_EVENT_TABLES: &[&str] = &["video_played", "order_completed"];

/// Where each of `events` must be, once: every event in [`EVENT_TABLES`],
/// every track event also in [`TRACK_EVENT_TABLES`], and each kind in the
/// table of its own.
pub fn expected_tables(events: &BTreeSet<u64>) -> Vec<(&'static [&'static str], BTreeSet<u64>)> {
    let of_kinds = |kinds: &[Kind]| -> BTreeSet<u64> {
        let wanted = |i: &u64| kinds.contains(&Kind::of(*i));
        events.iter().copied().filter(wanted).collect()
    };
    let tracks = of_kinds(&[Kind::VideoPlayed, Kind::OrderCompleted]);
    vec![
        (EVENT_TABLES, events.clone()),
        (&["tracks"], tracks.clone()),
        (TRACK_EVENT_TABLES, tracks),
        (&["video_played"], of_kinds(&[Kind::VideoPlayed])),
        (&["order_completed"], of_kinds(&[Kind::OrderCompleted])),
        (&["identifies"], of_kinds(&[Kind::Identify])),
        (&["pages"], of_kinds(&[Kind::Page])),
    ]
}

pub struct Warehouse {
    client: Client,
}

impl Warehouse {
    pub async fn connect(url: &str) -> Warehouse {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the warehouse {url}: {e}"));
        tokio::spawn(connection);
        Warehouse { client }
    }

    /// Rows of `sql`; none if a table it reads does not exist yet (the
    /// loader creates tables with their first rows).
    pub async fn query(&self, sql: &str) -> Vec<Row> {
        self.query_params(sql, &[]).await
    }

    /// [`Warehouse::query`] with parameters.
    pub async fn query_params(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        match self.client.query(sql, params).await {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Vec::new(),
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// Rows in `tables` together.
    pub async fn count(&self, tables: &[&str]) -> u64 {
        let mut total = 0;
        for table in tables {
            let rows = self.query(&format!("SELECT count(*) FROM {table}")).await;
            total += rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64;
        }
        total
    }

    /// How many rows each id has in `tables` together.
    pub async fn id_counts(&self, tables: &[&str]) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for table in tables {
            for row in self.query(&format!("SELECT id FROM {table}")).await {
                *counts.entry(row.get::<_, String>(0)).or_default() += 1;
            }
        }
        counts
    }

    /// Waits until `tables` hold at least `expected` rows and have stopped
    /// changing (so late duplicates get their chance to show), or until
    /// nothing changed for `stall` (something is stuck), or `timeout`.
    /// Returns the last count.
    pub async fn wait_for_rows(
        &self,
        tables: &[&str],
        expected: u64,
        stall: Duration,
        timeout: Duration,
    ) -> u64 {
        /// Unchanged this long after reaching `expected`: done.
        const SETTLE: Duration = Duration::from_secs(3);
        let started = Instant::now();
        let (mut last, mut changed_at) = (u64::MAX, Instant::now());
        loop {
            let count = self.count(tables).await;
            if count != last {
                (last, changed_at) = (count, Instant::now());
            }
            let quiet = changed_at.elapsed();
            if (count >= expected && quiet >= SETTLE)
                || quiet >= stall
                || started.elapsed() >= timeout
            {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// What differs between the expected events and the warehouse.
pub struct Mismatch {
    /// Expected ids that are not there.
    pub missing: BTreeSet<String>,
    /// Every missing, doubled and unexpected id, described.
    pub report: String,
}

/// Compares what `tables` hold with the events `expected` of `run`:
/// nothing when each expected id is there exactly once (and no other).
pub async fn check_exactly_once(
    warehouse: &Warehouse,
    tables: &[&str],
    run: &str,
    expected: &BTreeSet<u64>,
) -> Option<Mismatch> {
    id_mismatch(&warehouse.id_counts(tables).await, tables, run, expected)
}

/// Compares `counts` (rows per id in `tables`) with the events `expected`
/// of `run`: nothing when each expected id is there exactly once (and no
/// other). For any warehouse, given its id counts.
pub fn id_mismatch(
    counts: &BTreeMap<String, u64>,
    tables: &[&str],
    run: &str,
    expected: &BTreeSet<u64>,
) -> Option<Mismatch> {
    let expected_ids: BTreeSet<String> = expected.iter().map(|&i| event_id(run, i)).collect();
    let missing: Vec<&String> = expected_ids
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let missing_set = missing.iter().map(|id| id.to_string()).collect();
    let doubled: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unexpected: Vec<&String> = counts
        .keys()
        .filter(|id| !expected_ids.contains(*id))
        .collect();
    if missing.is_empty() && doubled.is_empty() && unexpected.is_empty() {
        return None;
    }
    let mut report = format!(
        "{tables:?}: {} expected ids, {} distinct ids found, {} rows\n",
        expected_ids.len(),
        counts.len(),
        counts.values().sum::<u64>()
    );
    let sample = |ids: &[&String]| {
        let shown: Vec<_> = ids.iter().take(20).collect();
        format!("{shown:?}{}", if ids.len() > 20 { " ..." } else { "" })
    };
    if !missing.is_empty() {
        let kinds: BTreeMap<String, usize> = missing.iter().fold(BTreeMap::new(), |mut m, id| {
            let i = crate::events::event_number(run, id).expect("an id of this run");
            *m.entry(format!("{:?}", Kind::of(i))).or_default() += 1;
            m
        });
        let _ = writeln!(
            report,
            "missing {} ids (by kind {kinds:?}): {}",
            missing.len(),
            sample(&missing)
        );
    }
    if !doubled.is_empty() {
        let ids: Vec<&String> = doubled.iter().map(|(id, _)| *id).collect();
        let _ = writeln!(
            report,
            "{} ids loaded more than once: {}",
            doubled.len(),
            sample(&ids)
        );
    }
    if !unexpected.is_empty() {
        let _ = writeln!(
            report,
            "{} ids never sent: {}",
            unexpected.len(),
            sample(&unexpected)
        );
    }
    Some(Mismatch {
        missing: missing_set,
        report,
    })
}
