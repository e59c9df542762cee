//! S3 event notifications: the JSON S3 sends a queue when an object is
//! created, which the local object store emits too, and a parser that reads
//! what real S3 (and emulators) send.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;

use crate::{BackendError, Result};

/// One object that was created, as read from a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The decoded object key.
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// S3's per-key ordering token, when present (absent on emulators).
    pub sequencer: Option<String>,
}

/// S3 encodes keys in notifications like HTML form values: everything but
/// unreserved characters is percent-encoded, and a space becomes `+`.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*');

fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_ENCODE)
        .to_string()
        .replace("%20", "+")
}

fn decode_key(key: &str) -> Result<String> {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| BackendError::InvalidArgument(format!("notification key {key:?}: {e}")))
}

/// The body S3 sends for `s3:ObjectCreated:Put`, with the fields consumers
/// read. `event_time` is RFC 3339.
pub fn object_created_json(
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
    event_time: &str,
    sequencer: &str,
) -> String {
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "local",
            "eventTime": event_time,
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "sluice-local",
                "bucket": { "name": bucket, "arn": format!("arn:aws:s3:::{bucket}") },
                "object": {
                    "key": encode_key(key),
                    "size": size,
                    "eTag": etag,
                    "sequencer": sequencer,
                }
            }
        }]
    })
    .to_string()
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
    #[serde(rename = "Event")]
    event: Option<String>,
    /// Set when the notification went through SNS before reaching SQS.
    #[serde(rename = "Type")]
    sns_type: Option<String>,
    #[serde(rename = "Message")]
    sns_message: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    sequencer: Option<String>,
}

/// Every created object in a notification body. `s3:TestEvent` (sent when
/// a notification configuration is set) and non-create events yield nothing;
/// an SNS envelope is unwrapped.
pub fn parse_object_created(body: &str) -> Result<Vec<ObjectCreated>> {
    let notification: Notification = serde_json::from_str(body)
        .map_err(|e| BackendError::InvalidArgument(format!("not an S3 notification: {e}")))?;
    if notification.sns_type.as_deref() == Some("Notification") {
        let inner = notification.sns_message.ok_or_else(|| {
            BackendError::InvalidArgument("SNS notification without a Message".into())
        })?;
        return parse_object_created(&inner);
    }
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    notification
        .records
        .into_iter()
        .filter(|r| r.event_name.starts_with("ObjectCreated:"))
        .map(|r| {
            Ok(ObjectCreated {
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key)?,
                size: r.s3.object.size,
                etag: r.s3.object.etag,
                sequencer: r.s3.object.sequencer,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_keys() {
        let key = "raw/dt=2024-01-01/a b+c/ünï.zst";
        let body = object_created_json("bkt", key, 42, "\"e\"", "2024-01-01T00:00:00Z", "1");
        assert!(body.contains("raw%2Fdt%3D2024-01-01%2Fa+b%2Bc"), "{body}");
        let parsed = parse_object_created(&body).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].key, key);
        assert_eq!(parsed[0].bucket, "bkt");
        assert_eq!(parsed[0].size, 42);
    }

    #[test]
    fn reads_s3_shape_without_optional_fields() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"b"},"object":{"key":"raw%2Fdt%3D2024-01-01%2Fx","size":7}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"gone"}}}]}"#;
        let parsed = parse_object_created(body).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].key, "raw/dt=2024-01-01/x");
        assert_eq!(parsed[0].etag, None);
    }

    #[test]
    fn skips_test_event_and_unwraps_sns() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        assert!(parse_object_created(test_event).unwrap().is_empty());
        let inner = object_created_json("b", "k", 1, "e", "t", "s");
        let sns = json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(parse_object_created(&sns).unwrap()[0].key, "k");
    }

    #[test]
    fn rejects_non_json() {
        assert!(parse_object_created("nope").is_err());
    }
}
