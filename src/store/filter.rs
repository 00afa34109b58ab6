//! What `logq` asks for, and its translation into a parameterised SQL `WHERE` clause
//! per dialect. User text only ever travels as a bound parameter, never as SQL.

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

    pub fn column(self) -> &'static str {
        match self {
            Field::Hostname => "hostname",
            Field::Source => "source",
            Field::Procid => "procid",
            Field::Msgid => "msgid",
            Field::Facility => "facility",
            Field::Protocol => "protocol",
        }
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
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mssql,
}

/// A `WHERE` clause (or empty string) and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub clause: String,
    pub params: Vec<Param>,
}

struct Builder {
    dialect: Dialect,
    terms: Vec<String>,
    params: Vec<Param>,
}

impl Builder {
    /// The next placeholder: `?N` for SQLite, `@PN` for SQL Server.
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Mssql => format!("@P{}", self.params.len()),
        }
    }

    /// `col GLOB ?` / `col LIKE ? ESCAPE '\'`, or plain equality without wildcards
    /// (so the index on the column serves it).
    fn pattern(&mut self, column: &str, pattern: &str) -> String {
        if !pattern.contains(['*', '?']) {
            let p = self.bind(Param::Text(pattern.to_string()));
            return format!("{column} = {p}");
        }
        match self.dialect {
            Dialect::Sqlite => {
                // GLOB treats `[` specially; escape it as a one-character class.
                let glob = pattern.replace('[', "[[]");
                let p = self.bind(Param::Text(glob));
                format!("{column} GLOB {p}")
            }
            Dialect::Mssql => {
                let mut like = String::with_capacity(pattern.len() + 4);
                for c in pattern.chars() {
                    match c {
                        '*' => like.push('%'),
                        '?' => like.push('_'),
                        '%' | '_' | '[' | '\\' => {
                            like.push('\\');
                            like.push(c);
                        }
                        c => like.push(c),
                    }
                }
                let p = self.bind(Param::Text(like));
                format!("{column} LIKE {p} ESCAPE '\\'")
            }
        }
    }

    /// In SQLite names are dictionary-encoded (`Sources`, `Hosts`): match the small
    /// name table, then compare integer ids. (The SQLite store resolves the ids itself,
    /// for its block summaries, and then compares a literal list: `sqlite::query`.)
    /// SQL Server indexes the name columns themselves.
    fn any_of(&mut self, column: &str, id_column: &str, table: &str, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        match self.dialect {
            Dialect::Sqlite => {
                let alts: Vec<String> = patterns.iter().map(|p| self.pattern("name", p)).collect();
                self.terms.push(format!(
                    "{id_column} IN (SELECT id FROM {table} WHERE {})",
                    alts.join(" OR ")
                ));
            }
            Dialect::Mssql => {
                let alts: Vec<String> = patterns.iter().map(|p| self.pattern(column, p)).collect();
                self.terms.push(format!("({})", alts.join(" OR ")));
            }
        }
    }

    /// The follow cursor: the row id in SQLite (one writer commits in id order); the
    /// rowversion in SQL Server, below every open transaction's so nothing that commits
    /// later with a smaller value is skipped.
    fn cursor_column(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "id",
            Dialect::Mssql => "CAST(rv AS bigint)",
        }
    }

    fn sd_match(&mut self, id: &str, param: &str, value: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                let path = self.bind(Param::Text(json_path(id, param)));
                let v = self.bind(Param::Text(value.to_string()));
                format!(
                    "EXISTS (SELECT 1 FROM json_each(structured_data, {path}) WHERE json_each.value = {v})"
                )
            }
            Dialect::Mssql => {
                let path = self.bind(Param::Text(json_path(id, param)));
                let path2 = self.bind(Param::Text(json_path(id, param)));
                let v = self.bind(Param::Text(value.to_string()));
                format!(
                    "(JSON_VALUE(structured_data, {path}) = {v} OR EXISTS (SELECT 1 FROM OPENJSON(structured_data, {path2}) WHERE [value] = {v}))"
                )
            }
        }
    }
}

/// `$."id"."param"` with `"` and `\` escaped, for JSON path functions.
fn json_path(id: &str, param: &str) -> String {
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("$.\"{}\".\"{}\"", q(id), q(param))
}

/// `name GLOB ?1 OR name = ?2 …` over a SQLite name table (`Sources`, `Hosts`): which
/// dictionary ids a list of `-s`/`-H` patterns selects.
pub fn sqlite_name_match(patterns: &[String]) -> Sql {
    let mut b = Builder {
        dialect: Dialect::Sqlite,
        terms: Vec::new(),
        params: Vec::new(),
    };
    let alts: Vec<String> = patterns.iter().map(|p| b.pattern("name", p)).collect();
    Sql {
        clause: alts.join(" OR "),
        params: b.params,
    }
}

impl Filter {
    /// The severity codes `levels` covers, lowest (most severe) first.
    pub fn severity_codes(&self) -> Option<(u8, u8)> {
        self.levels.map(|(a, b)| {
            let (a, b) = (a.code(), b.code());
            (a.min(b), a.max(b))
        })
    }

