use serde::{Deserialize, Serialize};

use crate::EventError;
use crate::json::grammar::{skip_ws, value_end};

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

/// Depth of nesting and number of leaf values in a JSON text, measured by
/// the pass that checks its grammar (see `json::grammar::value_end`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub depth: usize,
    pub leaves: usize,
}

/// The shape of `json`, which must be valid JSON (a default shape if not).
pub(crate) fn shape(json: &str) -> Shape {
    let b = json.as_bytes();
    value_end(b, skip_ws(b, 0)).map_or_else(Shape::default, |(shape, _)| shape)
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
