//! Per-block token filters: for every complete block of 4,096 row ids, a Bloom filter
//! of the words ([`crate::store::words`]) of its messages, hostnames, sources and
//! structured-data values, so that a word search reads only the blocks that may hold
//! the word. A rare word over 10M rows reads a few dozen blocks instead of all of them.
//!
//! The layout is Parquet's split-block Bloom filter (SBBF): 256-bit blocks of eight
//! 32-bit words; a token sets one bit in each word of one block. Our own 80 lines rather
//! than a crate, for two things no maintained crate offers: the writer inserts every
//! token into a large working filter as it sees it and, once the block is complete,
//! *folds* it (ORs its halves, which a power-of-two size allows) to the smallest size
//! that keeps ≥ 16 bits per distinct token (false positives ≤ ~0.1 %); and readers
//! check a word by reading just its 32 bytes of the stored blob (incremental blob I/O),
//! not the whole filter. Token hashes are XXH3-64 of the lower-cased word: a fixed,
//! documented function, so filters written by one version are read by the next.
//!
//! Blocks are filtered only once complete (the writer has moved to a later block): a
//! block still filling has no row in `LogTokens` and is scanned, at most 4,095 rows.
//! The writer keeps the open block's filter in memory; when it did not see every row
//! of a block (a restart mid-block, a second writer, a rolled-back transaction) it
//! rebuilds the filter from the stored rows instead.

use super::blocks::{BLOCK_SHIFT, decode_names};
pub use crate::store::words::token_hash;
use crate::store::words::{Words, for_each_token_hash, for_each_word_hash};
use rusqlite::{Connection, OptionalExtension, Transaction};

/// The first byte of a stored filter: its format.
const FORMAT: u8 = 1;
/// The stored filter keeps at least this many bits per distinct token.
const BITS_PER_TOKEN: f64 = 16.0;
/// The working filter: 4,096 blocks of 256 bits (128 KiB), room for ~65k distinct
/// tokens at 16 bits each before folding; a block with more only gets less selective.
const WORKING_BLOCKS: usize = 1 << 12;

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
fn mask(h: u64) -> [u32; 8] {
    let key = (h >> 32) as u32;
    SALT.map(|s| 1u32 << (key.wrapping_mul(s) >> 27))
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

    pub fn insert(&mut self, h: u64) {
        let i = (h as usize) & (self.blocks.len() - 1);
        let m = mask(h);
        let b = &mut self.blocks[i];
        for j in 0..8 {
            b[j] |= m[j];
        }
    }

    #[cfg(test)]
    fn contains(&self, h: u64) -> bool {
        let i = (h as usize) & (self.blocks.len() - 1);
        block_has(&self.blocks[i], h)
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

    /// A copy folded to the smallest size that keeps [`BITS_PER_TOKEN`].
    fn folded(&self) -> Sbbf {
        let want = (self.estimated_tokens() * BITS_PER_TOKEN / 256.0).ceil() as usize;
        let target = want.max(1).next_power_of_two().min(self.blocks.len());
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

    fn insert_words(&mut self, text: &str, buf: &mut String) {
        for_each_word_hash(text, buf, &mut |h| self.insert(h));
    }

    pub fn to_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.blocks.len() * 32);
        out.push(FORMAT);
        for w in self.blocks.iter().flatten() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// A stored filter; `None` for another format or a damaged blob.
    #[cfg(test)]
    fn from_blob(blob: &[u8]) -> Option<Sbbf> {
        let n = blob_blocks(blob.len())?;
        if blob.first() != Some(&FORMAT) {
            return None;
        }
        let blocks = blob[1..]
            .chunks_exact(32)
            .map(|c| block_from_bytes(c.try_into().unwrap_or(&[0xff; 32])))
            .collect::<Vec<_>>();
        (blocks.len() == n).then_some(Sbbf { blocks })
    }
}

/// The number of 256-bit blocks in a blob of `len` bytes, if that is a valid size.
fn blob_blocks(len: usize) -> Option<usize> {
    let n = len.checked_sub(1)? / 32;
    (n > 0 && n.is_power_of_two() && len == 1 + n * 32).then_some(n)
}

fn block_from_bytes(b: &[u8; 32]) -> [u32; 8] {
    std::array::from_fn(|j| {
        u32::from_le_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]])
    })
}

fn block_has(b: &[u32; 8], h: u64) -> bool {
    let m = mask(h);
    (0..8).all(|j| b[j] & m[j] == m[j])
}

