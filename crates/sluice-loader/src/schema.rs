//! Schema evolution, the same for every warehouse: which tables and columns
//! to create, which conflicts to widen, which to put in typed shadow
//! columns, and which columns cannot exist (over the column or identifier
//! limit) and stay only in the JSON columns.

use std::collections::HashMap;

use crate::sql::{self, Dialect, Mapping};
use crate::tables::is_base_column;
use crate::types::WhType;

/// A column of the file being loaded, and the column it should land in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The column in the file (and the staging table).
    pub source: String,
    /// The column in the target table.
    pub name: String,
    pub ty: WhType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    CreateTable,
    AddColumn,
    WidenColumn,
    ShadowColumn,
}

impl ChangeKind {
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::CreateTable => "create_table",
            ChangeKind::AddColumn => "add_column",
            ChangeKind::WidenColumn => "widen_column",
            ChangeKind::ShadowColumn => "shadow_column",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaChange {
    pub kind: ChangeKind,
    /// Empty for a new table.
    pub column: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The value fits the column's wider type and is converted.
    Converted,
    /// The column's type was widened in place.
    Widened,
    /// The value went to a typed shadow column.
    Shadowed,
    /// No column could take it; it stays in the JSON column.
    Spilled,
}

impl Resolution {
    pub fn label(self) -> &'static str {
        match self {
            Resolution::Converted => "converted",
            Resolution::Widened => "widened",
            Resolution::Shadowed => "shadowed",
            Resolution::Spilled => "spilled",
        }
    }
}

/// A value whose type differs from its column's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub column: String,
    /// `None` for a column of a type the loader does not create.
    pub existing: Option<WhType>,
    pub incoming: WhType,
    pub resolution: Resolution,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpillCause {
    ColumnLimit,
    IdentifierTooLong,
    /// The row would outgrow what the warehouse stores in place.
    RowWidth,
    /// A shadow column of that name exists with another type.
    ShadowTaken,
}

impl SpillCause {
    pub fn label(self) -> &'static str {
        match self {
            SpillCause::ColumnLimit => "column_limit",
            SpillCause::IdentifierTooLong => "identifier_too_long",
            SpillCause::RowWidth => "row_width",
            SpillCause::ShadowTaken => "shadow_taken",
        }
    }
}

/// A column the table cannot have; its values remain in the JSON columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spill {
    pub column: String,
    pub cause: SpillCause,
}

/// What happened to one table in one load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    /// Rows in the file (for `users`: users upserted).
    pub rows_in_file: u64,
    /// Rows inserted; the rest were already loaded.
    pub rows_loaded: u64,
    pub changes: Vec<SchemaChange>,
    pub conflicts: Vec<Conflict>,
    pub spilled: Vec<Spill>,
}

/// An in-place type change, and what to do when the warehouse refuses it
/// (a view depends on the column, say).
#[derive(Clone, Debug)]
pub struct Widen {
    pub sql: String,
    mapping: Mapping,
    existing: WhType,
    fallback: Shadow,
}

#[derive(Clone, Debug)]
enum Shadow {
    Existing(Mapping),
    New { ddl: String, mapping: Mapping },
    Spill(Spill),
}

/// The DDL and column mappings of one table's load.
#[derive(Debug)]
pub struct TablePlan {
    /// Run first, in order: a new table, or new columns.
    pub ddl: Vec<String>,
    /// Run next, each in a savepoint; report with [`TablePlan::widened`] or
    /// [`TablePlan::not_widened`].
    pub widens: Vec<Widen>,
    pub mappings: Vec<Mapping>,
    pub report: TableReport,
    /// Run after the widens: the shadow columns of conflicts that could not
    /// be widened.
    pub shadow_ddl: Vec<String>,
}

impl TablePlan {
    pub fn widened(&mut self, widen: Widen) {
        self.report.changes.push(SchemaChange {
            kind: ChangeKind::WidenColumn,
            column: widen.mapping.target.clone(),
        });
        self.report.conflicts.push(Conflict {
            column: widen.mapping.target.clone(),
            existing: Some(widen.existing),
            incoming: widen.mapping.source_type,
            resolution: Resolution::Widened,
        });
        self.mappings.push(widen.mapping);
    }

