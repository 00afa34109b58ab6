//! Per-block token filters: for every complete block of 4,096 row ids, Bloom filters of
//! the words ([`crate::store::words`]) of its messages, hostnames, sources and
//! structured-data values, one per **segment** of 256 ids, so that a word search reads
//! only the segments that may hold the word: a word in a few dozen rows of 10M reads a
//! few dozen segments (some thousand rows), not whole blocks.
//!
//! A segment's filter is Parquet's split-block Bloom filter (SBBF): 256-bit blocks of
//! eight 32-bit words; a token sets one bit in each word of one block, the block chosen
//! by the low bits of its hash. Our own code rather than a crate, for what no maintained
//! crate offers: the writer inserts every token into a large working filter of its
//! segment as it sees it and, once the block is complete, *folds* the 16 filters (ORs
//! halves, which a power-of-two size allows) to one size, the smallest that keeps ≥ 16
//! bits per distinct token in the fullest segment (false positives ≤ ~0.1 %); and the
//! stored layout puts what one token needs in one small row. A block's filters are
//! stored as 64 **slices** (`LogTokens.id` = block × 64 + slice): slice `s` holds SBBF
//! blocks `s, s + 64, s + 128, …` of every segment, the 16 segments' 32 bytes of each
//! side by side. A token's SBBF block is `hash & (size − 1)`, so its slice is `hash & 63`
//! whatever the size: a search reads one row per candidate block and token (one page,
//! where a whole-block blob took a walk along its overflow pages) and learns from 512
//! bytes which of the 16 segments may hold the token. Token hashes are XXH3-64 of the
//! lower-cased word: a fixed, documented function, so filters written by one version
//! are read by the next.
//!
//! Blocks are filtered only once complete (the writer has moved to a later block): a
//! block still filling, or complete but not yet filtered, has no rows in `LogTokens`
//! and is scanned, at most 4,096 rows. The open block's filters are kept in memory, on
//! the token filer's thread ([`super::token_filer`]); when it did not see every row of
//! a block (a restart mid-block, a second writer) the writer rebuilds them from the
//! stored rows instead.

use super::blocks::BLOCK_SHIFT;
use super::raw_select::RawSelect;
pub use crate::store::words::token_hash;
use crate::store::words::{Words, for_each_token_hash_in, for_each_word_hash};
use rusqlite::{Connection, OptionalExtension, Transaction};
use std::collections::HashMap;

/// The first byte of a stored slice: its format (1 was schema 4's whole-block blob).
const FORMAT: u8 = 2;
/// A segment is 256 consecutive ids of a block.
pub const SEGMENT_SHIFT: u32 = 8;
/// Segments per block: bit `n` of a segment mask is ids `block·4096 + n·256 …`.
pub const SEGMENTS: usize = 1 << (BLOCK_SHIFT - SEGMENT_SHIFT);
pub const ALL_SEGMENTS: u16 = u16::MAX;
const _: () = assert!(SEGMENTS == 16, "segment masks are u16");
/// A block's filters are stored in 64 rows; a token's bits are all in slice `hash & 63`.
/// 64 rather than 16: rows of ~1 KiB pack 7 to an 8 KiB page (31 to a 32 KiB one),
/// where 4 KiB rows (plus their headers) took a page each.
const SLICE_SHIFT: u32 = 6;
const SLICES: usize = 1 << SLICE_SHIFT;
/// The bytes of one SBBF block index across the 16 segments.
const STRIDE: usize = SEGMENTS * 32;
/// The fullest segment's filter keeps at least this many bits per distinct token.
const BITS_PER_TOKEN: f64 = 16.0;
/// The largest working filter of a segment: 1,024 blocks of 256 bits (32 KiB), room for
/// ~16k distinct tokens in 256 rows at 16 bits each before folding; a segment with more
/// only gets less selective.
const WORKING_BLOCKS: usize = 1 << 10;
/// The writer's working filters are twice the size the previous block needed (at least
/// this, at most [`WORKING_BLOCKS`]): typically 8 KiB a segment, which stays in the
/// cache between inserts where 32 KiB did not. A block is folded to the same size from
/// a smaller working filter as from a larger one (folding is ORing halves), so this
/// changes nothing stored unless a block has more than twice the words of the one
/// before; that block is stored at the working size (less selective), and the next
/// block's working filters take the largest size.
const MIN_WORKING_BLOCKS: usize = 4 * SLICES;

