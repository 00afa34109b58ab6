//! Files stored rows' words into their blocks' token filters ([`super::tokens`]) on a
//! thread of its own. The Bloom filter inserts were ~15 % of the writer thread's time,
//! and that thread is the relay's bottleneck; finding and hashing the words cost the
//! connections ~0.9 µs a message, more than this thread's whole work (BENCHMARKS.md).
//! The writer hands over each committed transaction's rows (ids, name ids, the text
//! whose words are indexed) and stores the filters of the blocks the filer completed
//! in a later transaction: until then a complete block has no filter and a search
//! reads it whole, as it reads the block still filling.

use super::tokens::{self, BlockTokens, Completed, RowWords};
use crate::store::words::for_each_token_hash;
use rusqlite::Transaction;
use std::sync::mpsc;

/// Committed transactions' rows waiting for the filer at most; beyond, the writer
/// waits. The filer's work per row is a third of the writer's, but on a busy machine it
/// gets the CPU in bursts: room for a few transactions keeps the writer from waiting
/// (each is at most ~5,000 rows' text, ~1 MiB).
const QUEUE: usize = 8;
/// Emptied row buffers kept for reuse: every buffer there can be (those in the queue,
/// the one being filed, the one being filled). Each grows to a transaction's rows and
/// texts (~1 MiB), which the allocator maps fresh and frees back to the system: with
/// only two kept, page faults for new buffers were a third of the filters' cost to the
/// writer thread in a profile of the 1M replay.
const SPARES: usize = QUEUE + 2;

/// One transaction's rows: per row its id, name ids and the lengths of its message
/// and structured data, whose texts follow each other in `text`.
#[derive(Default)]
struct Rows {
    rows: Vec<RowIds>,
    text: String,
}

struct RowIds {
    id: i64,
    message_len: u32,
    /// `u32::MAX`: no structured data.
    sd_len: u32,
    host_id: Option<i64>,
    source_id: Option<i64>,
}

impl Rows {
    fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
    }
}

/// What the filer sends back: a completed block, or an emptied buffer.
enum Back {
    Block(Completed),
    Spare(Rows),
}

/// The writer's side of the filer thread.
pub struct TokenFiler {
    to_filer: Option<mpsc::SyncSender<Rows>>,
    from_filer: mpsc::Receiver<Back>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The current transaction's rows, handed over once it commits.
    rows: Rows,
    spares: Vec<Rows>,
    /// Completed blocks received, written by each transaction until one commits.
    ready: Vec<Completed>,
    /// Scratch space for writing filters.
    buf: String,
}

impl TokenFiler {
    pub fn start() -> std::io::Result<TokenFiler> {
        let (to_filer, rx) = mpsc::sync_channel::<Rows>(QUEUE);
        let (back, from_filer) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("logrelay-tokens".into())
            .spawn(move || file_rows(rx, back))?;
        Ok(TokenFiler {
            to_filer: Some(to_filer),
            from_filer,
            thread: Some(thread),
            rows: Rows::default(),
            spares: Vec::new(),
            ready: Vec::new(),
            buf: String::with_capacity(64),
        })
    }

    /// Adds a row of the current transaction: the text whose words it indexes is
    /// copied (a memcpy; the filer finds and hashes the words).
    pub fn add(
        &mut self,
        id: i64,
        message: &str,
        structured_data: Option<&str>,
        host_id: Option<i64>,
        source_id: Option<i64>,
    ) {
        let text = &mut self.rows.text;
        text.push_str(message);
        let sd_len = match structured_data {
            Some(sd) => {
                text.push_str(sd);
                sd.len() as u32
            }
            None => u32::MAX,
        };
        self.rows.rows.push(RowIds {
            id,
            message_len: message.len() as u32,
            sd_len,
            host_id,
            source_id,
        });
    }

    /// Takes in what the filer sent back.
    fn receive(&mut self) {
        while let Ok(b) = self.from_filer.try_recv() {
            match b {
                Back::Block(c) => self.ready.push(c),
                Back::Spare(r) if self.spares.len() < SPARES => self.spares.push(r),
                Back::Spare(_) => {}
            }
        }
    }

    /// Writes the filters of the blocks completed so far into `tx`.
    pub fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        self.receive();
        tokens::write_completed(tx, &self.ready, &mut self.buf)
    }

    /// Whether completed blocks wait for a transaction to store their filters.
    pub fn has_ready(&mut self) -> bool {
        self.receive();
        !self.ready.is_empty()
    }

    /// The transaction committed: its rows go to the filer, the filters it stored
    /// are done.
    pub fn committed(&mut self) {
        self.ready.clear();
        let next = self.spares.pop().unwrap_or_default();
        let rows = std::mem::replace(&mut self.rows, next);
        if rows.rows.is_empty() {
            self.rows = rows;
            return;
        }
        if let Some(to) = &self.to_filer
            && to.send(rows).is_err()
        {
            // The thread is gone (it panicked): blocks stay without filters and
            // searches read them whole.
            tracing::warn!("token filer stopped; new blocks get no word filters");
            self.to_filer = None;
        }
    }

    /// The transaction rolled back: its rows were not stored (they come again, with
    /// the same ids, when it is retried).
    pub fn rolled_back(&mut self) {
        self.rows.clear();
    }

    /// Waits for the filer to file everything handed over; the completed blocks are
    /// then ready to [`write`](Self::write). The block still filling is not complete.
    pub fn finish(&mut self) {
        self.to_filer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.receive();
    }
}

impl Drop for TokenFiler {
    fn drop(&mut self) {
        self.to_filer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The filer thread: files each transaction's rows, sends back the blocks they
/// completed and the emptied buffer; ends when the writer hangs up.
fn file_rows(rx: mpsc::Receiver<Rows>, back: mpsc::Sender<Back>) {
    let mut tokens = BlockTokens::default();
    let mut hashes = Vec::with_capacity(256);
    let mut buf = String::with_capacity(64);
    for mut rows in rx {
        let mut at = 0usize;
        for r in &rows.rows {
            let text = |at: usize, len: u32| rows.text.get(at..at + len as usize);
            let message = text(at, r.message_len).unwrap_or_default();
            at += r.message_len as usize;
            let sd = (r.sd_len != u32::MAX).then(|| text(at, r.sd_len)).flatten();
            at += sd.map_or(0, str::len);
            hashes.clear();
            for_each_token_hash(message, sd, &mut buf, &mut |h| hashes.push(h));
            tokens.add(&RowWords {
                id: r.id,
                hashes: &hashes,
                host_id: r.host_id,
                source_id: r.source_id,
            });
        }
        for c in tokens.take_completed() {
            if back.send(Back::Block(c)).is_err() {
                return;
            }
        }
        rows.clear();
        if back.send(Back::Spare(rows)).is_err() {
            return;
        }
    }
}
