//! `sluice sql`: one query on the warehouse, printed as a table or as CSV.
//! The embedded warehouse is opened read-only, so it works while `sluice up`
//! writes to it (SQLite's WAL lets readers and the writer proceed at once).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sluice_loader::{WarehouseConfig, WarehouseKind};

/// Longest cell shown in table output; `--csv` prints everything.
const MAX_CELL_CHARS: usize = 60;

#[derive(Args)]
pub struct SqlArgs {
    /// Print CSV (a header line, then one line per row) instead of a table.
    #[arg(long)]
    csv: bool,
    /// The query, e.g. "SELECT event, count(*) FROM tracks GROUP BY 1".
    query: String,
}

/// A query's result: column names, then rows of text (`None` for NULL).
#[derive(Debug, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

pub async fn run(warehouse: &WarehouseConfig, args: SqlArgs) -> anyhow::Result<()> {
    let result = match warehouse.kind {
        WarehouseKind::Sqlite => {
            let path = warehouse
                .path
                .clone()
                .context("warehouse.path is required for kind = \"sqlite\"")?;
            tokio::task::spawn_blocking(move || query_sqlite(&path, &args.query)).await??
        }
        WarehouseKind::Postgres | WarehouseKind::Redshift => {
            let url = warehouse.url.as_deref().with_context(|| {
                format!(
                    "warehouse.url is required for kind = \"{}\"",
                    warehouse.kind.name()
                )
            })?;
            query_postgres(url, &args.query).await?
        }
    };
    let out = match args.csv {
        true => to_csv(&result),
        false => to_table(&result),
    };
    print!("{out}");
    Ok(())
}

fn query_sqlite(path: &Path, query: &str) -> anyhow::Result<ResultSet> {
    if !path.exists() {
        anyhow::bail!(
            "no warehouse at {}: start `sluice up` on that data directory (or pass --data-dir)",
            path.display()
        );
    }
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    // The loader holds the write lock only briefly; wait for it rather than
    // failing with "database is locked".
    connection.busy_timeout(Duration::from_secs(10))?;
    let mut statement = connection.prepare(query)?;
    let columns: Vec<String> = statement.column_names().map(String::from).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = statement.query([])?;
    while let Some(row) = cursor.next()? {
        let cells = (0..width)
            .map(|i| Ok(sqlite_text(row.get_ref(i)?)))
            .collect::<rusqlite::Result<_>>()?;
        rows.push(cells);
    }
    Ok(ResultSet { columns, rows })
}

fn sqlite_text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(format!("<{} bytes>", b.len())),
    }
}

async fn query_postgres(url: &str, query: &str) -> anyhow::Result<ResultSet> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the warehouse (warehouse.url)")?;
    tokio::spawn(connection);
    let mut result = ResultSet::default();
    // The simple protocol returns every value as text, whatever its type.
    for message in client.simple_query(query).await? {
        match message {
            tokio_postgres::SimpleQueryMessage::RowDescription(columns) => {
                result.columns = columns.iter().map(|c| c.name().to_string()).collect();
            }
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                let cells = (0..row.len())
                    .map(|i| row.get(i).map(String::from))
                    .collect();
                result.rows.push(cells);
            }
            _ => {}
        }
    }
    Ok(result)
}

fn to_csv(result: &ResultSet) -> String {
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let fields: Vec<String> = cells.map(csv_field).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    line(&mut result.columns.iter().map(String::as_str));
    for row in &result.rows {
        line(&mut row.iter().map(|c| c.as_deref().unwrap_or("")));
    }
    out
}

/// RFC 4180: quoted when it holds a comma, quote or line break.
fn csv_field(value: &str) -> String {
    match value.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", value.replace('"', "\"\"")),
        false => value.to_string(),
    }
}

fn to_table(result: &ResultSet) -> String {
    let shown: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| shorten(c.as_deref().unwrap_or("")))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &shown {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        format!(" {}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&result.columns);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
    out.push_str(&rule.join("+"));
    out.push('\n');
    for row in &shown {
        out.push_str(&line(row));
    }
    let n = shown.len();
    out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
    out
}

/// One line, at most [`MAX_CELL_CHARS`], so a JSON column does not wreck
/// the table.
fn shorten(value: &str) -> String {
    let one_line = value.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(MAX_CELL_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResultSet {
        ResultSet {
            columns: vec!["event".into(), "n".into()],
            rows: vec![
                vec![Some("Signed Up".into()), Some("3".into())],
                vec![Some("say \"hi\", then\nleave".into()), None],
            ],
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(
            to_csv(&sample()),
            "event,n\nSigned Up,3\n\"say \"\"hi\"\", then\nleave\",\n"
        );
    }

    #[test]
    fn table_aligns_columns_and_counts_rows() {
        let table = to_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], " event                | n");
        assert_eq!(lines[1], "----------------------+---");
        assert_eq!(lines[2], " Signed Up            | 3");
        assert_eq!(lines[3], " say \"hi\", then leave |");
        assert_eq!(lines[4], "(2 rows)");
    }

    #[test]
    fn long_cells_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn reads_sqlite_and_names_a_missing_warehouse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warehouse.db");
        let missing = query_sqlite(&path, "SELECT 1").unwrap_err().to_string();
        assert!(missing.contains("no warehouse at") && missing.contains("warehouse.db"));
        let db = Connection::open(&path).unwrap();
        db.execute_batch("CREATE TABLE t(a TEXT, b INTEGER, c REAL); INSERT INTO t VALUES ('x', 1, 2.5), (NULL, 2, NULL);")
            .unwrap();
        let result = query_sqlite(&path, "SELECT a, b, c FROM t ORDER BY b").unwrap();
        assert_eq!(result.columns, ["a", "b", "c"]);
        assert_eq!(
            result.rows,
            vec![
                vec![Some("x".into()), Some("1".into()), Some("2.5".into())],
                vec![None, Some("2".into()), None],
            ]
        );
        let bad = query_sqlite(&path, "SELECT nope FROM t")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("nope"), "{bad}");
    }
}
