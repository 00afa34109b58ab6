//! What the writer loop reports about itself on every turn: commit latency (a
//! histogram for `/metrics`), whether the store is failing (for `/readyz`) and a
//! heartbeat for the service manager's watchdog. The writer only calls
//! [`WriterHealth::attempted`] and [`WriterHealth::idle`]; readers of the state live in
//! `metrics` and `notify`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Upper bounds of the commit latency buckets, in seconds (Prometheus `le`).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A callback the writer thread runs at most once per `every` (the watchdog ping).
struct Beat {
    every: Duration,
    last: Mutex<Option<Instant>>,
    ping: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
pub struct WriterHealth {
    /// Per bucket (not cumulative), then the overflow bucket.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    commits: AtomicU64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    beat: OnceLock<Beat>,
}

impl std::fmt::Debug for WriterHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHealth")
            .field("commits", &self.commits)
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

/// A copy of the commit latency histogram: cumulative counts per bucket bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
}

impl WriterHealth {
    /// One insert attempt of `rows` rows took `took`; `error` is its failure, if any.
    pub fn attempted(&self, took: Duration, rows: usize, error: Option<&dyn std::fmt::Display>) {
        match error {
            None => {
                if rows > 0 {
                    let secs = took.as_secs_f64();
                    let i = LATENCY_BUCKETS
                        .iter()
                        .position(|&le| secs <= le)
                        .unwrap_or(LATENCY_BUCKETS.len());
                    self.buckets[i].fetch_add(1, Relaxed);
                    self.latency_sum_us
                        .fetch_add(took.as_micros() as u64, Relaxed);
                    self.commits.fetch_add(1, Relaxed);
                }
                if self.failing.swap(false, Relaxed)
                    && let Ok(mut e) = self.last_error.lock()
                {
                    *e = None;
                }
            }
            Some(e) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                self.failing.store(true, Relaxed);
            }
        }
        self.beat();
    }

    /// The writer woke up with nothing to store (a heartbeat): it is alive.
    pub fn idle(&self) {
        self.beat();
    }

    /// The store's last insert failed and none has succeeded since: the error.
    pub fn failing(&self) -> Option<String> {
        if !self.failing.load(Relaxed) {
            return None;
        }
        let text = self.last_error.lock().ok().and_then(|e| e.clone());
        Some(text.unwrap_or_else(|| "store insert failing".into()))
    }

    pub fn latency(&self) -> Latency {
        let mut total = 0;
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            total += self.buckets[i].load(Relaxed);
            cumulative.push((*le, total));
        }
        total += self.buckets[LATENCY_BUCKETS.len()].load(Relaxed);
        Latency {
            cumulative,
            count: total,
            sum_secs: self.latency_sum_us.load(Relaxed) as f64 / 1e6,
        }
    }

    /// Runs `ping` from the writer thread at most once per `every`, on its turns. Set
    /// once (a second call is ignored).
    pub fn on_heartbeat(&self, every: Duration, ping: Box<dyn Fn() + Send + Sync>) {
        let _ = self.beat.set(Beat {
            every,
            last: Mutex::new(None),
            ping,
        });
    }

    fn beat(&self) {
        let Some(beat) = self.beat.get() else {
            return;
        };
        let Ok(mut last) = beat.last.lock() else {
            return;
        };
        if last.is_none_or(|t| t.elapsed() >= beat.every) {
            *last = Some(Instant::now());
            drop(last);
            (beat.ping)();
        }
    }
}

/// The high-water mark of the memory budget and of the spool, in percent: past it the
/// relay still takes what it can, but asks a balancer to send elsewhere (`/readyz`).
pub const HIGH_WATER_PERCENT: u64 = 90;

