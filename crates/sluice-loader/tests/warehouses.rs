//! Every load guarantee, against a real PostgreSQL and a real SQLite file.

mod common;

use common::harness::{Harness, Kind, load_with};
use common::{DAY, HOUR, Prop, T0, identify, manifest, text, track};
use sluice_loader::{LoadOutcome, Resolution, SpillCause, TableReport};

/// Runs one scenario against each warehouse.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
    };
}

on_both!(
    new_event_makes_a_table,
    new_property_makes_a_column,
    type_changes_never_fail_and_keep_every_value,
    same_manifest_three_times_loads_once,
    same_id_in_two_manifests_loads_once,
    concurrent_loaders_stay_consistent,
    two_thousand_properties_spill_without_crashing,
    users_keep_the_latest_traits,
);

fn reports(outcome: LoadOutcome) -> Vec<TableReport> {
    match outcome {
        LoadOutcome::Loaded(reports) => reports,
        LoadOutcome::AlreadyLoaded => panic!("expected a load"),
    }
}

fn report<'a>(reports: &'a [TableReport], table: &str) -> &'a TableReport {
    reports.iter().find(|r| r.table == table).unwrap()
}

async fn new_event_makes_a_table(kind: Kind) {
    let h = Harness::new(kind).await;
    let m = manifest(
        &*h.objects,
        "raw/m1",
        &[
            (
                "tracks",
                vec![
                    track("e1", "signed_up", T0, &[]),
                    track("e2", "signed_up", T0, &[]),
                ],
            ),
            (
                "signed_up",
                vec![
                    track("e1", "signed_up", T0, &[("plan", text("pro"))]),
                    track("e2", "signed_up", T0, &[("plan", text("free"))]),
                ],
            ),
        ],
    )
    .await;
    let loaded = reports(h.load(&m).await);
    assert_eq!(report(&loaded, "signed_up").rows_loaded, 2);
    assert_eq!(h.count("tracks").await, 2);
    assert_eq!(h.count("signed_up").await, 2);
    let columns = h.columns("signed_up").await;
    assert!(
        columns.iter().any(|(n, t)| n == "plan" && t == "text"),
        "{columns:?}"
    );
    assert!(columns.iter().any(|(n, _)| n == "context_library_name"));
    assert_eq!(
        h.scalar("SELECT plan FROM signed_up WHERE id = 'e1'")
            .await
            .as_deref(),
        Some("pro")
    );
    assert_eq!(h.count("_sluice_loads").await, 1);
}

async fn new_property_makes_a_column(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = manifest(
        &*h.objects,
        "raw/m1",
        &[(
            "clicked",
            vec![track("e1", "clicked", T0, &[("a", Prop::Int(1))])],
        )],
    )
    .await;
    h.load(&first).await;
    let second = manifest(
        &*h.objects,
        "raw/m2",
        &[(
            "clicked",
            vec![track(
                "e2",
                "clicked",
                T0,
                &[("a", Prop::Int(2)), ("b", text("x"))],
            )],
        )],
    )
    .await;
    let loaded = reports(h.load(&second).await);
    let changes = &report(&loaded, "clicked").changes;
    assert!(changes.iter().any(|c| c.column == "b"), "{changes:?}");
    let rows = h
        .query("SELECT id, CAST(a AS TEXT), b FROM clicked ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            vec![Some("e1".into()), Some("1".into()), None],
            vec![Some("e2".into()), Some("2".into()), Some("x".into())],
        ]
    );
}

