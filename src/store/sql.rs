//! What both backends' SQL renderers share: bound parameters and JSON paths. User text
//! only ever travels as a bound parameter, never as SQL.

use super::filter::Field;

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
