//! The disk spool (`spool-dir`, `spool-max-size`): where batches wait, in order, while
//! the store fails. Append-only segment files (`NNNNNNNNNNNNNNNNNNNN.seg`, format in
//! [`super::spool_format`]) are replayed oldest first; `replay.pos` says how far the
//! replay has been committed, so a restart neither loses nor repeats a replayed chunk
//! (except the one chunk a crash interrupts between the store's commit and the write
//! of `replay.pos`: that one is stored twice, never lost). Each run writes into a new
//! segment, so nothing is ever appended after a torn tail.
//!
//! Rows are numbered as they are committed: `replay.pos` also keeps the number of the
//! next row (from 1), so a row has the same number however often a crash makes it be
//! read again. Forwarding sends it as the row's `seq` (`super::forward`).

use super::spool_format::{self, MAGIC, Read};
use crate::log_limit::Limiter;
use crate::store::Batch;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started past this size.
const SEGMENT_MAX: u64 = 64 * 1024 * 1024;
const POS_FILE: &str = "replay.pos";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir} is full ({size} of {max} bytes)")]
    Full { dir: PathBuf, size: u64, max: u64 },
    #[error(
        "spool {dir}: {err} (hint: check that the directory is writable and its disk has room)"
    )]
    Io { dir: PathBuf, err: std::io::Error },
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    bytes: u64,
    rows: u64,
}

/// Where the replay stands: committed up to `offset` of segment `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    id: u64,
    offset: u64,
}

/// A chunk read for replay, not yet committed.
#[derive(Debug)]
pub struct Chunk {
    pub batches: Vec<Batch>,
    rows: u64,
    /// The number of the chunk's first row (see the module's doc).
    pub first_seq: u64,
    /// Where the replay stands once this chunk is stored.
    next: Pos,
    /// The oldest segment is used up (its end, or a torn record, was reached).
    finished_segment: bool,
}

impl Chunk {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the chunk reaches the end of its segment (nothing more will be appended).
    pub fn ends_segment(&self) -> bool {
        self.finished_segment
    }
}

pub struct Spool {
    dir: PathBuf,
    max_size: u64,
    segments: VecDeque<Segment>,
    /// The segment this run appends to.
    active: Option<(u64, File)>,
    pos: Pos,
    /// The number of the first row not yet committed.
    seq: u64,
    next_id: u64,
    encoded: Vec<u8>,
    scratch: Vec<u8>,
    /// Torn or damaged records skipped so far (this run).
    pub torn: u64,
}

static TORN: Limiter = Limiter::new("torn spool records skipped");

fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

