//! Counters the relay keeps and logs periodically and at exit.
//!
//! Every field of [`Snapshot`] also appears on `/metrics` by itself (see
//! `relay::metrics`): as `logrelay_NAME_total`, as `logrelay_dropped_total{reason=X}` for
//! `X_dropped`, as `logrelay_refused_total{reason=X}` for `X_rejected`/`X_refused`, and
//! as a gauge `logrelay_NAME` when NAME is listed in [`GAUGES`].

use super::auth::Refusal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const REFUSALS: usize = Refusal::ALL.len();

#[derive(Debug, Default)]
pub struct Stats {
    /// Non-empty frames (TCP) and datagrams (UDP) turned into records.
    pub received: AtomicU64,
    pub stored: AtomicU64,
    /// Records stored as `raw` because no parser accepted them.
    pub raw: AtomicU64,
    /// Frames cut at the frame limit (or at EOF inside an octet-counted frame).
    pub truncated: AtomicU64,
    pub udp_dropped: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub store_errors: AtomicU64,
    /// Rows resent by an acknowledged client that the store already had (dropped).
    pub duplicates: AtomicU64,
    /// Rows written to the disk spool because the store failed.
    pub spooled: AtomicU64,
    /// Rows replayed from the spool into the store (also counted in `stored`).
    pub replayed: AtomicU64,
    /// Torn or damaged spool records skipped.
    pub spool_torn: AtomicU64,
    /// Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    pub udp_kernel_dropped: AtomicU64,
    /// Reads made past a spent memory budget so an incomplete frame could finish.
    pub budget_overdrafts: AtomicU64,
    /// Rows an upstream relay acknowledged (forwarding).
    pub forwarded: AtomicU64,
    /// Rows waiting in the forwarding spools for an upstream acknowledgement.
    pub forward_backlog: AtomicU64,
    /// Commit latency, store health and the watchdog heartbeat, fed by the writer.
    pub writer: super::health::WriterHealth,
    /// Connections refused by authentication, by [`Refusal`] (index = position in ALL).
    pub refused: [AtomicU64; REFUSALS],
    /// Memory budget and spool use, for `/metrics` and `/readyz`.
    pub levels: Levels,
}

/// How full the two bounded resources are. The budget is read from its semaphore when
/// asked (connections take and give back bytes on every read: no counter to keep); the
/// spool's size is set by the writer, which owns the spool.
#[derive(Debug, Default)]
pub struct Levels {
    budget: std::sync::OnceLock<super::budget::Budget>,
    spool_bytes: AtomicU64,
    spool_max_bytes: AtomicU64,
    /// The last append was refused for want of room (a batch bigger than what is left
    /// can be refused below the high-water mark).
    spool_full: std::sync::atomic::AtomicBool,
}

impl Levels {
    /// Set once at start.
    pub fn watch_budget(&self, budget: &super::budget::Budget) {
        let _ = self.budget.set(budget.clone());
    }

    pub fn set_spool(&self, bytes: u64, max: u64, full: bool) {
        self.spool_bytes.store(bytes, Relaxed);
        self.spool_max_bytes.store(max, Relaxed);
        self.spool_full.store(full, Relaxed);
    }

    /// Whether the spool refused the last append: it is full.
    pub fn spool_full(&self) -> bool {
        self.spool_full.load(Relaxed)
    }

    /// Bytes of the memory budget reserved now, and the whole budget.
    pub fn budget(&self) -> (u64, u64) {
        self.budget
            .get()
            .map_or((0, 0), |b| (b.used() as u64, b.total() as u64))
    }

    /// Bytes in the spool now, and `spool-max-size` (0 without a spool).
    pub fn spool(&self) -> (u64, u64) {
        (
            self.spool_bytes.load(Relaxed),
            self.spool_max_bytes.load(Relaxed),
        )
    }
}

/// Fields of [`Snapshot`] that are levels, not counts (exported as gauges).
pub const GAUGES: &[&str] = &[
    "connections_open",
    "memory_budget_used_bytes",
    "memory_budget_bytes",
    "spool_bytes",
    "spool_max_bytes",
    "forward_backlog",
];

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub received: u64,
    pub stored: u64,
    pub raw: u64,
    pub truncated: u64,
    pub udp_dropped: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_rejected: u64,
    pub store_errors: u64,
    pub duplicates: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub spool_torn: u64,
    pub udp_kernel_dropped: u64,
    pub budget_overdrafts: u64,
    pub memory_budget_used_bytes: u64,
    pub memory_budget_bytes: u64,
    pub spool_bytes: u64,
    pub spool_max_bytes: u64,
    pub forwarded: u64,
    pub forward_backlog: u64,
    pub refused: [u64; REFUSALS],
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn refuse(&self, why: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == why) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let (memory_budget_used_bytes, memory_budget_bytes) = self.levels.budget();
        let (spool_bytes, spool_max_bytes) = self.levels.spool();
        Snapshot {
            memory_budget_used_bytes,
            memory_budget_bytes,
            spool_bytes,
            spool_max_bytes,
            received: self.received.load(Relaxed),
            stored: self.stored.load(Relaxed),
            raw: self.raw.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            udp_dropped: self.udp_dropped.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            connections_rejected: self.connections_rejected.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            spooled: self.spooled.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            spool_torn: self.spool_torn.load(Relaxed),
            udp_kernel_dropped: self.udp_kernel_dropped.load(Relaxed),
            budget_overdrafts: self.budget_overdrafts.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            forward_backlog: self.forward_backlog.load(Relaxed),
            refused: std::array::from_fn(|i| self.refused[i].load(Relaxed)),
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} stored={} raw={} truncated={} udp_dropped={} connections_open={} \
             connections_total={} connections_rejected={} store_errors={} duplicates={} \
             spooled={} replayed={} spool_torn={} udp_kernel_dropped={} budget_overdrafts={} \
             memory_budget_used_bytes={} spool_bytes={}",
            self.received,
            self.stored,
            self.raw,
            self.truncated,
            self.udp_dropped,
            self.connections_open,
            self.connections_total,
            self.connections_rejected,
            self.store_errors,
            self.duplicates,
            self.spooled,
            self.replayed,
            self.spool_torn,
            self.udp_kernel_dropped,
            self.budget_overdrafts,
            self.memory_budget_used_bytes,
            self.spool_bytes
        )?;
        // Only on a relay that forwards.
        if self.forwarded > 0 || self.forward_backlog > 0 {
            write!(
                f,
                " forwarded={} forward_backlog={}",
                self.forwarded, self.forward_backlog
            )?;
        }
        // Only the reasons that happened: most relays never refuse anyone.
        for (r, n) in Refusal::ALL.iter().zip(self.refused) {
            if n > 0 {
                write!(f, " refused_{}={n}", r.name())?;
            }
        }
        Ok(())
    }
}
