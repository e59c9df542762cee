//! The SQL text per dialect. No Redshift is reachable from the tests, so
//! its statements are checked here as text; PostgreSQL and SQLite run them
//! for real in the integration tests.

use super::*;

fn mapping(source: &str, source_type: WhType, target: &str, target_type: WhType) -> Mapping {
    Mapping {
        source: source.into(),
        source_type,
        target: target.into(),
        target_type,
    }
}

#[test]
fn redshift_stages_from_s3_as_parquet() {
    assert_eq!(
        copy_from_s3(
            "s3://bkt/tables/tracks/dt=2024-01-01/a.parquet",
            "arn:aws:iam::1:role/load"
        ),
        "COPY _sluice_staging FROM 's3://bkt/tables/tracks/dt=2024-01-01/a.parquet' \
         IAM_ROLE 'arn:aws:iam::1:role/load' FORMAT AS PARQUET"
    );
    assert_eq!(
        create_staging(
            Dialect::Redshift,
            &[
                ("id".into(), WhType::Text),
                ("received_at".into(), WhType::Timestamp)
            ]
        ),
        "CREATE TEMP TABLE _sluice_staging (\"id\" VARCHAR(65535), \"received_at\" TIMESTAMPTZ)"
    );
}

#[test]
fn redshift_inserts_new_rows_once_per_id() {
    let mappings = [
        mapping("id", WhType::Text, "id", WhType::Text),
        mapping(
            "received_at",
            WhType::Timestamp,
            "received_at",
            WhType::Timestamp,
        ),
        mapping("amount", WhType::BigInt, "amount", WhType::Double),
    ];
    assert_eq!(
        insert_new_rows(Dialect::Redshift, "order_completed", &mappings, 7),
        "INSERT INTO \"order_completed\" (\"id\", \"received_at\", \"amount\") \
         SELECT s.\"id\", s.\"received_at\", CAST(s.\"amount\" AS DOUBLE PRECISION) \
         FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY \"id\" ORDER BY \"received_at\") \
         AS _sluice_rn FROM _sluice_staging) AS s WHERE s._sluice_rn = 1 AND NOT EXISTS \
         (SELECT 1 FROM \"order_completed\" AS t WHERE t.\"id\" = s.\"id\" AND \
         t.\"received_at\" >= DATEADD(day, -7, s.\"received_at\"))"
    );
}

#[test]
fn postgres_dedupes_against_the_window_only() {
    let mappings = [mapping("id", WhType::Text, "id", WhType::Text)];
    assert_eq!(
        insert_new_rows(Dialect::Postgres, "tracks", &mappings, 3),
        "INSERT INTO \"tracks\" (\"id\") SELECT s.\"id\" FROM _sluice_staging AS s WHERE \
         NOT EXISTS (SELECT 1 FROM \"tracks\" AS t WHERE t.\"id\" = s.\"id\" AND \
         t.\"received_at\" >= s.\"received_at\" - INTERVAL '3 days')"
    );
}

#[test]
fn redshift_schema_changes() {
    assert_eq!(
        create_table(
            Dialect::Redshift,
            "tracks",
            &[("id".into(), WhType::Text), ("n".into(), WhType::BigInt)]
        ),
        vec![
            "CREATE TABLE \"tracks\" (\"id\" VARCHAR(65535), \"n\" BIGINT) DISTKEY(\"id\") \
             SORTKEY(\"received_at\")"
                .to_string()
        ]
    );
    // No IF NOT EXISTS on Redshift; the loader holds the lock.
    assert_eq!(
        add_column(Dialect::Redshift, "tracks", "amount__text", WhType::Text),
        "ALTER TABLE \"tracks\" ADD COLUMN \"amount__text\" VARCHAR(65535)"
    );
    assert_eq!(
        add_column(Dialect::Postgres, "tracks", "a", WhType::Boolean),
        "ALTER TABLE \"tracks\" ADD COLUMN IF NOT EXISTS \"a\" BOOLEAN"
    );
    assert!(!Dialect::Redshift.can_alter_type());
    assert_eq!(Dialect::Redshift.limits().max_identifier_bytes, 127);
}

