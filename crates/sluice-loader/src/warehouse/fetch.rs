//! Fetching a manifest's Parquet files, for the warehouses that are sent
//! the rows rather than told where they are.

use sluice_events::proto::LoadManifest;

use crate::error::{LoaderError, Result};
use crate::parquet_source::ParquetTable;
use crate::tables::require_columns;
use sluice_backends::ObjectStore;

/// Every table file of the manifest, opened and checked.
pub async fn fetch_tables(
    manifest: &LoadManifest,
    objects: &dyn ObjectStore,
) -> Result<Vec<ParquetTable>> {
    let mut files = Vec::with_capacity(manifest.tables.len());
    for load in &manifest.tables {
        let object = objects
            .get(&load.object_key)
            .await
            .map_err(|source| LoaderError::Object {
                key: load.object_key.clone(),
                source,
            })?
            .ok_or_else(|| LoaderError::MissingObject(load.object_key.clone()))?;
        let (table, key) = (load.table.clone(), load.object_key.clone());
        // Decoding the id column to find duplicates is CPU work.
        let file =
            tokio::task::spawn_blocking(move || ParquetTable::open(&table, &key, object.body))
                .await
                .map_err(|e| LoaderError::Task(e.to_string()))??;
        require_columns(&file.table, &file.columns)?;
        files.push(file);
    }
    Ok(files)
}
