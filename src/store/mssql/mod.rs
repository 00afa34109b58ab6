//! The SQL Server store, through tiberius. The `Store` trait is synchronous (the relay's
//! writer and `logq` are plain threads); connections come from a small pool of our own
//! ([`pool`]), shared by the stores of one process. A connection is dropped after any
//! error or timeout and a new one made with exponential backoff; transient server errors
//! (deadlock 1205, database unavailable 4060, Azure 40613, …) are retried. Query results
//! are streamed to the caller row by row, never collected.
//!
//! Follow mode goes by `rowversion`, read only below `MIN_ACTIVE_ROWVERSION()`, so rows
//! that commit out of id order under several relays are never skipped.

pub mod catalog;
pub mod client_seq;
pub mod connstr;
pub mod pool;
pub mod schema;
pub mod sql;

pub use sql::{query_sql, query_sql_for};

use super::columns::{self, COLUMNS, Column, TsqlType, Value};
use super::sql::Param;
use super::{Batch, Query, RecordRef, StoreError, StoreReader, StoreWriter, Visit};
use catalog::{Actual, Catalog, FitValue};
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

/// Attempts at most for errors worth retrying: network failures and timeouts (about
/// 0.7 s of backoff in all), and a server that is failing over or throttling, which takes
/// seconds to a minute (about 45 s of backoff, 8 s apart at most).
const MAX_ATTEMPTS: u32 = 4;
const FAILOVER_ATTEMPTS: u32 = 11;
const MAX_DELAY: Duration = Duration::from_secs(8);

type Conn = Client<Compat<TcpStream>>;

/// The table, in every statement.
pub const TABLE: &str = "dbo.Logs";

pub struct MssqlStore {
    pool: Arc<Pool>,
    last_seen: Option<i64>,
    /// Whether the last failed call failed for a reason worth retrying.
    last_transient: bool,
    /// The last row of a bulk load whose outcome is unknown (it timed out or the
    /// connection broke: it may have committed), as `(time_us, received_us)`.
    unsure: Option<(i64, i64)>,
}

/// Whether a bulk load whose outcome is unknown committed: its last row is there (a
/// bulk load commits all its rows or none). `time_us` within 4 ms: an original
/// table's `datetime` rounds to 3.33 ms; `received` is ours, `datetime2(6)`, exact.
pub const COMMITTED_SQL: &str = "SELECT COUNT_BIG(*) FROM dbo.Logs \
    WHERE time_us BETWEEN @P1 AND @P2 AND received = @P3";

fn row_key(r: &RecordRef<'_>) -> (i64, i64) {
    (r.time_us, r.received_us)
}

/// A row to load and, when its sender asked for acknowledgements and named itself, the
/// sender's name and the row's sequence number (a resent row is dropped, see
/// [`client_seq`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadRow<'a> {
    record: RecordRef<'a>,
    seq: Option<(&'a str, u64)>,
}

/// A batch's rows with their senders' sequence numbers (0: a row sent without one).
fn load_rows(b: &Batch) -> impl Iterator<Item = LoadRow<'_>> {
    let numbered = b
        .delivery()
        .and_then(|d| Some((d.client.as_deref()?, d.seqs.as_slice())));
    b.iter().enumerate().map(move |(i, record)| LoadRow {
        record,
        seq: numbered.and_then(|(client, seqs)| {
            let seq = seqs.get(i).copied().filter(|&s| s > 0)?;
            Some((client, seq))
        }),
    })
}

/// One bulk load of `rows` on `client` (in the open transaction, if there is one).
async fn load<'r, 'a: 'r>(
    client: &mut Conn,
    rows: impl Iterator<Item = &'r RecordRef<'a>>,
    catalog: &Catalog,
) -> tiberius::Result<()> {
    let mut req = client.bulk_insert_columns(TABLE, &INSERT_COLUMNS).await?;
    for r in rows {
        req.send(token_row(r, catalog)).await?;
    }
    req.finalize().await?;
    Ok(())
}

