//! Block summaries (zone maps, like PostgreSQL's BRIN): for every 4,096 consecutive row
//! ids, which times, severities, facilities, sources and hosts occur, with each source's
//! and host's severities. They replace per-row secondary indexes on severity, source
//! and host: an index entry per row and index cost the relay's writer three B-tree
//! inserts at random places (~3.5 µs a row, two thirds of its time); a summary costs two
//! hash lookups per row and one small row per commit. Queries read the summaries first
//! and scan only the id ranges of blocks that can hold a match (`super::query`).
//!
//! Time is kept as up to four disjoint ranges per block ([`TimeRanges`]) beside the
//! envelope `min_time_us..max_time_us`: rows given their receive time, an old log
//! replayed beside live traffic or a sender with a wrong clock put a few rows of a block
//! years away from the rest, and with only the envelope every block would span years.
//! The ranges stand in for a per-row time index (which cost the writer a third of its
//! time): a time-bounded query reads only the blocks, and within them only the ranges,
//! that meet its bounds.
//!
//! Blocks are aligned on ids (`id >> BLOCK_SHIFT`), not on batches, so two relays
//! writing one file merge into the same summary rows instead of overlapping ranges.

use rusqlite::{OptionalExtension, Transaction};
use std::collections::HashMap;

pub const BLOCK_SHIFT: u32 = 12;

/// Name id → severity bits, looked up for every row the writer stores. foldhash, not
/// std's SipHash: the ids are the store's own small integers, and each map still gets a
/// random seed, so no sender can aim at a fixed hash.
pub type NameBits = HashMap<i64, u8, foldhash::fast::RandomState>;

/// Bit 24 of the facility mask: rows without a facility (NDJSON, raw).
const NO_FACILITY: u32 = 1 << 24;

/// What one block holds. `None` name maps mean "unknown, may hold any" (blocks
/// summarised from rows written before these summaries existed never need that, but a
/// damaged blob reads as unknown rather than as empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub min_time_us: i64,
    pub max_time_us: i64,
    /// Disjoint ranges inside the envelope that cover every row's time.
    pub ranges: TimeRanges,
    /// Bit n: a row with severity n.
    pub severities: u8,
    /// Bit n: a row with facility n; bit 24: a row without one.
    pub facilities: u32,
    /// Source id → severities of that source's rows in the block.
    pub sources: Option<NameBits>,
    pub hosts: Option<NameBits>,
    /// Rows per severity (what `--count` and `stats` add up); `None`: unknown.
    pub counts: Option<[u16; 8]>,
}

/// The facts of one row that summaries keep.
#[derive(Debug, Clone, Copy)]
pub struct RowFacts {
    pub id: i64,
    pub time_us: i64,
    pub severity: u8,
    pub facility: Option<u8>,
    pub source_id: Option<i64>,
    pub host_id: Option<i64>,
}

fn facility_bit(f: Option<u8>) -> u32 {
    match f {
        Some(f) if f < 24 => 1 << f,
        _ => NO_FACILITY,
    }
}

impl Summary {
    fn empty() -> Summary {
        Summary {
            min_time_us: i64::MAX,
            max_time_us: i64::MIN,
            sources: Some(NameBits::default()),
            hosts: Some(NameBits::default()),
            counts: Some([0; 8]),
            ..Summary::default()
        }
    }

    fn add(&mut self, r: &RowFacts) {
        let bit = 1u8 << (r.severity & 7);
        self.min_time_us = self.min_time_us.min(r.time_us);
        self.max_time_us = self.max_time_us.max(r.time_us);
        self.ranges.add(r.time_us);
        self.severities |= bit;
        self.facilities |= facility_bit(r.facility);
        if let Some(c) = self.counts.as_mut() {
            let n = &mut c[usize::from(r.severity & 7)];
            *n = n.saturating_add(1);
        }
        for (map, id) in [
            (&mut self.sources, r.source_id),
            (&mut self.hosts, r.host_id),
        ] {
            if let (Some(map), Some(id)) = (map.as_mut(), id) {
                *map.entry(id).or_default() |= bit;
            }
        }
    }

