//! The memory budget (`memory-budget`): one count of bytes read but not yet committed
//! (or spooled), shared by every connection, the UDP sockets and the channel. A
//! connection reserves bytes before it reads and hands the reservation on with its
//! batch; the writer drops it once the batch is durable. When the budget is spent,
//! connections stop reading and TCP pushes back, so memory follows the budget, not
//! the number of connections.

use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved from a [`Budget`]; given back when dropped. Can be split (a batch
/// takes its share, a connection keeps the rest for an incomplete frame) and merged.
#[derive(Debug, Default)]
pub struct Held {
    sem: Option<Arc<Semaphore>>,
    bytes: usize,
}

impl Budget {
    pub fn new(total: usize) -> Budget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            sem: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes not reserved right now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// Bytes reserved right now (read, not yet committed or spooled).
    pub fn used(&self) -> usize {
        self.total.saturating_sub(self.sem.available_permits())
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Waits until `bytes` (at most the whole budget) can be reserved.
    pub async fn acquire(&self, bytes: usize) -> Held {
        let n = bytes.min(self.total).min(u32::MAX as usize) as u32;
        match self.sem.acquire_many(n).await {
            Ok(p) => {
                p.forget();
                self.held(n as usize)
            }
            // The semaphore is never closed; an empty reservation is the safe answer.
            Err(_) => Held::default(),
        }
    }

    /// Reserves `bytes` now, or says there is no room.
    pub fn try_acquire(&self, bytes: usize) -> Option<Held> {
        let n = u32::try_from(bytes).ok()?;
        let p = self.sem.try_acquire_many(n).ok()?;
        p.forget();
        Some(self.held(bytes))
    }

    fn held(&self, bytes: usize) -> Held {
        Held {
            sem: Some(self.sem.clone()),
            bytes,
        }
    }
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes up to `bytes` of this reservation into a new one.
    pub fn split(&mut self, bytes: usize) -> Held {
        let n = bytes.min(self.bytes);
        self.bytes -= n;
        Held {
            sem: self.sem.clone(),
            bytes: n,
        }
    }

    pub fn merge(&mut self, mut other: Held) {
        if self.sem.is_none() {
            self.sem = other.sem.take();
        }
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Gives back all but `keep` bytes now.
    pub fn shrink_to(&mut self, keep: usize) {
        if self.bytes > keep {
            drop(self.split(self.bytes - keep));
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(sem) = &self.sem
            && self.bytes > 0
        {
            sem.add_permits(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_come_back_when_dropped_split_or_shrunk() {
        let b = Budget::new(1000);
        let mut a = b.acquire(600).await;
        assert_eq!(b.available(), 400);
        assert!(b.try_acquire(500).is_none(), "over the budget");
        let part = a.split(200);
        assert_eq!((a.bytes(), part.bytes()), (400, 200));
        drop(part);
        assert_eq!(b.available(), 600);
        a.shrink_to(100);
        assert_eq!(b.available(), 900);
        let c = b.try_acquire(900).expect("room");
        a.merge(c);
        assert_eq!(b.available(), 0);
        drop(a);
        assert_eq!(b.available(), 1000);
        // More than the whole budget is capped at the budget, never a deadlock.
        let all = b.acquire(5000).await;
        assert_eq!(all.bytes(), 1000);
    }
}