/// Parquet's SBBF salts.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// The eight bits (one per word) a hash sets in its block.
#[inline]
fn mask(h: u64) -> [u32; 8] {
    let key = (h >> 32) as u32;
    SALT.map(|s| 1u32 << (key.wrapping_mul(s) >> 27))
}

/// The segment of a row id within its block.
fn segment_of(id: i64) -> usize {
    (id >> SEGMENT_SHIFT) as usize & (SEGMENTS - 1)
}

/// Sets each hash's bits in `blocks` (a power-of-two count).
#[inline(always)]
fn insert_all(blocks: &mut [[u32; 8]], hashes: &[u64]) {
    let last = blocks.len() - 1;
    for &h in hashes {
        let m = mask(h);
        let b = &mut blocks[(h as usize) & last];
        for j in 0..8 {
            b[j] |= m[j];
        }
    }
}

/// [`insert_all`] compiled for AVX2, whose 8-lane multiply and per-lane shifts make
/// [`mask`] a few instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn insert_all_avx2(blocks: &mut [[u32; 8]], hashes: &[u64]) {
    insert_all(blocks, hashes)
}

/// A split-block Bloom filter whose block count is a power of two; a hash's block is
/// its low bits, so halving the size is ORing the two halves.
#[derive(Debug, Clone, PartialEq)]
pub struct Sbbf {
    blocks: Vec<[u32; 8]>,
}

impl Sbbf {
    fn new(blocks: usize) -> Sbbf {
        debug_assert!(blocks.is_power_of_two());
        Sbbf {
            blocks: vec![[0; 8]; blocks],
        }
    }

    #[inline]
    pub fn insert(&mut self, h: u64) {
        self.insert_all(&[h]);
    }

    /// Inserts each hash; one loop the compiler keeps tight, so that the filter's
    /// memory is fetched for several hashes at once. With AVX2 a hash's eight bits are
    /// one multiply, two shifts and an OR of 32 bytes; without it, eight of each.
    #[inline]
    fn insert_all(&mut self, hashes: &[u64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { insert_all_avx2(&mut self.blocks, hashes) };
            return;
        }
        insert_all(&mut self.blocks, hashes);
    }

    #[cfg(test)]
    fn contains(&self, h: u64) -> bool {
        let i = (h as usize) & (self.blocks.len() - 1);
        let m = mask(h);
        (0..8).all(|j| self.blocks[i][j] & m[j] == m[j])
    }

    fn clear(&mut self) {
        self.blocks.fill([0; 8]);
    }

    /// How many distinct tokens went in, estimated from the share of set bits (each
    /// token sets one of `32 × blocks` bits in each word position).
    fn estimated_tokens(&self) -> f64 {
        let ones: u64 = self
            .blocks
            .iter()
            .flatten()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let bits = (self.blocks.len() * 256) as f64;
        let fill = (ones as f64 / bits).min(1.0 - 1e-9);
        -(1.0 - fill).ln() * bits / 8.0
    }

    /// The smallest power-of-two size that keeps [`BITS_PER_TOKEN`].
    fn wanted_blocks(&self) -> usize {
        ((self.estimated_tokens() * BITS_PER_TOKEN / 256.0).ceil() as usize)
            .max(1)
            .next_power_of_two()
    }

    /// A copy folded to `target` blocks (a power of two, at most the current size).
    fn folded_to(&self, target: usize) -> Sbbf {
        let target = target.min(self.blocks.len());
        let mut blocks = self.blocks[..target].to_vec();
        for chunk in self.blocks[target..].chunks(target) {
            for (b, o) in blocks.iter_mut().zip(chunk) {
                for j in 0..8 {
                    b[j] |= o[j];
                }
            }
        }
        Sbbf { blocks }
    }
}

/// A complete block's filters: one SBBF per segment, all of one size (≥ 64 blocks, so
/// that each slice holds at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockFilter {
    segments: Vec<Sbbf>,
}

impl BlockFilter {
    /// The working filters folded to the size the fullest segment needs, and that size
    /// (which may be more than they have).
    fn fold(working: &[Sbbf]) -> (BlockFilter, usize) {
        let wanted = working.iter().map(Sbbf::wanted_blocks).max().unwrap_or(1);
        let size = wanted.clamp(SLICES, WORKING_BLOCKS);
        let filter = BlockFilter {
            segments: working.iter().map(|w| w.folded_to(size)).collect(),
        };
        (filter, wanted)
    }

    /// Adds a token to the segments of `segments` (a mask).
    fn insert(&mut self, segments: u16, h: u64) {
        for (i, s) in self.segments.iter_mut().enumerate() {
            if segments & (1 << i) != 0 {
                s.insert(h);
            }
        }
    }