    /// Adds `other`, the stored summary of the same block's rows with lower ids.
    fn merge(&mut self, other: &Summary) {
        // Still in order if both were and this side's rows start no earlier than the
        // stored ones end (new rows get higher ids).
        let rising = self.ranges.rising
            && other.ranges.rising
            && (self.ranges.is_empty()
                || other.ranges.is_empty()
                || self.min_time_us >= other.max_time_us);
        self.min_time_us = self.min_time_us.min(other.min_time_us);
        self.max_time_us = self.max_time_us.max(other.max_time_us);
        for &(from, to) in other.ranges.as_slice() {
            self.ranges.add_range(from, to);
        }
        self.ranges.rising = rising;
        self.severities |= other.severities;
        self.facilities |= other.facilities;
        self.counts = match (self.counts, other.counts) {
            (Some(a), Some(b)) => Some(std::array::from_fn(|i| a[i].saturating_add(b[i]))),
            _ => None,
        };
        for (mine, theirs) in [
            (&mut self.sources, &other.sources),
            (&mut self.hosts, &other.hosts),
        ] {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => {
                    for (id, bits) in t {
                        *m.entry(*id).or_default() |= bits;
                    }
                }
                _ => *mine = None,
            }
        }
    }
}

/// Time ranges per block at most: enough for live traffic plus a replayed old log, a
/// sender with a wrong clock and rows given their receive time, without one far-away row
/// stretching the block over years.
pub const MAX_RANGES: usize = 4;

/// A time outside every range but at most this far from the nearest (or at most that
/// range's width) extends it instead of starting a range: rows arriving minutes apart
/// need no ranges of their own, and a block's live rows stay one range.
const NEAR_US: i64 = 60_000_000;

/// Up to [`MAX_RANGES`] sorted, disjoint `[from, to]` time ranges (µs, inclusive) that
/// together cover the times of every row of a block. A new time extends the range it is
/// near; otherwise it starts one, and when there are too many the two with the smallest
/// gap between them merge.
///
/// Beside them, whether the rows' times never decrease with their ids ("rising": one
/// compare per row as the block fills). Then id order is time order, so readers find a
/// time by binary search on ids and read in time order by id, without a sort.
#[derive(Debug, Clone, Copy)]
pub struct TimeRanges {
    /// Times rise with ids (unknown counts as not).
    pub rising: bool,
    len: u8,
    /// The range the last time fell into: checked first (rows come nearly in order).
    hit: u8,
    /// One more than kept: a new range goes in before the closest two merge.
    r: [(i64, i64); MAX_RANGES + 1],
}

impl Default for TimeRanges {
    fn default() -> Self {
        TimeRanges {
            // No rows yet: in order until a row is earlier than the one before.
            rising: true,
            len: 0,
            hit: 0,
            r: [(0, 0); MAX_RANGES + 1],
        }
    }
}

impl PartialEq for TimeRanges {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl TimeRanges {
    /// One range: what is known of a block whose ranges are unknown or damaged.
    pub fn envelope(from: i64, to: i64) -> TimeRanges {
        let mut t = TimeRanges {
            rising: false,
            ..TimeRanges::default()
        };
        if from <= to {
            t.add_range(from, to);
        }
        t
    }

