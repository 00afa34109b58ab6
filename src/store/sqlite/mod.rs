//! The embedded store: one SQLite file in WAL mode, so `logq` reads while the relay
//! writes. Queries use integer microseconds (`time_us`: compact, fast range scans);
//! the original SQL Server table's `timestamp` and `LogLevel` are stored as text beside
//! them so old readers keep working. (Generated columns were tried: SQLite computes
//! even VIRTUAL ones on every insert, and its strftime cost more than storing text.)
//!
//! Indexes: the rowid only. Time, severity, facility, source and host are served by
//! block summaries ([`blocks`]) instead of per-row indexes, which let one writer store
//! about twice as many rows a second (and without the time index a third more again).

mod blocks;
mod checkpoint;
mod file;
mod newest_first;
mod peer;
mod query;
mod raw_insert;
mod raw_select;
pub mod retention;
pub mod sql;
mod stats;
mod token_filer;
mod tokens;

use super::columns::{COLUMNS, Dict, Stored, Value};
use super::{
    Batch, Query, RecordRef, StatRow, StatsQuery, StoreError, StoreReader, StoreWriter, Visit,
};
use blocks::{Pending, RowFacts};
use checkpoint::Checkpointer;
use file::Found;
use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One schema step: SQL, then optionally Rust that fills in what SQL cannot.
struct Migration {
    sql: &'static str,
    fill: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

/// Each entry moves the schema from version N to N+1 (`PRAGMA user_version`).
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: MIGRATION_1,
        fill: None,
    },
    Migration {
        sql: MIGRATION_2,
        fill: Some(blocks::backfill),
    },
    Migration {
        sql: MIGRATION_3,
        fill: None,
    },
    Migration {
        sql: MIGRATION_4,
        fill: Some(backfill_4),
    },
    Migration {
        sql: MIGRATION_5,
        fill: Some(copy_rows_5),
    },
    Migration {
        sql: MIGRATION_6,
        fill: Some(tokens::backfill),
    },
    Migration {
        sql: MIGRATION_7,
        fill: Some(blocks::backfill_ranges),
    },
    Migration {
        sql: MIGRATION_8,
        fill: None,
    },
];

/// Migration 4's fill: counts per block. (Its token filters are schema 6's now, made
/// by that step's fill.)
fn backfill_4(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    blocks::backfill_counts(tx)
}

const MIGRATION_1: &str =
    // 1: the Logs table and the indexes the logq filters use. The severity index covers
    // only warning and worse: the rows people filter for, ~12 % of a real stream. Queries
    // for commoner levels walk the time index instead; the relay writes ~15 % faster.
    "CREATE TABLE Logs (
        id INTEGER PRIMARY KEY,
        time_us INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        facility INTEGER,
        hostname TEXT,
        source TEXT,
        host_id INTEGER,
        source_id INTEGER,
        procid TEXT,
        msgid TEXT,
        structured_data TEXT,
        message TEXT NOT NULL,
        protocol TEXT NOT NULL,
        peer TEXT,
        timestamp TEXT NOT NULL,
        LogLevel TEXT NOT NULL
    );
    CREATE INDEX Logs_time ON Logs (time_us);
    CREATE INDEX Logs_severity_time ON Logs (severity, time_us) WHERE severity <= 4;
    CREATE INDEX Logs_source_time ON Logs (source_id, time_us);
    CREATE INDEX Logs_host_time ON Logs (host_id, time_us);
    CREATE TABLE Sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE Hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);";

const MIGRATION_2: &str =
    // 2: block summaries replace the severity, source and host indexes; the rows
    // already stored are summarised by `blocks::backfill` in the same transaction.
    "DROP INDEX Logs_severity_time;
    DROP INDEX Logs_source_time;
    DROP INDEX Logs_host_time;
    CREATE TABLE LogBlocks (
        block INTEGER PRIMARY KEY,    -- Logs.id >> 12: ids block*4096 to block*4096+4095
        min_time_us INTEGER NOT NULL,
        max_time_us INTEGER NOT NULL,
        severities INTEGER NOT NULL,  -- bit n: a row of severity n
        facilities INTEGER NOT NULL,  -- bit n: a row of facility n; bit 24: none
        sources BLOB,                 -- (Sources.id delta as LEB128, severity bits) pairs
        hosts BLOB                    -- the same for Hosts.id; NULL: unknown, any
    );";

const MIGRATION_3: &str =
    // 3: acknowledged delivery: the last sequence number stored per sending client,
    // written in the transaction that stores its rows, so a resent row is dropped.
    "CREATE TABLE ClientSeq (
        client TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    );";

const MIGRATION_4: &str =
    // 4: rows per severity in each block summary (for counts and stats), and per complete
    // block a Bloom filter of its words (for word search); both filled by `backfill_4`.
    "ALTER TABLE LogBlocks ADD COLUMN counts BLOB; -- 8 x u16 LE: rows per severity
    CREATE TABLE LogTokens (
        block INTEGER PRIMARY KEY,    -- LogBlocks.block, once the block is complete
        filter BLOB NOT NULL          -- split-block Bloom filter of XXH3 token hashes
    );";

/// The `Logs` view's SELECT over the base table `LogRows` (with `$hint` after the base
/// table: readers that scan id ranges say `NOT INDEXED`). The dictionaries are LEFT
/// JOINed on their primary keys, which SQLite leaves out of a query that reads none of
/// their columns; `timestamp` and `LogLevel` are computed only when selected.
macro_rules! logs_select {
    ($hint:literal) => {
        concat!(
            "SELECT r.id AS id, r.time_us AS time_us, r.received_us AS received_us,
        r.severity AS severity, r.facility AS facility,
        h.name AS hostname, s.name AS source, r.host_id AS host_id, r.source_id AS source_id,
        r.procid AS procid, r.msgid AS msgid, r.structured_data AS structured_data,
        r.message AS message,
        CASE r.protocol WHEN 0 THEN 'rfc5424' WHEN 1 THEN 'rfc3164' WHEN 2 THEN 'json'
            ELSE 'raw' END AS protocol,
        CASE WHEN r.peer_port IS NULL THEN p.name ELSE p.name || ':' || r.peer_port END AS peer,
        r.peer_id AS peer_id, r.peer_port AS peer_port,
        strftime('%Y-%m-%dT%H:%M:%fZ', (r.time_us / 1000) / 1000.0, 'unixepoch') AS timestamp,
        CASE r.severity WHEN 0 THEN 'EMERG' WHEN 1 THEN 'ALERT' WHEN 2 THEN 'CRITICAL'
            WHEN 3 THEN 'ERROR' WHEN 4 THEN 'WARNING' WHEN 5 THEN 'NOTICE' WHEN 6 THEN 'INFO'
            ELSE 'DEBUG' END AS LogLevel
    FROM LogRows AS r ",
            $hint,
            "
        LEFT JOIN Hosts AS h ON h.id = r.host_id
        LEFT JOIN Sources AS s ON s.id = r.source_id
        LEFT JOIN Peers AS p ON p.id = r.peer_id"
        )
    };
}

