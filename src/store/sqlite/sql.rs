//! The filter as SQLite SQL. Source and host patterns are not part of the row clause:
//! the store resolves them to dictionary ids first ([`name_match`]), for its block
//! summaries, and then compares those ids (`super::query`).

use crate::store::filter::Filter;
use crate::store::sql::{Dialect, Param, Sql, facility_and_match_terms, json_path};

/// SQLite's side of the shared terms: placeholders `?1`, `?2`, … in binding order,
/// patterns as `GLOB`, structured data through `json_each`.
struct Sqlite;

impl Dialect for Sqlite {
    fn bind(&self, sql: &mut Sql, p: Param) -> String {
        sql.params.push(p);
        format!("?{}", sql.params.len())
    }

    fn pattern(&self, sql: &mut Sql, column: &str, pattern: &str) -> String {
        if !pattern.contains(['*', '?']) {
            let p = self.bind(sql, Param::Text(pattern.to_string()));
            return format!("{column} = {p}");
        }
        // GLOB treats `[` specially; escape it as a one-character class.
        let p = self.bind(sql, Param::Text(pattern.replace('[', "[[]")));
        format!("{column} GLOB {p}")
    }

    fn sd(&self, sql: &mut Sql, id: &str, param: &str, value: &str) -> String {
        let path = self.bind(sql, Param::Text(json_path(id, param)));
        let v = self.bind(sql, Param::Text(value.to_string()));
        format!(
            "EXISTS (SELECT 1 FROM json_each(structured_data, {path}) WHERE json_each.value = {v})"
        )
    }
}

/// `name GLOB ?1 OR name = ?2 …` over a name table (`Sources`, `Hosts`): which
/// dictionary ids a list of `-s`/`-H` patterns selects.
pub fn name_match(patterns: &[String]) -> Sql {
    let mut sql = Sql::default();
    let alts: Vec<String> = patterns
        .iter()
        .map(|p| Sqlite.pattern(&mut sql, "name", p))
        .collect();
    sql.clause = alts.join(" OR ");
    sql
}

/// The `WHERE` clause for every filter field but sources and hosts. The follow cursor
/// is the row id: one writer commits in id order.
pub fn row_clause(f: &Filter) -> Sql {
    let mut sql = Sql::default();
    let mut terms = Vec::new();
    if let Some((lo, hi)) = f.severity_codes() {
        // Literal bounds the planner can see (numbers 0-7 from our own enum, never
        // user text).
        terms.push(if lo == hi {
            format!("severity = {lo}")
        } else if lo == 0 {
            format!("severity <= {hi}")
        } else {
            format!("severity BETWEEN {lo} AND {hi}")
        });
    }
    if let Some(t) = f.since {
        let p = Sqlite.bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us >= {p}"));
    }
    if let Some(t) = f.until {
        let p = Sqlite.bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us <= {p}"));
    }
    facility_and_match_terms(&Sqlite, &mut sql, f, &mut terms);
    if !f.words.is_empty() {
        // Our SQL function (`tokens::register_function`): the exact test, run on the
        // rows of the blocks whose token filters could not rule the words out.
        let p = Sqlite.bind(&mut sql, Param::Text(f.words.to_param()));
        terms.push(format!(
            "logq_words({p}, message, hostname, source, structured_data)"
        ));
    }
    if let Some(id) = f.after_id {
        let p = Sqlite.bind(&mut sql, Param::Int(id));
        terms.push(format!("id > {p}"));
    }
    if let Some(id) = f.upto_id {
        let p = Sqlite.bind(&mut sql, Param::Int(id));
        terms.push(format!("id <= {p}"));
    }
    for t in terms {
        sql.and(&t);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Level;
    use crate::store::{Field, Match};

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
        let sql = row_clause(&f);
        assert_eq!(
            sql.clause,
            "WHERE severity <= 3 AND (CASE WHEN hostname = ?1 THEN 1 ELSE 0 END) = 0 \
             AND EXISTS (SELECT 1 FROM json_each(structured_data, ?2) WHERE json_each.value = ?3) AND id > ?4"
        );
        assert!(!sql.clause.contains("DROP"));
        assert_eq!(sql.params[1], Param::Text("$.\"origin\".\"ip\"".into()));
        let names = name_match(&f.sources);
        assert_eq!(names.clause, "name GLOB ?1 OR name = ?2");
        assert_eq!(
            names.params,
            [Param::Text("web*".into()), Param::Text("db".into())]
        );
    }
}
