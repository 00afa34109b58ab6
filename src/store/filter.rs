//! What `logq` asks for, apart from any SQL: each backend renders it in its own dialect
//! beside its store code (`sqlite::sql`, `mssql::sql`).

use super::words::Words;
use crate::message::{Facility, Level};
use chrono::{DateTime, Utc};

/// A header field that positional `FIELD=VALUE` matches can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Hostname,
    Source,
    Procid,
    Msgid,
    Facility,
    Protocol,
}

impl Field {
    pub const NAMES: [&'static str; 6] = [
        "hostname", "source", "procid", "msgid", "facility", "protocol",
    ];

    pub fn from_name(s: &str) -> Option<Field> {
        Some(match s {
            "hostname" | "host" => Field::Hostname,
            "source" | "app" | "tag" => Field::Source,
            "procid" | "pid" => Field::Procid,
            "msgid" => Field::Msgid,
            "facility" => Field::Facility,
            "protocol" => Field::Protocol,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Field {
        field: Field,
        value: String,
        negate: bool,
    },
    /// `SDID.PARAM=VALUE`: any value of that parameter (repeats included) equals VALUE.
    Sd {
        id: String,
        param: String,
        value: String,
        negate: bool,
    },
}

/// Everything a query can filter on. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Inclusive severity range, most severe first (`Emerg..=Err`).
    pub levels: Option<(Level, Level)>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `*` and `?` globs, ORed.
    pub sources: Vec<String>,
    pub hosts: Vec<String>,
    pub facilities: Vec<Facility>,
    pub matches: Vec<Match>,
    /// Only rows stored after this row id (follow mode's cursor).
    pub after_id: Option<i64>,
    /// Only rows up to this row id (what existed when follow mode started).
    pub upto_id: Option<i64>,
    /// Words every row must contain whole (`-w`), case-insensitively.
    pub words: Words,
}

impl Filter {
    /// The severity codes `levels` covers, lowest (most severe) first.
    pub fn severity_codes(&self) -> Option<(u8, u8)> {
        self.levels.map(|(a, b)| {
            let (a, b) = (a.code(), b.code());
            (a.min(b), a.max(b))
        })
    }
}