    /// Records the shadow column instead; its DDL lands in `shadow_ddl`.
    pub fn not_widened(&mut self, widen: Widen) {
        let column = widen.mapping.target.clone();
        self.shadow(
            column,
            Some(widen.existing),
            widen.mapping.source_type,
            widen.fallback,
        );
    }

    fn shadow(
        &mut self,
        column: String,
        existing: Option<WhType>,
        incoming: WhType,
        shadow: Shadow,
    ) {
        let resolution = match shadow {
            Shadow::Existing(mapping) => {
                self.mappings.push(mapping);
                Resolution::Shadowed
            }
            Shadow::New { ddl, mapping } => {
                self.shadow_ddl.push(ddl);
                self.report.changes.push(SchemaChange {
                    kind: ChangeKind::ShadowColumn,
                    column: mapping.target.clone(),
                });
                self.mappings.push(mapping);
                Resolution::Shadowed
            }
            Shadow::Spill(spill) => {
                self.report.spilled.push(spill);
                Resolution::Spilled
            }
        };
        self.report.conflicts.push(Conflict {
            column,
            existing,
            incoming,
            resolution,
        });
    }

    /// The staging table's columns: the sources that have somewhere to go,
    /// in file order.
    pub fn staged_columns(&self, incoming: &[Incoming]) -> Vec<(String, WhType)> {
        incoming
            .iter()
            .filter(|c| self.mappings.iter().any(|m| m.source == c.source))
            .map(|c| (c.source.clone(), c.ty))
            .collect()
    }
}

/// Plans loading `incoming` into `table`, whose current columns are
/// `existing` (empty when the table does not exist yet).
pub fn plan_table(
    dialect: Dialect,
    table: &str,
    existing: &[(String, Option<WhType>)],
    incoming: &[Incoming],
) -> TablePlan {
    Planner {
        dialect,
        table,
        limits: dialect.limits(),
        columns: existing.iter().cloned().collect(),
        count: existing.len(),
        width: existing.iter().map(|(_, ty)| in_row_bytes(*ty)).sum(),
        create: existing.is_empty(),
        new_columns: Vec::new(),
        plan: TablePlan {
            ddl: Vec::new(),
            widens: Vec::new(),
            mappings: Vec::new(),
            report: TableReport {
                table: table.to_string(),
                ..TableReport::default()
            },
            shadow_ddl: Vec::new(),
        },
    }
    .run(incoming)
}

struct Planner<'a> {
    dialect: Dialect,
    table: &'a str,
    limits: sql::Limits,
    columns: HashMap<String, Option<WhType>>,
    count: usize,
    /// Bytes a row of the table takes in place, at most.
    width: usize,
    create: bool,
    new_columns: Vec<(String, WhType)>,
    plan: TablePlan,
}

