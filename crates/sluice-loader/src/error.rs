//! The one error type of this crate.

use sluice_backends::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A config key is missing or out of range; the message names the key
    /// and the limit.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The queue message is not a load manifest, or the manifest breaks the
    /// contract (a reserved table name, a table without `id`). Retrying
    /// cannot help.
    #[error("invalid load manifest: {0}")]
    Manifest(String),

    #[error("object {key}: {source}")]
    Object {
        key: String,
        #[source]
        source: BackendError,
    },

    #[error("object {0} named in the manifest does not exist")]
    MissingObject(String),

    #[error("parquet file {key}: {message}")]
    Parquet { key: String, message: String },

    #[error("table {table}: column {column} has type {data_type}, which the loader cannot map")]
    UnsupportedColumn {
        table: String,
        column: String,
        data_type: String,
    },

    #[error("table {table}: required column {column} is missing")]
    MissingColumn { table: String, column: String },

    #[error(
        "table {table}: {columns} columns in one file exceed the warehouse's limit of {limit} \
         (a staging table cannot hold them)"
    )]
    TooManyColumns {
        table: String,
        columns: usize,
        limit: usize,
    },

    #[error("postgres: {context}: {}", describe(source))]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("queue: {0}")]
    Queue(#[source] BackendError),

    #[error("loader task failed: {0}")]
    Task(String),
}

impl LoaderError {
    pub(crate) fn postgres(
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| LoaderError::Postgres { context, source }
    }

    /// A short, stable label for metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            LoaderError::Config(_) => "config",
            LoaderError::Manifest(_) => "manifest",
            LoaderError::Object { .. } | LoaderError::MissingObject(_) => "object",
            LoaderError::Parquet { .. } | LoaderError::UnsupportedColumn { .. } => "parquet",
            LoaderError::MissingColumn { .. } | LoaderError::TooManyColumns { .. } => "schema",
            LoaderError::Postgres { .. } | LoaderError::Sqlite(_) => "warehouse",
            LoaderError::Queue(_) => "queue",
            LoaderError::Task(_) => "task",
        }
    }
}

/// The server's own message where there is one: tokio-postgres displays a
/// server error as just "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => error.to_string(),
    }
}

pub type Result<T, E = LoaderError> = std::result::Result<T, E>;