async fn committed(
    client: &mut Conn,
    (time_us, received_us): (i64, i64),
) -> tiberius::Result<bool> {
    let (lo, hi) = (time_us.saturating_sub(4_000), time_us.saturating_add(4_000));
    let received = naive(received_us);
    let row = client
        .query(COMMITTED_SQL, &[&lo, &hi, &received])
        .await?
        .into_row()
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten())
        .unwrap_or(0)
        > 0)
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

/// Server codes that mean "unavailable for now": a failover or reconfiguration
/// (40613, 40197, 4060, 49918–49920) or throttling (40501, 10928, 10929).
pub fn is_failover_code(code: u32) -> bool {
    matches!(
        code,
        4060 | 40197 | 40501 | 40613 | 49918 | 49919 | 49920 | 10928 | 10929
    )
}

fn is_failover(e: &tiberius::error::Error) -> bool {
    matches!(e, tiberius::error::Error::Server(s) if is_failover_code(s.code()))
}

/// A failed statement's error, marked when the server is failing over.
fn statement_error(what: &str, e: tiberius::error::Error) -> StoreError {
    if is_failover(&e) {
        StoreError::Unavailable(format!("SQL Server {what}: {e}"))
    } else {
        sql_error(what, e)
    }
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

/// The columns bulk load writes, in order (what tiberius asks the server about).
pub fn insert_columns() -> &'static [&'static str] {
    &INSERT_COLUMNS
}

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

/// What the schema declares for a listed type, when the catalog is not known.
fn listed(ty: TsqlType) -> Actual {
    match ty {
        TsqlType::NVarChar(n) => Actual::Unicode(n),
        TsqlType::VarChar(n) => Actual::Unicode(Some(n)),
        _ => Actual::Other,
    }
}

/// A record value as bulk load sends it for a column, cut and converted to the
/// column's real type (`actual`, from the catalog) or else to the listed one.
fn to_column(v: Value<'_>, ty: TsqlType, actual: Option<Actual>) -> ColumnData<'_> {
    use tiberius::IntoSql;
    match (actual.unwrap_or(listed(ty)).fit(v), ty) {
        (FitValue::Time(us), _) => naive(us).into_sql(),
        (FitValue::Int(i), TsqlType::TinyInt) => ColumnData::U8(Some(i.clamp(0, 255) as u8)),
        (FitValue::Int(i), TsqlType::BigInt) => ColumnData::I64(Some(i)),
        (FitValue::Int(i), _) => ColumnData::String(Some(Cow::Owned(i.to_string()))),
        (FitValue::Text(s), _) => ColumnData::String(Some(s)),
        (FitValue::Null, TsqlType::TinyInt) => ColumnData::U8(None),
        (FitValue::Null, TsqlType::BigInt) => ColumnData::I64(None),
        (FitValue::Null, TsqlType::DateTime2) => ColumnData::DateTime2(None),
        (FitValue::Null, _) => ColumnData::String(None),
    }
}

fn token_row<'a>(r: &RecordRef<'a>, catalog: &Catalog) -> TokenRow<'a> {
    let mut row = TokenRow::new();
    for (c, t) in written() {
        row.push(to_column((c.get)(r), t.ty, catalog.get(t.name)));
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
            last_transient: false,
            unsure: None,
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
            last_transient: false,
            unsure: None,
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
            let (transient, e): (bool, StoreError) = match pool.get() {
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
                        Ok(Err(Attempt::Retryable(e))) => (is_transient(&e), statement_error($what, e)),
                        Ok(Err(Attempt::Final(e))) => (false, sql_error($what, e)),
                        Err(_) => (true, sql_error($what, "timed out")),
                    };
                    pooled.discard();
                    failure
                }
                Err(e) => (true, e),
            };
            let most = if matches!(e, StoreError::Unavailable(_)) {
                FAILOVER_ATTEMPTS
            } else {
                MAX_ATTEMPTS
            };
            if !transient || attempt >= most {
                $self.last_transient = transient;
                break Err(e);
            }
            tracing::warn!(error = %e, attempt, "retrying in {delay:?}");
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_DELAY);
        }
    }};
}

pub mod retention;

