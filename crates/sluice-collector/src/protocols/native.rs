//! Sluice's own shape, `POST /v1/events`: a JSON array of events, or NDJSON
//! (one event per line). NDJSON is the robust choice for producers: a
//! malformed line is rejected alone, where a malformed array cannot be cut
//! into events at all.

use serde_json::value::RawValue;

use super::Decoded;
use crate::CollectorError;

pub const PROTOCOL: &str = "native";

pub fn decode(body: &str) -> Result<Decoded<'_>, CollectorError> {
    // Array elements were parsed with the array; NDJSON lines were not.
    let (events, parsed) = if body.trim_start().starts_with('[') {
        let events = serde_json::from_str::<Vec<&RawValue>>(body)
            .map_err(|e| CollectorError::Json(e.to_string()))?
            .into_iter()
            .map(|raw| Ok(raw.get()))
            .collect();
        (events, true)
    } else {
        let events = body
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(Ok)
            .collect();
        (events, false)
    };
    Ok(Decoded {
        protocol: PROTOCOL,
        events,
        parsed,
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
        assert_eq!(d.events, vec![Ok(r#"{"a":1}"#), Ok(r#"{"b":[1,2]}"#)]);
        let d = decode("{\"a\":1}\n\n  {broken\r\n{\"c\":3}\n").unwrap();
        assert_eq!(
            d.events,
            vec![Ok("{\"a\":1}"), Ok("{broken"), Ok("{\"c\":3}")]
        );
        assert!(matches!(
            decode("[{\"a\":1},"),
            Err(CollectorError::Json(_))
        ));
    }
}