    pub fn as_slice(&self) -> &[(i64, i64)] {
        &self.r[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the ranges cover `t`.
    pub fn add(&mut self, t: i64) {
        let n = usize::from(self.len);
        // The ranges' end is the latest time so far: the row before's, while rising.
        if n > 0 && t < self.r[n - 1].1 {
            self.rising = false;
        }
        let h = usize::from(self.hit);
        if h < n && self.r[h].0 <= t && t <= self.r[h].1 {
            return;
        }
        // The first range not wholly before `t`.
        let i = self.r[..n].iter().position(|r| r.1 >= t).unwrap_or(n);
        if i < n && self.r[i].0 <= t {
            self.hit = i as u8;
            return;
        }
        // Between ranges i-1 and i: extend the nearer one if `t` is near it.
        let before = (i > 0).then(|| (i - 1, t.saturating_sub(self.r[i - 1].1)));
        let after = (i < n).then(|| (i, self.r[i].0.saturating_sub(t)));
        let nearest = match (before, after) {
            (Some(b), Some(a)) => Some(if a.1 < b.1 { a } else { b }),
            (b, a) => b.or(a),
        };
        if let Some((j, gap)) = nearest {
            let width = self.r[j].1.saturating_sub(self.r[j].0);
            if gap <= NEAR_US.max(width) {
                self.add_range(t.min(self.r[j].0), t.max(self.r[j].1));
                return;
            }
        }
        self.add_range(t, t);
    }

    /// Makes the ranges cover `[from, to]`, merging what it overlaps, then the closest
    /// two while there are too many.
    pub fn add_range(&mut self, from: i64, to: i64) {
        let (mut from, mut to) = (from.min(to), from.max(to));
        let mut n = usize::from(self.len);
        let i = self.r[..n].iter().position(|r| r.1 >= from).unwrap_or(n);
        let mut j = i;
        while j < n && self.r[j].0 <= to {
            from = from.min(self.r[j].0);
            to = to.max(self.r[j].1);
            j += 1;
        }
        if j == i {
            self.r.copy_within(i..n, i + 1);
            n += 1;
        } else {
            self.r.copy_within(j..n, i + 1);
            n -= j - i - 1;
        }
        self.r[i] = (from, to);
        while n > MAX_RANGES {
            let k = (1..n)
                .min_by_key(|&k| self.r[k].0.saturating_sub(self.r[k - 1].1))
                .unwrap_or(1);
            self.r[k - 1].1 = self.r[k].1;
            self.r.copy_within(k + 1..n, k);
            n -= 1;
        }
        self.len = n as u8;
        self.hit = self.r[..n]
            .iter()
            .position(|r| r.0 <= to && from <= r.1)
            .unwrap_or(0) as u8;
    }

    /// Whether a row in `[from, to]` may be in the block.
    pub fn meets(&self, from: i64, to: i64) -> bool {
        self.as_slice().iter().any(|r| r.0 <= to && from <= r.1)
    }

    /// The ranges as stored: `(from, to)` pairs of little-endian i64, then a byte
    /// [`RISING`] when times rise with ids (no byte otherwise, as schema 7 first wrote).
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .as_slice()
            .iter()
            .flat_map(|(a, b)| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
            .collect();
        if self.rising && !out.is_empty() {
            out.push(RISING);
        }
        out
    }

    /// [`encode`](Self::encode) read back; `None` for NULL or a damaged value (wrong
    /// length, unsorted or overlapping ranges, an unknown flag).
    pub fn decode(value: rusqlite::types::ValueRef<'_>) -> Option<TimeRanges> {
        let mut blob = value.as_blob().ok()?;
        let mut rising = false;
        if blob.len() % 16 == 1 {
            let (&flags, rest) = blob.split_last()?;
            if flags != RISING {
                return None;
            }
            (blob, rising) = (rest, true);
        }
        if blob.is_empty() || blob.len() % 16 != 0 || blob.len() > 16 * MAX_RANGES {
            return None;
        }
        let mut t = TimeRanges {
            rising,
            ..TimeRanges::default()
        };
        let mut prev_to = None;
        for pair in blob.chunks_exact(16) {
            let from = i64::from_le_bytes(pair[..8].try_into().ok()?);
            let to = i64::from_le_bytes(pair[8..].try_into().ok()?);
            if from > to || prev_to.is_some_and(|p| p >= from) {
                return None;
            }
            prev_to = Some(to);
            t.r[usize::from(t.len)] = (from, to);
            t.len += 1;
        }
        Some(t)
    }
}

/// The flag byte after the ranges: the block's times rise with its ids.
const RISING: u8 = 1;

/// `(id, severity bits)` pairs sorted by id, ids as LEB128 deltas: ~2 bytes a name.
pub fn encode_names(map: &NameBits) -> Vec<u8> {
    let mut pairs: Vec<(i64, u8)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    pairs.sort_unstable();
    let mut out = Vec::with_capacity(pairs.len() * 3);
    let mut prev = 0i64;
    for (id, bits) in pairs {
        let mut delta = id.wrapping_sub(prev) as u64;
        prev = id;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.push(bits);
    }
    out
}

/// The pairs of [`encode_names`]; `None` for a damaged blob.
pub fn decode_names(mut blob: &[u8]) -> Option<Vec<(i64, u8)>> {
    let mut pairs = Vec::with_capacity(blob.len() / 2);
    let mut prev = 0i64;
    while !blob.is_empty() {
        let mut delta = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, rest) = blob.split_first()?;
            blob = rest;
            if shift > 63 {
                return None;
            }
            delta |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let (&bits, rest) = blob.split_first()?;
        blob = rest;
        prev = prev.wrapping_add(delta as i64);
        pairs.push((prev, bits));
    }
    Some(pairs)
}

/// Rows per severity as 8 little-endian u16.
pub fn encode_counts(c: &[u16; 8]) -> Vec<u8> {
    c.iter().flat_map(|n| n.to_le_bytes()).collect()
}

/// [`encode_counts`] read back; `None` for NULL or a damaged value.
pub fn decode_counts(value: rusqlite::types::ValueRef<'_>) -> Option<[u16; 8]> {
    let blob = value.as_blob().ok()?;
    (blob.len() == 16)
        .then(|| std::array::from_fn(|i| u16::from_le_bytes([blob[2 * i], blob[2 * i + 1]])))
}

/// A stored name list as a map; unknown (`None`) for NULL, a damaged blob or another
/// type, so a damaged summary widens queries instead of stopping the writer.
fn to_map(value: rusqlite::types::ValueRef<'_>) -> Option<NameBits> {
    let blob = value.as_blob().ok()?;
    decode_names(blob).map(|pairs| pairs.into_iter().collect())
}

/// Summaries of the blocks one transaction writes into (usually one or two).
#[derive(Default)]
pub struct Pending {
    blocks: Vec<(i64, Summary)>,
    /// Writing for schema version 2 (the migration to it), which has no `counts` and
    /// no `time_ranges`.
    version_2: bool,
    /// The rows keep ids given from elsewhere (archived rows loaded back), which may lie
    /// below the block's stored rows: the block is then not known to be in order.
    given_ids: bool,
}

impl Pending {
    pub fn with_given_ids(given_ids: bool) -> Pending {
        Pending {
            given_ids,
            ..Pending::default()
        }
    }