/// A result cell of a small result ([`MssqlStore::small_query`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(i64),
    Text(String),
    Null,
}

impl MssqlStore {
    /// Runs a statement with a small result (a few rows) and returns its first result
    /// set, retried like every statement. Without parameters it goes as a plain batch.
    fn small_query(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let limit = Some(self.pool.settings.command_timeout);
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        with_retry!(self, what, limit, |conn| async {
            let client = conn.client();
            let stream = if refs.is_empty() {
                client.simple_query(sql).await?
            } else {
                client.query(sql, &refs).await?
            };
            let rows = stream.into_first_result().await?;
            Ok::<_, Attempt>(
                rows.iter()
                    .map(|r| {
                        r.cells()
                            .map(|(_, d)| match cell_value(d) {
                                Value::Int(i) | Value::Time(i) => Cell::Int(i),
                                Value::Text(s) => Cell::Text(s.to_string()),
                                Value::Null => Cell::Null,
                            })
                            .collect()
                    })
                    .collect(),
            )
        })
    }
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

impl MssqlStore {
    /// One bulk load of `rows`, retried on transient failures; returns how many rows it
    /// stored. Rows of acknowledging clients are loaded in a transaction that reads and
    /// moves their marks in `dbo.ClientSeq` ([`client_seq`]), so a resent row is dropped
    /// (and the load is as fast as before: still one bulk load).
    ///
    /// A load that timed out or lost its connection may still have committed: before it
    /// is tried again (here, or when the writer retries the same rows) the table is asked
    /// whether its last row without a sequence number is there, so a retry never stores
    /// the rows twice (rows with one are dropped by their marks on the retry).
    fn bulk(&mut self, rows: &[LoadRow<'_>]) -> Result<usize, StoreError> {
        let limit = Some(self.pool.settings.command_timeout);
        let catalog = self.pool.catalog();
        let last = rows
            .iter()
            .rev()
            .find(|r| r.seq.is_none())
            .map(|r| row_key(&r.record));
        let numbered = rows.iter().any(|r| r.seq.is_some());
        let check_first = std::cell::Cell::new(last.is_some() && self.unsure == last);
        let result = with_retry!(self, "bulk insert", limit, |conn| async {
            if let Some(key) = last.filter(|_| check_first.replace(true))
                && committed(conn.client(), key).await?
            {
                return Ok::<_, Attempt>(rows.len());
            }
            let client = conn.client();
            if !numbered {
                load(client, rows.iter().map(|r| &r.record), &catalog).await?;
                return Ok(rows.len());
            }
            client.begin_transaction().await?;
            let mut marks = client_seq::Marks::of(rows.iter().map(|r| r.seq));
            marks.read(client).await?;
            let keep: Vec<&RecordRef<'_>> = rows
                .iter()
                .filter(|r| marks.admit(r.seq))
                .map(|r| &r.record)
                .collect();
            if !keep.is_empty() {
                load(client, keep.iter().copied(), &catalog).await?;
            }
            marks.write(client).await?;
            client.commit_transaction().await?;
            Ok(keep.len())
        });
        self.unsure = match &result {
            Err(_) if self.last_transient => last,
            _ => None,
        };
        result
    }
}

/// Something that bulk-loads rows: what [`load_splitting`] drives.
pub(crate) trait Loader<R> {
    /// Loads all rows or none; returns how many it stored (fewer when some were
    /// resent); the error says whether a retry may succeed.
    fn load(&mut self, rows: &[R]) -> Result<usize, (bool, StoreError)>;
    /// A row that failed alone for good: stored another way, or dropped and logged.
    /// Returns how many rows that stored (0 or 1).
    fn set_aside(&mut self, row: &R, why: StoreError) -> usize;
}

/// Loads `rows`; when a load fails for good (a value the server will never take),
/// halves the rows until the failing ones stand alone and sets those aside, so one
/// bad row never blocks the rest. A transient failure is returned as it is.
pub(crate) fn load_splitting<R>(l: &mut impl Loader<R>, rows: &[R]) -> Result<usize, StoreError> {
    match l.load(rows) {
        Ok(n) => Ok(n),
        Err((true, e)) => Err(e),
        Err((false, e)) => split(l, rows, e),
    }
}

fn split<R>(l: &mut impl Loader<R>, rows: &[R], why: StoreError) -> Result<usize, StoreError> {
    if let [row] = rows {
        return Ok(l.set_aside(row, why));
    }
    let (a, b) = rows.split_at(rows.len() / 2);
    let mut n = 0;
    for part in [a, b] {
        n += match l.load(part) {
            Ok(stored) => stored,
            Err((true, e)) => return Err(e),
            Err((false, e)) => split(l, part, e)?,
        };
    }
    Ok(n)
}

static SET_ASIDE: crate::log_limit::Limiter =
    crate::log_limit::Limiter::new("rows SQL Server refused stored as raw text");
static DROPPED: crate::log_limit::Limiter =
    crate::log_limit::Limiter::new("rows SQL Server refused even as raw text (lost)");

/// A record reduced to what any table takes: the message with every non-ASCII
/// character escaped (`\u{e9}`), no header fields, protocol `raw`.
fn as_raw_text(r: &RecordRef<'_>) -> String {
    let mut out = String::with_capacity(r.message.len() + 16);
    for c in r.message.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

impl<'a> Loader<LoadRow<'a>> for MssqlStore {
    fn load(&mut self, rows: &[LoadRow<'a>]) -> Result<usize, (bool, StoreError)> {
        self.bulk(rows).map_err(|e| (self.last_transient, e))
    }

    fn set_aside(&mut self, row: &LoadRow<'a>, why: StoreError) -> usize {
        let message = as_raw_text(&row.record);
        let raw = LoadRow {
            record: RecordRef {
                message: &message,
                hostname: None,
                source: None,
                procid: None,
                msgid: None,
                structured_data: None,
                protocol: crate::message::Protocol::Raw,
                ..row.record
            },
            seq: row.seq,
        };
        match self.bulk(std::slice::from_ref(&raw)) {
            Ok(n) => {
                crate::error_limited!(SET_ASIDE, error = %why, "SQL Server refused a row; stored it as raw text");
                n
            }
            Err(e) => {
                crate::error_limited!(DROPPED, error = %e, first_error = %why, "SQL Server refused a row even as raw text; it is lost");
                0
            }
        }
    }
}

impl StoreWriter for MssqlStore {
    /// One bulk load per call; a batch the server refuses for good is split so only
    /// the rows it cannot take are set aside (see [`load_splitting`]). Returns the rows
    /// stored: resent rows of acknowledging clients are not.
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        let rows: Vec<LoadRow<'_>> = batches.iter().flat_map(load_rows).collect();
        load_splitting(self, &rows)
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        self.cursor()
    }
}

impl MssqlStore {
    /// Runs a SELECT of [`query_sql`]'s columns and passes its rows to `visit` as they
    /// arrive; with `words`, only the rows holding them (and `limit` counts those). An
    /// error after the first row is not retried (the caller has seen rows). When
    /// `visit` stops early the connection is closed rather than reused: tiberius would
    /// read the rest of the result before the next statement, and for a dump piped
    /// into `head` a new login is cheaper.
    fn stream(
        &mut self,
        sql: &str,
        params: &[Param],
        words: &super::Words,
        limit: Option<u64>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut seen = 0u64;
        let mut left = limit.unwrap_or(u64::MAX);
        let mut buf = String::new();
        // No limit on the whole: a dump may take long, at the reader's pace. Each wait
        // for the server is bounded by the command timeout (tiberius, per round trip).
        with_retry!(self, "query", None, |conn| async {
            let mut rows = conn.client().query(sql, &refs).await?.into_row_stream();
            loop {
                let row = match rows.try_next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) if seen == 0 => return Err(Attempt::Retryable(e)),
                    Err(e) => return Err(Attempt::Final(e)),
                };
                seen += 1;
                let (id, record) = record(&row);
                // `-w`: T-SQL cannot tell whole words apart case-insensitively the way
                // the SQLite store does, so rows are checked here (a scan).
                if !words.is_empty() {
                    let r = &record;
                    if !words.matches(r.message, r.hostname, r.source, r.structured_data, &mut buf)
                    {
                        continue;
                    }
                    if left == 0 {
                        drop(rows);
                        conn.discard();
                        break;
                    }
                    left -= 1;
                }
                if !visit(id, &record) {
                    drop(rows);
                    conn.discard();
                    break;
                }
            }
            Ok::<_, Attempt>(())
        })
    }
}

impl StoreReader for MssqlStore {
    /// Rows go to `visit` as they arrive (see [`MssqlStore::stream`]).
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (sql, params) = query_sql_for(q, &self.pool.catalog());
        self.stream(&sql, &params, &q.filter.words, q.limit, visit)
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

