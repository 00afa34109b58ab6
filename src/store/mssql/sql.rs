//! The filter as T-SQL for `dbo.Logs`: the SELECT `logq` runs (also checked against the
//! golden files in `tests/golden/mssql`).

use super::catalog::{Actual, Catalog};
use super::{SELECT_COLUMNS, TABLE};
use crate::store::Query;
use crate::store::filter::{Field, Filter, Match};
use crate::store::sql::{Param, Sql, field_column, field_param, json_path, negated};

/// Placeholders `@P1`, `@P2`, … in binding order.
fn bind(sql: &mut Sql, p: Param) -> String {
    sql.params.push(p);
    format!("@P{}", sql.params.len())
}

/// A text parameter compared with `column`. tiberius sends text as nvarchar; against a
/// `varchar` column (an original table's `source`) that would convert the column on
/// every row and scan, so the parameter is converted instead and the index seeks.
fn text_param(sql: &mut Sql, cat: &Catalog, column: &str, value: String) -> String {
    let p = bind(sql, Param::Text(value));
    match cat.get(column) {
        Some(Actual::Bytes(Some(n), _)) => format!("CONVERT(varchar({n}), {p})"),
        Some(Actual::Bytes(None, _)) => format!("CONVERT(varchar(max), {p})"),
        _ => p,
    }
}

/// `col LIKE ? ESCAPE '\'`, or plain equality without wildcards (so the index on the
/// column serves it).
fn pattern(sql: &mut Sql, cat: &Catalog, column: &str, pattern: &str) -> String {
    if !pattern.contains(['*', '?']) {
        let p = text_param(sql, cat, column, pattern.to_string());
        return format!("{column} = {p}");
    }
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
    let p = text_param(sql, cat, column, like);
    format!("{column} LIKE {p} ESCAPE '\\'")
}

/// Any of the patterns on an indexed name column.
fn any_of(
    sql: &mut Sql,
    cat: &Catalog,
    terms: &mut Vec<String>,
    column: &str,
    patterns: &[String],
) {
    if patterns.is_empty() {
        return;
    }
    let alts: Vec<String> = patterns
        .iter()
        .map(|p| pattern(sql, cat, column, p))
        .collect();
    terms.push(format!("({})", alts.join(" OR ")));
}

/// The `WHERE` clause. Severities are parameters so the plan cache serves all levels.
/// The follow cursor is the rowversion, read only below every open transaction's so
/// nothing that commits later with a smaller value is skipped. Its bounds convert the
/// parameter, not the column (`rv > CONVERT(binary(8), @P)`), so the index on `rv` can
/// seek; `CAST(rv AS bigint) > @P` would scan the table on every poll.
pub fn where_clause(f: &Filter, cat: &Catalog) -> Sql {
    let mut sql = Sql::default();
    let mut terms = Vec::new();
    if let Some((lo, hi)) = f.severity_codes() {
        let mut code = |c: u8| bind(&mut sql, Param::Int(c.into()));
        terms.push(if lo == hi {
            format!("severity = {}", code(lo))
        } else if lo == 0 {
            format!("severity <= {}", code(hi))
        } else {
            let (l, h) = (code(lo), code(hi));
            format!("severity BETWEEN {l} AND {h}")
        });
    }
    if let Some(t) = f.since {
        let p = bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us >= {p}"));
    }
    if let Some(t) = f.until {
        let p = bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us <= {p}"));
    }
    any_of(&mut sql, cat, &mut terms, "source", &f.sources);
    any_of(&mut sql, cat, &mut terms, "hostname", &f.hosts);
    if !f.facilities.is_empty() {
        let ps: Vec<String> = f
            .facilities
            .iter()
            .map(|x| bind(&mut sql, Param::Int(x.code().into())))
            .collect();
        terms.push(format!("facility IN ({})", ps.join(", ")));
    }
    for m in &f.matches {
        let (cond, negate) = match m {
            Match::Field {
                field,
                value,
                negate,
            } if *field != Field::Facility && value.contains(['*', '?']) => {
                // Text fields take the globs of -s and -H (`source=Payment*`).
                (pattern(&mut sql, cat, field_column(*field), value), *negate)
            }
            Match::Field {
                field,
                value,
                negate,
            } => {
                let column = field_column(*field);
                let p = match field_param(*field, value) {
                    Param::Text(t) => text_param(&mut sql, cat, column, t),
                    int => bind(&mut sql, int),
                };
                (format!("{column} = {p}"), *negate)
            }
            Match::Sd {
                id,
                param,
                value,
                negate,
            } => {
                let path = bind(&mut sql, Param::Text(json_path(id, param)));
                let path2 = bind(&mut sql, Param::Text(json_path(id, param)));
                let v = bind(&mut sql, Param::Text(value.clone()));
                (
                    format!(
                        "(JSON_VALUE(structured_data, {path}) = {v} OR EXISTS (SELECT 1 FROM OPENJSON(structured_data, {path2}) WHERE [value] = {v}))"
                    ),
                    *negate,
                )
            }
        };
        terms.push(if negate { negated(&cond) } else { cond });
    }
    if let Some(id) = f.after_id {
        let p = bind(&mut sql, Param::Int(id));
        terms.push(format!("rv > CONVERT(binary(8), {p})"));
    }
    if let Some(id) = f.upto_id {
        let p = bind(&mut sql, Param::Int(id));
        terms.push(format!("rv <= CONVERT(binary(8), {p})"));
    }
    if f.after_id.is_some() || f.upto_id.is_some() {
        terms.push("rv < MIN_ACTIVE_ROWVERSION()".into());
    }
    for t in terms {
        sql.and(&t);
    }
    sql
}

