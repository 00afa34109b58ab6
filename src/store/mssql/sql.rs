//! The filter as T-SQL for `dbo.Logs`: the SELECT `logq` runs (also checked against the
//! golden files in `tests/golden/mssql`).

use super::catalog::{Actual, Catalog};
use super::{SELECT_COLUMNS, TABLE};
use crate::store::Query;
use crate::store::filter::Filter;
use crate::store::sql::{Dialect, Param, Sql, facility_and_match_terms, json_path};

/// T-SQL's side of the shared terms, for a table whose real column types are `cat`:
/// placeholders `@P1`, `@P2`, … in binding order, patterns as `LIKE`, structured data
/// through `JSON_VALUE`/`OPENJSON`.
struct Tsql<'a> {
    cat: &'a Catalog,
}

impl Dialect for Tsql<'_> {
    fn bind(&self, sql: &mut Sql, p: Param) -> String {
        sql.params.push(p);
        format!("@P{}", sql.params.len())
    }

    /// tiberius sends text as nvarchar; against a `varchar` column (an original table's
    /// `source`) that would convert the column on every row and scan, so the parameter
    /// is converted instead and the index seeks.
    fn text(&self, sql: &mut Sql, column: &str, value: String) -> String {
        let p = self.bind(sql, Param::Text(value));
        match self.cat.get(column) {
            Some(Actual::Bytes(Some(n), _)) => format!("CONVERT(varchar({n}), {p})"),
            Some(Actual::Bytes(None, _)) => format!("CONVERT(varchar(max), {p})"),
            _ => p,
        }
    }

    /// `col LIKE ? ESCAPE '\'`, or plain equality without wildcards.
    fn pattern(&self, sql: &mut Sql, column: &str, pattern: &str) -> String {
        if !pattern.contains(['*', '?']) {
            let p = self.text(sql, column, pattern.to_string());
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
        let p = self.text(sql, column, like);
        format!("{column} LIKE {p} ESCAPE '\\'")
    }

    fn sd(&self, sql: &mut Sql, id: &str, param: &str, value: &str) -> String {
        let path = self.bind(sql, Param::Text(json_path(id, param)));
        let path2 = self.bind(sql, Param::Text(json_path(id, param)));
        let v = self.bind(sql, Param::Text(value.to_string()));
        format!(
            "(JSON_VALUE(structured_data, {path}) = {v} OR EXISTS (SELECT 1 FROM OPENJSON(structured_data, {path2}) WHERE [value] = {v}))"
        )
    }
}

/// Any of the patterns on an indexed name column.
fn any_of(d: &Tsql<'_>, sql: &mut Sql, terms: &mut Vec<String>, column: &str, patterns: &[String]) {
    if patterns.is_empty() {
        return;
    }
    let alts: Vec<String> = patterns.iter().map(|p| d.pattern(sql, column, p)).collect();
    terms.push(format!("({})", alts.join(" OR ")));
}

/// The `WHERE` clause. Severities are parameters so the plan cache serves all levels.
/// The follow cursor is the rowversion, read only below every open transaction's so
/// nothing that commits later with a smaller value is skipped. Its bounds convert the
/// parameter, not the column (`rv > CONVERT(binary(8), @P)`), so the index on `rv` can
/// seek; `CAST(rv AS bigint) > @P` would scan the table on every poll.
pub fn where_clause(f: &Filter, cat: &Catalog) -> Sql {
    let d = Tsql { cat };
    let mut sql = Sql::default();
    let mut terms = Vec::new();
    if let Some((lo, hi)) = f.severity_codes() {
        let mut code = |c: u8| d.bind(&mut sql, Param::Int(c.into()));
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
        let p = d.bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us >= {p}"));
    }
    if let Some(t) = f.until {
        let p = d.bind(&mut sql, Param::Int(t.timestamp_micros()));
        terms.push(format!("time_us <= {p}"));
    }
    any_of(&d, &mut sql, &mut terms, "source", &f.sources);
    any_of(&d, &mut sql, &mut terms, "hostname", &f.hosts);
    facility_and_match_terms(&d, &mut sql, f, &mut terms);
    if let Some(id) = f.after_id {
        let p = d.bind(&mut sql, Param::Int(id));
        terms.push(format!("rv > CONVERT(binary(8), {p})"));
    }
    if let Some(id) = f.upto_id {
        let p = d.bind(&mut sql, Param::Int(id));
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
