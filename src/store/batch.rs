//! A batch of records packed into one text arena: pushing a record copies its strings
//! into a shared `String` instead of allocating one per field, so the hot path costs a
//! few `push_str` per message and the writer frees one buffer per batch.

use crate::message::{
    Facility, Level, LogMessage, Protocol, write_json_str, write_params, write_sd_json,
};
use crate::protocol::common::{lossy, strip_bom};
use crate::protocol::rfc5424::{self, SdSink};
use crate::protocol::{Context, looks_like_5424, pri_parts, trailing_newline};
use chrono::{DateTime, Utc};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

const NONE: Span = Span {
    start: u32::MAX,
    len: 0,
};

#[derive(Debug, Clone)]
struct Row {
    time_us: i64,
    received_us: i64,
    level: Level,
    facility: Option<Facility>,
    protocol: Protocol,
    hostname: Span,
    source: Span,
    procid: Span,
    msgid: Span,
    structured_data: Span,
    message: Span,
    peer: Span,
}

/// One record as the stores see it: borrowed text, times as microseconds since the
/// epoch, structured data as its JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub time_us: i64,
    pub received_us: i64,
    pub level: Level,
    pub facility: Option<Facility>,
    pub hostname: Option<&'a str>,
    pub source: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Option<&'a str>,
    pub message: &'a str,
    pub protocol: Protocol,
    pub peer: Option<&'a str>,
}

#[derive(Debug, Clone, Default)]
pub struct Batch {
    text: String,
    rows: Vec<Row>,
    /// Set for batches from a sender that asked for acknowledgements.
    delivery: Option<Box<Delivery>>,
}

/// Acknowledged delivery (docs/PROTOCOL.md): the sender's sequence number of each row,
/// the name under which the store remembers the last one (to drop resent rows), and
/// the point the writer moves once the batch is durable.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The hello's `client`; `None`: acknowledged but not deduplicated.
    pub client: Option<std::sync::Arc<str>>,
    /// One per row, increasing; 0 for a row that came without one (always stored).
    pub seqs: Vec<u64>,
    /// The highest of `seqs`.
    pub max_seq: u64,
    pub ack: std::sync::Arc<AckPoint>,
}

/// Where a connection learns what is durable: the writer raises `durable` to the
/// highest sequence number of each batch it committed (or spooled) and wakes the
/// connection, which sends `{"ack":N}`.
#[derive(Debug, Default)]
pub struct AckPoint {
    pub durable: std::sync::atomic::AtomicU64,
    pub notify: tokio::sync::Notify,
}

