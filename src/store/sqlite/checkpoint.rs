//! The writer's background checkpointer.

use crate::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Copies the WAL into the database file on its own thread and connection, so the
/// writer's commits never pay for checkpoints (SQLite's auto-checkpoint runs inside the
/// committing transaction; on this workload it was a third of the writer's time).
pub struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// WAL size in frames after the last checkpoint, for the writer to act on.
    pub wal_frames: Arc<AtomicI64>,
    /// Held while a checkpoint runs here. SQLite answers a second connection's
    /// checkpoint meanwhile with "busy" at once, without its busy handler, so a writer
    /// that must cut the WAL waits on this instead of finding it busy commit after
    /// commit while the WAL grows.
    pub running: Arc<Mutex<()>>,
}

/// A full disk fails every checkpoint, four times a second: say it once per interval.
static CHECKPOINT_FAILED: crate::log_limit::Limiter =
    crate::log_limit::Limiter::new("WAL checkpoint failed");

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(std::time::Duration::from_secs(1))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        let running = Arc::new(Mutex::new(()));
        let turn = running.clone();
        let thread = std::thread::Builder::new()
            .name("logrelay-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let _running = turn.lock().unwrap_or_else(PoisonError::into_inner);
                    match conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                    {
                        Ok(log) => frames.store(log, Ordering::Relaxed),
                        Err(e) => crate::warn_limited!(CHECKPOINT_FAILED, error = %e, "WAL checkpoint failed"),
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
            wal_frames,
            running,
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
