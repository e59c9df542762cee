//! Issue 7, end to end in AWS-emulated mode: moto (Kinesis, S3, SQS) and
//! PostgreSQL, `sluice setup`, the four stages as separate processes, a few
//! thousand mixed events in over HTTP and gRPC; the warehouse then holds each
//! of them exactly once, in the right tables, with its properties in the
//! right columns.

use std::fmt::Debug;
use std::time::Duration;

use sluice_e2e::events::{
    Kind, PAGE_NAME, event_number, order_country, order_total, page_path, plan_tier, user_email,
    video_category, video_duration,
};
use sluice_e2e::pipeline::AwsPipeline;
use sluice_e2e::sender::{Load, send_load};
use sluice_e2e::warehouse::{EVENT_TABLES, Warehouse, check_exactly_once, expected_tables};
use sluice_testkit::unique_name;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

const EVENTS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_once_in_its_tables_with_its_properties() {
    let mut pipeline = AwsPipeline::start().await;
    let run = unique_name("aws");
    let load = Load {
        run: run.clone(),
        events: EVENTS,
        batch_sizes: 50..200,
        senders: 4,
    };
    let report = send_load(&pipeline.address, &load).await;
    assert_eq!(report.accepted.len() as u64, EVENTS);
    assert!(
        report.http_events > 0 && report.grpc_events > 0,
        "both protocols carried events: {report:?}"
    );
    eprintln!(
        "sent {EVENTS} events in {:?} ({} over HTTP, {} over gRPC)",
        report.elapsed, report.http_events, report.grpc_events
    );

    let warehouse = Warehouse::connect(&pipeline.warehouse_url).await;
    let rows = warehouse
        .wait_for_rows(
            EVENT_TABLES,
            EVENTS,
            Duration::from_secs(60),
            Duration::from_secs(240),
        )
        .await;
    pipeline.assert_running();

    // Each event once, and in the table of its kind.
    for (tables, expected) in expected_tables(&report.accepted) {
        assert!(!expected.is_empty());
        if let Some(mismatch) = check_exactly_once(&warehouse, tables, &run, &expected).await {
            let trace = pipeline.trace_missing(&warehouse, &mismatch.missing).await;
            panic!(
                "{}(the event tables hold {rows} rows)\n{trace}{}",
                mismatch.report,
                pipeline.logs(30)
            );
        }
    }

    // Properties in their columns, nested ones flattened, for every row.
    let check = Checker {
        warehouse: &warehouse,
        run: &run,
    };
    check
        .column("video_played", "project_category", video_category)
        .await;
    check
        .column("video_played", "duration", video_duration)
        .await;
    check
        .column("order_completed", "shipping_address_country", |i| {
            order_country(i).to_owned()
        })
        .await;
    check.column("order_completed", "total", order_total).await;
    check.column("identifies", "email", user_email).await;
    check
        .column("identifies", "plan_tier", |i| plan_tier(i).to_owned())
        .await;
    check.column("pages", "path", page_path).await;
    check
        .column("pages", "name", |_| PAGE_NAME.to_owned())
        .await;
    check
        .column("tracks", "event_text", |i| {
            match Kind::of(i) {
                Kind::VideoPlayed => "Video Played",
                _ => "Order Completed",
            }
            .to_owned()
        })
        .await;
    check
        .column("tracks", "context_library_name", |_| {
            "sluice-e2e".to_owned()
        })
        .await;

    let dead = pipeline.dead_letters().await;
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
}

struct Checker<'a> {
    warehouse: &'a Warehouse,
    run: &'a str,
}

impl Checker<'_> {
    /// Every row of `table` has `expected(i)` in `column`, `i` being the
    /// number of the row's event.
    async fn column<T>(&self, table: &str, column: &str, expected: impl Fn(u64) -> T)
    where
        T: for<'r> FromSql<'r> + PartialEq + Debug,
    {
        let rows = self
            .warehouse
            .query(&format!("SELECT id, {column} FROM {table}"))
            .await;
        assert!(!rows.is_empty(), "{table} has rows");
        for row in &rows {
            let (i, got) = self.value::<T>(row);
            assert_eq!(got, expected(i), "{table}.{column} of event {i}");
        }
    }

    fn value<T: for<'r> FromSql<'r>>(&self, row: &Row) -> (u64, T) {
        let id: String = row.get(0);
        let i = event_number(self.run, &id).unwrap_or_else(|| panic!("an id of this run: {id}"));
        (i, row.get(1))
    }
}
