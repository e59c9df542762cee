//! One Parquet file in memory: zstd, dictionary encoding, statistics, and
//! the load entry the manifest lists for it.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sluice_events::proto::{Column, ColumnType, TableLoad};

use crate::TranscodeError;

/// Columns whose values are (nearly) all different, where a dictionary only
/// costs time before the writer falls back to plain encoding.
const UNIQUE_COLUMNS: &[&str] = &["id", "context", "properties", "traits", "raw"];
/// Columns of whole JSON documents: min/max statistics on them help no query.
const JSON_COLUMNS: &[&str] = &["context", "properties", "traits", "raw"];

/// A finished file and its entry in the load manifest.
#[derive(Clone, Debug)]
pub struct TableFile {
    pub body: Bytes,
    pub load: TableLoad,
}

/// Writes batches of one table into a Parquet file held in memory; values
/// are encoded and compressed as each batch arrives, so the batch's arrays
/// can be dropped at once.
pub struct TableWriter {
    table: String,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
    min_time_us: i64,
    max_time_us: i64,
}

fn properties(schema: &Schema) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: most of zstd's ratio on this data for a fraction of the
        // time of higher levels; the files are read many times, written once.
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page);
    for &name in UNIQUE_COLUMNS {
        if schema.field_with_name(name).is_ok() {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
    }
    for &name in JSON_COLUMNS {
        if schema.field_with_name(name).is_ok() {
            builder = builder
                .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
        }
    }
    builder.build()
}

/// The manifest's type for a column written with `data_type`.
fn column_type(data_type: &DataType) -> ColumnType {
    match data_type {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int64 => ColumnType::Int64,
        DataType::Float64 => ColumnType::Float64,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        _ => ColumnType::String,
    }
}

impl TableWriter {
    pub fn new(table: &str, schema: SchemaRef) -> Result<Self, TranscodeError> {
        let props = properties(&schema);
        let writer =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(|source| {
                TranscodeError::Parquet {
                    table: table.to_owned(),
                    source,
                }
            })?;
        Ok(Self {
            table: table.to_owned(),
            schema,
            writer,
            rows: 0,
            min_time_us: i64::MAX,
            max_time_us: i64::MIN,
        })
    }

    /// Appends rows, given as one array per schema field, whose event times
    /// span `min_time_us..=max_time_us`.
    pub fn write(
        &mut self,
        columns: Vec<ArrayRef>,
        min_time_us: i64,
        max_time_us: i64,
    ) -> Result<(), TranscodeError> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|source| {
            TranscodeError::Arrow {
                table: self.table.clone(),
                source,
            }
        })?;
        self.writer
            .write(&batch)
            .map_err(|source| TranscodeError::Parquet {
                table: self.table.clone(),
                source,
            })?;
        self.rows += batch.num_rows() as u64;
        self.min_time_us = self.min_time_us.min(min_time_us);
        self.max_time_us = self.max_time_us.max(max_time_us);
        Ok(())
    }

    /// Closes the file, to be stored at `object_key`.
    pub fn finish(self, object_key: String) -> Result<TableFile, TranscodeError> {
        let body = self
            .writer
            .into_inner()
            .map_err(|source| TranscodeError::Parquet {
                table: self.table.clone(),
                source,
            })?;
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                r#type: column_type(f.data_type()) as i32,
            })
            .collect();
        Ok(TableFile {
            body: Bytes::from(body),
            load: TableLoad {
                table: self.table,
                object_key,
                row_count: self.rows,
                columns,
                min_event_time_us: self.min_time_us,
                max_event_time_us: self.max_time_us,
            },
        })
    }
}
