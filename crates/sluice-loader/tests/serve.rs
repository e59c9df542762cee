//! The queue consumer end to end: local queues on disk, SQLite and a real
//! PostgreSQL, the real `serve`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::harness::{Harness, Kind};
use common::{T0, manifest, track};
use prometheus::Registry;
use serde_json::json;
use sluice_backends::Queue;
use sluice_backends::local::{LocalQueue, QueueOptions};
use sluice_events::encode_manifest;
use sluice_events::proto::{LoadManifest, TableLoad};
use sluice_loader::{LoaderConfig, serve};
use tokio_util::sync::CancellationToken;

fn config() -> LoaderConfig {
    LoaderConfig {
        concurrency: 2,
        max_attempts: 2,
        poll_wait_secs: 1,
        visibility_timeout_secs: 5,
        ..LoaderConfig::default()
    }
}

fn queue(dir: &std::path::Path, name: &str) -> Arc<LocalQueue> {
    Arc::new(LocalQueue::open(dir.join(name), QueueOptions::default()).unwrap())
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drain(queue: &LocalQueue) -> Vec<serde_json::Value> {
    let mut bodies = Vec::new();
    loop {
        let messages = queue.receive(10, Duration::ZERO, None).await.unwrap();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(serde_json::from_str(&m.body).unwrap());
            queue.delete(&m.receipt_handle).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_each_manifest_once_and_dead_letters_poison() {
    let h = Harness::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let (load_queue, dlq) = (queue(dir.path(), "load"), queue(dir.path(), "load-dlq"));

    let good = manifest(
        &*h.objects,
        "raw/good",
        &[(
            "tracks",
            vec![track("e1", "x", T0, &[]), track("e2", "x", T0, &[])],
        )],
    )
    .await;
    for _ in 0..3 {
        load_queue.send(&encode_manifest(&good)).await.unwrap();
    }
    let missing = LoadManifest {
        manifest_id: "raw/missing".into(),
        tables: vec![TableLoad {
            table: "tracks".into(),
            object_key: "tables/tracks/dt=2024-05-01/gone.parquet".into(),
            ..TableLoad::default()
        }],
        ..LoadManifest::default()
    };
    load_queue.send(&encode_manifest(&missing)).await.unwrap();
    load_queue.send("this is not a manifest").await.unwrap();

    let registry = Registry::new();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let (warehouse, objects, registry, shutdown) = (
            h.warehouse.clone(),
            h.objects.clone(),
            registry.clone(),
            shutdown.clone(),
        );
        let (load_queue, dlq) = (load_queue.clone(), dlq.clone());
        async move {
            serve(
                config(),
                warehouse,
                objects,
                load_queue,
                dlq,
                &registry,
                shutdown,
            )
            .await
        }
    });

    eventually("the queue to empty", async || {
        load_queue.is_empty().await.unwrap()
    })
    .await;
    let mut dead = drain(&dlq).await;
    dead.sort_by_key(|d| d["reason"].as_str().unwrap().to_string());
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("load failed on attempt 2 of 2:")
            && reason.contains("gone.parquet")
            && reason.contains("does not exist"),
        "{reason}"
    );
    assert_eq!(dead[0]["body"], encode_manifest(&missing));
    assert_eq!(
        (&dead[0]["cause"], &dead[0]["attempts"]),
        (&json!("object"), &json!(2))
    );
    assert_eq!(dead[1]["cause"], "manifest");
    assert!(
        dead[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a load manifest"),
        "{dead:?}"
    );
    assert_eq!(h.count("tracks").await, 2);
    assert_eq!(h.count("_sluice_loads").await, 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let metrics = sluice_runtime::render_metrics(&registry).unwrap().0;
    assert!(
        metrics.contains(r#"sluice_loader_manifests_total{outcome="already_loaded"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sluice_loader_manifests_total{outcome="dead_lettered"} 2"#));
    assert!(metrics.contains(r#"sluice_loader_rows_loaded_total{table="tracks"} 2"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_queue_load_everything_once() {
    let h = Harness::new(Kind::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (load_queue, dlq) = (queue(dir.path(), "load"), queue(dir.path(), "load-dlq"));
    for i in 0..10 {
        let rows: Vec<_> = (0..5)
            .map(|j| track(&format!("e{}", i * 3 + j), "x", T0, &[]))
            .collect();
        let m = manifest(
            &*h.objects,
            &format!("raw/s{i}"),
            &[("tracks", rows.clone()), ("x", rows)],
        )
        .await;
        load_queue.send(&encode_manifest(&m)).await.unwrap();
        load_queue.send(&encode_manifest(&m)).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let warehouse = h.connect().await;
        let (objects, shutdown) = (h.objects.clone(), shutdown.clone());
        let (load_queue, dlq) = (load_queue.clone(), dlq.clone());
        servers.push(tokio::spawn(async move {
            serve(
                config(),
                warehouse,
                objects,
                load_queue,
                dlq,
                &Registry::new(),
                shutdown,
            )
            .await
        }));
    }
    eventually("the queue to empty", async || {
        load_queue.is_empty().await.unwrap()
    })
    .await;
    shutdown.cancel();
    for server in servers {
        server.await.unwrap().unwrap();
    }
    // ids e0..e31 (overlapping by two between neighbours)
    assert_eq!(h.count("tracks").await, 32);
    assert_eq!(h.count("x").await, 32);
    assert_eq!(h.count("_sluice_loads").await, 10);
    assert!(dlq.is_empty().await.unwrap());
}
