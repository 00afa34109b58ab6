//! The embedded store: one SQLite file in WAL mode, so `logq` reads while the relay
//! writes. Times are integer microseconds (compact, fast range scans); the columns of
//! the original SQL Server table (`timestamp`, `LogLevel`) are virtual generated
//! columns, so old readers keep working and writes pay nothing for them.

use super::filter::{Dialect, Param};
use super::{Batch, OpenMode, Query, RecordRef, Store, StoreError, Visit};
use crate::message::{Facility, Level, Protocol};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use std::path::{Path, PathBuf};

/// Each entry moves the schema from version N to N+1 (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    // 1: the Logs table and the indexes the logq filters use.
    "CREATE TABLE Logs (
        id INTEGER PRIMARY KEY,
        time_us INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        facility INTEGER,
        hostname TEXT,
        source TEXT,
        procid TEXT,
        msgid TEXT,
        structured_data TEXT,
        message TEXT NOT NULL,
        protocol TEXT NOT NULL,
        peer TEXT,
        timestamp TEXT GENERATED ALWAYS AS
            (strftime('%Y-%m-%dT%H:%M:%fZ', time_us / 1000000.0, 'unixepoch')) VIRTUAL,
        LogLevel TEXT GENERATED ALWAYS AS (CASE severity
            WHEN 0 THEN 'EMERG' WHEN 1 THEN 'ALERT' WHEN 2 THEN 'CRITICAL' WHEN 3 THEN 'ERROR'
            WHEN 4 THEN 'WARNING' WHEN 5 THEN 'NOTICE' WHEN 6 THEN 'INFO' ELSE 'DEBUG' END) VIRTUAL
    );
    CREATE INDEX Logs_time ON Logs (time_us);
    CREATE INDEX Logs_severity_time ON Logs (severity, time_us);
    CREATE INDEX Logs_source_time ON Logs (source, time_us);
    CREATE INDEX Logs_host_time ON Logs (hostname, time_us);",
];

const INSERT: &str = "INSERT INTO Logs (time_us, received_us, severity, facility, hostname, \
    source, procid, msgid, structured_data, message, protocol, peer) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

const COLUMNS: &str = "id, time_us, received_us, severity, facility, hostname, source, procid, \
    msgid, structured_data, message, protocol, peer";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    data_version: Option<i64>,
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl SqliteStore {
    pub fn open(path: &Path, mode: OpenMode) -> Result<SqliteStore, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match mode {
            OpenMode::Create => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            OpenMode::Existing if !path.exists() => {
                return Err(StoreError::Missing(path.to_path_buf()));
            }
            OpenMode::Existing => {}
        }
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers never block the writer; NORMAL: durable at checkpoints, and a
        // crash loses at most the last commits, never the file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            data_version: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Brings the schema to the newest version, each step in its own transaction.
    /// An IMMEDIATE transaction makes two processes migrating at once take turns.
    fn migrate(&mut self) -> Result<(), StoreError> {
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
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

fn text<'a>(row: &'a rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'a str>> {
    match row.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => Ok(Some(std::str::from_utf8(t).unwrap_or("\u{FFFD}"))),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "text".into(),
            other.data_type(),
        )),
    }
}

impl Store for SqliteStore {
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for r in batches.iter().flat_map(Batch::iter) {
                stmt.execute((
                    r.time_us,
                    r.received_us,
                    r.level.code(),
                    r.facility.map(Facility::code),
                    r.hostname,
                    r.source,
                    r.procid,
                    r.msgid,
                    r.structured_data,
                    r.message,
                    r.protocol.name(),
                    r.peer,
                ))?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let sql = q.filter.to_sql(Dialect::Sqlite);
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        let order = if q.by_id {
            format!("id {dir}")
        } else {
            format!("time_us {dir}, id {dir}")
        };
        let limit = q.limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let text_sql = format!(
            "SELECT {COLUMNS} FROM Logs {} ORDER BY {order}{limit}",
            sql.clause
        );
        let mut stmt = self.conn.prepare_cached(&text_sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(row) = rows.next()? {
            let severity: i64 = row.get(3)?;
            let facility: Option<i64> = row.get(4)?;
            let protocol = text(row, 11)?.and_then(Protocol::from_name);
            let record = RecordRef {
                time_us: row.get(1)?,
                received_us: row.get(2)?,
                level: Level::from_code(severity.clamp(0, 7) as u8).unwrap_or(Level::Debug),
                facility: facility.and_then(|f| Facility::from_code(f.clamp(0, 255) as u8)),
                hostname: text(row, 5)?,
                source: text(row, 6)?,
                procid: text(row, 7)?,
                msgid: text(row, 8)?,
                structured_data: text(row, 9)?,
                message: text(row, 10)?.unwrap_or_default(),
                protocol: protocol.unwrap_or(Protocol::Raw),
                peer: text(row, 12)?,
            };
            if !visit(row.get(0)?, &record) {
                break;
            }
        }
        Ok(())
    }

    /// `PRAGMA data_version` changes when another connection commits; reading it
    /// touches only the WAL index in shared memory.
    fn changed(&mut self) -> Result<bool, StoreError> {
        let v: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let changed = self.data_version != Some(v);
        self.data_version = Some(v);
        Ok(changed)
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(id) FROM Logs", [], |r| r.get(0))?)
    }
}