    /// Slice `s` as stored: the format byte, then for SBBF blocks `s, s + 64, …` the 16
    /// segments' 32 bytes each.
    fn slice(&self, s: usize) -> Vec<u8> {
        let per_slice = self.segments.first().map_or(0, |f| f.blocks.len()) / SLICES;
        let mut out = Vec::with_capacity(1 + per_slice * STRIDE);
        out.push(FORMAT);
        for j in 0..per_slice {
            for seg in &self.segments {
                for w in seg.blocks[s + SLICES * j] {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
        out
    }
}

/// Of a stored slice, the segments whose filter may hold every hash (all of the slice's
/// tokens); `None` for a damaged slice or another format (unknown: may hold anything).
fn slice_segments(blob: &[u8], hashes: &[u64]) -> Option<u16> {
    let (&format, body) = blob.split_first()?;
    let per_slice = body.len() / STRIDE;
    if format != FORMAT || !per_slice.is_power_of_two() || body.len() != per_slice * STRIDE {
        return None;
    }
    let mut segments = ALL_SEGMENTS;
    for &h in hashes {
        let j = (h >> SLICE_SHIFT) as usize & (per_slice - 1);
        let m = mask(h);
        let mut have = 0u16;
        for (seg, b) in body[j * STRIDE..(j + 1) * STRIDE]
            .chunks_exact(32)
            .enumerate()
        {
            let all = (0..8).all(|w| {
                let v = u32::from_le_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]]);
                v & m[w] == m[w]
            });
            have |= u16::from(all) << seg;
        }
        segments &= have;
    }
    Some(segments)
}

/// How many row ids a block can hold (block 0 starts at id 1).
fn block_capacity(block: i64) -> u32 {
    if block == 0 {
        (1 << BLOCK_SHIFT) - 1
    } else {
        1 << BLOCK_SHIFT
    }
}

/// Names below this id are tracked in a vector indexed by id (dictionary ids are small
/// and dense), others in a map.
const DENSE_IDS: usize = 1 << 16;

/// Which segments of the open block hold each host (or source) id: the names' words
/// go into those segments' filters when the block completes, once per name.
#[derive(Default)]
struct NameSegments {
    dense: Vec<u16>,
    sparse: HashMap<i64, u16>,
    seen: Vec<i64>,
}

impl NameSegments {
    fn add(&mut self, id: i64, bit: u16) {
        let m = match usize::try_from(id) {
            Ok(i) if i < DENSE_IDS => {
                if self.dense.len() <= i {
                    self.dense.resize(i + 1, 0);
                }
                &mut self.dense[i]
            }
            _ => self.sparse.entry(id).or_default(),
        };
        if *m == 0 {
            self.seen.push(id);
        }
        *m |= bit;
    }

    /// The ids met with their segments; starts over.
    fn take(&mut self) -> Vec<(i64, u16)> {
        let mut out = Vec::with_capacity(self.seen.len());
        for id in self.seen.drain(..) {
            let m = match usize::try_from(id) {
                Ok(i) if i < DENSE_IDS => self.dense.get_mut(i).map(std::mem::take),
                _ => self.sparse.remove(&id),
            };
            out.push((id, m.unwrap_or(ALL_SEGMENTS)));
        }
        out
    }
}

/// A completed block: its filters and name ids when every row was seen, else `None`
/// (rebuild from the stored rows).
pub type Completed = (i64, Option<(BlockFilter, [Vec<(i64, u16)>; 2])>);

/// The token filters of the block being filled, and the blocks completed since they
/// were last taken.
pub struct BlockTokens {
    block: Option<i64>,
    rows: u32,
    /// One working filter per segment, all of one size.
    working: Vec<Sbbf>,
    /// Host and source ids of the open block's rows.
    names: [NameSegments; 2],
    done: Vec<Completed>,
}

impl Default for BlockTokens {
    fn default() -> Self {
        BlockTokens {
            block: None,
            rows: 0,
            working: vec![Sbbf::new(WORKING_BLOCKS); SEGMENTS],
            names: Default::default(),
            done: Vec::new(),
        }
    }
}

/// A stored row's word hashes and names, as they are filed under its block.
pub struct RowWords<'a> {
    pub id: i64,
    pub hashes: &'a [u64],
    pub host_id: Option<i64>,
    pub source_id: Option<i64>,
}

