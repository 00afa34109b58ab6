//! Telling the service manager how the relay is doing (sd_notify(3), `Type=notify`):
//! `READY=1` once it listens and the store is open, `STATUS=` with the counters,
//! `RELOADING=1` around SIGHUP, `STOPPING=1` at shutdown, and `WATCHDOG=1` from the
//! writer loop itself when `WatchdogSec=` is set. Without `NOTIFY_SOCKET` all of this
//! does nothing.

use super::stats::Stats;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often `STATUS=` is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

fn send(states: &[NotifyState]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET); not repeated");
    }
}

pub fn ready(stats: &Stats) {
    let status = format!("{}", stats.snapshot());
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// After a reload: ready again, with what was reloaded.
pub fn reloaded(summary: &str) {
    let status = format!("reloaded: {summary}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Whether a service manager listens at all.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Refreshes `STATUS=` with the counters until shutdown.
pub async fn report_status(stats: Arc<Stats>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let status = format!("{}", stats.snapshot());
                send(&[NotifyState::Status(&status)]);
            }
        }
    }
}

/// When the service manager asks for a watchdog (`WATCHDOG_USEC`), the writer thread
/// sends `WATCHDOG=1` as its loop turns (at least every 200 ms, idle or not), at most
/// every half period. A writer stuck in a store call stops the pings and the service
/// manager restarts the relay; one that is retrying a failing store keeps pinging (a
/// restart would not help). Returns whether a watchdog is on.
pub fn watchdog(stats: &Stats) -> bool {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return false;
    };
    let period = period.max(Duration::from_millis(20));
    stats
        .writer
        .on_heartbeat(period / 2, Box::new(|| send(&[NotifyState::Watchdog])));
    tracing::info!("watchdog every {period:?}: the writer pings it");
    true
}
