use super::*;

fn incoming(name: &str, ty: WhType) -> Incoming {
    Incoming {
        source: name.into(),
        name: name.into(),
        ty,
    }
}

fn base() -> Vec<Incoming> {
    vec![
        incoming("id", WhType::Text),
        incoming("received_at", WhType::Timestamp),
        incoming("properties", WhType::Text),
    ]
}

fn existing(columns: &[(&str, WhType)]) -> Vec<(String, Option<WhType>)> {
    columns
        .iter()
        .map(|(n, t)| (n.to_string(), Some(*t)))
        .collect()
}

#[test]
fn new_table_is_one_create() {
    let plan = plan_table(Dialect::Postgres, "signed_up", &[], &base());
    assert_eq!(plan.ddl.len(), 2, "{:?}", plan.ddl);
    assert!(plan.ddl[0].starts_with("CREATE TABLE \"signed_up\" (\"id\" TEXT"));
    assert_eq!(
        plan.report.changes,
        vec![SchemaChange {
            kind: ChangeKind::CreateTable,
            column: String::new()
        }]
    );
    assert_eq!(plan.mappings.len(), 3);
}

#[test]
fn new_property_adds_a_column() {
    let mut columns = base();
    columns.push(incoming("plan", WhType::Text));
    let current = existing(&[
        ("id", WhType::Text),
        ("received_at", WhType::Timestamp),
        ("properties", WhType::Text),
    ]);
    let plan = plan_table(Dialect::Sqlite, "t", &current, &columns);
    assert_eq!(
        plan.ddl,
        vec!["ALTER TABLE \"t\" ADD COLUMN \"plan\" TEXT".to_string()]
    );
    assert_eq!(plan.report.changes[0].kind, ChangeKind::AddColumn);
}

#[test]
fn conflicts_convert_widen_or_shadow_by_dialect() {
    let current = existing(&[
        ("id", WhType::Text),
        ("amount", WhType::BigInt),
        ("label", WhType::Text),
    ]);
    let columns = [
        incoming("id", WhType::Text),
        incoming("amount", WhType::Double),
        incoming("label", WhType::BigInt),
    ];

    let pg = plan_table(Dialect::Postgres, "t", &current, &columns);
    assert_eq!(pg.widens.len(), 1);
    assert!(pg.widens[0].sql.contains("TYPE DOUBLE PRECISION"));
    // An int into a text column is converted, not widened.
    assert_eq!(pg.report.conflicts[0].resolution, Resolution::Converted);
    assert_eq!(pg.report.conflicts[0].column, "label");

    let mut sqlite = plan_table(Dialect::Sqlite, "t", &current, &columns);
    assert!(sqlite.widens.is_empty() && sqlite.ddl.is_empty());
    assert_eq!(
        sqlite.shadow_ddl,
        vec!["ALTER TABLE \"t\" ADD COLUMN \"amount__double\" DOUBLE PRECISION".to_string()]
    );
    let shadowed = sqlite
        .mappings
        .iter()
        .find(|m| m.source == "amount")
        .unwrap();
    assert_eq!(shadowed.target, "amount__double");
    sqlite
        .report
        .conflicts
        .sort_by(|a, b| a.column.cmp(&b.column));
    assert_eq!(sqlite.report.conflicts[0].resolution, Resolution::Shadowed);

    // The next string finds the shadow for its own type.
    let mut current = current;
    current.push(("amount__text".into(), Some(WhType::Text)));
    let again = plan_table(
        Dialect::Sqlite,
        "t",
        &current,
        &[incoming("amount", WhType::Text)],
    );
    assert!(again.ddl.is_empty());
    assert_eq!(again.mappings[0].target, "amount__text");
}

#[test]
fn refused_widen_falls_back_to_a_shadow() {
    let current = existing(&[("id", WhType::Text), ("n", WhType::BigInt)]);
    let mut plan = plan_table(
        Dialect::Postgres,
        "t",
        &current,
        &[incoming("n", WhType::Timestamp)],
    );
    let widen = plan.widens.pop().unwrap();
    plan.not_widened(widen);
    assert_eq!(
        plan.shadow_ddl,
        vec!["ALTER TABLE \"t\" ADD COLUMN IF NOT EXISTS \"n__timestamp\" TIMESTAMPTZ".to_string()]
    );
    assert_eq!(plan.mappings[0].target, "n__timestamp");
}

#[test]
fn columns_over_the_limit_spill_but_base_columns_stay() {
    let mut columns: Vec<Incoming> = (0..2000)
        .map(|i| incoming(&format!("p{i}"), WhType::BigInt))
        .collect();
    columns.extend(base());
    columns.push(incoming(&"x".repeat(64), WhType::Text));

    // Redshift is columnar: only the column count binds.
    let plan = plan_table(Dialect::Redshift, "wide", &[], &columns);
    assert_eq!(plan.mappings.len(), 1600);
    assert!(plan.mappings.iter().any(|m| m.target == "properties"));
    assert_eq!(plan.report.spilled.len(), 2004 - 1600);

    // PostgreSQL's rows live in 8 KB pages: fewer bigint columns fit.
    let plan = plan_table(Dialect::Postgres, "wide", &[], &columns);
    assert!(plan.mappings.iter().any(|m| m.target == "properties"));
    let kept = plan.mappings.len();
    assert!((900..1000).contains(&kept), "{kept}");
    assert_eq!(plan.report.spilled.len(), 2004 - kept);
    assert!(
        plan.report
            .spilled
            .iter()
            .any(|s| s.cause == SpillCause::IdentifierTooLong)
    );
    assert!(
        plan.report
            .spilled
            .iter()
            .any(|s| s.cause == SpillCause::RowWidth)
    );
}

#[test]
fn shadow_names_fit_the_identifier_limit() {
    let long = "a".repeat(63);
    let name = shadow_name(&long, WhType::Timestamp, 63);
    assert_eq!(name.len(), 63);
    assert!(name.ends_with("__timestamp"));
    assert_ne!(
        name,
        shadow_name(&format!("{}b", "a".repeat(62)), WhType::Timestamp, 63)
    );
    assert_eq!(shadow_name("amount", WhType::Text, 63), "amount__text");
}
