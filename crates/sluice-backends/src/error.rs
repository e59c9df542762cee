use std::time::Duration;

/// Every failure a backend reports. Callers branch on [`BackendError::is_retryable`]
/// rather than on the variant, so throttling and transient network errors are
/// retried with backoff while permanent ones surface at once.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write lost: the object exists (create-only) or its ETag
    /// changed (replace-if-unchanged).
    #[error("precondition failed for {0}")]
    PreconditionFailed(String),
    #[error("throttled by {service}: {message}")]
    Throttled {
        service: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A shard iterator or receipt handle outlived its validity.
    #[error("expired: {0}")]
    Expired(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{service} request failed: {message}")]
    Service {
        service: &'static str,
        message: String,
        retryable: bool,
    },
    #[error("local backend i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt local data in {path}: {message}")]
    Corrupt { path: String, message: String },
}

impl BackendError {
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Throttled { .. } => true,
            BackendError::Service { retryable, .. } => *retryable,
            BackendError::Io { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        BackendError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
