/// Why an event or a stream record was refused. Every message names the
/// field and, where one applies, the limit, because it goes back to the
/// client that has to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Malformed(String),
    #[error("event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("{field}: expected {expected}, got {got}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
    #[error("{field} is required{when}")]
    Missing {
        field: &'static str,
        when: &'static str,
    },
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{field}: nested {depth} levels deep, over the limit of {limit}")]
    TooDeep {
        field: &'static str,
        depth: usize,
        limit: usize,
    },
    #[error("{field}: {count} properties, over the limit of {limit}")]
    TooManyProperties {
        field: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("stream record: {0}")]
    Record(String),
}

impl EventError {
    /// A short, stable label for metrics (`cause="too_large"`).
    pub fn cause(&self) -> &'static str {
        match self {
            EventError::Malformed(_) => "malformed_json",
            EventError::NotAnObject(_) => "not_an_object",
            EventError::WrongType { .. } => "wrong_type",
            EventError::InvalidValue { .. } => "invalid_value",
            EventError::Missing { .. } => "missing_field",
            EventError::TooLarge { .. } => "too_large",
            EventError::TooDeep { .. } => "too_deep",
            EventError::TooManyProperties { .. } => "too_many_properties",
            EventError::Record(_) => "bad_record",
        }
    }
}
