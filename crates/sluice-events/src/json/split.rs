//! Cutting a request body into events by the pass that checks its JSON
//! grammar, each event's fields taken on the way: a body is then read once,
//! where parsing it with serde and then reading each event again read it
//! twice.

use super::EventJson;
use super::fields::event_fields;
use super::grammar::{object_members, skip_ws, value_end};

/// What [`scan_batch`] finds in an object holding an array of events.
#[derive(Debug)]
pub struct ScannedBatch<'a> {
    pub events: Vec<EventJson<'a>>,
    /// The other members: key (without its quotes) and value's JSON text.
    pub members: Vec<(&'a str, &'a str)>,
}

/// An object holding an array of events under `events_key` (Segment's
/// `{"batch": [...], "sentAt": ...}`), its grammar checked as strictly as
/// serde_json checks it. `None` if it is not valid JSON, and for what a
/// serde parse must decide: an escaped key, or `events_key` missing,
/// repeated or not an array.
pub fn scan_batch<'a>(text: &'a str, events_key: &str) -> Option<ScannedBatch<'a>> {
    let b = text.as_bytes();
    let mut events = None;
    let mut members = Vec::new();
    let end = object_members(text, skip_ws(b, 0), |key, i| {
        if key == events_key {
            let (found, end) = array_events(text, i)?;
            // A repeated key is serde's to report.
            events.replace(found).is_none().then_some(end)
        } else {
            let (_, end) = value_end(b, i)?;
            members.push((key, text.get(i..end)?));
            Some(end)
        }
    })?;
    let events = events?;
    (skip_ws(b, end) == b.len()).then_some(ScannedBatch { events, members })
}

/// A text that is one JSON array of events, as [`scan_batch`] reads one.
pub fn scan_event_array(text: &str) -> Option<Vec<EventJson<'_>>> {
    let b = text.as_bytes();
    let (events, end) = array_events(text, skip_ws(b, 0))?;
    (skip_ws(b, end) == b.len()).then_some(events)
}

/// The elements of the array at `start` (any JSON value: what is not an
/// object is rejected later, as one event), and the offset just past it.
fn array_events(text: &str, start: usize) -> Option<(Vec<EventJson<'_>>, usize)> {
    let b = text.as_bytes();
    let mut events = Vec::new();
    if b.get(start) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(b, start + 1);
    if b.get(i) == Some(&b']') {
        return Some((events, i + 1));
    }
    loop {
        let end = match event_fields(text, i) {
            Some((fields, end)) => {
                events.push(EventJson {
                    text: text.get(i..end)?,
                    fields: Some(fields),
                });
                end
            }
            // Any other value (or an event left to serde) is only checked.
            None => {
                let (_, end) = value_end(b, i)?;
                events.push(EventJson::new(text.get(i..end)?));
                end
            }
        };
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some((events, i + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(events: &[EventJson<'a>]) -> Vec<&'a str> {
        events.iter().map(EventJson::text).collect()
    }

    #[test]
    fn cuts_events_and_members() {
        let body = r#" {"sentAt" : "t", "batch": [ {"type":"track"} , 1, {"a\u0041":2} ,[]],"x":{"y":[]} } "#;
        let batch = scan_batch(body, "batch").unwrap();
        assert_eq!(
            texts(&batch.events),
            [r#"{"type":"track"}"#, "1", r#"{"a\u0041":2}"#, "[]"]
        );
        assert_eq!(
            batch.events[0].fields.as_ref().unwrap().kind,
            Some(r#""track""#)
        );
        assert!(batch.events[2].fields.is_none());
        assert_eq!(batch.members, [("sentAt", r#""t""#), ("x", r#"{"y":[]}"#)]);
        let events = scan_event_array("\n[{}]\n").unwrap();
        assert_eq!(texts(&events), ["{}"]);
    }

    #[test]
    fn leaves_to_serde_what_serde_decides() {
        for body in [
            r#"{"batch":[]}x"#,
            r#"{"batch":[{"a":}]}"#,
            r#"{"batch":[{"a":1,}]}"#,
            r#"{"batch":[],"batch":[]}"#,
            r#"{"b\u0061tch":[]}"#,
            r#"{"batch":{}}"#,
            r#"{"events":[]}"#,
            r#"[[]]"#,
            r#"{"batch":[{"a":"\x"}]}"#,
        ] {
            assert!(scan_batch(body, "batch").is_none(), "{body}");
        }
        assert!(scan_event_array("[{},]").is_none());
    }
}
