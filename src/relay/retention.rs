//! The relay's retention: a pass four times a second, on the writer's thread between
//! batches (a periodic job), that removes the oldest blocks the `[retention]` limits call
//! for. With `max-size` a pass also runs as soon as the rows stored since the last one
//! fill the room it left under the cap, so the file stays within the cap at any ingest
//! rate (the writer asks after each commit; a pass holds up ingest meanwhile, so nothing
//! is written while it runs). It uses a connection of its own and short transactions
//! of a few blocks; running on the writer's thread, its deletes and WAL cuts never
//! fight the writer for SQLite's one write lock, and the size cap stays exact.
//!
//! With `archive-dir`, the slow part (reading the rows, compressing them, writing and
//! syncing the file and its manifest) runs on a helper thread ([`Archiver`]) with a
//! connection of its own that only reads (a WAL reader never blocks the writer). A
//! pass hands it runs of blocks and deletes a block only once the helper has reported
//! its archive synced. With `max-size` it also hands over, ahead of time, the oldest
//! blocks beyond half of the cap (`retention::select_ahead`): when the cap is reached
//! they are archived already and go at once, where the helper alone would fall
//! behind full-speed ingest. Queries with the archives tell a row both archived and
//! still stored by its id.

use super::config::Retention;
use crate::log_limit::{Limiter, thousands};
use crate::store::StoreUrl;
use crate::store::archive::ArchiveDir;
use crate::store::retention::{self, Block, Policy, RetentionError, Usage};
use crate::store::sqlite::retention::SqliteRetention;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Time between passes.
const EVERY: Duration = Duration::from_millis(250);
/// A WAL beyond this share of `max-size` (at most [`WAL_MAX`]) is emptied and starts
/// over. Each such cut makes the writer wait for a checkpoint and its syncs: an eighth
/// halved their number against a sixteenth (BENCHMARKS.md), for a share of the cap that
/// holds no rows.
const WAL_SHARE: u64 = 8;
/// The WAL limit of a large cap: what the writer keeps without retention.
const WAL_MAX: u64 = 32 << 20;
/// How long a pass tries to cut the WAL (readers holding an old snapshot delay it).
const WAL_WAIT: Duration = Duration::from_millis(100);
/// Blocks of the room under `max-size` left unfilled when the next pass is due: the
/// writer asks after a commit (up to `batch-rows`, 5,000 rows by default, and a spool
/// chunk), so the rows stored may pass the mark by that much before the pass runs.
const MARGIN_BLOCKS: u64 = 2;
/// Quarter seconds whose arrivals archiving ahead makes room for (the most of them).
const ARRIVALS_KEPT: usize = 8;
/// Room for arrivals when archiving ahead is at most 1/`ROOM_SHARE` of `max-size` (see
/// [`with_room_for`]).
const ROOM_SHARE: u64 = 2;
/// Blocks a pass deletes at most without archiving (the writer waits for them).
const DELETE_BLOCKS: usize = 64;
/// Runs handed to the archiver and not yet reported: one being written, one waiting,
/// so the helper never idles between passes.
const IN_FLIGHT: usize = 2;

static FAILED: Limiter = Limiter::new("retention failed");
static ARCHIVE_FAILED: Limiter = Limiter::new("retention stopped: cannot archive");

/// Logs a pass's outcome, for both stores: rows removed, or why not (rate-limited).
pub(super) fn report_pass(started: std::time::Instant, result: Result<u64, RetentionError>) {
    match result {
        Ok(0) => {}
        Ok(rows) => tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "retention removed {} rows",
            thousands(rows)
        ),
        Err(e @ RetentionError::Archive { .. }) => {
            crate::error_limited!(ARCHIVE_FAILED, "{e}");
        }
        Err(e) => crate::error_limited!(FAILED, "retention failed: {e}"),
    }
}

