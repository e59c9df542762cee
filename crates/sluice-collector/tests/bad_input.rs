//! Bad input gets a clear error naming the field and the limit, and never
//! costs the good events next to it; rejected events are counted by cause
//! and kept under rejected/ in the object store.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Local, WRITE_KEY, basic, config, post, read_all, send, track_event};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use sluice_backends::ObjectStore;

#[tokio::test]
async fn bad_events_are_rejected_alone_with_index_field_and_limit() {
    let local = Local::new();
    let running = local.start(config()).await;

    let deep = format!("{}1{}", r#"{"a":"#.repeat(1000), "}".repeat(1000));
    let parts: Vec<Vec<u8>> = vec![
        track_event(0).to_string().into_bytes(),
        // Invalid UTF-8 inside a string of event 1.
        br#"{"type":"track","event":"Bad","userId":"u","properties":{"name":"b"#
            .iter()
            .chain(b"\xff\xfe")
            .chain(br#"d"}}"#)
            .copied()
            .collect(),
        json!({"type":"track","event":"Big","userId":"u","properties":{"blob":"x".repeat(40_000)}})
            .to_string()
            .into_bytes(),
        format!(r#"{{"type":"track","event":"Deep","userId":"u","properties":{deep}}}"#)
            .into_bytes(),
        br#"{"type":"track","event":"NoIds","properties":{}}"#.to_vec(),
        br#"{"type":"track","event":"WrongType","userId":{"id":1}}"#.to_vec(),
        track_event(6).to_string().into_bytes(),
        br#""just a string""#.to_vec(),
    ];
    let mut body = b"{\"batch\":[".to_vec();
    body.extend(parts.join(&b","[..]));
    body.extend(b"]}");
    let answer = post(&running.url("/v1/batch"), body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 2, "{}", answer.text);
    assert_eq!(answer.body["rejected"], 6);
    let errors = answer.body["errors"].as_array().unwrap();
    let summary: Vec<(u64, &str, Value)> = errors
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["cause"].as_str().unwrap(),
                e["field"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "invalid_utf8", Value::Null),
            (2, "too_large", json!("event")),
            (3, "too_deep", json!("properties")),
            (4, "missing_field", json!("userId or anonymousId")),
            (5, "wrong_type", json!("userId")),
            (7, "not_an_object", Value::Null),
        ]
    );
    assert_eq!(errors[1]["limit"], 32768);
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit of 32768 bytes")
    );
    assert_eq!(errors[2]["limit"], 32);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8 at byte")
    );
    assert_eq!(
        running.metric("sluice_collector_events_rejected_total"),
        6.0
    );
    running.stop().await;

    let got = read_all(&*local.stream).await;
    let mut ids: Vec<_> = got.iter().map(|e| e.event_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["msg-000000", "msg-000006"]);

    // Kept, with the reason, under rejected/<source>/dt=<day>/.
    let objects = local.objects.list("rejected/web/dt=").await.unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let body = local
        .objects
        .get(&objects[0].key)
        .await
        .unwrap()
        .unwrap()
        .body;
    let lines: Vec<Value> = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[1]["cause"], "too_large");
    assert!(lines[1]["reason"].as_str().unwrap().contains("32768"));
    assert!(lines[1]["raw"].as_str().unwrap().contains("xxxxxxxx"));
    assert!(
        lines
            .iter()
            .all(|l| l["received_at"].is_string() && l["id"].is_string())
    );
}

#[tokio::test]
async fn undecodable_oversize_and_unauthorized_requests_get_clear_errors() {
    let local = Local::new();
    let running = local.start(config()).await;

    // Malformed JSON: the body cannot be cut into events.
    let answer = post(
        &running.url("/v1/batch"),
        r#"{"batch":[{"type":"track",}]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["cause"], "malformed_json");
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{}",
        answer.text
    );
    // NDJSON can: the malformed line alone is rejected.
    let ndjson = format!(
        "{}\n{{\"type\":\"track\",\n{}\n",
        track_event(1),
        track_event(2)
    );
    let answer = post(&running.url("/v1/events"), ndjson).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        (
            answer.body["accepted"].clone(),
            answer.body["errors"][0]["index"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(answer.body["errors"][0]["cause"], "malformed_json");

    // A body over 5 MiB.
    let answer = post(&running.url("/v1/batch"), vec![b' '; 6 << 20]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("5242880 bytes")
    );

    // A gzip bomb: 200 KB inflating to 200 MB is stopped at 5 MiB, quickly.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..200 {
        gz.write_all(&[b' '; 1 << 20]).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let started = Instant::now();
    let answer = post(&running.url("/v1/batch"), bomb).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A single-event endpoint with a bad event: 400 naming the field.
    let answer = post(
        &running.url("/v1/track"),
        r#"{"userId":"u","event":{"name":7}}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["errors"][0]["field"], "event");
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("event: expected a string, got object")
    );

    // Unknown and missing write keys.
    let unknown = Request::post(running.url("/v1/batch"))
        .header("authorization", basic("wk_nope"))
        .body(Full::new(Bytes::from(r#"{"batch":[]}"#)))
        .unwrap();
    let answer = send(unknown).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "unknown write key");
    let missing = Request::post(running.url("/v1/t"))
        .body(Full::new(Bytes::from(track_event(3).to_string())))
        .unwrap();
    assert_eq!(send(missing).await.status, StatusCode::UNAUTHORIZED);
    running.stop().await;
    assert_eq!(read_all(&*local.stream).await.len(), 2);
}

#[tokio::test]
async fn anonymous_writes_when_allowed() {
    let local = Local::new();
    let running = local
        .start(sluice_collector::CollectorConfig {
            allow_anonymous: true,
            ..config()
        })
        .await;
    let request = Request::post(running.url("/v1/t"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(track_event(1).to_string())))
        .unwrap();
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // A known key still names its source.
    let answer = common::post(&running.url("/v1/t"), track_event(2).to_string()).await;
    assert_eq!(answer.status, StatusCode::OK);
    running.stop().await;
    let mut sources: Vec<_> = read_all(&*local.stream)
        .await
        .into_iter()
        .map(|e| e.source.unwrap())
        .map(|s| (s.name, s.write_key))
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            ("anonymous".into(), String::new()),
            ("web".into(), WRITE_KEY.into())
        ]
    );
}
