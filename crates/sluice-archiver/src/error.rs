//! The one error type of this crate.

use sluice_backends::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// A configuration value is out of range; the message names the key and
    /// its limit.
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("{operation}: {source}")]
    Backend {
        operation: String,
        #[source]
        source: BackendError,
    },

    /// A checkpoint object exists but cannot be read as one.
    #[error("corrupt checkpoint {key}: {message}")]
    CorruptCheckpoint { key: String, message: String },

    #[error("could not register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl ArchiverError {
    pub(crate) fn backend(operation: impl Into<String>, source: BackendError) -> Self {
        ArchiverError::Backend {
            operation: operation.into(),
            source,
        }
    }
}
