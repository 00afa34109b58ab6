//! The columnar archive layout (manifest `format: 3`, and `format: 2` still read): one
//! file's rows stored column by column, so the compressor sees like next to like (all
//! messages together, all times together), with each repeated name (host, source,
//! procid, msgid, peer) written once per file and referred to by number. About a third
//! smaller than the same rows as JSON lines at a lower zstd level (BENCHMARKS.md);
//! `logq` turns them back into the very same records.
//!
//! Layout (all integers LEB128 varints, signed ones zigzag), inside one zstd frame:
//! `LRA3` (or `LRA2`), rows, then the columns in this order: id deltas, event-time
//! deltas, received-time deltas, level codes (a byte each), facility codes (255: none),
//! protocol numbers, the five name columns (distinct names in order of first use:
//! count, then length and bytes of each; then per row: `LRA3` 0 for none, 1 for the next
//! name not used before, 1 + its number for one used before; `LRA2` 0 for none or the
//! name's number), structured data lengths (0: none, else 1 + length) and bytes, message
//! lengths and bytes. `LRA3`'s first uses cost a byte the compressor all but removes
//! instead of a rising number, which for names that seldom repeat (process ids) was a
//! few bytes a row.

use super::{RecordRef, StoreError};
use crate::message::{Facility, Level, Protocol};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const MAGIC_2: &[u8; 4] = b"LRA2";
const MAGIC: &[u8; 4] = b"LRA3";
const NO_FACILITY: u8 = 255;
/// `LRA3`: a row's name used here for the first time.
const FIRST_USE: u64 = 1;

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
/// allocated per row (most process ids are new).
#[derive(Default)]
struct NameColumn {
    /// Hash of a name's bytes: its number (the first name with that hash).
    numbers: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// Each name's bytes in `names`, by number - 1.
    spans: Vec<(usize, usize)>,
    names: Vec<u8>,
    rows: Vec<u8>,
}

impl NameColumn {
    fn push(&mut self, v: Option<&str>) {
        let Some(s) = v else {
            put_varint(&mut self.rows, 0);
            return;
        };
        let hash = xxhash_rust::xxh3::xxh3_64(s.as_bytes());
        if let Some(&n) = self.numbers.get(&hash) {
            let (at, len) = self.spans[(n - 1) as usize];
            if &self.names[at..at + len] == s.as_bytes() {
                put_varint(&mut self.rows, n + FIRST_USE);
                return;
            }
        }
        put_varint(&mut self.names, s.len() as u64);
        self.spans.push((self.names.len(), s.len()));
        self.names.extend_from_slice(s.as_bytes());
        // A different name with the same hash keeps the number: this one is written
        // out again at each use, still correct.
        self.numbers.entry(hash).or_insert(self.spans.len() as u64);
        put_varint(&mut self.rows, FIRST_USE);
    }

    fn clear(&mut self) {
        self.numbers.clear();
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

/// Rows gathered column by column, then written out in one piece.
#[derive(Default)]
pub struct Columns {
    rows: u64,
    last_id: i64,
    last_time: i64,
    last_received: i64,
    ids: Vec<u8>,
    times: Vec<u8>,
    received: Vec<u8>,
    levels: Vec<u8>,
    facilities: Vec<u8>,
    protocols: Vec<u8>,
    /// hostname, source, procid, msgid, peer.
    names: [NameColumn; 5],
    sd_lens: Vec<u8>,
    sd: Vec<u8>,
    message_lens: Vec<u8>,
    messages: Vec<u8>,
}

impl Columns {
    pub fn push(&mut self, id: i64, r: &RecordRef<'_>) {
        self.rows += 1;
        put_varint(&mut self.ids, zigzag(id.wrapping_sub(self.last_id)));
        put_varint(
            &mut self.times,
            zigzag(r.time_us.wrapping_sub(self.last_time)),
        );
        put_varint(
            &mut self.received,
            zigzag(r.received_us.wrapping_sub(self.last_received)),
        );
        (self.last_id, self.last_time, self.last_received) = (id, r.time_us, r.received_us);
        self.levels.push(r.level.code());
        self.facilities
            .push(r.facility.map_or(NO_FACILITY, Facility::code));
        let protocol = Protocol::ALL.iter().position(|p| *p == r.protocol);
        self.protocols.push(protocol.unwrap_or(0) as u8);
        for (col, v) in self
            .names
            .iter_mut()
            .zip([r.hostname, r.source, r.procid, r.msgid, r.peer])
        {
            col.push(v);
        }
        match r.structured_data {
            None => put_varint(&mut self.sd_lens, 0),
            Some(s) => {
                put_varint(&mut self.sd_lens, s.len() as u64 + 1);
                self.sd.extend_from_slice(s.as_bytes());
            }
        }
        put_varint(&mut self.message_lens, r.message.len() as u64);
        self.messages.extend_from_slice(r.message.as_bytes());
    }

    /// Empties the columns, keeping their memory for the next file.
    pub fn clear(&mut self) {
        (self.rows, self.last_id, self.last_time, self.last_received) = (0, 0, 0, 0);
        for col in [
            &mut self.ids,
            &mut self.times,
            &mut self.received,
            &mut self.levels,
            &mut self.facilities,
            &mut self.protocols,
            &mut self.sd_lens,
            &mut self.sd,
            &mut self.message_lens,
            &mut self.messages,
        ] {
            col.clear();
        }
        self.names.iter_mut().for_each(NameColumn::clear);
    }

    /// The whole layout, ready to compress, appended to `out`.
    pub fn finish(&self, out: &mut Vec<u8>) {
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
                + self.sd_lens.len()
                + self.sd.len()
                + self.message_lens.len()
                + self.messages.len(),
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
        for col in [&self.sd_lens, &self.sd, &self.message_lens, &self.messages] {
            out.extend_from_slice(col);
        }
    }
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

    /// A name column; `first_uses`: `LRA3`'s row numbers (see the module's layout).
    fn names(&mut self, rows: usize, first_uses: bool) -> Result<(Vec<&'a str>, Vec<u64>), String> {
        let count = self.varint()?;
        let mut names = Vec::new();
        for _ in 0..count {
            let len = self.varint()?;
            let s =
                std::str::from_utf8(self.bytes(len)?).map_err(|_| bad("a name is not UTF-8"))?;
            names.push(s);
        }
        let mut refs = self.varints(rows)?;
        if first_uses {
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

    /// Lengths, then the text they cut; `with_none`: a length of 0 is no text.
    fn texts(&mut self, rows: usize, with_none: bool) -> Result<Vec<Option<&'a str>>, String> {
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

/// Decodes a whole file's layout and passes each row, in id order, to `rows`.
pub fn read(
    buf: &[u8],
    rows: &mut dyn FnMut(i64, &RecordRef<'_>) -> Result<(), StoreError>,
) -> Result<Result<(), StoreError>, String> {
    let first_uses = match buf.get(..4) {
        Some(m) if m == MAGIC => true,
        Some(m) if m == MAGIC_2 => false,
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
        names.push(c.names(n, first_uses)?);
    }
    let sd = c.texts(n, true)?;
    let messages = c.texts(n, false)?;
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