const MIGRATION_5: &str = concat!(
    // 5: each value stored once. The rows move to `LogRows`: names as dictionary ids
    // only (peers too, as address id and port), the protocol as a code, and no
    // `timestamp`/`LogLevel` text beside `time_us`/`severity`. `Logs` becomes a view with
    // every column it had, so `SELECT id, timestamp, LogLevel, message, source FROM Logs`
    // reads as before. Narrow, often-filtered columns first: a row is decoded from its
    // start.
    "ALTER TABLE Logs RENAME TO LogsV4;
    CREATE TABLE Peers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE LogRows (
        id INTEGER PRIMARY KEY,
        time_us INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        facility INTEGER,
        host_id INTEGER,
        source_id INTEGER,
        protocol INTEGER NOT NULL,    -- 0 rfc5424, 1 rfc3164, 2 json, 3 raw
        peer_id INTEGER,              -- Peers.id of the address
        peer_port INTEGER,            -- NULL: Peers.name is the whole peer text
        procid TEXT,
        msgid TEXT,
        structured_data TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX LogRows_time ON LogRows (time_us);
    CREATE VIEW Logs AS ",
    logs_select!(""),
    ";"
);

const MIGRATION_6: &str =
    // 6: token filters per segment of 256 ids, stored as 64 slices per block so that a
    // search reads one small row per block and learns which segments to scan
    // (`tokens.rs`). Schema 4's whole-block filters go; `tokens::backfill` rebuilds the
    // filters of the complete blocks from their rows.
    "DROP TABLE LogTokens;
    CREATE TABLE LogTokens (
        id INTEGER PRIMARY KEY,       -- LogBlocks.block * 64 + slice (0-63), once complete
        filter BLOB NOT NULL          -- format 2: 16 segments' split-block Bloom filters
    );";

const MIGRATION_7: &str =
    // 7: no per-row time index. Each block summary keeps up to 4 disjoint time ranges
    // that cover its rows' times (`blocks::TimeRanges`), so that rows years away from
    // the rest of their block (receive times, a replayed old log, a wrong clock) do not
    // make every block meet every time filter; time-bounded queries read the blocks, and
    // within them the ranges, that meet their bounds. `blocks::backfill_ranges` fills
    // them from the rows. The index took a third of the writer's time.
    "ALTER TABLE LogBlocks ADD COLUMN time_ranges BLOB; -- (from, to) i64 LE pairs, sorted
    DROP INDEX LogRows_time;";

const MIGRATION_8: &str =
    // 8: the block summaries by their latest time, so that a newest-first read (`logq
    // -n 100`) takes the summaries of the newest blocks one page at a time instead of
    // reading every one (`newest_first.rs`). One entry per 4,096 rows.
    "CREATE INDEX LogBlocks_max_time ON LogBlocks (max_time_us);";

/// Migration 5's fill: the rows of the old table into `LogRows`, in one statement
/// (peers split by [`peer::register_functions`]), then the old table dropped (its pages
/// are reused by new rows; `VACUUM` gives them back to the file system).
fn copy_rows_5(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "INSERT OR IGNORE INTO Peers (name)
            SELECT DISTINCT logrelay_peer_address(peer) FROM LogsV4 WHERE peer IS NOT NULL;
        INSERT OR IGNORE INTO Hosts (name)
            SELECT DISTINCT hostname FROM LogsV4 WHERE host_id IS NULL AND hostname IS NOT NULL;
        INSERT OR IGNORE INTO Sources (name)
            SELECT DISTINCT source FROM LogsV4 WHERE source_id IS NULL AND source IS NOT NULL;
        INSERT INTO LogRows (id, time_us, received_us, severity, facility, host_id, source_id,
                protocol, peer_id, peer_port, procid, msgid, structured_data, message)
            SELECT l.id, l.time_us, l.received_us, l.severity, l.facility,
                COALESCE(l.host_id, (SELECT id FROM Hosts WHERE name = l.hostname)),
                COALESCE(l.source_id, (SELECT id FROM Sources WHERE name = l.source)),
                CASE l.protocol WHEN 'rfc5424' THEN 0 WHEN 'rfc3164' THEN 1 WHEN 'json' THEN 2
                    ELSE 3 END,
                p.id, logrelay_peer_port(l.peer), l.procid, l.msgid, l.structured_data, l.message
            FROM LogsV4 AS l LEFT JOIN Peers AS p ON p.name = logrelay_peer_address(l.peer)
            ORDER BY l.id;
        DROP TABLE LogsV4;",
    )
}

/// The `Logs` view as a subquery that scans id ranges of `LogRows` by the rowid, never
/// through an index (block scans: a whole block is cheaper to read and sort than an
/// index walk, should someone add one).
pub(super) const LOGS_NOT_INDEXED: &str = concat!("(", logs_select!("NOT INDEXED"), ")");

/// Complete blocks (all but the newest) and how many of them have no word filters yet:
/// the relay's filer makes them at the lowest priority, so on a busy machine it falls
/// behind, and word searches read those blocks whole meanwhile.
pub fn word_filter_backlog(path: &Path) -> Result<(u64, u64), StoreError> {
    let conn = file::open_read_only(path)?.conn;
    let inner = || -> rusqlite::Result<(u64, u64)> {
        let blocks: i64 = conn.query_row("SELECT count(*) FROM LogBlocks", [], |r| r.get(0))?;
        let missing = tokens::blocks_without_filters(&conn)?.len() as u64;
        Ok(((blocks.max(1) - 1) as u64, missing))
    };
    inner().map_err(|e| StoreError::from(e).at(path))
}

/// Every migration, in order, as one SQL script.
pub fn schema_sql() -> String {
    MIGRATIONS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let fill = match i {
                1 => "-- then logrelay summarises the rows already stored into LogBlocks\n",
                3 => "-- then logrelay counts the rows already stored per block and severity\n",
                4 => "-- then logrelay copies the rows of LogsV4 into LogRows and drops LogsV4\n",
                5 => "-- then logrelay indexes the words of the rows already stored\n",
                6 => "-- then logrelay records each block's time ranges from its rows\n",
                _ => "",
            };
            format!(
                "-- version {}\n{};\n{fill}",
                i + 1,
                m.sql.trim_end().trim_end_matches(';')
            )
        })
        .collect()
}

