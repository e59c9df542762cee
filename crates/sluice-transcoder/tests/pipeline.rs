//! From a raw object put in the store to Parquet read back with the
//! `parquet` crate, through the real queue consumer, on the local backend
//! and on moto (S3 notifications to SQS, as provisioned for AWS).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_schema::{DataType, TimeUnit};
use sluice_backends::notification::object_created_json;
use sluice_events::proto::{ColumnType, EventType};
use support::{
    Harness, T0, Table, archive, archive_of_records, other, s, table_key, test_config, track,
};

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario("local").await
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario("moto").await
                }
            )*
        }
    };
}

on_both_backends!(
    exact_values_and_types,
    type_conflicts_in_one_object_and_across_objects,
    an_event_with_a_thousand_properties,
    unicode_and_odd_keys_are_kept,
    bad_events_and_records_go_to_rejected,
    a_poison_object_ends_in_the_dead_letter_queue,
    a_message_delivered_twice_writes_the_same_files,
);

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Every table of the manifest, read back, checked against its entry.
async fn read_all(
    h: &Harness,
    manifest: &sluice_events::proto::LoadManifest,
) -> BTreeMap<String, Table> {
    let mut tables = BTreeMap::new();
    for load in &manifest.tables {
        let table = h.table(&load.object_key).await;
        assert_eq!(table.rows() as u64, load.row_count, "{}", load.table);
        let manifest_columns: Vec<(String, ColumnType)> = load
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.r#type()))
            .collect();
        let parquet_columns: Vec<(String, ColumnType)> = table
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Boolean => ColumnType::Boolean,
                    DataType::Int64 => ColumnType::Int64,
                    DataType::Float64 => ColumnType::Float64,
                    DataType::Utf8 => ColumnType::String,
                    DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => ColumnType::Timestamp,
                    other => panic!("unexpected type {other}"),
                };
                (f.name().clone(), ty)
            })
            .collect();
        assert_eq!(manifest_columns, parquet_columns, "{}", load.table);
        tables.insert(load.table.clone(), table);
    }
    tables
}

