//! Removing old rows from the SQLite store, in whole blocks (the 4,096-id ranges of
//! `LogBlocks`), oldest first, in short transactions of a block or a few, so the relay's
//! writer waits at most a few blocks' delete.
//!
//! SQLite keeps the pages that deleted rows free inside the file and reuses them for
//! new rows: the file stops growing but does not shrink. Its size on disk is counted
//! as the pages in use plus the WAL, so the file settles at about the cap; `logq vacuum`
//! gives the free pages back to the file system on request (`VACUUM`).

use super::blocks::BLOCK_SHIFT;
use super::file;
use super::raw_select::RawSelect;
use crate::message::{Facility, Level, Protocol};
use crate::store::StoreError;
use crate::store::archive::{Columns, HOST, MSGID, PEER, PROCID, SOURCE};
use crate::store::columns::Dict;
use crate::store::retention::{Block, Usage};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A connection of its own to an existing store, for retention and `logq vacuum`.
pub struct SqliteRetention {
    conn: Connection,
    path: PathBuf,
}

impl SqliteRetention {
    /// Opens an existing, current store to remove rows from; never creates one.
    pub fn open(path: &Path) -> Result<SqliteRetention, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let found = file::identify(&file::open_read_only(path)?.conn).map_err(|e| e.at(path))?;
        super::check(path, found, false)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| StoreError::from(e).at(path))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| StoreError::from(e).at(path))?;
        // As the writer's: a removal's commit need not reach the disk before the next
        // one (its rows are archived and synced first; one undone by a crash is removed
        // again), and a block's pages, read once to delete and again to rebalance, stay
        // in memory.
        super::file::tune_for_writing(&conn).map_err(|e| StoreError::from(e).at(path))?;
        Ok(SqliteRetention {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store only to look at it (`logq --disk-usage`).
    pub fn open_read_only(path: &Path) -> Result<SqliteRetention, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let conn = file::open_read_only(path)?.conn;
        let found = file::identify(&conn).map_err(|e| e.at(path))?;
        super::check(path, found, false)?;
        Ok(SqliteRetention {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Rows stored with ids `first..=last`.
    pub fn count(&self, first: i64, last: i64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM LogRows WHERE id BETWEEN ?1 AND ?2",
                [first, last],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| StoreError::from(e).at(&self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sizes on disk and what the store holds.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        self.usage_inner().map_err(|e| e.at(&self.path))
    }

    /// Sizes on disk only (file, WAL, free pages): what a retention pass needs, cheap
    /// at any store size (no row count).
    pub fn sizes(&self) -> Result<Usage, StoreError> {
        self.sizes_inner().map_err(|e| e.at(&self.path))
    }

    fn sizes_inner(&self) -> Result<Usage, StoreError> {
        let file_bytes = std::fs::metadata(&self.path)?.len();
        let wal_bytes =
            std::fs::metadata(super::file::sidecar(&self.path, "-wal")).map_or(0, |m| m.len());
        Ok(Usage {
            file_bytes,
            wal_bytes,
            free_bytes: self.pages_bytes("freelist_count")?,
            ..Usage::default()
        })
    }

    /// A page count PRAGMA (`page_count`, `freelist_count`) in bytes.
    fn pages_bytes(&self, count: &str) -> rusqlite::Result<u64> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            self.conn.pragma_query_value(None, name, |r| r.get(0))
        };
        Ok((pragma(count)?.max(0) * pragma("page_size")?.max(0)) as u64)
    }

    /// The database's size by its page count: what the file grows to once the pages
    /// only the WAL holds yet (new pages past the file's end) are copied into it.
    pub fn db_bytes(&self) -> Result<u64, StoreError> {
        self.pages_bytes("page_count")
            .map_err(|e| StoreError::from(e).at(&self.path))
    }

    fn usage_inner(&self) -> Result<Usage, StoreError> {
        let sizes = self.sizes_inner()?;
        // Oldest and newest from the blocks' envelopes, which are their rows' own (rows
        // are removed in whole blocks): no per-row time index to ask.
        let (rows, oldest, newest): (i64, Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT (SELECT count(*) FROM LogRows), (SELECT min(min_time_us) FROM LogBlocks), \
             (SELECT max(max_time_us) FROM LogBlocks)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(Usage {
            rows: rows.max(0) as u64,
            oldest_us: oldest,
            newest_us: newest,
            ..sizes
        })
    }

    /// Every block but the newest (which the writer may still be filling, and whose
    /// last id keeps new ids from ever reusing removed ones), oldest first.
    pub fn blocks(&self) -> Result<Vec<Block>, StoreError> {
        let inner = || -> rusqlite::Result<Vec<Block>> {
            let last: Option<i64> =
                self.conn
                    .query_row("SELECT max(id) FROM LogRows", [], |r| r.get(0))?;
            let Some(last) = last else {
                return Ok(Vec::new());
            };
            let mut stmt = self.conn.prepare(
                "SELECT block, min_time_us, max_time_us FROM LogBlocks WHERE block < ?1 ORDER BY block",
            )?;
            let rows = stmt.query_map([last >> BLOCK_SHIFT], |r| {
                let block: i64 = r.get(0)?;
                Ok(Block {
                    first_id: block << BLOCK_SHIFT,
                    last_id: ((block + 1) << BLOCK_SHIFT) - 1,
                    min_time_us: r.get(1)?,
                    max_time_us: r.get(2)?,
                })
            })?;
            rows.collect()
        };
        inner().map_err(|e| StoreError::from(e).at(&self.path))
    }

    /// Puts the rows with ids `first..=last` into an archive's columns, in id order.
    /// Read from `LogRows` directly, not through the `Logs` view and records: the
    /// names stay dictionary ids, each looked up once a file (the view's joins, its
    /// computed columns and a record per row were half the archive thread's time).
    /// The columns are read through SQLite's C API ([`RawSelect`]), not rusqlite's
    /// `Row`.
    pub fn archive_rows(
        &self,
        first: i64,
        last: i64,
        cols: &mut Columns,
    ) -> Result<(), StoreError> {
        self.read_into(first, last, cols)
            .map_err(|e| StoreError::from(e).at(&self.path))
    }

    fn read_into(&self, first: i64, last: i64, cols: &mut Columns) -> rusqlite::Result<()> {
        let mut rows = RawSelect::prepare(
            &self.conn,
            "SELECT id, time_us, received_us, severity, facility, host_id, source_id, protocol,
                peer_id, peer_port, procid, msgid, structured_data, message
            FROM LogRows WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )?;
        rows.bind_int(1, first)?;
        rows.bind_int(2, last)?;
        while let Some(row) = rows.next()? {
            let level = row
                .int(3)
                .and_then(|c| Level::from_code(c.clamp(0, 7) as u8))
                .unwrap_or(Level::Notice);
            let facility = row
                .int(4)
                .and_then(|c| Facility::from_code(c.clamp(0, 255) as u8));
            let protocol = row
                .int(7)
                .and_then(|c| usize::try_from(c).ok())
                .and_then(|c| Protocol::ALL.get(c).copied())
                .unwrap_or(Protocol::Raw);
            // The message is checked as UTF-8 with the others of the file, in one pass.
            cols.push_fields_bytes(
                row.int(0).unwrap_or_default(),
                row.int(1).unwrap_or_default(),
                row.int(2).unwrap_or_default(),
                level,
                facility,
                protocol,
                row.text(12).map(text),
                row.text(13).unwrap_or_default(),
            );
            cols.push_name(PROCID, row.text(10).map(text));
            cols.push_name(MSGID, row.text(11).map(text));
            for (col, at, dict) in [(HOST, 5, Dict::Hosts), (SOURCE, 6, Dict::Sources)] {
                match row.int(at) {
                    None => cols.push_name(col, None),
                    Some(id) => cols.push_keyed_name(col, id as u64, || self.name(dict, id))?,
                }
            }
            let port = row.int(9);
            match row.int(8) {
                None => cols.push_name(PEER, None),
                Some(id) => {
                    let peer = || -> rusqlite::Result<Option<String>> {
                        Ok(self.name(Dict::Peers, id)?.map(|mut address| {
                            if let Some(port) = port {
                                use std::fmt::Write;
                                let _ = write!(address, ":{port}");
                            }
                            address
                        }))
                    };
                    match peer_key(id, port) {
                        Some(key) => cols.push_keyed_name(PEER, key, peer)?,
                        None => cols.push_name(PEER, peer()?.as_deref()),
                    }
                }
            }
        }
        Ok(())
    }

    /// The name of `id` in a dictionary, if there is one.
    fn name(&self, dict: Dict, id: i64) -> rusqlite::Result<Option<String>> {
        self.conn
            .prepare_cached(&format!("SELECT name FROM {} WHERE id = ?1", dict.table()))?
            .query_row([id], |r| r.get(0))
            .optional()
    }

    /// Removes the rows with ids `first..=last` and the summaries and word filters of
    /// the blocks wholly inside that range, in one transaction; returns the rows removed.
    pub fn remove(&mut self, first: i64, last: i64) -> Result<u64, StoreError> {
        let inner = |conn: &mut Connection| -> rusqlite::Result<u64> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM LogRows WHERE id BETWEEN ?1 AND ?2",
                [first, last],
            )?;
            let lo = (first + (1 << BLOCK_SHIFT) - 1) >> BLOCK_SHIFT;
            let hi = ((last + 1) >> BLOCK_SHIFT) - 1;
            tx.execute(
                "DELETE FROM LogBlocks WHERE block BETWEEN ?1 AND ?2",
                [lo, hi],
            )?;
            // A block's filters are rows block·64 … block·64 + 63.
            tx.execute(
                "DELETE FROM LogTokens WHERE id BETWEEN ?1 * 64 AND ?2 * 64 + 63",
                [lo, hi],
            )?;
            tx.commit()?;
            Ok(n as u64)
        };
        inner(&mut self.conn).map_err(|e| StoreError::from(e).at(&self.path))
    }

    /// Empties the WAL into the file and cuts it to nothing, trying for at most `wait`;
    /// `false` when it could not now.
    pub fn truncate_wal(&self, wait: Duration) -> bool {
        self.checkpoint("TRUNCATE", wait)
    }

    /// Empties the WAL into the file so that the next write starts it over from its
    /// beginning (cut back to the [`limit_wal`](Self::limit_wal) size, not to nothing:
    /// rewriting a file in place costs less than cutting and growing it again).
    pub fn restart_wal(&self, wait: Duration) -> bool {
        self.checkpoint("RESTART", wait)
    }

    /// Leaves checkpoints to others (the relay's background checkpointer and its WAL
    /// cuts): by default SQLite runs one inside every commit that finds the WAL past
    /// 1,000 pages, which under ingest is every block's removal, each with its syncs,
    /// while the relay's writer waits.
    pub fn no_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| StoreError::from(e).at(&self.path))
    }

    /// The WAL size this connection cuts the file back to when it starts it over.
    pub fn limit_wal(&self, bytes: u64) -> Result<(), StoreError> {
        super::file::limit_wal_file(&self.conn, bytes)
            .map_err(|e| StoreError::from(e).at(&self.path))
    }

    /// A RESTART or TRUNCATE checkpoint, tried for at most `wait`. A checkpoint
    /// already running on another connection (the writer's background checkpointer,
    /// four times a second) makes SQLite answer busy at once without its busy handler:
    /// that is retried here after a short sleep, so a collision does not postpone the
    /// cut a whole pass.
    fn checkpoint(&self, mode: &str, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let step = Duration::from_millis(20).min(wait);
        if self.conn.busy_timeout(step).is_err() {
            return false;
        }
        let done = loop {
            let busy = self
                .conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap_or(1);
            if busy == 0 {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let _ = self.conn.busy_timeout(Duration::from_secs(10));
        done
    }

    /// `VACUUM`: rewrites the file without its free pages (needs about the file's size
    /// again in free space while it runs, and blocks the relay's writer meanwhile).
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("VACUUM")
            .map_err(|e| StoreError::from(e).at(&self.path))?;
        self.truncate_wal(Duration::from_secs(1));
        Ok(())
    }
}

