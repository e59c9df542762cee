//! Starts the real dependencies integration tests need: moto_server and PostgreSQL.
//!
//! Every server is a child process that stops when its handle is dropped and also
//! when the test process dies without running destructors (see `watchdog.rs`).
//! Tests in one binary can share a server ([`MotoServer::shared`],
//! [`Postgres::shared`]) and keep apart by naming their resources with
//! [`unique_name`] or asking for a [`Postgres::fresh_database`].

pub mod aws;
mod command;
mod moto;
mod moto_install;
mod names;
mod port;
mod postgres;
mod rng;
mod watchdog;

pub use moto::MotoServer;
pub use names::unique_name;
pub use postgres::Postgres;
pub use rng::Xorshift;
