//! Storage: the `Store` trait, shaped for two backends (the embedded SQLite file and
//! SQL Server), the batch type the relay writes and the filter `logq` reads with.
//! Stores know nothing of parsing: they take records, not bytes.

pub mod batch;
pub mod filter;
pub mod mssql;
pub mod sqlite;

pub use batch::{Batch, RecordRef};
pub use filter::{Dialect, Field, Filter, Match};

use crate::settings::{default_store_path, expand_path};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no store at {0} yet (it is created when logrelayd starts)")]
    Missing(PathBuf),
    #[error("{0}")]
    Url(String),
    /// A database server's error (SQL Server), already worded for the user.
    #[error("{0}")]
    Server(String),
    #[error(
        "the store at {path} has schema version {found}, newer than this program knows ({known}); upgrade logrelay"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
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

pub trait Store: Send {
    /// Inserts all rows of the batches in one transaction.
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError>;
    /// Streams matching rows to `visit` (row id and record) until it returns `false`.
    fn query(&mut self, query: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// The highest row id, or `None` for an empty store.
    fn last_id(&mut self) -> Result<Option<i64>, StoreError>;
    /// Whether another connection may have committed since the last call; a cheap
    /// check that follow mode makes often. Backends that cannot tell say `true`.
    fn changed(&mut self) -> Result<bool, StoreError> {
        Ok(true)
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

/// Whether opening may create the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The relay: create the file and schema if needed.
    Create,
    /// Readers: the store must exist.
    Existing,
}

pub fn open(url: &StoreUrl, mode: OpenMode) -> Result<Box<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path, mode)?)),
        StoreUrl::Mssql(conn) => {
            let mut store = mssql::MssqlStore::open(conn)?;
            if mode == OpenMode::Existing {
                // Readers want an answer now: connect (within the timeout) or fail.
                store.last_id()?;
            }
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
