//! Whether a column gets a Parquet dictionary. The writer interns every
//! value of a dictionary column (a hash, a probe, a copy of each new
//! value): that pays when values repeat (`event`, `currency`, a library
//! version) and is pure cost when they hardly do (ids, URLs, emails,
//! timestamps), where the pages end up no smaller. The arrays are complete
//! before the file is written, so their first values are looked at first.

use std::collections::HashSet;
use std::hash::BuildHasher;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_schema::{DataType, TimeUnit};

/// Values looked at: enough to tell repeating from distinct, few enough to
/// cost a fraction of interning the whole column.
const SAMPLE: usize = 1024;
/// Fewer values than this say little, and cost little to intern anyway.
const MIN_SAMPLE: usize = 64;

/// False when most of the column's first non-null values are distinct.
pub fn repeats(array: &dyn Array) -> bool {
    let hasher = foldhash::fast::FixedState::default();
    match array.data_type() {
        DataType::Utf8 => judge(array.as_string::<i32>().iter(), |v| hasher.hash_one(v)),
        DataType::Int64 => primitive::<Int64Type>(array, |v| hasher.hash_one(v)),
        DataType::Float64 => primitive::<Float64Type>(array, |v| hasher.hash_one(v.to_bits())),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            primitive::<TimestampMicrosecondType>(array, |v| hasher.hash_one(v))
        }
        // Booleans are never dictionary-encoded; other types do not occur.
        _ => true,
    }
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array, hash: impl Fn(T::Native) -> u64) -> bool {
    judge(array.as_primitive::<T>().iter(), hash)
}

/// Whether at least half of the first [`SAMPLE`] non-null values repeat an
/// earlier one (by hash: a rare collision only tips a close call). Stops
/// as soon as the answer cannot change.
fn judge<V>(values: impl Iterator<Item = Option<V>>, hash: impl Fn(V) -> u64) -> bool {
    let mut seen =
        HashSet::with_capacity_and_hasher(SAMPLE / 2 + 1, foldhash::fast::FixedState::default());
    let (mut sampled, mut repeated) = (0, 0);
    for value in values.flatten().take(SAMPLE) {
        sampled += 1;
        if !seen.insert(hash(value)) {
            repeated += 1;
            if repeated * 2 >= SAMPLE {
                return true;
            }
        } else if seen.len() * 2 > SAMPLE {
            return false;
        }
    }
    sampled < MIN_SAMPLE || repeated * 2 >= sampled
}

#[cfg(test)]
mod tests {
    use arrow_array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn repeating_values_keep_a_dictionary_distinct_ones_do_not() {
        let events = StringArray::from_iter_values((0..2000).map(|i| ["viewed", "added"][i % 2]));
        assert!(repeats(&events));
        let ids = StringArray::from_iter_values((0..2000).map(|i| format!("msg-{i}")));
        assert!(!repeats(&ids));
        let times = TimestampMicrosecondArray::from_iter_values(0..2000);
        assert!(!repeats(&times));
        let quantities = Int64Array::from_iter_values((0..2000).map(|i| i % 5));
        assert!(repeats(&quantities));
        let prices = Float64Array::from_iter_values((0..2000).map(f64::from));
        assert!(!repeats(&prices));
    }

    #[test]
    fn judged_on_values_not_nulls_and_not_on_a_handful() {
        // Mostly null, the values that are there repeat.
        let sparse = StringArray::from_iter((0..5000).map(|i| (i % 10 == 0).then_some("x")));
        assert!(repeats(&sparse));
        // Too few values to judge: a dictionary costs little there.
        let few = StringArray::from_iter_values((0..MIN_SAMPLE - 1).map(|i| i.to_string()));
        assert!(repeats(&few));
    }
}
