//! Storage: the `Store` trait, shaped for two backends (the embedded SQLite file and
//! SQL Server), the batch type the relay writes and the filter `logq` reads with.
//! Stores know nothing of parsing: they take records, not bytes.

pub mod archive;
mod archive_cols;
pub mod archive_query;
pub mod batch;
pub mod columns;
pub mod filter;
pub mod mssql;
pub mod record_json;
pub mod retainer;
pub mod retention;
pub mod sql;
pub mod sqlite;
pub mod stats;
pub mod words;

pub use batch::{Batch, RecordRef};
pub use filter::{Field, Filter, Match};
pub use stats::{StatField, StatRow, StatsQuery};
pub use words::Words;

use crate::settings::{default_store_path, expand_path};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Inside a backend, before [`StoreError::at`] names the file.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A store file's error, with its path and what to check.
    #[error("{}: {reason}{}", path.display(), hint.map_or(String::new(), |h| format!(" ({h})")))]
    File {
        path: PathBuf,
        reason: String,
        hint: Option<&'static str>,
    },
    #[error("no store at {0} yet (it is created when logrelayd starts)")]
    Missing(PathBuf),
    #[error("{} is not a logrelay store ({reason}); logrelay leaves it as it is: choose another --db path", path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error("{0}")]
    Url(String),
    /// A database server's error (SQL Server), already worded for the user.
    #[error("{0}")]
    Server(String),
    /// The server said it is briefly unavailable (failover, throttling): worth retrying
    /// for longer than other errors.
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "the store at {path} has schema version {found}, newer than this program knows ({known}); upgrade logrelay"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the store at {path} has schema version {found}; start logrelayd on it once to upgrade it to version {known} (readers never change a store)"
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

impl StoreError {
    /// Names the store file in an error that does not yet, with a hint from the kind of
    /// failure (read-only mount, permissions, full disk, lock, damage).
    pub fn at(self, path: &Path) -> StoreError {
        let (reason, hint) = match self {
            StoreError::Sqlite(e) => {
                let hint = sqlite_hint(&e);
                (e.to_string(), hint)
            }
            StoreError::Io(e) => {
                let hint = io_hint(&e);
                (e.to_string(), hint)
            }
            other => return other,
        };
        StoreError::File {
            path: path.to_path_buf(),
            reason,
            hint,
        }
    }
}

fn sqlite_hint(e: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode as C;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    Some(match f.code {
        C::ReadOnly => {
            "the file or its directory is read-only: a read-only mount, or the permissions"
        }
        C::PermissionDenied | C::AuthorizationForStatementDenied => {
            "permission denied: check the owner and mode of the file and its directory"
        }
        C::CannotOpen => {
            "cannot open the file: check that it and its directory exist and that this user may read (and, for logrelayd, write) them"
        }
        C::DiskFull => "the disk is full",
        C::DatabaseBusy | C::DatabaseLocked => "another process holds a lock on the file",
        C::NotADatabase => "the file is not an SQLite database",
        C::DatabaseCorrupt => "the file is damaged: restore it from a copy or move it aside",
        C::SystemIoFailure => "an I/O error: check the disk and the mount",
        _ => return None,
    })
}

fn io_hint(e: &std::io::Error) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match e.kind() {
        K::PermissionDenied => {
            "permission denied: check the owner and mode of the file and its directory"
        }
        K::ReadOnlyFilesystem => "the file system is mounted read-only",
        K::StorageFull => "the disk is full",
        K::NotFound => "a directory on the way does not exist",
        _ => return None,
    })
}

/// How rows come back from [`Store::query`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub filter: Filter,
    /// Newest first (by event time, then id) instead of oldest first.
    pub newest_first: bool,
    /// Order by row id (arrival order) rather than event time: what follow mode needs.
    pub by_id: bool,
    pub limit: Option<u64>,
}

/// The result of a visitor: keep going or stop reading rows.
pub type Visit<'v> = dyn FnMut(i64, &RecordRef<'_>) -> bool + 'v;

/// What the relay's writer drives: it creates and upgrades the store it opens.
pub trait StoreWriter: Send {
    /// Inserts all rows of the batches in one transaction.
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError>;
    /// The highest row id (SQL Server: the follow cursor), or `None` for an empty
    /// store; the writer calls it to reach the store at start.
    fn last_id(&mut self) -> Result<Option<i64>, StoreError>;
    /// Keeps the write-ahead log (where the backend has one) under about `bytes` on
    /// disk, emptying it between transactions: retention's `max-size` counts it.
    fn limit_wal(&mut self, _bytes: u64) {}
    /// Nothing came to write for a moment: finish deferred work and give back what a
    /// store at rest need not hold (SQLite: late word filters, the WAL's bytes).
    /// Returns how soon to be called again if work is still under way elsewhere
    /// (SQLite: filters the filer thread is making), even if nothing comes to write.
    fn idle(&mut self) -> Option<std::time::Duration> {
        None
    }
}

/// The writer's interface under its name from before writing and reading were split.
pub use StoreWriter as Store;

