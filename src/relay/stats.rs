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
    /// Commit latency, store health and the watchdog heartbeat, fed by the writer.
    pub writer: super::health::WriterHealth,
    /// Connections refused by authentication, by [`Refusal`] (index = position in ALL).
    pub refused: [AtomicU64; REFUSALS],
}

/// Fields of [`Snapshot`] that are levels, not counts (exported as gauges).
pub const GAUGES: &[&str] = &["connections_open"];

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
        Snapshot {
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
             spooled={} replayed={} spool_torn={} udp_kernel_dropped={} budget_overdrafts={}",
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
            self.budget_overdrafts
        )?;
        // Only the reasons that happened: most relays never refuse anyone.
        for (r, n) in Refusal::ALL.iter().zip(self.refused) {
            if n > 0 {
                write!(f, " refused_{}={n}", r.name())?;
            }
        }
        Ok(())
    }
}
