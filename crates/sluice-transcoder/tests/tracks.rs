//! `tracks` is assembled from the event tables' encoded column chunks: its
//! rows must read back exactly as the event tables' rows, with nulls where
//! an event table lacks a context column, and its page index must locate
//! the copied pages.

mod support;

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;
use sluice_transcoder::{TableFile, transcode};
use support::{Table, archive, s, track};

fn with_context(id: &str, event: &str, context: &str) -> sluice_events::proto::Envelope {
    let mut envelope = track(id, event, r#"{"n":1}"#);
    envelope.context_json = context.into();
    envelope
}

fn file<'a>(files: &'a [TableFile], table: &str) -> &'a TableFile {
    files
        .iter()
        .find(|f| f.load.table == table)
        .unwrap_or_else(|| panic!("no table {table}"))
}

/// Reads `body` skipping its first row, which makes the reader find pages
/// through the offset index instead of reading each chunk from its start.
fn read_skipping_first_row(body: Bytes, rows: usize) -> Vec<RecordBatch> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(body, options).unwrap();
    let selection = RowSelection::from(vec![RowSelector::skip(1), RowSelector::select(rows - 1)]);
    builder
        .with_row_selection(selection)
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn tracks_holds_every_event_tables_rows_with_nulls_for_missing_context_columns() {
    let events = vec![
        with_context(
            "a1",
            "Signed Up",
            r#"{"ip":"10.0.0.1","campaign":{"source":"ads"}}"#,
        ),
        with_context("b1", "Video Played", r#"{"ip":7,"screen":{"width":1080}}"#),
        with_context("a2", "Signed Up", r#"{"ip":"10.0.0.2"}"#),
        with_context("c1", "Order Completed", r#"{"locale":"en-US"}"#),
        with_context("b2", "Video Played", r#"{"screen":{"width":720}}"#),
    ];
    let (key, body) = archive(100, &[events]);
    let output = transcode(&key, &body).unwrap();
    let tracks_file = file(&output.files, "tracks");
    assert_eq!(tracks_file.load.row_count, 5);
    let tracks = Table::read(tracks_file.body.clone());

    // One row group per event table, in table order.
    let metadata = ParquetRecordBatchReaderBuilder::try_new(tracks_file.body.clone())
        .unwrap()
        .metadata()
        .clone();
    let group_rows: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(group_rows, [1, 2, 2]);

    assert_eq!(
        tracks.strings("id"),
        [s("c1"), s("a1"), s("a2"), s("b1"), s("b2")]
    );
    // `ip` was text in one event table and a number in another: one type
    // across them, the wider one, in both `tracks` and the event tables.
    assert_eq!(
        tracks.strings("context_ip"),
        [None, s("10.0.0.1"), s("10.0.0.2"), s("7"), None]
    );
    assert_eq!(
        file_table(&output.files, "video_played").strings("context_ip"),
        [s("7"), None]
    );
    assert_eq!(
        tracks.strings("context_campaign_source"),
        [None, s("ads"), None, None, None]
    );
    assert_eq!(
        tracks.ints("context_screen_width"),
        [None, None, None, Some(1080), Some(720)]
    );
    assert_eq!(
        tracks.strings("context_locale"),
        [s("en-US"), None, None, None, None]
    );
    assert_eq!(
        tracks.strings("event"),
        [
            s("order_completed"),
            s("signed_up"),
            s("signed_up"),
            s("video_played"),
            s("video_played")
        ]
    );
    assert!(
        !tracks.column_names().contains(&"n".to_owned()),
        "properties stay in the event tables"
    );

    // Every column of every event table reads back the same in `tracks`.
    for (table, offset) in [
        ("order_completed", 0),
        ("signed_up", 1),
        ("video_played", 3),
    ] {
        let events = file_table(&output.files, table);
        for name in tracks.column_names() {
            if let Some(column) = events.batch.column_by_name(&name) {
                let rows = column.len();
                assert_eq!(
                    tracks
                        .batch
                        .column_by_name(&name)
                        .unwrap()
                        .slice(offset, rows)
                        .as_ref(),
                    column.as_ref(),
                    "{table}.{name}"
                );
            }
        }
    }

    let mut offset = 1;
    for batch in read_skipping_first_row(tracks_file.body.clone(), 5) {
        assert_eq!(batch, tracks.batch.slice(offset, batch.num_rows()));
        offset += batch.num_rows();
    }
    assert_eq!(offset, 5);
}

fn file_table(files: &[TableFile], table: &str) -> Table {
    Table::read(file(files, table).body.clone())
}

#[test]
fn a_property_named_like_a_context_column_stays_out_of_tracks() {
    let mut own = track(
        "a1",
        "Signed Up",
        r#"{"context_campaign_source":"property"}"#,
    );
    own.context_json = r#"{"ip":"10.0.0.1"}"#.into();
    let events = vec![
        own,
        with_context("b1", "Video Played", r#"{"campaign":{"source":"ads"}}"#),
    ];
    let (key, body) = archive(100, &[events]);
    let output = transcode(&key, &body).unwrap();
    let signed_up = file_table(&output.files, "signed_up");
    assert_eq!(
        signed_up.by_path()[&vec![
            "properties".to_owned(),
            "context_campaign_source".to_owned()
        ]],
        "context_campaign_source"
    );
    let tracks = file_table(&output.files, "tracks");
    assert_eq!(tracks.strings("id"), [s("a1"), s("b1")]);
    assert_eq!(
        tracks.strings("context_campaign_source"),
        [None, s("ads")],
        "the property of signed_up is not the context of tracks"
    );
}
