//! The `[loader]` and `[warehouse]` config sections.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_backends::{MAX_VISIBILITY, MAX_WAIT};

use crate::error::{LoaderError, Result};

const MAX_POLL_WAIT_SECS: u64 = MAX_WAIT.as_secs();
const MAX_VISIBILITY_SECS: u64 = MAX_VISIBILITY.as_secs();

/// `[loader]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoaderConfig {
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin_port: u16,
    /// Manifests loaded at once (one at a time per table whatever this is).
    pub concurrency: usize,
    /// A row whose id the table holds from up to this many days before the
    /// row's received_at is not loaded again.
    pub dedupe_window_days: u32,
    /// Receives of a failing manifest before it goes to the dead-letter
    /// queue with the last error.
    pub max_attempts: u32,
    /// How long a received manifest stays hidden; extended while it loads.
    pub visibility_timeout_secs: u64,
    /// Long-poll wait of one receive (at most 20).
    pub poll_wait_secs: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            admin_port: 9090,
            concurrency: 4,
            dedupe_window_days: 7,
            max_attempts: 5,
            visibility_timeout_secs: 300,
            poll_wait_secs: 20,
        }
    }
}

impl LoaderConfig {
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, message: &str| match ok {
            true => Ok(()),
            false => Err(LoaderError::Config(message.to_string())),
        };
        check(
            (1..=256).contains(&self.concurrency),
            "loader.concurrency must be between 1 and 256",
        )?;
        check(
            self.max_attempts >= 1,
            "loader.max_attempts must be at least 1",
        )?;
        check(
            self.dedupe_window_days <= 3650,
            "loader.dedupe_window_days must be at most 3650",
        )?;
        check(
            (1..=MAX_VISIBILITY_SECS).contains(&self.visibility_timeout_secs),
            "loader.visibility_timeout_secs must be between 1 and 43200 (SQS's limit)",
        )?;
        check(
            self.poll_wait_secs <= MAX_POLL_WAIT_SECS,
            "loader.poll_wait_secs must be at most 20 (SQS's limit)",
        )
    }

    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    pub fn poll_wait(&self) -> Duration {
        Duration::from_secs(self.poll_wait_secs)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseKind {
    Postgres,
    Redshift,
    /// The embedded warehouse of the single-machine mode.
    #[default]
    Sqlite,
}

impl WarehouseKind {
    pub fn name(self) -> &'static str {
        match self {
            WarehouseKind::Postgres => "postgres",
            WarehouseKind::Redshift => "redshift",
            WarehouseKind::Sqlite => "sqlite",
        }
    }
}

/// `[warehouse]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarehouseConfig {
    pub kind: WarehouseKind,
    /// postgres/redshift: `postgres://user:password@host:port/database`.
    pub url: Option<String>,
    /// redshift: the role COPY assumes to read the bucket.
    pub iam_role: Option<String>,
    /// redshift: the bucket holding the Parquet files.
    pub s3_bucket: Option<String>,
    /// sqlite: the database file.
    pub path: Option<PathBuf>,
    /// postgres/redshift: connections kept open.
    pub max_connections: usize,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        Self {
            kind: WarehouseKind::default(),
            url: None,
            iam_role: None,
            s3_bucket: None,
            path: Some(PathBuf::from("data/warehouse.db")),
            max_connections: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_named() {
        assert!(LoaderConfig::default().validate().is_ok());
        let config = LoaderConfig {
            poll_wait_secs: 30,
            ..LoaderConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("loader.poll_wait_secs") && err.contains("20"),
            "{err}"
        );
    }
}