    pub fn add(&mut self, r: &RowFacts) {
        let block = r.id >> BLOCK_SHIFT;
        let i = match self.blocks.iter().rposition(|(b, _)| *b == block) {
            Some(i) => i,
            None => {
                self.blocks.push((block, Summary::empty()));
                self.blocks.len() - 1
            }
        };
        self.blocks[i].1.add(r);
    }

    /// Merges into the stored summaries, inside the transaction that wrote the rows:
    /// summaries and rows always commit together.
    pub fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for (block, mut summary) in self.blocks {
            if self.given_ids {
                summary.ranges.rising = false;
            }
            if let Some(stored) = read(tx, block, self.version_2)? {
                summary.merge(&stored);
            }
            if self.version_2 {
                summary.counts = None;
            }
            let mut stmt = tx.prepare_cached(if self.version_2 {
                "INSERT OR REPLACE INTO LogBlocks (block, min_time_us, max_time_us, \
                 severities, facilities, sources, hosts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            } else {
                "INSERT OR REPLACE INTO LogBlocks (block, min_time_us, max_time_us, \
                 severities, facilities, sources, hosts, counts, time_ranges) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            })?;
            let counts = summary.counts.as_ref().map(encode_counts);
            let ranges = summary.ranges.encode();
            let mut params: Vec<&dyn rusqlite::ToSql> = vec![
                &block,
                &summary.min_time_us,
                &summary.max_time_us,
                &summary.severities,
                &summary.facilities,
            ];
            let (sources, hosts) = (
                summary.sources.as_ref().map(encode_names),
                summary.hosts.as_ref().map(encode_names),
            );
            params.push(&sources);
            params.push(&hosts);
            if !self.version_2 {
                params.push(&counts);
                params.push(&ranges);
            }
            stmt.execute(params.as_slice())?;
        }
        Ok(())
    }
}

fn read(tx: &Transaction<'_>, block: i64, version_2: bool) -> rusqlite::Result<Option<Summary>> {
    tx.prepare_cached(if version_2 {
        "SELECT min_time_us, max_time_us, severities, facilities, sources, hosts, NULL, NULL \
         FROM LogBlocks WHERE block = ?1"
    } else {
        "SELECT min_time_us, max_time_us, severities, facilities, sources, hosts, counts, \
         time_ranges FROM LogBlocks WHERE block = ?1"
    })?
    .query_row([block], |r| {
        let (min_time_us, max_time_us) = (r.get(0)?, r.get(1)?);
        Ok(Summary {
            min_time_us,
            max_time_us,
            ranges: TimeRanges::decode(r.get_ref(7)?)
                .unwrap_or_else(|| TimeRanges::envelope(min_time_us, max_time_us)),
            severities: r.get::<_, i64>(2)? as u8,
            facilities: r.get::<_, i64>(3)? as u32,
            sources: to_map(r.get_ref(4)?),
            hosts: to_map(r.get_ref(5)?),
            counts: decode_counts(r.get_ref(6)?),
        })
    })
    .optional()
}

/// Migration step: counts the rows of each block summarised before counts existed.
pub fn backfill_counts(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut counts: HashMap<i64, [u16; 8]> = HashMap::new();
    let mut stmt = tx.prepare(&format!(
        "SELECT id >> {BLOCK_SHIFT}, severity, count(*) FROM Logs GROUP BY 1, 2"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let severity = r.get::<_, i64>(1)?.clamp(0, 7) as usize;
        let n = r.get::<_, i64>(2)?.clamp(0, i64::from(u16::MAX)) as u16;
        counts.entry(r.get(0)?).or_default()[severity] = n;
    }
    let mut update = tx.prepare("UPDATE LogBlocks SET counts = ?2 WHERE block = ?1")?;
    for (block, c) in counts {
        update.execute((block, encode_counts(&c)))?;
    }
    Ok(())
}

/// Migration step: each block's time ranges from its rows, read in id order (the rowid,
/// not the time index, which the same step drops) with memory for one block.
pub fn backfill_ranges(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut update = tx.prepare("UPDATE LogBlocks SET time_ranges = ?2 WHERE block = ?1")?;
    let mut stmt = tx.prepare("SELECT id, time_us FROM LogRows ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut current: Option<(i64, TimeRanges)> = None;
    while let Some(r) = rows.next()? {
        let (id, t): (i64, i64) = (r.get(0)?, r.get(1)?);
        let block = id >> BLOCK_SHIFT;
        match current.as_mut() {
            Some((b, ranges)) if *b == block => ranges.add(t),
            _ => {
                if let Some((b, ranges)) = current.take() {
                    update.execute((b, ranges.encode()))?;
                }
                let mut ranges = TimeRanges::default();
                ranges.add(t);
                current = Some((block, ranges));
            }
        }
    }
    if let Some((b, ranges)) = current {
        update.execute((b, ranges.encode()))?;
    }
    Ok(())
}

/// Migration step: summarises rows stored before summaries existed.
pub fn backfill(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut pending = Pending {
        version_2: true,
        ..Pending::default()
    };
    let mut stmt = tx.prepare(
        "SELECT id, time_us, severity, facility, source_id, host_id FROM Logs ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let facts = RowFacts {
            id: r.get(0)?,
            time_us: r.get(1)?,
            severity: r.get::<_, i64>(2)?.clamp(0, 7) as u8,
            facility: r.get::<_, Option<i64>>(3)?.map(|f| f.clamp(0, 255) as u8),
            source_id: r.get(4)?,
            host_id: r.get(5)?,
        };
        // Flush a block's summary once the scan has left it, keeping memory flat.
        if pending
            .blocks
            .last()
            .is_some_and(|(b, _)| *b != facts.id >> BLOCK_SHIFT)
        {
            let done = std::mem::replace(
                &mut pending,
                Pending {
                    version_2: true,
                    ..Pending::default()
                },
            );
            done.write(tx)?;
        }
        pending.add(&facts);
    }
    pending.write(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_damaged_blobs_are_unknown() {
        let map: NameBits = [(1, 0x08), (300, 0x40), (70_000, 0xff), (2, 1)]
            .into_iter()
            .collect();
        let blob = encode_names(&map);
        let back: NameBits = decode_names(&blob).unwrap().into_iter().collect();
        assert_eq!(back, map);
        assert_eq!(decode_names(&blob[..blob.len() - 1]), None);
        assert_eq!(decode_names(&[0xff; 12]), None);
        assert_eq!(decode_names(&[]), Some(vec![]));
    }

    #[test]
    fn a_damaged_summary_widens_instead_of_failing_the_writer() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::MIGRATION_1).unwrap();
        conn.execute_batch(super::super::MIGRATION_2).unwrap();
        conn.execute_batch(super::super::MIGRATION_3).unwrap();
        conn.execute_batch(super::super::MIGRATION_4).unwrap();
        conn.execute_batch(super::super::MIGRATION_5).unwrap();
        conn.execute_batch(super::super::MIGRATION_6).unwrap();
        conn.execute_batch(super::super::MIGRATION_7).unwrap();
        conn.execute_batch(
            "INSERT INTO LogBlocks VALUES (0, 5, 9, 8, 2, 'not a blob', x'ffffffff', x'00', x'01')",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let mut pending = Pending::default();
        pending.add(&RowFacts {
            id: 3,
            time_us: 7,
            severity: 6,
            facility: None,
            source_id: Some(1),
            host_id: Some(2),
        });
        pending.write(&tx).unwrap();
        let stored = read(&tx, 0, false).unwrap().unwrap();
        assert_eq!((stored.min_time_us, stored.max_time_us), (5, 9));
        assert_eq!(
            stored.ranges.as_slice(),
            [(5, 9)],
            "damaged ranges: the envelope"
        );
        assert_eq!(stored.severities, 8 | 64);
        assert_eq!((stored.sources, stored.hosts), (None, None), "unknown: any");
        assert_eq!(stored.counts, None, "a damaged count is unknown, not zero");
    }

    #[test]
    fn merge_keeps_every_fact_of_both() {
        let mut a = Summary::empty();
        a.add(&RowFacts {
            id: 1,
            time_us: 50,
            severity: 3,
            facility: Some(1),
            source_id: Some(7),
            host_id: None,
        });
        let mut b = Summary::empty();
        b.add(&RowFacts {
            id: 2,
            time_us: 10,
            severity: 6,
            facility: None,
            source_id: Some(7),
            host_id: Some(9),
        });
        a.merge(&b);
        assert_eq!((a.min_time_us, a.max_time_us), (10, 50));
        assert_eq!(a.severities, 0b0100_1000);
        assert_eq!(a.facilities, 0b10 | NO_FACILITY);
        assert_eq!(a.sources.as_ref().unwrap()[&7], 0b0100_1000);
        assert_eq!(a.hosts.as_ref().unwrap()[&9], 0b0100_0000);
        a.merge(&Summary::default());
        assert_eq!(a.hosts, None, "an unknown side makes the merge unknown");
    }

    fn check_cover(t: &TimeRanges, times: &[i64]) {
        let r = t.as_slice();
        assert!(r.len() <= MAX_RANGES && !r.is_empty());
        assert!(r.iter().all(|(a, b)| a <= b));
        assert!(
            r.windows(2).all(|w| w[0].1 < w[1].0),
            "sorted, disjoint: {r:?}"
        );
        for &x in times {
            assert!(t.meets(x, x), "{x} not covered by {r:?}");
        }
        assert_eq!(TimeRanges::decode(ValueRef::Blob(&t.encode())), Some(*t));
    }

    use rusqlite::types::ValueRef;

    #[test]
    fn far_away_rows_get_ranges_of_their_own() {
        const HOUR: i64 = 3_600_000_000;
        let now = 1_764_600_000_000_000i64;
        let mut t = TimeRanges::default();
        let mut times = Vec::new();
        for i in 0..4096i64 {
            // Live rows 50 ms apart; every 100th row from a log a year old (itself
            // rising), every 333rd with a clock a decade ahead.
            let x = match i {
                _ if i % 333 == 0 => now + 87_600 * HOUR + i,
                _ if i % 100 == 0 => now - 8_760 * HOUR + i * 1_000_000,
                _ => now + i * 50_000,
            };
            t.add(x);
            times.push(x);
        }
        check_cover(&t, &times);
        // The old log, the live rows and the future ones never share a range.
        assert!(
            t.as_slice().iter().all(|(a, b)| b - a < 2 * HOUR),
            "{:?}",
            t.as_slice()
        );
        assert!(
            !t.meets(now - 100 * HOUR, now - HOUR),
            "the gaps are left out"
        );
        // Rising times close together stay one range.
        let mut rising = TimeRanges::default();
        for i in 0..4096 {
            rising.add(now + i * 26);
        }
        assert_eq!(rising.as_slice(), [(now, now + 4095 * 26)]);
    }

    #[test]
    fn ranges_cover_any_times_and_merge_the_closest() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50 {
            let mut t = TimeRanges::default();
            let mut times = Vec::new();
            for _ in 0..300 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let x = match seed % 4 {
                    0 => seed as i64,
                    1 => (seed % 1_000_000_000_000) as i64,
                    _ => (seed % 1_000) as i64 * 1_000_000_000,
                };
                t.add(x);
                times.push(x);
            }
            check_cover(&t, &times);
        }
        let mut t = TimeRanges::default();
        for x in [
            0,
            1_000_000_000,
            3_000_000_000,
            10_000_000_000,
            10_500_000_000,
        ] {
            t.add_range(x, x);
        }
        assert_eq!(
            t.as_slice(),
            [
                (0, 0),
                (1_000_000_000, 1_000_000_000),
                (3_000_000_000, 3_000_000_000),
                (10_000_000_000, 10_500_000_000)
            ]
        );
        let mut other = TimeRanges::default();
        other.add_range(-5, 2_000_000_000);
        let mut merged = Summary::empty();
        merged.ranges = t;
        merged.merge(&Summary {
            ranges: other,
            ..Summary::default()
        });
        assert_eq!(merged.ranges.as_slice()[0], (-5, 2_000_000_000));
        assert_eq!(TimeRanges::decode(ValueRef::Blob(&[1; 18])), None);
        assert_eq!(
            TimeRanges::decode(ValueRef::Blob(&[2; 17])),
            None,
            "an unknown flag"
        );
        // The flag round-trips; without its byte (as schema 7 first wrote) a block is
        // not known to be in order.
        let mut rising = TimeRanges::default();
        for x in [1, 5, 5, 9] {
            rising.add(x);
        }
        assert!(rising.rising);
        let blob = rising.encode();
        assert_eq!(blob.len(), 17);
        assert!(TimeRanges::decode(ValueRef::Blob(&blob)).unwrap().rising);
        assert!(
            !TimeRanges::decode(ValueRef::Blob(&blob[..16]))
                .unwrap()
                .rising
        );
        rising.add(4);
        assert!(!rising.rising, "a time earlier than the one before");
        assert_eq!(rising.encode().len(), 16);
        let unsorted: Vec<u8> = [5i64, 9, 1, 2]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(TimeRanges::decode(ValueRef::Blob(&unsorted)), None);
        assert_eq!(TimeRanges::decode(ValueRef::Null), None);
    }
}
