//! The record's columns, listed once. Both backends build their INSERT, their SELECT and
//! their row decoding from [`COLUMNS`]; nothing reads or writes a column by position.
//! Adding a record field means: a [`RecordRef`] field, an entry here, a schema migration
//! per backend (`sqlite::MIGRATIONS`, `fixtures/mssql-schema.sql`) and the renderer. The
//! tests below check the list against both schemas, so a slip fails a test instead of
//! shifting columns.

use super::RecordRef;
use crate::message::{Facility, Level, Protocol};

/// A column's value on its way between a record and a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    /// Microseconds since the epoch, UTC; each backend stores it in its column's type.
    Time(i64),
    Text(&'a str),
}

/// How a column is declared in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteType {
    Integer,
    /// A [`Value::Time`] in a TEXT column is ISO-8601 UTC with milliseconds.
    Text,
}

/// How a column is declared in SQL Server (what bulk load sends it as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsqlType {
    BigInt,
    TinyInt,
    DateTime2,
    /// `nvarchar(n)`, `n` in UTF-16 code units; `None` is `nvarchar(max)`.
    NVarChar(Option<usize>),
    VarChar(usize),
}

impl TsqlType {
    /// The type as the schema declares it.
    pub fn ddl(self) -> String {
        match self {
            TsqlType::BigInt => "bigint".into(),
            TsqlType::TinyInt => "tinyint".into(),
            TsqlType::DateTime2 => "datetime2(6)".into(),
            TsqlType::NVarChar(Some(n)) => format!("nvarchar({n})"),
            TsqlType::NVarChar(None) => "nvarchar(max)".into(),
            TsqlType::VarChar(n) => format!("varchar({n})"),
        }
    }
}

/// A column of the SQLite `Logs` view, which readers query (see `sqlite::MIGRATION_5`).
#[derive(Debug, Clone, Copy)]
pub struct SqliteColumn {
    pub name: &'static str,
    /// Its type as the view gives it.
    pub ty: SqliteType,
    pub not_null: bool,
    /// Whether queries read it back into the record.
    pub read: bool,
    /// How the base table `LogRows` keeps it: each value once.
    pub stored: Stored,
}

/// A dictionary table of names (`Hosts`, `Sources`, `Peers`): rows keep the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dict {
    Hosts,
    Sources,
    Peers,
}

impl Dict {
    pub const ALL: [Dict; 3] = [Dict::Hosts, Dict::Sources, Dict::Peers];

    pub fn table(self) -> &'static str {
        match self {
            Dict::Hosts => "Hosts",
            Dict::Sources => "Sources",
            Dict::Peers => "Peers",
        }
    }
}

/// How `LogRows` keeps a column of the `Logs` view.
#[derive(Debug, Clone, Copy)]
pub enum Stored {
    /// Under the same name, as the value.
    AsIs,
    /// As the name's id in a dictionary, in the column `id_column`.
    NameId { dict: Dict, id_column: &'static str },
    /// A peer address `ADDRESS:PORT` as the address's id in `Peers` (`peer_id`) and the
    /// port (`peer_port`): a dictionary of whole addresses would grow by one name per
    /// connection.
    Peer,
    /// As a small integer code under the same name; the view spells it out.
    Code(fn(&RecordRef<'_>) -> i64),
    /// Not stored: the view computes it from other columns.
    Computed,
}

/// A column in SQL Server's `dbo.Logs`.
#[derive(Debug, Clone, Copy)]
pub struct TsqlColumn {
    pub name: &'static str,
    pub ty: TsqlType,
    /// Bulk load writes it (not a computed column).
    pub write: bool,
    /// The SELECT expression that reads it back, if queries read it.
    pub read: Option<&'static str>,
}

/// A record field (or a value derived from one) and where each backend keeps it.
pub struct Column {
    /// The record field it comes from.
    pub field: &'static str,
    pub sqlite: Option<SqliteColumn>,
    pub tsql: Option<TsqlColumn>,
    pub get: for<'a> fn(&RecordRef<'a>) -> Value<'a>,
    /// Puts a value read back into the record; `None` for derived, write-only columns.
    pub set: Option<for<'a> fn(&mut RecordRef<'a>, Value<'a>)>,
}

const fn sqlite(name: &'static str, ty: SqliteType, not_null: bool) -> Option<SqliteColumn> {
    Some(SqliteColumn {
        name,
        ty,
        not_null,
        read: true,
        stored: Stored::AsIs,
    })
}

/// A name kept in a dictionary (`hostname`, `source`).
const fn sqlite_name(
    name: &'static str,
    dict: Dict,
    id_column: &'static str,
) -> Option<SqliteColumn> {
    Some(SqliteColumn {
        name,
        ty: SqliteType::Text,
        not_null: false,
        read: true,
        stored: Stored::NameId { dict, id_column },
    })
}

const fn tsql(name: &'static str, ty: TsqlType) -> Option<TsqlColumn> {
    Some(TsqlColumn {
        name,
        ty,
        write: true,
        read: Some(name),
    })
}

fn int(v: Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) | Value::Time(i) => Some(i),
        _ => None,
    }
}

