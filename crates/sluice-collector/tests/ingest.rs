//! Events over real sockets (HTTP native and Segment shapes, gRPC unary and
//! streaming) land in the stream and decode back to exactly the envelopes
//! their JSON describes: on the local stream and on Kinesis (moto).

mod common;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use common::{Local, Running, WRITE_KEY, config, post, read_all, send, track_event};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use sluice_backends::aws::{
    AwsClients, AwsConfig, KinesisStream, S3ObjectStore, ensure_bucket, ensure_stream,
};
use sluice_backends::{EventStream, ObjectStore};
use sluice_events::proto::collector_client::CollectorClient;
use sluice_events::proto::{Envelope, EventType, SendBatchRequest, Source};
use sluice_events::time::parse_iso8601_us;
use sluice_events::{IngestContext, Limits, envelope_from_json};
use sluice_testkit::{MotoServer, unique_name};

/// The envelope `event` must have become: what `envelope_from_json` makes of
/// it with the collector's clock and metadata as recorded in `got`.
fn expected(
    event: &Value,
    got: &Envelope,
    sent_at: Option<&str>,
    default: Option<EventType>,
) -> Envelope {
    let ctx = IngestContext {
        received_at_us: got.received_at_us,
        batch_sent_at_us: sent_at.map(|s| parse_iso8601_us("sentAt", s).unwrap()),
        default_type: default,
    };
    Envelope {
        source: Some(Source {
            name: "web".into(),
            write_key: WRITE_KEY.into(),
        }),
        collector: got.collector.clone(),
        ..envelope_from_json(&event.to_string(), &ctx, &Limits::default()).unwrap()
    }
}

fn by_id(envelopes: &[Envelope], id: &str) -> Envelope {
    let found: Vec<_> = envelopes.iter().filter(|e| e.event_id == id).collect();
    assert_eq!(found.len(), 1, "event {id} in the stream once");
    found[0].clone()
}