async fn exact_values_and_types(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let video_1 = r#"{"title":"Intro","duration":12,"ratio":0.5,"autoplay":true,"tags":["a","b"],"project":{"category":"docs","id":7},"started_at":"2024-05-01T11:59:00Z","missing":null}"#;
    let video_2 = r#"{"title":"Outro","duration":30,"ratio":1.25,"autoplay":false,"project":{"category":"blog"}}"#;
    let mut order = track(
        "e3",
        "Order Completed",
        r#"{"total":99.5,"currency":"EUR"}"#,
    );
    order.sent_at_us = 0;
    let mut identify = other("e4", EventType::Identify);
    identify.traits_json = r#"{"email":"a@example.com","plan":{"name":"pro"},"age":41}"#.into();
    let mut page = other("e5", EventType::Page);
    page.name = "Home".into();
    page.properties_json = r#"{"path":"/","referrer":""}"#.into();
    let mut screen = other("e6", EventType::Screen);
    screen.name = "Settings".into();
    screen.properties_json = r#"{"section":"privacy"}"#.into();
    let mut group = other("e7", EventType::Group);
    group.group_id = "g-1".into();
    group.traits_json = r#"{"employees":120}"#.into();
    let mut alias = other("e8", EventType::Alias);
    alias.previous_id = "anon-9".into();
    let (key, body) = archive(
        100,
        &[
            vec![
                track("e1", "Video Played", video_1),
                track("e2", "Video Played", video_2),
                order,
            ],
            vec![identify, page, screen, group, alias],
        ],
    );
    h.put_raw(&key, body).await;

    let manifest = h.next_manifest().await;
    assert_eq!(manifest.manifest_id, key);
    assert_eq!(manifest.source_key, key);
    assert_eq!(manifest.created_at_us, T0 + 60_000_000);
    let names: Vec<&str> = manifest.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        names,
        [
            "tracks",
            "order_completed",
            "video_played",
            "aliases",
            "groups",
            "identifies",
            "pages",
            "screens"
        ]
    );
    for load in &manifest.tables {
        assert_eq!(load.object_key, table_key(&load.table, 100, 101));
        assert_eq!((load.min_event_time_us, load.max_event_time_us), (T0, T0));
    }
    let t = read_all(&h, &manifest).await;

    let video = &t["video_played"];
    assert_eq!(
        video.column_names(),
        [
            "id",
            "received_at",
            "timestamp",
            "sent_at",
            "user_id",
            "anonymous_id",
            "context",
            "event",
            "event_text",
            "properties",
            "context_ip",
            "context_library_name",
            "context_library_version",
            "autoplay",
            "duration",
            "project_category",
            "project_id",
            "ratio",
            "started_at",
            "tags",
            "title",
        ]
    );
    assert_eq!(video.strings("id"), [s("e1"), s("e2")]);
    assert_eq!(video.times("timestamp"), [Some(T0), Some(T0)]);
    assert_eq!(video.times("sent_at"), [Some(T0 + 1_000), Some(T0 + 1_000)]);
    assert_eq!(
        video.times("received_at"),
        [Some(T0 + 2_000), Some(T0 + 2_000)]
    );
    assert_eq!(video.data_type("received_at"), utc());
    assert_eq!(video.strings("user_id"), [s("user-1"), s("user-1")]);
    assert_eq!(
        video.strings("event"),
        [s("video_played"), s("video_played")]
    );
    assert_eq!(
        video.strings("event_text"),
        [s("Video Played"), s("Video Played")]
    );
    assert_eq!(video.strings("properties"), [s(video_1), s(video_2)]);
    assert_eq!(
        video.strings("context_library_name"),
        [s("analytics.js"), s("analytics.js")]
    );
    assert_eq!(video.strings("title"), [s("Intro"), s("Outro")]);
    assert_eq!(video.data_type("duration"), DataType::Int64);
    assert_eq!(video.ints("duration"), [Some(12), Some(30)]);
    assert_eq!(video.data_type("ratio"), DataType::Float64);
    assert_eq!(video.floats("ratio"), [Some(0.5), Some(1.25)]);
    assert_eq!(video.bools("autoplay"), [Some(true), Some(false)]);
    assert_eq!(video.strings("tags"), [s(r#"["a","b"]"#), None]);
    assert_eq!(video.strings("project_category"), [s("docs"), s("blog")]);
    assert_eq!(video.ints("project_id"), [Some(7), None]);
    assert_eq!(video.data_type("started_at"), utc());
    assert_eq!(video.times("started_at"), [Some(T0 - 60_000_000), None]);

    let tracks = &t["tracks"];
    assert_eq!(tracks.rows(), 3);
    assert!(!tracks.column_names().contains(&"title".to_string()));
    assert_eq!(
        tracks.strings("event_text"),
        [s("Order Completed"), s("Video Played"), s("Video Played")]
    );
    assert_eq!(
        tracks.strings("context_ip"),
        [s("10.0.0.1"), s("10.0.0.1"), s("10.0.0.1")]
    );
    assert_eq!(t["order_completed"].times("sent_at"), [None]);
    assert_eq!(t["order_completed"].floats("total"), [Some(99.5)]);

    let identifies = &t["identifies"];
    assert_eq!(identifies.strings("email"), [s("a@example.com")]);
    assert_eq!(identifies.strings("plan_name"), [s("pro")]);
    assert_eq!(identifies.ints("age"), [Some(41)]);
    assert_eq!(
        identifies.strings("traits"),
        [s(
            r#"{"email":"a@example.com","plan":{"name":"pro"},"age":41}"#
        )]
    );
    assert_eq!(identifies.strings("anonymous_id"), [None]);
    assert_eq!(t["pages"].strings("name"), [s("Home")]);
    assert_eq!(
        t["pages"].strings("referrer"),
        [s("")],
        "an empty string is a value"
    );
    assert_eq!(t["screens"].strings("section"), [s("privacy")]);
    assert_eq!(t["groups"].strings("group_id"), [s("g-1")]);
    assert_eq!(t["groups"].ints("employees"), [Some(120)]);
    assert_eq!(t["aliases"].strings("previous_id"), [s("anon-9")]);
    assert!(!t.contains_key("rejected"));

    assert_eq!(h.metric("sluice_transcoder_objects_total", None), 1.0);
    assert_eq!(h.metric("sluice_transcoder_events_total", None), 8.0);
    assert!(h.metric("sluice_transcoder_bytes_out_total", None) > 0.0);
    h.stop().await;
}

async fn type_conflicts_in_one_object_and_across_objects(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let (key, body) = archive(
        10,
        &[vec![
            track(
                "p1",
                "Purchase",
                r#"{"amount":1,"flag":true,"n":1,"when":"2024-05-01T10:00:00Z"}"#,
            ),
            track(
                "p2",
                "Purchase",
                r#"{"amount":"x","flag":3,"n":2.5,"when":"later"}"#,
            ),
            track("p3", "Purchase", r#"{"amount":2.5,"flag":false,"n":3}"#),
        ]],
    );
    h.put_raw(&key, body).await;
    let manifest = h.next_manifest().await;
    let purchase = h.table(&table_key("purchase", 10, 10)).await;
    assert_eq!(purchase.data_type("amount"), DataType::Utf8);
    assert_eq!(purchase.strings("amount"), [s("1"), s("x"), s("2.5")]);
    assert_eq!(purchase.data_type("flag"), DataType::Int64);
    assert_eq!(purchase.ints("flag"), [Some(1), Some(3), Some(0)]);
    assert_eq!(purchase.data_type("n"), DataType::Float64);
    assert_eq!(purchase.floats("n"), [Some(1.0), Some(2.5), Some(3.0)]);
    assert_eq!(purchase.data_type("when"), DataType::Utf8);
    assert_eq!(
        purchase.strings("when"),
        [s("2024-05-01T10:00:00Z"), s("later"), None]
    );
    let load = manifest
        .tables
        .iter()
        .find(|t| t.table == "purchase")
        .unwrap();
    let amount = load.columns.iter().find(|c| c.name == "amount").unwrap();
    assert_eq!(amount.r#type(), ColumnType::String);

    // Across objects each file has its own types; the loader widens.
    let (key_b, body_b) = archive(20, &[vec![track("p4", "Purchase", r#"{"amount":5}"#)]]);
    let (key_c, body_c) = archive(30, &[vec![track("p5", "Purchase", r#"{"amount":"five"}"#)]]);
    h.put_raw(&key_b, body_b).await;
    h.put_raw(&key_c, body_c).await;
    let mut types = BTreeMap::new();
    for _ in 0..2 {
        let manifest = h.next_manifest().await;
        let load = manifest
            .tables
            .iter()
            .find(|t| t.table == "purchase")
            .unwrap();
        let amount = load.columns.iter().find(|c| c.name == "amount").unwrap();
        types.insert(manifest.manifest_id.clone(), amount.r#type());
    }
    assert_eq!(types[&key_b], ColumnType::Int64);
    assert_eq!(types[&key_c], ColumnType::String);
    assert_eq!(
        h.table(&table_key("purchase", 20, 20)).await.ints("amount"),
        [Some(5)]
    );
    let c = h.table(&table_key("purchase", 30, 30)).await;
    assert_eq!(c.strings("amount"), [s("five")]);
    assert_eq!(c.strings("properties"), [s(r#"{"amount":"five"}"#)]);
    h.stop().await;
}

async fn an_event_with_a_thousand_properties(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let mut properties = serde_json::Map::new();
    for i in 0..1000 {
        let value = match i % 4 {
            0 => serde_json::json!(i),
            1 => serde_json::json!(format!("value {i}")),
            2 => serde_json::json!(i as f64 + 0.5),
            _ => serde_json::json!(i % 2 == 1),
        };
        properties.insert(format!("prop_{i:04}"), value);
    }
    let json = serde_json::Value::Object(properties).to_string();
    let (key, body) = archive(
        1,
        &[vec![
            track("big", "Wide Event", &json),
            track("small", "Wide Event", "{}"),
        ]],
    );
    h.put_raw(&key, body).await;
    let manifest = h.next_manifest().await;
    let load = manifest
        .tables
        .iter()
        .find(|t| t.table == "wide_event")
        .unwrap();
    assert_eq!(
        load.columns.len(),
        10 + 3 + 1000,
        "standard + context + properties"
    );
    let wide = h.table(&load.object_key).await;
    for i in 0..1000 {
        let name = format!("prop_{i:04}");
        match i % 4 {
            0 => assert_eq!(wide.ints(&name), [Some(i as i64), None]),
            1 => assert_eq!(wide.strings(&name), [Some(format!("value {i}")), None]),
            2 => assert_eq!(wide.floats(&name), [Some(i as f64 + 0.5), None]),
            _ => assert_eq!(wide.bools(&name), [Some(i % 2 == 1), None]),
        }
    }
    assert_eq!(wide.strings("properties"), [Some(json), s("{}")]);
    h.stop().await;
}

async fn unicode_and_odd_keys_are_kept(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let json = r#"{"prix €":10,"a.b":"dot","a":{"b":"nested"},"A B":"space","ключ":"значение","🎉":true,"id":"prop-id","timestamp":"not-a-time","Ünïcödé Wörds":"ok","x\"y":"quote"}"#;
    let (key, body) = archive(7, &[vec![track("u1", "Ünïcode Évent 🎉", json)]]);
    h.put_raw(&key, body).await;
    let manifest = h.next_manifest().await;
    let load = manifest
        .tables
        .iter()
        .find(|t| t.table != "tracks")
        .unwrap();
    assert_eq!(load.table, "_n_code_vent_");
    let table = h.table(&load.object_key).await;
    assert_eq!(table.strings("event_text"), [s("Ünïcode Évent 🎉")]);

    let by_path = table.by_path();
    let name = |keys: &[&str]| -> String {
        let mut path = vec!["properties".to_string()];
        path.extend(keys.iter().map(|k| k.to_string()));
        by_path
            .get(&path)
            .unwrap_or_else(|| panic!("no column for {path:?} in {by_path:?}"))
            .clone()
    };
    // Readable names where the key allows it, distinct names always.
    assert_eq!(name(&["prix €"]), "prix_");
    assert_eq!(name(&["id"]), "property_id");
    assert_eq!(name(&["timestamp"]), "property_timestamp");
    assert_eq!(name(&["Ünïcödé Wörds"]), "_n_c_d_w_rds");
    // Three keys that all sanitize to `a_b`: the first in sorted order keeps
    // it, the next takes the clash prefix, the last a hash of its key.
    assert_eq!(name(&["A B"]), "a_b");
    assert_eq!(name(&["a", "b"]), "property_a_b");
    let hashed = name(&["a.b"]);
    assert!(hashed.starts_with("a_b_") && hashed.len() == 12, "{hashed}");
    for odd in [name(&["ключ"]), name(&["🎉"])] {
        assert!(odd.starts_with('_') && odd.len() == 9, "{odd}");
    }
    for column in table.column_names() {
        assert!(column.len() <= 63);
        assert!(
            column
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{column}"
        );
    }

    // No value lost: each one under its column, and the JSON whole.
    assert_eq!(table.ints(&name(&["prix €"])), [Some(10)]);
    assert_eq!(table.strings(&name(&["a.b"])), [s("dot")]);
    assert_eq!(table.strings(&name(&["a", "b"])), [s("nested")]);
    assert_eq!(table.strings(&name(&["A B"])), [s("space")]);
    assert_eq!(table.strings(&name(&["ключ"])), [s("значение")]);
    assert_eq!(table.bools(&name(&["🎉"])), [Some(true)]);
    assert_eq!(table.strings("property_id"), [s("prop-id")]);
    assert_eq!(table.strings("id"), [s("u1")]);
    assert_eq!(table.strings(&name(&["x\"y"])), [s("quote")]);
    assert_eq!(table.strings("properties"), [s(json)]);
    h.stop().await;
}

async fn bad_events_and_records_go_to_rejected(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let mut untyped = track("bad-type", "X", "{}");
    untyped.r#type = EventType::Unspecified as i32;
    let good = sluice_events::encode_record(&[
        track("good", "Signup", r#"{"plan":"pro"}"#),
        track("bad-json", "Signup", r#"{"plan":"#),
        track("bad-shape", "Signup", r#"["not","an","object"]"#),
        track("no-name", "", "{}"),
        untyped,
    ])
    .to_vec();
    let (key, body) = archive_of_records(40, vec![good, b"SLR1\x01not zstd".to_vec()]);
    h.put_raw(&key, body).await;
    let manifest = h.next_manifest().await;
    let t = read_all(&h, &manifest).await;
    assert_eq!(t["signup"].strings("id"), [s("good")]);
    assert_eq!(t["signup"].strings("plan"), [s("pro")]);
    let rejected = &t["rejected"];
    assert_eq!(
        rejected.column_names(),
        ["id", "received_at", "reason", "raw", "source_key"]
    );
    assert_eq!(
        rejected.strings("id"),
        [
            s("bad-json"),
            s("bad-shape"),
            s("no-name"),
            s("bad-type"),
            s(&format!("{}/41", support::SHARD))
        ]
    );
    let reasons = rejected.strings("reason");
    assert!(
        reasons[0]
            .as_deref()
            .unwrap()
            .starts_with("properties: not valid JSON"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1].as_deref(),
        Some("properties: expected a JSON object, got an array")
    );
    assert_eq!(
        reasons[2].as_deref(),
        Some("event is required for track events")
    );
    assert!(
        reasons[3]
            .as_deref()
            .unwrap()
            .starts_with("type: 0 is not track"),
        "{reasons:?}"
    );
    assert!(
        reasons[4]
            .as_deref()
            .unwrap()
            .contains("sequence number 41"),
        "{reasons:?}"
    );
    let raw: serde_json::Value =
        serde_json::from_str(rejected.strings("raw")[0].as_deref().unwrap()).unwrap();
    assert_eq!(
        raw["properties"], r#"{"plan":"#,
        "the bad value is kept as it came"
    );
    let record: serde_json::Value =
        serde_json::from_str(rejected.strings("raw")[4].as_deref().unwrap()).unwrap();
    assert_eq!(record["data_base64"], "U0xSMQFub3QgenN0ZA==");
    assert_eq!(rejected.strings("source_key"), vec![s(&key); 5]);
    assert_eq!(
        h.metric(
            "sluice_transcoder_rejected_events_total",
            Some("malformed_json")
        ),
        1.0
    );
    assert_eq!(
        h.metric(
            "sluice_transcoder_rejected_events_total",
            Some("bad_record")
        ),
        1.0
    );
    assert_eq!(
        h.metric("sluice_transcoder_rejected_events_total", None),
        5.0
    );
    h.stop().await;
}

async fn a_poison_object_ends_in_the_dead_letter_queue(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let key = support::raw_key(1, 9);
    h.put_raw(&key, b"this is not an archive".to_vec()).await;
    let dead = h.next_dead_letter().await;
    assert_eq!(dead["cause"], "undecodable_archive");
    let reason = dead["reason"].as_str().unwrap();
    assert!(
        reason.contains(&key) && reason.contains("bad magic"),
        "{reason}"
    );
    assert_eq!(dead["attempts"], 2, "max_attempts receives");
    let original = dead["body"].as_str().unwrap();
    let objects = sluice_backends::notification::parse_object_created(original).unwrap();
    assert_eq!(objects[0].key, key);
    assert!(h.no_manifest_within(Duration::from_secs(1)).await);
    assert_eq!(h.metric("sluice_transcoder_dead_lettered_total", None), 1.0);
    assert_eq!(
        h.metric(
            "sluice_transcoder_failures_total",
            Some("undecodable_archive")
        ),
        2.0
    );
    let queue = h.transcode_queue.clone();
    h.stop().await;
    let left = queue
        .receive(10, Duration::from_secs(1), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(left.is_empty(), "the original was deleted: {left:?}");
}

async fn a_message_delivered_twice_writes_the_same_files(backend: &str) {
    let mut h = Harness::on(backend, test_config()).await;
    let (key, body) = archive(
        50,
        &[vec![
            track("d1", "Checkout", r#"{"step":1}"#),
            track("d2", "Checkout", r#"{"step":2}"#),
        ]],
    );
    let size = body.len() as u64;
    h.put_raw(&key, body).await;
    let first = h.next_manifest().await;
    let mut files = BTreeMap::new();
    for load in &first.tables {
        files.insert(load.object_key.clone(), h.bytes(&load.object_key).await);
    }
    let listed = h.objects.list("tables/").await.unwrap().len();

    let again = object_created_json(
        "bucket",
        &key,
        size,
        "etag",
        "2024-05-01T12:01:00.000Z",
        "1",
    );
    h.transcode_queue.send(&again).await.unwrap();
    let second = h.next_manifest().await;
    assert_eq!(
        first, second,
        "the same manifest; the loader dedupes by its id"
    );
    for (object_key, bytes) in &files {
        assert_eq!(
            &h.bytes(object_key).await,
            bytes,
            "{object_key} rewritten identically"
        );
    }
    assert_eq!(
        h.objects.list("tables/").await.unwrap().len(),
        listed,
        "no new files"
    );
    assert_eq!(h.metric("sluice_transcoder_objects_total", None), 2.0);
    h.stop().await;
}