/// Why the relay should not get traffic now (`/readyz` answers 503 with it), or
/// `None` when it is ready: the store failing, the memory budget or the spool past
/// [`HIGH_WATER_PERCENT`] (or the spool refusing appends). Every reason that holds,
/// joined by "; ".
pub fn not_ready(stats: &super::stats::Stats) -> Option<String> {
    let mut why = Vec::new();
    if let Some(e) = stats.writer.failing() {
        why.push(format!("store failing: {e}"));
    }
    let (used, total) = stats.levels.budget();
    if past_high_water(used, total) {
        why.push(format!(
            "memory budget past its high-water mark ({HIGH_WATER_PERCENT} %): {} of {} in use",
            human_bytes(used),
            human_bytes(total)
        ));
    }
    let (size, max) = stats.levels.spool();
    if max > 0 && stats.levels.spool_full() {
        why.push(format!(
            "spool full (the last write did not fit): {} of {}",
            human_bytes(size),
            human_bytes(max)
        ));
    } else if past_high_water(size, max) {
        why.push(format!(
            "spool past its high-water mark ({HIGH_WATER_PERCENT} %): {} of {}",
            human_bytes(size),
            human_bytes(max)
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn past_high_water(used: u64, total: u64) -> bool {
    total > 0 && used.saturating_mul(100) >= total.saturating_mul(HIGH_WATER_PERCENT)
}

/// `1536` → `1.5 KiB`: sizes in a reason a person reads.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn latency_is_cumulative_and_failure_clears_on_success() {
        let h = WriterHealth::default();
        h.attempted(Duration::from_micros(300), 5, None);
        h.attempted(Duration::from_millis(30), 5, None);
        h.attempted(Duration::from_secs(9), 5, None);
        h.attempted(Duration::from_micros(1), 0, None); // a heartbeat: not a commit
        let l = h.latency();
        assert_eq!(l.count, 3);
        assert_eq!(l.cumulative[0], (0.0005, 1));
        assert_eq!(l.cumulative[5], (0.025, 1));
        assert_eq!(l.cumulative[6], (0.05, 2));
        assert_eq!(l.cumulative.last().map(|c| c.1), Some(2));
        assert!(h.failing().is_none());
        h.attempted(Duration::from_secs(5), 5, Some(&"database is locked"));
        assert_eq!(h.failing().as_deref(), Some("database is locked"));
        h.attempted(Duration::from_millis(1), 5, None);
        assert!(h.failing().is_none());
    }

    #[test]
    fn not_ready_past_the_high_water_marks() {
        let stats = crate::relay::stats::Stats::default();
        assert_eq!(not_ready(&stats), None, "no budget or spool known yet");
        let budget = crate::relay::budget::Budget::new(1000);
        stats.levels.watch_budget(&budget);
        stats.levels.set_spool(899, 1000, false);
        let held = budget.try_acquire(899).expect("room");
        assert_eq!(not_ready(&stats), None, "89.9 % is below the mark");
        let more = budget.try_acquire(1).expect("room");
        let why = not_ready(&stats).expect("900 of 1000 is at the mark");
        assert!(why.starts_with("memory budget past"), "{why}");
        assert!(!why.contains("spool"), "{why}");
        drop((held, more));
        stats.levels.set_spool(950, 1000, false);
        let why = not_ready(&stats).expect("spool at 95 %");
        assert_eq!(
            why,
            "spool past its high-water mark (90 %): 950 B of 1000 B"
        );
        // A refused append means full, whatever the size says.
        stats.levels.set_spool(10, 1000, true);
        assert_eq!(
            not_ready(&stats).as_deref(),
            Some("spool full (the last write did not fit): 10 B of 1000 B")
        );
        stats.levels.set_spool(10, 1000, false);
        stats
            .writer
            .attempted(Duration::from_secs(1), 1, Some(&"database is locked"));
        assert_eq!(
            not_ready(&stats).as_deref(),
            Some("store failing: database is locked")
        );
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn heartbeat_is_rate_limited() {
        let h = WriterHealth::default();
        let n = Arc::new(AtomicU64::new(0));
        let seen = n.clone();
        h.on_heartbeat(
            Duration::from_secs(3600),
            Box::new(move || {
                seen.fetch_add(1, Relaxed);
            }),
        );
        for _ in 0..100 {
            h.idle();
        }
        assert_eq!(n.load(Relaxed), 1);
    }
}
