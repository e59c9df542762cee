//! Configuration, logging, admin endpoints and shutdown for every Sluice service.
//!
//! A stage's `main` reads its config with [`load_config`], calls
//! [`init_logging`] and [`shutdown_signal`], connects its backends, and hands
//! its work to [`run_stage`], which serves the admin endpoints next to it and
//! drains it on the signal.

mod admin;
mod config;
mod error;
mod logging;
mod memory;
mod metrics;
mod shutdown;
mod stage;

pub use admin::{Readiness, serve_admin};
pub use config::{config_path, load_config};
pub use error::RuntimeError;
pub use logging::{LogFormat, init_logging};
pub use memory::keep_freed_memory;
pub use metrics::render_metrics;
pub use shutdown::{Shutdown, shutdown_signal};
pub use stage::{bind_admin, run_stage};