impl BlockTokens {
    /// Files a stored row's words under its block and segment.
    pub fn add(&mut self, r: &RowWords<'_>) {
        let block = r.id >> BLOCK_SHIFT;
        if self.block != Some(block) {
            self.finish();
            self.block = Some(block);
        }
        self.rows += 1;
        let segment = segment_of(r.id);
        let f = &mut self.working[segment];
        f.insert_all(r.hashes);
        for (names, id) in self.names.iter_mut().zip([r.host_id, r.source_id]) {
            if let Some(id) = id {
                names.add(id, 1 << segment);
            }
        }
    }

    /// The open block is complete: a later id has been stored (ids only grow).
    fn finish(&mut self) {
        if let Some(block) = self.block.take() {
            let names = [self.names[0].take(), self.names[1].take()];
            let (filter, wanted) = BlockFilter::fold(&self.working);
            let filter = (self.rows == block_capacity(block)).then_some((filter, names));
            self.done.push((block, filter));
            self.resize_working(wanted);
            self.rows = 0;
        }
    }

    /// Empties the working filters, sized for a block that needs about as many blocks as
    /// `wanted` (see [`MIN_WORKING_BLOCKS`]).
    fn resize_working(&mut self, wanted: usize) {
        let working = self
            .working
            .first()
            .map_or(WORKING_BLOCKS, |w| w.blocks.len());
        let size = if wanted > working {
            WORKING_BLOCKS
        } else {
            (2 * wanted).clamp(MIN_WORKING_BLOCKS, WORKING_BLOCKS)
        };
        if size == working {
            self.working.iter_mut().for_each(Sbbf::clear);
        } else {
            self.working = vec![Sbbf::new(size); SEGMENTS];
        }
    }

    /// The blocks completed since the last call.
    pub fn take_completed(&mut self) -> Vec<Completed> {
        std::mem::take(&mut self.done)
    }
}

/// Writes the filters of completed blocks (the caller keeps them until the
/// transaction commits, so a rolled-back one can write them again).
pub fn write_completed(
    tx: &Transaction<'_>,
    done: &[Completed],
    buf: &mut String,
) -> rusqlite::Result<()> {
    for (block, filter) in done {
        let filter = match filter {
            Some((f, [hosts, sources])) => {
                let mut f = f.clone();
                add_names(tx, &mut f, "Hosts", hosts, buf)?;
                add_names(tx, &mut f, "Sources", sources, buf)?;
                f
            }
            None => rebuild(tx, *block)?,
        };
        store(tx, *block, &filter)?;
    }
    Ok(())
}

/// Stores a block's filters, unless the block is gone (retention removed it while its
/// filters were being made).
fn store(tx: &Transaction<'_>, block: i64, filter: &BlockFilter) -> rusqlite::Result<()> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM LogBlocks WHERE block = ?1")?
        .exists([block])?;
    if !exists {
        return Ok(());
    }
    let mut stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO LogTokens (id, filter) VALUES (?1, ?2)")?;
    for s in 0..SLICES {
        stmt.execute((block << SLICE_SHIFT | s as i64, filter.slice(s)))?;
    }
    Ok(())
}

/// Adds the words of the names (dictionary ids of `table`) to their segments.
fn add_names(
    conn: &Connection,
    f: &mut BlockFilter,
    table: &str,
    ids: &[(i64, u16)],
    buf: &mut String,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&format!("SELECT name FROM {table} WHERE id = ?1"))?;
    for &(id, segments) in ids {
        if let Some(name) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
            for_each_word_hash(&name, buf, &mut |h| f.insert(segments, h));
        }
    }
    Ok(())
}

/// A block's stored rows as its filters need them: each row's segment and text, the
/// host and source ids with the segments they occur in. Read apart from the hashing so
/// that a reader holds its snapshot (which keeps the WAL from starting over) only for
/// the read.
#[derive(Default)]
struct StoredBlock {
    /// Per row: its segment and the lengths of its message and structured data
    /// (`u32::MAX`: none), whose texts follow each other in `text`.
    rows: Vec<(usize, u32, u32)>,
    text: String,
    /// Host and source ids and their segments.
    names: [Vec<(i64, u16)>; 2],
}

