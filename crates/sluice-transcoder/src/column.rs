//! Columns whose type is inferred from the values of one batch, on the
//! lattice boolean < int64 < float64 < string, with ISO-8601 strings as
//! timestamps (a timestamp meeting anything else becomes a string).
//!
//! A column widens in place when a value needs it: booleans become 0/1,
//! ints become floats, and everything becomes text when a string (or an
//! array, kept as JSON text) arrives, so a column that saw both `7` and
//! `"seven"` holds `"7"` and `"seven"`: every value is still there.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};

use crate::flatten::{Flattened, Leaf, path_keys};

/// The time zone written on every timestamp column: values are UTC.
pub const UTC: &str = "UTC";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Float,
    Str,
    Timestamp,
}

impl Ty {
    /// The least type that holds values of both.
    pub fn join(self, other: Ty) -> Ty {
        use Ty::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Bool, Int) | (Int, Bool) => Int,
            (Bool | Int | Float, Bool | Int | Float) => Float,
            _ => Str,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Ty::Bool => DataType::Boolean,
            Ty::Int => DataType::Int64,
            Ty::Float => DataType::Float64,
            Ty::Str => DataType::Utf8,
            Ty::Timestamp => timestamp_type(),
        }
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

enum Data {
    /// Only nulls so far: no type yet.
    Nulls,
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    /// Microseconds, and the original text in case the column widens.
    Timestamp(TimestampMicrosecondBuilder, StringBuilder),
}

/// One column of one table in one batch.
pub struct DynColumn {
    /// Rows appended so far (values and nulls); later rows are padded with
    /// nulls when the next value or the end arrives.
    len: usize,
    data: Data,
}

/// A value's own type, and its timestamp when it is one.
fn leaf_type(leaf: &Leaf<'_>, current: Option<Ty>) -> Option<(Ty, Option<i64>)> {
    Some(match leaf {
        Leaf::Null => return None,
        Leaf::Bool(_) => (Ty::Bool, None),
        Leaf::Int(_) => (Ty::Int, None),
        Leaf::Float(_) => (Ty::Float, None),
        Leaf::Array(_) => (Ty::Str, None),
        // Once a column is text, no timestamp can change that: skip parsing.
        Leaf::Str(_) if current == Some(Ty::Str) => (Ty::Str, None),
        Leaf::Str(s) => match parse_timestamp(s) {
            Some(us) => (Ty::Timestamp, Some(us)),
            None => (Ty::Str, None),
        },
    })
}

/// RFC 3339 date-times (`2024-05-01T12:00:00.123Z`, with an offset or not
/// in UTC); dates alone and other strings stay text.
fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shaped = (20..=40).contains(&b.len())
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[0].is_ascii_digit();
    if !shaped {
        return None;
    }
    sluice_events::time::parse_iso8601_us("timestamp", s).ok()
}

/// A builder of a column type, to pad with nulls without matching on the
/// column's type again once a value's type is known to fit.
trait Nullable {
    fn append_nulls(&mut self, n: usize);
}

macro_rules! nullable {
    ($($builder:ty),*) => {$(
        impl Nullable for $builder {
            fn append_nulls(&mut self, n: usize) {
                <$builder>::append_nulls(self, n);
            }
        }
    )*};
}

nullable!(BooleanBuilder, Int64Builder, Float64Builder, StringBuilder);

/// `builder`, which holds `rows` rows, with nulls up to row `row`.
#[inline]
fn padded<B: Nullable>(builder: &mut B, rows: usize, row: usize) -> &mut B {
    if row > rows {
        builder.append_nulls(row - rows);
    }
    builder
}

/// Regrows `builder`, which holds the text of `seen` rows of its table, to
/// hold `rows` rows of text of the same length per row. Arrow's builders
/// have no `reserve`, so the text so far moves once into a builder made
/// with that capacity, instead of being copied at every doubling.
pub fn reserve_text(builder: &mut StringBuilder, seen: usize, rows: usize) {
    if seen == 0 || rows <= seen {
        return;
    }
    // No more than Arrow's 32-bit offsets address, which a table's text
    // cannot pass anyway: a wild estimate must not allocate beyond it.
    let bytes = (builder.values_slice().len() * rows / seen).min(i32::MAX as usize);
    let mut grown = StringBuilder::with_capacity(rows, bytes);
    grown
        .append_array(&builder.finish())
        .expect("an empty builder takes any array");
    *builder = grown;
}

