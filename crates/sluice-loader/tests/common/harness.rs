//! One warehouse under test, PostgreSQL or SQLite, with a way to query it.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_backends::ObjectStore;
use sluice_events::proto::LoadManifest;
use sluice_loader::{LoadJob, LoadOutcome, PgWarehouse, SqliteWarehouse, Warehouse};
use sluice_testkit::Postgres;
use tempfile::TempDir;

use super::object_store;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

pub struct Harness {
    pub kind: Kind,
    pub warehouse: Arc<dyn Warehouse>,
    pub objects: Arc<dyn ObjectStore>,
    target: Target,
    _dir: TempDir,
}

enum Target {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Target {
    async fn connect(&self) -> Arc<dyn Warehouse> {
        match self {
            Target::Postgres(url) => Arc::new(PgWarehouse::postgres(url, 2).await.unwrap()),
            Target::Sqlite(path) => Arc::new(SqliteWarehouse::open(path).await.unwrap()),
        }
    }
}

impl Harness {
    pub async fn new(kind: Kind) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let objects = object_store(dir.path());
        let target = match kind {
            Kind::Postgres => Target::Postgres(Postgres::shared().await.fresh_database().await),
            Kind::Sqlite => Target::Sqlite(dir.path().join("warehouse.db")),
        };
        Harness {
            kind,
            warehouse: target.connect().await,
            objects,
            target,
            _dir: dir,
        }
    }

    /// A second, independent loader on the same warehouse.
    pub async fn connect(&self) -> Arc<dyn Warehouse> {
        self.target.connect().await
    }

    pub async fn load(&self, manifest: &LoadManifest) -> LoadOutcome {
        load_with(&*self.warehouse, &*self.objects, manifest).await
    }

    /// Rows as text (NULL as None), whatever the warehouse.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.target {
            Target::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .simple_query(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
            Target::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).unwrap();
                let mut statement = connection
                    .prepare(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = statement.column_count();
                statement
                    .query_map([], |row| {
                        (0..n)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    rusqlite::types::ValueRef::Null => None,
                                    rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                                    rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(_) => Some("<blob>".into()),
                                })
                            })
                            .collect()
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
        }
    }

    pub async fn scalar(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .await
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .await
            .unwrap()
            .parse()
            .unwrap()
    }

    /// (name, declared type) of a table's columns.
    pub async fn columns(&self, table: &str) -> Vec<(String, String)> {
        let sql = match self.kind {
            Kind::Postgres => format!(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
            Kind::Sqlite => format!("SELECT name, lower(type) FROM pragma_table_info('{table}')"),
        };
        self.query(&sql)
            .await
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap().to_lowercase()))
            .collect()
    }
}

pub async fn load_with(
    warehouse: &dyn Warehouse,
    objects: &dyn ObjectStore,
    manifest: &LoadManifest,
) -> LoadOutcome {
    warehouse
        .load(LoadJob {
            manifest,
            objects,
            dedupe_window_days: 7,
        })
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", manifest.manifest_id))
}
