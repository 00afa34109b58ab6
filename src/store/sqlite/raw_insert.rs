//! The writer's INSERTs run through SQLite's C API instead of rusqlite's `Statement`,
//! for the ~13 values bound per row, 13 million a 1M-row replay:
//! - text is bound in place (`SQLITE_STATIC`) where rusqlite has SQLite copy it into a
//!   fresh allocation per value (`SQLITE_TRANSIENT`): the message is copied once less;
//! - an integer or NULL equal to what the parameter holds is not bound again (a
//!   statement keeps its bindings from one run to the next; the protocol, the peer and
//!   absent fields mostly repeat);
//! - no connection borrow and error decoding per value.
//!
//! rusqlite offers neither, nor the statement's handle, so the statement is prepared
//! here on the connection's handle. Binding and clearing go through [`Rows`], which
//! borrows the text for as long as it is bound and clears every binding when dropped,
//! so the statement never keeps a pointer into freed memory.

use rusqlite::ffi;
use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// What a parameter holds, as far as binding it again can be skipped.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    /// Text, or unknown.
    Other,
    Null,
    Int(i64),
}

/// One prepared statement of the writer's. It must be dropped before the connection
/// that prepared it (a field declared before the `Connection`).
pub struct RawInsert {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    held: Vec<Held>,
}

// The statement is used only with its connection, which the writer owns and moves with it.
unsafe impl Send for RawInsert {}

impl RawInsert {
    pub fn prepare(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<RawInsert> {
        // The caller keeps `conn` beyond this statement (see the type's note).
        let (db, stmt) = prepare(conn, sql, ffi::SQLITE_PREPARE_PERSISTENT)?;
        // SAFETY: a prepared statement.
        let n = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) };
        Ok(RawInsert {
            stmt,
            db,
            // Fresh statements have every parameter NULL.
            held: vec![Held::Null; usize::try_from(n).unwrap_or(0)],
        })
    }

    /// Binds and runs rows whose text lives for `'t`.
    pub fn rows<'t>(&mut self) -> Rows<'_, 't> {
        Rows {
            insert: self,
            text: PhantomData,
        }
    }
}

impl Drop for RawInsert {
    fn drop(&mut self) {
        // SAFETY: prepared on a connection still open (the type's note); not used again.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// A statement being bound with text that lives for `'t`.
pub struct Rows<'s, 't> {
    insert: &'s mut RawInsert,
    text: PhantomData<&'t str>,
}

impl<'t> Rows<'_, 't> {
    /// Parameter `i` (0-based) to NULL.
    pub fn null(&mut self, i: usize) -> rusqlite::Result<()> {
        self.int_or_null(i, Held::Null)
    }

    /// Parameter `i` (0-based) to an integer.
    pub fn int(&mut self, i: usize, v: i64) -> rusqlite::Result<()> {
        self.int_or_null(i, Held::Int(v))
    }

    fn int_or_null(&mut self, i: usize, v: Held) -> rusqlite::Result<()> {
        let ins = &mut *self.insert;
        let Some(held) = ins.held.get_mut(i) else {
            return Err(rusqlite::Error::InvalidParameterCount(
                i + 1,
                ins.held.len(),
            ));
        };
        if *held == v {
            return Ok(());
        }
        let at = param(i)?;
        // SAFETY: a prepared statement, not running (runs end in a reset).
        let rc = unsafe {
            match v {
                Held::Int(v) => ffi::sqlite3_bind_int64(ins.stmt.as_ptr(), at, v),
                _ => ffi::sqlite3_bind_null(ins.stmt.as_ptr(), at),
            }
        };
        *held = if rc == ffi::SQLITE_OK { v } else { Held::Other };
        check(ins.db, rc)
    }

    /// Parameter `i` (0-based) to `text`, which SQLite reads in place.
    pub fn text(&mut self, i: usize, text: &'t str) -> rusqlite::Result<()> {
        let ins = &mut *self.insert;
        let Some(held) = ins.held.get_mut(i) else {
            return Err(rusqlite::Error::InvalidParameterCount(
                i + 1,
                ins.held.len(),
            ));
        };
        *held = Held::Other;
        let at = param(i)?;
        // SAFETY: `text` outlives the binding: `Rows` lives no longer than `'t` and
        // clears every binding when dropped. SQLITE_STATIC: SQLite neither copies nor
        // frees it.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                ins.stmt.as_ptr(),
                at,
                text.as_ptr().cast(),
                text.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        check(ins.db, rc)
    }

    /// Runs the statement with what is bound (it keeps the bindings).
    pub fn execute(&mut self) -> rusqlite::Result<()> {
        let ins = &mut *self.insert;
        // SAFETY: a prepared statement; every bound text is alive (see `text`).
        let (step, reset) = unsafe {
            let step = ffi::sqlite3_step(ins.stmt.as_ptr());
            (step, ffi::sqlite3_reset(ins.stmt.as_ptr()))
        };
        match step {
            ffi::SQLITE_DONE => check(ins.db, reset),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(ins.db, rc)),
        }
    }
}

