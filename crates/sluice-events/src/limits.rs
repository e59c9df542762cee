use serde::{Deserialize, Serialize};

use crate::EventError;

/// Per-event limits, enforced where an event enters the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Size of one event's JSON, in bytes.
    pub max_event_bytes: usize,
    /// Nesting of objects and arrays inside one event.
    pub max_depth: usize,
    /// Leaf values inside `properties` (or `traits`): what would become
    /// columns once flattened.
    pub max_properties: usize,
    /// Length of ids and names (`messageId`, `userId`, `event`, ...).
    pub max_id_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_depth: 32,
            max_properties: 2_000,
            max_id_bytes: 1_024,
        }
    }
}

/// Depth of nesting and number of leaf values in a JSON text, by one pass
/// over its bytes. Cheaper than building a tree, and it cannot overflow a
/// stack on hostile input. A leaf is what flattening turns into a column:
/// any value inside an object that is not itself an object (an array counts
/// once, whatever it holds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub depth: usize,
    pub leaves: usize,
}

pub(crate) fn shape(json: &str) -> Shape {
    scan(json.as_bytes(), 0, false).0
}

/// The shape of the JSON value (an object or an array) starting at `start`,
/// and the offset just past it. `bytes` must be valid JSON there; on other
/// input the result is meaningless but the scan still ends without panicking.
pub(crate) fn shape_of_value(bytes: &[u8], start: usize) -> (Shape, usize) {
    scan(bytes, start, true)
}

/// The offset of the first `"` or `\` at or after `i` (`bytes.len()` if
/// none), eight bytes at a time: most of an event's bytes are in strings.
pub(crate) fn find_quote_or_backslash(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quotes = word ^ (ONES * u64::from(b'"'));
        let backslashes = word ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it is zero, exact up to the first
        // zero byte, which is all that is read.
        let found = ((quotes.wrapping_sub(ONES) & !quotes)
            | (backslashes.wrapping_sub(ONES) & !backslashes))
            & HIGHS;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' {
            return i;
        }
        i += 1;
    }
    bytes.len().max(i)
}

/// No stack is kept: in valid JSON a closing bracket says what it closes,
/// and a value is a column only while no array is open, that is while every
/// open container is an object. So the nesting depth, the number of open
/// arrays and whether the innermost object waits for a key are enough.
fn scan(bytes: &[u8], start: usize, stop_when_closed: bool) -> (Shape, usize) {
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut arrays_open = 0usize;
    let mut expect_key = false;
    let mut in_scalar = false;
    // Whether a value starting now is a column: directly inside an object,
    // in value position, and not inside any array.
    let is_column = |depth: usize, arrays_open: usize, expect_key: bool| {
        depth > 0 && arrays_open == 0 && !expect_key
    };
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'"' => {
                shape.leaves += usize::from(is_column(depth, arrays_open, expect_key));
                in_scalar = false;
                // Skip the string: only a quote or a backslash matter in it.
                loop {
                    i = find_quote_or_backslash(bytes, i);
                    match bytes.get(i) {
                        Some(b'\\') => i += 2,
                        Some(_) => {
                            i += 1;
                            break;
                        }
                        None => break,
                    }
                }
            }
            b'{' => {
                depth += 1;
                expect_key = true;
                shape.depth = shape.depth.max(depth);
            }
            b'[' => {
                shape.leaves += usize::from(is_column(depth, arrays_open, expect_key));
                depth += 1;
                arrays_open += 1;
                shape.depth = shape.depth.max(depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if b == b']' {
                    arrays_open = arrays_open.saturating_sub(1);
                }
                // The enclosing container, if an object, just got its value.
                expect_key = false;
                in_scalar = false;
                if stop_when_closed && depth == 0 {
                    break;
                }
            }
            b':' | b',' => {
                // Only read while no array is open, when the innermost
                // container is an object.
                expect_key = b == b',';
                in_scalar = false;
            }
            b' ' | b'\n' | b'\r' | b'\t' => in_scalar = false,
            _ => {
                if !in_scalar {
                    in_scalar = true;
                    shape.leaves += usize::from(is_column(depth, arrays_open, expect_key));
                }
            }
        }
    }
    (shape, i.min(bytes.len()))
}

impl Limits {
    /// Checks one JSON object field of an event (`properties`, `context`,
    /// `traits`) against the depth and property limits.
    #[cfg(test)]
    pub(crate) fn check_object(
        &self,
        field: &'static str,
        json: &str,
        depth_above: usize,
    ) -> Result<(), EventError> {
        self.check_shape(field, shape(json), depth_above)
    }

    /// [`Limits::check_object`] with the object's shape already measured.
    pub(crate) fn check_shape(
        &self,
        field: &'static str,
        shape: Shape,
        depth_above: usize,
    ) -> Result<(), EventError> {
        let Shape { depth, leaves } = shape;
        if depth + depth_above > self.max_depth {
            return Err(EventError::TooDeep {
                field,
                depth: depth + depth_above,
                limit: self.max_depth,
            });
        }
        if field != "context" && leaves > self.max_properties {
            return Err(EventError::TooManyProperties {
                field,
                count: leaves,
                limit: self.max_properties,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_columns_not_array_items() {
        let s = shape(r#"{"a":1,"b":{"c":"x","d":[1,2,{"e":3}]},"f":true,"g":null,"h":"a,b:\"}"}"#);
        assert_eq!(
            s,
            Shape {
                depth: 4,
                leaves: 6
            }
        );
    }

    #[test]
    fn empty_and_flat() {
        assert_eq!(
            shape("{}"),
            Shape {
                depth: 1,
                leaves: 0
            }
        );
        assert_eq!(
            shape(r#"{ "a" : -1.5e3 , "b" : "" }"#),
            Shape {
                depth: 1,
                leaves: 2
            }
        );
    }

    #[test]
    fn finds_quotes_and_backslashes_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                for c in [b'"', b'\\'] {
                    let mut text = vec![b'a'; len];
                    if at < len {
                        text[at] = c;
                        // A later match must not win.
                        if at + 1 < len {
                            text[len - 1] = b'"';
                        }
                    }
                    for from in 0..=at.min(len) {
                        let want = if at < len { at } else { len };
                        assert_eq!(find_quote_or_backslash(&text, from), want);
                    }
                }
            }
        }
        let utf8 = "é\"ü\\".as_bytes();
        assert_eq!(find_quote_or_backslash(utf8, 0), 2);
        assert_eq!(find_quote_or_backslash(utf8, 3), 5);
    }

    #[test]
    fn deep_nesting_is_measured_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(shape(&deep).depth, 100_000);
    }

    #[test]
    fn limits_name_field_and_limit() {
        let limits = Limits {
            max_depth: 3,
            max_properties: 2,
            ..Limits::default()
        };
        let err = limits
            .check_object("properties", r#"{"a":{"b":{"c":1}}}"#, 1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "properties: nested 4 levels deep, over the limit of 3"
        );
        let err = limits
            .check_object("traits", r#"{"a":1,"b":2,"c":3}"#, 1)
            .unwrap_err();
        assert_eq!(err.to_string(), "traits: 3 properties, over the limit of 2");
        assert!(
            limits
                .check_object("context", r#"{"a":1,"b":2,"c":3}"#, 1)
                .is_ok()
        );
    }
}