/// How the writer fills one `LogRows` column.
#[derive(Clone, Copy)]
enum Bind {
    /// The record's value.
    Value(for<'a> fn(&RecordRef<'a>) -> Value<'a>),
    /// The id of the row's name in this dictionary.
    NameId(Dict),
    PeerPort,
    Code(fn(&RecordRef<'_>) -> i64),
}

/// The `LogRows` columns the writer fills and how, from the column list: each value
/// once (the view computes `timestamp`, `LogLevel` and the names).
fn stored_columns() -> Vec<(&'static str, Bind)> {
    let mut out = Vec::new();
    for c in COLUMNS {
        let Some(s) = c.sqlite else { continue };
        match s.stored {
            Stored::AsIs => out.push((s.name, Bind::Value(c.get))),
            Stored::NameId { dict, id_column } => out.push((id_column, Bind::NameId(dict))),
            Stored::Peer => {
                out.push(("peer_id", Bind::NameId(Dict::Peers)));
                out.push(("peer_port", Bind::PeerPort));
            }
            Stored::Code(f) => out.push((s.name, Bind::Code(f))),
            Stored::Computed => {}
        }
    }
    out
}

/// `INSERT INTO LogRows (time_us, …) VALUES (?1, …)`.
fn insert_sql(columns: &[(&str, Bind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO LogRows ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    )
}

/// The INSERT with the row id given as the last parameter (an id already present is
/// kept once).
fn insert_with_id_sql(columns: &[(&str, Bind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).chain(["id"]).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT OR IGNORE INTO LogRows ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    )
}

/// Rows per multi-row INSERT: one statement run stores this many, so SQLite opens its
/// cursors and finds the end of the table once per chunk, not once per row.
const ROWS_PER_INSERT: usize = 16;

/// `INSERT OR FAIL INTO LogRows (time_us, …) VALUES (?1, …), (…), …` for
/// [`ROWS_PER_INSERT`] rows.
///
/// `OR FAIL`, not the default `OR ABORT`: a statement that writes several rows and may
/// abort halfway makes SQLite copy every page it first touches into a statement journal,
/// to undo just that statement (a fifth of the writer's time, BENCHMARKS.md). The writer
/// never keeps part of a transaction: any error drops the whole transaction, so the
/// journal bought nothing.
fn insert_many_sql(columns: &[(&str, Bind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let rows: Vec<String> = (0..ROWS_PER_INSERT)
        .map(|r| {
            let marks: Vec<String> = (1..=names.len())
                .map(|i| format!("?{}", r * names.len() + i))
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    format!(
        "INSERT OR FAIL INTO LogRows ({}) VALUES {}",
        names.join(", "),
        rows.join(", ")
    )
}

/// A row read from its batch, with its names' ids, waiting for its INSERT.
struct Staged<'a> {
    r: RecordRef<'a>,
    /// Host, source and peer address ids.
    names: [Option<i64>; 3],
    port: Option<u16>,
}

/// Binds a row's values from parameter `first` (0-based) on.
fn bind_row<'t>(
    rows: &mut raw_insert::Rows<'_, 't>,
    columns: &[(&str, Bind)],
    first: usize,
    s: &Staged<'t>,
) -> rusqlite::Result<()> {
    let int_or_null = |rows: &mut raw_insert::Rows<'_, 't>, at, v: Option<i64>| match v {
        Some(v) => rows.int(at, v),
        None => rows.null(at),
    };
    for (i, (_, bind)) in columns.iter().enumerate() {
        let at = first + i;
        match *bind {
            Bind::Value(get) => match get(&s.r) {
                Value::Null => rows.null(at)?,
                Value::Int(v) | Value::Time(v) => rows.int(at, v)?,
                Value::Text(t) => rows.text(at, t)?,
            },
            Bind::NameId(dict) => int_or_null(rows, at, s.names[dict as usize])?,
            Bind::PeerPort => int_or_null(rows, at, s.port.map(i64::from))?,
            Bind::Code(code) => rows.int(at, code(&s.r))?,
        }
    }
    Ok(())
}

/// Files a stored row under its block: its summary and its words.
fn file_row(
    tokens: &mut token_filer::TokenFiler,
    summaries: &mut Pending,
    id: i64,
    s: &Staged<'_>,
) {
    let [host_id, source_id, _] = s.names;
    let r = &s.r;
    tokens.add(id, r.message, r.structured_data, host_id, source_id);
    summaries.add(&RowFacts {
        id,
        time_us: r.time_us,
        severity: r.level.code(),
        facility: r.facility.map(crate::message::Facility::code),
        source_id,
        host_id,
    });
}

/// Dictionary ids of names (sources, hosts, peer addresses): rows and block summaries
/// hold these small integers, and filters compare them instead of strings.
///
/// Looked up for every row: hashed with foldhash, not std's SipHash (~5 % of the
/// writer's time on a replay). The names come from the network; each map has its own
/// random seed, so a sender still cannot aim at a fixed hash to flood one bucket.
struct NameIds {
    table: &'static str,
    ids: std::collections::HashMap<String, i64, foldhash::fast::RandomState>,
}

/// Names remembered at most; beyond this the cache starts over (a sender inventing
/// names must not grow the relay's memory without bound).
const MAX_CACHED_NAMES: usize = 100_000;

impl NameIds {
    fn new(table: &'static str) -> Self {
        NameIds {
            table,
            ids: std::collections::HashMap::default(),
        }
    }

    fn id(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        name: Option<&str>,
    ) -> rusqlite::Result<Option<i64>> {
        let Some(name) = name else {
            return Ok(None);
        };
        if let Some(id) = self.ids.get(name) {
            return Ok(Some(*id));
        }
        let insert = format!(
            "INSERT INTO {} (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
            self.table
        );
        tx.prepare_cached(&insert)?.execute([name])?;
        let select = format!("SELECT id FROM {} WHERE name = ?1", self.table);
        let id: i64 = tx
            .prepare_cached(&select)?
            .query_row([name], |r| r.get(0))?;
        if self.ids.len() >= MAX_CACHED_NAMES {
            self.ids.clear();
        }
        self.ids.insert(name.to_string(), id);
        Ok(Some(id))
    }
}

/// The last sequence number per client within one transaction: read from `ClientSeq`
/// at a client's first batch, written back before the commit. A transaction holds few
/// clients, so a list is enough.
#[derive(Default)]
struct ClientSeqs {
    last: Vec<(std::sync::Arc<str>, Option<u64>)>,
}

impl ClientSeqs {
    /// The sequence number this batch's rows must exceed to be stored (`None`: all,
    /// not a client's batch), and the batch's last one remembered as the new mark.
    fn before(&mut self, tx: &Transaction<'_>, b: &Batch) -> rusqlite::Result<Option<u64>> {
        let Some(d) = b.delivery() else {
            return Ok(None);
        };
        let (Some(client), newest @ 1..) = (&d.client, d.max_seq) else {
            return Ok(None);
        };
        let i = match self.last.iter().position(|(c, _)| c == client) {
            Some(i) => i,
            None => {
                let stored: Option<i64> = tx
                    .prepare_cached("SELECT last_seq FROM ClientSeq WHERE client = ?1")?
                    .query_row([client.as_ref()], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                self.last.push((client.clone(), stored.map(|v| v as u64)));
                self.last.len() - 1
            }
        };
        let after = self.last[i].1;
        self.last[i].1 = Some(after.map_or(newest, |a| a.max(newest)));
        Ok(after)
    }

    fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for (client, last) in &self.last {
            let Some(last) = last else { continue };
            tx.prepare_cached(
                "INSERT INTO ClientSeq (client, last_seq) VALUES (?1, ?2) \
                 ON CONFLICT (client) DO UPDATE SET last_seq = excluded.last_seq",
            )?
            .execute(rusqlite::params![client.as_ref(), *last as i64])?;
        }
        Ok(())
    }
}

/// The writer's INSERTs into `LogRows`, prepared once the schema is current.
struct Inserts {
    /// One row, a new id.
    one: raw_insert::RawInsert,
    /// [`ROWS_PER_INSERT`] rows, new ids.
    many: raw_insert::RawInsert,
    /// One row with its id given.
    with_id: raw_insert::RawInsert,
}

impl Inserts {
    fn prepare(conn: &Connection, columns: &[(&str, Bind)]) -> rusqlite::Result<Inserts> {
        Ok(Inserts {
            one: raw_insert::RawInsert::prepare(conn, &insert_sql(columns))?,
            many: raw_insert::RawInsert::prepare(conn, &insert_many_sql(columns))?,
            with_id: raw_insert::RawInsert::prepare(conn, &insert_with_id_sql(columns))?,
        })
    }
}

/// The relay's side of a SQLite store: creates, upgrades and writes it.
pub struct SqliteWriter {
    /// Before `conn`: statements are finalized before their connection closes.
    inserts: Option<Inserts>,
    conn: Connection,
    path: PathBuf,
    /// The `LogRows` columns the INSERTs fill.
    columns: Vec<(&'static str, Bind)>,
    /// Ids of names already in `Hosts`, `Sources`, `Peers` (in [`Dict::ALL`] order).
    names: [NameIds; 3],
    /// The background checkpointer.
    checkpointer: Option<Checkpointer>,
    /// Files the rows' words into their blocks' token filters, on its own thread.
    tokens: token_filer::TokenFiler,
    /// WAL bytes beyond which the writer empties it (retention's `max-size`).
    wal_limit: Option<u64>,
    /// Whether the WAL may hold frames (to cut it back when the writer is idle).
    wal_used: bool,
    /// WAL frames beyond which the writer makes the WAL start over: [`WAL_RESTART_BYTES`]
    /// in this file's pages (stores made before 32 KiB pages keep 8 KiB ones).
    wal_restart_frames: i64,
}

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// WAL bytes beyond which the writer makes the WAL start over. The WAL is part of the
/// store's footprint on disk; the background checkpointer has copied most of it by
/// then, so a smaller WAL costs the writer little (BENCHMARKS.md).
const WAL_RESTART_BYTES: i64 = 32 << 20;
/// The page size of a new store. 32 KiB pages: a quarter of 8 KiB's WAL frames, page
/// writes and checkpoint copies (two system calls a frame, one each to copy it) and
/// fewer B-tree pages a row on this append-only table; the writer spent 20 % of its
/// time in the kernel writing and copying 8 KiB frames (BENCHMARKS.md).
const PAGE_SIZE: i64 = 32 << 10;
/// The size the WAL file is cut back to when it starts over (without a WAL limit). The
/// WAL reaches 50-95 MiB between restarts at full load (a restart waits for readers and
/// for the checkpointer's round); a file cut below that grew again at each generation,
/// and writing past its end made the kernel allocate blocks and page-cache pages and
/// zero them: 7 % of the writer's time in a profile. At rest the WAL is cut to nothing.
const WAL_FILE_KEPT: u64 = 128 << 20;
/// The writer's page cache. It appends at the end of `LogRows` and the summaries and
/// looks names up in small tables: the pages it touches are few. A 64 MiB cache was
/// filled with pages written once and never read again, and faulting its memory in
/// was ~5 % of the writer's time; it also made up half of the relay's peak RSS.
const WRITER_CACHE_KIB: i64 = 16 << 10;
/// How soon an idle writer looks again for filters the filer is still making: a block
/// takes the filer a few milliseconds, and the writer's usual pause (200 ms) between
/// looks made each burst's index, and the store's rest after it, come up to 200 ms
/// late once or twice.
const FILER_POLL: Duration = Duration::from_millis(10);

impl SqliteWriter {
    /// Inserts the rows, with the given ids when `ids` is set (archived rows loaded for
    /// a query keep theirs), else with new ones, [`ROWS_PER_INSERT`] to a statement.
    fn insert_rows(&mut self, batches: &[Batch], ids: Option<&[i64]>) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        let mut summaries = Pending::with_given_ids(ids.is_some());
        let mut seqs = ClientSeqs::default();
        {
            let inserts = self.inserts.as_mut().ok_or(rusqlite::Error::InvalidQuery)?;
            let single = match ids {
                Some(_) => &mut inserts.with_id,
                None => &mut inserts.one,
            };
            // Bound text borrows `batches`; the bindings are cleared when these go.
            let (mut one, mut many) = (single.rows(), inserts.many.rows());
            let mut chunk: Vec<Staged<'_>> = Vec::with_capacity(ROWS_PER_INSERT);
            let rows = batches.iter().map(|b| {
                let after = seqs.before(&tx, b)?;
                Ok::<_, rusqlite::Error>(b.iter_after(after))
            });
            let rows = rows.collect::<Result<Vec<_>, _>>()?;
            let mut rows = rows.into_iter().flatten().peekable();
            // A batch is one connection's rows, all from one peer: its text is split and
            // its address looked up once while the rows repeat it.
            let mut last_peer: Option<(&str, Option<i64>, Option<u16>)> = None;
            while let Some(r) = rows.next() {
                let (peer_id, port) = match (r.peer, last_peer) {
                    (None, _) => (None, None),
                    (Some(p), Some((last, id, port))) if p == last => (id, port),
                    (Some(p), _) => {
                        let (address, port) = peer::split(p);
                        let id = self.names[2].id(&tx, Some(address))?;
                        last_peer = Some((p, id, port));
                        (id, port)
                    }
                };
                let names = [
                    self.names[0].id(&tx, r.hostname)?,
                    self.names[1].id(&tx, r.source)?,
                    peer_id,
                ];
                chunk.push(Staged { r, names, port });
                let full = chunk.len() == ROWS_PER_INSERT && ids.is_none();
                if !full && rows.peek().is_some() {
                    continue;
                }
                let stmt = if full { &mut many } else { &mut one };
                for s in chunk.chunks(if full { ROWS_PER_INSERT } else { 1 }) {
                    for (k, staged) in s.iter().enumerate() {
                        bind_row(stmt, &self.columns, k * self.columns.len(), staged)?;
                    }
                    if let Some(ids) = ids {
                        let id = ids.get(n).copied().ok_or(rusqlite::Error::InvalidQuery)?;
                        stmt.int(self.columns.len(), id)?;
                    }
                    stmt.execute()?;
                    // Rows of one statement get consecutive ids, the last one's known.
                    let last = tx.last_insert_rowid();
                    for (k, staged) in s.iter().enumerate() {
                        let id = last - (s.len() - 1 - k) as i64;
                        file_row(&mut self.tokens, &mut summaries, id, staged);
                    }
                    n += s.len();
                }
                chunk.clear();
            }
        }
        summaries.write(&tx)?;
        seqs.write(&tx)?;
        self.tokens.write(&tx)?;
        tx.commit()?;
        self.tokens.committed();
        self.wal_used = true;
        self.restart_wal_if_large();
        Ok(n)
    }

    /// Nothing to write for a while: stores the word filters of blocks completed since
    /// the last commit, and cuts the WAL to nothing (TRUNCATE), so a relay at rest
    /// does not keep up to [`WAL_FILE_KEPT`] of it on disk. What is left to copy is
    /// little (the background checkpointer has copied the rest). While the filer still
    /// makes filters (after a burst it reads back the blocks it missed), asks to be
    /// called again in [`FILER_POLL`] and leaves the WAL for the end: each filter is
    /// stored soon after it is made, and the store comes to rest when the last one is.
    fn tidy_up(&mut self) -> Result<Option<Duration>, StoreError> {
        let filing = self.tokens.busy();
        if self.tokens.has_ready() {
            let tx = self.conn.transaction()?;
            self.tokens.write(&tx)?;
            tx.commit()?;
            self.tokens.committed();
            self.wal_used = true;
        }
        if filing {
            return Ok(Some(FILER_POLL));
        }
        if self.wal_used && self.checkpoint_now("TRUNCATE") {
            self.wal_used = false;
        }
        Ok(None)
    }

    /// PASSIVE checkpoints copy the WAL in the background but, with the writer always
    /// appending, never finish, so the WAL would only grow. Once it passes 32 MiB the
    /// writer itself runs a RESTART checkpoint between transactions: little is left to
    /// copy, and the next transaction writes the WAL from its start again. It waits at
    /// most 50 ms for readers; if one holds an old snapshot longer, it tries later.
    ///
    /// Under a WAL limit (retention's `max-size`) the writer instead makes the WAL
    /// start over (RESTART) whenever the file passes the limit: a stat per commit. The
    /// file is cut back to the limit, not to nothing (`journal_size_limit`): it is
    /// rewritten in place, with no truncation (on a file system mounted with `discard`,
    /// a synchronous trim) and no growing it again after each cut.
    fn restart_wal_if_large(&mut self) {
        if let Some(limit) = self.wal_limit {
            let wal = std::fs::metadata(file::sidecar(&self.path, "-wal")).map_or(0, |m| m.len());
            if wal > limit {
                // Not while the background checkpointer runs (SQLite would answer busy
                // at once): waiting for it costs the writer less than the WAL growing
                // past the limit meanwhile, and leaves the RESTART little to copy.
                let running = self.checkpointer.as_ref().map(|c| c.running.clone());
                let _turn = running
                    .as_ref()
                    .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                self.checkpoint_now("RESTART");
            }
            return;
        }
        let Some(frames) = self.checkpointer.as_ref().map(|c| &c.wal_frames) else {
            return;
        };
        if frames.load(std::sync::atomic::Ordering::Relaxed) <= self.wal_restart_frames {
            return;
        }
        frames.store(0, std::sync::atomic::Ordering::Relaxed);
        self.checkpoint_now("RESTART");
    }

    /// A RESTART or TRUNCATE checkpoint, waiting at most 50 ms for readers (a busy one
    /// is tried again after a later commit). Returns whether it completed.
    fn checkpoint_now(&mut self, mode: &str) -> bool {
        let short = std::time::Duration::from_millis(50);
        let mut done = false;
        if self.conn.busy_timeout(short).is_ok() {
            match self
                .conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                    r.get::<_, i64>(0)
                }) {
                Ok(busy) => done = busy == 0,
                Err(e) => tracing::debug!(error = %e, "WAL checkpoint postponed"),
            }
            let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        }
        done
    }

    /// Opens the store to write, creating it if there is none. An existing file is
    /// first looked at read-only: a file that is not empty and not a logrelay store is
    /// refused before anything in it changes (no WAL switch, no DDL).
    pub fn open(path: &Path) -> Result<SqliteWriter, StoreError> {
        let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if exists {
            let found =
                file::identify(&file::open_read_only(path)?.conn).map_err(|e| e.at(path))?;
            check(path, found, true)?;
        } else {
            file::create_new(path)?;
        }
        Self::open_checked(path).map_err(|e| e.at(path))
    }

    /// `logrelayd migrate`: opens (creating or upgrading) the store and says what it did.
    pub fn migrate(path: &Path, progress: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let before = if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            match file::identify(&file::open_read_only(path)?.conn).map_err(|e| e.at(path))? {
                Found::Logrelay(v) => Some(v),
                _ => None,
            }
        } else {
            None
        };
        match before {
            Some(v) if v == known => progress(&format!(
                "{}: schema version {v}, up to date",
                path.display()
            )),
            Some(v) => progress(&format!(
                "{}: upgrading schema version {v} to {known} …",
                path.display()
            )),
            None => progress(&format!(
                "{}: creating the store (schema version {known}) …",
                path.display()
            )),
        }
        let started = std::time::Instant::now();
        drop(SqliteWriter::open(path)?);
        if before != Some(known) {
            progress(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
        }
        Ok(())
    }

    fn open_checked(path: &Path) -> Result<SqliteWriter, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Room for every statement the writer prepares (inserts, dictionaries,
        // summaries, filters, sequence numbers) without evicting one per transaction.
        conn.set_prepared_statement_cache_capacity(32);
        peer::register_functions(&conn)?;
        let columns = stored_columns();
        // Takes effect only when the file is created.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        // WAL: readers never block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        file::tune_for_writing(&conn)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let mut store = SqliteWriter {
            inserts: None,
            conn,
            path: path.to_path_buf(),
            columns,
            names: Dict::ALL.map(|d| NameIds::new(d.table())),
            checkpointer: None,
            tokens: token_filer::TokenFiler::stopped(),
            wal_limit: None,
            wal_used: true,
            wal_restart_frames: 0,
        };
        store.upgrade()?;
        let page_size: i64 = store
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        store.wal_restart_frames = WAL_RESTART_BYTES / page_size.max(512);
        store.inserts = Some(Inserts::prepare(&store.conn, &store.columns)?);
        // Started on the current schema: it looks for blocks without filters first.
        store.tokens = token_filer::TokenFiler::start(path)?;
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a checkpoint lets the WAL start over, the file is rewritten in place.
        file::limit_wal_file(&store.conn, WAL_FILE_KEPT)?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// Brings the schema to the newest version, each step in its own transaction.
    /// An IMMEDIATE transaction makes two processes migrating at once take turns.
    fn upgrade(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > known {
                return Err(StoreError::TooNew {
                    path: self.path.clone(),
                    found: version,
                    known,
                });
            }
            if version == known {
                return Ok(());
            }
            let step = &MIGRATIONS[version as usize];
            tx.execute_batch(step.sql)?;
            if let Some(fill) = step.fill {
                fill(&tx)?;
            }
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }
}

/// `2026-11-23T10:00:00.123Z`, the original table's `timestamp` text (UTC, ms), as
/// versions before 5 stored it (the view computes it now).
#[cfg(test)]
fn write_iso_millis(us: i64, out: &mut String) {
    crate::timefmt::write_rfc3339_utc(us, 3, out);
}

/// Whether a file may be used: `writing` accepts an empty file and an older schema
/// (the writer upgrades it); readers need the current schema.
fn check(path: &Path, found: Found, writing: bool) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    match found {
        Found::Foreign(reason) => Err(StoreError::Foreign {
            path: path.to_path_buf(),
            reason,
        }),
        Found::Empty if writing => Ok(()),
        Found::Empty => Err(StoreError::Missing(path.to_path_buf())),
        Found::Logrelay(v) if v > known => Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: v,
            known,
        }),
        Found::Logrelay(v) if v < known && !writing => Err(StoreError::TooOld {
            path: path.to_path_buf(),
            found: v,
            known,
        }),
        Found::Logrelay(_) => Ok(()),
    }
}

