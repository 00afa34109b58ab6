//! The batch writer: one thread that takes batches off the channel and commits as many
//! as are waiting (up to `batch_rows`) in one transaction to its sinks, in order
//! (the store, then one per upstream relay it forwards to, `super::forward`). When the channel is empty it commits at once, so latency
//! stays low at low rates and transactions grow by themselves under load.
//!
//! When the store fails, batches go to the disk spool instead (in order: once anything
//! is spooled, new batches queue behind it) and are replayed into the store when it
//! recovers; a spool left by an earlier run is replayed first. Only when the spool is
//! full too does the writer wait, the memory budget runs out and TCP pushes back.
//! Between batches the writer runs its periodic [`Job`]s.

use super::budget::Held;
use super::spool::{Chunk, Spool, SpoolError};
use super::stats::Stats;
use crate::log_limit::{Limiter, thousands};
use crate::store::{Batch, StoreError, StoreWriter};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the writer waits for a batch before it looks at its jobs and the spool.
const TICK: Duration = Duration::from_millis(200);
/// Longest pause between attempts on a failing store.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// With the spool unusable at shutdown, how long a failing store is still tried.
const SHUTDOWN_GIVE_UP: Duration = Duration::from_secs(5);
/// After shutdown began, the store gets this long (the connections' drain takes up
/// to 2.25 s of it); what is still in memory then is spooled, so a slow store cannot
/// hold the exit up.
const SHUTDOWN_COMMIT_TIME: Duration = Duration::from_secs(5);

/// A batch on its way to the writer, with the memory-budget bytes it holds.
pub struct Inbound {
    pub batch: Batch,
    pub held: Held,
}

/// The point at which a batch is safe: the writer reports it per batch (releasing its
/// budget and acknowledging it to a sender that asked for acknowledgements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    Committed,
    Spooled,
}

impl Inbound {
    fn done(self, _at: Durable) {
        // Committed or spooled: a sender that asked for acknowledgements learns it now
        // (docs/PROTOCOL.md: "committed or spooled").
        self.batch.acknowledge();
        self.batch.recycle();
        // Giving the bytes back to the budget lets connections read on.
        drop(self.held);
    }
}

/// An output the writer drives. Sinks run in order; a batch is committed when every
/// sink took it.
pub trait Sink: Send {
    fn name(&self) -> &str;
    /// Writes all rows of `batches` as one unit; returns the rows written.
    fn write(&mut self, batches: &[Batch]) -> Result<usize, StoreError>;
    /// Reaches the output without writing (at start, to report a problem early).
    fn probe(&mut self) -> Result<(), StoreError>;
    /// Nothing came to write for a [`TICK`] (or for as long as the last call asked):
    /// deferred work, tidying up. Returns how soon to be called again while work it
    /// waits for is still under way.
    fn idle(&mut self) -> Option<Duration> {
        None
    }
}

/// The store as a sink.
pub struct StoreSink(pub Box<dyn StoreWriter>);

impl Sink for StoreSink {
    fn name(&self) -> &str {
        "store"
    }
    fn write(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        self.0.insert(batches)
    }
    fn probe(&mut self) -> Result<(), StoreError> {
        self.0.last_id().map(drop)
    }
    fn idle(&mut self) -> Option<Duration> {
        self.0.idle()
    }
}

/// Work that runs on the writer's thread between batches (retention, a watchdog…).
pub trait Job: Send {
    fn name(&self) -> &str;
    fn every(&self) -> Duration;
    /// Whether to run now, before [`every`](Self::every) has passed: asked after every
    /// turn of the writer (a commit at most, and a spool chunk) with the rows stored so
    /// far, so a job can follow what was written (retention: the room it kept filled).
    fn due(&self, _stored: u64) -> bool {
        false
    }
    /// Runs the job; `stored` as for [`due`](Self::due).
    fn run(&mut self, sinks: &mut [Box<dyn Sink>], stored: u64);
}

/// What the writer reports when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Rows waiting in the spool for the next start.
    pub spooled_left: u64,
    /// Rows that could be neither stored nor spooled.
    pub lost: u64,
}

pub struct Writer {
    pub sinks: Vec<Box<dyn Sink>>,
    pub spool: Option<Spool>,
    pub jobs: Vec<Box<dyn Job>>,
    pub batch_rows: usize,
    pub stats: Arc<Stats>,
    /// When the relay began to shut down: from then on a failing store is not waited
    /// for, and after [`SHUTDOWN_COMMIT_TIME`] not even a working one.
    pub stopping: Arc<OnceLock<Instant>>,
}

static RETRY: Limiter = Limiter::new("store writes failed");
static SPOOL_FAILED: Limiter = Limiter::new("spool writes failed");

/// The writer's view of the store's health.
struct Health {
    /// Since when the store fails, and rows that waited since.
    failing: Option<(Instant, u64)>,
    next_try: Instant,
    delay: Duration,
}

impl Health {
    fn failed(&mut self, rows: u64) {
        let now = Instant::now();
        let (_, waited) = self.failing.get_or_insert((now, 0));
        *waited += rows;
        self.next_try = now + self.delay;
        self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
    }