pub struct RetentionJob {
    path: PathBuf,
    policy: Policy,
    archive_dir: Option<PathBuf>,
    store: Option<SqliteRetention>,
    archiver: Option<Archiver>,
    /// Id ranges the archiver reported synced since the relay started.
    archived: Ranges,
    /// With `max-size`: the rows stored (the writer's count) at the end of the last
    /// pass, and how many more the room left under the cap takes before the next pass
    /// is due.
    room: Option<Room>,
    /// Rows stored so far, as the writer last told.
    stored: u64,
    /// When the arrivals were last noted, and the newest complete block's last id then.
    noted: Option<(std::time::Instant, i64)>,
    /// Blocks that arrived in each of the last [`ARRIVALS_KEPT`] quarter seconds (or
    /// longer, between passes), newest first.
    arrivals: [u64; ARRIVALS_KEPT],
}

/// The room a pass left under `max-size`, in rows.
#[derive(Debug, Clone, Copy)]
struct Room {
    /// The writer's count of rows stored when the pass ended.
    stored: u64,
    /// The store's size as measured then (see [`measure`]).
    used: u64,
    /// Rows the store takes before the next pass is due.
    rows: u64,
}

impl RetentionJob {
    /// The job for these settings, or `None` when no limit is set.
    pub fn new(db: &StoreUrl, r: &Retention) -> Result<Option<RetentionJob>, String> {
        let policy = policy(r);
        if policy.is_off() {
            return Ok(None);
        }
        let StoreUrl::Sqlite(path) = db else {
            return Err("this retention job is for a SQLite store (SQL Server has its own)".into());
        };
        let archive_dir = r.archive_dir.0.as_ref().map(|d| d.0.clone());
        Ok(Some(RetentionJob::with(path.clone(), policy, archive_dir)))
    }

    /// The job for the store at `path`, before its first pass.
    fn with(path: PathBuf, policy: Policy, archive_dir: Option<PathBuf>) -> RetentionJob {
        RetentionJob {
            path,
            policy,
            archive_dir,
            store: None,
            archiver: None,
            archived: Ranges::default(),
            room: None,
            stored: 0,
            noted: None,
            arrivals: [0; ARRIVALS_KEPT],
        }
    }

    /// One pass: what the limits call for, archived (if set) and removed. The time
    /// logged is how long ingest waited for it (archiving runs on the archiver's thread).
    pub fn run_once(&mut self) {
        let started = std::time::Instant::now();
        let result = self.pass();
        if matches!(result, Err(RetentionError::Store(_))) {
            self.store = None; // reopen next time
        }
        if result.is_err() && self.policy.max_size.is_some() {
            // The next pass after the timer's wait (a pass that succeeds sets the
            // room it leaves).
            self.room = Some(Room {
                stored: self.stored,
                used: 0,
                rows: u64::MAX,
            });
        }
        report_pass(started, result);
    }