impl AckPoint {
    /// Everything up to `seq` is durable (calls may come in any order).
    pub fn advance(&self, seq: u64) {
        self.durable
            .fetch_max(seq, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }
}

/// Cleared batches kept for reuse: at most [`SPARE_MAX`], each at most
/// [`SPARE_MAX_BYTES`] (~10 MiB in all, outside the memory budget).
static SPARE: std::sync::Mutex<Vec<Batch>> = std::sync::Mutex::new(Vec::new());
const SPARE_MAX: usize = 64;
const SPARE_MAX_BYTES: usize = 256 * 1024;
/// New buffers come in steps of these, so that a spare fits the next batch of about its
/// size (a read's batches differ by a few KiB).
const TEXT_CLASS: usize = 16 * 1024;
const ROWS_CLASS: usize = 128;

/// The last spare in `pool` that holds `rows` and `text`, else the last one.
fn take_spare(pool: &mut Vec<Batch>, rows: usize, text: usize) -> Option<Batch> {
    let fits = |b: &Batch| b.rows.capacity() >= rows && b.text.capacity() >= text;
    let i = pool.iter().rposition(fits).or(pool.len().checked_sub(1))?;
    Some(pool.swap_remove(i))
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn with_capacity(rows: usize, text: usize) -> Self {
        Batch {
            text: String::with_capacity(text),
            rows: Vec::with_capacity(rows),
            delivery: None,
        }
    }

    /// A batch whose buffers an earlier batch grew (see [`Batch::recycle`]), else a new
    /// one. Reusing them keeps the relay's memory at what the budget counts: freeing
    /// ~100 KiB buffers thousands of times a second left ~40 MiB of allocator slack in
    /// the 1M replay (BENCHMARKS.md, issue 11).
    ///
    /// A spare that holds `rows` and `text` is taken; failing that, one whose buffers are
    /// replaced by new ones. Growing a cleared buffer instead would copy its stale bytes
    /// and double it (realloc), and fresh memory is faulted in page by page: on the 1M
    /// replay that was one batch in six and ~5 % of the connection threads' CPU.
    pub fn reuse_or_new(rows: usize, text: usize) -> Self {
        let (rows, text) = (
            rows.next_multiple_of(ROWS_CLASS),
            text.next_multiple_of(TEXT_CLASS),
        );
        let spare = SPARE
            .lock()
            .ok()
            .and_then(|mut s| take_spare(&mut s, rows, text));
        match spare {
            Some(mut b) => {
                if b.rows.capacity() < rows {
                    b.rows = Vec::with_capacity(rows);
                }
                if b.text.capacity() < text {
                    b.text = String::with_capacity(text);
                }
                b
            }
            None => Batch::with_capacity(rows, text),
        }
    }

    /// Keeps this batch's buffers for [`Batch::reuse_or_new`] (a bounded number of
    /// ordinary-sized ones), or frees them.
    pub fn recycle(mut self) {
        if self.heap_bytes() > SPARE_MAX_BYTES {
            return;
        }
        self.clear();
        if let Ok(mut spare) = SPARE.lock()
            && spare.len() < SPARE_MAX
        {
            spare.push(self);
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Heap bytes this batch holds (what the relay's memory budget counts).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.rows.capacity() * std::mem::size_of::<Row>()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
        self.delivery = None;
    }

    /// Makes this a batch of acknowledged delivery (rows pushed after this call are
    /// numbered with [`Batch::push_seq`]).
    pub fn set_delivery(
        &mut self,
        client: Option<std::sync::Arc<str>>,
        ack: std::sync::Arc<AckPoint>,
    ) {
        self.delivery = Some(Box::new(Delivery {
            client,
            seqs: Vec::with_capacity(self.rows.capacity()),
            max_seq: 0,
            ack,
        }));
    }

    pub fn delivery(&self) -> Option<&Delivery> {
        self.delivery.as_deref()
    }

    /// Records the sequence number of the row pushed last (acknowledged batches only).
    pub fn push_seq(&mut self, seq: Option<u64>) {
        if let Some(d) = self.delivery.as_mut() {
            let seq = seq.unwrap_or(0);
            d.seqs.push(seq);
            d.max_seq = d.max_seq.max(seq);
        }
    }

    /// Tells the sender that this batch is durable (the writer calls it after the
    /// commit or the spool write); nothing for unacknowledged batches.
    pub fn acknowledge(&self) {
        if let Some(d) = self.delivery.as_ref().filter(|d| d.max_seq > 0) {
            d.ack.advance(d.max_seq);
        }
    }

    /// The records whose sequence number is above `after` (all when `after` is `None`
    /// or the batch has no sequence numbers).
    pub fn iter_after(&self, after: Option<u64>) -> impl Iterator<Item = RecordRef<'_>> {
        let seqs = after.and_then(|a| Some((self.delivery.as_ref()?.seqs.as_slice(), a)));
        self.rows
            .iter()
            .enumerate()
            .filter(move |(i, _)| {
                seqs.is_none_or(|(s, a)| s.get(*i).is_none_or(|&q| q == 0 || q > a))
            })
            .map(|(_, r)| self.record(r))
    }

    #[inline]
    fn put(&mut self, s: Option<&str>) -> Span {
        match s {
            None => NONE,
            Some(s) => {
                let start = self.text.len() as u32;
                self.text.push_str(s);
                Span {
                    start,
                    len: s.len() as u32,
                }
            }
        }
    }

    pub fn push(&mut self, m: &LogMessage<'_>) {
        let structured_data = if m.structured_data.is_empty() {
            NONE
        } else {
            let start = self.text.len();
            write_sd_json(&m.structured_data, &mut self.text);
            Span {
                start: start as u32,
                len: (self.text.len() - start) as u32,
            }
        };
        let hostname = self.put(m.hostname.as_deref());
        let source = self.put(m.source.as_deref());
        let procid = self.put(m.procid.as_deref());
        let msgid = self.put(m.msgid.as_deref());
        let message = self.put(Some(&m.message));
        let peer = self.put(m.peer.as_deref());
        let row = Row {
            time_us: micros(m.timestamp),
            received_us: micros(m.received),
            level: m.level,
            facility: m.facility,
            protocol: m.protocol,
            hostname,
            source,
            procid,
            msgid,
            structured_data,
            message,
            peer,
        };
        self.rows.push(row);
    }

    /// Copies a record (as read from a store) into the batch.
    pub fn push_record(&mut self, r: &RecordRef<'_>) {
        let row = Row {
            time_us: r.time_us,
            received_us: r.received_us,
            level: r.level,
            facility: r.facility,
            protocol: r.protocol,
            hostname: self.put(r.hostname),
            source: self.put(r.source),
            procid: self.put(r.procid),
            msgid: self.put(r.msgid),
            structured_data: self.put(r.structured_data),
            message: self.put(Some(r.message)),
            peer: self.put(r.peer),
        };
        self.rows.push(row);
    }

    fn get(&self, s: Span) -> Option<&str> {
        (s.start != u32::MAX).then(|| &self.text[s.start as usize..(s.start + s.len) as usize])
    }

    fn record(&self, r: &Row) -> RecordRef<'_> {
        RecordRef {
            time_us: r.time_us,
            received_us: r.received_us,
            level: r.level,
            facility: r.facility,
            hostname: self.get(r.hostname),
            source: self.get(r.source),
            procid: self.get(r.procid),
            msgid: self.get(r.msgid),
            structured_data: self.get(r.structured_data),
            message: self.get(r.message).unwrap_or_default(),
            protocol: r.protocol,
            peer: self.get(r.peer),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecordRef<'_>> {
        self.rows.iter().map(|r| self.record(r))
    }

    /// The `i`th record, if there is one.
    pub fn record_at(&self, i: usize) -> Option<RecordRef<'_>> {
        self.rows.get(i).map(|r| self.record(r))
    }
}

/// Frames read as RFC 5424 straight into a batch: no [`LogMessage`] in between, the
/// structured data written as JSON while it is read, the timestamp kept in
/// microseconds. Each row is the one `push(&decode_frame(frame, ctx))` makes; the
/// per-message allocations and moves of that path were a fifth of the connection
/// tasks' time on the realistic replay (BENCHMARKS.md). Lives for the frames of one read.
pub struct Rfc5424Rows<'a, 'c> {
    peer: Option<&'c str>,
    received_us: i64,
    /// One element's parameters, gathered so that repeated names are grouped as
    /// [`write_sd_json`] groups them (kept between frames for its buffer).
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a, 'c> Rfc5424Rows<'a, 'c> {
    pub fn new(ctx: &Context<'c>) -> Self {
        Rfc5424Rows {
            peer: ctx.peer,
            received_us: micros(ctx.received),
            params: Vec::new(),
        }
    }

