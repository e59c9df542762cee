//! The table contract between the transcoder and the loader: which tables
//! and columns the loader relies on, and how `users` derives from
//! `identifies`.

use sluice_events::proto::LoadManifest;

use crate::error::{LoaderError, Result};
use crate::schema::{Incoming, TableReport};
use crate::sql::USERS_TABLE;
use crate::types::WhType;

pub const IDENTIFIES_TABLE: &str = "identifies";

/// Columns every table has; never spilled.
const COMMON_COLUMNS: &[&str] = &[
    "id",
    "received_at",
    "timestamp",
    "sent_at",
    "user_id",
    "anonymous_id",
    "context",
];

/// Per-type columns (the JSON columns among them), also never spilled.
const TYPE_COLUMNS: &[&str] = &[
    "event",
    "event_text",
    "properties",
    "name",
    "traits",
    "group_id",
    "previous_id",
    "reason",
    "raw",
    "source_key",
];

pub fn is_base_column(name: &str) -> bool {
    COMMON_COLUMNS.contains(&name) || TYPE_COLUMNS.contains(&name)
}

/// Checks what the loader relies on before it touches the warehouse:
/// table names it may write, one file per table.
pub fn validate_manifest(manifest: &LoadManifest) -> Result<()> {
    if manifest.manifest_id.is_empty() {
        return Err(LoaderError::Manifest("manifest_id is empty".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for load in &manifest.tables {
        let table = load.table.as_str();
        if table.is_empty() || table == USERS_TABLE || table.starts_with("_sluice") {
            return Err(LoaderError::Manifest(format!(
                "table name {table:?} is reserved (users, _sluice*) or empty"
            )));
        }
        if !seen.insert(table) {
            return Err(LoaderError::Manifest(format!(
                "table {table} appears more than once"
            )));
        }
    }
    Ok(())
}

/// The tables a manifest writes, in the order loaders lock them (one order
/// for all, so two loaders never wait on each other in a cycle).
pub fn locked_tables(manifest: &LoadManifest) -> Vec<&str> {
    let mut tables: Vec<&str> = manifest.tables.iter().map(|t| t.table.as_str()).collect();
    if tables.contains(&IDENTIFIES_TABLE) {
        tables.push(USERS_TABLE);
    }
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// What the loads table keeps about each table of a load, as JSON.
pub fn loads_summary(reports: &[TableReport]) -> String {
    let tables: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "table": r.table,
                "rows": r.rows_in_file,
                "loaded": r.rows_loaded,
            })
        })
        .collect();
    serde_json::Value::Array(tables).to_string()
}

/// Fails unless the file has the columns the load itself needs: `id` and
/// `received_at` for dedupe, and for identifies `user_id` and `timestamp`
/// for the users upsert.
pub fn require_columns(table: &str, incoming: &[Incoming]) -> Result<()> {
    let mut required = vec![("id", WhType::Text), ("received_at", WhType::Timestamp)];
    if table == IDENTIFIES_TABLE {
        required.extend([("user_id", WhType::Text), ("timestamp", WhType::Timestamp)]);
    }
    for (name, ty) in required {
        match incoming.iter().find(|c| c.source == name) {
            Some(c) if c.ty == ty => {}
            Some(c) => {
                return Err(LoaderError::Manifest(format!(
                    "table {table}: column {name} must be {ty:?}, the file has {:?}",
                    c.ty
                )));
            }
            None => {
                return Err(LoaderError::MissingColumn {
                    table: table.to_string(),
                    column: name.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The columns of `users` fed from an identifies file: the user id as
/// `id`, when and what was last identified, and every flattened trait
/// (identifies columns that are neither common nor context).
pub fn users_columns(identifies: &[Incoming]) -> Vec<Incoming> {
    let mut columns = vec![Incoming {
        source: "user_id".into(),
        name: "id".into(),
        ty: WhType::Text,
    }];
    for c in identifies {
        let kept = matches!(
            c.source.as_str(),
            "anonymous_id" | "received_at" | "timestamp" | "traits"
        ) || !(is_base_column(&c.source) || c.source.starts_with("context_"));
        if kept {
            columns.push(Incoming {
                source: c.source.clone(),
                name: c.name.clone(),
                ty: c.ty,
            });
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_events::proto::TableLoad;

    fn incoming(name: &str, ty: WhType) -> Incoming {
        Incoming {
            source: name.into(),
            name: name.into(),
            ty,
        }
    }

    #[test]
    fn users_take_traits_not_context() {
        let identifies = [
            incoming("id", WhType::Text),
            incoming("user_id", WhType::Text),
            incoming("received_at", WhType::Timestamp),
            incoming("timestamp", WhType::Timestamp),
            incoming("traits", WhType::Text),
            incoming("context", WhType::Text),
            incoming("context_ip", WhType::Text),
            incoming("plan", WhType::Text),
        ];
        let names: Vec<_> = users_columns(&identifies)
            .into_iter()
            .map(|c| (c.source, c.name))
            .collect();
        let expect = [
            ("user_id", "id"),
            ("received_at", "received_at"),
            ("timestamp", "timestamp"),
            ("traits", "traits"),
            ("plan", "plan"),
        ];
        assert_eq!(
            names,
            expect.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
    }

    #[test]
    fn rejects_reserved_tables_and_missing_ids() {
        let manifest = |table: &str| LoadManifest {
            manifest_id: "m".into(),
            tables: vec![TableLoad {
                table: table.into(),
                ..TableLoad::default()
            }],
            ..LoadManifest::default()
        };
        assert!(validate_manifest(&manifest("tracks")).is_ok());
        let err = validate_manifest(&manifest("users")).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(validate_manifest(&manifest("_sluice_loads")).is_err());
        let err = require_columns("tracks", &[incoming("id", WhType::Text)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table tracks: required column received_at is missing"
        );
    }
}