fn text_of(leaf: &Leaf<'_>, out: &mut StringBuilder) {
    use std::fmt::Write;
    match leaf {
        Leaf::Null => out.append_null(),
        Leaf::Bool(b) => out.append_value(if *b { "true" } else { "false" }),
        Leaf::Int(i) => {
            write!(out, "{i}").expect("writing to a builder");
            out.append_value("");
        }
        Leaf::Float(f) => {
            write!(out, "{f:?}").expect("writing to a builder");
            out.append_value("");
        }
        Leaf::Str(s) => out.append_value(s),
        Leaf::Array(raw) => out.append_value(raw),
    }
}

impl Default for DynColumn {
    fn default() -> Self {
        Self {
            len: 0,
            data: Data::Nulls,
        }
    }
}

impl DynColumn {
    pub fn ty(&self) -> Option<Ty> {
        match &self.data {
            Data::Nulls => None,
            Data::Bool(_) => Some(Ty::Bool),
            Data::Int(_) => Some(Ty::Int),
            Data::Float(_) => Some(Ty::Float),
            Data::Str(_) => Some(Ty::Str),
            Data::Timestamp(..) => Some(Ty::Timestamp),
        }
    }

    /// Sets row `row` (rows before it that got nothing are null). A second
    /// value for the same row, from a key repeated in one object, is
    /// ignored: the first one wins.
    pub fn push(&mut self, row: usize, leaf: &Leaf<'_>) {
        if self.len > row {
            return;
        }
        if !self.push_same_type(row, leaf) {
            self.push_widening(row, leaf);
        }
    }

    /// Appends a value the column holds as it is, as nearly every value
    /// is once a column has its type; says whether it did. A null is
    /// nothing to append.
    #[inline]
    fn push_same_type(&mut self, row: usize, leaf: &Leaf<'_>) -> bool {
        let rows = self.len;
        match (&mut self.data, leaf) {
            (_, Leaf::Null) => return true,
            (Data::Str(b), Leaf::Str(s)) => padded(b, rows, row).append_value(s),
            (Data::Str(b), Leaf::Array(raw)) => padded(b, rows, row).append_value(raw),
            (Data::Int(b), Leaf::Int(i)) => padded(b, rows, row).append_value(*i),
            (Data::Float(b), Leaf::Float(f)) => padded(b, rows, row).append_value(*f),
            (Data::Bool(b), Leaf::Bool(v)) => padded(b, rows, row).append_value(*v),
            _ => return false,
        }
        self.len = row + 1;
        true
    }

    /// Appends any value, widening the column first if it needs to.
    fn push_widening(&mut self, row: usize, leaf: &Leaf<'_>) {
        let Some((ty, timestamp)) = leaf_type(leaf, self.ty()) else {
            return;
        };
        let target = self.ty().map_or(ty, |current| current.join(ty));
        self.widen_to(target);
        self.pad(row);
        match &mut self.data {
            Data::Nulls => unreachable!("widen_to gave the column a type"),
            Data::Bool(b) => b.append_value(matches!(leaf, Leaf::Bool(true))),
            Data::Int(b) => b.append_value(match leaf {
                Leaf::Int(i) => *i,
                Leaf::Bool(v) => i64::from(*v),
                _ => unreachable!("only booleans and ints join to int"),
            }),
            Data::Float(b) => b.append_value(match leaf {
                Leaf::Float(f) => *f,
                Leaf::Int(i) => *i as f64,
                Leaf::Bool(v) => f64::from(u8::from(*v)),
                _ => unreachable!("only numbers and booleans join to float"),
            }),
            Data::Str(b) => text_of(leaf, b),
            Data::Timestamp(us, text) => {
                us.append_value(timestamp.expect("only timestamps keep the type"));
                text_of(leaf, text);
            }
        }
        self.len = row + 1;
    }