/// What `logq` uses: opening a reader never creates, migrates or alters a store.
pub trait StoreReader: Send {
    /// Streams matching rows to `visit` (row id and record) until it returns `false`.
    fn query(&mut self, query: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// The follow cursor: the newest row's id, or `None` for an empty store.
    fn last_id(&mut self) -> Result<Option<i64>, StoreError>;
    /// Whether another connection may have committed since the last call; a cheap
    /// check that follow mode makes often. Backends that cannot tell say `true`.
    fn changed(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Matching rows per time bucket and group. Backends with summaries override the
    /// plain way, which reads every matching row.
    fn stats(&mut self, q: &StatsQuery) -> Result<Vec<StatRow>, StoreError> {
        stats::by_visiting(self, q)
    }
    /// The number of matching rows.
    fn count(&mut self, filter: &Filter) -> Result<u64, StoreError> {
        let q = StatsQuery::everything(filter.clone(), Vec::new());
        Ok(self.stats(&q)?.iter().map(|r| r.count).sum())
    }
    /// The oldest and newest event time of the matching rows.
    fn time_bounds(&mut self, filter: &Filter) -> Result<Option<(i64, i64)>, StoreError> {
        stats::time_bounds(self, filter)
    }
}

/// Where the store lives, parsed from `--db` / `LOGRELAY_DB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Mssql(String),
}

impl StoreUrl {
    /// `sqlite:PATH`, `sqlite://PATH`, a plain path, `mssql://…`, or an ADO.NET string.
    pub fn parse(s: &str) -> Result<StoreUrl, StoreError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StoreError::Url("empty store URL".into()));
        }
        if let Some(p) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if p.is_empty() {
                return Err(StoreError::Url(
                    "sqlite: needs a path, as in sqlite:/var/lib/logrelay/logs.db".into(),
                ));
            }
            return Ok(StoreUrl::Sqlite(expand_path(p).map_err(StoreError::Url)?));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("mssql://")
            || lower.starts_with("sqlserver://")
            || lower.contains("server=")
            || lower.contains("data source=")
        {
            return Ok(StoreUrl::Mssql(s.to_string()));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(StoreError::Url(format!(
                "unknown store scheme '{scheme}' (expected sqlite:PATH or mssql://…)"
            )));
        }
        Ok(StoreUrl::Sqlite(expand_path(s).map_err(StoreError::Url)?))
    }

    /// Warnings about how a SQL Server password is kept: written in this URL while the
    /// URL is on this process's command line, where `ps` (and shell history) shows it; or
    /// in a password file others can read.
    pub fn password_warnings(&self) -> Vec<String> {
        let StoreUrl::Mssql(conn) = self else {
            return Vec::new();
        };
        let on_command_line = std::env::args_os()
            .skip(1)
            .any(|a| a.to_string_lossy().contains(conn.as_str()));
        let inline = (on_command_line && mssql::connstr::has_inline_password(conn)).then(|| {
            format!(
                "the SQL Server password is on the command line, where ps shows it: use passwordFile=/path (Password File= in ADO.NET strings) or {}",
                mssql::connstr::PASSWORD_ENV
            )
        });
        inline
            .into_iter()
            .chain(mssql::connstr::password_file_warning(conn))
            .collect()
    }

    /// The default store, the same for daemon and CLI (see [`default_store_path`]).
    pub fn default_sqlite() -> StoreUrl {
        StoreUrl::Sqlite(default_store_path())
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Never print a password.
            StoreUrl::Mssql(_) => f.write_str("mssql (connection string hidden)"),
        }
    }
}

/// The schema a backend creates, as SQL a DBA can read.
pub fn schema_text(backend: &str) -> String {
    match backend {
        "mssql" => mssql::SCHEMA.to_string(),
        _ => sqlite::schema_sql(),
    }
}

/// Opens the store for the relay's writer: creates it (a new SQLite file 0640 in a new
/// directory 0750) or upgrades its schema, after checking that an existing file is a
/// logrelay store.
pub fn open_writer(url: &StoreUrl) -> Result<Box<dyn StoreWriter>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteWriter::open(path)?)),
        StoreUrl::Mssql(conn) => Ok(Box::new(mssql::MssqlStore::open_writer(conn)?)),
    }
}

/// `logrelayd migrate`: brings the store's schema up to date, step by step, telling
/// `progress` what it does. For SQL Server this is where a populated table is upgraded.
pub fn migrate(url: &StoreUrl, progress: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
    match url {
        StoreUrl::Sqlite(path) => sqlite::SqliteWriter::migrate(path, progress),
        StoreUrl::Mssql(conn) => mssql::MssqlStore::migrate(conn, progress),
    }
}

/// Opens an existing store to read; a SQLite file is opened read-only.
pub fn open_reader(url: &StoreUrl) -> Result<Box<dyn StoreReader>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteReader::open(path)?)),
        StoreUrl::Mssql(conn) => {
            let mut store = mssql::MssqlStore::open_reader(conn)?;
            // Readers want an answer now: connect (within the timeout) or fail.
            StoreReader::last_id(&mut store)?;
            Ok(Box::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            StoreUrl::parse("sqlite:/tmp/a.db").unwrap(),
            StoreUrl::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/a.db").unwrap(),
            StoreUrl::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            StoreUrl::parse("logs.db").unwrap(),
            StoreUrl::Sqlite("logs.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("server=tcp:db,1433;database=LoggingDB").unwrap(),
            StoreUrl::Mssql(_)
        ));
        assert!(StoreUrl::parse("postgres://x").is_err());
        assert!(StoreUrl::parse("sqlite:").is_err());
    }
}
