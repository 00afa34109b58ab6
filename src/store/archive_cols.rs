//! The columnar archive layout (manifest `format: 5`; `format: 2`, `3` and `4` still read):
//! one file's rows stored column by column, so the compressor sees like next to like
//! (all messages together, all times together), with each repeated name (host, source,
//! procid, msgid, peer) written once per file and referred to by number. About a third
//! smaller than the same rows as JSON lines at a lower zstd level (BENCHMARKS.md);
//! `logq` turns them back into the very same records.
//!
//! Layout (all integers LEB128 varints, signed ones zigzag), inside one zstd frame:
//! `LRA5` (or `LRA4`, `LRA3`, `LRA2`), rows, then the columns in this order: id deltas,
//! event-time deltas, received-time deltas, level codes (a byte each), facility codes
//! (255: none), protocol numbers, the five name columns (distinct names in order of
//! first use: count, then each name; then per row: `LRA3` on, 0 for none, 1 for the
//! next name not used before, 1 + its number for one used before; `LRA2` 0 for none or
//! the name's number), structured data, messages.
//!
//! `LRA4` and `LRA5` end each name, structured data and message with the byte 0xFF, and
//! write a row without structured data as the lone byte 0xFE: neither byte occurs in
//! UTF-8, so no text needs escaping. `LRA5` writes the messages grouped by their row's
//! source (rows without one first, then each source in order of first use; in row order
//! within a source), which the reader undoes from the source column: one program's
//! messages share their wording, and near each other the compressor finds more of it
//! at less cost (about 5 % fewer bytes on the realistic workload, BENCHMARKS.md).
//! `LRA2`/`LRA3` put a length before each name and, for the texts, all the lengths
//! (structured data: 0 for none, else 1 + length) before all the bytes. The compressor
//! all but removes the ends, where the lengths cost about a byte a row (3 % of the file).
//! `LRA3`'s first uses cost a byte the compressor all but removes instead of a rising
//! number, which for names that seldom repeat (process ids) was a few bytes a row.

use super::{RecordRef, StoreError};
use crate::message::{Facility, Level, Protocol};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const MAGIC_2: &[u8; 4] = b"LRA2";
const MAGIC_3: &[u8; 4] = b"LRA3";
const MAGIC_4: &[u8; 4] = b"LRA4";
const MAGIC: &[u8; 4] = b"LRA5";
const NO_FACILITY: u8 = 255;
/// `LRA3` on: a row's name used here for the first time.
const FIRST_USE: u64 = 1;
/// `LRA4` on: the end of a text (never a byte of UTF-8).
const END: u8 = 0xFF;
/// `LRA4` on: no structured data (never a byte of UTF-8).
const NO_TEXT: u8 = 0xFE;

/// The name columns, in the layout's order.
pub const HOST: usize = 0;
pub const SOURCE: usize = 1;
pub const PROCID: usize = 2;
pub const MSGID: usize = 3;
pub const PEER: usize = 4;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A hasher for keys that are hashes already: passes the `u64` on.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in, still correct.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A column of names: each distinct one kept once, rows refer to it by number. Names
/// are found by their XXH3 hash, checked against the bytes kept: no copy of a name is
/// allocated per row (most process ids are new). Names a store keeps in a dictionary
/// are found by their key instead (the dictionary id), so each is looked up once a file.
#[derive(Default)]
struct NameColumn {
    /// Hash of a name's bytes: its number (the first name with that hash).
    numbers: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// A key's number (0: no name).
    keyed: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// Each name's bytes in `names`, by number - 1.
    spans: Vec<(usize, usize)>,
    /// Each name followed by [`END`].
    names: Vec<u8>,
    rows: Vec<u8>,
}

