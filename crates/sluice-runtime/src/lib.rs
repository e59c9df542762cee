//! Configuration, logging, admin endpoints and shutdown for every Sluice service.
//!
//! A service's `main` reads its config with [`load_config`], calls
//! [`init_logging`], serves [`serve_admin`] next to its own work, and on
//! [`shutdown_signal`] cancels its [`Shutdown`] and waits for tracked tasks.

mod admin;
mod config;
mod error;
mod logging;
mod metrics;
mod shutdown;

pub use admin::{Readiness, serve_admin};
pub use config::{config_path, load_config};
pub use error::RuntimeError;
pub use logging::{LogFormat, init_logging};
pub use metrics::render_metrics;
pub use shutdown::{Shutdown, shutdown_signal};
