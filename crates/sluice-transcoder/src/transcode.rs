//! Raw archive object in, Parquet files and a load manifest out: a pure
//! function, used by the queue consumer and by the benchmark.
//!
//! Track events go to `tracks` and to the table of their event name.
//! `tracks` copies its columns' encoded chunks from the event tables (see
//! [`crate::splice`]), so an object is held once, as typed columns,
//! whatever the number of tables, and each value is encoded once. The
//! flattened `context` columns of track events get one type per column
//! across all event tables (the type `tracks` needs), so both files agree.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{Field, Schema};
use serde_json::json;
use sluice_events::proto::LoadManifest;
use sluice_events::{EnvelopeView, decode_archive, encode_manifest, envelope_views, record_batch};

use crate::TranscodeError;
use crate::column::{PathColumn, Ty};
use crate::flatten::{Flattened, KeyMemory};
use crate::keys::RawKey;
use crate::names::{assign_column_names, table_name};
use crate::parquet_file::{EncodedFile, TableFile, write_file};
use crate::rejected::{self, RejectedRows, Rejection};
use crate::splice::SplicedWriter;
use crate::table::{FinishedRows, Kind, TableRows};

/// Columns are sized for the whole object after the first
/// 1/`RECORDS_BEFORE_SIZING_IN` of its records, with 1/`SIZING_MARGIN_IN`
/// more rows than extrapolated: a table a little larger than its first
/// records foretell would otherwise double its columns near the end.
const RECORDS_BEFORE_SIZING_IN: usize = 8;
const SIZING_MARGIN_IN: usize = 16;
/// SQS's message size limit, which the load manifest must fit.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Field metadata naming the JSON path a flattened column came from, so a
/// column whose name had to change (`ключ` → `_1a2b3c4d`) can be found.
pub const PATH_METADATA: &str = "sluice.path";