impl Spool {
    /// Opens (creating) the spool in `dir` and takes stock of what an earlier run left.
    pub fn open(dir: &Path, max_size: u64) -> Result<Spool, SpoolError> {
        let io = |err| SpoolError::Io {
            dir: dir.to_path_buf(),
            err,
        };
        create_private_dir(dir).map_err(io)?;
        let (pos, seq) = match read_pos(dir) {
            Some((p, seq)) => (Some(p), seq),
            None => (None, 1),
        };
        let mut segments = Vec::new();
        for id in list_segments(dir).map_err(io)? {
            let path = dir.join(seg_name(id));
            if pos.is_some_and(|p| id < p.id) {
                // Replayed in full before a crash, not yet deleted.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let start = pos.filter(|p| p.id == id).map_or(0, |p| p.offset);
            let (rows, _, bytes) = count_rows(&path, start).map_err(io)?;
            segments.push(Segment { id, bytes, rows });
        }
        let first = segments.first().map_or(0, |s| s.id);
        let pos = match pos {
            Some(p) if p.id == first => p,
            _ => Pos {
                id: first,
                offset: 0,
            },
        };
        let next_id = segments.last().map_or(1, |s| s.id + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_size,
            segments: segments.into(),
            active: None,
            pos,
            seq,
            next_id,
            encoded: Vec::new(),
            scratch: Vec::new(),
            torn: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of the next row to commit (1 for a spool that never committed one).
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    /// Rows waiting in the spool.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Bytes the segment files take on disk.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// `spool-max-size`.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Appends `batches` as one write. Refused when it would pass `spool-max-size`,
    /// unless `force` (shutdown: what is in memory is bounded by the memory budget).
    pub fn append<'b>(
        &mut self,
        batches: impl Iterator<Item = &'b Batch> + Clone,
        force: bool,
    ) -> Result<u64, SpoolError> {
        self.encoded.clear();
        let mut rows = 0;
        for b in batches {
            spool_format::encode(b, &mut self.encoded);
            rows += b.len() as u64;
        }
        let len = self.encoded.len() as u64;
        let size = self.size();
        if !force && size + len > self.max_size {
            return Err(SpoolError::Full {
                dir: self.dir.clone(),
                size,
                max: self.max_size,
            });
        }
        let roll = match (&self.active, self.segments.back()) {
            (Some((id, _)), Some(last)) => last.id != *id || last.bytes >= SEGMENT_MAX,
            _ => true,
        };
        if roll {
            self.start_segment()?;
        }
        let Some((_, file)) = self.active.as_mut() else {
            return Err(self.io(std::io::Error::other("no active segment")));
        };
        if let Err(e) = file.write_all(&self.encoded) {
            // A partial write leaves a torn record: never append after it.
            self.active = None;
            return Err(self.io(e));
        }
        if let Some(last) = self.segments.back_mut() {
            last.bytes += len;
            last.rows += rows;
        }
        Ok(rows)
    }

    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let id = self.next_id;
        let path = self.dir.join(seg_name(id));
        let mut file = create_private_file(&path).map_err(|e| self.io(e))?;
        file.write_all(MAGIC).map_err(|e| self.io(e))?;
        // The closed segment is complete: make it durable before moving on.
        if let Some((_, old)) = self.active.take() {
            let _ = old.sync_data();
        }
        self.next_id += 1;
        if self.segments.is_empty() {
            self.pos = Pos { id, offset: 0 };
        }
        self.segments.push_back(Segment {
            id,
            bytes: MAGIC.len() as u64,
            rows: 0,
        });
        self.active = Some((id, file));
        Ok(())
    }

    /// Reads the next records to replay (about `max_rows` rows) without committing.
    /// A torn or damaged record is counted, logged and the rest of its segment skipped.
    pub fn read_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>, SpoolError> {
        let Some(seg) = self.segments.front().copied() else {
            return Ok(None);
        };
        let offset = (self.pos.id == seg.id && self.pos.offset > 0).then_some(self.pos.offset);
        self.read_from(seg.id, offset, self.seq, max_rows).map(Some)
    }

    /// Reads the records after `prev` (read, not yet committed), so that several chunks
    /// can be in flight; they must be committed in the order they were read. A chunk
    /// with no rows that is not `finished` means nothing more has been appended yet.
    pub fn read_after(
        &mut self,
        prev: &Chunk,
        max_rows: usize,
    ) -> Result<Option<Chunk>, SpoolError> {
        let first_seq = prev.first_seq + prev.rows;
        if !prev.finished_segment {
            return self
                .read_from(prev.next.id, Some(prev.next.offset), first_seq, max_rows)
                .map(Some);
        }
        let Some(seg) = self.segments.iter().find(|s| s.id > prev.next.id).copied() else {
            return Ok(None);
        };
        self.read_from(seg.id, None, first_seq, max_rows).map(Some)
    }

    /// Reads segment `id` from `offset` (`None`: its start, after the magic).
    fn read_from(
        &mut self,
        id: u64,
        offset: Option<u64>,
        first_seq: u64,
        max_rows: usize,
    ) -> Result<Chunk, SpoolError> {
        let path = self.dir.join(seg_name(id));
        let mut file = File::open(&path).map_err(|e| self.io(e))?;
        let start = match offset {
            Some(o) => o,
            None => {
                let mut magic = [0u8; 8];
                let ok = file.read_exact(&mut magic).is_ok() && &magic == MAGIC;
                if !ok {
                    self.note_torn(&path, 0, "not a spool segment");
                    return Ok(Chunk {
                        batches: Vec::new(),
                        rows: 0,
                        first_seq,
                        next: Pos { id, offset: 0 },
                        finished_segment: true,
                    });
                }
                MAGIC.len() as u64
            }
        };
        file.seek(SeekFrom::Start(start)).map_err(|e| self.io(e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut offset = start;
        let mut batches = Vec::new();
        let mut rows = 0u64;
        let mut finished = false;
        while rows < max_rows as u64 {
            let read = spool_format::read_record(&mut reader, &mut self.scratch)
                .map_err(|e| self.io(e))?;
            match read {
                Read::Record(b) => {
                    offset += 8 + self.scratch.len() as u64;
                    rows += b.len() as u64;
                    batches.push(b);
                }
                Read::End => {
                    // The segment this run is still writing is never finished here.
                    finished = self.active.as_ref().is_none_or(|(a, _)| *a != id);
                    break;
                }
                Read::Torn { why } => {
                    self.note_torn(&path, offset, why);
                    finished = true;
                    break;
                }
            }
        }
        Ok(Chunk {
            batches,
            rows,
            first_seq,
            next: Pos { id, offset },
            finished_segment: finished,
        })
    }

    fn note_torn(&mut self, path: &Path, offset: u64, why: &str) {
        self.torn += 1;
        crate::warn_limited!(
            TORN,
            segment = %path.display(),
            offset,
            why,
            "torn spool record (a crash mid-write); skipping the rest of this segment"
        );
    }

    /// Marks `chunk` as stored: the replay moves past it, and a used-up segment is
    /// deleted.
    pub fn commit(&mut self, chunk: &Chunk) -> Result<(), SpoolError> {
        let Some(front) = self.segments.front_mut() else {
            return Ok(());
        };
        front.rows = front.rows.saturating_sub(chunk.rows);
        self.seq = chunk.first_seq + chunk.rows;
        if chunk.finished_segment {
            let id = front.id;
            self.segments.pop_front();
            if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
                self.active = None;
            }
            self.pos = Pos {
                id: self.segments.front().map_or(self.next_id, |s| s.id),
                offset: 0,
            };
            self.write_pos()?;
            let _ = std::fs::remove_file(self.dir.join(seg_name(id)));
        } else {
            self.pos = chunk.next;
            self.write_pos()?;
        }
        // Caught up: every segment left is used up (this run's own included), so
        // start afresh with the next append.
        if self.rows() == 0 && !self.segments.is_empty() {
            self.active = None;
            self.pos = Pos {
                id: self.next_id,
                offset: 0,
            };
            self.write_pos()?;
            for s in self.segments.drain(..) {
                let _ = std::fs::remove_file(self.dir.join(seg_name(s.id)));
            }
        }
        Ok(())
    }

    /// Flushes what was appended to disk (at shutdown).
    pub fn sync(&mut self) {
        if let Some((_, f)) = &self.active {
            let _ = f.sync_data();
        }
    }

    fn write_pos(&self) -> Result<(), SpoolError> {
        let tmp = self.dir.join("replay.pos.tmp");
        let text = format!("{} {} {}\n", self.pos.id, self.pos.offset, self.seq);
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(POS_FILE)))
            .map_err(|e| self.io(e))
    }