impl Drop for Rows<'_, '_> {
    /// No pointer into the caller's text stays bound.
    fn drop(&mut self) {
        let ins = &mut *self.insert;
        // SAFETY: a prepared statement; reset first in case a run was left unfinished.
        unsafe {
            ffi::sqlite3_reset(ins.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(ins.stmt.as_ptr());
        }
        ins.held.fill(Held::Null);
    }
}

/// The 1-based SQLite parameter number of parameter `i`.
fn param(i: usize) -> rusqlite::Result<c_int> {
    c_int::try_from(i + 1).map_err(|_| rusqlite::Error::InvalidParameterCount(i + 1, 0))
}

fn check(db: NonNull<ffi::sqlite3>, rc: c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(error(db, rc))
    }
}

/// The connection's error for `rc`, with SQLite's message.
/// A statement prepared on `conn`'s handle (rusqlite gives no statement's), with the
/// handle. The statement must be finalized before `conn` closes.
pub(super) fn prepare(
    conn: &rusqlite::Connection,
    sql: &str,
    flags: std::ffi::c_uint,
) -> rusqlite::Result<(NonNull<ffi::sqlite3>, NonNull<ffi::sqlite3_stmt>)> {
    // SAFETY: the handle is open for as long as `conn`.
    let db = NonNull::new(unsafe { conn.handle() }).ok_or(rusqlite::Error::InvalidQuery)?;
    let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
    let mut stmt = std::ptr::null_mut();
    // SAFETY: `sql` is valid for `len` bytes; SQLite writes the statement to `stmt`.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            db.as_ptr(),
            sql.as_ptr().cast(),
            len,
            flags,
            &mut stmt,
            std::ptr::null_mut(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(error(db, rc));
    }
    let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
    Ok((db, stmt))
}

pub(super) fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> rusqlite::Error {
    // SAFETY: an open connection; the message is copied before the next call.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let msg = ffi::sqlite3_errmsg(db.as_ptr());
        let message = (!msg.is_null()).then(|| CStr::from_ptr(msg).to_string_lossy().into_owned());
        (if code == ffi::SQLITE_OK { rc } else { code }, message)
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
            .unwrap();
        conn
    }

    #[test]
    fn repeated_values_are_stored_and_text_is_not_kept_bound() {
        let conn = table();
        let mut ins =
            RawInsert::prepare(&conn, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)").unwrap();
        {
            // An empty text is stored as '', not NULL.
            let owned = ["one".to_string(), String::new()];
            let mut rows = ins.rows();
            for (k, text) in owned.iter().enumerate() {
                rows.int(0, 7).unwrap();
                rows.text(1, text).unwrap();
                if k == 0 {
                    rows.null(2).unwrap();
                } else {
                    rows.int(2, k as i64).unwrap();
                }
                rows.execute().unwrap();
            }
        }
        // The next rows start from cleared bindings: an unbound value is NULL again.
        {
            let mut rows = ins.rows();
            rows.int(0, 7).unwrap();
            rows.execute().unwrap();
        }
        let got: Vec<(i64, Option<String>, Option<i64>)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            vec![
                (7, Some("one".into()), None),
                (7, Some(String::new()), Some(1)),
                (7, None, None),
            ]
        );
    }

    #[test]
    fn errors_carry_sqlites_message() {
        let conn = table();
        conn.execute_batch("CREATE UNIQUE INDEX t_a ON t (a)")
            .unwrap();
        let mut ins = RawInsert::prepare(&conn, "INSERT INTO t (a) VALUES (?1)").unwrap();
        let mut rows = ins.rows();
        rows.int(0, 1).unwrap();
        rows.execute().unwrap();
        let e = rows.execute().unwrap_err();
        assert!(e.to_string().contains("UNIQUE"), "{e}");
        assert!(rows.int(5, 1).is_err(), "no parameter 6");
        assert!(RawInsert::prepare(&conn, "INSERT INTO nowhere VALUES (1)").is_err());
    }
}