    /// Called for every value: inlined down to a comparison when there is
    /// nothing to pad.
    #[inline]
    fn pad(&mut self, rows: usize) {
        if rows > self.len {
            self.append_nulls(rows - self.len);
        }
    }

    fn append_nulls(&mut self, nulls: usize) {
        match &mut self.data {
            Data::Nulls => {}
            Data::Bool(b) => b.append_nulls(nulls),
            Data::Int(b) => b.append_nulls(nulls),
            Data::Float(b) => b.append_nulls(nulls),
            Data::Str(b) => b.append_nulls(nulls),
            Data::Timestamp(us, text) => {
                us.append_nulls(nulls);
                text.append_nulls(nulls);
            }
        }
        self.len += nulls;
    }

    /// Converts the values so far to `target`, which must not be narrower
    /// than the current type; inlined down to a comparison when it is the
    /// current type, as it nearly always is.
    #[inline]
    pub fn widen_to(&mut self, target: Ty) {
        if self.ty() != Some(target) {
            self.convert_to(target);
        }
    }

    fn convert_to(&mut self, target: Ty) {
        let len = self.len;
        let old = std::mem::replace(&mut self.data, Data::Nulls);
        self.data = match (old, target) {
            (Data::Nulls, ty) => {
                let mut typed = DynColumn {
                    len: 0,
                    data: empty(ty),
                };
                typed.pad(len);
                typed.data
            }
            (Data::Timestamp(_, text), Ty::Str) => Data::Str(text),
            (old, ty) => {
                let mut widened = DynColumn {
                    len: 0,
                    data: empty(ty),
                };
                let array = finish_data(old);
                for row in 0..len {
                    if let Some(leaf) = leaf_at(array.as_ref(), row) {
                        widened.push(row, &leaf);
                    }
                }
                widened.pad(len);
                widened.data
            }
        };
        self.len = len;
    }

    /// Makes room for `rows` rows of text, extrapolated from the `seen`
    /// rows of the table so far (see [`reserve_text`]); other types are
    /// small enough to grow as they go.
    pub fn reserve(&mut self, seen: usize, rows: usize) {
        match &mut self.data {
            Data::Str(text) | Data::Timestamp(_, text) => reserve_text(text, seen, rows),
            _ => {}
        }
    }

    /// The column's values for `rows` rows, or `None` when every value was
    /// null (such a column says nothing about its type; the JSON keeps it).
    pub fn finish(mut self, rows: usize) -> Option<(Ty, ArrayRef)> {
        self.pad(rows);
        let ty = self.ty()?;
        Some((ty, finish_data(self.data)))
    }
}

fn empty(ty: Ty) -> Data {
    match ty {
        Ty::Bool => Data::Bool(BooleanBuilder::new()),
        Ty::Int => Data::Int(Int64Builder::new()),
        Ty::Float => Data::Float(Float64Builder::new()),
        Ty::Str => Data::Str(StringBuilder::new()),
        Ty::Timestamp => Data::Timestamp(TimestampMicrosecondBuilder::new(), StringBuilder::new()),
    }
}

fn finish_data(data: Data) -> ArrayRef {
    match data {
        Data::Nulls => unreachable!("a column without a type is never finished"),
        Data::Bool(mut b) => Arc::new(b.finish()),
        Data::Int(mut b) => Arc::new(b.finish()),
        Data::Float(mut b) => Arc::new(b.finish()),
        Data::Str(mut b) => Arc::new(b.finish()),
        Data::Timestamp(mut b, _) => Arc::new(b.finish().with_timezone(UTC)),
    }
}

/// A finished value as a leaf again, for widening (never from timestamps,
/// which widen by keeping their text).
fn leaf_at(array: &dyn Array, row: usize) -> Option<Leaf<'static>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => Leaf::Bool(array.as_boolean().value(row)),
        DataType::Int64 => Leaf::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Leaf::Float(array.as_primitive::<Float64Type>().value(row)),
        other => unreachable!("{other} never widens through values"),
    })
}

