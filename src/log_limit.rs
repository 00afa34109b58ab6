//! Warnings that can repeat (refused connections, insert retries, checkpoint failures,
//! truncations): the first occurrence is logged in full, the rest are counted and
//! summarised once per interval, so a flood of causes is a few lines, not a flood of
//! lines.
//!
//! ```ignore
//! static REFUSED: Limiter = Limiter::new("connection limit reached");
//! warn_limited!(REFUSED, peer = %peer, "connection limit reached; refusing");
//! ```
//! Summaries ("connection limit reached: 19,999 more in the last 30 s") are written by
//! [`flush_all`], which the relay calls every second and once more at exit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often repeats of one warning are summarised at most.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// One kind of repeatable warning. Lives in a `static`; cheap when not hit.
pub struct Limiter {
    what: &'static str,
    state: Mutex<State>,
    registered: AtomicBool,
}

struct State {
    /// When the last full line or summary was written.
    last: Option<Instant>,
    /// Occurrences since then that were only counted.
    pending: u64,
}

static ALL: Mutex<Vec<&'static Limiter>> = Mutex::new(Vec::new());

impl Limiter {
    pub const fn new(what: &'static str) -> Limiter {
        Limiter {
            what,
            state: Mutex::new(State {
                last: None,
                pending: 0,
            }),
            registered: AtomicBool::new(false),
        }
    }

    /// Records one occurrence. `Some(n)` when the caller should log it in full (`n`
    /// occurrences were counted silently before it), `None` when it was only counted.
    pub fn hit(&'static self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&'static self, now: Instant) -> Option<u64> {
        if !self.registered.swap(true, Ordering::Relaxed) {
            lock(&ALL).push(self);
        }
        let mut s = lock(&self.state);
        match s.last {
            Some(t) if now.duration_since(t) < SUMMARY_INTERVAL => {
                s.pending += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.pending))
            }
        }
    }

    /// Occurrences counted but not yet reported, taken when an interval has passed
    /// since the last line (or always when `force`).
    fn take_summary(&self, now: Instant, force: bool) -> Option<(u64, Duration)> {
        let mut s = lock(&self.state);
        let last = s.last?;
        let since = now.duration_since(last);
        if s.pending == 0 || (!force && since < SUMMARY_INTERVAL) {
            return None;
        }
        s.last = Some(now);
        Some((std::mem::take(&mut s.pending), since))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes a summary line for every warning with counted repeats whose interval has
/// passed; with `force` (at exit), for every warning with counted repeats.
pub fn flush_all(force: bool) {
    let now = Instant::now();
    let all: Vec<&'static Limiter> = lock(&ALL).clone();
    for l in all {
        if let Some((n, since)) = l.take_summary(now, force) {
            tracing::warn!(
                "{}: {} more in the last {} s",
                l.what,
                thousands(n),
                since.as_secs().max(1)
            );
        }
    }
}

/// `50064` → `50,064`: counts people read in a log line.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `tracing::warn!` through a [`Limiter`]: logged in full the first time in an interval
/// (with `repeats_before` when some were only counted), otherwise only counted.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        match $limiter.hit() {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(n) => ::tracing::warn!(repeats_before = n, $($arg)+),
            None => {}
        }
    };
}

/// As [`warn_limited!`], at error level.
#[macro_export]
macro_rules! error_limited {
    ($limiter:expr, $($arg:tt)+) => {
        match $limiter.hit() {
            Some(0) => ::tracing::error!($($arg)+),
            Some(n) => ::tracing::error!(repeats_before = n, $($arg)+),
            None => {}
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_counted_until_the_interval_passes() {
        static L: Limiter = Limiter::new("test");
        let t0 = Instant::now();
        assert_eq!(L.hit_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(L.hit_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(L.take_summary(t0 + Duration::from_secs(1), false), None);
        let later = t0 + SUMMARY_INTERVAL + Duration::from_secs(1);
        assert_eq!(
            L.take_summary(later, false),
            Some((5, SUMMARY_INTERVAL + Duration::from_secs(1)))
        );
        assert_eq!(L.take_summary(later, true), None, "nothing left to report");
        // Counted again until the next interval; then a full line with the count.
        assert_eq!(L.hit_at(later + Duration::from_secs(1)), None);
        assert_eq!(L.hit_at(later + SUMMARY_INTERVAL), Some(1));
    }

    #[test]
    fn force_reports_what_is_pending() {
        static L: Limiter = Limiter::new("forced");
        let t0 = Instant::now();
        assert_eq!(L.hit_at(t0), Some(0));
        assert_eq!(L.hit_at(t0), None);
        assert_eq!(L.take_summary(t0, true), Some((1, Duration::ZERO)));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(50_064), "50,064");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