impl Planner<'_> {
    fn run(mut self, incoming: &[Incoming]) -> TablePlan {
        // The common columns (ids, timestamps, the JSON columns) come first,
        // so a file with more columns than the limit still keeps them.
        let mut ordered: Vec<&Incoming> = incoming.iter().collect();
        ordered.sort_by_key(|c| !is_base_column(&c.name));
        for column in ordered {
            self.column(column);
        }
        if self.create {
            self.plan.ddl = sql::create_table(self.dialect, self.table, &self.new_columns);
            self.plan
                .report
                .changes
                .retain(|c| c.kind != ChangeKind::AddColumn);
            self.plan.report.changes.insert(
                0,
                SchemaChange {
                    kind: ChangeKind::CreateTable,
                    column: String::new(),
                },
            );
        }
        self.plan
    }

    fn column(&mut self, c: &Incoming) {
        if c.name.len() > self.limits.max_identifier_bytes {
            self.plan.report.spilled.push(Spill {
                column: c.name.clone(),
                cause: SpillCause::IdentifierTooLong,
            });
            return;
        }
        let mapping = |target: &str, target_type| Mapping {
            source: c.source.clone(),
            source_type: c.ty,
            target: target.to_string(),
            target_type,
        };
        match self.columns.get(&c.name).copied() {
            None => match self.add(&c.name, c.ty) {
                Ok(ddl) => {
                    self.plan.ddl.extend(ddl);
                    self.plan.report.changes.push(SchemaChange {
                        kind: ChangeKind::AddColumn,
                        column: c.name.clone(),
                    });
                    self.plan.mappings.push(mapping(&c.name, c.ty));
                }
                Err(cause) => self.plan.report.spilled.push(Spill {
                    column: c.name.clone(),
                    cause,
                }),
            },
            Some(Some(existing)) if c.ty.fits_in(existing) => {
                if c.ty != existing {
                    self.plan.report.conflicts.push(Conflict {
                        column: c.name.clone(),
                        existing: Some(existing),
                        incoming: c.ty,
                        resolution: Resolution::Converted,
                    });
                }
                self.plan.mappings.push(mapping(&c.name, existing));
            }
            Some(Some(existing)) if self.dialect.can_alter_type() => {
                let to = existing.join(c.ty);
                let widen = Widen {
                    sql: sql::widen_column(self.dialect, self.table, &c.name, existing, to),
                    mapping: mapping(&c.name, to),
                    existing,
                    fallback: self.shadow(c),
                };
                self.plan.widens.push(widen);
            }
            Some(existing) => {
                let shadow = self.shadow(c);
                self.plan.shadow(c.name.clone(), existing, c.ty, shadow);
            }
        }
    }

    /// Claims a column slot; the DDL to add it, unless the table is at its
    /// column limit. For a new table the column joins its CREATE TABLE.
    fn add(&mut self, name: &str, ty: WhType) -> Result<Option<String>, SpillCause> {
        self.claim(name, ty)?;
        self.new_columns.push((name.to_string(), ty));
        Ok((!self.create).then(|| sql::add_column(self.dialect, self.table, name, ty)))
    }

    fn claim(&mut self, name: &str, ty: WhType) -> Result<(), SpillCause> {
        if self.count >= self.limits.max_columns {
            return Err(SpillCause::ColumnLimit);
        }
        let width = self.width + in_row_bytes(Some(ty));
        if self.limits.max_row_bytes.is_some_and(|max| width > max) {
            return Err(SpillCause::RowWidth);
        }
        self.count += 1;
        self.width = width;
        self.columns.insert(name.to_string(), Some(ty));
        Ok(())
    }

    /// Where `c`'s values go when its column cannot take them: the typed
    /// shadow column `<name>__<type>`.
    fn shadow(&mut self, c: &Incoming) -> Shadow {
        let name = shadow_name(&c.name, c.ty, self.limits.max_identifier_bytes);
        let mapping = Mapping {
            source: c.source.clone(),
            source_type: c.ty,
            target: name.clone(),
            target_type: c.ty,
        };
        match self.columns.get(&name).copied() {
            Some(Some(ty)) if c.ty.fits_in(ty) => Shadow::Existing(Mapping {
                target_type: ty,
                ..mapping
            }),
            Some(_) => Shadow::Spill(Spill {
                column: c.name.clone(),
                cause: SpillCause::ShadowTaken,
            }),
            None => match self.claim(&name, c.ty) {
                Ok(()) => Shadow::New {
                    ddl: sql::add_column(self.dialect, self.table, &name, c.ty),
                    mapping,
                },
                Err(cause) => Shadow::Spill(Spill {
                    column: c.name.clone(),
                    cause,
                }),
            },
        }
    }
}

/// The most a column takes in a row (alignment included): text longer
/// than this moves out of the row; a column of a type the loader does not
/// create counts as text.
fn in_row_bytes(ty: Option<WhType>) -> usize {
    match ty {
        Some(WhType::Boolean | WhType::BigInt | WhType::Double | WhType::Timestamp) => 8,
        Some(WhType::Text) | None => 20,
    }
}

/// `<column>__<type>`, shortened with a hash of the column name when that
/// would exceed the identifier limit, so distinct columns keep distinct
/// shadows.
pub fn shadow_name(column: &str, ty: WhType, max_bytes: usize) -> String {
    let suffix = format!("__{}", ty.suffix());
    if column.len() + suffix.len() <= max_bytes {
        return format!("{column}{suffix}");
    }
    let hash = format!("_{:08x}", fnv1a(column));
    let mut keep = max_bytes - suffix.len() - hash.len();
    while !column.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{hash}{suffix}", &column[..keep])
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