/// The flattened columns of one JSON field (`properties`, `context`,
/// `traits`) of one table, by path.
#[derive(Default)]
pub struct ColumnSet {
    /// Looked up for every value of every event: a fast hasher, seeded per
    /// process so crafted keys cannot degrade it.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    columns: Vec<(Box<str>, DynColumn)>,
    /// The column of each member of the reader's objects (see
    /// [`Flattened::leaves`]), found by path once, while its members stay
    /// `members_id`'s: objects nearly always repeat their keys, so most
    /// values find their column without a path being compared or hashed.
    by_member: Vec<Option<usize>>,
    members_id: u64,
}

/// A finished flattened column: its path of JSON keys, type and values.
pub struct PathColumn {
    pub keys: Vec<String>,
    pub ty: Ty,
    pub array: ArrayRef,
}

impl ColumnSet {
    pub fn push(&mut self, row: usize, values: &Flattened<'_>) {
        if values.members_id() != self.members_id {
            self.members_id = values.members_id();
            self.by_member.clear();
        }
        for (member, leaf) in values.leaves() {
            let i = match self.by_member.get(member) {
                Some(&Some(i)) => i,
                _ => {
                    let i = self.column_of(values.path(member));
                    if self.by_member.len() <= member {
                        self.by_member.resize(member + 1, None);
                    }
                    self.by_member[member] = Some(i);
                    i
                }
            };
            self.columns[i].1.push(row, leaf);
        }
    }

