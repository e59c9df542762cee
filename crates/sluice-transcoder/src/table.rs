//! The rows of one table in one batch: the standard columns every table has,
//! the columns of its event type, and the flattened `context` and
//! `properties` / `traits` columns.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_schema::{DataType, Field};
use sluice_events::EnvelopeView;
use sluice_events::proto::EventType;

use crate::TranscodeError;
use crate::column::{ColumnSet, PathColumn, Ty, UTC, reserve_text, timestamp_type};
use crate::flatten::Flattened;

/// The string columns of one table in one object must fit Arrow's 32-bit
/// offsets; a table's text is bounded by the text of its events.
const MAX_TABLE_TEXT_BYTES: usize = i32::MAX as usize;

/// Which Segment table shape an event type lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    pub fn of(event_type: EventType) -> Option<Kind> {
        Some(match event_type {
            EventType::Track => Kind::Track,
            EventType::Identify => Kind::Identify,
            EventType::Page => Kind::Page,
            EventType::Screen => Kind::Screen,
            EventType::Group => Kind::Group,
            EventType::Alias => Kind::Alias,
            EventType::Unspecified => return None,
        })
    }

    /// The table of every event of this kind; track events also go to a
    /// table of their own event name.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Track => "tracks",
            Kind::Identify => "identifies",
            Kind::Page => "pages",
            Kind::Screen => "screens",
            Kind::Group => "groups",
            Kind::Alias => "aliases",
        }
    }

    /// The string columns this kind adds to the common ones.
    fn extra_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Track => &["event", "event_text"],
            Kind::Page | Kind::Screen => &["name"],
            Kind::Group => &["group_id"],
            Kind::Alias => &["previous_id"],
            Kind::Identify => &[],
        }
    }

    /// The JSON field flattened into this kind's own columns, and the
    /// prefix its columns get when they clash with a standard one.
    pub fn payload(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Track | Kind::Page | Kind::Screen => Some(("properties", "property_")),
            Kind::Identify | Kind::Group => Some(("traits", "trait_")),
            Kind::Alias => None,
        }
    }

    /// The payload's original JSON text in `envelope`.
    pub fn payload_json<'a>(self, envelope: &EnvelopeView<'a>) -> &'a str {
        match self.payload() {
            Some(("traits", _)) => envelope.traits_json,
            Some(_) => envelope.properties_json,
            None => "",
        }
    }

    /// Names of the standard columns, in table order.
    pub fn standard_names(self) -> impl Iterator<Item = &'static str> {
        COMMON
            .iter()
            .map(|(name, _, _)| *name)
            .chain(self.extra_columns().iter().copied())
            .chain(self.payload().map(|(field, _)| field))
    }

    /// The standard columns' fields, in table order (the order
    /// [`TableRows::finish`] gives their values in).
    pub fn standard_fields(self) -> Vec<Field> {
        COMMON
            .iter()
            .map(|&(name, ty, nullable)| {
                let data_type = match ty {
                    Ty::Timestamp => timestamp_type(),
                    _ => DataType::Utf8,
                };
                Field::new(name, data_type, nullable)
            })
            .chain(
                self.standard_names()
                    .skip(COMMON.len())
                    .map(|name| Field::new(name, DataType::Utf8, true)),
            )
            .collect()
    }
}

/// Columns every table has, in order: name, type, nullable.
const COMMON: &[(&str, Ty, bool)] = &[
    ("id", Ty::Str, false),
    ("received_at", Ty::Timestamp, false),
    ("timestamp", Ty::Timestamp, false),
    ("sent_at", Ty::Timestamp, true),
    ("user_id", Ty::Str, true),
    ("anonymous_id", Ty::Str, true),
    ("context", Ty::Str, true),
];

/// A finished table: the standard columns' values (in the order of
/// [`Kind::standard_fields`]), then the flattened columns, which are named
/// later, when all of a table's names are known.
pub struct FinishedRows {
    pub standard: Vec<ArrayRef>,
    pub context: Vec<PathColumn>,
    pub payload: Vec<PathColumn>,
    pub min_time_us: i64,
    pub max_time_us: i64,
}

pub struct TableRows {
    kind: Kind,
    rows: usize,
    text_bytes: usize,
    id: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
    timestamp: TimestampMicrosecondBuilder,
    sent_at: TimestampMicrosecondBuilder,
    user_id: StringBuilder,
    anonymous_id: StringBuilder,
    context: StringBuilder,
    extras: Vec<StringBuilder>,
    payload: StringBuilder,
    context_columns: ColumnSet,
    payload_columns: ColumnSet,
    min_time_us: i64,
    max_time_us: i64,
}