/// The words of a row that the filter indexes (hostname and source are added per
/// block from the dictionaries, see [`BlockTokens::write`]).
fn insert_row(f: &mut Sbbf, message: &str, structured_data: Option<&str>, buf: &mut String) {
    for_each_token_hash(message, structured_data, buf, &mut |h| f.insert(h));
}

/// How many row ids a block can hold (block 0 starts at id 1).
fn block_capacity(block: i64) -> u32 {
    if block == 0 {
        (1 << BLOCK_SHIFT) - 1
    } else {
        1 << BLOCK_SHIFT
    }
}

/// The writer's token filter of the block being filled, and the blocks completed in
/// the current transaction.
pub struct BlockTokens {
    block: Option<i64>,
    rows: u32,
    working: Sbbf,
    buf: String,
    /// Completed blocks: the folded filter when every row was seen, else `None`
    /// (rebuild from the stored rows).
    done: Vec<(i64, Option<Sbbf>)>,
}

impl Default for BlockTokens {
    fn default() -> Self {
        BlockTokens {
            block: None,
            rows: 0,
            working: Sbbf::new(WORKING_BLOCKS),
            buf: String::with_capacity(64),
            done: Vec::new(),
        }
    }
}

impl BlockTokens {
    /// Files a stored row's words under its block: `hashes` when the connection that
    /// parsed the row already hashed them (the usual case), else hashed here.
    pub fn add(
        &mut self,
        id: i64,
        message: &str,
        structured_data: Option<&str>,
        hashes: Option<&[u64]>,
    ) {
        let block = id >> BLOCK_SHIFT;
        if self.block != Some(block) {
            self.finish();
            self.block = Some(block);
        }
        self.rows += 1;
        match hashes {
            Some(hashes) => {
                for &h in hashes {
                    self.working.insert(h);
                }
            }
            None => insert_row(&mut self.working, message, structured_data, &mut self.buf),
        }
    }

    /// The open block is complete: a later id has been stored (ids only grow).
    fn finish(&mut self) {
        if let Some(block) = self.block.take() {
            let filter = (self.rows == block_capacity(block)).then(|| self.working.folded());
            self.done.push((block, filter));
            self.working.clear();
            self.rows = 0;
        }
    }

    /// Writes the filters of the blocks completed by this transaction, after the
    /// summaries (whose name lists they take the hostnames and sources from).
    pub fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for (block, filter) in std::mem::take(&mut self.done) {
            let filter = match filter {
                Some(mut f) => {
                    if add_names(tx, block, &mut f, &mut self.buf)? {
                        f
                    } else {
                        rebuild(tx, block)?
                    }
                }
                None => rebuild(tx, block)?,
            };
            store(tx, block, &filter)?;
        }
        Ok(())
    }

    /// After a rolled-back transaction: what was seen may not be stored; start over
    /// (the open block will be rebuilt from its rows when it completes).
    pub fn forget(&mut self) {
        self.block = None;
        self.rows = 0;
        self.working.clear();
        self.done.clear();
    }
}

fn store(tx: &Transaction<'_>, block: i64, filter: &Sbbf) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO LogTokens (block, filter) VALUES (?1, ?2)")?
        .execute((block, filter.to_blob()))?;
    Ok(())
}

/// Adds the words of the block's hostnames and sources, from its summary's name lists
/// and the dictionaries; `false` when the summary does not know them.
fn add_names(
    tx: &Transaction<'_>,
    block: i64,
    f: &mut Sbbf,
    buf: &mut String,
) -> rusqlite::Result<bool> {
    type Lists = (Option<Vec<u8>>, Option<Vec<u8>>);
    let lists: Option<Lists> = tx
        .prepare_cached("SELECT sources, hosts FROM LogBlocks WHERE block = ?1")?
        .query_row([block], |r| Ok((r.get(0).ok(), r.get(1).ok())))
        .optional()?;
    let Some((Some(sources), Some(hosts))) = lists else {
        return Ok(false);
    };
    for (blob, table) in [(sources, "Sources"), (hosts, "Hosts")] {
        let Some(pairs) = decode_names(&blob) else {
            return Ok(false);
        };
        let mut stmt = tx.prepare_cached(&format!("SELECT name FROM {table} WHERE id = ?1"))?;
        for (id, _) in pairs {
            if let Some(name) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                f.insert_words(&name, buf);
            }
        }
    }
    Ok(true)
}