impl Drop for SqliteWriter {
    /// The writer leaves the filters of complete blocks stored, the database
    /// checkpointed and the WAL empty.
    fn drop(&mut self) {
        self.tokens.finish();
        if self.tokens.has_ready() {
            let stored = self.conn.transaction().and_then(|tx| {
                self.tokens.write(&tx)?;
                tx.commit()
            });
            if let Err(e) = stored {
                tracing::debug!(error = %e, "word filters not stored at close");
            }
        }
        if self.checkpointer.take().is_some() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl StoreWriter for SqliteWriter {
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        let result = self.insert_rows(batches, None);
        if result.is_err() {
            // The transaction rolled back: names it added to the dictionaries are gone.
            for n in &mut self.names {
                n.ids.clear();
            }
            self.tokens.rolled_back();
        }
        result.map_err(|e| e.at(&self.path))
    }

    fn idle(&mut self) -> Option<Duration> {
        self.tidy_up().unwrap_or_else(|e| {
            tracing::debug!(error = %e.at(&self.path), "tidying the idle store postponed");
            None
        })
    }

    fn limit_wal(&mut self, bytes: u64) {
        self.wal_limit = Some(bytes);
        if let Some(c) = &self.checkpointer {
            c.limited.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err(e) = file::limit_wal_file(&self.conn, bytes) {
            tracing::debug!(error = %e, "WAL size limit not set");
        }
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        last_id(&self.conn).map_err(|e| e.at(&self.path))
    }
}

fn last_id(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT max(id) FROM LogRows", [], |r| r.get(0))?)
}

/// A store in a temporary file holding rows that keep their ids (archived rows loaded
/// so that queries run on them exactly as on the live store); removed when dropped.
pub struct ScratchStore {
    writer: Option<SqliteWriter>,
    path: PathBuf,
}

impl ScratchStore {
    pub fn create() -> Result<ScratchStore, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("logq-{}-{nanos}", std::process::id()));
        let path = dir.join("archive.db");
        let mut writer = SqliteWriter::open(&path)?;
        // A file for one query, removed after it: nothing to keep through a crash, so
        // no syncs; and no word filters, which cost more to make than the one query
        // scanning the rows (and, made at the lowest priority, waited for a busy
        // machine's idle time before the query could start).
        writer.conn.pragma_update(None, "synchronous", "OFF")?;
        writer.tokens = token_filer::TokenFiler::stopped();
        Ok(ScratchStore {
            writer: Some(writer),
            path,
        })
    }

