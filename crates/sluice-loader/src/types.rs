//! The warehouse's column types and the lattice that resolves conflicts
//! between them: boolean < bigint < double precision < text, with timestamps
//! joining anything but themselves at text.

use sluice_events::proto::ColumnType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WhType {
    Boolean,
    BigInt,
    Double,
    Text,
    Timestamp,
}

impl WhType {
    /// The smallest type both values fit in without losing anything.
    pub fn join(self, other: WhType) -> WhType {
        match (self.rank(), other.rank()) {
            _ if self == other => self,
            (Some(a), Some(b)) => {
                if a >= b {
                    self
                } else {
                    other
                }
            }
            // A timestamp and a number or boolean meet only as text.
            _ => WhType::Text,
        }
    }

    /// Whether a value of type `self` can be stored in a column of type
    /// `column` by converting it.
    pub fn fits_in(self, column: WhType) -> bool {
        self.join(column) == column
    }

    fn rank(self) -> Option<u8> {
        match self {
            WhType::Boolean => Some(0),
            WhType::BigInt => Some(1),
            WhType::Double => Some(2),
            WhType::Text => Some(3),
            WhType::Timestamp => None,
        }
    }

    /// The suffix of a typed shadow column (`amount__text`).
    pub fn suffix(self) -> &'static str {
        match self {
            WhType::Boolean => "bool",
            WhType::BigInt => "bigint",
            WhType::Double => "double",
            WhType::Text => "text",
            WhType::Timestamp => "timestamp",
        }
    }

    /// A manifest column's type; `None` for an unspecified type.
    pub fn from_column_type(ty: ColumnType) -> Option<WhType> {
        match ty {
            ColumnType::Boolean => Some(WhType::Boolean),
            ColumnType::Int64 => Some(WhType::BigInt),
            ColumnType::Float64 => Some(WhType::Double),
            ColumnType::String => Some(WhType::Text),
            ColumnType::Timestamp => Some(WhType::Timestamp),
            ColumnType::Unspecified => None,
        }
    }

    /// A column type as the warehouse describes it (PostgreSQL's and
    /// Redshift's `information_schema`, SQLite's declared type); `None` for a
    /// type the loader never creates (a column someone added by hand), which
    /// then only ever receives values of its own kind through a shadow column.
    pub fn from_declared(declared: &str) -> Option<WhType> {
        match declared.to_ascii_lowercase().as_str() {
            "boolean" | "bool" => Some(WhType::Boolean),
            "bigint" | "int8" => Some(WhType::BigInt),
            "double precision" | "float8" => Some(WhType::Double),
            "text" | "character varying" | "varchar(65535)" => Some(WhType::Text),
            "timestamp with time zone" | "timestamptz" => Some(WhType::Timestamp),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WhType::*;
    use super::*;

    #[test]
    fn lattice_joins() {
        assert_eq!(BigInt.join(Double), Double);
        assert_eq!(Double.join(BigInt), Double);
        assert_eq!(Boolean.join(Text), Text);
        assert_eq!(Timestamp.join(Timestamp), Timestamp);
        assert_eq!(Timestamp.join(BigInt), Text);
        assert_eq!(Boolean.join(Timestamp), Text);
        assert!(BigInt.fits_in(Double));
        assert!(!Double.fits_in(BigInt));
        assert!(Timestamp.fits_in(Text));
        assert!(!Timestamp.fits_in(Double));
    }

    #[test]
    fn reads_declared_types() {
        assert_eq!(WhType::from_declared("DOUBLE PRECISION"), Some(Double));
        assert_eq!(
            WhType::from_declared("timestamp with time zone"),
            Some(Timestamp)
        );
        assert_eq!(WhType::from_declared("character varying"), Some(Text));
        assert_eq!(WhType::from_declared("numeric"), None);
    }
}
