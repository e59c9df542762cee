//! PostgreSQL's binary COPY format, written straight from Arrow columns.
//! tokio-postgres's `BinaryCopyInWriter` takes each value as a `&dyn ToSql`
//! and type-checks it; encoding the few types the loader copies by hand
//! keeps the client well ahead of the server on a million-row file.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::Transaction;

use crate::error::{LoaderError, Result};
use crate::parquet_source::{ParquetTable, Value};
use crate::sql;

/// Bytes sent to the server at a time.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks decoded ahead of the server.
const CHUNKS_AHEAD: usize = 4;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Copies the file's rows into `table`: the `sources` columns of the file
/// into the `targets` columns of the table, skipping rows whose id repeats
/// an earlier row of the file or is in `skip_ids`. Decodes on a blocking
/// thread while the server ingests; returns the rows copied.
pub async fn copy_rows(
    tx: &Transaction<'_>,
    file: Arc<ParquetTable>,
    table: &str,
    sources: Vec<String>,
    targets: &[&str],
    skip_ids: HashSet<String>,
) -> Result<u64> {
    let statement = sql::copy_binary(table, targets.iter().copied());
    let sink = tx
        .copy_in::<_, Bytes>(&statement)
        .await
        .map_err(LoaderError::postgres(format!("copy into {table}")))?;
    futures::pin_mut!(sink);
    let (sender, mut receiver) = mpsc::channel::<Bytes>(CHUNKS_AHEAD);
    let producer = tokio::task::spawn_blocking(move || encode(&file, &sources, &skip_ids, &sender));
    let mut sent = Ok(());
    while let Some(chunk) = receiver.recv().await {
        if let Err(e) = sink.send(chunk).await {
            sent = Err(e);
            break;
        }
    }
    // Dropping the receiver stops a producer that is still encoding.
    drop(receiver);
    let produced = producer.await.map_err(|e| LoaderError::Task(e.to_string()));
    sent.map_err(LoaderError::postgres("sending copy data"))?;
    produced??;
    sink.as_mut()
        .finish()
        .await
        .map_err(LoaderError::postgres("finishing copy"))
}

/// The id and received_at (microseconds) of every row of the file whose id
/// is new in the file: what [`sql::loaded_ids`] looks up.
pub async fn row_keys(file: Arc<ParquetTable>) -> Result<(Vec<String>, Vec<i64>)> {
    tokio::task::spawn_blocking(move || {
        let capacity = file.rows as usize;
        let (mut ids, mut times) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
        let columns = ["id".to_string(), "received_at".to_string()];
        file.for_each_row(&columns, |values| {
            if let [Value::Text(id), Value::Timestamp(us)] = values {
                ids.push(id.to_string());
                times.push(*us);
            }
            Ok(())
        })?;
        Ok((ids, times))
    })
    .await
    .map_err(|e| LoaderError::Task(e.to_string()))?
}

fn encode(
    file: &ParquetTable,
    columns: &[String],
    skip_ids: &HashSet<String>,
    sender: &mpsc::Sender<Bytes>,
) -> Result<()> {
    let mut buf = BytesMut::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 2);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    let stopped = || LoaderError::Task("copy ended before the file was sent".into());
    let id = columns.iter().position(|c| c == "id");
    file.for_each_row(columns, |values| {
        if let Some(Value::Text(id)) = id.map(|i| values[i])
            && skip_ids.contains(id)
        {
            return Ok(());
        }
        encode_row(&mut buf, values);
        if buf.len() >= CHUNK_BYTES {
            sender
                .blocking_send(buf.split().freeze())
                .map_err(|_| stopped())?;
        }
        Ok(())
    })?;
    buf.put_i16(-1);
    sender.blocking_send(buf.freeze()).map_err(|_| stopped())
}

fn encode_row(buf: &mut BytesMut, values: &[Value<'_>]) {
    buf.put_i16(values.len() as i16);
    for value in values {
        match *value {
            Value::Null => buf.put_i32(-1),
            Value::Bool(b) => {
                buf.put_i32(1);
                buf.put_u8(u8::from(b));
            }
            Value::Int(i) => {
                buf.put_i32(8);
                buf.put_i64(i);
            }
            Value::Float(f) => {
                buf.put_i32(8);
                buf.put_f64(f);
            }
            Value::Text(s) => {
                buf.put_i32(s.len() as i32);
                buf.put_slice(s.as_bytes());
            }
            Value::Timestamp(us) => {
                buf.put_i32(8);
                buf.put_i64(us - PG_EPOCH_US);
            }
        }
    }
}
