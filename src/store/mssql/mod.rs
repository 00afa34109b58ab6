//! The SQL Server store, through tiberius. The `Store` trait is synchronous (the relay's
//! writer and `logq` are plain threads); connections come from a small pool of our own
//! ([`pool`]), shared by the stores of one process. A connection is dropped after any
//! error or timeout and a new one made with exponential backoff; transient server errors
//! (deadlock 1205, database unavailable 4060, Azure 40613, …) are retried. Query results
//! are streamed to the caller row by row, never collected.
//!
//! Follow mode goes by `rowversion`, read only below `MIN_ACTIVE_ROWVERSION()`, so rows
//! that commit out of id order under several relays are never skipped.

pub mod connstr;
pub mod pool;
pub mod schema;
pub mod sql;

pub use sql::query_sql;

use super::columns::{self, COLUMNS, Column, TsqlType, Value};
use super::sql::Param;
use super::{Batch, Query, RecordRef, StoreError, StoreReader, StoreWriter, Visit};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::TryStreamExt;
use pool::Pool;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tiberius::{Client, ColumnData, ToSql, TokenRow};
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

/// The schema, applied batch by batch (`GO` separators) under an application lock.
pub const SCHEMA: &str = include_str!("../../../fixtures/mssql-schema.sql");

/// The follow cursor: the newest rowversion below every open transaction's.
pub const CURSOR_SQL: &str =
    "SELECT CAST(MAX(rv) AS bigint) FROM dbo.Logs WHERE rv < MIN_ACTIVE_ROWVERSION()";

const MAX_ATTEMPTS: u32 = 4;

type Conn = Client<Compat<TcpStream>>;

/// The table, in every statement.
pub const TABLE: &str = "dbo.Logs";

pub struct MssqlStore {
    pool: Arc<Pool>,
    last_seen: Option<i64>,
}

/// The longest prefix of `s` that fits in `max` UTF-16 code units (what nvarchar counts).
pub fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// Server errors worth retrying on a fresh connection: deadlock victim, database or
/// service temporarily unavailable, Azure SQL throttling and failover, network resets.
pub fn is_transient_code(code: u32) -> bool {
    matches!(
        code,
        1205 | 4060
            | 4221
            | 40143
            | 40197
            | 40501
            | 40613
            | 49918
            | 49919
            | 49920
            | 10928
            | 10929
            | 233
            | 64
            | 10053
            | 10054
            | 10060
            | 11001
    )
}

/// Whether a failed statement is worth a retry on a new connection (I/O and TLS
/// failures, redirects, and the transient server codes above).
pub fn is_transient(e: &tiberius::error::Error) -> bool {
    use tiberius::error::Error as E;
    match e {
        E::Io { .. } | E::Tls(_) | E::Routing { .. } => true,
        E::Server(s) => is_transient_code(s.code()),
        _ => false,
    }
}

pub(crate) fn sql_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Server(format!("SQL Server {what}: {e}"))
}

impl ToSql for Param {
    fn to_sql(&self) -> ColumnData<'_> {
        match self {
            Param::Int(i) => ColumnData::I64(Some(*i)),
            Param::Text(s) => ColumnData::String(Some(Cow::Borrowed(s))),
        }
    }
}

fn naive(us: i64) -> NaiveDateTime {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .naive_utc()
}

/// The columns bulk load writes, from the column list.
fn written() -> impl Iterator<Item = (&'static Column, columns::TsqlColumn)> {
    COLUMNS
        .iter()
        .filter_map(|c| c.tsql.filter(|t| t.write).map(|t| (c, t)))
}

/// Their names, for `bulk_insert_columns`.
static INSERT_COLUMNS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| written().map(|(_, t)| t.name).collect());

/// The columns queries read, after `id`, with their setters.
fn read_columns() -> impl Iterator<Item = (&'static Column, Setter)> {
    columns::readable(|c| c.tsql.is_some_and(|t| t.read.is_some()))
}

type Setter = for<'a> fn(&mut RecordRef<'a>, Value<'a>);

/// `time_us, DATEDIFF_BIG(…received), severity, …`: the SELECT list after `id`.
pub static SELECT_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    read_columns()
        .filter_map(|(c, _)| c.tsql?.read)
        .collect::<Vec<_>>()
        .join(", ")
});

