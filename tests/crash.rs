//! Issue 7, crash safety: the AWS-emulated pipeline takes 200,000 events
//! while every stage is killed with SIGKILL, several times each, at random
//! moments, and restarted. At the end the warehouse holds every event that
//! got a 2xx exactly once: nothing lost, nothing doubled.
//!
//! A request that failed because the collector died is not accepted, and
//! its sender retries it with the same message ids, as a tracking library
//! does; the copies that reached the stream before the kill must then load
//! once, which is what the loader's `event_id` dedupe is for.

use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::SliceRandom;
use sluice_e2e::pipeline::AwsPipeline;
use sluice_e2e::sender::{Load, send_load};
use sluice_e2e::warehouse::{EVENT_TABLES, Warehouse, check_exactly_once, expected_tables};
use sluice_testkit::unique_name;

const EVENTS: u64 = 200_000;
/// Rounds of kills (each stage once, in random order) after the load was
/// accepted, while the downstream stages drain.
const ROUNDS_AFTER_LOAD: u32 = 2;
/// Each stage is killed at least this often.
const MIN_KILLS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_loads_exactly_once_across_kill_9() {
    let starting = Instant::now();
    let mut pipeline = AwsPipeline::start().await;
    eprintln!("pipeline started in {:?}", starting.elapsed());
    let started = Instant::now();
    let run = unique_name("crash");
    let load = Load {
        run: run.clone(),
        events: EVENTS,
        batch_sizes: 100..501,
        senders: 4,
    };
    let address = pipeline.address.clone();
    let sending = tokio::spawn(async move { send_load(&address, &load).await });

    // While the load runs, and for a few rounds after it (so the downstream
    // stages are also killed while they drain), kill a stage every second
    // or two. Stages are taken in shuffled rounds, so each is killed as
    // often as the others, at varying points of its work.
    let mut rng = rand::rng();
    let mut round: Vec<usize> = Vec::new();
    let (mut rounds, mut rounds_after_load) = (0, 0);
    let mut kills = Vec::new();
    loop {
        if round.is_empty() {
            if sending.is_finished() {
                // However fast the load went, every stage is killed enough.
                if rounds_after_load >= ROUNDS_AFTER_LOAD && rounds >= MIN_KILLS {
                    break;
                }
                rounds_after_load += 1;
            }
            rounds += 1;
            round = vec![0, 1, 2, 3];
            round.shuffle(&mut rng);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2_500))).await;
        pipeline.assert_running();
        let index = round.pop().expect("refilled above");
        let stage = &mut pipeline.stages_mut()[index];
        stage.kill();
        kills.push((started.elapsed(), stage.name()));
        // Down for a moment: long enough for clients and queues to notice.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_500))).await;
        pipeline.stages_mut()[index].restart();
    }
    let report = sending.await.expect("the load task");
    eprintln!(
        "sent {} events in {:?} ({} over HTTP, {} over gRPC), {} attempts retried; kills: {kills:?}",
        report.accepted.len(),
        report.elapsed,
        report.http_events,
        report.grpc_events,
        report.failed_attempts,
    );
    assert_eq!(report.accepted.len() as u64, EVENTS);
    for stage in pipeline.stages_mut() {
        assert!(
            stage.kills() >= MIN_KILLS,
            "{} was killed {} times",
            stage.name(),
            stage.kills()
        );
    }

    let warehouse = Warehouse::connect(&pipeline.warehouse_url).await;
    let rows = warehouse
        .wait_for_rows(
            EVENT_TABLES,
            EVENTS,
            Duration::from_secs(90),
            Duration::from_secs(300),
        )
        .await;
    eprintln!(
        "the event tables hold {rows} rows after {:?}",
        started.elapsed()
    );
    pipeline.assert_running();
    let dead = pipeline.dead_letters().await;
    for (tables, expected) in expected_tables(&report.accepted) {
        if let Some(mismatch) = check_exactly_once(&warehouse, tables, &run, &expected).await {
            let trace = pipeline.trace_missing(&warehouse, &mismatch.missing).await;
            panic!(
                "{}{trace}dead letters: {dead:?}\nkills (time, stage): {kills:?}\n{}",
                mismatch.report,
                pipeline.logs(40)
            );
        }
    }
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
}
