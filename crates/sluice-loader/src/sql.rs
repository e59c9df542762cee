//! The SQL text of every load step, per warehouse dialect. Everything the
//! three warehouses share is written once here; where they differ (type
//! names, casts, locking, date arithmetic) the dialect says how.

use crate::types::WhType;

/// The temporary table a file is staged into before its new rows are copied
/// to the target.
pub const STAGING: &str = "_sluice_staging";
/// The temporary table holding the latest identify per user of one load.
const LATEST_USERS: &str = "_sluice_users";
/// Every loaded manifest, written in the same transaction as its rows.
pub const LOADS_TABLE: &str = "_sluice_loads";
pub const USERS_TABLE: &str = "users";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Redshift,
    Sqlite,
}

/// A warehouse's hard limits on tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_columns: usize,
    pub max_identifier_bytes: usize,
    /// What one row's columns may take in place, where rows live in pages:
    /// PostgreSQL stores a row in one 8 KB page and moves only long text
    /// out of it, so 1,600 bigint columns cannot exist even below the
    /// column limit.
    pub max_row_bytes: Option<usize>,
}

impl Dialect {
    pub fn limits(self) -> Limits {
        match self {
            // SQLite takes up to 2,000 columns and any name, but keeps
            // PostgreSQL's limits so the embedded warehouse has the same
            // tables as the server one.
            Dialect::Postgres | Dialect::Sqlite => Limits {
                max_columns: 1600,
                max_identifier_bytes: 63,
                // 8,160 bytes of tuple, less its header and null bitmap.
                max_row_bytes: Some(7_900),
            },
            // Columnar: no page-bound row.
            Dialect::Redshift => Limits {
                max_columns: 1600,
                max_identifier_bytes: 127,
                max_row_bytes: None,
            },
        }
    }

    /// Whether a column's type can be changed in place. Redshift only
    /// resizes VARCHARs (and not inside a transaction); SQLite cannot alter a
    /// column at all. Both put conflicting values in shadow columns instead.
    pub fn can_alter_type(self) -> bool {
        self == Dialect::Postgres
    }

