//! Client JSON into envelopes: the Segment spec's fields, clock-skew
//! correction, and a clear error naming the field and limit for bad input.

use sluice_events::proto::EventType;
use sluice_events::time::parse_iso8601_us;
use sluice_events::{EventError, IngestContext, Limits, envelope_from_json};

fn ctx() -> IngestContext {
    IngestContext {
        received_at_us: parse_iso8601_us("t", "2024-05-01T12:00:10Z").unwrap(),
        ..Default::default()
    }
}

fn decode(json: &str) -> Result<sluice_events::proto::Envelope, EventError> {
    envelope_from_json(json, &ctx(), &Limits::default())
}

#[test]
fn segment_track_keeps_ids_and_original_json() {
    let properties =
        r#"{"project": {"id": 42, "category": "film"}, "price": 9.990, "tags": ["a", "b"]}"#;
    let json = format!(
        r#"{{"type":"track","messageId":"m-1","event":"Pledge Completed","userId":"u1","anonymousId":"a1",
            "timestamp":"2024-05-01T12:00:00Z","sentAt":"2024-05-01T12:00:05Z",
            "properties":{properties},"context":{{"library":{{"name":"analytics-python","version":"2.3.0"}}}},
            "integrations":{{"All":true}}}}"#
    );
    let e = decode(&json).unwrap();
    assert_eq!(e.event_id, "m-1");
    assert_eq!(e.r#type, EventType::Track as i32);
    assert_eq!(e.event, "Pledge Completed");
    assert_eq!((e.user_id.as_str(), e.anonymous_id.as_str()), ("u1", "a1"));
    // Byte for byte: spacing and the trailing zero of 9.990 survive.
    assert_eq!(e.properties_json, properties);
    assert_eq!(
        e.context_json,
        r#"{"library":{"name":"analytics-python","version":"2.3.0"}}"#
    );
    assert_eq!(e.traits_json, "");
    // The request's metadata is added per request, not per event.
    assert_eq!((e.source, e.collector), (None, None));
}