impl NameColumn {
    /// The number of a name, added if new; `true` with it when it is new.
    fn number(&mut self, s: &str) -> (u64, bool) {
        let hash = xxhash_rust::xxh3::xxh3_64(s.as_bytes());
        if let Some(&n) = self.numbers.get(&hash) {
            let (at, len) = self.spans[(n - 1) as usize];
            if &self.names[at..at + len] == s.as_bytes() {
                return (n, false);
            }
        }
        self.spans.push((self.names.len(), s.len()));
        self.names.extend_from_slice(s.as_bytes());
        self.names.push(END);
        // A different name with the same hash keeps the number: this one is written
        // out again at each use, still correct.
        let n = self.spans.len() as u64;
        self.numbers.entry(hash).or_insert(n);
        (n, true)
    }

    /// A row's reference to name `n` (0: none), its first use when `new`.
    fn put(&mut self, n: u64, new: bool) {
        let r = match (n, new) {
            (0, _) => 0,
            (_, true) => FIRST_USE,
            (n, false) => n + FIRST_USE,
        };
        put_varint(&mut self.rows, r);
    }

    /// Puts a row's name; its number (0: none).
    fn push(&mut self, v: Option<&str>) -> u64 {
        match v {
            None => {
                self.put(0, false);
                0
            }
            Some(s) => {
                let (n, new) = self.number(s);
                self.put(n, new);
                n
            }
        }
    }

    fn push_keyed<E>(
        &mut self,
        key: u64,
        resolve: impl FnOnce() -> Result<Option<String>, E>,
    ) -> Result<u64, E> {
        if let Some(&n) = self.keyed.get(&key) {
            self.put(n, false);
            return Ok(n);
        }
        let (n, new) = match resolve()? {
            Some(s) => self.number(&s),
            None => (0, false),
        };
        self.keyed.insert(key, n);
        self.put(n, new);
        Ok(n)
    }

    fn clear(&mut self) {
        self.numbers.clear();
        self.keyed.clear();
        self.spans.clear();
        self.names.clear();
        self.rows.clear();
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.spans.len() as u64);
        out.extend_from_slice(&self.names);
        out.extend_from_slice(&self.rows);
    }
}

/// Rows gathered column by column, then written out in one piece. A row is its fields
/// ([`Columns::push_fields`]) and one name in each of the five name columns
/// ([`Columns::push_name`] or [`Columns::push_keyed_name`]), or a whole record
/// ([`Columns::push`]).
#[derive(Default)]
pub struct Columns {
    rows: u64,
    last_id: i64,
    last_time: i64,
    last_received: i64,
    min_time: i64,
    max_time: i64,
    ids: Vec<u8>,
    times: Vec<u8>,
    received: Vec<u8>,
    levels: Vec<u8>,
    facilities: Vec<u8>,
    protocols: Vec<u8>,
    /// hostname, source, procid, msgid, peer.
    names: [NameColumn; 5],
    /// Each row's structured data followed by [`END`], or [`NO_TEXT`].
    sd: Vec<u8>,
    /// Each row's message, in row order ([`END`] added when laid out).
    messages: Vec<u8>,
    /// Where each row's message ends in `messages`.
    message_ends: Vec<usize>,
    /// The messages before these (bytes, rows) are known to be UTF-8; those after were
    /// pushed as bytes ([`Columns::push_fields_bytes`]) and are checked in one pass at
    /// [`Columns::finish`].
    checked: (usize, usize),
    /// Each row's source number (0: none), for the messages' order.
    sources: Vec<u32>,
}

impl Columns {
    pub fn push(&mut self, id: i64, r: &RecordRef<'_>) {
        self.push_fields(
            id,
            r.time_us,
            r.received_us,
            r.level,
            r.facility,
            r.protocol,
            r.structured_data,
            r.message,
        );
        for (col, v) in [r.hostname, r.source, r.procid, r.msgid, r.peer]
            .into_iter()
            .enumerate()
        {
            self.push_name(col, v);
        }
    }

