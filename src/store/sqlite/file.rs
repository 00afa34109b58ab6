//! Looking at a SQLite file before touching it: opening it read-only (also on a
//! read-only mount), telling a logrelay store from an empty or a foreign file, and
//! creating a new store file with its permissions.

use crate::store::StoreError;
use crate::store::columns::COLUMNS;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No tables and no schema version: a new file, free to set up.
    Empty,
    /// A logrelay store at this schema version.
    Logrelay(i64),
    /// Anything else, and why it is not a store.
    Foreign(String),
}

/// What a reader opened: a live file, or (on read-only media) an unchanging snapshot.
pub struct ReadOnly {
    pub conn: Connection,
    pub immutable: bool,
}

/// Opens `path` read-only. A WAL file whose `-shm` does not exist cannot be read on
/// a read-only directory (SQLite would have to create it); then, if no `-wal` exists
/// either (so no relay has the file open), it is read as an immutable snapshot.
pub fn open_read_only(path: &Path) -> Result<ReadOnly, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::from(e).at(path))?;
    match probe(&conn) {
        Ok(()) => {
            return Ok(ReadOnly {
                conn,
                immutable: false,
            });
        }
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::NotADatabase => {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
                reason: "it is not an SQLite database".into(),
            });
        }
        Err(e) if !cannot_init_wal(&e) || sidecar(path, "-wal").exists() => {
            return Err(StoreError::from(e).at(path));
        }
        Err(_) => {}
    }
    drop(conn);
    let Some(uri) = immutable_uri(path) else {
        return Err(StoreError::File {
            path: path.to_path_buf(),
            reason: "cannot read it on a read-only directory".into(),
            hint: Some("its name is not UTF-8: copy the file to a writable directory"),
        });
    };
    let conn = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
        .map_err(|e| StoreError::from(e).at(path))?;
    probe(&conn).map_err(|e| StoreError::from(e).at(path))?;
    Ok(ReadOnly {
        conn,
        immutable: true,
    })
}

/// Reads the header, which is what fails on an unreadable or non-SQLite file.
fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
}

fn cannot_init_wal(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::ReadOnly | ErrorCode::CannotOpen))
}

/// The settings of a connection that writes rows or removes them (the writer's and
/// retention's): `synchronous=NORMAL`, durable at checkpoints (a crash loses at most the
/// last commits, never the file), and a 64 MiB page cache (retention's deletes; the
/// writer, which only appends, sets a smaller one).
pub fn tune_for_writing(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -65536)
}

/// The size `conn` cuts the WAL file back to when the WAL starts over.
pub fn limit_wal_file(conn: &Connection, bytes: u64) -> rusqlite::Result<()> {
    conn.pragma_update(
        None,
        "journal_size_limit",
        bytes.min(i64::MAX as u64) as i64,
    )
}

pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `file:PATH?immutable=1`, with the characters a URI gives meaning to escaped.
fn immutable_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut uri = String::from("file:");
    for c in text.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

/// Tells a logrelay store from an empty or a foreign file, reading only.
pub fn identify(conn: &Connection) -> Result<Found, StoreError> {
    let version: i64 = match conn.pragma_query_value(None, "user_version", |r| r.get(0)) {
        Ok(v) => v,
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::NotADatabase => {
            return Ok(Found::Foreign("it is not an SQLite database".into()));
        }
        Err(e) => return Err(e.into()),
    };
    // `Logs` is a table up to schema version 4, a view over `LogRows` since.
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%'",
    )?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    if tables.is_empty() && version == 0 {
        return Ok(Found::Empty);
    }
    if !tables.iter().any(|t| t == "Logs") {
        return Ok(Found::Foreign("it has no Logs table".into()));
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('Logs')")?;
    let columns = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let missing = COLUMNS
        .iter()
        .filter_map(|c| c.sqlite)
        .find(|c| !columns.iter().any(|have| have == c.name));
    if let Some(c) = missing {
        return Ok(Found::Foreign(format!(
            "its Logs table has no {} column",
            c.name
        )));
    }
    if version == 0 {
        return Ok(Found::Foreign("it has no logrelay schema version".into()));
    }
    Ok(Found::Logrelay(version))
}

/// Creates the store file, empty, mode 0640, and its missing directories, mode 0750
/// (both then narrowed by the umask). An existing file is left as it is.
pub fn create_new(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| StoreError::from(e).at(dir))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::from(e).at(path)),
    }
}