    /// A fake loader that refuses any part holding a bad row (and, as raw text, the
    /// worst one): the good rows are all stored, each bad row set aside alone.
    struct Fake {
        loads: Vec<Vec<u32>>,
        stored: Vec<u32>,
        aside: Vec<u32>,
        transient_after: Option<usize>,
    }

    impl Loader<u32> for Fake {
        fn load(&mut self, rows: &[u32]) -> Result<usize, (bool, StoreError)> {
            self.loads.push(rows.to_vec());
            if self.transient_after.is_some_and(|n| self.loads.len() > n) {
                return Err((true, StoreError::Server("deadlock".into())));
            }
            if rows.iter().any(|r| r % 100 == 0) {
                return Err((false, StoreError::Server("conversion".into())));
            }
            self.stored.extend_from_slice(rows);
            Ok(rows.len())
        }
        fn set_aside(&mut self, row: &u32, _why: StoreError) -> usize {
            self.aside.push(*row);
            usize::from(*row != 200)
        }
    }

    #[test]
    fn a_batch_refused_for_good_is_split_around_its_bad_rows() {
        let rows: Vec<u32> = (1..=1000).collect();
        let mut f = Fake {
            loads: vec![],
            stored: vec![],
            aside: vec![],
            transient_after: None,
        };
        let n = load_splitting(&mut f, &rows[..250]).unwrap();
        assert_eq!(f.aside, [100, 200]);
        assert_eq!(n, 249, "248 good rows and one set aside as raw; 200 lost");
        let mut stored = f.stored.clone();
        stored.sort();
        assert_eq!(stored.len(), 248);
        assert!(stored.iter().all(|r| r % 100 != 0));
        assert!(
            f.loads.len() < 40,
            "halving, not row by row: {}",
            f.loads.len()
        );
        // A good batch is one load.
        let mut f = Fake {
            loads: vec![],
            stored: vec![],
            aside: vec![],
            transient_after: None,
        };
        assert_eq!(load_splitting(&mut f, &rows[..99]).unwrap(), 99);
        assert_eq!(f.loads.len(), 1);
        // A transient failure while splitting is returned, for the writer to retry.
        let mut f = Fake {
            loads: vec![],
            stored: vec![],
            aside: vec![],
            transient_after: Some(2),
        };
        assert!(load_splitting(&mut f, &rows[..250]).is_err());
    }

    #[test]
    fn raw_text_is_ascii() {
        let r = RecordRef {
            message: "naïve ✓",
            ..columns::EMPTY
        };
        assert_eq!(as_raw_text(&r), "na\\u{ef}ve \\u{2713}");
    }

    #[test]
    fn failovers_get_the_long_retry_budget() {
        for code in [40613, 40197, 40501, 4060, 49918] {
            assert!(is_failover_code(code) && is_transient_code(code), "{code}");
        }
        assert!(
            !is_failover_code(1205),
            "a deadlock is retried at once, briefly"
        );
        // 100 ms doubling, 8 s apart at most: about 45 s in all.
        let mut delay = Duration::from_millis(100);
        let mut total = Duration::ZERO;
        for _ in 1..FAILOVER_ATTEMPTS {
            total += delay;
            delay = (delay * 2).min(MAX_DELAY);
        }
        assert!(
            total > Duration::from_secs(30) && total < Duration::from_secs(60),
            "{total:?}"
        );
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