    /// A row's fields but its names.
    #[allow(clippy::too_many_arguments)]
    pub fn push_fields(
        &mut self,
        id: i64,
        time_us: i64,
        received_us: i64,
        level: Level,
        facility: Option<Facility>,
        protocol: Protocol,
        structured_data: Option<&str>,
        message: &str,
    ) {
        let known = self.checked.0 == self.messages.len();
        self.push_fields_bytes(
            id,
            time_us,
            received_us,
            level,
            facility,
            protocol,
            structured_data,
            message.as_bytes(),
        );
        if known {
            self.checked = (self.messages.len(), self.message_ends.len());
        }
    }

    /// [`push_fields`](Self::push_fields) with the message as bytes not known to be
    /// UTF-8 (a store's): [`finish`](Self::finish) checks all such messages in one pass
    /// instead of one call each (BENCHMARKS.md: 1-3 % of an archived row's CPU) and
    /// writes one that is not UTF-8 as U+FFFD, as the `Logs` view's readers take it.
    #[allow(clippy::too_many_arguments)]
    pub fn push_fields_bytes(
        &mut self,
        id: i64,
        time_us: i64,
        received_us: i64,
        level: Level,
        facility: Option<Facility>,
        protocol: Protocol,
        structured_data: Option<&str>,
        message: &[u8],
    ) {
        if self.rows == 0 {
            (self.min_time, self.max_time) = (time_us, time_us);
        }
        self.rows += 1;
        self.min_time = self.min_time.min(time_us);
        self.max_time = self.max_time.max(time_us);
        put_varint(&mut self.ids, zigzag(id.wrapping_sub(self.last_id)));
        put_varint(
            &mut self.times,
            zigzag(time_us.wrapping_sub(self.last_time)),
        );
        put_varint(
            &mut self.received,
            zigzag(received_us.wrapping_sub(self.last_received)),
        );
        (self.last_id, self.last_time, self.last_received) = (id, time_us, received_us);
        self.levels.push(level.code());
        self.facilities
            .push(facility.map_or(NO_FACILITY, Facility::code));
        let protocol = Protocol::ALL.iter().position(|p| *p == protocol);
        self.protocols.push(protocol.unwrap_or(0) as u8);
        match structured_data {
            None => self.sd.push(NO_TEXT),
            Some(s) => {
                self.sd.extend_from_slice(s.as_bytes());
                self.sd.push(END);
            }
        }
        self.messages.extend_from_slice(message);
        self.message_ends.push(self.messages.len());
    }

    /// Checks the messages pushed as bytes since the last check: the whole run in one
    /// pass, and each end between two characters (then each message is UTF-8 on its
    /// own). Failing that, message by message, each that is not UTF-8 made U+FFFD.
    fn check_messages(&mut self) {
        let (from, first_row) = self.checked;
        let ends = &self.message_ends[first_row..];
        let between_characters =
            |e: &usize| self.messages.get(*e).is_none_or(|b| (*b as i8) >= -0x40);
        let whole = simdutf8::basic::from_utf8(&self.messages[from..]).is_ok()
            && ends.iter().all(between_characters);
        if !whole {
            let mut fixed = Vec::with_capacity(self.messages.len() - from);
            let mut start = from;
            for end in &mut self.message_ends[first_row..] {
                let m = &self.messages[start..*end];
                start = *end;
                match simdutf8::basic::from_utf8(m) {
                    Ok(_) => fixed.extend_from_slice(m),
                    Err(_) => fixed.extend_from_slice("\u{FFFD}".as_bytes()),
                }
                *end = from + fixed.len();
            }
            self.messages.truncate(from);
            self.messages.extend_from_slice(&fixed);
        }
        self.checked = (self.messages.len(), self.message_ends.len());
    }

    /// A row's name in column `col` ([`HOST`] … [`PEER`]).
    pub fn push_name(&mut self, col: usize, v: Option<&str>) {
        let n = self.names[col].push(v);
        if col == SOURCE {
            self.sources.push(n as u32);
        }
    }

