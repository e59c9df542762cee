//! Issue 7, end to end in single-machine mode: `sluice up` (one process, the
//! local backends, the embedded SQLite warehouse), mixed events in over HTTP
//! and gRPC, read back with `sluice sql` while it runs: each event exactly
//! once, in the tables of its kind, with its properties in their columns.
//! Then Ctrl-C and `sluice up` again on the same directory: new events and
//! replayed old ones still load exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_e2e::binaries::binaries;
use sluice_e2e::events::{
    Kind, event_number, order_country, order_total, page_path, user_email, video_category,
};
use sluice_e2e::sender::{Load, Protocol, Sender, send_load};
use sluice_e2e::single_machine::SingleMachine;
use sluice_e2e::warehouse::{EVENT_TABLES, expected_tables, id_mismatch};
use sluice_testkit::unique_name;

const EVENTS: u64 = 2_000;
const AFTER_RESTART: u64 = 500;
/// Events of the first run sent again after the restart, with the same ids.
const REPLAYED: u64 = 300;
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_once_with_their_properties_and_survive_a_restart() {
    let mut single = SingleMachine::start().await;
    let first = unique_name("single");
    let report = send_load(&single.address, &load(&first, EVENTS)).await;
    assert_eq!(report.accepted.len() as u64, EVENTS);
    assert!(
        report.http_events > 0 && report.grpc_events > 0,
        "both protocols carried events: {report:?}"
    );
    let rows = single
        .wait_for_rows(EVENT_TABLES, EVENTS, LOAD_TIMEOUT)
        .await;
    single.up.assert_running();
    assert_eq!(rows, EVENTS, "{}", single.up.log_tail(40));
    assert_exactly_once(&single, &first, EVENTS);
    assert_columns(&single, &first);

    // Ctrl-C: in-flight work finishes and the process exits cleanly.
    let status = single.up.stop().expect("sluice up was running");
    assert!(status.success(), "sluice up exited with {status}");

    single.up.restart();
    single.wait_until_listening().await;
    let second = unique_name("again");
    send_load(&single.address, &load(&second, AFTER_RESTART)).await;
    // A client retrying batches it already sent: same message ids.
    let mut replay = Sender::new(single.address.clone(), Protocol::Http);
    replay.send(&first, 0..REPLAYED).await;

    let rows = single
        .wait_for_rows(EVENT_TABLES, EVENTS + AFTER_RESTART, LOAD_TIMEOUT)
        .await;
    assert_eq!(rows, EVENTS + AFTER_RESTART, "{}", single.up.log_tail(40));
    let all = single.id_counts(EVENT_TABLES);
    let (of_first, of_second): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(id, _)| id.starts_with(&first));
    let expect = |run: &str, n: u64, counts: Vec<(String, u64)>| {
        let expected: BTreeSet<u64> = (0..n).collect();
        if let Some(mismatch) =
            id_mismatch(&counts.into_iter().collect(), EVENT_TABLES, run, &expected)
        {
            panic!("{}", mismatch.report);
        }
    };
    expect(&first, EVENTS, of_first);
    expect(&second, AFTER_RESTART, of_second);
}

/// What a newcomer does first: `sluice send --demo` into `sluice up`, then
/// `sluice sql` on the tables and columns the demo's events make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_from_sluice_send_becomes_queryable_rows() {
    const DEMO_EVENTS: u64 = 1_500;
    let single = SingleMachine::start().await;
    let url = format!("http://{}", single.address.http);
    let sent = std::process::Command::new(&binaries().sluice)
        .args(["send", "--demo", "--rate", "5000", "--url", &url])
        .args(["--count", &DEMO_EVENTS.to_string()])
        .output()
        .expect("run sluice send");
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "sluice send failed: {stderr}");
    assert!(
        stderr.contains(&format!("{DEMO_EVENTS} accepted, 0 rejected")),
        "{stderr}"
    );

    let rows = single
        .wait_for_rows(EVENT_TABLES, DEMO_EVENTS, LOAD_TIMEOUT)
        .await;
    assert_eq!(rows, DEMO_EVENTS, "{}", single.up.log_tail(40));
    // Nested properties as columns, the experiment's variants among them.
    let variants = single
        .sql("SELECT DISTINCT experiment_variant FROM pledge_completed ORDER BY 1")
        .expect("pledge_completed exists");
    assert_eq!(variants, [["control"], ["treatment"]]);
    // A property the demo only starts sending partway through got a column
    // without a migration, and the earlier rows hold NULL there.
    let coupons = single
        .sql(
            "SELECT count(coupon_code) > 0, count(*) > count(coupon_code) \
             FROM pledge_completed",
        )
        .expect("coupon_code is a column");
    assert_eq!(coupons, [["1", "1"]]);
}

fn load(run: &str, events: u64) -> Load {
    Load {
        run: run.to_owned(),
        events,
        batch_sizes: 20..150,
        senders: 4,
    }
}

/// Every event once in the event tables, and in the tables of its kind.
fn assert_exactly_once(single: &SingleMachine, run: &str, events: u64) {
    for (tables, expected) in expected_tables(&(0..events).collect()) {
        assert!(!expected.is_empty());
        if let Some(mismatch) = id_mismatch(&single.id_counts(tables), tables, run, &expected) {
            panic!("{}{}", mismatch.report, single.up.log_tail(40));
        }
    }
}

/// Properties in their columns, nested ones flattened, for every row.
fn assert_columns(single: &SingleMachine, run: &str) {
    let check = |table: &str, column: &str, expected: &dyn Fn(u64) -> String| {
        let rows = single
            .sql(&format!("SELECT id, {column} FROM {table}"))
            .unwrap_or_else(|| panic!("{table} exists"));
        assert!(!rows.is_empty(), "{table} has rows");
        for row in rows {
            let i = event_number(run, &row[0]).expect("an id of this run");
            assert_eq!(row[1], expected(i), "{table}.{column} of event {i}");
        }
    };
    check("video_played", "project_category", &video_category);
    check("order_completed", "shipping_address_country", &|i| {
        order_country(i).to_owned()
    });
    check("order_completed", "total", &|i| order_total(i).to_string());
    check("identifies", "email", &user_email);
    check("pages", "path", &page_path);
    check("tracks", "event_text", &|i| {
        match Kind::of(i) {
            Kind::VideoPlayed => "Video Played",
            _ => "Order Completed",
        }
        .to_owned()
    });
}
