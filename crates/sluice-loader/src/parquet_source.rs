//! Reading a table file the transcoder wrote: its columns as warehouse
//! types, its rows batch by batch, and which rows repeat an earlier id.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{LoaderError, Result};
use crate::schema::Incoming;
use crate::types::WhType;

/// Rows decoded at a time.
const BATCH_ROWS: usize = 8192;

/// One Parquet table file, in memory.
pub struct ParquetTable {
    pub table: String,
    pub key: String,
    body: Bytes,
    pub columns: Vec<Incoming>,
    pub rows: u64,
    /// Rows (by position in the file) whose id an earlier row already has.
    duplicates: HashSet<usize>,
}

impl ParquetTable {
    pub fn open(table: &str, key: &str, body: Bytes) -> Result<ParquetTable> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(body.clone())
            .map_err(|e| parquet_error(key, e))?;
        let rows = builder.metadata().file_metadata().num_rows() as u64;
        let columns = builder
            .schema()
            .fields()
            .iter()
            .map(|field| {
                let ty = warehouse_type(field.data_type()).ok_or_else(|| {
                    LoaderError::UnsupportedColumn {
                        table: table.to_string(),
                        column: field.name().clone(),
                        data_type: field.data_type().to_string(),
                    }
                })?;
                Ok(Incoming {
                    source: field.name().clone(),
                    name: field.name().clone(),
                    ty,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut file = ParquetTable {
            table: table.to_string(),
            key: key.to_string(),
            body,
            columns,
            rows,
            duplicates: HashSet::new(),
        };
        file.duplicates = file.find_duplicates()?;
        Ok(file)
    }

    /// Reads only the id column: a replayed or retried batch may repeat an
    /// event, and the warehouse must see it once.
    fn find_duplicates(&self) -> Result<HashSet<usize>> {
        let Some(id_column) = self.columns.iter().position(|c| c.source == "id") else {
            return Ok(HashSet::new());
        };
        let ids: Vec<RecordBatch> = self
            .reader(&[id_column])?
            .collect::<Result<_, _>>()
            .map_err(|e| parquet_error(&self.key, e))?;
        let mut seen = HashSet::new();
        let mut duplicates = HashSet::new();
        let mut row = 0;
        for batch in &ids {
            let column = Column::new(batch.column(0));
            for i in 0..batch.num_rows() {
                if let Value::Text(id) = column.value(i)
                    && !seen.insert(id)
                {
                    duplicates.insert(row + i);
                }
            }
            row += batch.num_rows();
        }
        Ok(duplicates)
    }

    fn reader(&self, columns: &[usize]) -> Result<ParquetRecordBatchReader> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(self.body.clone())
            .map_err(|e| parquet_error(&self.key, e))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| parquet_error(&self.key, e))
    }

    /// Calls `row` with the values of `columns` (sources, in this order) for
    /// every row whose id is new in this file.
    pub fn for_each_row(
        &self,
        columns: &[String],
        mut row: impl FnMut(&[Value<'_>]) -> Result<()>,
    ) -> Result<()> {
        let indices: Vec<usize> = columns
            .iter()
            .map(|name| {
                self.columns
                    .iter()
                    .position(|c| &c.source == name)
                    .expect("staged columns come from the file")
            })
            .collect();
        // The reader yields projected columns in file order.
        let mut sorted = indices.clone();
        sorted.sort_unstable();
        let order: Vec<usize> = indices
            .iter()
            .map(|i| sorted.binary_search(i).expect("present"))
            .collect();
        let mut offset = 0;
        for batch in self.reader(&sorted)? {
            let batch = batch.map_err(|e| parquet_error(&self.key, e))?;
            let readers: Vec<Column<'_>> = order
                .iter()
                .map(|&i| Column::new(batch.column(i)))
                .collect();
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..batch.num_rows() {
                if self.duplicates.contains(&(offset + i)) {
                    continue;
                }
                values.clear();
                values.extend(readers.iter().map(|c| c.value(i)));
                row(&values)?;
            }
            offset += batch.num_rows();
        }
        Ok(())
    }
}

fn parquet_error(key: &str, error: impl std::fmt::Display) -> LoaderError {
    LoaderError::Parquet {
        key: key.to_string(),
        message: error.to_string(),
    }
}

/// The warehouse type of an Arrow column; `None` for types the transcoder
/// never writes (lists, structs, ...).
fn warehouse_type(data_type: &DataType) -> Option<WhType> {
    match data_type {
        DataType::Boolean => Some(WhType::Boolean),
        DataType::Int32 | DataType::Int64 => Some(WhType::BigInt),
        DataType::Float32 | DataType::Float64 => Some(WhType::Double),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(WhType::Text),
        DataType::Timestamp(_, _) => Some(WhType::Timestamp),
        _ => None,
    }
}

/// One value of a row, as the warehouse stores it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

/// Typed access to one column of a batch.
struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    data: Data<'a>,
}

enum Data<'a> {
    Bool(&'a arrow_array::BooleanArray),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Utf8View(&'a arrow_array::StringViewArray),
    /// Raw values and how many of them make a microsecond (negative: how
    /// many microseconds make one of them).
    Timestamp(&'a [i64], i64),
}

impl<'a> Column<'a> {
    /// `array` has a type [`warehouse_type`] accepts.
    fn new(array: &'a ArrayRef) -> Column<'a> {
        let data = match array.data_type() {
            DataType::Boolean => Data::Bool(array.as_boolean()),
            DataType::Int32 => Data::I32(array.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Data::I64(array.as_primitive::<Int64Type>().values()),
            DataType::Float32 => Data::F32(array.as_primitive::<Float32Type>().values()),
            DataType::Float64 => Data::F64(array.as_primitive::<Float64Type>().values()),
            DataType::Utf8 => Data::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Data::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Data::Utf8View(array.as_string_view()),
            DataType::Timestamp(TimeUnit::Second, _) => Data::Timestamp(
                array.as_primitive::<TimestampSecondType>().values(),
                -1_000_000,
            ),
            DataType::Timestamp(TimeUnit::Millisecond, _) => Data::Timestamp(
                array.as_primitive::<TimestampMillisecondType>().values(),
                -1_000,
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Data::Timestamp(array.as_primitive::<TimestampMicrosecondType>().values(), 1)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Data::Timestamp(
                array.as_primitive::<TimestampNanosecondType>().values(),
                1_000,
            ),
            other => unreachable!("column type {other} was rejected when the file was opened"),
        };
        Column {
            nulls: array.nulls(),
            data,
        }
    }

    fn value(&self, i: usize) -> Value<'a> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return Value::Null;
        }
        match &self.data {
            Data::Bool(a) => Value::Bool(a.value(i)),
            Data::I32(v) => Value::Int(i64::from(v[i])),
            Data::I64(v) => Value::Int(v[i]),
            Data::F32(v) => Value::Float(f64::from(v[i])),
            Data::F64(v) => Value::Float(v[i]),
            Data::Utf8(a) => Value::Text(a.value(i)),
            Data::LargeUtf8(a) => Value::Text(a.value(i)),
            Data::Utf8View(a) => Value::Text(a.value(i)),
            Data::Timestamp(v, scale) if *scale < 0 => Value::Timestamp(v[i] * -scale),
            Data::Timestamp(v, scale) => Value::Timestamp(v[i] / scale),
        }
    }
}