    /// Pushes `frame` as one row when `decode_frame` would read it as RFC 5424;
    /// otherwise leaves `batch` as it was and returns false.
    pub fn push(&mut self, frame: &'a [u8], batch: &mut Batch) -> bool {
        let body = frame.trim_ascii_start();
        if body.first() != Some(&b'<') || !looks_like_5424(body) {
            return false;
        }
        let mark = batch.text.len();
        let mut sd = SdJson {
            out: &mut batch.text,
            params: &mut self.params,
            id: "",
            elements: 0,
        };
        let parsed = rfc5424::parse_with(body, &mut sd);
        let elements = sd.elements;
        let Ok(h) = parsed else {
            batch.text.truncate(mark);
            return false;
        };
        let structured_data = if elements == 0 {
            NONE
        } else {
            batch.text.push('}');
            Span {
                start: mark as u32,
                len: (batch.text.len() - mark) as u32,
            }
        };
        let (level, facility) = pri_parts(h.pri);
        let message = h
            .msg
            .map_or(Cow::Borrowed(""), |b| lossy(strip_bom(trailing_newline(b))));
        let row = Row {
            time_us: h.timestamp.map_or(self.received_us, |t| t.utc_us),
            received_us: self.received_us,
            level,
            facility,
            protocol: Protocol::Rfc5424,
            hostname: batch.put(h.hostname),
            source: batch.put(h.app_name),
            procid: batch.put(h.procid),
            msgid: batch.put(h.msgid),
            structured_data,
            message: batch.put(Some(&message)),
            peer: batch.put(self.peer),
        };
        batch.rows.push(row);
        true
    }
}

/// Writes SD-ELEMENTs as members of the JSON object [`write_sd_json`] makes (the
/// parser has checked that their SD-IDs differ, so none are merged).
struct SdJson<'a, 'o> {
    out: &'o mut String,
    params: &'o mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
    id: &'a str,
    elements: usize,
}

impl<'a> SdSink<'a> for SdJson<'a, '_> {
    fn element(&mut self, id: &'a str) {
        self.id = id;
        self.params.clear();
    }