/// What one raw object became.
#[derive(Debug)]
pub struct TranscodeOutput {
    /// One file per table, in table order; the manifest lists the same.
    pub files: Vec<TableFile>,
    pub manifest: LoadManifest,
    /// Events read, rejected ones included.
    pub events: u64,
    /// Events (or undecodable records) sent to `rejected`, by cause.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// Transcodes the raw archive object stored at `raw_key`. Bad events and
/// bad records become `rejected` rows; only an object that cannot be read
/// at all is an error.
pub fn transcode(raw_key: &str, raw: &[u8]) -> Result<TranscodeOutput, TranscodeError> {
    let key = RawKey::parse(raw_key)?;
    let (header, records) = decode_archive(raw).map_err(|source| TranscodeError::Archive {
        key: raw_key.to_owned(),
        source,
    })?;
    let mut batch = Batch::new(raw_key);
    // Each record's events are read in place from its decompressed bytes,
    // into one buffer reused from record to record.
    let mut scratch = Vec::new();
    let mut memory = FlatMemory::default();
    // Columns grow by doubling, copying their values each time; once a
    // few records show how large each table's rows are, columns are sized
    // for the whole object instead.
    let total = records.len();
    let sized_after = total.div_ceil(RECORDS_BEFORE_SIZING_IN);
    // By value: each record's bytes are freed once its events are in columns.
    for (done, record) in (1..).zip(records) {
        match record_batch(&record.data, &mut scratch).and_then(envelope_views) {
            Ok(envelopes) => {
                let mut flat = FlatBuffers::remembering(std::mem::take(&mut memory));
                for envelope in &envelopes {
                    batch.add(envelope, &mut flat)?;
                }
                memory = flat.into_memory();
            }
            Err(e) => {
                batch.events += 1;
                let rejection = Rejection {
                    cause: e.cause(),
                    reason: format!("{e} (sequence number {})", record.sequence_number),
                };
                batch.rejected.record(&key.shard_id, &record, rejection);
            }
        }
        if done == sized_after && done < total {
            batch.reserve(done, total);
        }
    }
    let events = batch.events;
    let rejected = batch.rejected.by_cause.clone();
    let files = batch.finish(&key)?;
    let manifest = LoadManifest {
        manifest_id: raw_key.to_owned(),
        source_key: raw_key.to_owned(),
        tables: files.iter().map(|f| f.load.clone()).collect(),
        // The archive's time, not now: a retry sends the very same manifest.
        created_at_us: header.created_at_us,
    };
    let size = encode_manifest(&manifest).len();
    if size > MAX_MANIFEST_BYTES {
        return Err(TranscodeError::ManifestTooLarge {
            size,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    Ok(TranscodeOutput {
        files,
        manifest,
        events,
        rejected,
    })
}

/// One event's flattened `context` and payload, reused for every event of
/// a record. A reader reads fastest the keys of the object it read before
/// (see [`Flattened`]): `context` looks alike in every table, but each
/// table's payload has keys of its own, so each table has its own reader
/// (by the table's index in [`Batch::tables`]), and what they remember goes
/// on to the next record.
struct FlatBuffers<'a> {
    context: Flattened<'a>,
    payloads: Vec<Flattened<'a>>,
}

/// What [`FlatBuffers`] remember between records.
#[derive(Default)]
struct FlatMemory {
    context: KeyMemory,
    payloads: Vec<KeyMemory>,
}

impl<'a> FlatBuffers<'a> {
    fn remembering(memory: FlatMemory) -> Self {
        Self {
            context: Flattened::remembering(memory.context),
            payloads: (memory.payloads.into_iter())
                .map(Flattened::remembering)
                .collect(),
        }
    }

    fn into_memory(self) -> FlatMemory {
        FlatMemory {
            context: self.context.into_memory(),
            payloads: (self.payloads.into_iter())
                .map(Flattened::into_memory)
                .collect(),
        }
    }
}

/// The payload reader of the table at `table` in [`Batch::tables`].
fn payload_reader<'r, 'a>(
    readers: &'r mut Vec<Flattened<'a>>,
    table: usize,
) -> &'r mut Flattened<'a> {
    if readers.len() <= table {
        readers.resize_with(table + 1, Flattened::default);
    }
    &mut readers[table]
}

/// Looked up for every event: a fast hasher, seeded per process.
type ByName<T> = HashMap<String, T, foldhash::fast::RandomState>;

/// A table an event was routed to; its rows start with its first event
/// that is not rejected, so that no table is written empty.
struct Table {
    name: String,
    rows: Option<TableRows>,
}

struct Batch {
    /// In the order they were first routed to.
    tables: Vec<Table>,
    /// Table name → index in `tables`.
    table_index: ByName<usize>,
    /// Event name → index of its table, so that an event finds its table
    /// with a single look-up, and each name is made a table name once.
    event_tables: ByName<usize>,
    rejected: RejectedRows,
    events: u64,
}

fn reject(cause: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection {
        cause,
        reason: reason.into(),
    }
}

impl Batch {
    fn new(raw_key: &str) -> Self {
        Self {
            tables: Vec::new(),
            table_index: ByName::default(),
            event_tables: ByName::default(),
            rejected: RejectedRows::new(raw_key),
            events: 0,
        }
    }

    fn add<'a>(
        &mut self,
        envelope: &EnvelopeView<'a>,
        flat: &mut FlatBuffers<'a>,
    ) -> Result<(), TranscodeError> {
        self.events += 1;
        match self.route(envelope, flat) {
            Ok(result) => result,
            Err(rejection) => {
                self.rejected.event(envelope, rejection);
                Ok(())
            }
        }
    }

    /// Sizes every table for `total` records, from its rows in the `done`
    /// records read so far.
    fn reserve(&mut self, done: usize, total: usize) {
        for rows in self.tables.iter_mut().filter_map(|t| t.rows.as_mut()) {
            let expected = rows.rows() * total / done;
            rows.reserve(expected + expected / SIZING_MARGIN_IN);
        }
    }

    /// Adds the event to its table, or says why it cannot be a row. The
    /// inner result is an error that stops the whole object.
    fn route<'a>(
        &mut self,
        e: &EnvelopeView<'a>,
        flat: &mut FlatBuffers<'a>,
    ) -> Result<Result<(), TranscodeError>, Rejection> {
        let kind = Kind::of(e.event_type()).ok_or_else(|| {
            reject(
                "unknown_type",
                format!(
                    "type: {} is not track, identify, page, screen, group or alias",
                    e.r#type
                ),
            )
        })?;
        if e.event_id.is_empty() {
            return Err(reject("missing_field", "event_id is required"));
        }
        if kind == Kind::Track && e.event.trim().is_empty() {
            return Err(reject(
                "missing_field",
                "event is required for track events",
            ));
        }
        let index = self.table_of(kind, e.event);
        let FlatBuffers { context, payloads } = flat;
        context
            .read(e.context_json)
            .map_err(|f| reject(f.cause(), f.describe("context")))?;
        let payload = payload_reader(payloads, index);
        match kind.payload() {
            Some((field, _)) => payload
                .read(kind.payload_json(e))
                .map_err(|f| reject(f.cause(), f.describe(field)))?,
            None => payload.clear(),
        }
        let Table { name, rows } = &mut self.tables[index];
        let (extras, n): ([&str; 2], usize) = match kind {
            Kind::Track => ([name, e.event], 2),
            Kind::Page | Kind::Screen => ([e.name, ""], 1),
            Kind::Group => ([e.group_id, ""], 1),
            Kind::Alias => ([e.previous_id, ""], 1),
            Kind::Identify => (["", ""], 0),
        };
        let rows = rows.get_or_insert_with(|| TableRows::new(kind));
        Ok(rows.push(name, e, &extras[..n], context, payload))
    }

    /// The index in `tables` of the table of an event of `kind` named
    /// `event` (track events go to the table of their name).
    fn table_of(&mut self, kind: Kind, event: &str) -> usize {
        if kind != Kind::Track {
            return self.table_named(kind.table());
        }
        if let Some(&index) = self.event_tables.get(event) {
            return index;
        }
        let index = self.table_named(&table_name(event));
        self.event_tables.insert(event.to_owned(), index);
        index
    }

    fn table_named(&mut self, name: &str) -> usize {
        if let Some(&index) = self.table_index.get(name) {
            return index;
        }
        self.tables.push(Table {
            name: name.to_owned(),
            rows: None,
        });
        self.table_index
            .insert(name.to_owned(), self.tables.len() - 1);
        self.tables.len() - 1
    }

    fn finish(self, key: &RawKey) -> Result<Vec<TableFile>, TranscodeError> {
        let mut files = Vec::new();
        // In name order, so that a retry writes the same files and manifest.
        let mut tables: Vec<_> = (self.tables.into_iter())
            .filter_map(|t| Some((t.name, t.rows?)))
            .collect();
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        let (tracks, others): (Vec<_>, Vec<_>) = tables
            .into_iter()
            .partition(|(_, rows)| rows.kind() == Kind::Track);
        if !tracks.is_empty() {
            files.extend(write_tracks(key, tracks)?);
        }
        for (table, rows) in others {
            let kind = rows.kind();
            let finished = rows.finish(|_| None);
            let keys: Vec<Vec<String>> = finished.context.iter().map(|c| c.keys.clone()).collect();
            let mut taken = kind.standard_names().map(str::to_owned).collect();
            let names = assign_column_names(&mut taken, "context_", None, &keys);
            files.push(write_table(key, &table, kind, finished, names)?.file);
        }
        if self.rejected.rows() > 0 {
            let finished = self.rejected.finish();
            let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) =
                finished.columns.into_iter().unzip();
            let file = write_file(
                rejected::TABLE,
                Arc::new(Schema::new(fields)),
                arrays,
                (finished.min_time_us, finished.max_time_us),
                key.table_key(rejected::TABLE),
            )?;
            files.push(file.file);
        }
        Ok(files)
    }
}

