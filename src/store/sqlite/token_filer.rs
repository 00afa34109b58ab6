//! Files stored rows' words into their blocks' token filters ([`super::tokens`]) on a
//! thread of its own. The Bloom filter inserts were ~15 % of the writer thread's time,
//! and that thread is the relay's bottleneck; finding and hashing the words cost the
//! connections ~0.9 µs a message, more than this thread's whole work (BENCHMARKS.md).
//! The writer hands over each committed transaction's rows (ids, name ids, the text
//! whose words are indexed) and stores the filters of the blocks the filer completed
//! in a later transaction: until then a complete block has no filter and a search
//! reads it whole, as it reads the block still filling.
//!
//! Ingest never waits for the filters. The filer runs at the lowest priority
//! (`SCHED_IDLE`), on CPU time the relay does not need; when it is behind and its queue
//! is full, the writer drops the rows' text and tells it which ids it missed, and the
//! filer makes those blocks' filters from the stored rows once it has time (with its
//! own read-only connection, holding a read snapshot only while it copies a block's
//! texts out: a snapshot kept while it waits for CPU would keep the WAL from starting
//! over). On start it does the same for complete blocks without filters: those it
//! missed before the relay stopped.

use super::blocks::BLOCK_SHIFT;
use super::tokens::{self, BlockTokens, Completed, RowWords};
use crate::store::StoreError;
use crate::store::words::for_each_token_hash_in;
use rusqlite::{Connection, Transaction};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError, TrySendError};

/// Committed transactions' rows waiting for the filer at most; beyond, the writer
/// drops the text and the filer reads those rows back later. The filer's work per row
/// is a third of the writer's, but it gets the CPU in bursts: room for a few
/// transactions (each at most ~5,000 rows' text, ~1 MiB) keeps most rows from being
/// read back.
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
    /// The first and last ids of rows committed before these that the filer did not
    /// get (its queue was full).
    skipped: Option<(i64, i64)>,
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
        self.skipped = None;
    }

    /// The first and last ids of these rows and of the rows skipped before them.
    fn id_span(&self) -> Option<(i64, i64)> {
        let ids = self.rows.iter().map(|r| r.id);
        let span = ids.clone().min().zip(ids.max());
        match (span, self.skipped) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (s, t) => s.or(t),
        }
    }
}

/// What the filer sends back: a completed block, an emptied buffer, or (as it stops)
/// the complete blocks it did not get to read back.
enum Back {
    Block(Completed),
    Spare(Rows),
    Unread(Vec<i64>),
}

/// Blocks the writer reads back itself when the relay closes (newest first, ~0.5 s of
/// work at most); the filer reads back any others at the next start.
const READ_BACK_AT_CLOSE: usize = 64;

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
    /// Ids of rows the filer did not get, told with the next rows handed over.
    skipped: Option<(i64, i64)>,
    /// Complete blocks the filer did not read back before it stopped.
    unread: Vec<i64>,
    /// Transactions' rows handed over whose buffers have not come back yet.
    in_flight: usize,
    /// Set by the filer while it has blocks to make from the stored rows.
    reading: Arc<AtomicBool>,
}

impl TokenFiler {
    /// A filer without its thread (before the store's schema is current): rows handed
    /// to it are not filed.
    pub fn stopped() -> TokenFiler {
        let (_, from_filer) = mpsc::channel();
        TokenFiler {
            to_filer: None,
            from_filer,
            thread: None,
            rows: Rows::default(),
            spares: Vec::new(),
            ready: Vec::new(),
            buf: String::with_capacity(64),
            skipped: None,
            unread: Vec::new(),
            in_flight: 0,
            reading: Arc::default(),
        }
    }