    fn param(&mut self, name: &'a str, value: Cow<'a, str>) {
        self.params.push((Cow::Borrowed(name), value));
    }

    fn end(&mut self) {
        self.out.push(if self.elements == 0 { '{' } else { ',' });
        self.elements += 1;
        write_json_str(self.id, self.out);
        self.out.push(':');
        write_params(self.params, self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_push_record_iter_round_trip() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let mut a = Batch::new();
        let mut m = LogMessage::new("first", Level::Err, now);
        m.source = Some("app".into());
        a.push(&m);
        let mut b = Batch::new();
        let mut m2 = LogMessage::new("second", Level::Info, now);
        m2.hostname = Some("h".into());
        b.push(&m2);
        let copied = b.iter().next().unwrap();
        a.push_record(&copied);
        let rows: Vec<_> = a.iter().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].message, rows[0].source, rows[0].hostname),
            ("first", Some("app"), None)
        );
        assert_eq!(
            (rows[1].message, rows[1].source, rows[1].hostname),
            ("second", None, Some("h"))
        );
        assert_eq!(rows[1].time_us, 1_700_000_000_123_456);
    }

    #[test]
    fn a_spare_that_fits_is_taken_whole() {
        let mut pool = vec![
            Batch::with_capacity(128, 32 * 1024),
            Batch::with_capacity(256, 96 * 1024),
            Batch::with_capacity(128, 16 * 1024),
        ];
        let big = pool[1].text.as_ptr();
        let b = take_spare(&mut pool, 256, 80 * 1024).unwrap();
        assert_eq!(b.text.as_ptr(), big, "the one spare big enough");
        assert_eq!(pool.len(), 2);
        // None fits: the last one comes back (its buffers are then replaced).
        let b = take_spare(&mut pool, 128, 64 * 1024).unwrap();
        assert_eq!(b.text.capacity(), 16 * 1024);
        assert_eq!(pool.len(), 1);
        take_spare(&mut pool, 1, 1).unwrap();
        assert!(take_spare(&mut pool, 1, 1).is_none());
    }

    #[test]
    fn reused_batches_hold_what_was_asked_and_count_it() {
        let mut small = Batch::with_capacity(16, 100);
        small.push(&LogMessage::new("x", Level::Info, Utc::now()));
        small.recycle();
        let b = Batch::reuse_or_new(200, 70_000);
        assert!(b.is_empty() && b.rows.capacity() >= 200 && b.text.capacity() >= 70_000);
        assert_eq!(
            b.heap_bytes(),
            b.text.capacity() + b.rows.capacity() * std::mem::size_of::<Row>()
        );
    }
}