    fn waited(&mut self, rows: u64) {
        if let Some((_, w)) = &mut self.failing {
            *w += rows;
        }
    }

    fn recovered(&mut self) {
        self.delay = Duration::from_millis(50);
        if let Some((since, waited)) = self.failing.take() {
            tracing::info!(
                "store recovered after {} s; {} rows waited",
                since.elapsed().as_secs(),
                thousands(waited)
            );
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next_try
    }
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Inbound>, rt: tokio::runtime::Handle) -> Outcome {
        // The channel is awaited with a timeout on this thread: timers need the runtime.
        let _runtime = rt.enter();
        let mut health = Health {
            failing: None,
            next_try: Instant::now(),
            delay: Duration::from_millis(50),
        };
        // Reach the store now, so an unreachable one is reported at start.
        if let Err(e) = self.probe() {
            Stats::add(&self.stats.store_errors, 1);
            tracing::error!(error = %e, "store not reachable yet; will keep retrying");
        }
        if let Some(s) = self.spool.as_ref().filter(|s| !s.is_empty()) {
            tracing::info!(
                spool = %s.dir().display(),
                "{} rows spooled by an earlier run; storing them before new ones",
                thousands(s.rows())
            );
        }
        self.report_spool(false);
        let mut last_run: Vec<Instant> = vec![Instant::now(); self.jobs.len()];
        let mut pending: Vec<Inbound> = Vec::new();
        let mut lost = 0u64;
        // How soon a sink asked to be idle again (work of its own still under way).
        let mut again: Option<Duration> = None;
        loop {
            let backlog = self.spool.as_ref().is_some_and(|s| !s.is_empty());
            // With a spool to replay, take what is waiting without blocking; else wait
            // (a tick at most, for the jobs).
            let replaying = backlog && health.due() && self.stopping.get().is_none();
            let mut idle = false;
            let first = if replaying {
                match rx.try_recv() {
                    Ok(b) => Some(b),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                let wait = again.take().unwrap_or(TICK);
                match rt.block_on(tokio::time::timeout(wait, rx.recv())) {
                    Ok(Some(b)) => Some(b),
                    Ok(None) => break,
                    Err(_) => {
                        idle = true;
                        None
                    }
                }
            };
            if let Some(first) = first {
                let mut rows = first.batch.len();
                pending.push(first);
                while rows < self.batch_rows {
                    match rx.try_recv() {
                        Ok(b) => {
                            rows += b.batch.len();
                            pending.push(b);
                        }
                        Err(_) => break,
                    }
                }
                lost += self.deliver(&mut pending, &mut health);
            }
            self.replay(&mut health);
            if idle && health.failing.is_none() {
                again = self.sinks.iter_mut().filter_map(|s| s.idle()).min();
            }
            // A turn of the loop (at least every TICK): the watchdog's heartbeat.
            self.stats.writer.idle();
            let stored = self.stats.stored.load(std::sync::atomic::Ordering::Relaxed);
            for (job, last) in self.jobs.iter_mut().zip(&mut last_run) {
                if last.elapsed() >= job.every() || job.due(stored) {
                    tracing::debug!(job = job.name(), "running");
                    job.run(&mut self.sinks, stored);
                    *last = Instant::now();
                }
            }
        }
        // The channel is closed and empty: everything read has been delivered.
        let spooled_left = match &mut self.spool {
            Some(s) => {
                s.sync();
                s.rows()
            }
            None => 0,
        };
        if health.failing.is_some() {
            // Closing a failing store can wait on the same fault (SQLite checkpoints at
            // close, behind the same lock): leave it to the process exit instead, so
            // shutdown stays bounded. The file recovers its WAL at the next open.
            std::mem::forget(std::mem::take(&mut self.sinks));
        }
        Outcome { spooled_left, lost }
    }

    /// The spool's size for `/metrics` and `/readyz`; `full` when an append was refused.
    fn report_spool(&self, full: bool) {
        if let Some(s) = &self.spool {
            self.stats.levels.set_spool(s.size(), s.max_size(), full);
        }
    }

    fn probe(&mut self) -> Result<(), String> {
        self.sinks
            .iter_mut()
            .try_for_each(|s| s.probe().map_err(|e| format!("{}: {e}", s.name())))
    }

    fn write_sinks(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        let started = Instant::now();
        let mut written = || {
            // Rows written is the first sink's count (the store's, which leaves out the
            // rows a client resent); the others take every row.
            let mut n = None;
            for s in &mut self.sinks {
                let k = s.write(batches)?;
                n.get_or_insert(k);
            }
            Ok(n.unwrap_or(0))
        };
        let result = written();
        // Commit latency and store health for /metrics and /readyz; the watchdog ping.
        let rows = batches.iter().map(Batch::len).sum();
        let error = result.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        self.stats.writer.attempted(started.elapsed(), rows, error);
        result
    }

    /// Commits `pending`, or spools it; waits (backpressure) only when neither works.
    /// Returns rows lost (only when, at shutdown, neither works for a while).
    fn deliver(&mut self, pending: &mut Vec<Inbound>, health: &mut Health) -> u64 {
        let rows = pending.iter().map(|b| b.batch.len() as u64).sum::<u64>();
        let mut give_up: Option<Instant> = None;
        loop {
            let stopping = self.stopping.get().is_some();
            let late = self
                .stopping
                .get()
                .is_some_and(|t| t.elapsed() > SHUTDOWN_COMMIT_TIME && self.spool.is_some());
            let backlog = self.spool.as_ref().is_some_and(|s| !s.is_empty());
            // Straight to the store while nothing is spooled and it is not known to
            // fail (at shutdown a failing store is not waited for).
            if !backlog && !late && (health.failing.is_none() || (health.due() && !stopping)) {
                let batches: Vec<Batch> = pending
                    .iter_mut()
                    .map(|b| std::mem::take(&mut b.batch))
                    .collect();
                let result = self.write_sinks(&batches);
                for (p, b) in pending.iter_mut().zip(batches) {
                    p.batch = b;
                }
                match result {
                    Ok(n) => {
                        Stats::add(&self.stats.stored, n as u64);
                        // Rows a client resent that the store already had (acknowledged
                        // delivery) were dropped, not stored.
                        Stats::add(&self.stats.duplicates, rows.saturating_sub(n as u64));
                        health.waited(rows);
                        health.recovered();
                        pending.drain(..).for_each(|b| b.done(Durable::Committed));
                        // A write bigger than the whole spool was refused while the
                        // spool stayed empty: nothing replays to clear "full" but this.
                        if self.stats.levels.spool_full() {
                            self.report_spool(false);
                        }
                        return 0;
                    }
                    Err(e) => {
                        Stats::add(&self.stats.store_errors, 1);
                        health.failed(0);
                        let next = if self.spool.is_some() {
                            "spooling".to_string()
                        } else {
                            format!("retrying in {:?}", health.delay)
                        };
                        crate::error_limited!(RETRY, error = %e, rows, "store write failed; {next}");
                    }
                }
            }
            if let Some(spool) = &mut self.spool {
                match spool.append(pending.iter().map(|b| &b.batch), stopping) {
                    Ok(n) => {
                        Stats::add(&self.stats.spooled, n);
                        health.waited(n);
                        if health.failing.is_none() {
                            health.failing = Some((Instant::now(), 0));
                        }
                        pending.drain(..).for_each(|b| b.done(Durable::Spooled));
                        self.report_spool(false);
                        return 0;
                    }
                    Err(SpoolError::Full { .. }) if !stopping => {
                        let levels = &self.stats.levels;
                        levels.set_spool(spool.size(), spool.max_size(), true);
                        // Backpressure: replay what we can, else wait for the store.
                        crate::warn_limited!(SPOOL_FAILED, spool = %spool.dir().display(), "spool full; holding back senders until the store takes rows again");
                    }
                    Err(e) => {
                        crate::error_limited!(SPOOL_FAILED, error = %e, "cannot spool");
                    }
                }
            }
            if stopping {
                let since = *give_up.get_or_insert_with(Instant::now);
                if since.elapsed() > SHUTDOWN_GIVE_UP {
                    tracing::error!(
                        rows,
                        "store and spool both failing at shutdown; these rows are lost"
                    );
                    pending.clear();
                    return rows;
                }
            }
            // Nothing took the rows: make room by replaying, or wait for the store.
            if !self.replay(health) {
                std::thread::sleep(
                    health
                        .next_try
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(50))
                        .min(MAX_RETRY_DELAY),
                );
                health.next_try = Instant::now();
            }
        }
    }