    /// Adds rows with their ids; an id already present is kept once.
    pub fn insert(&mut self, batch: &Batch, ids: &[i64]) -> Result<usize, StoreError> {
        match self.writer.as_mut() {
            Some(w) => w.insert_rows(std::slice::from_ref(batch), Some(ids)),
            None => Ok(0),
        }
    }

    /// Done loading: a reader on the rows.
    pub fn reader(&mut self) -> Result<SqliteReader, StoreError> {
        self.writer = None;
        SqliteReader::open(&self.path)
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        self.writer = None;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `logq`'s side: the file opened read-only, never created, migrated or altered.
pub struct SqliteReader {
    conn: Connection,
    path: PathBuf,
    data_version: Option<i64>,
    /// Read as a snapshot (a read-only directory without a running relay).
    immutable: bool,
}

impl SqliteReader {
    pub fn open(path: &Path) -> Result<SqliteReader, StoreError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(path.to_path_buf()));
            }
            Err(e) => return Err(StoreError::from(e).at(path)),
            Ok(_) => {}
        }
        let file::ReadOnly { conn, immutable } = file::open_read_only(path)?;
        // Before identifying it: a relay creating or upgrading the store holds its lock.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| StoreError::from(e).at(path))?;
        let found = file::identify(&conn).map_err(|e| e.at(path))?;
        check(path, found, false)?;
        tokens::register_function(&conn).map_err(|e| StoreError::from(e).at(path))?;
        Ok(SqliteReader {
            conn,
            path: path.to_path_buf(),
            data_version: None,
            immutable,
        })
    }
}

