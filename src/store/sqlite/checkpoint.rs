//! The writer's background checkpointer.

use crate::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
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
    /// Set when the writer keeps the WAL under a limit: rounds come more often.
    pub limited: Arc<AtomicBool>,
    /// Rounds run so far (for the tests of the cadence).
    #[cfg(test)]
    pub rounds: Arc<AtomicU64>,
}

/// A full disk fails every checkpoint, four times a second: say it once per interval.
static CHECKPOINT_FAILED: crate::log_limit::Limiter =
    crate::log_limit::Limiter::new("WAL checkpoint failed");

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Under a WAL limit (retention's `max-size`: an eighth of the cap, filled in a few
/// tenths of a second at full speed) the writer starts the WAL over whenever it passes
/// the limit, and that RESTART copies what no round has copied yet, on the writer's
/// thread: with a round every 250 ms that was most of the WAL (the writer's CPU in a
/// capped run fell by 6 % with rounds every 50 ms, the copying moved here).
const CHECKPOINT_EVERY_LIMITED: std::time::Duration = std::time::Duration::from_millis(50);

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(std::time::Duration::from_secs(1))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        let running = Arc::new(Mutex::new(()));
        let turn = running.clone();
        let limited = Arc::new(AtomicBool::new(false));
        let every = limited.clone();
        let rounds = Arc::new(AtomicU64::new(0));
        let round = rounds.clone();
        let thread = std::thread::Builder::new()
            .name("logrelay-checkpoint".into())
            .spawn(move || {
                let next = || match every.load(Ordering::Relaxed) {
                    true => CHECKPOINT_EVERY_LIMITED,
                    false => CHECKPOINT_EVERY,
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(next())
                {
                    let _running = turn.lock().unwrap_or_else(PoisonError::into_inner);
                    round.fetch_add(1, Ordering::Relaxed);
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
            limited,
            #[cfg(test)]
            rounds,
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