    fn pass(&mut self) -> Result<u64, RetentionError> {
        if self.store.is_none() {
            let store = SqliteRetention::open(&self.path)?;
            store.no_auto_checkpoint()?;
            if let Some(limit) = wal_limit_of(&self.policy) {
                store.limit_wal(limit)?;
            }
            self.store = Some(store);
        }
        let Some(store) = self.store.as_mut() else {
            return Ok(0);
        };
        // The runs archived since the last pass: their rows can go once they are due.
        let mut removed = Vec::new();
        let mut failed = None;
        if let Some(archiver) = self.archiver.as_mut() {
            for done in archiver.finished() {
                match done {
                    Ok(run) => self.archived.add(&run),
                    Err(e) => failed = Some(e),
                }
            }
        }
        let usage = measure(store, &self.policy)?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fs_free = retention::fs_available(dir).ok();
        let now_us = chrono::Utc::now().timestamp_micros();
        let all = store.blocks()?;
        let block_bytes = retention::block_bytes(&all, &usage);
        let block_rows = all
            .last()
            .map_or(4096, |b| (b.last_id - b.first_id + 1).max(1) as u64);
        // What the rows stored since the last pass took (their pages, new or reused).
        let row_bytes = match self.room {
            Some(r) if self.stored > r.stored && r.used > 0 => {
                usage.used().saturating_sub(r.used) / (self.stored - r.stored)
            }
            _ => 0,
        }
        .max(block_bytes / block_rows);
        // Arrivals a quarter second at least apart: archiving ahead starts earlier by
        // the most of them, so the archive thread is ahead when the cap is reached.
        let newest = all.last().map(|b| b.last_id);
        let now = std::time::Instant::now();
        match (self.noted, newest) {
            (Some((at, then)), Some(id)) if at.elapsed() >= EVERY => {
                note_arrivals(&mut self.arrivals, (id - then).max(0) as u64 / block_rows);
                self.noted = Some((now, id));
            }
            (None, Some(id)) => self.noted = Some((now, id)),
            _ => {}
        }
        let most_arrived = self.arrivals.iter().copied().max().unwrap_or(0);
        let room_blocks = room_blocks(&self.policy, block_bytes);
        let policy = Policy {
            headroom_blocks: self.policy.headroom_blocks + room_blocks,
            ..self.policy.clone()
        };
        let mut blocks = retention::select(&policy, &all, &usage, fs_free, now_us);
        match &self.archive_dir {
            Some(d) => {
                // Due and archived, oldest first, up to the first not archived yet.
                let ready = blocks
                    .iter()
                    .take_while(|b| self.archived.contains(b))
                    .take(DELETE_BLOCKS)
                    .count();
                delete(
                    &self.policy,
                    store,
                    &blocks[..ready],
                    block_bytes,
                    &mut removed,
                )?;
                let due: Vec<Block> = blocks.split_off(ready);
                let mut wanted: Vec<Block> = retention::select_ahead(
                    &with_room_for(&policy, most_arrived, block_bytes),
                    &all,
                    &usage,
                )
                .into_iter()
                .chain(due.iter().copied())
                .filter(|b| !self.archived.contains(b))
                .collect();
                wanted.sort_by_key(|b| b.first_id);
                wanted.dedup();
                if let Some(oldest) = all.first() {
                    self.archived.forget_below(oldest.first_id);
                }
                if !wanted.is_empty() {
                    // Checked here too, so a missing dir stops retention at once, with
                    // the dir named, before anything is handed over.
                    let archive = ArchiveDir::open(d).map_err(|e| RetentionError::Archive {
                        dir: d.display().to_string(),
                        reason: e.to_string(),
                    })?;
                    let archiver = match &mut self.archiver {
                        Some(a) => a,
                        None => self.archiver.insert(Archiver::start(&self.path, archive)?),
                    };
                    archiver.hand_over(&wanted, due.last().map(|b| b.last_id));
                }
            }
            None => {
                // Bounded work per pass: the writer waits for it.
                blocks.truncate(DELETE_BLOCKS);
                delete(&self.policy, store, &blocks, block_bytes, &mut removed)?;
            }
        }
        if let Some(max) = self.policy.max_size {
            // Measured again, exactly: the pages the deletes freed, not their estimate.
            let after = match removed.is_empty() {
                true => usage,
                false => measure(store, &self.policy).unwrap_or(usage),
            };
            self.room = Some(Room {
                stored: self.stored,
                used: after.used(),
                rows: rows_until_due(max, after.used(), row_bytes, block_rows, room_blocks),
            });
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(removed.iter().map(|r| r.rows).sum())
    }
}

/// The store's size as a pass counts it: the file without its free pages, and the
/// WAL's reserved share. The WAL counts as that share: the writer keeps it under that
/// limit (starting it over after a commit that passes it), so it needs no cut of its
/// own before measuring. A WAL over the limit is one a reader's old snapshot keeps from
/// starting over; removing rows cannot shrink it (their deletes only add to it), so
/// counting it whole would empty the store. A quarter more is reserved for what a
/// removal's transaction writes past the limit before its cut (see [`delete`]).
fn measure(store: &SqliteRetention, policy: &Policy) -> Result<Usage, RetentionError> {
    let mut usage = store.sizes()?;
    // New pages past the file's end are in the WAL only until a checkpoint copies
    // them: the file then grows by them while the WAL still holds its share, so they
    // count in the file's size already (at full speed the file grew by 15 MiB in one
    // checkpoint, past what retention had measured).
    usage.file_bytes = usage.file_bytes.max(store.db_bytes()?);
    if let Some(limit) = wal_limit_of(policy) {
        usage.wal_bytes = limit + limit / 4;
    }
    Ok(usage)
}

/// Adds the blocks that `arrived` in the last quarter second to the last ones (newest
/// first).
fn note_arrivals(arrivals: &mut [u64; ARRIVALS_KEPT], arrived: u64) {
    arrivals.rotate_right(1);
    arrivals[0] = arrived;
}

/// `policy` keeping room, besides its own headroom, for the `arrived` blocks that came
/// in a quarter second (the most of the last few), at most half of `max-size`: what
/// archiving ahead selects with. Passes kept that room under the cap itself before
/// they came whenever the room they left was filled; archiving ahead kept the lead it
/// gave (the archive thread, slower than full-speed ingest on two cores, starts earlier).
fn with_room_for(policy: &Policy, arrived: u64, block_bytes: u64) -> Policy {
    let most = policy
        .max_size
        .map_or(0, |max| max / ROOM_SHARE / block_bytes.max(1));
    Policy {
        headroom_blocks: policy.headroom_blocks + arrived.min(most),
        ..policy.clone()
    }
}

/// Blocks of room a pass keeps under `max-size` for the rows to come (besides the
/// policy's own two): as many as one removal transaction deletes, so that a pass
/// triggered when they are stored removes about as many in one transaction. Without
/// `max-size` none.
fn room_blocks(policy: &Policy, block_bytes: u64) -> u64 {
    match wal_limit_of(policy) {
        Some(limit) => blocks_per_commit(limit, block_bytes) as u64,
        None => 0,
    }
}

/// Rows the store takes after a pass before the next is due: those that fill the room
/// left under `max` (the store measured at `used`), but for [`MARGIN_BLOCKS`]. At least
/// `least_blocks` (a pass that could not bring the store under the cap, its blocks not
/// archived yet, runs again after those, not after every commit).
fn rows_until_due(max: u64, used: u64, row_bytes: u64, block_rows: u64, least_blocks: u64) -> u64 {
    let margin = MARGIN_BLOCKS * block_rows * row_bytes;
    let room = max.saturating_sub(used).saturating_sub(margin);
    (room / row_bytes.max(1)).max(least_blocks.max(1) * block_rows)
}

/// Removes `blocks` (archived already, or no archive set), oldest first, a few
/// consecutive blocks to a transaction: a block's delete rewrites every page it empties
/// and their parents, and a commit per block wrote the shared pages once a block
/// (12-20 % more CPU a row than 16 blocks at once). A removal writes WAL (about a
/// block's pages per block): with max-size the WAL starts over after a commit that
/// takes it past the writer's limit, and a transaction holds at most a quarter of that
/// limit, so file + WAL stays within the cap even in a long pass.
fn delete(
    policy: &Policy,
    store: &mut SqliteRetention,
    blocks: &[Block],
    block_bytes: u64,
    removed: &mut Vec<retention::Removed>,
) -> Result<(), RetentionError> {
    let limit = wal_limit_of(policy);
    let per_commit = blocks_per_commit(limit.unwrap_or(WAL_MAX), block_bytes);
    for run in retention::runs(blocks) {
        for group in run.chunks(per_commit) {
            let (Some(head), Some(tail)) = (group.first(), group.last()) else {
                continue;
            };
            let rows = store.remove(head.first_id, tail.last_id)?;
            removed.push(retention::Removed {
                last_id: tail.last_id,
                min_time_us: group
                    .iter()
                    .map(|b| b.min_time_us)
                    .min()
                    .unwrap_or(head.min_time_us),
                max_time_us: group
                    .iter()
                    .map(|b| b.max_time_us)
                    .max()
                    .unwrap_or(tail.max_time_us),
                ..head.removed(rows)
            });
            if let Some(limit) = limit
                && store.sizes().map_or(0, |u| u.wal_bytes) > limit
                && !store.restart_wal(WAL_WAIT)
            {
                tracing::debug!("WAL restart postponed (a reader holds an old snapshot)");
            }
        }
    }
    Ok(())
}

/// Blocks deleted in one transaction: as many as write about a quarter of the WAL's
/// limit (a block's delete writes about its own size), at least one, at most a run.
fn blocks_per_commit(wal_limit: u64, block_bytes: u64) -> usize {
    let n = wal_limit / 4 / block_bytes.max(1);
    (n as usize).clamp(1, retention::BLOCKS_PER_FILE)
}

/// The WAL size the writer keeps under with `max-size`: an eighth of it, at most
/// 32 MiB.
pub fn wal_limit(r: &Retention) -> Option<u64> {
    wal_limit_of(&policy(r))
}

fn wal_limit_of(policy: &Policy) -> Option<u64> {
    policy.max_size.map(|max| (max / WAL_SHARE).min(WAL_MAX))
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
    /// With `max-size`: at the first turn (the room is not known yet), then once the
    /// rows stored since the last pass fill the room it left.
    fn due(&self, stored: u64) -> bool {
        match self.room {
            None => self.policy.max_size.is_some(),
            Some(r) => stored.saturating_sub(r.stored) >= r.rows,
        }
    }
    fn run(&mut self, _sinks: &mut [Box<dyn super::writer::Sink>], stored: u64) {
        self.stored = stored;
        self.run_once();
    }
}

/// What the archiver reports per run: archived and synced, or why not.
type Archived = Result<Vec<Block>, RetentionError>;

/// Id ranges archived and synced, merged where they meet, oldest first.
#[derive(Debug, Default)]
struct Ranges(Vec<(i64, i64)>);

impl Ranges {
    /// Adds a run's range (runs arrive oldest first, but need not).
    fn add(&mut self, run: &[Block]) {
        let (Some(head), Some(tail)) = (run.first(), run.last()) else {
            return;
        };
        let (first, last) = (head.first_id, tail.last_id);
        let at = self.0.partition_point(|r| r.0 < first);
        self.0.insert(at, (first, last));
        // Merge with the neighbours it meets or overlaps.
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.0.len());
        for &(f, l) in &self.0 {
            match merged.last_mut() {
                Some(m) if f <= m.1.saturating_add(1) => m.1 = m.1.max(l),
                _ => merged.push((f, l)),
            }
        }
        self.0 = merged;
    }