/// Writes every event table and `tracks` from the same arrays.
fn write_tracks(
    key: &RawKey,
    groups: Vec<(String, TableRows)>,
) -> Result<Vec<TableFile>, TranscodeError> {
    // One type per context path across all event tables.
    let mut unified: BTreeMap<&str, Ty> = BTreeMap::new();
    for (_, rows) in &groups {
        for (path, ty) in rows.context_types() {
            if let Some(ty) = ty {
                unified
                    .entry(path)
                    .and_modify(|t| *t = t.join(ty))
                    .or_insert(ty);
            }
        }
    }
    let keys: Vec<Vec<String>> = unified
        .keys()
        .map(|p| crate::flatten::path_keys(p))
        .collect();
    let mut taken = Kind::Track.standard_names().map(str::to_owned).collect();
    let names = assign_column_names(&mut taken, "context_", None, &keys);
    // Context columns of `tracks`, in name order: (name, type, keys).
    let mut context: Vec<(String, Ty, Vec<String>)> = names
        .into_iter()
        .zip(unified.values().copied())
        .zip(keys)
        .map(|((name, ty), keys)| (name, ty, keys))
        .collect();
    context.sort_by(|a, b| a.0.cmp(&b.0));
    let unified: HashMap<String, Ty> = unified
        .into_iter()
        .map(|(path, ty)| (path.to_owned(), ty))
        .collect();
    let name_of: HashMap<&[String], &str> = context
        .iter()
        .map(|(name, _, keys)| (keys.as_slice(), name.as_str()))
        .collect();

    let mut fields = Kind::Track.standard_fields();
    fields.extend(
        context
            .iter()
            .map(|(name, ty, keys)| flat_field(name, *ty, "context", keys)),
    );
    let mut tracks = SplicedWriter::new("tracks", Arc::new(Schema::new(fields)))?;

    let mut files = Vec::with_capacity(groups.len() + 1);
    for (table, rows) in groups {
        let finished = rows.finish(|path| unified.get(path).copied());
        let names = finished
            .context
            .iter()
            .map(|c| name_of[c.keys.as_slice()].to_owned())
            .collect();
        let encoded = write_table(key, &table, Kind::Track, finished, names)?;
        tracks.append(&encoded)?;
        files.push(encoded.file);
    }
    files.insert(0, tracks.finish(key.table_key("tracks"))?);
    Ok(files)
}