impl StoreReader for SqliteReader {
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        query::run(&self.conn, q, visit).map_err(|e| e.at(&self.path))
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        last_id(&self.conn).map_err(|e| e.at(&self.path))
    }

    fn stats(&mut self, q: &StatsQuery) -> Result<Vec<StatRow>, StoreError> {
        stats::stats(&self.conn, q).map_err(|e| e.at(&self.path))
    }

    /// `PRAGMA data_version` changes when another connection commits; reading it
    /// touches only the WAL index in shared memory. A snapshot never changes.
    fn changed(&mut self) -> Result<bool, StoreError> {
        if self.immutable {
            let first = self.data_version.is_none();
            self.data_version = Some(0);
            return Ok(first);
        }
        let v: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(|e| StoreError::from(e).at(&self.path))?;
        let changed = self.data_version != Some(v);
        self.data_version = Some(v);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filter;
    use crate::store::columns::SqliteType;
    use rusqlite::OptionalExtension;

    /// The writer's own settings come after those it shares with retention: a small
    /// page cache, and a WAL file kept at its working size when the WAL starts over;
    /// under a WAL limit (retention's `max-size`) the file is cut back to that limit.
    #[test]
    fn writer_keeps_a_small_cache_and_its_wal_file() {
        use crate::store::StoreWriter;
        let dir = tempfile::tempdir().unwrap();
        let mut w = SqliteWriter::open(&dir.path().join("c.db")).unwrap();
        let pragma = |w: &SqliteWriter, name: &str| -> i64 {
            w.conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
        };
        assert_eq!(pragma(&w, "cache_size"), -WRITER_CACHE_KIB);
        assert_eq!(pragma(&w, "journal_size_limit"), WAL_FILE_KEPT as i64);
        w.limit_wal(1 << 20);
        assert_eq!(pragma(&w, "journal_size_limit"), 1 << 20);
        // Retention's connection keeps the larger cache for its deletes.
        let other = Connection::open(dir.path().join("c.db")).unwrap();
        file::tune_for_writing(&other).unwrap();
        assert_eq!(
            other
                .pragma_query_value(None, "cache_size", |r| r.get::<_, i64>(0))
                .unwrap(),
            -65536
        );
    }

    /// New stores get 32 KiB pages; a store made with 8 KiB pages keeps them (SQLite
    /// fixes the size when the file is made), and the WAL restarts at the same 32 MiB
    /// in either, counted in that file's frames.
    #[test]
    fn new_stores_get_32_kib_pages_and_old_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |w: &SqliteWriter| -> i64 {
            w.conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap()
        };
        let new = SqliteWriter::open(&dir.path().join("new.db")).unwrap();
        assert_eq!(page_size(&new), 32768);
        assert_eq!(new.wal_restart_frames, 1024);
        let old_path = dir.path().join("old.db");
        let old = Connection::open(&old_path).unwrap();
        old.pragma_update(None, "page_size", 8192).unwrap();
        old.execute_batch("VACUUM").unwrap();
        drop(old);
        let old = SqliteWriter::open(&old_path).unwrap();
        assert_eq!(page_size(&old), 8192);
        assert_eq!(old.wal_restart_frames, 4096);
    }

    /// Under a WAL limit (retention's `max-size`), every commit that finds the WAL
    /// past the limit makes it start over, also while the background checkpointer is
    /// copying it: SQLite answers a second checkpoint "busy" at once then, and the WAL
    /// grew by a commit each time until one fell between two of the checkpointer's.
    #[test]
    fn the_wal_starts_over_at_its_limit_while_the_checkpointer_runs() {
        use crate::store::StoreWriter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let wal = file::sidecar(&path, "-wal");
        let mut w = SqliteWriter::open(&path).unwrap();
        // No word filters: not what this is about, and slow to finish in a debug build.
        w.tokens = token_filer::TokenFiler::stopped();
        let limit = 1u64 << 19;
        w.limit_wal(limit);
        let text = "GET /api/v1/items ".repeat(12);
        // The schema's own transactions may leave more than the limit in the WAL; the
        // first commit's restart cuts it back.
        let mut first = Batch::new();
        first.push(&crate::LogMessage::new(
            "first",
            crate::Level::Info,
            chrono::Utc::now(),
        ));
        w.insert(&[first]).unwrap();
        let (mut largest, mut grew) = (0u64, 0u64);
        // About 2.5 s of commits of ~250 KB: ten of the checkpointer's rounds. Without
        // waiting for the checkpointer, the WAL reached 2-5 times the limit here.
        let started = std::time::Instant::now();
        let mut i = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(2500) {
            let mut batch = Batch::new();
            for _ in 0..800 {
                i += 1;
                let m = crate::LogMessage::new(
                    format!("{text}{i}"),
                    crate::Level::Info,
                    chrono::Utc::now(),
                );
                batch.push(&m);
            }
            let before = std::fs::metadata(&wal).map_or(0, |m| m.len());
            w.insert(&[batch]).unwrap();
            let after = std::fs::metadata(&wal).map_or(0, |m| m.len());
            largest = largest.max(after);
            grew = grew.max(after.saturating_sub(before));
        }
        assert!(grew > 0, "the commits wrote the WAL");
        assert!(
            largest <= limit + grew,
            "WAL reached {largest} B against a limit of {limit} B (a commit adds up to {grew} B)"
        );
    }

    /// Under a WAL limit the background checkpointer copies the WAL about every 50 ms
    /// (not every 250 ms), so the writer's RESTART at the limit finds little left to
    /// copy on its own thread.
    #[test]
    fn under_a_wal_limit_the_checkpointer_copies_often() {
        use crate::store::StoreWriter;
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut w = SqliteWriter::open(&path).unwrap();
        w.tokens = token_filer::TokenFiler::stopped();
        let rounds = w.checkpointer.as_ref().unwrap().rounds.clone();
        let second = std::time::Duration::from_secs(1);
        let before = rounds.load(Relaxed);
        std::thread::sleep(second);
        let unlimited = rounds.load(Relaxed) - before;
        w.limit_wal(1 << 30);
        // The round already waited for comes first.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = rounds.load(Relaxed);
        std::thread::sleep(second);
        let limited = rounds.load(Relaxed) - before;
        assert!(
            unlimited <= 5,
            "{unlimited} rounds in a second without a limit"
        );
        assert!(limited >= 10, "{limited} rounds in a second under a limit");
    }

    /// The column list and the migrated schema agree: every listed column is in the
    /// `Logs` view, and every stored one in `LogRows` with its type and NOT NULL. A
    /// field added to the list without its migration fails here.
    #[test]
    fn schema_has_every_listed_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let w = SqliteWriter::open(&path).unwrap();
        let column = |table: &str, name: &str| -> Option<(String, bool)> {
            w.conn
                .query_row(
                    "SELECT type, \"notnull\" FROM pragma_table_info(?1) WHERE name = ?2",
                    [table, name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .unwrap()
        };
        for c in COLUMNS.iter().filter_map(|c| c.sqlite) {
            assert!(column("Logs", c.name).is_some(), "view lacks {}", c.name);
            let want = match c.ty {
                SqliteType::Integer => "INTEGER",
                SqliteType::Text => "TEXT",
            };
            match c.stored {
                Stored::AsIs => assert_eq!(
                    column("LogRows", c.name),
                    Some((want.to_string(), c.not_null)),
                    "{}",
                    c.name
                ),
                Stored::Code(_) => assert_eq!(
                    column("LogRows", c.name),
                    Some(("INTEGER".to_string(), c.not_null)),
                    "{}",
                    c.name
                ),
                Stored::Computed => assert_eq!(column("LogRows", c.name), None),
                Stored::NameId { .. } | Stored::Peer => {
                    assert_eq!(column("LogRows", c.name), None, "{} stored twice", c.name)
                }
            }
        }
        for (name, _) in stored_columns() {
            assert!(column("LogRows", name).is_some(), "{name}");
        }
        let stored: i64 = w
            .conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('LogRows')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            stored as usize,
            stored_columns().len() + 1,
            "id and the stored"
        );
    }

    /// What the view computes (`timestamp`, `LogLevel`, `protocol`, `peer`, the names)
    /// is what versions before 5 stored as text.
    #[test]
    fn view_gives_what_was_stored_before() {
        use crate::message::{Level, LogMessage, Protocol};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let mut w = SqliteWriter::open(&path).unwrap();
        let peers = [
            None,
            Some("192.0.2.1:514"),
            Some("[2001:db8::1]:60000"),
            Some("no-port"),
            Some("h:0514"),
        ];
        let times = [
            0i64,
            1_700_000_000_123_456,
            1_700_000_000_999_999,
            -1_000,
            253_402_300_799_999_000,
        ];
        let mut batch = Batch::new();
        let mut want = Vec::new();
        for i in 0..40usize {
            let level = Level::from_code((i % 8) as u8).unwrap();
            let t = times[i % times.len()];
            let mut m = LogMessage::new(
                format!("m{i}"),
                level,
                chrono::DateTime::from_timestamp_micros(t).unwrap(),
            );
            m.protocol = Protocol::ALL[i % 4];
            m.peer = peers[i % peers.len()].map(Into::into);
            m.hostname = (i % 3 != 0).then(|| format!("host{}", i % 3).into());
            m.source = (i % 2 == 0).then(|| "app".into());
            batch.push(&m);
            let mut ts = String::new();
            write_iso_millis(t, &mut ts);
            want.push((
                ts,
                level.log_level_name().to_string(),
                m.protocol.name().to_string(),
                m.peer.as_deref().map(str::to_string),
                m.hostname.as_deref().map(str::to_string),
                m.source.as_deref().map(str::to_string),
            ));
        }
        w.insert(&[batch]).unwrap();
        let got: Vec<_> = w
            .conn
            .prepare("SELECT timestamp, LogLevel, protocol, peer, hostname, source FROM Logs ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(got, want);
        // logq's reader looks the names up itself (`query::RowReader`): the same values.
        drop(w);
        let mut r = SqliteReader::open(&path).unwrap();
        let mut read = Vec::new();
        let by_id = Query {
            by_id: true,
            ..Query::default()
        };
        r.query(&by_id, &mut |_, rec| {
            read.push((
                rec.protocol.name().to_string(),
                rec.peer.map(str::to_string),
                rec.hostname.map(str::to_string),
                rec.source.map(str::to_string),
            ));
            true
        })
        .unwrap();
        let want_read: Vec<_> = want
            .iter()
            .map(|(_, _, p, peer, h, s)| (p.clone(), peer.clone(), h.clone(), s.clone()))
            .collect();
        assert_eq!(read, want_read);
        let w = r;
        let peers: i64 = w
            .conn
            .query_row("SELECT count(*) FROM Peers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(peers, 4, "addresses, not address and port");
    }

    /// Rows of the last transactions before a pause that the filer did not get (its
    /// queue was full) are told to it when the writer goes idle: the blocks they
    /// completed get their filters from the stored rows without waiting for more rows,
    /// and the block still filling gets none.
    #[test]
    fn idle_writer_tells_the_filer_rows_it_skipped() {
        use crate::message::{Level, LogMessage};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut w = SqliteWriter::open(&path).unwrap();
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        let mut batch = Batch::new();
        for i in 0..8_200usize {
            batch.push(&LogMessage::new(
                format!("row{i} word{}", i % 7),
                Level::Info,
                t,
            ));
        }
        w.insert(std::slice::from_ref(&batch)).unwrap();
        let filters = |w: &SqliteWriter| -> Vec<i64> {
            w.conn
                .prepare("SELECT DISTINCT id >> 6 FROM LogTokens ORDER BY 1")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        idle_until_at_rest(&mut w, deadline);
        assert_eq!(filters(&w), [0, 1], "blocks 0 and 1 complete, 2 filling");
        // As if the queue had been full for every row: no filters, the ids skipped.
        w.conn.execute("DELETE FROM LogTokens", []).unwrap();
        w.tokens.skipped_rows(1, 8_200);
        idle_until_at_rest(&mut w, deadline);
        assert_eq!(filters(&w), [0, 1]);
    }

    /// Calls `idle` as often as it asks (at most [`FILER_POLL`] apart) until it stops
    /// asking: the store at rest; fails past `deadline`.
    fn idle_until_at_rest(w: &mut SqliteWriter, deadline: std::time::Instant) {
        while let Some(again) = w.idle() {
            assert!(again <= FILER_POLL);
            assert!(
                std::time::Instant::now() < deadline,
                "the writer still asks to be idle again"
            );
            std::thread::sleep(again);
        }
    }

    /// Rows go in 16 to a statement and one by one for the rest; each keeps its id
    /// (consecutive, in batch order), its summary and its words. A writer with nothing to
    /// write then stores the filters of the blocks completed since its last commit and
    /// cuts its WAL to nothing.
    #[test]
    fn idle_writer_stores_late_filters_and_empties_the_wal() {
        use crate::message::{Level, LogMessage};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        let mut w = SqliteWriter::open(&path).unwrap();
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        let mut batches = vec![Batch::new(), Batch::new()];
        for i in 0..4_200usize {
            let level = if i % 100 == 7 {
                Level::Err
            } else {
                Level::Info
            };
            let mut m = LogMessage::new(format!("row{i} word{}", i % 7), level, t);
            m.hostname = Some(format!("host{}", i % 3).into());
            batches[usize::from(i >= 2_003)].push(&m);
        }
        assert_eq!(w.insert(&batches).unwrap(), 4_200);
        let rows: Vec<(i64, String, Option<String>)> = w
            .conn
            .prepare("SELECT id, message, hostname FROM Logs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 4_200);
        for (i, (id, message, host)) in rows.iter().enumerate() {
            assert_eq!(*id, i as i64 + 1);
            assert_eq!(*message, format!("row{i} word{}", i % 7));
            assert_eq!(host.as_deref(), Some(format!("host{}", i % 3).as_str()));
        }
        let errors: i64 = w
            .conn
            .query_row(
                "SELECT count(*) FROM LogBlocks WHERE severities & 8 != 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(errors, 2, "both blocks summarised with their errors");
        let wal = file::sidecar(&path, "-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        // Block 0 (ids 1..4095) is complete; its filter comes from the filer thread.
        let filters = |w: &SqliteWriter| -> i64 {
            w.conn
                .query_row("SELECT count(*) FROM LogTokens", [], |r| r.get(0))
                .unwrap()
        };
        // Idle asks to be called again until the filter is stored and the WAL cut:
        // when it stops asking, the store is at rest with its index complete.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        idle_until_at_rest(&mut w, deadline);
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!((filters(&w), wal_bytes), (64, 0));
        drop(w);
        let mut r = SqliteReader::open(&path).unwrap();
        let words = crate::store::Filter {
            words: crate::store::Words::new(&["word3", "host1"]).unwrap(),
            ..crate::store::Filter::default()
        };
        let mut found = 0;
        r.query(
            &Query {
                filter: words,
                ..Query::default()
            },
            &mut |_, rec| {
                assert!(rec.message.ends_with("word3") && rec.hostname == Some("host1"));
                found += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(
            found,
            (0..4_200).filter(|i| i % 7 == 3 && i % 3 == 1).count()
        );
    }

    /// A store written by version 1 (per-row indexes, no summaries) is migrated: its
    /// rows are summarised and found by the filters that now rely on summaries.
    #[test]
    fn version_1_store_is_summarised_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATION_1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch("INSERT INTO Sources (id, name) VALUES (1, 'web'), (2, 'db')")
                .unwrap();
            let tx = conn.transaction().unwrap();
            // The INSERT as version 1 of logrelay wrote it.
            let mut stmt = tx
                .prepare(
                    "INSERT INTO Logs (time_us, received_us, severity, facility, hostname, \
                     source, procid, msgid, structured_data, message, protocol, peer, timestamp, \
                     LogLevel, host_id, source_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .unwrap();
            for i in 0..5_000i64 {
                let (severity, source_id) = if i % 1000 == 999 { (3, 2) } else { (6, 1) };
                stmt.execute(rusqlite::params![
                    i,
                    i,
                    severity,
                    1,
                    "h",
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    format!("m{i}"),
                    "rfc5424",
                    (i % 2 == 0).then(|| format!("192.0.2.{}:{}", i % 7, 1000 + i)),
                    "t",
                    "Info",
                    None::<i64>,
                    source_id
                ])
                .unwrap();
            }
            drop(stmt);
            tx.commit().unwrap();
        }
        drop(SqliteWriter::open(&path).unwrap());
        let mut store = SqliteReader::open(&path).unwrap();
        let blocks: i64 = store
            .conn
            .query_row("SELECT count(*) FROM LogBlocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 2, "ids 1..=5000 span blocks 0 and 1");
        let mut found = Vec::new();
        let query = Query {
            filter: Filter {
                sources: vec!["db".into()],
                levels: Some((crate::message::Level::Emerg, crate::message::Level::Err)),
                ..Filter::default()
            },
            ..Query::default()
        };
        store
            .query(&query, &mut |_, r| {
                found.push(r.message.to_string());
                true
            })
            .unwrap();
        assert_eq!(found, ["m999", "m1999", "m2999", "m3999", "m4999"]);
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        // Version 5 moved names, peers and the protocol into ids and codes.
        let row: (String, String, String, Option<String>) = store
            .conn
            .query_row(
                "SELECT hostname, protocol, message, peer FROM Logs WHERE id = 11",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                "h".into(),
                "rfc5424".into(),
                "m10".into(),
                Some("192.0.2.3:1010".into())
            )
        );
        let (rows, peers): (i64, i64) = store
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM Logs WHERE peer IS NULL), (SELECT count(*) FROM Peers)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, peers), (2_500, 7));
    }
}