fn optional(builder: &mut StringBuilder, value: &str) {
    if value.is_empty() {
        builder.append_null();
    } else {
        builder.append_value(value);
    }
}

impl TableRows {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            rows: 0,
            text_bytes: 0,
            id: StringBuilder::new(),
            received_at: TimestampMicrosecondBuilder::new(),
            timestamp: TimestampMicrosecondBuilder::new(),
            sent_at: TimestampMicrosecondBuilder::new(),
            user_id: StringBuilder::new(),
            anonymous_id: StringBuilder::new(),
            context: StringBuilder::new(),
            extras: kind
                .extra_columns()
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            payload: StringBuilder::new(),
            context_columns: ColumnSet::default(),
            payload_columns: ColumnSet::default(),
            min_time_us: i64::MAX,
            max_time_us: i64::MIN,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Types of the flattened context columns so far, by path.
    pub fn context_types(&self) -> impl Iterator<Item = (&str, Option<Ty>)> {
        self.context_columns.types()
    }

    /// Adds one event. `extras` are the values of the kind's extra columns
    /// (for a track event: its table name and its original name); `context`
    /// and `payload` are its flattened JSON fields.
    pub fn push(
        &mut self,
        table: &str,
        envelope: &EnvelopeView<'_>,
        extras: &[&str],
        context: &Flattened<'_>,
        payload: &Flattened<'_>,
    ) -> Result<(), TranscodeError> {
        let payload_json = self.kind.payload_json(envelope);
        self.text_bytes += envelope.event_id.len()
            + envelope.user_id.len()
            + envelope.anonymous_id.len()
            + envelope.context_json.len()
            + payload_json.len()
            + extras.iter().map(|e| e.len()).sum::<usize>();
        if self.text_bytes > MAX_TABLE_TEXT_BYTES {
            return Err(TranscodeError::TableTooLarge {
                table: table.to_owned(),
                limit: MAX_TABLE_TEXT_BYTES,
            });
        }
        let row = self.rows;
        self.id.append_value(envelope.event_id);
        self.received_at.append_value(envelope.received_at_us);
        self.timestamp.append_value(envelope.timestamp_us);
        if envelope.sent_at_us == 0 {
            self.sent_at.append_null();
        } else {
            self.sent_at.append_value(envelope.sent_at_us);
        }
        optional(&mut self.user_id, envelope.user_id);
        optional(&mut self.anonymous_id, envelope.anonymous_id);
        optional(&mut self.context, envelope.context_json);
        for (builder, value) in self.extras.iter_mut().zip(extras) {
            optional(builder, value);
        }
        if self.kind.payload().is_some() {
            optional(&mut self.payload, payload_json);
        }
        self.context_columns.push(row, context);
        self.payload_columns.push(row, payload);
        self.min_time_us = self.min_time_us.min(envelope.timestamp_us);
        self.max_time_us = self.max_time_us.max(envelope.timestamp_us);
        self.rows += 1;
        Ok(())
    }

    /// Makes room in the text columns for `rows` rows in all, each as long
    /// as the rows so far on average.
    pub fn reserve(&mut self, rows: usize) {
        let seen = self.rows;
        for text in [
            &mut self.id,
            &mut self.user_id,
            &mut self.anonymous_id,
            &mut self.context,
            &mut self.payload,
        ]
        .into_iter()
        .chain(&mut self.extras)
        {
            reserve_text(text, seen, rows);
        }
        self.context_columns.reserve(seen, rows);
        self.payload_columns.reserve(seen, rows);
    }

    /// Finishes the table; context columns are first widened to the type
    /// `unify_context` gives for their path.
    pub fn finish(mut self, unify_context: impl Fn(&str) -> Option<Ty>) -> FinishedRows {
        let text = |b: &mut StringBuilder| Arc::new(b.finish()) as ArrayRef;
        let time = |b: &mut TimestampMicrosecondBuilder| {
            Arc::new(b.finish().with_timezone(UTC)) as ArrayRef
        };
        let mut standard = vec![
            text(&mut self.id),
            time(&mut self.received_at),
            time(&mut self.timestamp),
            time(&mut self.sent_at),
            text(&mut self.user_id),
            text(&mut self.anonymous_id),
            text(&mut self.context),
        ];
        standard.extend(self.extras.iter_mut().map(text));
        if self.kind.payload().is_some() {
            standard.push(text(&mut self.payload));
        }
        FinishedRows {
            standard,
            context: self.context_columns.finish(self.rows, unify_context),
            payload: self.payload_columns.finish(self.rows, |_| None),
            min_time_us: self.min_time_us,
            max_time_us: self.max_time_us,
        }
    }
}