    /// A row's name in column `col` by a key standing for it (the same key, the same
    /// name): `resolve` is asked for the name the first time a file meets the key.
    pub fn push_keyed_name<E>(
        &mut self,
        col: usize,
        key: u64,
        resolve: impl FnOnce() -> Result<Option<String>, E>,
    ) -> Result<(), E> {
        let n = self.names[col].push_keyed(key, resolve)?;
        if col == SOURCE {
            self.sources.push(n as u32);
        }
        Ok(())
    }

    /// Rows gathered, and their earliest and latest event time ((0, 0) for none).
    pub fn summary(&self) -> (u64, i64, i64) {
        (self.rows, self.min_time, self.max_time)
    }

    /// Empties the columns, keeping their memory for the next file.
    pub fn clear(&mut self) {
        (self.rows, self.last_id, self.last_time, self.last_received) = (0, 0, 0, 0);
        (self.min_time, self.max_time) = (0, 0);
        for col in [
            &mut self.ids,
            &mut self.times,
            &mut self.received,
            &mut self.levels,
            &mut self.facilities,
            &mut self.protocols,
            &mut self.sd,
            &mut self.messages,
        ] {
            col.clear();
        }
        self.message_ends.clear();
        self.checked = (0, 0);
        self.sources.clear();
        self.names.iter_mut().for_each(NameColumn::clear);
    }

    /// The whole layout, ready to compress, appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.check_messages();
        out.reserve(
            64 + self.ids.len()
                + self.times.len()
                + self.received.len()
                + 3 * self.levels.len()
                + self
                    .names
                    .iter()
                    .map(|c| c.names.len() + c.rows.len())
                    .sum::<usize>()
                + self.sd.len()
                + self.messages.len()
                + self.message_ends.len(),
        );
        out.extend_from_slice(MAGIC);
        put_varint(out, self.rows);
        for col in [
            &self.ids,
            &self.times,
            &self.received,
            &self.levels,
            &self.facilities,
            &self.protocols,
        ] {
            out.extend_from_slice(col);
        }
        for col in &self.names {
            col.write(out);
        }
        out.extend_from_slice(&self.sd);
        let sources = self.names[SOURCE].spans.len() + 1;
        for i in grouped(self.message_ends.len(), sources, |i| {
            self.sources.get(i).map_or(0, |n| *n as usize)
        }) {
            let start = i.checked_sub(1).map_or(0, |p| self.message_ends[p]);
            out.extend_from_slice(&self.messages[start..self.message_ends[i]]);
            out.push(END);
        }
    }
}