    fn contains(&self, b: &Block) -> bool {
        self.0
            .iter()
            .any(|&(f, l)| f <= b.first_id && l >= b.last_id)
    }

    /// Forgets what lies wholly below `id` (removed from the store since).
    fn forget_below(&mut self, id: i64) {
        self.0.retain(|&(_, l)| l >= id);
    }
}

/// The archiver's thread and the runs handed to it, oldest first. It answers in the
/// order it was asked.
struct Archiver {
    runs: Option<mpsc::Sender<Vec<Block>>>,
    answers: mpsc::Receiver<Archived>,
    /// Id ranges of the runs handed over and not yet answered.
    in_flight: VecDeque<(i64, i64)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Archiver {
    fn start(path: &Path, dir: ArchiveDir) -> Result<Archiver, RetentionError> {
        let (runs, asked) = mpsc::channel::<Vec<Block>>();
        let (answer, answers) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("logrelay-archive".into())
            .spawn(move || {
                let mut store: Option<SqliteRetention> = None;
                while let Ok(run) = asked.recv() {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = std::time::Instant::now();
                    if store.is_none() {
                        store = SqliteRetention::open(&path)
                            .map_err(|e| {
                                let _ = answer.send(Err(e.into()));
                            })
                            .ok();
                    }
                    let Some(s) = &store else { continue };
                    let result =
                        retention::archive_run(s, &dir, &run, &|| stopping.load(Ordering::Relaxed));
                    let result = match result {
                        Ok(true) => {
                            tracing::debug!(
                                ms = started.elapsed().as_millis() as u64,
                                blocks = run.len(),
                                "archived"
                            );
                            Ok(run)
                        }
                        // Stopped between blocks: nothing written, nothing to report.
                        Ok(false) => break,
                        Err(e) => {
                            store = None; // reopen for the next run
                            Err(e)
                        }
                    };
                    if answer.send(result).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| RetentionError::Archive {
                dir: "(thread)".into(),
                reason: format!("cannot start the archive thread: {e}"),
            })?;
        Ok(Archiver {
            runs: Some(runs),
            answers,
            in_flight: VecDeque::new(),
            stop,
            thread: Some(thread),
        })
    }

    /// The runs answered since the last call, oldest first: the archived ones, whose
    /// blocks can be deleted once due, and failures.
    fn finished(&mut self) -> Vec<Archived> {
        let mut out = Vec::new();
        while let Ok(done) = self.answers.try_recv() {
            self.in_flight.pop_front();
            out.push(done);
        }
        out
    }

    /// Hands over the wanted blocks not handed over yet, in runs (one archive file
    /// each), while fewer than [`IN_FLIGHT`] are waiting. Only whole runs go, but for a
    /// run holding a block due for removal (ids up to `due_last`) when the thread is
    /// idle: small files compress worse, and blocks archived ahead can wait to grow into
    /// a whole run.
    fn hand_over(&mut self, wanted: &[Block], due_last: Option<i64>) {
        let fresh: Vec<Block> = wanted
            .iter()
            .filter(|b| {
                !self
                    .in_flight
                    .iter()
                    .any(|&(f, l)| b.last_id >= f && b.first_id <= l)
            })
            .copied()
            .collect();
        for run in retention::runs(&fresh) {
            let whole = run.len() == retention::BLOCKS_PER_FILE;
            let due = due_last.is_some_and(|last| run[0].first_id <= last);
            // Oldest first: a run that cannot go yet holds back the newer ones.
            if self.in_flight.len() >= IN_FLIGHT || !(whole || due && self.in_flight.is_empty()) {
                break;
            }
            let Some(runs) = &self.runs else { return };
            if runs.send(run.to_vec()).is_err() {
                return;
            }
            self.in_flight
                .push_back((run[0].first_id, run[run.len() - 1].last_id));
        }
    }
}

impl Drop for Archiver {
    /// Stops the thread: between blocks while it reads, else once the file it is
    /// writing is synced (what it wrote is found archived at the next start).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.runs.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("archive thread failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_pass_is_due_when_the_room_left_under_the_cap_is_filled() {
        let mib = 1 << 20;
        let row = 200;
        // 10 MiB free under the cap, 2 blocks of it kept as a margin.
        let rows = rows_until_due(128 * mib, 118 * mib, row, 4096, 5);
        assert_eq!(rows, (10 * mib - 2 * 4096 * row) / row);
        // Over the cap (nothing could be removed yet): after the least, not at once.
        assert_eq!(rows_until_due(128 * mib, 130 * mib, row, 4096, 5), 5 * 4096);
        assert_eq!(rows_until_due(128 * mib, 130 * mib, row, 4096, 0), 4096);
    }

    /// At full speed far more than the room kept under the cap arrives between two
    /// timed passes. Driven as the relay's writer drives it (a commit of 5,000 rows, then
    /// the job asked whether it is due; a timed pass every 250 ms of a clock that each
    /// commit moves by 10 ms, 500,000 msg/s: 30 blocks between timed passes), the store
    /// as retention counts it (pages in use and the WAL's reserve) and its file and WAL
    /// on disk stay within the cap and one block.
    #[test]
    fn a_pass_runs_once_the_room_is_filled_so_full_speed_keeps_the_cap() {
        use super::super::writer::Job;
        use crate::message::{Level, LogMessage};
        use crate::store::sqlite::SqliteWriter;
        use crate::store::{Batch, StoreWriter};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("logs.db");
        let wal = dir.path().join("logs.db-wal");
        let cap: u64 = 8 << 20;
        let policy = Policy {
            max_size: Some(cap),
            headroom_blocks: 2,
            ..Policy::default()
        };
        let limit = wal_limit_of(&policy).unwrap();
        let mut store = SqliteWriter::open(&db).unwrap();
        store.limit_wal(limit);
        let mut job = RetentionJob::with(db.clone(), policy, None);
        let look = rusqlite::Connection::open(&db).unwrap();
        let pragma = |name: &str| -> u64 {
            look.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .unwrap() as u64
        };
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let t = chrono::Utc::now();
        let (mut stored, mut clock_ms, mut timed_ms) = (0u64, 0u64, 0u64);
        let (mut counted, mut on_disk, mut passes) = (0u64, 0u64, 0);
        for commit in 0..30u64 {
            let mut b = Batch::new();
            for i in 0..5_000u64 {
                let n = commit * 5_000 + i;
                let text = format!(
                    "request {n} user=u{} path=/api/v1/items/{} status=200 took {} ms",
                    n % 97,
                    n % 1013,
                    n % 250
                );
                b.push(&LogMessage::new(text, Level::Info, t));
            }
            stored += store.insert(&[b]).unwrap() as u64;
            clock_ms += 10;
            let page = pragma("page_size");
            let in_use = (pragma("page_count") - pragma("freelist_count")) * page;
            counted = counted.max(in_use + limit + limit / 4);
            on_disk = on_disk.max(len(&db) + len(&wal));
            if clock_ms - timed_ms >= 250 || job.due(stored) {
                job.run(&mut [], stored);
                timed_ms = clock_ms;
                passes += 1;
            }
        }
        // One block: what a row takes in the store now, 4,096 times.
        let page = pragma("page_size");
        let rows: u64 = look
            .query_row("SELECT count(*) FROM LogRows", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64;
        let block = (pragma("page_count") - pragma("freelist_count")) * page / rows * 4096;
        assert!(rows < 150_000 / 2, "old rows were removed: {rows} left");
        eprintln!(
            "counted {counted} B, on disk {on_disk} B, cap {cap} B, block {block} B, {passes} passes, {rows} rows left"
        );
        assert!(
            counted <= cap + block && on_disk <= cap + block,
            "counted {counted} B, on disk {on_disk} B, under a cap of {cap} B \
             (blocks of {block} B; {passes} passes)"
        );
    }

    #[test]
    fn archiving_ahead_makes_room_for_the_most_recent_arrivals_up_to_half_the_cap() {
        let mib = 1 << 20;
        let capped = Policy {
            max_size: Some(128 * mib),
            headroom_blocks: 2,
            ..Policy::default()
        };
        let block = 880_000;
        let mut arrivals = [0; ARRIVALS_KEPT];
        note_arrivals(&mut arrivals, 18);
        for _ in 1..ARRIVALS_KEPT {
            note_arrivals(&mut arrivals, 3);
        }
        assert_eq!(arrivals.iter().max(), Some(&18));
        note_arrivals(&mut arrivals, 3);
        assert_eq!(arrivals.iter().max(), Some(&3), "18 is older than the kept");
        assert_eq!(with_room_for(&capped, 18, block).headroom_blocks, 20);
        // At most half of the cap (76 blocks).
        assert_eq!(with_room_for(&capped, 500, block).headroom_blocks, 78);
    }

    #[test]
    fn room_is_kept_for_one_removal_transaction_with_max_size_only() {
        let mib = 1 << 20;
        let capped = Policy {
            max_size: Some(128 * mib),
            headroom_blocks: 2,
            ..Policy::default()
        };
        assert_eq!(room_blocks(&capped, 820_000), 5);
        let aged = Policy {
            max_size: None,
            max_age: Some(Duration::from_secs(60)),
            ..capped.clone()
        };
        assert_eq!(room_blocks(&aged, 820_000), 0);
    }

    #[test]
    fn a_transaction_deletes_what_writes_a_quarter_of_the_wal_limit() {
        let mib = 1 << 20;
        // A 128 MiB cap: 16 MiB of WAL, blocks of ~0.8 MiB.
        assert_eq!(blocks_per_commit(16 * mib, 820_000), 5);
        // A cap so small that a block is about the WAL's limit: one at a time.
        assert_eq!(blocks_per_commit(768 * 1024, 780_000), 1);
        // A large cap: at most a run (one archive file's blocks).
        assert_eq!(
            blocks_per_commit(WAL_MAX, 100_000),
            retention::BLOCKS_PER_FILE
        );
    }
}
