//! The tables: each is declared once, by the `table!` macro, which makes both the row struct the
//! expansion fills and the column list the schema publishes. A column cannot exist in one and not
//! in the other.
//!
//! | file | what |
//! |---|---|
//! | `schema/mod.rs` | column types, Azure Monitor's column-name rules, the `table!` macro, [`tables_json`] |
//! | `schema/tables.rs` | the tables themselves: [`CALL`], [`LEG`], [`STREAM`], [`PARTICIPANT`], [`PSTN_CALL`], [`DIRECT_ROUTING_CALL`], [`SEED`] |

use serde::Serialize;

/// Column types (Log Analytics names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Text.
    String,
    /// 64-bit integer.
    Long,
    /// Double.
    Real,
    /// Boolean.
    Boolean,
    /// UTC timestamp (ISO 8601).
    Datetime,
    /// JSON value.
    Dynamic,
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// What it holds.
    pub description: &'static str,
}

/// One table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Log Analytics table name.
    pub name: &'static str,
    /// Logs Ingestion stream name.
    pub stream: &'static str,
    /// What a row is.
    pub description: &'static str,
    /// Columns in row order.
    pub columns: &'static [Column],
}

/// The prefix of custom streams as a literal, for `concat!` in `table!`.
macro_rules! stream_prefix {
    () => {
        "Custom-"
    };
}

/// Prefix of custom streams in a data collection rule.
pub const STREAM_PREFIX: &str = stream_prefix!();

/// The stream of a custom table, `Custom-{table}`: where Logs Ingestion rows for it are sent, and
/// the output stream of its data flow in the DCR.
pub fn stream_name(table: &str) -> String {
    format!("{STREAM_PREFIX}{table}")
}
/// Longest column name Azure Monitor accepts.
pub const MAX_COLUMN_NAME: usize = 45;
/// Column names Azure Monitor reserves for itself.
pub const RESERVED_COLUMNS: &[&str] =
    &["TenantId", "Type", "_ResourceId", "_SubscriptionId", "_ItemId", "_IsBillable", "_BilledSize", "_TimeReceived"];

/// Does `name` obey Azure Monitor's column rules?
pub fn column_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_COLUMN_NAME
        && !RESERVED_COLUMNS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

macro_rules! col_ty {
    (string, $lt:lifetime) => { Option<std::borrow::Cow<$lt, str>> };
    (datetime, $lt:lifetime) => { Option<std::borrow::Cow<$lt, str>> };
    (long, $lt:lifetime) => { Option<i64> };
    (real, $lt:lifetime) => { Option<f64> };
    (boolean, $lt:lifetime) => { Option<bool> };
    (dynamic, $lt:lifetime) => { Option<serde_json::Value> };
}

macro_rules! col_kind {
    (string) => {
        ColumnType::String
    };
    (datetime) => {
        ColumnType::Datetime
    };
    (long) => {
        ColumnType::Long
    };
    (real) => {
        ColumnType::Real
    };
    (boolean) => {
        ColumnType::Boolean
    };
    (dynamic) => {
        ColumnType::Dynamic
    };
}

/// Declares a row struct (every column serialized, `null` when absent) and its [`Table`].
macro_rules! table {
    (
        $(#[$doc:meta])*
        $Row:ident<$lt:lifetime>, $TABLE:ident = $name:literal, $desc:literal {
            $( $field:ident $col:literal : $kind:ident = $cdesc:literal, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Default, Clone, serde::Serialize)]
        pub struct $Row<$lt> {
            $( #[doc = $cdesc] #[serde(rename = $col)] pub $field: col_ty!($kind, $lt), )*
        }

        #[doc = concat!("The `", $name, "` table.")]
        pub const $TABLE: Table = Table {
            name: $name,
            stream: concat!(stream_prefix!(), $name),
            description: $desc,
            columns: &[ $( Column { name: $col, kind: col_kind!($kind), description: $cdesc }, )* ],
        };
    };
}

mod tables;

pub use tables::{
    CALL, CallRow, DIRECT_ROUTING_CALL, DirectRoutingCallRow, LEG, LegRow, PARTICIPANT, PSTN_CALL, ParticipantRow,
    PstnCallRow, SEED, STREAM, SeedRow, StreamRow, TABLES,
};

/// The schema as one JSON document: `{"version": 1, "tables": [...]}`.
pub fn tables_json() -> String {
    #[derive(Serialize)]
    struct Doc {
        version: u32,
        tables: &'static [Table],
    }
    serde_json::to_string_pretty(&Doc { version: 1, tables: TABLES }).expect("static schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_obeys_azure_rules() {
        for t in TABLES {
            assert!(t.stream.starts_with(STREAM_PREFIX));
            assert_eq!(t.stream, stream_name(t.name));
            for c in t.columns {
                assert!(column_name_ok(c.name) || t.name == SEED.name, "{}.{}", t.name, c.name);
            }
            let mut names: Vec<_> = t.columns.iter().map(|c| c.name.to_ascii_lowercase()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "duplicate column in {}", t.name);
        }
        for bad in ["TenantId", "type", "1abc", "a-b", &"x".repeat(46)] {
            assert!(!column_name_ok(bad), "{bad}");
        }
    }
}
