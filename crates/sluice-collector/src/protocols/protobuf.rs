//! gRPC clients send envelopes as protobuf. Each is rendered as the JSON
//! event it stands for, so it goes through exactly the validation (limits,
//! required ids, skew correction) that JSON clients get.

use serde_json::value::RawValue;
use sluice_events::EventError;
use sluice_events::proto::{Envelope, EventType};
use sluice_events::time::format_us;

use crate::rejection::Reject;

pub const PROTOCOL: &str = "grpc";

pub fn event_json(e: &Envelope) -> Result<String, Reject> {
    let mut out = String::with_capacity(
        128 + e.properties_json.len() + e.context_json.len() + e.traits_json.len(),
    );
    out.push('{');
    let kind = match EventType::try_from(e.r#type) {
        Ok(EventType::Track) => "track",
        Ok(EventType::Identify) => "identify",
        Ok(EventType::Page) => "page",
        Ok(EventType::Screen) => "screen",
        Ok(EventType::Group) => "group",
        Ok(EventType::Alias) => "alias",
        Ok(EventType::Unspecified) => "",
        Err(_) => {
            return Err(Reject::Event(EventError::InvalidValue {
                field: "type",
                reason: format!("{} is not an EventType", e.r#type),
            }));
        }
    };
    let strings = [
        ("messageId", e.event_id.as_str()),
        ("type", kind),
        ("event", &e.event),
        ("userId", &e.user_id),
        ("anonymousId", &e.anonymous_id),
        ("name", &e.name),
        ("groupId", &e.group_id),
        ("previousId", &e.previous_id),
    ];
    for (key, value) in strings {
        if !value.is_empty() {
            push_key(&mut out, key);
            out.push_str(&serde_json::to_string(value).expect("a string serializes"));
        }
    }
    for (key, us) in [("timestamp", e.timestamp_us), ("sentAt", e.sent_at_us)] {
        if us != 0 {
            push_key(&mut out, key);
            out.push('"');
            out.push_str(&format_us(us));
            out.push('"');
        }
    }
    let objects = [
        ("properties", "properties_json", &e.properties_json),
        ("context", "context_json", &e.context_json),
        ("traits", "traits_json", &e.traits_json),
    ];
    for (key, field, text) in objects {
        if text.is_empty() {
            continue;
        }
        serde_json::from_str::<&RawValue>(text).map_err(|err| {
            Reject::Event(EventError::InvalidValue {
                field,
                reason: format!("not valid JSON ({err})"),
            })
        })?;
        push_key(&mut out, key);
        out.push_str(text);
    }
    out.push('}');
    Ok(out)
}

fn push_key(out: &mut String, key: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

#[cfg(test)]
mod tests {
    use sluice_events::{IngestContext, Limits, envelope_from_json};

    use super::*;

    #[test]
    fn round_trips_through_json_validation() {
        let sent = Envelope {
            event_id: "m-1".into(),
            r#type: EventType::Track as i32,
            event: "Clicked \"Buy\"".into(),
            user_id: "u1".into(),
            timestamp_us: 1_700_000_000_000_001,
            properties_json: r#"{"price": 1.50}"#.into(),
            ..Default::default()
        };
        let json = event_json(&sent).unwrap();
        let ctx = IngestContext {
            received_at_us: 1_700_000_000_500_000,
            ..Default::default()
        };
        let got = envelope_from_json(&json, &ctx, &Limits::default()).unwrap();
        assert_eq!(got.event_id, "m-1");
        assert_eq!(got.event, sent.event);
        assert_eq!(got.timestamp_us, sent.timestamp_us);
        assert_eq!(got.properties_json, sent.properties_json);

        let bad = Envelope {
            context_json: "{oops".into(),
            ..sent
        };
        let err = event_json(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with("context_json: not valid JSON"),
            "{err}"
        );
    }
}