/// Posts native and Segment requests and gRPC batches; checks every event.
async fn round_trip(running: &Running, stream: &dyn EventStream) {
    // Native: a JSON array, then NDJSON.
    let native: Vec<Value> = (0..30).map(track_event).collect();
    let answer = post(
        &running.url("/v1/events"),
        Value::from(native[..20].to_vec()).to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.body,
        json!({"success": true, "accepted": 20, "rejected": 0})
    );
    let ndjson: String = native[20..].iter().map(|e| format!("{e}\n")).collect();
    let answer = post(&running.url("/v1/events"), ndjson).await;
    assert_eq!(answer.body["accepted"], 10, "{}", answer.text);

    // Segment: a batch with sentAt, and a single identify.
    let batch: Vec<Value> = (100..150).map(track_event).collect();
    let sent_at = "2024-05-01T12:00:01Z";
    let body = json!({"batch": batch, "sentAt": sent_at});
    let answer = post(&running.url("/v1/batch"), body.to_string()).await;
    assert_eq!(answer.body["accepted"], 50, "{}", answer.text);
    let identify =
        json!({"userId": "u-1", "traits": {"email": "a@b.c"}, "messageId": "identify-1"});
    let answer = post(&running.url("/v1/identify"), identify.to_string()).await;
    assert_eq!(answer.body["accepted"], 1, "{}", answer.text);

    // gRPC: unary and client streaming.
    let mut client = CollectorClient::connect(format!("http://{}", running.grpc))
        .await
        .unwrap();
    let grpc_events: Vec<Envelope> = (0..10)
        .map(|i| Envelope {
            event_id: format!("grpc-{i}"),
            r#type: EventType::Track as i32,
            event: "Button Clicked".into(),
            user_id: format!("u-{i}"),
            timestamp_us: 1_714_564_800_000_000 + i,
            properties_json: format!(r#"{{"i": {i}, "nested": {{"ok": true}}}}"#),
            ..Default::default()
        })
        .collect();
    let reply = client
        .send_batch(SendBatchRequest {
            events: grpc_events[..5].to_vec(),
            write_key: WRITE_KEY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.accepted, reply.rejected), (5, 0));
    assert!(
        reply
            .results
            .iter()
            .enumerate()
            .all(|(i, r)| r.accepted && r.event_id == format!("grpc-{i}"))
    );
    let mut streamed = tonic::Request::new(futures::stream::iter(grpc_events[5..].to_vec()));
    streamed
        .metadata_mut()
        .insert("authorization", common::basic(WRITE_KEY).parse().unwrap());
    let reply = client.send_stream(streamed).await.unwrap().into_inner();
    assert_eq!((reply.accepted, reply.rejected), (5, 0));

    let got = read_all(stream).await;
    assert_eq!(got.len(), 30 + 50 + 1 + 10);
    for event in &native {
        let envelope = by_id(&got, event["messageId"].as_str().unwrap());
        assert_eq!(envelope.collector.as_ref().unwrap().protocol, "native");
        assert_eq!(envelope.collector.as_ref().unwrap().client_ip, "127.0.0.1");
        assert_eq!(envelope, expected(event, &envelope, None, None));
    }
    for event in &batch {
        let envelope = by_id(&got, event["messageId"].as_str().unwrap());
        assert_eq!(envelope.collector.as_ref().unwrap().protocol, "segment");
        assert_eq!(envelope, expected(event, &envelope, Some(sent_at), None));
    }
    let envelope = by_id(&got, "identify-1");
    assert_eq!(
        envelope,
        expected(&identify, &envelope, None, Some(EventType::Identify))
    );
    for sent in &grpc_events {
        let envelope = by_id(&got, &sent.event_id);
        let want = Envelope {
            received_at_us: envelope.received_at_us,
            source: Some(Source {
                name: "web".into(),
                write_key: WRITE_KEY.into(),
            }),
            collector: envelope.collector.clone(),
            ..sent.clone()
        };
        assert_eq!(envelope, want);
        assert_eq!(envelope.collector.as_ref().unwrap().protocol, "grpc");
    }

    // Two requests and their events per protocol, each answered in time.
    for (protocol, events) in [("native", 30.0), ("segment", 51.0), ("grpc", 10.0)] {
        let by_protocol = [("protocol", protocol)];
        let ok = [("protocol", protocol), ("outcome", "ok")];
        assert_eq!(
            running.metric_where("sluice_collector_events_accepted_total", &by_protocol),
            events,
            "{protocol}"
        );
        assert_eq!(
            running.metric_where("sluice_collector_requests_total", &ok),
            2.0,
            "{protocol}"
        );
        assert_eq!(
            running.metric_where("sluice_collector_request_duration_seconds", &by_protocol),
            2.0,
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn http_and_grpc_events_land_in_the_local_stream() {
    let local = Local::new();
    let running = local.start(config()).await;
    round_trip(&running, &*local.stream).await;
    running.stop().await;
}

#[tokio::test]
async fn http_and_grpc_events_land_in_kinesis() {
    let moto = MotoServer::shared().await;
    let clients = AwsClients::from_config(&AwsConfig::emulator(moto.endpoint()))
        .await
        .unwrap();
    let (stream_name, bucket) = (unique_name("events"), unique_name("sluice"));
    ensure_stream(&clients.kinesis, &stream_name, 2)
        .await
        .unwrap();
    ensure_bucket(&clients.s3, &bucket).await.unwrap();
    let stream: Arc<dyn EventStream> = Arc::new(KinesisStream::from_client(
        clients.kinesis.clone(),
        &stream_name,
    ));
    let objects: Arc<dyn ObjectStore> =
        Arc::new(S3ObjectStore::from_client(clients.s3.clone(), &bucket));
    let running = Running::start(config(), stream.clone(), objects.clone()).await;
    round_trip(&running, &*stream).await;

    // A rejected event ends up under rejected/ in S3 too.
    let answer = post(
        &running.url("/v1/batch"),
        r#"{"batch":[{"type":"track","userId":"u"}]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    running.stop().await;
    let rejected = objects.list("rejected/web/").await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Replays a recorded client request; returns the answer and its events.
async fn replay(running: &Running, name: &str) -> (common::Answer, Vec<Value>) {
    let fixture = fixture(name);
    let mut body = fixture["body"].to_string().into_bytes();
    if fixture["gzip"] == true {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        body = gz.finish().unwrap();
    }
    let mut request = Request::builder()
        .method(fixture["method"].as_str().unwrap())
        .uri(running.url(fixture["path"].as_str().unwrap()));
    for (name, value) in fixture["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let answer = send(request.body(Full::new(Bytes::from(body))).unwrap()).await;
    let events = match fixture["body"].get("batch") {
        Some(batch) => batch.as_array().unwrap().clone(),
        None => vec![fixture["body"].clone()],
    };
    (answer, events)
}

#[tokio::test]
async fn segment_client_requests_are_accepted_as_the_clients_expect() {
    let local = Local::new();
    let running = local.start(config()).await;
    let mut all = Vec::new();
    for name in [
        "analytics-python-batch.json",
        "analytics-node-batch.json",
        "analytics-js-track.json",
        "analytics-js-batch.json",
    ] {
        let (answer, events) = replay(&running, name).await;
        // 200 exactly, with a small JSON body: 202/204 count as failures
        // in several client libraries.
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text);
        assert_eq!(answer.body["success"], true, "{name}");
        assert_eq!(
            answer.body["accepted"],
            events.len(),
            "{name}: {}",
            answer.text
        );
        assert!(answer.text.len() < 100, "{name}: small body");
        if name.starts_with("analytics-js") {
            assert_eq!(
                answer.headers["access-control-allow-origin"],
                "https://shop.example.com"
            );
        }
        all.extend(events);
    }

    // analytics.js' CORS preflight (sent when it adds custom headers).
    let preflight = send(
        Request::options(running.url("/v1/t"))
            .header("origin", "https://shop.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(preflight.status, StatusCode::OK);
    let h = &preflight.headers;
    assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));

    let got = read_all(&*local.stream).await;
    assert_eq!(got.len(), all.len());
    for event in &all {
        let envelope = by_id(&got, event["messageId"].as_str().unwrap());
        let library = &event["context"]["library"];
        let context: Value = serde_json::from_str(&envelope.context_json).unwrap();
        assert_eq!(context["library"], *library);
        assert_eq!(envelope.source.as_ref().unwrap().name, "web");
        assert_eq!(envelope.collector.as_ref().unwrap().protocol, "segment");
    }
    // The python batch's identify: traits kept byte for byte.
    let identify = by_id(&got, "9c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f");
    assert_eq!(identify.r#type, EventType::Identify as i32);
    assert_eq!(
        identify.traits_json,
        r#"{"company":{"name":"Acme","size":120},"email":"ada@example.com","name":"Ada"}"#
    );
    // analytics.js' single track: type from the body, write key from the body.
    let track = by_id(
        &got,
        "ajs-next-1714564801100-2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
    );
    assert_eq!(track.event, "Product Viewed");
    running.stop().await;
}

/// The client IP recorded with each event: the first `X-Forwarded-For`
/// entry when the collector is told to trust it (behind a load balancer),
/// the peer's address otherwise, whatever the header says.
#[tokio::test]
async fn client_ip_is_the_peer_unless_forwarded_for_is_trusted() {
    let track_with_forwarded_for = |url: String, id: &str| {
        let body = json!({"event": "Signed Up", "userId": "u-1", "messageId": id}).to_string();
        send(
            Request::post(url)
                .header("authorization", common::basic(WRITE_KEY))
                .header("x-forwarded-for", " 198.51.100.7 , 10.0.0.1")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
    };
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "198.51.100.7")] {
        let local = Local::new();
        let running = local
            .start(sluice_collector::CollectorConfig {
                trust_forwarded_for: trusted,
                ..config()
            })
            .await;
        let answer = track_with_forwarded_for(running.url("/v1/track"), "fwd-1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        running.stop().await;
        let got = read_all(&*local.stream).await;
        assert_eq!(got.len(), 1);
        let collector = got[0].collector.as_ref().unwrap();
        assert_eq!(collector.client_ip, expected, "trusted: {trusted}");
    }
}