/// Rows `0..rows` grouped by `key` (each below `keys`): the rows of key 0 first, then
/// of key 1, and so on, each group in row order (`LRA5`'s order of the messages).
fn grouped(rows: usize, keys: usize, key: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut starts = vec![0usize; keys + 1];
    for i in 0..rows {
        starts[key(i) + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut order = vec![0usize; rows];
    for i in 0..rows {
        let at = &mut starts[key(i)];
        order[*at] = i;
        *at += 1;
    }
    order
}

/// A read position in a decoded file; every read checks its bounds.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

fn bad(what: &str) -> String {
    format!("damaged columnar archive: {what}")
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or_else(|| bad("cut short"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("a number runs on"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("cut short"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn varints(&mut self, rows: usize) -> Result<Vec<u64>, String> {
        (0..rows).map(|_| self.varint()).collect()
    }

    /// Running sums of zigzag deltas.
    fn deltas(&mut self, rows: usize) -> Result<Vec<i64>, String> {
        let mut last = 0i64;
        (0..rows)
            .map(|_| {
                last = last.wrapping_add(unzigzag(self.varint()?));
                Ok(last)
            })
            .collect()
    }

    /// A text ended by [`END`] (`LRA4` on).
    fn ended(&mut self) -> Result<&'a str, String> {
        let rest = &self.buf[self.at..];
        let n = memchr::memchr(END, rest).ok_or_else(|| bad("cut short"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| bad("text is not UTF-8"))?;
        self.at += n + 1;
        Ok(s)
    }

    /// A name column (see the module's layout).
    fn names(&mut self, rows: usize, version: Version) -> Result<(Vec<&'a str>, Vec<u64>), String> {
        let count = self.varint()?;
        let mut names = Vec::new();
        for _ in 0..count {
            let s = if version.ended() {
                self.ended()?
            } else {
                let len = self.varint()?;
                std::str::from_utf8(self.bytes(len)?).map_err(|_| bad("a name is not UTF-8"))?
            };
            names.push(s);
        }
        let mut refs = self.varints(rows)?;
        if version != Version::Numbered {
            let mut used = 0u64;
            for r in &mut refs {
                *r = match *r {
                    0 => 0,
                    FIRST_USE => {
                        used += 1;
                        used
                    }
                    n if n - FIRST_USE <= used => n - FIRST_USE,
                    _ => return Err(bad("a row names a name before its first use")),
                };
            }
        }
        if refs.iter().any(|n| *n > count) {
            return Err(bad("a row names a name that is not there"));
        }
        Ok((names, refs))
    }

    /// A text column: `LRA4` on, each row's text ended by [`END`] (or, `with_none`,
    /// [`NO_TEXT`] for none); before, lengths, then the text they cut (`with_none`: a
    /// length of 0 is no text).
    fn texts(
        &mut self,
        rows: usize,
        with_none: bool,
        version: Version,
    ) -> Result<Vec<Option<&'a str>>, String> {
        if version.ended() {
            return (0..rows)
                .map(|_| {
                    if with_none && self.buf.get(self.at) == Some(&NO_TEXT) {
                        self.at += 1;
                        return Ok(None);
                    }
                    self.ended().map(Some)
                })
                .collect();
        }
        let lens = self.varints(rows)?;
        let total = lens
            .iter()
            .map(|l| if with_none { l.saturating_sub(1) } else { *l })
            .try_fold(0u64, u64::checked_add)
            .ok_or_else(|| bad("lengths overflow"))?;
        let all = std::str::from_utf8(self.bytes(total)?).map_err(|_| bad("text is not UTF-8"))?;
        let mut at = 0usize;
        lens.iter()
            .map(|l| {
                if with_none && *l == 0 {
                    return Ok(None);
                }
                let n = (if with_none { l - 1 } else { *l }) as usize;
                let s = all
                    .get(at..at + n)
                    .ok_or_else(|| bad("text cut inside a character"))?;
                at += n;
                Ok(Some(s))
            })
            .collect()
    }
}

/// Which layout a file has (its magic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `LRA2`: names by number.
    Numbered,
    /// `LRA3`: first uses, lengths.
    FirstUses,
    /// `LRA4`: first uses, ended texts.
    Ended,
    /// `LRA5`: as `LRA4`, the messages grouped by source.
    Grouped,
}

impl Version {
    /// Texts ended by [`END`], not preceded by lengths.
    fn ended(self) -> bool {
        matches!(self, Version::Ended | Version::Grouped)
    }
}

/// Decodes a whole file's layout and passes each row, in id order, to `rows`.
pub fn read(
    buf: &[u8],
    rows: &mut dyn FnMut(i64, &RecordRef<'_>) -> Result<(), StoreError>,
) -> Result<Result<(), StoreError>, String> {
    let version = match buf.get(..4) {
        Some(m) if m == MAGIC => Version::Grouped,
        Some(m) if m == MAGIC_4 => Version::Ended,
        Some(m) if m == MAGIC_3 => Version::FirstUses,
        Some(m) if m == MAGIC_2 => Version::Numbered,
        _ => return Err(bad("not a columnar archive")),
    };
    let mut c = Cursor { buf, at: 4 };
    let n = c.varint()?;
    // Every row takes at least a byte in several columns: a count beyond the file's
    // size is damage, not a reason to allocate.
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= buf.len())
        .ok_or_else(|| bad("row count beyond the file"))?;
    let ids = c.deltas(n)?;
    let times = c.deltas(n)?;
    let received = c.deltas(n)?;
    let levels = c.bytes(n as u64)?;
    let facilities = c.bytes(n as u64)?;
    let protocols = c.bytes(n as u64)?;
    let mut names = Vec::with_capacity(5);
    for _ in 0..5 {
        names.push(c.names(n, version)?);
    }
    let sd = c.texts(n, true, version)?;
    let mut messages = c.texts(n, false, version)?;
    if version == Version::Grouped {
        // Checked above: every number is at most the count of names.
        let (sources, refs) = &names[SOURCE];
        let order = grouped(n, sources.len() + 1, |i| refs[i] as usize);
        let mut by_row = vec![None; n];
        for (text, row) in messages.into_iter().zip(order) {
            by_row[row] = text;
        }
        messages = by_row;
    }
    if c.at != buf.len() {
        return Err(bad("bytes after the last column"));
    }
    let name = |col: usize, i: usize| -> Option<&str> {
        let (names, refs) = &names[col];
        refs[i].checked_sub(1).map(|k| names[k as usize])
    };
    for i in 0..n {
        let level = Level::from_code(levels[i]).ok_or_else(|| bad("a level out of range"))?;
        let facility = match facilities[i] {
            NO_FACILITY => None,
            f => Some(Facility::from_code(f).ok_or_else(|| bad("a facility out of range"))?),
        };
        let protocol = *Protocol::ALL
            .get(protocols[i] as usize)
            .ok_or_else(|| bad("a protocol out of range"))?;
        let r = RecordRef {
            time_us: times[i],
            received_us: received[i],
            level,
            facility,
            hostname: name(0, i),
            source: name(1, i),
            procid: name(2, i),
            msgid: name(3, i),
            structured_data: sd[i],
            message: messages[i].unwrap_or(""),
            protocol,
            peer: name(4, i),
        };
        if let Err(e) = rows(ids[i], &r) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let mut c = Cursor { buf: &b, at: 0 };
            assert_eq!(unzigzag(c.varint().unwrap()), v);
            assert_eq!(c.at, b.len());
        }
    }

    #[test]
    fn messages_grouped_by_source_come_back_in_row_order() {
        let sources = [
            Some("b"),
            None,
            Some("a"),
            Some("b"),
            None,
            Some("c"),
            Some("a"),
        ];
        let mut cols = Columns::default();
        for (i, source) in sources.iter().enumerate() {
            let message = format!("message {i}");
            let r = RecordRef {
                time_us: i as i64,
                received_us: i as i64,
                level: Level::Info,
                facility: None,
                hostname: None,
                source: *source,
                procid: None,
                msgid: None,
                structured_data: None,
                message: &message,
                protocol: Protocol::Rfc5424,
                peer: None,
            };
            cols.push(i as i64, &r);
        }
        let mut whole = Vec::new();
        cols.finish(&mut whole);
        // Written by source in order of first use: none, then b, a, c.
        let at = |m: &str| {
            let m = m.as_bytes();
            whole.windows(m.len()).position(|w| w == m).unwrap()
        };
        let written: Vec<usize> = [1, 4, 0, 3, 2, 6, 5]
            .iter()
            .map(|i| at(&format!("message {i}")))
            .collect();
        assert!(written.windows(2).all(|w| w[0] < w[1]), "{written:?}");
        let mut seen = Vec::new();
        read(&whole, &mut |id, r| {
            seen.push((id, r.source.map(String::from), r.message.to_string()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        let want: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (i as i64, s.map(String::from), format!("message {i}")))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn messages_pushed_as_bytes_are_checked_at_finish() {
        // Valid ones around one that is not UTF-8, a character cut across two rows
        // (valid as a whole, not each), and records pushed as text between them.
        let ue = "ü".as_bytes();
        let rows: Vec<(Vec<u8>, bool)> = vec![
            (b"first".to_vec(), false),
            (b"bad \xff byte".to_vec(), false),
            ("grüße".as_bytes().to_vec(), false),
            ([b"cut ".as_slice(), &ue[..1]].concat(), false),
            ([&ue[1..], b" rest".as_slice()].concat(), false),
            ("as text".as_bytes().to_vec(), true),
            ("x".repeat(200).into_bytes(), false),
        ];
        let want = [
            "first",
            "\u{FFFD}",
            "grüße",
            "\u{FFFD}",
            "\u{FFFD}",
            "as text",
            &"x".repeat(200),
        ];
        let mut cols = Columns::default();
        // Round 1 without the bad byte: the run is UTF-8 as a whole, only the cut
        // character's end between two rows tells.
        for round in 0..2 {
            let keep = |i: &usize| round == 0 || *i != 1;
            for (i, (m, as_text)) in rows.iter().enumerate().filter(|(i, _)| keep(i)) {
                let t = i as i64;
                let source = [Some("a"), None, Some("b")][i % 3];
                if *as_text {
                    let m = std::str::from_utf8(m).unwrap();
                    cols.push_fields(t, t, t, Level::Info, None, Protocol::Rfc5424, None, m);
                } else {
                    cols.push_fields_bytes(t, t, t, Level::Info, None, Protocol::Rfc5424, None, m);
                }
                for col in [HOST, PROCID, MSGID, PEER] {
                    cols.push_name(col, None);
                }
                cols.push_name(SOURCE, source);
            }
            let mut whole = Vec::new();
            cols.finish(&mut whole);
            let mut seen = Vec::new();
            read(&whole, &mut |_, r| {
                seen.push(r.message.to_string());
                Ok(())
            })
            .unwrap()
            .unwrap();
            let want: Vec<&str> = (0..want.len()).filter(keep).map(|i| want[i]).collect();
            assert_eq!(seen, want, "round {round}");
            cols.clear();
        }
        // All pushed as text: nothing left to check, the same layout either way.
        let (mut a, mut b) = (Columns::default(), Columns::default());
        for (i, m) in ["one", "twö", "three"].iter().enumerate() {
            let t = i as i64;
            a.push_fields(t, t, t, Level::Info, None, Protocol::Rfc5424, None, m);
            b.push_fields_bytes(
                t,
                t,
                t,
                Level::Info,
                None,
                Protocol::Rfc5424,
                None,
                m.as_bytes(),
            );
            for c in [&mut a, &mut b] {
                for col in [HOST, SOURCE, PROCID, MSGID, PEER] {
                    c.push_name(col, None);
                }
            }
        }
        assert_eq!(a.checked, (a.messages.len(), 3));
        assert_eq!(b.checked, (0, 0));
        let (mut wa, mut wb) = (Vec::new(), Vec::new());
        a.finish(&mut wa);
        b.finish(&mut wb);
        assert_eq!(wa, wb);
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let r = RecordRef {
            time_us: 1_700_000_000_000_000,
            received_us: 1_700_000_000_000_100,
            level: Level::Info,
            facility: None,
            hostname: Some("web-1"),
            source: Some("app"),
            procid: None,
            msgid: None,
            structured_data: Some("{\"a\":{\"b\":\"ü\"}}"),
            message: "grüße",
            protocol: Protocol::Rfc5424,
            peer: None,
        };
        let mut cols = Columns::default();
        cols.push(7, &r);
        cols.push(8, &r);
        let mut whole = Vec::new();
        cols.finish(&mut whole);
        let mut seen = Vec::new();
        read(&whole, &mut |id, r| {
            seen.push((
                id,
                r.message.to_string(),
                r.structured_data.map(String::from),
            ));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1],
            (8, "grüße".into(), Some("{\"a\":{\"b\":\"ü\"}}".into()))
        );
        // Every cut and every flipped byte: an error or rows, never a panic.
        for cut in 0..whole.len() {
            assert!(
                read(&whole[..cut], &mut |_, _| Ok(())).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..whole.len() {
            let mut b = whole.clone();
            b[i] ^= 0xff;
            let _ = read(&b, &mut |_, _| Ok(()));
        }
    }
}
