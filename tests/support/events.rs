//! The events the tests send: a deterministic mix of track, identify and page
//! events with nested properties, so that what the warehouse holds can be
//! checked value by value against what was sent.

use serde_json::{Value, json};
use sluice_events::proto::{Envelope, EventType};
use sluice_events::time::{format_us, now_us};

/// What event number `i` is; the mix repeats every ten events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Track "Video Played" (4 in 10), with `project.category` nested.
    VideoPlayed,
    /// Track "Order Completed" (2 in 10), with `shipping.address.country`.
    OrderCompleted,
    /// Identify (2 in 10), with `plan.tier` nested in the traits.
    Identify,
    /// Page (2 in 10).
    Page,
}

impl Kind {
    pub fn of(i: u64) -> Kind {
        match i % 10 {
            0..=3 => Kind::VideoPlayed,
            4 | 5 => Kind::OrderCompleted,
            6 | 7 => Kind::Identify,
            _ => Kind::Page,
        }
    }

    /// Whether it lands in `tracks` (and in the table of its event name).
    pub fn is_track(self) -> bool {
        matches!(self, Kind::VideoPlayed | Kind::OrderCompleted)
    }
}

/// Event ids are `<run>-<i>`, so a missing or doubled id says which event it was.
pub fn event_id(run: &str, i: u64) -> String {
    format!("{run}-{i:07}")
}

/// The event number of an id made by [`event_id`] for `run`.
pub fn event_number(run: &str, id: &str) -> Option<u64> {
    id.strip_prefix(run)?.strip_prefix('-')?.parse().ok()
}

pub fn video_category(i: u64) -> String {
    format!("cat-{}", i % 7)
}

pub fn video_duration(i: u64) -> i64 {
    (i % 600) as i64
}

pub fn order_country(i: u64) -> &'static str {
    ["DE", "FR", "US"][(i % 3) as usize]
}

pub fn order_total(i: u64) -> f64 {
    10.25 + (i % 100) as f64
}

pub fn user_email(i: u64) -> String {
    format!("user-{}@example.com", i % 500)
}

pub fn plan_tier(i: u64) -> &'static str {
    ["free", "pro", "team"][(i % 3) as usize]
}

pub fn page_path(i: u64) -> String {
    format!("/docs/{i}")
}

pub const PAGE_NAME: &str = "Docs";

/// Event `i` as a Segment client sends it (one element of `/v1/batch`).
pub fn segment_event(run: &str, i: u64) -> Value {
    let mut event = json!({
        "messageId": event_id(run, i),
        "userId": format!("user-{}", i % 500),
        "anonymousId": format!("anon-{}", i % 1000),
        "timestamp": format_us(now_us()),
        "context": {
            "library": {"name": "sluice-e2e", "version": "1.0.0"},
            "ip": "203.0.113.9",
            "locale": "de-DE"
        }
    });
    let fields = match Kind::of(i) {
        Kind::VideoPlayed => json!({
            "type": "track",
            "event": "Video Played",
            "properties": {
                "title": format!("video {i}"),
                "duration": video_duration(i),
                "project": {"category": video_category(i), "id": i},
                "tags": ["intro", "e2e"]
            }
        }),
        Kind::OrderCompleted => json!({
            "type": "track",
            "event": "Order Completed",
            "properties": {
                "order_id": format!("ord-{i}"),
                "total": order_total(i),
                "currency": "EUR",
                "shipping": {"method": "express", "address": {"country": order_country(i)}}
            }
        }),
        Kind::Identify => json!({
            "type": "identify",
            "traits": {"email": user_email(i), "plan": {"tier": plan_tier(i)}}
        }),
        Kind::Page => json!({
            "type": "page",
            "name": PAGE_NAME,
            "properties": {"path": page_path(i), "referrer": {"host": "example.com"}}
        }),
    };
    let object = event.as_object_mut().expect("an object");
    object.extend(fields.as_object().expect("an object").clone());
    event
}

/// Event `i` as a gRPC client sends it: the same event as
/// [`segment_event`], so both protocols land in the same tables and columns.
pub fn grpc_event(run: &str, i: u64) -> Envelope {
    let json = segment_event(run, i);
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    let object = |key: &str| match &json[key] {
        Value::Null => String::new(),
        value => value.to_string(),
    };
    let r#type = match Kind::of(i) {
        Kind::VideoPlayed | Kind::OrderCompleted => EventType::Track,
        Kind::Identify => EventType::Identify,
        Kind::Page => EventType::Page,
    };
    Envelope {
        event_id: text("messageId"),
        r#type: r#type as i32,
        event: text("event"),
        user_id: text("userId"),
        anonymous_id: text("anonymousId"),
        timestamp_us: now_us(),
        properties_json: object("properties"),
        context_json: object("context"),
        traits_json: object("traits"),
        name: text("name"),
        ..Envelope::default()
    }
}
