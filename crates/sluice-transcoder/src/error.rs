use sluice_backends::BackendError;
use sluice_events::EventError;

/// Everything that can stop an object from being transcoded. A permanent
/// error is the object's (or the message's) own fault and will not go away
/// on a retry: after the configured attempts the message goes to the
/// dead-letter queue. Anything else is retried until it works.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error(
        "raw object key {key:?} is not raw/<stream>/dt=YYYY-MM-DD/hh=HH/<shard_id>/<first>-<last>.pb.zst"
    )]
    RawKey { key: String },
    #[error("raw object {key} cannot be decoded: {source}")]
    Archive {
        key: String,
        #[source]
        source: EventError,
    },
    #[error("raw object {0} does not exist")]
    MissingObject(String),
    #[error("queue message is not an S3 notification: {0}")]
    Notification(#[source] BackendError),
    #[error("table {table}: over {limit} bytes of text in one raw object")]
    TableTooLarge { table: String, limit: usize },
    #[error("load manifest is {size} bytes, over the queue's limit of {limit} bytes")]
    ManifestTooLarge { size: usize, limit: usize },
    #[error("writing table {table}: {source}")]
    Parquet {
        table: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("building table {table}: {source}")]
    Arrow {
        table: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A bug: transcoding panicked. Permanent, so the object ends in the
    /// dead-letter queue instead of crashing workers forever.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl TranscodeError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            TranscodeError::Backend(_) | TranscodeError::Metrics(_) | TranscodeError::Config(_)
        )
    }

    /// A short, stable label for metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            TranscodeError::RawKey { .. } => "bad_key",
            TranscodeError::Archive { .. } => "undecodable_archive",
            TranscodeError::MissingObject(_) => "missing_object",
            TranscodeError::Notification(_) => "bad_notification",
            TranscodeError::TableTooLarge { .. } => "table_too_large",
            TranscodeError::ManifestTooLarge { .. } => "manifest_too_large",
            TranscodeError::Parquet { .. } => "parquet",
            TranscodeError::Arrow { .. } => "arrow",
            TranscodeError::Internal(_) => "internal",
            TranscodeError::Backend(_) => "backend",
            TranscodeError::Config(_) => "config",
            TranscodeError::Metrics(_) => "metrics",
        }
    }
}
