//! The warehouse-loader: consumes the transcoder's load manifests and loads
//! their Parquet tables into PostgreSQL, Redshift or embedded SQLite,
//! exactly once per event, following new events, new properties and type
//! changes by itself.

mod config;
mod consumer;
mod error;
mod metrics;
mod parquet_source;
mod schema;
mod sql;
mod table_locks;
mod tables;
mod types;
mod warehouse;

pub use config::{LoaderConfig, WarehouseConfig, WarehouseKind};
pub use consumer::serve;
pub use error::{LoaderError, Result};
pub use schema::{
    ChangeKind, Conflict, Resolution, SchemaChange, Spill, SpillCause, TableReport, shadow_name,
};
pub use types::WhType;
pub use warehouse::{
    LoadJob, LoadOutcome, PgWarehouse, SqliteWarehouse, Warehouse, connect_warehouse,
};
