//! Load manifests travel as SQS message bodies, which must be text: the
//! protobuf is sent base64-encoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;

use crate::EventError;
use crate::proto::LoadManifest;

pub fn encode_manifest(manifest: &LoadManifest) -> String {
    STANDARD.encode(manifest.encode_to_vec())
}

pub fn decode_manifest(body: &str) -> Result<LoadManifest, EventError> {
    let bytes = STANDARD
        .decode(body.trim())
        .map_err(|e| EventError::Record(format!("load manifest is not base64: {e}")))?;
    LoadManifest::decode(bytes.as_slice())
        .map_err(|e| EventError::Record(format!("load manifest protobuf: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Column, ColumnType, TableLoad};

    #[test]
    fn round_trips() {
        let manifest = LoadManifest {
            manifest_id: "raw/s/dt=2024-01-01/hh=00/shardId-0/1-9".into(),
            source_key: "raw/s/dt=2024-01-01/hh=00/shardId-0/1-9.zst".into(),
            tables: vec![TableLoad {
                table: "tracks".into(),
                object_key: "tables/tracks/dt=2024-01-01/x.parquet".into(),
                row_count: 9,
                columns: vec![Column {
                    name: "event".into(),
                    r#type: ColumnType::String as i32,
                }],
                min_event_time_us: 1,
                max_event_time_us: 2,
            }],
            created_at_us: 3,
        };
        assert_eq!(
            decode_manifest(&encode_manifest(&manifest)).unwrap(),
            manifest
        );
        assert!(decode_manifest("%%%").is_err());
    }
}