    fn column_of(&mut self, path: &str) -> usize {
        if let Some(&i) = self.index.get(path) {
            return i;
        }
        self.columns.push((path.into(), DynColumn::default()));
        self.index.insert(path.into(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// Makes room in every column for `rows` rows (see
    /// [`DynColumn::reserve`]).
    pub fn reserve(&mut self, seen: usize, rows: usize) {
        for (_, column) in &mut self.columns {
            column.reserve(seen, rows);
        }
    }

    /// Each path and its type so far (`None`: only nulls).
    pub fn types(&self) -> impl Iterator<Item = (&str, Option<Ty>)> {
        self.columns.iter().map(|(path, c)| (&**path, c.ty()))
    }

    /// Finishes every column for `rows` rows, first widening each to the
    /// type `unify` gives for its path (types agreed across tables).
    pub fn finish(self, rows: usize, unify: impl Fn(&str) -> Option<Ty>) -> Vec<PathColumn> {
        self.columns
            .into_iter()
            .filter_map(|(path, mut column)| {
                if let Some(ty) = unify(&path) {
                    column.widen_to(ty);
                }
                let (ty, array) = column.finish(rows)?;
                Some(PathColumn {
                    keys: path_keys(&path),
                    ty,
                    array,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use std::collections::BTreeMap;

    use sluice_testkit::Xorshift;

    fn column(values: &[(usize, Leaf<'static>)], rows: usize) -> (Ty, ArrayRef) {
        let mut c = DynColumn::default();
        for (row, leaf) in values {
            c.push(*row, leaf);
        }
        c.finish(rows).expect("typed")
    }

    fn texts(array: &ArrayRef) -> Vec<Option<&str>> {
        array.as_string::<i32>().iter().collect()
    }

    #[test]
    fn values_find_their_column_whatever_the_key_order() {
        let mut set = ColumnSet::default();
        let mut flat = Flattened::default();
        let objects = [
            r#"{"a":1,"b":"x"}"#,
            r#"{"b":"y","a":2}"#,
            r#"{"a":3,"c":true}"#,
            r#"{"c":false}"#,
        ];
        for (row, json) in objects.into_iter().enumerate() {
            flat.read(json).unwrap();
            set.push(row, &flat);
        }
        let columns: HashMap<Vec<String>, ArrayRef> = set
            .finish(4, |_| None)
            .into_iter()
            .map(|c| (c.keys, c.array))
            .collect();
        let column = |key: &str| &columns[&vec![key.to_owned()]];
        let ints: Vec<_> = column("a").as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ints, [Some(1), Some(2), Some(3), None]);
        assert_eq!(texts(column("b")), [Some("x"), Some("y"), None, None]);
        let bools: Vec<_> = column("c").as_boolean().iter().collect();
        assert_eq!(bools, [None, None, Some(true), Some(false)]);
    }

    /// Valid objects from few keys, nested, repeated and reordered, so that
    /// consecutive ones often share their keys and sometimes do not.
    fn objects(rng: &mut Xorshift, count: usize) -> Vec<String> {
        fn object(rng: &mut Xorshift, depth: usize) -> String {
            let members: Vec<String> = (0..rng.below(4))
                .map(|_| {
                    let key = rng.pick(&["a", "b", "c"]);
                    let value = match rng.below(5) {
                        0 if depth < 2 => object(rng, depth + 1),
                        1 => "\"x\"".to_owned(),
                        2 => "null".to_owned(),
                        _ => rng.below(9).to_string(),
                    };
                    format!("\"{key}\":{value}")
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        let mut out: Vec<String> = Vec::new();
        for i in 0..count {
            let json = match rng.below(3) {
                0 if i > 0 => out[i - 1].clone(),
                _ => object(rng, 0),
            };
            out.push(json);
        }
        out
    }

    #[test]
    fn columns_found_by_member_are_the_columns_found_by_path() {
        let objects = objects(&mut Xorshift::new(0x5eed_1234_abcd_0001), 3_000);
        // Two readers take turns, as `context` readers feed several tables.
        let (mut first, mut second) = (Flattened::default(), Flattened::default());
        let mut set = ColumnSet::default();
        // What the set must hold: each value in the column of its path.
        let mut by_path: BTreeMap<String, DynColumn> = BTreeMap::new();
        for (row, json) in objects.iter().enumerate() {
            let reader = if row % 7 < 4 { &mut first } else { &mut second };
            reader.read(json).unwrap();
            set.push(row, reader);
            for (member, leaf) in reader.leaves() {
                let path = reader.path(member).to_owned();
                by_path.entry(path).or_default().push(row, leaf);
            }
        }
        let rows = objects.len();
        let got: Vec<_> = set
            .finish(rows, |_| None)
            .into_iter()
            .map(|c| (c.keys, c.ty, c.array))
            .collect();
        let want: Vec<_> = by_path
            .into_iter()
            .filter_map(|(path, column)| {
                let (ty, array) = column.finish(rows)?;
                Some((path_keys(&path), ty, array))
            })
            .collect();
        let sorted = |mut v: Vec<(Vec<String>, Ty, ArrayRef)>| {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(sorted(got), sorted(want));
    }

    #[test]
    fn joins_on_the_lattice() {
        use Ty::*;
        assert_eq!(Bool.join(Int), Int);
        assert_eq!(Int.join(Float), Float);
        assert_eq!(Bool.join(Float), Float);
        assert_eq!(Float.join(Str), Str);
        assert_eq!(Timestamp.join(Int), Str);
        assert_eq!(Timestamp.join(Timestamp), Timestamp);
    }

    #[test]
    fn infers_and_pads_nulls() {
        let (ty, a) = column(&[(1, Leaf::Int(5)), (3, Leaf::Null), (4, Leaf::Int(-2))], 6);
        assert_eq!(ty, Ty::Int);
        let got: Vec<_> = a.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(got, vec![None, Some(5), None, None, Some(-2), None]);
    }

    #[test]
    fn widens_bool_int_float() {
        let (ty, a) = column(
            &[
                (0, Leaf::Bool(true)),
                (1, Leaf::Int(3)),
                (2, Leaf::Float(0.5)),
            ],
            3,
        );
        assert_eq!(ty, Ty::Float);
        let got: Vec<_> = a.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(got, vec![Some(1.0), Some(3.0), Some(0.5)]);
    }

    #[test]
    fn int_and_string_keep_every_value_as_text() {
        let (ty, a) = column(
            &[
                (0, Leaf::Int(7)),
                (1, Leaf::Str("seven".into())),
                (2, Leaf::Float(2.5)),
                (3, Leaf::Bool(false)),
                (4, Leaf::Array("[1, 2]")),
            ],
            6,
        );
        assert_eq!(ty, Ty::Str);
        assert_eq!(
            texts(&a),
            vec![
                Some("7"),
                Some("seven"),
                Some("2.5"),
                Some("false"),
                Some("[1, 2]"),
                None
            ]
        );
    }

    #[test]
    fn timestamps_until_something_else_arrives() {
        let (ty, a) = column(
            &[
                (0, Leaf::Str("2024-05-01T12:00:00.5Z".into())),
                (2, Leaf::Str("2024-05-01T14:00:00+02:00".into())),
            ],
            3,
        );
        assert_eq!(ty, Ty::Timestamp);
        assert_eq!(a.data_type(), &timestamp_type());
        let got: Vec<_> = a
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect();
        assert_eq!(
            got,
            vec![
                Some(1_714_564_800_500_000),
                None,
                Some(1_714_564_800_000_000)
            ]
        );

        let (ty, a) = column(
            &[
                (0, Leaf::Str("2024-05-01T12:00:00Z".into())),
                (1, Leaf::Str("soon".into())),
                (2, Leaf::Str("2024-05-01".into())),
            ],
            3,
        );
        assert_eq!(ty, Ty::Str);
        assert_eq!(
            texts(&a),
            vec![
                Some("2024-05-01T12:00:00Z"),
                Some("soon"),
                Some("2024-05-01")
            ]
        );
    }

    #[test]
    fn first_value_of_a_row_wins_and_all_null_columns_vanish() {
        let (_, a) = column(&[(0, Leaf::Int(1)), (0, Leaf::Str("dup".into()))], 1);
        assert_eq!(a.as_primitive::<Int64Type>().value(0), 1);
        let mut nulls = DynColumn::default();
        nulls.push(0, &Leaf::Null);
        assert!(nulls.finish(3).is_none());
    }

    #[test]
    fn values_of_the_column_type_append_as_widening_would() {
        let leaves = [
            Leaf::Null,
            Leaf::Bool(true),
            Leaf::Int(-3),
            Leaf::Float(0.25),
            Leaf::Str("x".into()),
            Leaf::Str("2024-05-01T12:00:00Z".into()),
            Leaf::Array("[1]"),
        ];
        let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: usize| rng.below(n);
        for _ in 0..2_000 {
            let (mut fast, mut widening) = (DynColumn::default(), DynColumn::default());
            let mut row = 0;
            // Mostly one type, so that columns keep a type for a while.
            let usual = next(leaves.len());
            for _ in 0..next(12) {
                // Rows are skipped (padded) or repeated (first value wins).
                row += next(3);
                let leaf = &leaves[if next(4) == 0 {
                    next(leaves.len())
                } else {
                    usual
                }];
                fast.push(row, leaf);
                if widening.len <= row {
                    widening.push_widening(row, leaf);
                }
            }
            let rows = row + next(3);
            let (fast, widening) = (fast.finish(rows), widening.finish(rows));
            assert_eq!(
                fast.as_ref().map(|(ty, _)| *ty),
                widening.as_ref().map(|(ty, _)| *ty)
            );
            assert_eq!(
                fast.map(|(_, a)| a.to_data()),
                widening.map(|(_, a)| a.to_data())
            );
        }
    }

    #[test]
    fn reserving_text_keeps_the_values_and_makes_room() {
        let mut builder = StringBuilder::new();
        builder.append_value("abcd");
        builder.append_null();
        builder.append_value("ef");
        let before = builder.finish_cloned();
        reserve_text(&mut builder, 3, 30);
        assert!(builder.values_capacity() >= 60);
        assert!(builder.offsets_capacity() > 30);
        assert_eq!(builder.finish_cloned(), before);
        builder.append_value("g");
        assert_eq!(
            texts(&(Arc::new(builder.finish()) as ArrayRef)),
            [Some("abcd"), None, Some("ef"), Some("g")]
        );
    }

    #[test]
    fn widening_to_an_agreed_type() {
        let mut c = DynColumn::default();
        c.push(1, &Leaf::Int(4));
        c.widen_to(Ty::Str);
        let (ty, a) = c.finish(2).unwrap();
        assert_eq!(ty, Ty::Str);
        assert_eq!(texts(&a), vec![None, Some("4")]);
    }
}
