//! The batch writer: one thread that owns the store, takes batches off the channel and
//! commits as many as are waiting (up to `batch_rows`) in one transaction. When the
//! channel is empty it commits at once, so latency stays low at low rates and
//! transactions grow by themselves under load. A failing store is retried, never
//! skipped: the channel fills and the connections stop reading (backpressure).

use super::stats::Stats;
use crate::log_limit::{Limiter, thousands};
use crate::store::{Batch, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a failing store is retried once the relay is shutting down.
const SHUTDOWN_GIVE_UP: Duration = Duration::from_secs(30);

pub fn run(
    mut store: Box<dyn Store>,
    mut rx: mpsc::Receiver<Batch>,
    batch_rows: usize,
    stats: Arc<Stats>,
) {
    // Reach the store now, so an unreachable one is reported at start, not at the
    // first message (inserts keep retrying it either way).
    if let Err(e) = store.last_id() {
        Stats::add(&stats.store_errors, 1);
        tracing::error!(error = %e, "store not reachable yet; will keep retrying");
    }
    static RETRY: Limiter = Limiter::new("store insert failed (retrying)");
    // Since when the store fails.
    let mut failing: Option<std::time::Instant> = None;
    let mut pending: Vec<Batch> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut rows = first.len();
        pending.push(first);
        while rows < batch_rows {
            match rx.try_recv() {
                Ok(b) => {
                    rows += b.len();
                    pending.push(b);
                }
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(50);
        let started = std::time::Instant::now();
        loop {
            match store.insert(&pending) {
                Ok(n) => {
                    Stats::add(&stats.stored, n as u64);
                    // Rows a client resent that the store already had (acknowledged
                    // delivery) were dropped, not stored.
                    Stats::add(&stats.duplicates, rows.saturating_sub(n) as u64);
                    // Committed: senders that asked for acknowledgements learn it now.
                    pending.iter().for_each(Batch::acknowledge);
                    if let Some(since) = failing.take() {
                        tracing::info!(
                            "store recovered after {} s; {} rows waited",
                            since.elapsed().as_secs(),
                            thousands(n as u64)
                        );
                    }
                    break;
                }
                Err(e) if rx.is_closed() && started.elapsed() > SHUTDOWN_GIVE_UP => {
                    tracing::error!(error = %e, rows, "store still failing at shutdown; these rows are lost");
                    break;
                }
                Err(e) => {
                    Stats::add(&stats.store_errors, 1);
                    failing.get_or_insert_with(std::time::Instant::now);
                    crate::error_limited!(RETRY, error = %e, rows, "store insert failed; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        pending.clear();
    }
}
