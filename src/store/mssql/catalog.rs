//! The real types of `dbo.Logs`'s columns, read from the catalog on each writer
//! connection. An original table keeps `message TEXT`, `source VARCHAR(50)` and
//! `timestamp DATETIME`: values are cut and converted to what those columns hold
//! (characters outside the column's code page become `?`, lengths in the code page's
//! bytes, dates into the type's range), so one unusual row cannot fail a whole bulk
//! load again and again.

use super::{Conn, cell_value, sql_error, truncate_utf16};
use crate::store::StoreError;
use crate::store::columns::Value;
use encoding_rs::{EncoderResult, Encoding};
use std::borrow::Cow;
use std::collections::HashMap;

/// Each column's type name, length in bytes (-1: max) and code page (non-Unicode text).
pub const CATALOG_SQL: &str = "SELECT c.name, t.name, CAST(c.max_length AS int), \
    CAST(COLLATIONPROPERTY(c.collation_name, 'CodePage') AS int) \
    FROM sys.columns c JOIN sys.types t ON t.user_type_id = c.user_type_id \
    WHERE c.object_id = OBJECT_ID(N'dbo.Logs')";

/// What a column really holds, as far as fitting values goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Actual {
    /// `nvarchar(n)`, `nchar(n)`, `ntext`: `n` UTF-16 units, `None` for max.
    Unicode(Option<usize>),
    /// `varchar(n)`, `char(n)`, `text`: `n` bytes in the encoding, `None` for max.
    Bytes(Option<usize>, &'static Encoding),
    /// A date and time type, and its range in µs since the epoch.
    Time {
        min_us: i64,
        max_us: i64,
    },
    Other,
}

/// 0001-01-01 and 9999-12-31 23:59:59.999999, datetime2's range.
const DATETIME2_MIN: i64 = -62_135_596_800_000_000;
const DATETIME2_MAX: i64 = 253_402_300_799_999_999;
/// 1900-01-01: tiberius converts to `datetime` only from here on (the type itself
/// starts in 1753); 9999-12-31 23:59:59.997 its end.
const DATETIME_MIN: i64 = -2_208_988_800_000_000;
const DATETIME_MAX: i64 = 253_402_300_799_997_000;
/// smalldatetime: 1900-01-01 to 2079-06-06 23:59.
const SMALLDATETIME_MAX: i64 = 3_453_839_940_000_000;

/// The Windows code pages of SQL Server collations, as encodings.
fn encoding_for(code_page: i64) -> &'static Encoding {
    use encoding_rs as e;
    match code_page {
        874 => e::WINDOWS_874,
        932 => e::SHIFT_JIS,
        936 => e::GBK,
        949 => e::EUC_KR,
        950 => e::BIG5,
        1250 => e::WINDOWS_1250,
        1251 => e::WINDOWS_1251,
        1253 => e::WINDOWS_1253,
        1254 => e::WINDOWS_1254,
        1255 => e::WINDOWS_1255,
        1256 => e::WINDOWS_1256,
        1257 => e::WINDOWS_1257,
        1258 => e::WINDOWS_1258,
        65001 => e::UTF_8,
        _ => e::WINDOWS_1252,
    }
}

impl Actual {
    /// From a catalog row: type name, `max_length` in bytes, code page.
    pub fn from_catalog(ty: &str, max_length: i64, code_page: Option<i64>) -> Actual {
        let len = (max_length > 0).then_some(max_length as usize);
        match ty.to_ascii_lowercase().as_str() {
            "nvarchar" | "nchar" => Actual::Unicode(len.map(|b| b / 2)),
            "ntext" => Actual::Unicode(None),
            "varchar" | "char" => Actual::Bytes(len, encoding_for(code_page.unwrap_or(1252))),
            "text" => Actual::Bytes(None, encoding_for(code_page.unwrap_or(1252))),
            "datetime" => Actual::Time {
                min_us: DATETIME_MIN,
                max_us: DATETIME_MAX,
            },
            "smalldatetime" => Actual::Time {
                min_us: DATETIME_MIN,
                max_us: SMALLDATETIME_MAX,
            },
            "datetime2" | "date" | "datetimeoffset" => Actual::Time {
                min_us: DATETIME2_MIN,
                max_us: DATETIME2_MAX,
            },
            _ => Actual::Other,
        }
    }

    /// A value cut or converted to fit the column.
    pub fn fit<'a>(self, v: Value<'a>) -> FitValue<'a> {
        match (self, v) {
            (Actual::Unicode(Some(n)), Value::Text(s)) => {
                FitValue::Text(Cow::Borrowed(truncate_utf16(s, n)))
            }
            (Actual::Bytes(max, enc), Value::Text(s)) => FitValue::Text(fit_bytes(s, max, enc)),
            (Actual::Time { min_us, max_us }, Value::Time(us)) => {
                FitValue::Time(us.clamp(min_us, max_us))
            }
            (_, Value::Text(s)) => FitValue::Text(Cow::Borrowed(s)),
            (_, Value::Time(us)) => FitValue::Time(us.clamp(DATETIME2_MIN, DATETIME2_MAX)),
            (_, Value::Int(i)) => FitValue::Int(i),
            (_, Value::Null) => FitValue::Null,
        }
    }
}