    /// Starts the filer thread for the store at `store`.
    pub fn start(store: &Path) -> std::io::Result<TokenFiler> {
        let (to_filer, rx) = mpsc::sync_channel::<Rows>(QUEUE);
        let (back, from_filer) = mpsc::channel();
        let store = store.to_path_buf();
        let mut filer = Self::stopped();
        let reading = filer.reading.clone();
        let thread = std::thread::Builder::new()
            .name("logrelay-tokens".into())
            .spawn(move || file_rows(rx, back, store, reading))?;
        filer.to_filer = Some(to_filer);
        filer.from_filer = from_filer;
        filer.thread = Some(thread);
        Ok(filer)
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
                Back::Spare(r) => {
                    self.in_flight -= 1;
                    if self.spares.len() < SPARES {
                        self.spares.push(r);
                    }
                }
                Back::Unread(blocks) => self.unread.extend(blocks),
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

    /// Whether the filer is still at work on what it was given: blocks whose filters
    /// are yet to come. With nothing more to write, rows it did not get (its queue was
    /// full) are told now, so that the blocks they completed are read back without
    /// waiting for more rows.
    pub fn busy(&mut self) -> bool {
        self.receive();
        if self.rows.rows.is_empty() && self.skipped.is_some() {
            self.hand_over();
        }
        // A filer thread that ended (it panicked) has nothing more to give.
        let running = self.thread.as_ref().is_some_and(|t| !t.is_finished());
        running
            && (self.in_flight > 0
                || self.skipped.is_some()
                || self.reading.load(Ordering::Acquire))
    }

    /// Rows the filer did not get, as when its queue was full (for tests).
    #[cfg(test)]
    pub fn skipped_rows(&mut self, first: i64, last: i64) {
        self.skipped = Some((first, last));
    }

    /// The transaction committed: its rows go to the filer, the filters it stored
    /// are done.
    pub fn committed(&mut self) {
        self.ready.clear();
        if !self.rows.rows.is_empty() {
            self.hand_over();
        }
    }

    /// Hands the current rows, and the span of those skipped before, to the filer
    /// (without a filer, drops them).
    fn hand_over(&mut self) {
        let Some(to) = &self.to_filer else {
            self.rows.clear();
            return;
        };
        let next = self.spares.pop().unwrap_or_default();
        let mut rows = std::mem::replace(&mut self.rows, next);
        rows.skipped = self.skipped.take();
        match to.try_send(rows) {
            Ok(()) => self.in_flight += 1,
            Err(TrySendError::Full(mut rows)) => {
                // The filer is behind: ingest goes on, and it reads these rows back.
                self.skipped = rows.id_span();
                rows.clear();
                self.spares.push(rows);
            }
            Err(TrySendError::Disconnected(_)) => {
                // The thread is gone (it panicked): blocks stay without filters and
                // searches read them whole.
                tracing::warn!("token filer stopped; new blocks get no word filters");
                self.to_filer = None;
            }
        }
    }

    /// The transaction rolled back: its rows were not stored (they come again, with
    /// the same ids, when it is retried).
    pub fn rolled_back(&mut self) {
        self.rows.clear();
    }

    /// Waits for the filer to file everything handed over; the completed blocks are
    /// then ready to [`write`](Self::write), with the newest of those it did not read
    /// back (their filters made from the stored rows as they are written). The block
    /// still filling is not complete.
    pub fn finish(&mut self) {
        self.to_filer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.receive();
        if let Some((first, last)) = self.skipped.take() {
            // Rows the filer never got; the last one's block may still be filling.
            self.unread
                .extend((first >> BLOCK_SHIFT)..(last >> BLOCK_SHIFT));
        }
        let mut unread = std::mem::take(&mut self.unread);
        unread.sort_unstable_by(|a, b| b.cmp(a));
        unread.dedup();
        unread.truncate(READ_BACK_AT_CLOSE);
        self.ready.extend(unread.into_iter().map(|b| (b, None)));
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
/// completed and the emptied buffer, and, when nothing waits, makes the filters of
/// blocks it missed from the stored rows; ends when the writer hangs up.
fn file_rows(
    rx: mpsc::Receiver<Rows>,
    back: mpsc::Sender<Back>,
    store: PathBuf,
    reading: Arc<AtomicBool>,
) {
    let priority = lower_priority();
    tracing::debug!(?priority, "token filer started");
    let mut filer = Filer::new(&store);
    loop {
        // Before a buffer goes back and after each block read back: the writer's
        // `busy` sees the blocks still to read once the buffer that added them is back.
        reading.store(!filer.to_read.is_empty(), Ordering::Release);
        let next = if filer.to_read.is_empty() {
            rx.recv().ok()
        } else {
            match rx.try_recv() {
                Ok(rows) => Some(rows),
                Err(TryRecvError::Empty) => {
                    if filer.read_back_one(&back).is_err() {
                        return;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let Some(mut rows) = next else {
            // The writer closes: it reads back what is left (or the next start does).
            tracing::debug!(
                rows = filer.filed,
                transactions = filer.transactions,
                blocks_read_back = filer.read_back,
                left = filer.to_read.len(),
                "token filer stops"
            );
            let _ = back.send(Back::Unread(filer.to_read));
            return;
        };
        if filer.file(&rows, &back).is_err() {
            return;
        }
        reading.store(!filer.to_read.is_empty(), Ordering::Release);
        rows.clear();
        if back.send(Back::Spare(rows)).is_err() {
            return;
        }
    }
}

/// The filer thread's state.
struct Filer {
    tokens: BlockTokens,
    hashes: Vec<u64>,
    buf: String,
    /// Reads back the rows of blocks the filer missed; `None` if the store could not be
    /// opened (the writer then makes those filters itself).
    reader: Option<Connection>,
    /// Blocks with rows the filer did not get, until they are complete.
    missed: BTreeSet<i64>,
    /// Complete blocks whose filters are made from the stored rows, newest last.
    to_read: Vec<i64>,
    /// Rows filed from the writer's text and blocks made from the stored rows.
    filed: u64,
    /// Transactions' rows received (for the log: with `filed`, their size).
    transactions: u64,
    read_back: u64,
}

impl Filer {
    fn new(store: &Path) -> Filer {
        let reader = open_reader(store)
            .inspect_err(|e| {
                tracing::warn!(error = %e, store = %store.display(),
                    "token filer cannot read the store; the writer makes missed filters")
            })
            .ok();
        let mut to_read = match &reader {
            Some(conn) => tokens::blocks_without_filters(conn).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list blocks without word filters");
                Vec::new()
            }),
            None => Vec::new(),
        };
        to_read.reverse();
        Filer {
            tokens: BlockTokens::default(),
            hashes: Vec::with_capacity(256),
            buf: String::with_capacity(64),
            reader,
            missed: BTreeSet::new(),
            to_read,
            filed: 0,
            transactions: 0,
            read_back: 0,
        }
    }

    /// Files one transaction's rows; sends back the blocks they completed.
    fn file(&mut self, rows: &Rows, back: &mpsc::Sender<Back>) -> Result<(), ()> {
        if let Some((first, last)) = rows.skipped {
            self.missed
                .extend((first >> BLOCK_SHIFT)..=(last >> BLOCK_SHIFT));
        }
        self.filed += rows.rows.len() as u64;
        self.transactions += 1;
        let mut at = 0usize;
        for r in &rows.rows {
            let message = at..at + r.message_len as usize;
            at = message.end;
            let sd = (r.sd_len != u32::MAX).then(|| at..at + r.sd_len as usize);
            at = sd.as_ref().map_or(at, |sd| sd.end);
            self.hashes.clear();
            // A block with rows the filer did not get is made from the stored rows once
            // complete: hashing its words now would be thrown away.
            if !self.missed.contains(&(r.id >> BLOCK_SHIFT)) {
                let hashes = &mut self.hashes;
                for_each_token_hash_in(&rows.text, message, sd, &mut self.buf, &mut |h| {
                    hashes.push(h)
                });
            }
            self.tokens.add(&RowWords {
                id: r.id,
                hashes: &self.hashes,
                host_id: r.host_id,
                source_id: r.source_id,
            });
        }
        for (block, filter) in self.tokens.take_completed() {
            let missed = self.missed.remove(&block);
            match filter {
                Some(f) if !missed => back.send(Back::Block((block, Some(f)))).map_err(drop)?,
                // Rows of the block went by unfiled.
                _ => self.not_filed(block, back)?,
            }
        }
        // Missed blocks that the newest rows have moved past are complete too (with
        // only skipped rows told, the newest of those).
        let newest = rows.rows.last().map(|r| r.id).or(rows.skipped.map(|s| s.1));
        if let Some(newest) = newest.map(|id| id >> BLOCK_SHIFT) {
            while let Some(&block) = self.missed.first()
                && block < newest
            {
                self.missed.pop_first();
                self.not_filed(block, back)?;
            }
        }
        Ok(())
    }

    /// A complete block whose rows the filer did not all get: read back later, or, with
    /// no reader, left to the writer to make from the stored rows.
    fn not_filed(&mut self, block: i64, back: &mpsc::Sender<Back>) -> Result<(), ()> {
        if self.reader.is_some() {
            self.to_read.push(block);
            Ok(())
        } else {
            back.send(Back::Block((block, None))).map_err(drop)
        }
    }

    /// Makes the newest missed block's filters from its stored rows.
    fn read_back_one(&mut self, back: &mpsc::Sender<Back>) -> Result<(), ()> {
        let (Some(block), Some(reader)) = (self.to_read.pop(), &self.reader) else {
            return Ok(());
        };
        self.read_back += 1;
        match tokens::rebuild(reader, block) {
            Ok(f) => back
                .send(Back::Block((block, Some((f, Default::default())))))
                .map_err(drop),
            Err(e) => {
                tracing::debug!(error = %e, block, "word filters not made from stored rows");
                Ok(())
            }
        }
    }
}

/// A read-only connection of the filer's own.
fn open_reader(store: &Path) -> Result<Connection, StoreError> {
    let conn = super::file::open_read_only(store)?.conn;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| StoreError::from(e).at(store))?;
    Ok(conn)
}

/// How the filer thread was made the last to get the CPU.
#[derive(Debug, PartialEq, Eq)]
enum Priority {
    /// `SCHED_IDLE`.
    Idle,
    /// Nice 19: the kernel (or a service's system call filter) refused `SCHED_IDLE`.
    Nice,
    /// Neither (not Linux, or both refused).
    Unchanged,
}

/// Makes this thread the last to get the CPU: the filters may wait, ingest may not.
/// `SCHED_IDLE`: a core running only such threads counts as idle, so a waking
/// connection task or the writer is placed there and preempts the filer at once; at
/// nice 19 the filer still ran out its time slice first (on a loaded machine the
/// filters cost ~7 % of the throughput at nice 19, ~2 % as `SCHED_IDLE`; BENCHMARKS.md).
/// Else nice 19. Linux keeps both per thread.
fn lower_priority() -> Priority {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own id.
    unsafe {
        let tid = libc::gettid();
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) == 0 {
            return Priority::Idle;
        }
        let error = std::io::Error::last_os_error();
        let nice = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) == 0;
        // Once a process: the filer starts again with each store it opens.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(%error, nice,
                "the token filer cannot run as SCHED_IDLE (a system call filter?); it runs at nice 19, which costs ingest more");
        }
        if nice {
            return Priority::Nice;
        }
    }
    Priority::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Level, LogMessage};
    use crate::store::{Batch, StoreWriter};
    use std::borrow::Cow;

    /// Four complete blocks and a tail: ids 1 to 17,084.
    const ROWS: i64 = 4 * 4096 + 700;

    fn stored_filters(conn: &Connection) -> Vec<(i64, Vec<u8>)> {
        conn.prepare("SELECT id, filter FROM LogTokens ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A filer that did not get some transactions' rows (its queue was full) makes the
    /// blocks they touched from the stored rows: the filters stored in the end are
    /// those of a filer that saw every row. Blocks it saw whole are filed as usual.
    #[test]
    fn blocks_with_skipped_rows_are_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut w = super::super::SqliteWriter::open(&path).unwrap();
        let mut batch = Batch::new();
        for i in 0..ROWS {
            let mut m = LogMessage::new(
                format!("Request {i} from Client{} took {}ms", i % 97, i % 13),
                Level::from_code((i % 8) as u8).unwrap(),
                chrono::DateTime::from_timestamp(1_790_000_000 + i, 0).unwrap(),
            );
            m.hostname = Some(Cow::Owned(format!("Host-{}", i / 3000)));
            m.source = Some(Cow::Owned(format!("svc{}", i % 7)));
            batch.push(&m);
            if batch.len() == 2000 {
                w.insert(std::slice::from_ref(&batch)).unwrap();
                batch.clear();
            }
        }
        w.insert(std::slice::from_ref(&batch)).unwrap();
        drop(w);
        let conn = Connection::open(&path).unwrap();
        let reference = stored_filters(&conn);
        assert_eq!(
            reference.len(),
            4 * 64,
            "four complete blocks, 64 slices each"
        );
        conn.execute("DELETE FROM LogTokens", []).unwrap();

        // The rows as the writer hands them over, 1,000 ids to a transaction.
        let mut chunks: Vec<Rows> = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT id, message, structured_data, host_id, source_id FROM LogRows \
                 ORDER BY id",
            )
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut handed = TokenFiler::stopped();
        while let Some(r) = rows.next().unwrap() {
            let id: i64 = r.get(0).unwrap();
            let message: String = r.get(1).unwrap();
            let sd: Option<String> = r.get(2).unwrap();
            handed.add(
                id,
                &message,
                sd.as_deref(),
                r.get(3).unwrap(),
                r.get(4).unwrap(),
            );
            if id % 1000 == 0 || id == ROWS {
                chunks.push(std::mem::take(&mut handed.rows));
            }
        }
        drop(rows);
        drop(stmt);

        // Skipped: ids 5,001-6,000 (inside block 1) and 8,001-13,000 (the end of block 1,
        // all of block 2, the start of block 3).
        let mut filer = Filer::new(&path);
        assert_eq!(filer.to_read, vec![0, 1, 2, 3], "no block has filters");
        filer.to_read.clear();
        let (back, from_filer) = mpsc::channel();
        let mut skipped = None;
        for (c, mut rows) in chunks.into_iter().enumerate() {
            if c == 5 || (8..=12).contains(&c) {
                skipped = widen(skipped, rows.id_span());
                continue;
            }
            rows.skipped = skipped.take();
            filer.file(&rows, &back).unwrap();
        }
        assert_eq!(filer.to_read, vec![1, 2, 3]);
        assert!(filer.missed.is_empty(), "the tail block is not skipped");
        while !filer.to_read.is_empty() {
            filer.read_back_one(&back).unwrap();
        }
        drop(back);
        let mut done = Vec::new();
        for b in from_filer {
            if let Back::Block(c) = b {
                done.push(c);
            }
        }
        let read_back: Vec<i64> = done
            .iter()
            .filter(|(_, f)| f.as_ref().is_some_and(|(_, names)| names[0].is_empty()))
            .map(|(b, _)| *b)
            .collect();
        assert_eq!(
            read_back,
            vec![3, 2, 1],
            "read back newest first; block 0 filed"
        );
        let mut conn = conn;
        let tx = conn.transaction().unwrap();
        tokens::write_completed(&tx, &done, &mut String::new()).unwrap();
        tx.commit().unwrap();
        assert!(
            stored_filters(&conn) == reference,
            "the filters differ from a filer's that saw every row"
        );
    }

    /// The store's filer thread runs as `SCHED_IDLE` (threads of other tests' stores
    /// too: each lowers itself first thing).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_filer_thread_runs_as_sched_idle() {
        let dir = tempfile::tempdir().unwrap();
        let _w = super::super::SqliteWriter::open(&dir.path().join("t.db")).unwrap();
        let policies = || -> Vec<i32> {
            let tasks = std::fs::read_dir("/proc/self/task").unwrap();
            tasks
                .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|tid| {
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                        .is_ok_and(|c| c.trim() == "logrelay-tokens")
                })
                // SAFETY: a plain system call; a thread gone meanwhile gives -1.
                .map(|tid| unsafe { libc::sched_getscheduler(tid) })
                .filter(|&p| p != -1)
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut seen = policies();
        while seen.is_empty() || seen.iter().any(|&p| p != libc::SCHED_IDLE) {
            assert!(
                std::time::Instant::now() < deadline,
                "filer threads' policies: {seen:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
            seen = policies();
        }
    }

    /// Where a system call filter refuses `SCHED_IDLE` (as systemd's `SystemCallFilter=`
    /// does with `EPERM`), the filer runs at nice 19.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn refused_sched_idle_falls_back_to_nice_19() {
        let got = std::thread::spawn(|| {
            // Tests niced as a whole start at 19 already: back to 0 where that is
            // allowed (root), so that the fallback's own setting shows.
            // SAFETY: a plain system call on this thread's own id.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 0) };
            deny_sched_setscheduler_to_this_thread();
            let lowered = lower_priority();
            // SAFETY: plain system calls on this thread's own id.
            unsafe {
                let tid = libc::gettid();
                let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
                (lowered, libc::sched_getscheduler(tid), nice)
            }
        })
        .join()
        .unwrap();
        assert_eq!(got, (Priority::Nice, libc::SCHED_OTHER, 19));
    }

    /// A seccomp filter on the calling thread only: `sched_setscheduler` fails with
    /// `EPERM`, every other call goes through.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn deny_sched_setscheduler_to_this_thread() {
        use libc::{
            BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, EPERM, SECCOMP_RET_ALLOW,
            SECCOMP_RET_ERRNO, sock_filter, sock_fprog,
        };
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        let load = |offset| sock_filter {
            code: (BPF_LD | BPF_W | BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: offset,
        };
        let unless_eq = |k, skip| sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: skip,
            k,
        };
        let ret = |k| sock_filter {
            code: (BPF_RET | BPF_K) as u16,
            jt: 0,
            jf: 0,
            k,
        };
        // seccomp_data: the call's number at offset 0, the architecture at 4.
        let mut program = [
            load(4),
            unless_eq(AUDIT_ARCH_X86_64, 3),
            load(0),
            unless_eq(libc::SYS_sched_setscheduler as u32, 1),
            ret(SECCOMP_RET_ERRNO | EPERM as u32),
            ret(SECCOMP_RET_ALLOW),
        ];
        let fprog = sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: the program outlives the call, which copies it; no-new-privs and the
        // filter apply to this thread alone (no TSYNC flag).
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            let r = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const sock_fprog,
            );
            assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
        }
    }

    fn widen(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
        match (a, b) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (x, y) => x.or(y),
        }
    }
}