    /// Stores one chunk of the spool, when there is one and the store is due for a try.
    /// Returns whether a chunk was stored.
    fn replay(&mut self, health: &mut Health) -> bool {
        let Some(spool) = self.spool.as_mut() else {
            return false;
        };
        if spool.is_empty() || !health.due() || self.stopping.get().is_some() {
            return false;
        }
        let torn_before = spool.torn;
        let chunk: Chunk = match spool.read_chunk(self.batch_rows) {
            Ok(Some(c)) => c,
            Ok(None) => return false,
            Err(e) => {
                crate::error_limited!(SPOOL_FAILED, error = %e, "cannot read the spool");
                health.failed(0);
                return false;
            }
        };
        let result = if chunk.batches.is_empty() {
            Ok(0)
        } else {
            self.write_sinks(&chunk.batches)
        };
        let Some(spool) = self.spool.as_mut() else {
            return false;
        };
        Stats::add(&self.stats.spool_torn, spool.torn - torn_before);
        match result {
            Ok(n) => {
                if let Err(e) = spool.commit(&chunk) {
                    crate::error_limited!(SPOOL_FAILED, error = %e, "cannot record replay progress");
                }
                Stats::add(&self.stats.stored, n as u64);
                Stats::add(&self.stats.replayed, n as u64);
                if spool.is_empty() {
                    health.recovered();
                }
                self.report_spool(false);
                true
            }
            Err(e) => {
                Stats::add(&self.stats.store_errors, 1);
                health.failed(0);
                crate::error_limited!(RETRY, error = %e, rows = chunk.rows(), "store write failed; the spool waits");
                false
            }
        }
    }
}