/// A value made to fit its column.
#[derive(Debug, Clone, PartialEq)]
pub enum FitValue<'a> {
    Null,
    Int(i64),
    Time(i64),
    Text(Cow<'a, str>),
}

/// `s` with every character the encoding cannot hold as `?`, cut to `max` bytes of that
/// encoding (never inside a character). ASCII passes without a copy.
fn fit_bytes<'a>(s: &'a str, max: Option<usize>, enc: &'static Encoding) -> Cow<'a, str> {
    if s.is_ascii() {
        return Cow::Borrowed(max.map_or(s, |m| &s[..s.len().min(m)]));
    }
    let mut out = String::with_capacity(s.len());
    let mut used = 0;
    let mut one = [0u8; 4];
    let mut encoded = [0u8; 16];
    for c in s.chars() {
        let text = c.encode_utf8(&mut one);
        let (result, _, written) =
            enc.new_encoder()
                .encode_from_utf8_without_replacement(text, &mut encoded, true);
        let (c, bytes) = match result {
            EncoderResult::InputEmpty => (c, written),
            _ => ('?', 1),
        };
        if max.is_some_and(|m| used + bytes > m) {
            break;
        }
        out.push(c);
        used += bytes;
    }
    Cow::Owned(out)
}

/// The columns of `dbo.Logs` by lower-case name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    columns: HashMap<String, Actual>,
}

impl Catalog {
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str, i64, Option<i64>)>,
    ) -> Catalog {
        Catalog {
            columns: rows
                .into_iter()
                .map(|(name, ty, len, cp)| {
                    (name.to_ascii_lowercase(), Actual::from_catalog(ty, len, cp))
                })
                .collect(),
        }
    }

    /// The column's real type, if the catalog knows it.
    pub fn get(&self, column: &str) -> Option<Actual> {
        self.columns.get(&column.to_ascii_lowercase()).copied()
    }
}

pub async fn read(client: &mut Conn) -> Result<Catalog, StoreError> {
    let run = async {
        client
            .simple_query(CATALOG_SQL)
            .await?
            .into_first_result()
            .await
    };
    let rows = run.await.map_err(|e| sql_error("column catalog", e))?;
    let mut out = Vec::new();
    for row in &rows {
        let cells: Vec<Value<'_>> = row.cells().map(|(_, d)| cell_value(d)).collect();
        let text = |i: usize| match cells.get(i) {
            Some(Value::Text(s)) => *s,
            _ => "",
        };
        let int = |i: usize| match cells.get(i) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        out.push((text(0), text(1), int(2).unwrap_or(-1), int(3)));
    }
    Ok(Catalog::from_rows(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original table's columns: text outside code page 1252, a source longer than
    /// 50 bytes, a date before 1900 — each made to fit instead of failing the load.
    #[test]
    fn values_fit_the_original_tables_columns() {
        let c = Catalog::from_rows([
            ("message", "text", 16, Some(1252)),
            ("source", "varchar", 50, Some(1252)),
            ("timestamp", "datetime", 8, None),
            ("hostname", "nvarchar", 510, None),
            ("peer", "varchar", 20, Some(65001)),
        ]);
        let fit = |col: &str, v| c.get(col).unwrap().fit(v);
        assert_eq!(
            fit("message", Value::Text("naïve café ✓ 日本")),
            FitValue::Text("naïve café ? ??".into()),
            "é and ï are in 1252, ✓ and kanji are not"
        );
        let long = "é".repeat(60);
        let FitValue::Text(s) = fit("source", Value::Text(&long)) else {
            panic!()
        };
        assert_eq!(s.chars().count(), 50, "50 bytes of 1252: 50 characters");
        let ascii = "a".repeat(80);
        assert_eq!(
            fit("source", Value::Text(&ascii)),
            FitValue::Text("a".repeat(50).into())
        );
        let year_1800 = -5_364_662_400_000_000;
        assert_eq!(
            fit("timestamp", Value::Time(year_1800)),
            FitValue::Time(DATETIME_MIN)
        );
        let now = 1_790_000_000_000_000;
        assert_eq!(fit("timestamp", Value::Time(now)), FitValue::Time(now));
        let host = "😀".repeat(200);
        let FitValue::Text(h) = fit("hostname", Value::Text(&host)) else {
            panic!()
        };
        assert_eq!(
            h.chars().count(),
            127,
            "255 UTF-16 units hold 127 surrogate pairs"
        );
        let FitValue::Text(p) = fit("peer", Value::Text("✓✓✓✓✓✓✓✓")) else {
            panic!()
        };
        assert_eq!(
            p, "✓✓✓✓✓✓",
            "UTF-8 collation: 20 bytes hold six 3-byte characters"
        );
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn catalog_types() {
        assert_eq!(
            Actual::from_catalog("nvarchar", -1, None),
            Actual::Unicode(None)
        );
        assert_eq!(
            Actual::from_catalog("NVARCHAR", 64, None),
            Actual::Unicode(Some(32))
        );
        assert_eq!(Actual::from_catalog("tinyint", 1, None), Actual::Other);
    }
}
