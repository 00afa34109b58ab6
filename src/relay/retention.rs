//! The relay's retention: a pass four times a second, on the writer's thread between batches
//! (a periodic job), that removes the oldest blocks the `[retention]` limits call for,
//! archiving them first when `archive-dir` is set. It uses a connection of its own and
//! one short transaction per block.

use super::config::Retention;
use crate::log_limit::{Limiter, thousands};
use crate::store::StoreUrl;
use crate::store::archive::ArchiveDir;
use crate::store::retention::{self, Policy, RetentionError};
use crate::store::sqlite::retention::SqliteRetention;
use std::path::PathBuf;
use std::time::Duration;

/// Time between passes.
const EVERY: Duration = Duration::from_millis(250);
/// A WAL beyond this share of `max-size` is emptied and cut.
const WAL_SHARE: u64 = 16;
/// How long a pass tries to cut the WAL (readers holding an old snapshot delay it).
const WAL_WAIT: Duration = Duration::from_millis(100);

static FAILED: Limiter = Limiter::new("retention failed");
static ARCHIVE_FAILED: Limiter = Limiter::new("retention stopped: cannot archive");

pub struct RetentionJob {
    path: PathBuf,
    policy: Policy,
    archive_dir: Option<PathBuf>,
    store: Option<SqliteRetention>,
}

impl RetentionJob {
    /// The job for these settings, or `None` when no limit is set.
    pub fn new(db: &StoreUrl, r: &Retention) -> Result<Option<RetentionJob>, String> {
        let policy = policy(r);
        if policy.is_off() {
            return Ok(None);
        }
        let StoreUrl::Sqlite(path) = db else {
            return Err(
                "retention runs on the SQLite store only (for SQL Server see the README's recipe)"
                    .into(),
            );
        };
        Ok(Some(RetentionJob {
            path: path.clone(),
            policy,
            archive_dir: r.archive_dir.0.as_ref().map(|d| d.0.clone()),
            store: None,
        }))
    }

    /// One pass: what the limits call for, archived (if set) and removed.
    pub fn run_once(&mut self) {
        let started = std::time::Instant::now();
        match self.pass() {
            Ok(0) => {}
            // The pass's time is how long ingest waited for it (it runs on the writer).
            Ok(rows) => tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "retention removed {} rows",
                thousands(rows)
            ),
            Err(e @ RetentionError::Archive { .. }) => {
                crate::error_limited!(ARCHIVE_FAILED, "{e}");
            }
            Err(e) => {
                self.store = None; // reopen next time
                crate::error_limited!(FAILED, "retention failed: {e}");
            }
        }
    }

    fn pass(&mut self) -> Result<u64, RetentionError> {
        if self.store.is_none() {
            self.store = Some(SqliteRetention::open(&self.path)?);
        }
        let Some(store) = self.store.as_mut() else {
            return Ok(0);
        };
        // The WAL counts in the store's size: cut it before measuring (the writer's
        // commits since the last pass) and after removing (a delete rewrites the pages
        // it frees), so the file plus WAL stays within max-size.
        cut_wal(&self.policy, store);
        let usage = store.sizes()?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let fs_free = retention::fs_available(dir).ok();
        let now_us = chrono::Utc::now().timestamp_micros();
        let mut blocks = retention::select(&self.policy, &store.blocks()?, &usage, fs_free, now_us);
        // Bounded work per pass: the writer waits for it.
        blocks.truncate(if self.archive_dir.is_some() { 16 } else { 64 });
        let mut removed = Vec::new();
        if !blocks.is_empty() {
            let archive = match &self.archive_dir {
                Some(d) => Some(ArchiveDir::open(d).map_err(|e| RetentionError::Archive {
                    dir: d.display().to_string(),
                    reason: e.to_string(),
                })?),
                None => None,
            };
            // A removal writes about a block of WAL: cut it before and after each.
            force_cut_wal(&self.policy, store);
            let policy = &self.policy;
            retention::remove(store, archive.as_ref(), &blocks, &mut removed, &mut |s| {
                force_cut_wal(policy, s)
            })?;
        }
        Ok(removed.iter().map(|r| r.rows).sum())
    }
}

/// With max-size, empties and cuts a WAL grown past a sixteenth of the cap.
fn cut_wal(policy: &Policy, store: &SqliteRetention) {
    let Some(max) = policy.max_size else {
        return;
    };
    if store.sizes().map_or(0, |u| u.wal_bytes) > max / WAL_SHARE {
        force_cut_wal(policy, store);
    }
}

/// With max-size, empties and cuts the WAL whatever its size.
fn force_cut_wal(policy: &Policy, store: &SqliteRetention) {
    if policy.max_size.is_some() && !store.truncate_wal(WAL_WAIT) {
        tracing::debug!("WAL truncation postponed (a reader holds an old snapshot)");
    }
}

/// The WAL size the writer keeps under with `max-size` (a sixteenth of it).
pub fn wal_limit(r: &Retention) -> Option<u64> {
    policy(r).max_size.map(|max| max / WAL_SHARE)
}

fn policy(r: &Retention) -> Policy {
    Policy {
        max_age: r.max_age.0.map(|s| s.0),
        max_size: r.max_size.0.map(|s| s.0),
        keep_free: r.keep_free.0.map(|s| s.0),
        headroom_blocks: 2,
    }
}

/// Runs on the writer's thread between batches: a pass never overlaps a commit.
impl super::writer::Job for RetentionJob {
    fn name(&self) -> &str {
        "retention"
    }
    fn every(&self) -> Duration {
        EVERY
    }
    fn run(&mut self, _sinks: &mut [Box<dyn super::writer::Sink>]) {
        self.run_once();
    }
}