/// A flattened column's field, with the JSON path it came from.
fn flat_field(name: &str, ty: Ty, source: &str, keys: &[String]) -> Field {
    let path = json!(
        std::iter::once(source)
            .chain(keys.iter().map(String::as_str))
            .collect::<Vec<_>>()
    )
    .to_string();
    Field::new(name, ty.data_type(), true)
        .with_metadata(HashMap::from([(PATH_METADATA.to_owned(), path)]))
}

/// Writes one table: standard columns, then context columns (named
/// `context_names`, in the order of `finished.context`), then payload
/// columns, each group in name order.
fn write_table(
    key: &RawKey,
    table: &str,
    kind: Kind,
    finished: FinishedRows,
    context_names: Vec<String>,
) -> Result<EncodedFile, TranscodeError> {
    let mut taken: HashSet<String> = kind
        .standard_names()
        .map(str::to_owned)
        .chain(context_names.iter().cloned())
        .collect();
    let payload_keys: Vec<Vec<String>> = finished.payload.iter().map(|c| c.keys.clone()).collect();
    let (source, clash_prefix) = kind.payload().unwrap_or(("", ""));
    let payload_names = assign_column_names(&mut taken, "", Some(clash_prefix), &payload_keys);

    let mut fields = kind.standard_fields();
    let mut arrays = finished.standard;
    for (group, source) in [
        (named(context_names, finished.context), "context"),
        (named(payload_names, finished.payload), source),
    ] {
        for (name, column) in group {
            fields.push(flat_field(&name, column.ty, source, &column.keys));
            arrays.push(column.array);
        }
    }
    write_file(
        table,
        Arc::new(Schema::new(fields)),
        arrays,
        (finished.min_time_us, finished.max_time_us),
        key.table_key(table),
    )
}

fn named(names: Vec<String>, columns: Vec<PathColumn>) -> Vec<(String, PathColumn)> {
    let mut named: Vec<_> = names.into_iter().zip(columns).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}
