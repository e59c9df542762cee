//! A Parquet file assembled from column chunks that other files already
//! encoded and compressed. Every column of `tracks` is also a column of the
//! event table its rows come from (the standard columns, and the context
//! columns, which get one name and type across event tables), so `tracks`
//! copies those chunks' bytes instead of encoding every value twice. Each
//! event table's row group becomes one row group of `tracks`.

use std::collections::HashMap;

use arrow_array::new_null_array;
use arrow_schema::{Field, SchemaRef};
use parquet::arrow::arrow_writer::{ArrowRowGroupWriterFactory, compute_leaves};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result as ParquetResult;
use parquet::file::writer::SerializedFileWriter;

use crate::TranscodeError;
use crate::parquet_file::{EncodedFile, FileSummary, TableFile, arrow_writer};

pub struct SplicedWriter {
    summary: FileSummary,
    writer: SerializedFileWriter<Vec<u8>>,
    /// Encodes the columns a source file lacks, as nulls.
    null_columns: ArrowRowGroupWriterFactory,
}

impl SplicedWriter {
    pub fn new(table: &str, schema: SchemaRef) -> Result<Self, TranscodeError> {
        let summary = FileSummary::new(table, schema);
        // Through the Arrow writer, for the same Parquet schema, writer
        // properties and embedded Arrow schema as every other table.
        let (writer, null_columns) = arrow_writer(&summary, &[])?
            .into_serialized_writer()
            .map_err(|source| summary.parquet_error(source))?;
        Ok(Self {
            summary,
            writer,
            null_columns,
        })
    }

    /// Appends every row group of `source`. Each column is copied from the
    /// `source` column of the same name and JSON path (a property column may
    /// be named like a context column of another table), which must have
    /// the same type (the writer checks), or is all nulls when `source` has
    /// no such column.
    pub fn append(&mut self, source: &EncodedFile) -> Result<(), TranscodeError> {
        self.append_row_groups(source)
            .map_err(|e| self.summary.parquet_error(e))?;
        let load = &source.file.load;
        self.summary.add(
            load.row_count,
            load.min_event_time_us,
            load.max_event_time_us,
        );
        Ok(())
    }

    fn append_row_groups(&mut self, source: &EncodedFile) -> ParquetResult<()> {
        let metadata = &source.metadata;
        // The schemas are flat: one leaf column per field, in field order.
        let by_name: HashMap<&str, (usize, &Field)> = source
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| (field.name().as_str(), (i, field.as_ref())))
            .collect();
        let fields = self.summary.schema.fields();
        let from: Vec<Option<usize>> = fields
            .iter()
            .map(|field| match by_name.get(field.name().as_str()) {
                Some(&(i, same)) if same.metadata() == field.metadata() => Some(i),
                _ => None,
            })
            .collect();
        for (group, row_group) in metadata.row_groups().iter().enumerate() {
            let rows = row_group.num_rows() as usize;
            let page_index = metadata.page_index_for_row_group(group);
            let index = self.writer.flushed_row_groups().len();
            let mut null_writers = if from.contains(&None) {
                self.null_columns.create_column_writers(index)?
            } else {
                Vec::new()
            }
            .into_iter();
            let mut out = self.writer.next_row_group()?;
            for (field, from) in fields.iter().zip(&from) {
                let null_writer = null_writers.next();
                match *from {
                    Some(column) => {
                        let chunk = row_group.column(column);
                        let close = ColumnCloseResult {
                            bytes_written: chunk.compressed_size() as u64,
                            rows_written: rows as u64,
                            metadata: chunk.clone(),
                            bloom_filter: None,
                            column_index: page_index.column_index(column).cloned(),
                            offset_index: page_index.offset_index(column).cloned(),
                        };
                        out.append_column(&source.file.body, close)?;
                    }
                    None => {
                        let mut writer = null_writer.expect("created when a column is missing");
                        let nulls = new_null_array(field.data_type(), rows);
                        for leaf in compute_leaves(field, &nulls)? {
                            writer.write(&leaf)?;
                        }
                        writer.close()?.append_to_row_group(&mut out)?;
                    }
                }
            }
            out.close()?;
        }
        Ok(())
    }

    /// Closes the file, to be stored at `object_key`.
    pub fn finish(mut self, object_key: String) -> Result<TableFile, TranscodeError> {
        self.writer
            .finish()
            .map_err(|source| self.summary.parquet_error(source))?;
        let body = std::mem::take(self.writer.inner_mut());
        Ok(self.summary.into_file(body, object_key))
    }
}