fn text(v: Value<'_>) -> Option<&str> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn opt_text(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Null, Value::Text)
}

use SqliteType as S;
use TsqlType as T;

/// Every column, in the order SELECTs read them (after the row id).
pub static COLUMNS: &[Column] = &[
    Column {
        field: "time_us",
        sqlite: sqlite("time_us", S::Integer, true),
        // Computed from `timestamp` (PERSISTED, indexed): read, never written.
        tsql: Some(TsqlColumn {
            name: "time_us",
            ty: T::BigInt,
            write: false,
            read: Some("time_us"),
        }),
        get: |r| Value::Time(r.time_us),
        set: Some(|r, v| r.time_us = int(v).unwrap_or_default()),
    },
    Column {
        field: "received_us",
        sqlite: sqlite("received_us", S::Integer, true),
        tsql: Some(TsqlColumn {
            name: "received",
            ty: T::DateTime2,
            write: true,
            read: Some(
                "DATEDIFF_BIG(MICROSECOND, CONVERT(datetime2(6), '1970-01-01T00:00:00', 126), received)",
            ),
        }),
        get: |r| Value::Time(r.received_us),
        set: Some(|r, v| r.received_us = int(v).unwrap_or_default()),
    },
    Column {
        field: "level",
        sqlite: sqlite("severity", S::Integer, true),
        tsql: tsql("severity", T::TinyInt),
        get: |r| Value::Int(r.level.code().into()),
        // Rows of an original SQL Server table have no severity: notice.
        set: Some(|r, v| {
            r.level = int(v)
                .and_then(|c| Level::from_code(c.clamp(0, 7) as u8))
                .unwrap_or(Level::Notice)
        }),
    },
    Column {
        field: "facility",
        sqlite: sqlite("facility", S::Integer, false),
        tsql: tsql("facility", T::TinyInt),
        get: |r| {
            r.facility
                .map_or(Value::Null, |f| Value::Int(f.code().into()))
        },
        set: Some(|r, v| {
            r.facility = int(v).and_then(|c| Facility::from_code(c.clamp(0, 255) as u8))
        }),
    },
    Column {
        field: "hostname",
        sqlite: sqlite_name("hostname", Dict::Hosts, "host_id"),
        tsql: tsql("hostname", T::NVarChar(Some(255))),
        get: |r| opt_text(r.hostname),
        set: Some(|r, v| r.hostname = text(v)),
    },
    Column {
        field: "source",
        sqlite: sqlite_name("source", Dict::Sources, "source_id"),
        tsql: tsql("source", T::NVarChar(Some(255))),
        get: |r| opt_text(r.source),
        set: Some(|r, v| r.source = text(v)),
    },
    Column {
        field: "procid",
        sqlite: sqlite("procid", S::Text, false),
        tsql: tsql("procid", T::NVarChar(Some(128))),
        get: |r| opt_text(r.procid),
        set: Some(|r, v| r.procid = text(v)),
    },
    Column {
        field: "msgid",
        sqlite: sqlite("msgid", S::Text, false),
        tsql: tsql("msgid", T::NVarChar(Some(32))),
        get: |r| opt_text(r.msgid),
        set: Some(|r, v| r.msgid = text(v)),
    },
    Column {
        field: "structured_data",
        sqlite: sqlite("structured_data", S::Text, false),
        tsql: tsql("structured_data", T::NVarChar(None)),
        get: |r| opt_text(r.structured_data),
        set: Some(|r, v| r.structured_data = text(v)),
    },
    Column {
        field: "message",
        sqlite: sqlite("message", S::Text, true),
        tsql: tsql("message", T::NVarChar(None)),
        get: |r| Value::Text(r.message),
        set: Some(|r, v| r.message = text(v).unwrap_or_default()),
    },
    Column {
        field: "protocol",
        sqlite: Some(SqliteColumn {
            name: "protocol",
            ty: S::Text,
            not_null: true,
            read: true,
            // Protocol::ALL's order; the view's CASE is checked against it by a test.
            stored: Stored::Code(|r| r.protocol as i64),
        }),
        tsql: tsql("protocol", T::VarChar(8)),
        get: |r| Value::Text(r.protocol.name()),
        set: Some(|r, v| {
            r.protocol = text(v)
                .and_then(Protocol::from_name)
                .unwrap_or(Protocol::Raw)
        }),
    },
    Column {
        field: "peer",
        sqlite: Some(SqliteColumn {
            name: "peer",
            ty: S::Text,
            not_null: false,
            read: true,
            stored: Stored::Peer,
        }),
        tsql: tsql("peer", T::NVarChar(Some(64))),
        get: |r| opt_text(r.peer),
        set: Some(|r, v| r.peer = text(v)),
    },
    // The original table's columns, computed by the view for its old readers (the
    // values are `time_us` and `severity`), never read back.
    Column {
        field: "time_us",
        sqlite: Some(SqliteColumn {
            name: "timestamp",
            ty: S::Text,
            not_null: false,
            read: false,
            stored: Stored::Computed,
        }),
        tsql: Some(TsqlColumn {
            name: "timestamp",
            ty: T::DateTime2,
            write: true,
            read: None,
        }),
        get: |r| Value::Time(r.time_us),
        set: None,
    },
    Column {
        field: "level",
        sqlite: Some(SqliteColumn {
            name: "LogLevel",
            ty: S::Text,
            not_null: false,
            read: false,
            stored: Stored::Computed,
        }),
        tsql: Some(TsqlColumn {
            name: "LogLevel",
            ty: T::NVarChar(Some(16)),
            write: true,
            read: None,
        }),
        get: |r| Value::Text(r.level.log_level_name()),
        set: None,
    },
];

