//! The collector: the only part of Sluice that clients see. It takes events
//! over HTTP (Sluice's native shape and Segment's Tracking API, one module
//! per client protocol) and gRPC, validates them one by one (a bad event is
//! rejected and kept, its neighbours accepted), and writes them to the
//! event stream as aggregated records, answering only once the stream has
//! them, and pushing back with 503 when the stream cannot keep up.

mod auth;
mod body;
mod config;
mod drain;
mod error;
mod grpc;
mod http;
mod ingest;
mod last_answer;
mod metrics;
mod protocols;
mod rejection;
mod server;
mod utf8;
mod writer;

pub use config::{AckMode, CollectorConfig, MAX_RECORD_PLAIN_BYTES};
pub use error::CollectorError;
pub use server::{Listeners, serve};
