//! Builds what the transcoder would hand the loader: Parquet table files in
//! a local object store, and the load manifest naming them.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_backends::local::LocalObjectStore;
use sluice_backends::{ObjectStore, PutCondition};
use sluice_events::proto::{Column, ColumnType, LoadManifest, TableLoad};

/// 2024-05-01T00:00:00Z.
pub const T0: i64 = 1_714_521_600_000_000;
pub const HOUR: i64 = 3_600_000_000;
pub const DAY: i64 = 24 * HOUR;

#[derive(Clone, Debug, PartialEq)]
pub enum Prop {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Ts(i64),
}

impl Prop {
    fn column_type(&self) -> Option<ColumnType> {
        match self {
            Prop::Null => None,
            Prop::Bool(_) => Some(ColumnType::Boolean),
            Prop::Int(_) => Some(ColumnType::Int64),
            Prop::Float(_) => Some(ColumnType::Float64),
            Prop::Text(_) => Some(ColumnType::String),
            Prop::Ts(_) => Some(ColumnType::Timestamp),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Prop::Null => serde_json::Value::Null,
            Prop::Bool(b) => (*b).into(),
            Prop::Int(i) => (*i).into(),
            Prop::Float(f) => (*f).into(),
            Prop::Text(s) => s.clone().into(),
            Prop::Ts(us) => sluice_events::time::format_us(*us).into(),
        }
    }
}

pub fn text(s: &str) -> Prop {
    Prop::Text(s.to_string())
}

pub type Row = Vec<(String, Prop)>;

fn common(id: &str, received_at: i64, user_id: Option<&str>) -> Row {
    vec![
        ("id".into(), text(id)),
        ("received_at".into(), Prop::Ts(received_at)),
        ("timestamp".into(), Prop::Ts(received_at - 1_000)),
        ("sent_at".into(), Prop::Null),
        ("user_id".into(), user_id.map_or(Prop::Null, text)),
        ("anonymous_id".into(), text("anon-1")),
        ("context".into(), text(r#"{"library":{"name":"test"}}"#)),
        ("context_library_name".into(), text("test")),
    ]
}

fn json_of(props: &[(&str, Prop)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.json()))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A row of a per-event table (and, without properties, of `tracks`).
pub fn track(id: &str, event: &str, received_at: i64, props: &[(&str, Prop)]) -> Row {
    let mut row = common(id, received_at, Some("user-1"));
    row.push(("event".into(), text(event)));
    row.push(("event_text".into(), text(event)));
    row.push(("properties".into(), Prop::Text(json_of(props))));
    row.extend(props.iter().map(|(k, v)| (k.to_string(), v.clone())));
    row
}

/// A row of `identifies`; `timestamp` is when the identify happened.
pub fn identify(id: &str, user_id: &str, timestamp: i64, traits: &[(&str, Prop)]) -> Row {
    let mut row = common(id, timestamp + 1_000, Some(user_id));
    row[2].1 = Prop::Ts(timestamp);
    row.push(("traits".into(), Prop::Text(json_of(traits))));
    row.extend(traits.iter().map(|(k, v)| (k.to_string(), v.clone())));
    row
}

/// The file's columns in first-seen order, typed by their first non-null
/// value (the transcoder has already settled each column on one type).
fn columns(rows: &[Row]) -> Vec<(String, ColumnType)> {
    let mut columns: Vec<(String, Option<ColumnType>)> = Vec::new();
    for row in rows {
        for (name, value) in row {
            match columns.iter_mut().find(|(n, _)| n == name) {
                Some((_, ty @ None)) => *ty = value.column_type(),
                Some(_) => {}
                None => columns.push((name.clone(), value.column_type())),
            }
        }
    }
    columns
        .into_iter()
        .map(|(n, t)| (n, t.unwrap_or(ColumnType::Timestamp)))
        .collect()
}

pub fn parquet(rows: &[Row]) -> (Bytes, Vec<Column>) {
    let columns = columns(rows);
    let value = |row: &Row, name: &str| {
        row.iter()
            .find(|(n, _)| n == name)
            .map_or(Prop::Null, |(_, v)| v.clone())
    };
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, ty) in &columns {
        let values: Vec<Prop> = rows.iter().map(|r| value(r, name)).collect();
        let (data_type, array): (DataType, ArrayRef) = match ty {
            ColumnType::Boolean => (
                DataType::Boolean,
                Arc::new(BooleanArray::from_iter(values.iter().map(|v| match v {
                    Prop::Bool(b) => Some(*b),
                    _ => None,
                }))),
            ),
            ColumnType::Int64 => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(values.iter().map(|v| match v {
                    Prop::Int(i) => Some(*i),
                    _ => None,
                }))),
            ),
            ColumnType::Float64 => (
                DataType::Float64,
                Arc::new(Float64Array::from_iter(values.iter().map(|v| match v {
                    Prop::Float(f) => Some(*f),
                    _ => None,
                }))),
            ),
            ColumnType::String => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(values.iter().map(|v| match v {
                    Prop::Text(s) => Some(s.as_str()),
                    _ => None,
                }))),
            ),
            _ => (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Arc::new(
                    TimestampMicrosecondArray::from_iter(values.iter().map(|v| match v {
                        Prop::Ts(us) => Some(*us),
                        _ => None,
                    }))
                    .with_timezone("UTC"),
                ),
            ),
        };
        let nullable = !matches!(name.as_str(), "id" | "received_at");
        fields.push(Field::new(name.clone(), data_type, nullable));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .build();
    let mut body = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut body, schema, Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let manifest_columns = columns
        .into_iter()
        .map(|(name, ty)| Column {
            name,
            r#type: ty as i32,
        })
        .collect();
    (Bytes::from(body), manifest_columns)
}

pub fn object_store(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    Arc::new(LocalObjectStore::open(dir.join("objects")).unwrap())
}

/// Writes each table's file and returns the manifest naming them.
pub async fn manifest(
    objects: &dyn ObjectStore,
    manifest_id: &str,
    tables: &[(&str, Vec<Row>)],
) -> LoadManifest {
    let mut loads = Vec::new();
    for (table, rows) in tables {
        let (body, columns) = parquet(rows);
        let key = format!(
            "tables/{table}/dt=2024-05-01/{}.parquet",
            manifest_id.replace('/', "-")
        );
        objects.put(&key, body, PutCondition::None).await.unwrap();
        loads.push(TableLoad {
            table: table.to_string(),
            object_key: key,
            row_count: rows.len() as u64,
            columns,
            min_event_time_us: T0,
            max_event_time_us: T0,
        });
    }
    LoadManifest {
        manifest_id: manifest_id.to_string(),
        source_key: format!("raw/{manifest_id}.pb.zst"),
        tables: loads,
        created_at_us: T0,
    }
}
pub mod harness;
