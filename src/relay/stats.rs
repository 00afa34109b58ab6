//! Counters the relay keeps and logs periodically and at exit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
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
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} stored={} raw={} truncated={} udp_dropped={} connections_open={} \
             connections_total={} connections_rejected={} store_errors={} duplicates={}",
            self.received,
            self.stored,
            self.raw,
            self.truncated,
            self.udp_dropped,
            self.connections_open,
            self.connections_total,
            self.connections_rejected,
            self.store_errors,
            self.duplicates
        )
    }
}
