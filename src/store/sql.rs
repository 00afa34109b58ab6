//! What both backends' SQL renderers share: bound parameters, JSON paths, and the terms
//! for facilities and `FIELD=VALUE` matches, written once over a [`Dialect`]. User text
//! only ever travels as a bound parameter, never as SQL.

use super::filter::{Field, Filter, Match};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

/// A `WHERE` clause (or empty string) and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sql {
    pub clause: String,
    pub params: Vec<Param>,
}

impl Sql {
    /// Adds a term to the clause, making it a `WHERE` clause if it was empty.
    pub fn and(&mut self, term: &str) {
        self.clause.push_str(if self.clause.is_empty() {
            "WHERE "
        } else {
            " AND "
        });
        self.clause.push_str(term);
    }
}

/// `$."id"."param"` with `"` and `\` escaped, for JSON path functions.
pub fn json_path(id: &str, param: &str) -> String {
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("$.\"{}\".\"{}\"", q(id), q(param))
}

/// The column a `FIELD=VALUE` match compares (the same name in both schemas).
pub fn field_column(field: Field) -> &'static str {
    match field {
        Field::Hostname => "hostname",
        Field::Source => "source",
        Field::Procid => "procid",
        Field::Msgid => "msgid",
        Field::Facility => "facility",
        Field::Protocol => "protocol",
    }
}

/// The parameter a `FIELD=VALUE` match binds: facilities by code (an unknown name
/// matches nothing), everything else as text.
pub fn field_param(field: Field, value: &str) -> Param {
    match field {
        Field::Facility => match value.parse::<crate::message::Facility>() {
            Ok(f) => Param::Int(f.code().into()),
            Err(_) => Param::Int(-1),
        },
        _ => Param::Text(value.to_string()),
    }
}

/// A NULL field does not equal VALUE, so it matches `!=`: the CASE turns SQL's unknown
/// into false before negating (valid in both dialects).
pub fn negated(cond: &str) -> String {
    format!("(CASE WHEN {cond} THEN 1 ELSE 0 END) = 0")
}

/// What differs between the backends in the terms they share.
pub trait Dialect {
    /// Binds `p` and returns its placeholder.
    fn bind(&self, sql: &mut Sql, p: Param) -> String;
    /// `column` against a `-s`/`-H` style pattern: `*` and `?` globs, or plain equality
    /// without them (so an index can serve it).
    fn pattern(&self, sql: &mut Sql, column: &str, pattern: &str) -> String;
    /// Binds a text value compared with `column` (a dialect may convert it to the
    /// column's type).
    fn text(&self, sql: &mut Sql, _column: &str, value: String) -> String {
        self.bind(sql, Param::Text(value))
    }
    /// `SDID.PARAM=VALUE`: the element's parameter has the value (or, repeated, one of
    /// its values).
    fn sd(&self, sql: &mut Sql, id: &str, param: &str, value: &str) -> String;
}

/// `facility IN (…)` and every `FIELD=VALUE`, `FIELD!=VALUE` and `SDID.PARAM=VALUE` of
/// `f`, appended to `terms` (parameters bound in this order).
pub fn facility_and_match_terms(
    d: &impl Dialect,
    sql: &mut Sql,
    f: &Filter,
    terms: &mut Vec<String>,
) {
    if !f.facilities.is_empty() {
        let ps: Vec<String> = f
            .facilities
            .iter()
            .map(|x| d.bind(sql, Param::Int(x.code().into())))
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
                (d.pattern(sql, field_column(*field), value), *negate)
            }
            Match::Field {
                field,
                value,
                negate,
            } => {
                let column = field_column(*field);
                let p = match field_param(*field, value) {
                    Param::Text(t) => d.text(sql, column, t),
                    int => d.bind(sql, int),
                };
                (format!("{column} = {p}"), *negate)
            }
            Match::Sd {
                id,
                param,
                value,
                negate,
            } => (d.sd(sql, id, param, value), *negate),
        };
        terms.push(if negate { negated(&cond) } else { cond });
    }
}