/// Reads a block's stored rows for [`StoredBlock::filter`], through SQLite's C API
/// ([`RawSelect`]): rusqlite's checked reads (type, then value, then length, each
/// through its row and statement wrappers) were ~12 % of a read-back's CPU. A text that
/// is not valid UTF-8, or a value of another type, has no words (as rusqlite's
/// `as_str_or_null` read it); a name id is taken as the `Logs` view joins it (an
/// integer, or a real cut to one; anything else: no name).
fn read_block(conn: &Connection, block: i64) -> rusqlite::Result<StoredBlock> {
    let mut out = StoredBlock::default();
    let mut names: [NameSegments; 2] = Default::default();
    let first = block << BLOCK_SHIFT;
    let mut select = RawSelect::prepare(
        conn,
        "SELECT id, message, structured_data, host_id, source_id FROM LogRows \
         WHERE id BETWEEN ?1 AND ?2",
    )?;
    select.bind_int(1, first)?;
    select.bind_int(2, first + (1 << BLOCK_SHIFT) - 1)?;
    while let Some(r) = select.next()? {
        let Some(id) = r.int(0) else {
            continue;
        };
        let segment = segment_of(id);
        let mut push = |i| match r.text(i).map(std::str::from_utf8) {
            Some(Ok(t)) => {
                out.text.push_str(t);
                t.len() as u32
            }
            _ => u32::MAX,
        };
        let message = push(1);
        let sd = push(2);
        out.rows.push((segment, message, sd));
        for (n, i) in names.iter_mut().zip([3, 4]) {
            if let Some(id) = r.int(i) {
                n.add(id, 1 << segment);
            }
        }
    }
    out.names = [names[0].take(), names[1].take()];
    Ok(out)
}

impl StoredBlock {
    /// The block's filters: each row's words in its segment, each name's words once in
    /// the segments it occurs in, as filing makes them (names looked up one short read
    /// at a time).
    fn filter(&self, conn: &Connection) -> rusqlite::Result<BlockFilter> {
        let mut buf = String::new();
        let mut hashes = Vec::with_capacity(64);
        // Working filters of the size the filer's usually are (they stay in the cache,
        // where full-size ones took a miss an insert), full-size only for a block
        // whose words do not fit: folding makes the same filters from either.
        let mut size = MIN_WORKING_BLOCKS;
        let mut filter = loop {
            let mut working = vec![Sbbf::new(size); SEGMENTS];
            self.hash_rows(&mut working, &mut buf, &mut hashes);
            let (filter, wanted) = BlockFilter::fold(&working);
            if wanted <= size || size == WORKING_BLOCKS {
                break filter;
            }
            size = WORKING_BLOCKS;
        };
        let [hosts, sources] = &self.names;
        add_names(conn, &mut filter, "Hosts", hosts, &mut buf)?;
        add_names(conn, &mut filter, "Sources", sources, &mut buf)?;
        Ok(filter)
    }

    /// Inserts each row's words into its segment's working filter, a row's at once.
    fn hash_rows(&self, working: &mut [Sbbf], buf: &mut String, hashes: &mut Vec<u64>) {
        let mut at = 0;
        let mut next = |len: u32| {
            (len != u32::MAX).then(|| {
                let range = at..at + len as usize;
                at = range.end;
                range
            })
        };
        for &(segment, message, sd) in &self.rows {
            let (message, sd) = (next(message), next(sd));
            hashes.clear();
            let message = message.unwrap_or_default();
            for_each_token_hash_in(&self.text, message, sd, buf, &mut |h| hashes.push(h));
            working[segment].insert_all(hashes);
        }
    }
}

/// A block's filters made from its stored rows (hostnames and sources included): as the
/// filer makes them, from `LogRows` with each name's words added once per block. The
/// rows' read ends before their words are hashed.
pub fn rebuild(conn: &Connection, block: i64) -> rusqlite::Result<BlockFilter> {
    read_block(conn, block)?.filter(conn)
}