#[test]
fn locks_per_dialect() {
    assert_eq!(
        lock_tables(Dialect::Postgres, &["a'b", "tracks"]),
        vec![
            "SELECT pg_advisory_xact_lock(hashtext('a''b'))".to_string(),
            "SELECT pg_advisory_xact_lock(hashtext('tracks'))".to_string(),
        ]
    );
    assert_eq!(
        lock_tables(Dialect::Redshift, &["tracks"]),
        vec!["LOCK _sluice_loads".to_string()]
    );
    assert!(lock_tables(Dialect::Sqlite, &["tracks"]).is_empty());
    assert_eq!(
        record_load(Dialect::Redshift),
        "INSERT INTO _sluice_loads (manifest_id, source_key, loaded_at, tables) VALUES ($1, $2, SYSDATE, $3)"
    );
}

#[test]
fn casts_follow_the_lattice() {
    let d = Dialect::Redshift;
    assert_eq!(
        d.cast("x", WhType::BigInt, WhType::Text),
        "CAST(x AS VARCHAR(65535))"
    );
    assert_eq!(
        d.cast("x", WhType::Boolean, WhType::Text),
        "CASE WHEN x THEN 'true' WHEN NOT x THEN 'false' END"
    );
    assert_eq!(
        d.cast("x", WhType::Timestamp, WhType::Text),
        "TO_CHAR(CONVERT_TIMEZONE('UTC', x), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    );
    assert_eq!(
        Dialect::Sqlite.cast("x", WhType::Timestamp, WhType::Text),
        "x"
    );
    assert_eq!(
        widen_column(Dialect::Postgres, "t", "n", WhType::BigInt, WhType::Double),
        "ALTER TABLE \"t\" ALTER COLUMN \"n\" TYPE DOUBLE PRECISION USING CAST(\"n\" AS DOUBLE PRECISION)"
    );
}

#[test]
fn redshift_upserts_users_without_on_conflict() {
    let mappings = [
        mapping("user_id", WhType::Text, "id", WhType::Text),
        mapping(
            "timestamp",
            WhType::Timestamp,
            "timestamp",
            WhType::Timestamp,
        ),
        mapping("plan", WhType::Text, "plan", WhType::Text),
    ];
    let statements = upsert_users(Dialect::Redshift, &mappings);
    assert_eq!(statements.len(), 4);
    assert_eq!(
        statements[0],
        "CREATE TEMP TABLE _sluice_users AS SELECT s.\"user_id\" AS \"id\", s.\"timestamp\" AS \
         \"timestamp\", s.\"plan\" AS \"plan\" FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY \
         \"user_id\" ORDER BY \"timestamp\" DESC, \"received_at\" DESC) AS _sluice_rn FROM \
         _sluice_staging WHERE \"user_id\" IS NOT NULL) AS s WHERE s._sluice_rn = 1"
    );
    assert_eq!(
        statements[1],
        "UPDATE \"users\" SET \"timestamp\" = COALESCE(l.\"timestamp\", \"users\".\"timestamp\"), \
         \"plan\" = COALESCE(l.\"plan\", \"users\".\"plan\") FROM _sluice_users AS l WHERE \
         \"users\".\"id\" = l.\"id\" AND l.\"timestamp\" >= \"users\".\"timestamp\""
    );
    assert_eq!(
        statements[2],
        "INSERT INTO \"users\" (\"id\", \"timestamp\", \"plan\") SELECT l.\"id\", l.\"timestamp\", \
         l.\"plan\" FROM _sluice_users AS l WHERE NOT EXISTS (SELECT 1 FROM \"users\" AS e WHERE \
         e.\"id\" = l.\"id\")"
    );
    assert_eq!(statements[3], "DROP TABLE _sluice_users");
}

#[test]
fn quotes_identifiers() {
    assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
}
