//! The relay's retention on a SQL Server store. The writer's periodic hook asks for a
//! pass every ten seconds; the pass runs on a thread of its own, because its statements
//! go over the network and the writer's inserts must not wait for them (the server
//! runs both side by side: inserts at the newest ids, deletes at the oldest, row
//! locks only). A pass removes at most [`MOST_BLOCKS`]; a slow server leaves the
//! next ticks unanswered until it is done. On shutdown a pass ends where it is: each
//! delete is its own transaction and archives are written before any delete.

use super::config::Retention;
use crate::store::archive::ArchiveDir;
use crate::store::mssql::retention::{KEEP_FREE_REFUSED, MssqlRetention, SETTLE};
use crate::store::retention::{Policy, RetentionError};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Time between passes.
const EVERY: Duration = Duration::from_secs(10);
/// Blocks a pass removes at most (about a million rows).
const MOST_BLOCKS: usize = 256;

/// The writer's side: a tick to the retention thread now and then.
pub struct MssqlRetentionJob {
    tick: mpsc::SyncSender<()>,
}

/// The retention thread's state.
struct Passes {
    conn: String,
    policy: Policy,
    archive_dir: Option<PathBuf>,
    store: Option<MssqlRetention>,
    /// After a removal with `max-size`: when, and the used size before it. Until the
    /// used size has dropped below it (SQL Server's ghost cleanup frees the pages in
    /// the background) or [`SETTLE`] has passed, no more is removed for size, so one
    /// excess is not removed twice.
    settling: Option<(Instant, u64)>,
}

impl MssqlRetentionJob {
    /// The job for these settings (its thread started), or `None` when no limit is set.
    pub fn new(conn: &str, r: &Retention) -> Result<Option<MssqlRetentionJob>, String> {
        if r.keep_free.0.is_some() {
            return Err(KEEP_FREE_REFUSED.into());
        }
        let policy = Policy {
            max_age: r.max_age.0.map(|s| s.0),
            max_size: r.max_size.0.map(|s| s.0),
            keep_free: None,
            headroom_blocks: 0,
        };
        if policy.is_off() {
            return Ok(None);
        }
        let mut passes = Passes {
            conn: conn.to_string(),
            policy,
            archive_dir: r.archive_dir.0.as_ref().map(|d| d.0.clone()),
            store: None,
            settling: None,
        };
        // One tick waiting at most: ticks while a pass runs are dropped.
        let (tick, ticks) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("logrelay-retention".into())
            .spawn(move || {
                // Ends when the writer drops the job (the channel closes).
                while ticks.recv().is_ok() {
                    passes.run_once();
                }
            })
            .map_err(|e| format!("cannot start the retention thread: {e}"))?;
        Ok(Some(MssqlRetentionJob { tick }))
    }
}

impl Passes {
    fn run_once(&mut self) {
        let started = Instant::now();
        let result = self.pass();
        super::retention::report_pass(started, result);
    }

    fn pass(&mut self) -> Result<u64, RetentionError> {
        if self.store.is_none() {
            self.store = Some(MssqlRetention::open(&self.conn)?);
        }
        let Some(store) = self.store.as_mut() else {
            return Ok(0);
        };
        let mut policy = self.policy.clone();
        if let Some((at, before)) = self.settling {
            if at.elapsed() >= SETTLE || store.sizes()?.used() < before {
                self.settling = None;
            } else {
                policy.max_size = None;
            }
        }
        if policy.is_off() {
            return Ok(0);
        }
        let used_before = match policy.max_size {
            Some(_) => Some(store.sizes()?.used()),
            None => None,
        };
        let now_us = chrono::Utc::now().timestamp_micros();
        let plan = store.plan(&policy, now_us, MOST_BLOCKS)?;
        if plan.is_empty() {
            return Ok(0);
        }
        let archive = match &self.archive_dir {
            Some(d) => Some(ArchiveDir::open(d).map_err(|e| RetentionError::Archive {
                dir: d.display().to_string(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let mut done = Vec::new();
        let result = store.remove(archive.as_ref(), &plan, &mut done);
        let rows = done.iter().map(|r| r.rows).sum();
        if let Some(before) = used_before.filter(|_| rows > 0) {
            self.settling = Some((Instant::now(), before));
        }
        result.map(|()| rows)
    }
}

impl super::writer::Job for MssqlRetentionJob {
    fn name(&self) -> &str {
        "retention"
    }
    fn every(&self) -> Duration {
        EVERY
    }
    fn run(&mut self, _sinks: &mut [Box<dyn super::writer::Sink>], _stored: u64) {
        // Full: a pass is running, or a tick is already waiting for it.
        let _ = self.tick.try_send(());
    }
}