    pub fn type_name(self, ty: WhType) -> &'static str {
        match (self, ty) {
            (_, WhType::Boolean) => "BOOLEAN",
            (_, WhType::BigInt) => "BIGINT",
            (_, WhType::Double) => "DOUBLE PRECISION",
            // Redshift's TEXT is VARCHAR(256): too short for JSON columns.
            (Dialect::Redshift, WhType::Text) => "VARCHAR(65535)",
            (_, WhType::Text) => "TEXT",
            (_, WhType::Timestamp) => "TIMESTAMPTZ",
        }
    }

    /// `expr` (of type `from`) converted to `to`, where `from` fits in `to`.
    pub fn cast(self, expr: &str, from: WhType, to: WhType) -> String {
        match (from, to) {
            _ if from == to => expr.to_string(),
            (WhType::Boolean, WhType::Text) => {
                format!("CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END")
            }
            (WhType::Boolean, WhType::BigInt) => {
                format!("CASE WHEN {expr} THEN 1 WHEN NOT {expr} THEN 0 END")
            }
            (WhType::Boolean, WhType::Double) => {
                format!("CASE WHEN {expr} THEN 1.0 WHEN NOT {expr} THEN 0.0 END")
            }
            // SQLite keeps timestamps as ISO-8601 text already.
            (WhType::Timestamp, WhType::Text) if self == Dialect::Sqlite => expr.to_string(),
            (WhType::Timestamp, WhType::Text) => {
                let utc = match self {
                    Dialect::Postgres => format!("{expr} AT TIME ZONE 'UTC'"),
                    _ => format!("CONVERT_TIMEZONE('UTC', {expr})"),
                };
                format!("TO_CHAR({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            _ => format!("CAST({expr} AS {})", self.type_name(to)),
        }
    }

    /// A timestamp expression moved `days` into the past.
    fn minus_days(self, expr: &str, days: u32) -> String {
        match self {
            Dialect::Postgres => format!("{expr} - INTERVAL '{days} days'"),
            Dialect::Redshift => format!("DATEADD(day, -{days}, {expr})"),
            Dialect::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%fZ', {expr}, '-{days} days')"),
        }
    }

    fn now(self) -> &'static str {
        match self {
            Dialect::Postgres => "now()",
            Dialect::Redshift => "SYSDATE",
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// Whether the staging table may hold one id several times: the loader
    /// drops duplicates while staging the rows it reads itself, but Redshift
    /// stages with COPY from S3, so its SQL drops them.
    fn dedupes_in_sql(self) -> bool {
        self == Dialect::Redshift
    }
}

/// Run once per connection (PostgreSQL and Redshift).
pub fn session_setup(dialect: Dialect) -> &'static str {
    match dialect {
        // Timestamps cast to text read the same whatever the server's zone;
        // a staged file of some 100 MB stays in memory instead of spilling
        // temp-table pages to disk (the default is 8 MB).
        Dialect::Postgres => "SET TIME ZONE 'UTC'; SET temp_buffers = '256MB'",
        Dialect::Redshift | Dialect::Sqlite => "SET TIME ZONE 'UTC'",
    }
}

/// Gives the planner the staged row count, so the dedupe anti-join probes
/// the target's id index rather than scanning the whole table; PostgreSQL
/// only (temp tables are never auto-analyzed).
pub fn analyze_staging(dialect: Dialect) -> Option<String> {
    (dialect == Dialect::Postgres).then(|| format!("ANALYZE {STAGING}"))
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One incoming column and where its values go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub source: String,
    pub source_type: WhType,
    pub target: String,
    pub target_type: WhType,
}

impl Mapping {
    fn expr(&self, dialect: Dialect, alias: &str) -> String {
        let column = format!("{alias}.{}", quote(&self.source));
        dialect.cast(&column, self.source_type, self.target_type)
    }
}

fn column_defs(dialect: Dialect, columns: &[(String, WhType)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| format!("{} {}", quote(name), dialect.type_name(*ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loads table; created once, when the loader connects.
pub fn create_loads_table(dialect: Dialect) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (manifest_id {text} PRIMARY KEY, \
         source_key {text}, loaded_at {ts} NOT NULL, tables {text} NOT NULL)",
        text = dialect.type_name(WhType::Text),
        ts = dialect.type_name(WhType::Timestamp),
    )
}

pub fn manifest_loaded() -> String {
    format!("SELECT 1 FROM {LOADS_TABLE} WHERE manifest_id = $1")
}

/// Parameters: manifest id, source key, the tables as JSON.
pub fn record_load(dialect: Dialect) -> String {
    format!(
        "INSERT INTO {LOADS_TABLE} (manifest_id, source_key, loaded_at, tables) \
         VALUES ($1, $2, {}, $3)",
        dialect.now()
    )
}

/// The statements that serialise loads of these tables (and their DDL)
/// until the transaction ends. SQLite needs none: `BEGIN IMMEDIATE` already
/// makes its one writer wait.
pub fn lock_tables(dialect: Dialect, tables: &[&str]) -> Vec<String> {
    match dialect {
        Dialect::Postgres => tables
            .iter()
            .map(|t| format!("SELECT pg_advisory_xact_lock(hashtext({}))", literal(t)))
            .collect(),
        // Redshift has no advisory locks; every loader locks the loads table
        // instead, which serialises Redshift loads as a whole (Redshift runs
        // concurrent writes to one table one after the other anyway).
        Dialect::Redshift => vec![format!("LOCK {LOADS_TABLE}")],
        Dialect::Sqlite => Vec::new(),
    }
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Columns of a table in the current schema, as (name, declared type);
/// none when the table does not exist. Parameter: the table name.
pub fn describe_table() -> &'static str {
    "SELECT column_name::text, data_type::text FROM information_schema.columns \
     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
}

/// A new table, and what makes the dedupe lookup by `id` fast.
pub fn create_table(dialect: Dialect, table: &str, columns: &[(String, WhType)]) -> Vec<String> {
    let defs = column_defs(dialect, columns);
    let t = quote(table);
    match dialect {
        Dialect::Postgres => vec![
            format!("CREATE TABLE {t} ({defs})"),
            // Unnamed, so PostgreSQL picks a name that fits 63 bytes.
            format!("CREATE INDEX ON {t} (\"id\")"),
        ],
        // No indexes on Redshift: sorting by received_at lets the dedupe
        // window skip old blocks.
        Dialect::Redshift => vec![format!(
            "CREATE TABLE {t} ({defs}) DISTKEY(\"id\") SORTKEY(\"received_at\")"
        )],
        Dialect::Sqlite => vec![
            format!("CREATE TABLE {t} ({defs})"),
            format!(
                "CREATE INDEX {} ON {t} (\"id\")",
                quote(&format!("{table}__id"))
            ),
        ],
    }
}

pub fn add_column(dialect: Dialect, table: &str, column: &str, ty: WhType) -> String {
    // The loader holds the table's lock, so the column is known to be
    // missing; PostgreSQL still says IF NOT EXISTS against hand-made races.
    let if_not_exists = if dialect == Dialect::Postgres {
        "IF NOT EXISTS "
    } else {
        ""
    };
    format!(
        "ALTER TABLE {} ADD COLUMN {if_not_exists}{} {}",
        quote(table),
        quote(column),
        dialect.type_name(ty)
    )
}

/// PostgreSQL only (see [`Dialect::can_alter_type`]).
pub fn widen_column(
    dialect: Dialect,
    table: &str,
    column: &str,
    from: WhType,
    to: WhType,
) -> String {
    let c = quote(column);
    format!(
        "ALTER TABLE {} ALTER COLUMN {c} TYPE {} USING {}",
        quote(table),
        dialect.type_name(to),
        dialect.cast(&c, from, to)
    )
}

/// The staging table, with the file's columns in the file's order (Redshift
/// matches Parquet columns by position).
pub fn create_staging(dialect: Dialect, columns: &[(String, WhType)]) -> String {
    format!(
        "CREATE TEMP TABLE {STAGING} ({})",
        column_defs(dialect, columns)
    )
}

pub fn drop_staging() -> String {
    format!("DROP TABLE {STAGING}")
}

/// Redshift's bulk load of one Parquet file into the staging table.
pub fn copy_from_s3(uri: &str, iam_role: &str) -> String {
    format!(
        "COPY {STAGING} FROM {} IAM_ROLE {} FORMAT AS PARQUET",
        literal(uri),
        literal(iam_role)
    )
}

/// PostgreSQL's bulk load of `table` (the staging table, or the target
/// itself) from the loader.
pub fn copy_binary<'a>(table: &str, columns: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = columns.into_iter().map(quote).collect();
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        quote(table),
        names.join(", ")
    )
}

/// The staging table with one row per id (the earliest received) where
/// the staging step did not already ensure it.
fn staged_rows(dialect: Dialect) -> String {
    if dialect.dedupes_in_sql() {
        format!(
            "(SELECT *, ROW_NUMBER() OVER (PARTITION BY \"id\" ORDER BY \"received_at\") \
             AS _sluice_rn FROM {STAGING}) AS s WHERE s._sluice_rn = 1 AND"
        )
    } else {
        format!("{STAGING} AS s WHERE")
    }
}

/// Copies the staged rows whose id the table does not already hold from
/// the last `window_days` (counted back from each row's received_at).
pub fn insert_new_rows(
    dialect: Dialect,
    table: &str,
    mappings: &[Mapping],
    window_days: u32,
) -> String {
    let t = quote(table);
    let targets: Vec<String> = mappings.iter().map(|m| quote(&m.target)).collect();
    let exprs: Vec<String> = mappings.iter().map(|m| m.expr(dialect, "s")).collect();
    format!(
        "INSERT INTO {t} ({}) SELECT {} FROM {} NOT {}",
        targets.join(", "),
        exprs.join(", "),
        staged_rows(dialect),
        loaded_within(dialect, table, window_days),
    )
}

/// Whether `table` already holds row `s` (its id, from the last
/// `window_days` counted back from `s`'s received_at).
fn loaded_within(dialect: Dialect, table: &str, window_days: u32) -> String {
    format!(
        "EXISTS (SELECT 1 FROM {} AS t WHERE t.\"id\" = s.\"id\" AND t.\"received_at\" >= {})",
        quote(table),
        dialect.minus_days("s.\"received_at\"", window_days),
    )
}

/// Which of a file's rows `table` already holds, by the same rule as
/// [`insert_new_rows`], for loads that copy straight into the table
/// (PostgreSQL). Parameters: the rows' ids (`text[]`) and received_at in
/// microseconds since the Unix epoch (`int8[]`); returns the ids.
pub fn loaded_ids(table: &str, window_days: u32) -> String {
    format!(
        "SELECT s.\"id\" FROM (SELECT u.id AS \"id\", \
         TIMESTAMPTZ 'epoch' + u.us * INTERVAL '1 microsecond' AS \"received_at\" \
         FROM unnest($1::text[], $2::int8[]) AS u(id, us)) AS s WHERE {}",
        loaded_within(Dialect::Postgres, table, window_days)
    )
}

/// Upserts the latest traits of each user in the staged identifies into
/// `users`: a trait missing from the latest identify keeps its old value,
/// and an identify older than the stored one changes nothing. UPDATE then
/// INSERT, rather than ON CONFLICT or MERGE, so all three warehouses run
/// the same statements.
pub fn upsert_users(dialect: Dialect, mappings: &[Mapping]) -> Vec<String> {
    let u = quote(USERS_TABLE);
    let latest: Vec<String> = mappings
        .iter()
        .map(|m| format!("{} AS {}", m.expr(dialect, "s"), quote(&m.target)))
        .collect();
    let targets: Vec<String> = mappings.iter().map(|m| quote(&m.target)).collect();
    let updates: Vec<String> = targets
        .iter()
        .filter(|c| *c != "\"id\"")
        .map(|c| format!("{c} = COALESCE(l.{c}, {u}.{c})"))
        .collect();
    let from_latest: Vec<String> = targets.iter().map(|c| format!("l.{c}")).collect();
    vec![
        format!(
            "CREATE TEMP TABLE {LATEST_USERS} AS SELECT {} FROM (SELECT *, ROW_NUMBER() OVER \
             (PARTITION BY \"user_id\" ORDER BY \"timestamp\" DESC, \"received_at\" DESC) AS \
             _sluice_rn FROM {STAGING} WHERE \"user_id\" IS NOT NULL) AS s WHERE s._sluice_rn = 1",
            latest.join(", ")
        ),
        format!(
            "UPDATE {u} SET {} FROM {LATEST_USERS} AS l WHERE {u}.\"id\" = l.\"id\" \
             AND l.\"timestamp\" >= {u}.\"timestamp\"",
            updates.join(", ")
        ),
        format!(
            "INSERT INTO {u} ({}) SELECT {} FROM {LATEST_USERS} AS l \
             WHERE NOT EXISTS (SELECT 1 FROM {u} AS e WHERE e.\"id\" = l.\"id\")",
            targets.join(", "),
            from_latest.join(", ")
        ),
        format!("DROP TABLE {LATEST_USERS}"),
    ]
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