/// A block's filter made from its stored rows.
fn rebuild(tx: &Transaction<'_>, block: i64) -> rusqlite::Result<Sbbf> {
    let mut f = Sbbf::new(WORKING_BLOCKS);
    let mut buf = String::new();
    let first = block << BLOCK_SHIFT;
    let mut stmt = tx.prepare_cached(
        "SELECT message, hostname, source, structured_data FROM Logs \
         WHERE id BETWEEN ?1 AND ?2",
    )?;
    let mut rows = stmt.query((first, first + (1 << BLOCK_SHIFT) - 1))?;
    while let Some(r) = rows.next()? {
        let text = |i| -> rusqlite::Result<Option<&str>> {
            Ok(r.get_ref(i)?.as_str_or_null().unwrap_or(None))
        };
        insert_row(&mut f, text(0)?.unwrap_or(""), text(3)?, &mut buf);
        for name in [text(1)?, text(2)?].into_iter().flatten() {
            f.insert_words(name, &mut buf);
        }
    }
    Ok(f.folded())
}

/// Migration step: filters for every complete block of a store written before token
/// filters existed (the last block is filtered once the writer moves past it).
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
    hashes: Vec<u64>,
}

impl Probe {
    /// `None` without words.
    pub fn new(words: &Words) -> Option<Probe> {
        let hashes: Vec<u64> = words.tokens().iter().map(|t| token_hash(t)).collect();
        (!hashes.is_empty()).then_some(Probe { hashes })
    }

    /// Of `blocks` (ascending), those that may hold every token: blocks without a
    /// filter (still filling, or a damaged filter) always may. Reads 32 bytes of a
    /// stored filter per token.
    pub fn admitted(&self, conn: &Connection, blocks: &[i64]) -> rusqlite::Result<Vec<i64>> {
        let (Some(&lo), Some(&hi)) = (blocks.first(), blocks.last()) else {
            return Ok(Vec::new());
        };
        let filtered: std::collections::HashSet<i64> = conn
            .prepare_cached("SELECT block FROM LogTokens WHERE block BETWEEN ?1 AND ?2")?
            .query_map([lo, hi], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(blocks.len());
        let mut blob: Option<rusqlite::blob::Blob<'_>> = None;
        let mut bytes = [0u8; 32];
        for &block in blocks {
            if !filtered.contains(&block) {
                out.push(block);
                continue;
            }
            let b = match blob.as_mut() {
                Some(b) => {
                    b.reopen(block)?;
                    b
                }
                None => blob.insert(conn.blob_open(
                    rusqlite::MAIN_DB,
                    c"LogTokens",
                    c"filter",
                    block,
                    true,
                )?),
            };
            let Some(n) = blob_blocks(b.len()) else {
                out.push(block); // damaged: may hold anything
                continue;
            };
            let mut head = [0u8; 1];
            b.read_at_exact(&mut head, 0)?;
            if head[0] != FORMAT {
                out.push(block);
                continue;
            }
            let mut all = true;
            for &h in &self.hashes {
                let at = 1 + 32 * ((h as usize) & (n - 1));
                b.read_at_exact(&mut bytes, at)?;
                if !block_has(&block_from_bytes(&bytes), h) {
                    all = false;
                    break;
                }
            }
            if all {
                out.push(block);
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

    #[test]
    fn folding_keeps_every_token_and_sizes_to_the_count() {
        let mut f = Sbbf::new(WORKING_BLOCKS);
        let tokens: Vec<u64> = (0..5_000).map(|i| token_hash(&format!("tok{i}"))).collect();
        for &h in &tokens {
            f.insert(h);
        }
        let est = f.estimated_tokens();
        assert!((4_700.0..5_300.0).contains(&est), "{est}");
        let small = f.folded();
        assert!(small.blocks.len() * 256 >= 5_000 * 16);
        assert!(small.blocks.len() * 256 < 5_000 * 32 * 2);
        assert!(tokens.iter().all(|&h| small.contains(h)));
        let absent = (0..100_000)
            .filter(|i| small.contains(token_hash(&format!("other{i}"))))
            .count();
        assert!(absent < 300, "false positives {absent} of 100000");
        let back = Sbbf::from_blob(&small.to_blob()).unwrap();
        assert_eq!(back, small);
        assert_eq!(Sbbf::from_blob(&small.to_blob()[1..]), None);
        assert_eq!(Sbbf::from_blob(&[]), None);
        let empty = Sbbf::new(WORKING_BLOCKS).folded();
        assert_eq!(empty.blocks.len(), 1);
    }
}