/// A record value as bulk load sends it for a column of that type; text is cut to the
/// column's width.
fn to_column(v: Value<'_>, ty: TsqlType) -> ColumnData<'_> {
    use tiberius::IntoSql;
    match (v, ty) {
        (Value::Time(us), TsqlType::DateTime2) => naive(us).into_sql(),
        (Value::Int(i), TsqlType::TinyInt) => ColumnData::U8(Some(i.clamp(0, 255) as u8)),
        (Value::Null, TsqlType::TinyInt) => ColumnData::U8(None),
        (Value::Int(i) | Value::Time(i), TsqlType::BigInt) => ColumnData::I64(Some(i)),
        (Value::Null, TsqlType::BigInt) => ColumnData::I64(None),
        (Value::Text(s), TsqlType::NVarChar(Some(n)) | TsqlType::VarChar(n)) => {
            ColumnData::String(Some(Cow::Borrowed(truncate_utf16(s, n))))
        }
        (Value::Text(s), _) => ColumnData::String(Some(Cow::Borrowed(s))),
        (Value::Null, TsqlType::DateTime2) => ColumnData::DateTime2(None),
        (Value::Null, _) => ColumnData::String(None),
        (Value::Int(i) | Value::Time(i), _) => ColumnData::String(Some(Cow::Owned(i.to_string()))),
    }
}

fn token_row<'a>(r: &RecordRef<'a>) -> TokenRow<'a> {
    let mut row = TokenRow::new();
    for (c, t) in written() {
        row.push(to_column((c.get)(r), t.ty));
    }
    row
}

/// A result cell as a column-list value: any integer width (an original table may
/// have an `int` id), text, or NULL.
pub(crate) fn cell_value<'a>(data: &'a ColumnData<'_>) -> Value<'a> {
    match data {
        ColumnData::U8(Some(v)) => Value::Int((*v).into()),
        ColumnData::I16(Some(v)) => Value::Int((*v).into()),
        ColumnData::I32(Some(v)) => Value::Int((*v).into()),
        ColumnData::I64(Some(v)) => Value::Int(*v),
        ColumnData::String(Some(s)) => Value::Text(s),
        _ => Value::Null,
    }
}

/// A result row of [`query_sql`]'s SELECT as a record.
fn record(row: &tiberius::Row) -> (i64, RecordRef<'_>) {
    let mut cells = row.cells().map(|(_, data)| cell_value(data));
    let id = match cells.next() {
        Some(Value::Int(id)) => id,
        _ => 0,
    };
    let mut record = columns::EMPTY;
    for ((_, set), v) in read_columns().zip(cells) {
        set(&mut record, v);
    }
    (id, record)
}

impl MssqlStore {
    /// Parses the connection string; connections are made on first use, so a relay
    /// starts (and keeps retrying) while the server is unreachable. Each new
    /// connection brings the schema up to date.
    pub fn open_writer(conn_str: &str) -> Result<MssqlStore, StoreError> {
        Ok(MssqlStore {
            pool: Pool::shared(conn_str, true)?,
            last_seen: None,
        })
    }

    /// Brings the schema up to date step by step (`logrelayd migrate`).
    pub fn migrate(conn_str: &str, progress: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        Pool::shared(conn_str, false)?.migrate(progress)
    }

    /// The same for a reader, whose connections never change the schema.
    pub fn open_reader(conn_str: &str) -> Result<MssqlStore, StoreError> {
        Ok(MssqlStore {
            pool: Pool::shared(conn_str, false)?,
            last_seen: None,
        })
    }
}

/// Why one attempt failed: a server or network error that may be retried when it is
/// transient, or one that must not be (rows were already passed on).
enum Attempt {
    Retryable(tiberius::error::Error),
    Final(tiberius::error::Error),
}

impl From<tiberius::error::Error> for Attempt {
    fn from(e: tiberius::error::Error) -> Self {
        Attempt::Retryable(e)
    }
}

/// Runs an async block with a pooled connection (`$conn`, a [`pool::Pooled`]) within
/// `$limit`, retrying transient failures on a new connection with exponential backoff. A
/// connection that failed or timed out is discarded, not returned to the pool. A macro
/// rather than a closure so the block can borrow the caller's data.
macro_rules! with_retry {
    ($self:ident, $what:expr, $limit:expr, |$conn:ident| $body:expr) => {{
        let pool = &$self.pool;
        let limit: Option<Duration> = $limit;
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (transient, e) = match pool.get() {
                Ok(mut pooled) => {
                    let $conn = &mut pooled;
                    let fut = $body;
                    // The timer must be made inside the runtime: hence the async block.
                    let result = pool.block_on(async {
                        match limit {
                            Some(limit) => tokio::time::timeout(limit, fut).await,
                            None => Ok(fut.await),
                        }
                    });
                    let failure = match result {
                        Ok(Ok(v)) => break Ok(v),
                        Ok(Err(Attempt::Retryable(e))) => (is_transient(&e), sql_error($what, e)),
                        Ok(Err(Attempt::Final(e))) => (false, sql_error($what, e)),
                        Err(_) => (true, sql_error($what, "timed out")),
                    };
                    pooled.discard();
                    failure
                }
                Err(e) => (true, e),
            };
            if !transient || attempt == MAX_ATTEMPTS {
                break Err(e);
            }
            tracing::warn!(error = %e, attempt, "retrying in {delay:?}");
            std::thread::sleep(delay);
            delay *= 2;
        }
    }};
}

