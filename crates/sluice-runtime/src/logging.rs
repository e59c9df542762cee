//! Structured logs on stdout: JSON for log collectors, text for people.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::RuntimeError;

/// The filter used when `SLUICE_LOG` is not set.
const DEFAULT_FILTER: &str = "info";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, the event's fields at the top level.
    #[default]
    Json,
    Text,
}

/// Installs the global subscriber, filtered by `SLUICE_LOG` (`RUST_LOG` syntax,
/// default `info`).
///
/// Only the first call installs anything: later ones (several tests in one
/// binary, `sluice up` starting several stages) keep the first subscriber and
/// return `Ok`. A malformed `SLUICE_LOG` is an error rather than silently
/// logging nothing.
pub fn init_logging(format: LogFormat) -> Result<(), RuntimeError> {
    let filter = match std::env::var("SLUICE_LOG") {
        Ok(directives) => {
            EnvFilter::try_new(directives).map_err(|e| RuntimeError::LogFilter(e.to_string()))?
        }
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // Err only means a subscriber is already installed.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
    Ok(())
}