/// A record with every field empty, for decoders to fill in.
pub const EMPTY: RecordRef<'static> = RecordRef {
    time_us: 0,
    received_us: 0,
    level: Level::Notice,
    facility: None,
    hostname: None,
    source: None,
    procid: None,
    msgid: None,
    structured_data: None,
    message: "",
    protocol: Protocol::Raw,
    peer: None,
};

/// The columns queries read back, with their setters, in SELECT order.
pub fn readable(
    backend: impl Fn(&Column) -> bool,
) -> impl Iterator<Item = (&'static Column, for<'a> fn(&mut RecordRef<'a>, Value<'a>))> {
    COLUMNS
        .iter()
        .filter(move |c| backend(c))
        .filter_map(|c| Some((c, c.set?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record field is read back by both backends, and written.
    #[test]
    fn every_field_round_trips_through_the_list() {
        let rec = RecordRef {
            time_us: 1,
            received_us: 2,
            level: Level::Err,
            facility: Facility::from_code(16),
            hostname: Some("h"),
            source: Some("s"),
            procid: Some("p"),
            msgid: Some("m"),
            structured_data: Some("{}"),
            message: "msg",
            protocol: Protocol::Rfc5424,
            peer: Some("1.2.3.4:5"),
        };
        let sqlite_read = |c: &Column| c.sqlite.is_some_and(|s| s.read);
        let tsql_read = |c: &Column| c.tsql.is_some_and(|t| t.read.is_some());
        for read in [&sqlite_read as &dyn Fn(&Column) -> bool, &tsql_read] {
            let mut back = EMPTY;
            for (c, set) in readable(read) {
                set(&mut back, (c.get)(&rec));
            }
            assert_eq!(back, rec);
        }
    }
}