/// Complete blocks (all but the newest) that have no filters, newest first: blocks the
/// filer did not see whole before the relay stopped, or skipped while it was busy.
pub fn blocks_without_filters(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare(
        "SELECT block FROM LogBlocks AS b
        WHERE block < (SELECT max(block) FROM LogBlocks)
            AND NOT EXISTS (SELECT 1 FROM LogTokens WHERE id = b.block * 64)
        ORDER BY block DESC",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

/// Migration step: filters for every complete block (the last block is filtered once
/// the writer moves past it).
pub fn backfill(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let last: Option<i64> = tx.query_row("SELECT max(id) FROM Logs", [], |r| r.get(0))?;
    let Some(last_block) = last.map(|id| id >> BLOCK_SHIFT) else {
        return Ok(());
    };
    let blocks: Vec<i64> = tx
        .prepare("SELECT block FROM LogBlocks WHERE block < ?1 ORDER BY block")?
        .query_map([last_block], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for block in blocks {
        let f = rebuild(tx, block)?;
        store(tx, block, &f)?;
    }
    Ok(())
}

/// What a word search looks for in the stored filters.
pub struct Probe {
    /// The tokens' hashes by the slice that holds their bits.
    slices: Vec<(i64, Vec<u64>)>,
}

impl Probe {
    /// `None` without words.
    pub fn new(words: &Words) -> Option<Probe> {
        let mut slices: Vec<(i64, Vec<u64>)> = Vec::new();
        for t in words.tokens() {
            let h = token_hash(&t);
            let s = (h & (SLICES as u64 - 1)) as i64;
            match slices.iter_mut().find(|(x, _)| *x == s) {
                Some((_, hashes)) => hashes.push(h),
                None => slices.push((s, vec![h])),
            }
        }
        (!slices.is_empty()).then_some(Probe { slices })
    }

    /// Of `blocks`, those that may hold every token, each with the mask of its
    /// segments that may. A block without filters (still filling) or with a damaged
    /// slice may hold anything. Reads one row (a slice) per block and token slice.
    pub fn admitted(&self, conn: &Connection, blocks: &[i64]) -> rusqlite::Result<Vec<(i64, u16)>> {
        let mut stmt = conn.prepare_cached("SELECT filter FROM LogTokens WHERE id = ?1")?;
        let mut out = Vec::with_capacity(blocks.len());
        for &block in blocks {
            let mut segments = ALL_SEGMENTS;
            for (slice, hashes) in &self.slices {
                let found = stmt
                    .query_row([block << SLICE_SHIFT | slice], |r| {
                        Ok(r.get_ref(0)?
                            .as_blob()
                            .ok()
                            .and_then(|b| slice_segments(b, hashes)))
                    })
                    .optional()?;
                if let Some(Some(m)) = found {
                    segments &= m;
                }
                if segments == 0 {
                    break;
                }
            }
            if segments != 0 {
                out.push((block, segments));
            }
        }
        Ok(out)
    }
}

/// The SQL function `logq_words(WORDS, message, hostname, source, structured_data)`:
/// whether every NUL-separated word occurs whole (see [`Words::matches`]). The words
/// are parsed once per statement (SQLite keeps them as auxiliary data).
pub fn register_function(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let buf = std::cell::RefCell::new(String::new());
    conn.create_scalar_function(
        "logq_words",
        5,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let words = ctx.get_or_create_aux(0, |v| -> rusqlite::Result<Words> {
                Ok(Words::from_param(v.as_str().unwrap_or("")))
            })?;
            let text = |i| -> rusqlite::Result<Option<&str>> {
                Ok(ctx.get_raw(i).as_str_or_null().unwrap_or(None))
            };
            Ok(words.matches(
                text(1)?.unwrap_or(""),
                text(2)?,
                text(3)?,
                text(4)?,
                &mut buf.borrow_mut(),
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of the inserts sets the same bits as the portable one.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_inserts_set_the_portable_bits() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let hashes: Vec<u64> = (0..5_000).map(|i| token_hash(&format!("w{i}"))).collect();
        let mut portable = vec![[0u32; 8]; 256];
        insert_all(&mut portable, &hashes);
        let mut avx2 = vec![[0u32; 8]; 256];
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { insert_all_avx2(&mut avx2, &hashes) };
        assert_eq!(avx2, portable);
        let f = Sbbf { blocks: avx2 };
        assert!(hashes.iter().all(|&h| f.contains(h)));
    }

    #[test]
    fn folding_keeps_every_token_and_sizes_to_the_count() {
        let mut f = Sbbf::new(WORKING_BLOCKS);
        let tokens: Vec<u64> = (0..2_000).map(|i| token_hash(&format!("tok{i}"))).collect();
        for &h in &tokens {
            f.insert(h);
        }
        let est = f.estimated_tokens();
        assert!((1_850.0..2_150.0).contains(&est), "{est}");
        let small = f.folded_to(f.wanted_blocks());
        assert!(small.blocks.len() * 256 >= 2_000 * 16);
        assert!(small.blocks.len() * 256 < 2_000 * 32 * 2);
        assert!(tokens.iter().all(|&h| small.contains(h)));
        let absent = (0..100_000)
            .filter(|i| small.contains(token_hash(&format!("other{i}"))))
            .count();
        assert!(absent < 300, "false positives {absent} of 100000");
        assert_eq!(Sbbf::new(WORKING_BLOCKS).wanted_blocks(), 1);
    }

    /// Each token is found in exactly the segments it went into (and, by chance, in
    /// few others), through the stored slices.
    #[test]
    fn slices_tell_which_segments_hold_a_token() {
        let mut working = vec![Sbbf::new(WORKING_BLOCKS); SEGMENTS];
        // Segment s holds tokens "w{s}-{i}"; "common" is in segments 3 and 12.
        for (s, f) in working.iter_mut().enumerate() {
            for i in 0..600 {
                f.insert(token_hash(&format!("w{s}-{i}")));
            }
        }
        working[3].insert(token_hash("common"));
        working[12].insert(token_hash("common"));
        let (filter, _) = BlockFilter::fold(&working);
        let size = filter.segments[0].blocks.len();
        assert!(size * 256 >= 601 * 16 && size.is_power_of_two(), "{size}");
        let slices: Vec<Vec<u8>> = (0..SLICES).map(|s| filter.slice(s)).collect();
        let segments = |word: &str| {
            let h = token_hash(word);
            slice_segments(&slices[(h as usize) & (SLICES - 1)], &[h]).unwrap()
        };
        assert_eq!(segments("common"), (1 << 3) | (1 << 12));
        let mut stray = 0;
        for s in 0..SEGMENTS {
            for i in 0..600 {
                let m = segments(&format!("w{s}-{i}"));
                assert!(m & (1 << s) != 0);
                stray += (m & !(1 << s)).count_ones();
            }
        }
        assert!(stray < 600 * 16 * 15 / 300, "{stray} stray segments");
        let absent = (0..20_000)
            .map(|i| segments(&format!("absent{i}")).count_ones())
            .sum::<u32>();
        assert!(absent < 20_000 * 16 / 300, "false positives {absent}");
        // Damaged or foreign slices are unknown.
        assert_eq!(slice_segments(&slices[0][1..], &[1]), None);
        assert_eq!(slice_segments(&[FORMAT], &[1]), None);
        assert_eq!(slice_segments(&[1, 0, 0], &[1]), None);
        let mut old = slices[0].clone();
        old[0] = 1;
        assert_eq!(slice_segments(&old, &[1]), None);
    }

    /// The writer's working filters shrink to what the blocks need and store exactly
    /// what full-size ones would; a block with many more words than the one before
    /// keeps every word and makes the next working filters full-size again.
    #[test]
    fn smaller_working_filters_store_the_same_filters() {
        let words = |block: i64, per_row: usize| {
            move |id: i64| -> Vec<u64> {
                (0..per_row)
                    .map(|w| token_hash(&format!("b{block}-r{}-w{w}", id % 300)))
                    .collect()
            }
        };
        let mut t = BlockTokens::default();
        let reference = |hashes: &dyn Fn(i64) -> Vec<u64>, block: i64| {
            let mut working = vec![Sbbf::new(WORKING_BLOCKS); SEGMENTS];
            for id in block << BLOCK_SHIFT..(block + 1) << BLOCK_SHIFT {
                for h in hashes(id) {
                    working[segment_of(id)].insert(h);
                }
            }
            BlockFilter::fold(&working).0
        };
        let fill = |t: &mut BlockTokens, hashes: &dyn Fn(i64) -> Vec<u64>, block: i64| {
            for id in block << BLOCK_SHIFT..(block + 1) << BLOCK_SHIFT {
                let h = hashes(id);
                t.add(&RowWords {
                    id,
                    hashes: &h,
                    host_id: None,
                    source_id: None,
                });
            }
        };
        // Blocks 1–3: ~1,200 distinct words a segment (64 SBBF blocks each); block 4:
        // ~6,000 (512).
        for block in 1..=3 {
            fill(&mut t, &words(block, 4), block);
        }
        assert_eq!(t.working[0].blocks.len(), MIN_WORKING_BLOCKS);
        fill(&mut t, &words(4, 20), 4);
        fill(&mut t, &words(5, 4), 5);
        assert_eq!(t.working[0].blocks.len(), WORKING_BLOCKS);
        t.finish();
        assert_eq!(t.working[0].blocks.len(), MIN_WORKING_BLOCKS);
        let done: Vec<_> = t.done.drain(..).collect();
        assert_eq!(done.len(), 5);
        for (block, filter) in done {
            let (got, _) = filter.expect("every row seen");
            let per_row = if block == 4 { 20 } else { 4 };
            let want = reference(&words(block, per_row), block);
            if block == 4 {
                // Stored at the working size (256 SBBF blocks, ~13 bits a word) where
                // 512 were wanted, holding every word.
                assert_eq!(want.segments[0].blocks.len(), 512);
                assert_eq!(got.segments[0].blocks.len(), 2 * 64 * 2);
                for id in 4 << BLOCK_SHIFT..5 << BLOCK_SHIFT {
                    for h in words(4, 20)(id) {
                        assert!(got.segments[segment_of(id)].contains(h));
                    }
                }
            } else {
                assert_eq!(got, want, "block {block}");
            }
        }
    }

    /// The rows of a block as rusqlite's checked reads made them (the read before the
    /// C API one; name ids as the `Logs` view joins them).
    fn read_block_checked(conn: &Connection, block: i64) -> rusqlite::Result<StoredBlock> {
        let mut out = StoredBlock::default();
        let mut names: [NameSegments; 2] = Default::default();
        let first = block << BLOCK_SHIFT;
        let mut stmt = conn.prepare(
            "SELECT id, message, structured_data, host_id, source_id FROM LogRows \
             WHERE id BETWEEN ?1 AND ?2",
        )?;
        let mut rows = stmt.query((first, first + (1 << BLOCK_SHIFT) - 1))?;
        while let Some(r) = rows.next()? {
            let segment = segment_of(r.get(0)?);
            let mut push = |i| -> rusqlite::Result<u32> {
                Ok(match r.get_ref(i)?.as_str_or_null().unwrap_or(None) {
                    Some(t) => {
                        out.text.push_str(t);
                        t.len() as u32
                    }
                    None => u32::MAX,
                })
            };
            let message = push(1)?;
            let sd = push(2)?;
            out.rows.push((segment, message, sd));
            for (n, i) in names.iter_mut().zip([3, 4]) {
                let id = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Integer(id) => Some(id),
                    rusqlite::types::ValueRef::Real(x) => Some(x as i64),
                    _ => None,
                };
                if let Some(id) = id {
                    n.add(id, 1 << segment);
                }
            }
        }
        out.names = [names[0].take(), names[1].take()];
        Ok(out)
    }

    /// The C API read gives what rusqlite's checked reads gave, for texts of every kind
    /// (empty, multi-byte, not UTF-8), values of other types where text is read, and
    /// name ids that are reals or not numbers.
    #[test]
    fn raw_block_reads_match_checked_reads() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE LogRows (id INTEGER PRIMARY KEY, message, structured_data,
                host_id, source_id);
            INSERT INTO LogRows VALUES
                (4096, 'plain text', NULL, 1, 2),
                (4097, '', '{\"a\":{\"b\":\"c\"}}', NULL, 70000),
                (4400, 'Grüße 日本', CAST(x'ff41' AS TEXT), 3, NULL),
                (4401, CAST(x'c328' AS TEXT), x'0102', 1, 2),
                (4402, 17, 2.5, NULL, NULL),
                (5000, x'41', 'sd', 9, 9),
                (8191, 'last of block 1', NULL, 1, 1),
                (8192, 'block 2', NULL, 1, 1),
                (20000, 'bad name', NULL, 'x', 2.0),
                (20001, 'real name', NULL, 3.7, x'00');",
        )
        .unwrap();
        for block in [0, 1, 2, 3, 4] {
            let raw = read_block(&conn, block).unwrap();
            let checked = read_block_checked(&conn, block).unwrap();
            assert_eq!(raw.rows, checked.rows, "block {block}");
            assert_eq!(raw.text, checked.text, "block {block}");
            assert_eq!(raw.names, checked.names, "block {block}");
        }
        let one = read_block(&conn, 1).unwrap();
        assert_eq!(one.rows.len(), 7);
        assert_eq!(
            one.text,
            "plain text{\"a\":{\"b\":\"c\"}}Grüße 日本sdlast of block 1"
        );
        // Hosts 'x' and 3.7, sources 2.0 and a blob (segment 14 of block 4).
        let four = read_block(&conn, 4).unwrap();
        assert_eq!(four.names, [vec![(3, 1 << 14)], vec![(2, 1 << 14)]]);
    }

    #[test]
    fn name_segments_collect_each_id_once() {
        let mut n = NameSegments::default();
        n.add(5, 1);
        n.add(5, 4);
        n.add(1 << 40, 2);
        n.add(7, 8);
        let mut got = n.take();
        got.sort_unstable();
        assert_eq!(got, vec![(5, 5), (7, 8), (1 << 40, 2)]);
        assert!(n.take().is_empty());
        n.add(5, 2);
        assert_eq!(n.take(), vec![(5, 2)]);
    }
}
