//! One Parquet file in memory: zstd, dictionary encoding, statistics, and
//! the load entry the manifest lists for it.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sluice_events::proto::{Column, ColumnType, TableLoad};

use crate::TranscodeError;
use crate::dictionary::repeats;

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

/// The writer properties for `schema`; with the values to be written
/// (`arrays`, in field order, or none), columns whose values hardly repeat
/// get no dictionary.
fn properties(schema: &Schema, arrays: &[ArrayRef]) -> WriterProperties {
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
    for (field, array) in schema.fields().iter().zip(arrays) {
        if !UNIQUE_COLUMNS.contains(&field.name().as_str()) && !repeats(array.as_ref()) {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
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

/// What a file's load entry says besides its key: its table, columns, rows
/// and event-time range, kept up to date as rows are written.
pub struct FileSummary {
    pub table: String,
    pub schema: SchemaRef,
    rows: u64,
    min_time_us: i64,
    max_time_us: i64,
}

impl FileSummary {
    pub fn new(table: &str, schema: SchemaRef) -> Self {
        Self {
            table: table.to_owned(),
            schema,
            rows: 0,
            min_time_us: i64::MAX,
            max_time_us: i64::MIN,
        }
    }

    pub fn add(&mut self, rows: u64, min_time_us: i64, max_time_us: i64) {
        self.rows += rows;
        self.min_time_us = self.min_time_us.min(min_time_us);
        self.max_time_us = self.max_time_us.max(max_time_us);
    }

    pub fn parquet_error(&self, source: parquet::errors::ParquetError) -> TranscodeError {
        TranscodeError::Parquet {
            table: self.table.clone(),
            source,
        }
    }

    pub fn into_file(self, body: Vec<u8>, object_key: String) -> TableFile {
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                r#type: column_type(f.data_type()) as i32,
            })
            .collect();
        TableFile {
            body: Bytes::from(body),
            load: TableLoad {
                table: self.table,
                object_key,
                row_count: self.rows,
                columns,
                min_event_time_us: self.min_time_us,
                max_event_time_us: self.max_time_us,
            },
        }
    }
}

/// An Arrow writer into memory with this crate's writer properties, for
/// `arrays` (see [`properties`]).
pub fn arrow_writer(
    summary: &FileSummary,
    arrays: &[ArrayRef],
) -> Result<ArrowWriter<Vec<u8>>, TranscodeError> {
    let props = properties(&summary.schema, arrays);
    ArrowWriter::try_new(Vec::new(), summary.schema.clone(), Some(props))
        .map_err(|source| summary.parquet_error(source))
}

/// A finished file with its Arrow schema and the metadata that locates
/// its column chunks.
pub struct EncodedFile {
    pub file: TableFile,
    pub schema: SchemaRef,
    pub metadata: ParquetMetaData,
}

/// Writes the rows of one table (one array per schema field, event times
/// spanning `min_time_us..=max_time_us`) as a Parquet file in memory, to be
/// stored at `object_key`. The file keeps its Parquet metadata, which
/// locates each encoded column chunk so another file can reuse it (see
/// [`crate::splice`]).
pub fn write_file(
    table: &str,
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    (min_time_us, max_time_us): (i64, i64),
    object_key: String,
) -> Result<EncodedFile, TranscodeError> {
    let mut summary = FileSummary::new(table, schema);
    let mut writer = arrow_writer(&summary, &columns)?;
    let batch = RecordBatch::try_new(summary.schema.clone(), columns).map_err(|source| {
        TranscodeError::Arrow {
            table: table.to_owned(),
            source,
        }
    })?;
    writer
        .write(&batch)
        .map_err(|source| summary.parquet_error(source))?;
    summary.add(batch.num_rows() as u64, min_time_us, max_time_us);
    let metadata = writer
        .finish()
        .map_err(|source| summary.parquet_error(source))?;
    // `finish` wrote the footer and flushed, so the buffer is the file.
    let body = std::mem::take(writer.inner_mut());
    let schema = summary.schema.clone();
    Ok(EncodedFile {
        file: summary.into_file(body, object_key),
        schema,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::StringArray;
    use arrow_schema::Field;

    use super::*;

    #[test]
    fn only_columns_whose_values_repeat_get_a_dictionary() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
        ]));
        let rows = 5_000;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["Viewed", "Added"][i % 2]),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("https://example.com/p/{i}")),
            )),
        ];
        let file = write_file("t", schema, columns, (0, 0), "k".into()).unwrap();
        let chunks = file.metadata.row_group(0).columns();
        assert!(chunks[0].dictionary_page_offset().is_some(), "event");
        assert!(chunks[1].dictionary_page_offset().is_none(), "url");
        assert_eq!(file.file.load.row_count, rows as u64);
    }
}