async fn type_changes_never_fail_and_keep_every_value(kind: Kind) {
    let h = Harness::new(kind).await;
    let amounts = [
        ("e1", Prop::Int(1)),
        ("e2", Prop::Float(2.5)),
        ("e3", text("abc")),
        ("e4", Prop::Int(4)),
    ];
    let mut conflicts = Vec::new();
    for (i, (id, amount)) in amounts.iter().enumerate() {
        let m = manifest(
            &*h.objects,
            &format!("raw/m{i}"),
            &[(
                "paid",
                vec![track(id, "paid", T0, &[("amount", amount.clone())])],
            )],
        )
        .await;
        conflicts.extend(report(&reports(h.load(&m).await), "paid").conflicts.clone());
    }
    assert_eq!(h.count("paid").await, 4);
    // Every value is in its typed column, whatever the warehouse did.
    let values = match kind {
        Kind::Postgres => {
            assert_eq!(
                conflicts
                    .iter()
                    .filter(|c| c.resolution == Resolution::Widened)
                    .count(),
                2
            );
            h.query("SELECT amount FROM paid ORDER BY id").await
        }
        Kind::Sqlite => {
            assert_eq!(
                conflicts
                    .iter()
                    .filter(|c| c.resolution == Resolution::Shadowed)
                    .count(),
                2
            );
            let columns = h.columns("paid").await;
            assert!(
                columns.contains(&("amount__double".into(), "double precision".into())),
                "{columns:?}"
            );
            assert!(columns.contains(&("amount__text".into(), "text".into())));
            h.query(
                "SELECT COALESCE(CAST(amount AS TEXT), CAST(amount__double AS TEXT), amount__text) \
                 FROM paid ORDER BY id",
            )
            .await
        }
    };
    let values: Vec<String> = values.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(values, ["1", "2.5", "abc", "4"]);
    // And the original JSON is kept in any case.
    assert_eq!(
        h.scalar("SELECT properties FROM paid WHERE id = 'e3'")
            .await
            .as_deref(),
        Some(r#"{"amount":"abc"}"#)
    );
}

async fn same_manifest_three_times_loads_once(kind: Kind) {
    let h = Harness::new(kind).await;
    let m = manifest(
        &*h.objects,
        "raw/once",
        &[(
            "tracks",
            vec![track("e1", "x", T0, &[]), track("e2", "x", T0, &[])],
        )],
    )
    .await;
    assert!(matches!(h.load(&m).await, LoadOutcome::Loaded(_)));
    assert_eq!(h.load(&m).await, LoadOutcome::AlreadyLoaded);
    assert_eq!(h.load(&m).await, LoadOutcome::AlreadyLoaded);
    assert_eq!(h.count("tracks").await, 2);
    assert_eq!(
        h.scalar("SELECT tables FROM _sluice_loads WHERE manifest_id = 'raw/once'")
            .await
            .as_deref(),
        Some(r#"[{"loaded":2,"rows":2,"table":"tracks"}]"#)
    );
}

async fn same_id_in_two_manifests_loads_once(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = manifest(
        &*h.objects,
        "raw/a",
        &[(
            "tracks",
            vec![track("e1", "x", T0, &[]), track("e2", "x", T0, &[])],
        )],
    )
    .await;
    let second = manifest(
        &*h.objects,
        "raw/b",
        &[(
            "tracks",
            vec![
                track("e2", "x", T0 + HOUR, &[]),
                track("e3", "x", T0, &[]),
                // Twice in one file.
                track("e4", "x", T0, &[]),
                track("e4", "x", T0, &[]),
            ],
        )],
    )
    .await;
    h.load(&first).await;
    let loaded = reports(h.load(&second).await);
    assert_eq!(report(&loaded, "tracks").rows_loaded, 2);
    assert_eq!(h.count("tracks").await, 4);
    // Outside the dedupe window an id counts as new.
    let late = manifest(
        &*h.objects,
        "raw/c",
        &[("tracks", vec![track("e1", "x", T0 + 8 * DAY, &[])])],
    )
    .await;
    assert_eq!(
        report(&reports(h.load(&late).await), "tracks").rows_loaded,
        1
    );
}

async fn concurrent_loaders_stay_consistent(kind: Kind) {
    let h = Harness::new(kind).await;
    let (a, b) = (h.connect().await, h.connect().await);
    let mut manifests = Vec::new();
    for i in 0..8 {
        // Overlapping ids, and a new property (a migration) per manifest.
        let rows = (0..20)
            .map(|j| {
                let id = format!("e{}", i * 10 + j);
                track(
                    &id,
                    "x",
                    T0,
                    &[(&format!("p{i}"), Prop::Int(j)), ("shared", Prop::Int(i))],
                )
            })
            .collect();
        manifests.push(manifest(&*h.objects, &format!("raw/c{i}"), &[("tracks", rows)]).await);
    }
    let run = |warehouse: std::sync::Arc<dyn sluice_loader::Warehouse>, order: Vec<usize>| {
        let (objects, manifests) = (h.objects.clone(), manifests.clone());
        tokio::spawn(async move {
            let mut loaded = Vec::new();
            for i in order {
                if let LoadOutcome::Loaded(_) =
                    load_with(&*warehouse, &*objects, &manifests[i]).await
                {
                    loaded.push(i);
                }
            }
            loaded
        })
    };
    let forward = run(a, (0..8).collect());
    let backward = run(b, (0..8).rev().collect());
    let (mut loaded, other) = (forward.await.unwrap(), backward.await.unwrap());
    loaded.extend(other);
    loaded.sort_unstable();
    assert_eq!(
        loaded,
        (0..8).collect::<Vec<_>>(),
        "each manifest loaded exactly once"
    );
    assert_eq!(h.count("tracks").await, 90); // ids e0..e89
    assert_eq!(
        h.scalar("SELECT count(DISTINCT id) FROM tracks")
            .await
            .as_deref(),
        Some("90")
    );
    assert_eq!(h.count("_sluice_loads").await, 8);
    let columns = h.columns("tracks").await;
    assert!((0..8).all(|i| columns.iter().any(|(n, _)| *n == format!("p{i}"))));
}

async fn two_thousand_properties_spill_without_crashing(kind: Kind) {
    let h = Harness::new(kind).await;
    let names: Vec<String> = (0..2000).map(|i| format!("prop_{i:04}")).collect();
    let props: Vec<(&str, Prop)> = names.iter().map(|n| (n.as_str(), Prop::Int(7))).collect();
    let m = manifest(
        &*h.objects,
        "raw/wide",
        &[("wide_event", vec![track("e1", "wide_event", T0, &props)])],
    )
    .await;
    let loaded = reports(h.load(&m).await);
    let wide = report(&loaded, "wide_event");
    assert_eq!(wide.rows_loaded, 1);
    // Each warehouse keeps what fits (PostgreSQL: the 1,600-column limit
    // and the 8 KB row) and spills the rest.
    let columns = h.columns("wide_event").await;
    assert!(
        columns.len() > 900 && columns.len() <= 1600,
        "{}",
        columns.len()
    );
    assert_eq!(wide.spilled.len(), 2000 + 11 - columns.len());
    assert!(
        wide.spilled
            .iter()
            .all(|s| matches!(s.cause, SpillCause::ColumnLimit | SpillCause::RowWidth))
    );
    // The spilled values are still in the JSON column.
    let properties = h.scalar("SELECT properties FROM wide_event").await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&properties).unwrap();
    assert_eq!(json["prop_1999"], 7);
    // A second load of the same shape spills again, still without failing.
    let again = manifest(
        &*h.objects,
        "raw/wide2",
        &[("wide_event", vec![track("e2", "wide_event", T0, &props)])],
    )
    .await;
    assert_eq!(
        report(&reports(h.load(&again).await), "wide_event").rows_loaded,
        1
    );
}

async fn users_keep_the_latest_traits(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = manifest(
        &*h.objects,
        "raw/i1",
        &[(
            "identifies",
            vec![
                identify(
                    "i1",
                    "u1",
                    T0,
                    &[("plan", text("free")), ("email", text("a@x.io"))],
                ),
                identify("i2", "u2", T0, &[("plan", text("free"))]),
                identify("i3", "u2", T0 + HOUR, &[("plan", text("team"))]),
            ],
        )],
    )
    .await;
    h.load(&first).await;
    let second = manifest(
        &*h.objects,
        "raw/i2",
        &[(
            "identifies",
            vec![
                identify("i4", "u1", T0 + 2 * HOUR, &[("plan", text("pro"))]),
                // Older than what users holds for u2: changes nothing.
                identify("i5", "u2", T0 - HOUR, &[("plan", text("trial"))]),
            ],
        )],
    )
    .await;
    let loaded = reports(h.load(&second).await);
    assert!(loaded.iter().any(|r| r.table == "users"));
    let users = h
        .query("SELECT id, plan, email FROM users ORDER BY id")
        .await;
    assert_eq!(
        users,
        vec![
            vec![Some("u1".into()), Some("pro".into()), Some("a@x.io".into())],
            vec![Some("u2".into()), Some("team".into()), None],
        ]
    );
    assert_eq!(h.count("identifies").await, 5);
}