    pub fn to_sql(&self, dialect: Dialect) -> Sql {
        let mut b = Builder {
            dialect,
            terms: Vec::new(),
            params: Vec::new(),
        };
        if let Some((lo, hi)) = self.severity_codes() {
            // SQLite's planner sees literal bounds (numbers 0-7 from our own enum, never
            // user text); SQL Server gets parameters so its plan cache serves all levels.
            let mut code = |c: u8| match dialect {
                Dialect::Sqlite => c.to_string(),
                Dialect::Mssql => b.bind(Param::Int(c.into())),
            };
            let term = if lo == hi {
                format!("severity = {}", code(lo))
            } else if lo == 0 {
                format!("severity <= {}", code(hi))
            } else {
                let (l, h) = (code(lo), code(hi));
                format!("severity BETWEEN {l} AND {h}")
            };
            b.terms.push(term);
        }
        if let Some(t) = self.since {
            let p = b.bind(Param::Int(t.timestamp_micros()));
            b.terms.push(format!("time_us >= {p}"));
        }
        if let Some(t) = self.until {
            let p = b.bind(Param::Int(t.timestamp_micros()));
            b.terms.push(format!("time_us <= {p}"));
        }
        b.any_of("source", "source_id", "Sources", &self.sources);
        b.any_of("hostname", "host_id", "Hosts", &self.hosts);
        if !self.facilities.is_empty() {
            let ps: Vec<String> = self
                .facilities
                .iter()
                .map(|f| b.bind(Param::Int(f.code().into())))
                .collect();
            b.terms.push(format!("facility IN ({})", ps.join(", ")));
        }
        for m in &self.matches {
            let (cond, negate) = match m {
                Match::Field {
                    field,
                    value,
                    negate,
                } => {
                    let param = match field {
                        Field::Facility => match value.parse::<Facility>() {
                            Ok(f) => Param::Int(f.code().into()),
                            Err(_) => Param::Int(-1),
                        },
                        _ => Param::Text(value.clone()),
                    };
                    let p = b.bind(param);
                    (format!("{} = {p}", field.column()), *negate)
                }
                Match::Sd {
                    id,
                    param,
                    value,
                    negate,
                } => (b.sd_match(id, param, value), *negate),
            };
            // A NULL field does not equal VALUE, so it matches `!=`: the CASE turns
            // SQL's unknown into false before negating (valid in both dialects).
            b.terms.push(if negate {
                format!("(CASE WHEN {cond} THEN 1 ELSE 0 END) = 0")
            } else {
                cond
            });
        }
        let cursor = b.cursor_column();
        if let Some(id) = self.after_id {
            let p = b.bind(Param::Int(id));
            b.terms.push(format!("{cursor} > {p}"));
        }
        if let Some(id) = self.upto_id {
            let p = b.bind(Param::Int(id));
            b.terms.push(format!("{cursor} <= {p}"));
        }
        if dialect == Dialect::Mssql && (self.after_id.is_some() || self.upto_id.is_some()) {
            b.terms.push("rv < MIN_ACTIVE_ROWVERSION()".into());
        }
        let clause = if b.terms.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", b.terms.join(" AND "))
        };
        Sql {
            clause,
            params: b.params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_clause_binds_every_user_value() {
        let f = Filter {
            levels: Some((Level::Emerg, Level::Err)),
            sources: vec!["web*".into(), "db".into()],
            matches: vec![
                Match::Field {
                    field: Field::Hostname,
                    value: "h'; DROP TABLE Logs; --".into(),
                    negate: true,
                },
                Match::Sd {
                    id: "origin".into(),
                    param: "ip".into(),
                    value: "1.2.3.4".into(),
                    negate: false,
                },
            ],
            after_id: Some(7),
            ..Filter::default()
        };
        let sql = f.to_sql(Dialect::Sqlite);
        assert_eq!(
            sql.clause,
            "WHERE severity <= 3 AND source_id IN (SELECT id FROM Sources WHERE name GLOB ?1 OR name = ?2) AND (CASE WHEN hostname = ?3 THEN 1 ELSE 0 END) = 0 \
             AND EXISTS (SELECT 1 FROM json_each(structured_data, ?4) WHERE json_each.value = ?5) AND id > ?6"
        );
        assert!(!sql.clause.contains("DROP"));
        assert_eq!(sql.params[3], Param::Text("$.\"origin\".\"ip\"".into()));
    }

    #[test]
    fn mssql_uses_like_with_escapes() {
        let f = Filter {
            hosts: vec!["web_1*".into()],
            levels: Some((Level::Warning, Level::Warning)),
            ..Filter::default()
        };
        let sql = f.to_sql(Dialect::Mssql);
        assert_eq!(
            sql.clause,
            "WHERE severity = @P1 AND (hostname LIKE @P2 ESCAPE '\\')"
        );
        assert_eq!(sql.params[1], Param::Text("web\\_1%".into()));
    }
}
