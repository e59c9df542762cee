//! Once an object's first records are read, its columns are sized for the
//! whole object from them (see `transcode`). However wrong that estimate
//! is, the files must be those of the same events in a single record,
//! which is never sized.

mod support;

use sluice_events::proto::{Envelope, EventType};
use sluice_transcoder::transcode;
use support::{archive, other, track};

/// Event `i` of record `record`: text that grows from record to record (so
/// the first records foretell too little), nulls, a timestamp column that
/// becomes text after sizing, and a table that appears only then.
fn event(record: usize, i: usize) -> Envelope {
    let id = format!("e-{record}-{i}");
    if i == 0 {
        let mut identify = other(&id, EventType::Identify);
        identify.traits_json = format!(r#"{{"email":"u{record}@example.com"}}"#);
        return identify;
    }
    let when = if record < 12 {
        "\"2024-05-01T12:00:00Z\"".to_owned()
    } else {
        format!("\"soon {record}\"")
    };
    let text = "x".repeat(record * 30);
    let properties = if i.is_multiple_of(3) {
        format!(r#"{{"when":null,"text":null,"n":{i}}}"#)
    } else {
        format!(r#"{{"when":{when},"text":"{text}","tags":[{record}],"n":{i}}}"#)
    };
    let name = if record >= 10 && i.is_multiple_of(2) {
        "Late Arrival"
    } else {
        "Product Viewed"
    };
    let mut event = track(&id, name, &properties);
    if i.is_multiple_of(4) {
        event.user_id.clear();
    }
    event.context_json = format!(r#"{{"page":{{"path":"/{text}"}},"ip":null}}"#);
    event
}

#[test]
fn sizing_columns_midway_changes_no_file() {
    let records: Vec<Vec<Envelope>> = (0..20)
        .map(|record| (0..record + 4).map(|i| event(record, i)).collect())
        .collect();
    let (key, body) = archive(100, &records);
    let (whole_key, whole_body) = archive(100, &[records.concat()]);
    let sized = transcode(&key, &body).unwrap();
    let whole = transcode(&whole_key, &whole_body).unwrap();
    let tables = |output: &sluice_transcoder::TranscodeOutput| -> Vec<_> {
        (output.files.iter())
            .map(|f| (f.load.table.clone(), f.body.clone()))
            .collect()
    };
    assert_eq!(sized.events, whole.events);
    assert!(sized.rejected.is_empty(), "{:?}", sized.rejected);
    assert_eq!(tables(&sized), tables(&whole));
}
