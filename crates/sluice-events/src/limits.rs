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
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub depth: usize,
    pub leaves: usize,
}

enum Frame {
    Object { expect_key: bool },
    Array,
}

pub(crate) fn shape(json: &str) -> Shape {
    let mut stack: Vec<Frame> = Vec::new();
    let mut shape = Shape::default();
    let mut arrays_open = 0usize;
    let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
    // Whether a value starting now is a column: directly inside an object,
    // in value position, and not inside any array.
    let is_column = |stack: &[Frame], arrays_open: usize| {
        arrays_open == 0 && matches!(stack.last(), Some(Frame::Object { expect_key: false }))
    };
    for &b in json.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                shape.leaves += usize::from(is_column(&stack, arrays_open));
            }
            b'{' | b'[' => {
                if b == b'[' {
                    shape.leaves += usize::from(is_column(&stack, arrays_open));
                    arrays_open += 1;
                    stack.push(Frame::Array);
                } else {
                    stack.push(Frame::Object { expect_key: true });
                }
                shape.depth = shape.depth.max(stack.len());
            }
            b'}' | b']' => {
                if let Some(Frame::Array) = stack.pop() {
                    arrays_open -= 1;
                }
                in_scalar = false;
            }
            b':' | b',' => {
                if let Some(Frame::Object { expect_key }) = stack.last_mut() {
                    *expect_key = b == b',';
                }
                in_scalar = false;
            }
            b' ' | b'\n' | b'\r' | b'\t' => in_scalar = false,
            _ => {
                if !in_scalar {
                    in_scalar = true;
                    shape.leaves += usize::from(is_column(&stack, arrays_open));
                }
            }
        }
    }
    shape
}

impl Limits {
    /// Checks one JSON object field of an event (`properties`, `context`,
    /// `traits`) against the depth and property limits.
    pub(crate) fn check_object(
        &self,
        field: &'static str,
        json: &str,
        depth_above: usize,
    ) -> Result<(), EventError> {
        let Shape { depth, leaves } = shape(json);
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