#[test]
fn timestamp_is_corrected_for_client_clock_skew() {
    // The client's clock runs 5 s ahead... of nothing we can know, but it
    // says the event happened 5 s before it was sent; we received it at
    // 12:00:10, so it happened at 12:00:05 by our clock.
    let e = decode(
        r#"{"type":"track","event":"x","userId":"u","timestamp":"2024-05-01T12:00:00Z","sentAt":"2024-05-01T12:00:05Z"}"#,
    )
    .unwrap();
    assert_eq!(
        e.timestamp_us,
        parse_iso8601_us("t", "2024-05-01T12:00:05Z").unwrap()
    );
    assert_eq!(
        e.sent_at_us,
        parse_iso8601_us("t", "2024-05-01T12:00:05Z").unwrap()
    );

    // Batch-level sentAt applies when the event has none.
    let mut with_batch = ctx();
    with_batch.batch_sent_at_us = Some(parse_iso8601_us("t", "2024-05-01T12:00:01Z").unwrap());
    let e = envelope_from_json(
        r#"{"type":"track","event":"x","userId":"u","timestamp":"2024-05-01T12:00:00Z"}"#,
        &with_batch,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        e.timestamp_us,
        parse_iso8601_us("t", "2024-05-01T12:00:09Z").unwrap()
    );

    // No timestamp at all: when we received it.
    let e = decode(r#"{"type":"identify","userId":"u","traits":{"plan":"pro"}}"#).unwrap();
    assert_eq!(e.timestamp_us, ctx().received_at_us);
}

#[test]
fn missing_message_id_gets_a_uuid_v7() {
    let a = decode(r#"{"type":"page","name":"Home","anonymousId":"a"}"#).unwrap();
    let b = decode(r#"{"type":"page","name":"Home","anonymousId":"a"}"#).unwrap();
    let id = uuid::Uuid::parse_str(&a.event_id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_ne!(a.event_id, b.event_id);
    assert_eq!(a.name, "Home");
}

#[test]
fn native_snake_case_and_endpoint_default_type() {
    let mut c = ctx();
    c.default_type = Some(EventType::Track);
    let e = envelope_from_json(
        r#"{"event_id":"e1","event":"Signed Up","user_id":"u","anonymous_id":"a","sent_at":"2024-05-01T12:00:00Z"}"#,
        &c,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        (e.event_id.as_str(), e.r#type),
        ("e1", EventType::Track as i32)
    );
    // Numeric user ids are kept as their text.
    assert_eq!(
        decode(r#"{"type":"identify","userId":12345}"#)
            .unwrap()
            .user_id,
        "12345"
    );
}

fn error_of(json: &str) -> String {
    decode(json).unwrap_err().to_string()
}

#[test]
fn bad_events_name_the_field() {
    assert_eq!(
        error_of(r#"{"type":"track","userId":"u"}"#),
        "event is required for track events"
    );
    assert_eq!(
        error_of(r#"{"type":"track","event":"x"}"#),
        "userId or anonymousId is required"
    );
    assert_eq!(
        error_of(r#"{"event":"x","userId":"u"}"#),
        "type is required"
    );
    assert_eq!(
        error_of(r#"{"type":"track","event":"x","userId":"u","properties":"oops"}"#),
        "properties: expected a JSON object, got string"
    );
    assert_eq!(
        error_of(r#"{"type":"track","event":["x"],"userId":"u"}"#),
        "event: expected a string, got array"
    );
    assert!(
        error_of(r#"{"type":"bogus","userId":"u"}"#).starts_with("type: \"bogus\" is not one of")
    );
    assert!(
        error_of(r#"{"type":"track","event":"x","userId":"u","timestamp":"soon"}"#)
            .starts_with("timestamp: \"soon\" is not an ISO-8601 timestamp")
    );
    assert_eq!(
        error_of(r#"{"type":"group","userId":"u"}"#),
        "groupId is required for group events"
    );
    assert_eq!(error_of("[1]"), "event must be a JSON object, got an array");
    assert!(error_of(r#"{"type":"track","#).starts_with("event is not valid JSON"));
}

#[test]
fn limits_name_the_limit() {
    let big = format!(
        r#"{{"type":"track","event":"x","userId":"u","properties":{{"s":"{}"}}}}"#,
        "x".repeat(40_000)
    );
    let err = decode(&big).unwrap_err();
    assert_eq!(
        err,
        EventError::TooLarge {
            size: big.len(),
            limit: 32 * 1024
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "event is {} bytes, over the limit of 32768 bytes",
            big.len()
        )
    );

    let deep = format!(
        r#"{{"type":"track","event":"x","userId":"u","properties":{{"a":{}1{}}}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    assert_eq!(
        error_of(&deep),
        "properties: nested 1002 levels deep, over the limit of 32"
    );

    let many: Vec<String> = (0..2001).map(|i| format!(r#""p{i}":{i}"#)).collect();
    let wide = format!(
        r#"{{"type":"track","event":"x","userId":"u","properties":{{{}}}}}"#,
        many.join(",")
    );
    assert_eq!(
        error_of(&wide),
        "properties: 2001 properties, over the limit of 2000"
    );

    let long_id = format!(r#"{{"type":"identify","userId":"{}"}}"#, "u".repeat(2000));
    assert_eq!(
        error_of(&long_id),
        "userId: 2000 bytes, over the limit of 1024 bytes"
    );
}

#[test]
fn two_thousand_properties_fit_the_default_limits() {
    let many: Vec<String> = (0..2000).map(|i| format!(r#""p{i}":{i}"#)).collect();
    let properties = format!("{{{}}}", many.join(","));
    let wide = format!(r#"{{"type":"track","event":"x","userId":"u","properties":{properties}}}"#);
    assert_eq!(decode(&wide).unwrap().properties_json, properties);
}
