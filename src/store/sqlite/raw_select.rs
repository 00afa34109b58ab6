//! A SELECT read through SQLite's C API instead of rusqlite's `Row`, for the archive
//! thread's 14 columns a row (14 million reads a 1M-row replay; the word filer's
//! read-backs use it too, `tokens::read_block`): rusqlite checks the
//! column count, asks SQLite the type and then the value (each call finding the column
//! again) and wraps a `Result` at every read, about a fifth of the thread's time in
//! all (BENCHMARKS.md). Here a column is one call for its value, then reads of that
//! value. As in [`raw_insert`](super::raw_insert), the statement is prepared on the
//! connection's handle (rusqlite does not give a statement's).

use super::raw_insert::{error, prepare};
use rusqlite::ffi;
use std::ffi::c_int;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// One prepared SELECT. It borrows its connection, so it cannot outlive it.
pub struct RawSelect<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    columns: usize,
    conn: PhantomData<&'c rusqlite::Connection>,
}

impl<'c> RawSelect<'c> {
    pub fn prepare(conn: &'c rusqlite::Connection, sql: &str) -> rusqlite::Result<RawSelect<'c>> {
        // Finalized on drop, while `conn`, which this borrows, is still open.
        let (db, stmt) = prepare(conn, sql, 0)?;
        // SAFETY: a prepared statement.
        let columns = unsafe { ffi::sqlite3_column_count(stmt.as_ptr()) };
        Ok(RawSelect {
            stmt,
            db,
            columns: usize::try_from(columns).unwrap_or(0),
            conn: PhantomData,
        })
    }

    /// Binds parameter `i` (1-based, as in SQL) to an integer.
    pub fn bind_int(&mut self, i: c_int, v: i64) -> rusqlite::Result<()> {
        // SAFETY: a prepared statement; a bad index is an error code, not UB.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), i, v) };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, rc))
        }
    }

    /// The next row, `None` at the end. The row borrows the statement: its texts are
    /// SQLite's until the next step.
    pub fn next(&mut self) -> rusqlite::Result<Option<RawRow<'_>>> {
        // SAFETY: a prepared statement with every parameter bound (unbound: NULL).
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(Some(RawRow {
                stmt: self.stmt,
                columns: self.columns,
                select: PhantomData,
            })),
            ffi::SQLITE_DONE => Ok(None),
            rc => Err(error(self.db, rc)),
        }
    }
}

impl Drop for RawSelect<'_> {
    fn drop(&mut self) {
        // SAFETY: prepared on a connection still open (borrowed); not used again.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// The current row of a [`RawSelect`].
pub struct RawRow<'s> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    columns: usize,
    select: PhantomData<&'s mut ()>,
}

impl RawRow<'_> {
    /// Column `i` (0-based) and SQLite's type of it; `None` past the last column.
    /// One call into SQLite a column for the value, then reads of it (type, integer,
    /// text): each `sqlite3_column_*` call finds the column again. The value is
    /// SQLite's "unprotected" kind, which only the thread using the connection may
    /// read, as here.
    fn value(&self, i: usize) -> Option<(*mut ffi::sqlite3_value, c_int)> {
        if i >= self.columns {
            return None;
        }
        // SAFETY: a statement on a row (this borrows it until the next step); `i` is
        // a column of it.
        unsafe {
            let v = ffi::sqlite3_column_value(self.stmt.as_ptr(), i as c_int);
            if v.is_null() {
                return None;
            }
            Some((v, ffi::sqlite3_value_type(v)))
        }
    }

    /// Column `i` as the `Logs` view's readers take an integer: an integer, a real
    /// cut to one, else `None`.
    pub fn int(&self, i: usize) -> Option<i64> {
        let (v, kind) = self.value(i)?;
        // SAFETY: the value of a column of the current row.
        match kind {
            ffi::SQLITE_INTEGER => Some(unsafe { ffi::sqlite3_value_int64(v) }),
            ffi::SQLITE_FLOAT => Some(unsafe { ffi::sqlite3_value_double(v) } as i64),
            _ => None,
        }
    }

    /// Column `i`'s bytes when it is text (not checked to be UTF-8), else `None`.
    pub fn text(&self, i: usize) -> Option<&[u8]> {
        let (v, kind) = self.value(i)?;
        if kind != ffi::SQLITE_TEXT {
            return None;
        }
        // SAFETY: the value of a column of the current row, holding text: the pointer,
        // then the length, as SQLite asks. The bytes stay SQLite's until the next
        // step, which needs the `&mut` of the statement this row borrows.
        unsafe {
            let p = ffi::sqlite3_value_text(v);
            let n = ffi::sqlite3_value_bytes(v);
            if p.is_null() {
                // Out of memory making the text.
                return None;
            }
            Some(std::slice::from_raw_parts(
                p,
                usize::try_from(n).unwrap_or(0),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_type_as_the_logs_readers_take_it() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b);
             INSERT INTO t VALUES (1, 7, 'grüße'), (2, 2.9, ''), (3, NULL, x'ff00'),
                 (4, 'text', NULL), (5, -3, 'x');",
        )
        .unwrap();
        let mut q = RawSelect::prepare(
            &conn,
            "SELECT a, b FROM t WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )
        .unwrap();
        assert_eq!(q.columns, 2);
        q.bind_int(1, 1).unwrap();
        q.bind_int(2, 4).unwrap();
        assert!(q.bind_int(3, 0).is_err());
        let mut got = Vec::new();
        while let Some(r) = q.next().unwrap() {
            // Past the last column: nothing.
            assert!(r.int(2).is_none() && r.text(5).is_none());
            got.push((r.int(0), r.text(1).map(<[u8]>::to_vec)));
        }
        // A blob is not text, nor text an integer.
        let want: Vec<(Option<i64>, Option<Vec<u8>>)> = vec![
            (Some(7), Some("grüße".into())),
            (Some(2), Some(Vec::new())),
            (None, None),
            (None, None),
        ];
        assert_eq!(got, want);
        assert!(RawSelect::prepare(&conn, "SELECT nothing FROM t").is_err());
    }
}
