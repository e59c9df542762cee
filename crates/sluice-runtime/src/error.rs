//! The one error type of this crate.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A config file or environment variable is missing, malformed or has a bad
    /// value. figment's message names the key and where its value came from.
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("invalid log filter in SLUICE_LOG: {0}")]
    LogFilter(String),

    #[error("could not encode metrics: {0}")]
    Metrics(#[from] prometheus::Error),

    #[error("could not install the handler for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },

    #[error("binding {setting} ({address}): {source}")]
    Bind {
        setting: &'static str,
        address: String,
        source: std::io::Error,
    },

    #[error("{unfinished} task(s) still running {grace:?} after shutdown began")]
    ShutdownTimeout { unfinished: usize, grace: Duration },

    #[error(transparent)]
    Stage(Box<dyn std::error::Error + Send + Sync>),

    #[error("the stage panicked: {0}")]
    StagePanicked(#[from] tokio::task::JoinError),
}

impl From<figment::Error> for RuntimeError {
    /// figment can report several errors at once (one per bad key); keep them all.
    fn from(error: figment::Error) -> Self {
        let all: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        RuntimeError::Config(all.join("; "))
    }
}
