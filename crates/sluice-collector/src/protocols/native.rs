//! Sluice's own shape, `POST /v1/events`: a JSON array of events, or NDJSON
//! (one event per line). NDJSON is the robust choice for producers: a
//! malformed line is rejected alone, where a malformed array cannot be cut
//! into events at all.

use serde_json::value::RawValue;
use sluice_events::{EventJson, scan_event_array};

use super::Decoded;
use crate::CollectorError;

pub const PROTOCOL: &str = "native";

pub fn decode(body: &str) -> Result<Decoded<'_>, CollectorError> {
    // An array is checked whole (its events cut out on the way), as a
    // malformed one cannot be cut into events; serde words the errors.
    let events = if body.trim_start().starts_with('[') {
        match scan_event_array(body) {
            Some(events) => events,
            None => serde_json::from_str::<Vec<&RawValue>>(body)
                .map_err(|e| CollectorError::Json(e.to_string()))?
                .into_iter()
                .map(|raw| EventJson::new(raw.get()))
                .collect(),
        }
    } else {
        body.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(EventJson::new)
            .collect()
    };
    Ok(Decoded {
        protocol: PROTOCOL,
        events: events.into_iter().map(Ok).collect(),
        write_key: None,
        sent_at_us: None,
        default_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_and_ndjson() {
        let d = decode(r#" [{"a":1}, {"b":[1,2]}] "#).unwrap();
        assert_eq!(d.texts(), vec![Ok(r#"{"a":1}"#), Ok(r#"{"b":[1,2]}"#)]);
        let d = decode("{\"a\":1}\n\n  {broken\r\n{\"c\":3}\n").unwrap();
        assert_eq!(
            d.texts(),
            vec![Ok("{\"a\":1}"), Ok("{broken"), Ok("{\"c\":3}")]
        );
        assert!(matches!(
            decode("[{\"a\":1},"),
            Err(CollectorError::Json(_))
        ));
    }
}