/// A text column's bytes as the `Logs` view's readers take them (not UTF-8: U+FFFD):
/// a store file is outside input, whoever wrote it. Checked with simdutf8 (the
/// parsers' checker), faster than `std::str::from_utf8` on messages.
fn text(t: &[u8]) -> &str {
    simdutf8::basic::from_utf8(t).unwrap_or("\u{FFFD}")
}

/// A peer's key among a file's names: its address id and port (none: port 0).
fn peer_key(id: i64, port: Option<i64>) -> Option<u64> {
    let port = match port {
        None => 0,
        Some(p) => u64::try_from(p).ok().filter(|p| *p <= 0xffff)? + 1,
    };
    let id = u64::try_from(id).ok().filter(|id| *id < 1 << 46)?;
    Some(id << 17 | port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_not_utf8_is_one_replacement_character() {
        assert_eq!(text("grüße".as_bytes()), "grüße");
        assert_eq!(text(b""), "");
        // A long one (simdutf8's wide path) with a bad byte near its end, and a cut
        // character: neither reaches the archive as it is.
        let mut long = "x".repeat(300).into_bytes();
        long[290] = 0xFF;
        assert_eq!(text(&long), "\u{FFFD}");
        assert_eq!(text(&"ü".as_bytes()[..1]), "\u{FFFD}");
    }
}