impl MssqlStore {
    /// The follow cursor: the newest rowversion below every open transaction's.
    fn cursor(&mut self) -> Result<Option<i64>, StoreError> {
        let limit = Some(self.pool.settings.command_timeout);
        with_retry!(self, "cursor", limit, |conn| async {
            let row = conn
                .client()
                .simple_query(CURSOR_SQL)
                .await?
                .into_row()
                .await?;
            Ok::<_, Attempt>(row.and_then(|r| r.try_get::<i64, _>(0).ok().flatten()))
        })
    }
}

impl StoreWriter for MssqlStore {
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        let n: usize = batches.iter().map(Batch::len).sum();
        let limit = Some(self.pool.settings.command_timeout);
        with_retry!(self, "bulk insert", limit, |conn| async {
            let mut req = conn
                .client()
                .bulk_insert_columns(TABLE, &INSERT_COLUMNS)
                .await?;
            for r in batches.iter().flat_map(Batch::iter) {
                req.send(token_row(&r)).await?;
            }
            req.finalize().await?;
            Ok::<_, Attempt>(())
        })?;
        Ok(n)
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        self.cursor()
    }
}

impl StoreReader for MssqlStore {
    /// Rows go to `visit` as they arrive. An error after the first row is not retried
    /// (the caller has seen rows). When `visit` stops early the connection is closed
    /// rather than reused: tiberius would read the rest of the result before the next
    /// statement, and for a dump piped into `head` a new login is cheaper.
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (sql, params) = query_sql(q);
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut seen = 0u64;
        // No limit on the whole: a dump may take long, at the reader's pace. Each wait
        // for the server is bounded by the command timeout (tiberius, per round trip).
        with_retry!(self, "query", None, |conn| async {
            let mut rows = conn
                .client()
                .query(sql.as_str(), &refs)
                .await?
                .into_row_stream();
            loop {
                let row = match rows.try_next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) if seen == 0 => return Err(Attempt::Retryable(e)),
                    Err(e) => return Err(Attempt::Final(e)),
                };
                seen += 1;
                let (id, record) = record(&row);
                if !visit(id, &record) {
                    drop(rows);
                    conn.discard();
                    break;
                }
            }
            Ok::<_, Attempt>(())
        })
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        self.cursor()
    }

    fn changed(&mut self) -> Result<bool, StoreError> {
        let now = self.cursor()?;
        let changed = now != self.last_seen;
        self.last_seen = now;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_utf16_units() {
        assert_eq!(truncate_utf16("abcdef", 4), "abcd");
        assert_eq!(
            truncate_utf16("ab😀cd", 3),
            "ab",
            "the emoji needs two units"
        );
        assert_eq!(truncate_utf16("ab😀cd", 4), "ab😀");
        assert_eq!(truncate_utf16("short", 255), "short");
    }

    #[test]
    fn retry_classification() {
        for code in [1205, 4060, 40613, 40501, 10054] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [208, 2627, 8152, 50000, 18456] {
            assert!(
                !is_transient_code(code),
                "{code}: invalid object, duplicate key, truncation, user error, login failed"
            );
        }
        let io = tiberius::error::Error::Io {
            kind: std::io::ErrorKind::ConnectionReset,
            message: "reset".into(),
        };
        assert!(is_transient(&io));
        assert!(!is_transient(&tiberius::error::Error::Conversion(
            "bad".into()
        )));
    }

    /// Every listed column is declared in the schema with the listed type, so bulk load
    /// and the schema cannot drift apart.
    #[test]
    fn schema_declares_every_listed_column() {
        for t in COLUMNS.iter().filter_map(|c| c.tsql) {
            let ty = t.ty.ddl();
            let declared = [
                format!("{} {ty}", t.name),
                format!("[{}] {ty}", t.name),
                format!("ADD {} AS", t.name),
            ];
            assert!(
                declared.iter().any(|d| SCHEMA.contains(d.as_str())),
                "{} {ty} is not in fixtures/mssql-schema.sql",
                t.name
            );
        }
    }
}