    fn io(&self, err: std::io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.clone(),
            err,
        }
    }
}

/// Where the replay stands, and the number of the next row (1 in a file written before
/// rows were numbered).
fn read_pos(dir: &Path) -> Option<(Pos, u64)> {
    let text = std::fs::read_to_string(dir.join(POS_FILE)).ok()?;
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    let pos = Pos {
        id: it.next()??,
        offset: it.next()??,
    };
    Some((pos, it.next().flatten().unwrap_or(1).max(1)))
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".seg")?;
            stem.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Rows in a segment from `start` (0 = the beginning), records, and the file size,
/// reading only each record's header and row count. Stops at a torn record.
fn count_rows(path: &Path, start: u64) -> std::io::Result<(u64, u64, u64)> {
    let mut f = BufReader::new(File::open(path)?);
    let size = f.get_ref().metadata()?.len();
    let mut at = start.max(MAGIC.len() as u64);
    let (mut rows, mut records) = (0u64, 0u64);
    let mut head = [0u8; 12];
    while at + 12 <= size {
        f.seek(SeekFrom::Start(at))?;
        if f.read_exact(&mut head).is_err() {
            break;
        }
        let len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        if len < 4 || at + 8 + len > size {
            break;
        }
        rows += u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
        records += 1;
        at += 8 + len;
    }
    Ok((rows, records, size))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// What `logrelayd spool status` prints: read-only, changes nothing.
pub fn status(dir: &Path) -> std::io::Result<String> {
    if !dir.exists() {
        return Ok(format!("spool {}: empty (no directory yet)", dir.display()));
    }
    let pos = read_pos(dir).map(|(p, _)| p);
    let mut out = String::new();
    let (mut total_rows, mut total_bytes, mut n) = (0u64, 0u64, 0usize);
    for id in list_segments(dir)? {
        if pos.is_some_and(|p| id < p.id) {
            continue;
        }
        let start = pos.filter(|p| p.id == id).map_or(0, |p| p.offset);
        let (rows, records, bytes) = count_rows(&dir.join(seg_name(id)), start)?;
        out.push_str(&format!(
            "  {}  {bytes} bytes  {records} records  {rows} rows waiting\n",
            seg_name(id)
        ));
        total_rows += rows;
        total_bytes += bytes;
        n += 1;
    }
    Ok(format!(
        "spool {}: {n} segments, {total_bytes} bytes, {total_rows} rows waiting to be stored\n{out}",
        dir.display()
    ))
}

/// What `logrelayd spool verify` finds: every record's checksum and decoding checked.
/// Returns the report and whether everything was sound.
pub fn verify(dir: &Path) -> std::io::Result<(String, bool)> {
    if !dir.exists() {
        return Ok((
            format!("spool {}: empty (no directory yet)", dir.display()),
            true,
        ));
    }
    let mut out = String::new();
    let mut sound = true;
    let mut scratch = Vec::new();
    let (mut records, mut rows) = (0u64, 0u64);
    for id in list_segments(dir)? {
        let path = dir.join(seg_name(id));
        let mut r = BufReader::new(File::open(&path)?);
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            out.push_str(&format!("  {}: not a spool segment\n", seg_name(id)));
            sound = false;
            continue;
        }
        let mut offset = MAGIC.len() as u64;
        loop {
            match spool_format::read_record(&mut r, &mut scratch)? {
                Read::Record(b) => {
                    records += 1;
                    rows += b.len() as u64;
                    offset += 8 + scratch.len() as u64;
                }
                Read::End => break,
                Read::Torn { why } => {
                    out.push_str(&format!(
                        "  {}: torn at byte {offset} ({why}); the rest of this segment will be skipped\n",
                        seg_name(id)
                    ));
                    sound = false;
                    break;
                }
            }
        }
    }
    let verdict = if sound { "ok" } else { "DAMAGED" };
    Ok((
        format!(
            "spool {}: {verdict}: {records} records, {rows} rows checked\n{out}",
            dir.display()
        ),
        sound,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Level, LogMessage};

    fn batch(tag: &str, n: usize) -> Batch {
        let now = chrono::Utc::now();
        let mut b = Batch::new();
        for i in 0..n {
            b.push(&LogMessage::new(format!("{tag}-{i}"), Level::Info, now));
        }
        b
    }

    fn drain(s: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = s.read_chunk(3).unwrap() {
            for b in &c.batches {
                out.extend(b.iter().map(|r| r.message.to_string()));
            }
            s.commit(&c).unwrap();
            if s.is_empty() {
                break;
            }
        }
        out
    }

    #[test]
    fn replays_in_order_across_restarts_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        s.append([batch("a", 2)].iter(), false).unwrap();
        s.append([batch("b", 2)].iter(), false).unwrap();
        assert_eq!(s.rows(), 4);
        // Replay one chunk, then "crash".
        let c = s.read_chunk(1).unwrap().unwrap();
        assert_eq!(c.rows(), 2);
        s.commit(&c).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.rows(), 2, "what was committed is not replayed again");
        s.append([batch("c", 1)].iter(), false).unwrap();
        assert_eq!(drain(&mut s), ["b-0", "b-1", "c-0"]);
        assert!(s.is_empty());
        drop(s);
        let s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert!(s.is_empty());
        assert_eq!(list_segments(dir.path()).unwrap(), Vec::<u64>::new());
    }

    /// A row keeps its number when it is read again after a crash, and numbering goes
    /// on past a spool that emptied (forwarding's `seq` depends on both).
    #[test]
    fn rows_keep_their_numbers_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.next_seq(), 1);
        s.append([batch("a", 2)].iter(), false).unwrap();
        s.append([batch("b", 3)].iter(), false).unwrap();
        let c = s.read_chunk(1).unwrap().unwrap();
        assert_eq!((c.first_seq, c.rows()), (1, 2));
        s.commit(&c).unwrap();
        // Read, not committed, then a crash: the same rows come back with the same numbers.
        let c = s.read_chunk(1).unwrap().unwrap();
        assert_eq!(c.first_seq, 3);
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let c = s.read_chunk(10).unwrap().unwrap();
        assert_eq!((c.first_seq, c.rows()), (3, 3));
        s.commit(&c).unwrap();
        assert!(s.is_empty());
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.next_seq(), 6);
        s.append([batch("c", 1)].iter(), false).unwrap();
        assert_eq!(s.read_chunk(10).unwrap().unwrap().first_seq, 6);
    }

    /// Chunks read ahead follow each other, across segments, and commit in order.
    #[test]
    fn chunks_read_ahead_follow_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        s.append([batch("a", 2)].iter(), false).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        s.append([batch("b", 2)].iter(), false).unwrap(); // a second segment
        s.append([batch("c", 1)].iter(), false).unwrap();
        let mut chunks = vec![s.read_chunk(1).unwrap().unwrap()];
        loop {
            let next = s.read_after(chunks.last().unwrap(), 1).unwrap().unwrap();
            if next.rows() == 0 && !next.finished_segment {
                break; // nothing appended after the last one yet
            }
            chunks.push(next);
        }
        let mut seen = Vec::new();
        for c in &chunks {
            let mut seq = c.first_seq;
            for b in &c.batches {
                for r in b.iter() {
                    seen.push((seq, r.message.to_string()));
                    seq += 1;
                }
            }
        }
        let expected: Vec<(u64, String)> = ["a-0", "a-1", "b-0", "b-1", "c-0"]
            .iter()
            .enumerate()
            .map(|(i, m)| (i as u64 + 1, m.to_string()))
            .collect();
        assert_eq!(seen, expected);
        for c in &chunks {
            s.commit(c).unwrap();
        }
        assert!(s.is_empty());
        assert_eq!(s.next_seq(), 6);
    }

    #[test]
    fn full_spool_refuses_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 200).unwrap();
        let b = batch("x", 5);
        assert!(matches!(
            s.append([b.clone()].iter(), false),
            Err(SpoolError::Full { .. })
        ));
        s.append([b].iter(), true).unwrap();
        assert_eq!(s.rows(), 5);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        s.append([batch("a", 2)].iter(), false).unwrap();
        s.append([batch("b", 2)].iter(), false).unwrap();
        drop(s);
        let seg = dir.path().join(seg_name(1));
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let (report, sound) = verify(dir.path()).unwrap();
        assert!(!sound && report.contains("torn"), "{report}");
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.rows(), 2, "the torn record is not counted");
        assert_eq!(drain(&mut s), ["a-0", "a-1"]);
        assert_eq!(s.torn, 1);
        assert!(s.is_empty());
    }
}