/// The SELECT text for a query on the schema's own column types (the golden files).
pub fn query_sql(q: &Query) -> (String, Vec<Param>) {
    query_sql_for(q, &Catalog::default())
}

/// The SELECT text for a query on a table whose real column types are `cat`.
pub fn query_sql_for(q: &Query, cat: &Catalog) -> (String, Vec<Param>) {
    let sql = where_clause(&q.filter, cat);
    let dir = if q.newest_first { "DESC" } else { "ASC" };
    let order = if q.by_id {
        format!("rv {dir}")
    } else {
        format!("time_us {dir}, id {dir}")
    };
    // `-w` words are checked by the store's code (`MssqlStore::query`), not in SQL: the
    // limit too, then.
    let limit = q
        .limit
        .filter(|_| q.filter.words.is_empty())
        .map_or(String::new(), |n| {
            format!(" OFFSET 0 ROWS FETCH NEXT {n} ROWS ONLY")
        });
    (
        format!(
            "SELECT id, {} FROM {TABLE} {} ORDER BY {order}{limit}",
            SELECT_COLUMNS.as_str(),
            sql.clause
        ),
        sql.params,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Level;

    /// The cursor column stays bare (sargable); only the parameter is converted.
    #[test]
    fn cursor_bounds_can_seek_the_rowversion_index() {
        let f = Filter {
            after_id: Some(41),
            upto_id: Some(99),
            ..Filter::default()
        };
        let sql = where_clause(&f, &Catalog::default()).clause;
        assert_eq!(
            sql,
            "WHERE rv > CONVERT(binary(8), @P1) AND rv <= CONVERT(binary(8), @P2) \
             AND rv < MIN_ACTIVE_ROWVERSION()"
        );
        assert!(!sql.contains("CAST(rv"));
    }

    #[test]
    fn mssql_uses_like_with_escapes() {
        let f = Filter {
            hosts: vec!["web_1*".into()],
            levels: Some((Level::Warning, Level::Warning)),
            ..Filter::default()
        };
        let sql = where_clause(&f, &Catalog::default());
        assert_eq!(
            sql.clause,
            "WHERE severity = @P1 AND (hostname LIKE @P2 ESCAPE '\\')"
        );
        assert_eq!(sql.params[1], Param::Text("web\\_1%".into()));
    }

    /// On an original table's `varchar(50)` source the parameter is converted, never
    /// the column; nvarchar columns compare as they are.
    #[test]
    fn varchar_columns_get_varchar_parameters() {
        let cat = Catalog::from_rows([
            ("source", "varchar", 50, Some(1252)),
            ("hostname", "nvarchar", 510, None),
        ]);
        let f = Filter {
            sources: vec!["web*".into(), "db".into()],
            hosts: vec!["h1".into()],
            matches: vec![crate::store::Match::Field {
                field: crate::store::Field::Source,
                value: "cron".into(),
                negate: false,
            }],
            ..Filter::default()
        };
        assert_eq!(
            where_clause(&f, &cat).clause,
            "WHERE (source LIKE CONVERT(varchar(50), @P1) ESCAPE '\\' OR source = CONVERT(varchar(50), @P2)) \
             AND (hostname = @P3) AND source = CONVERT(varchar(50), @P4)"
        );
    }
}
