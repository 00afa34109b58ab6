//! Block summaries read newest first, as a time-ordered merge reaches them: through the
//! index on `LogBlocks.max_time_us` (schema 8), a page at a time, so `logq -n 100` reads
//! the summaries of the few blocks that can hold its rows instead of every summary (a
//! 10M-row store has ~2,400). A block's units (its time ranges) end no later than the
//! block, so a unit can go to the merge once no summary still unread ends later.

use super::query::{Block, Prune, SUMMARY, Units, block_units};
use crate::store::StoreError;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Summaries in the first page (`-n 100` on a store in time order needs one or two);
/// each further page is four times the one before, up to [`MAX_PAGE`].
const FIRST_PAGE: i64 = 4;
const MAX_PAGE: i64 = 1024;

pub(super) struct NewestFirst<'c, 'p> {
    conn: &'c Connection,
    prune: &'p Prune,
    /// Candidate blocks read, not yet split into units, latest end first.
    blocks: VecDeque<Block>,
    /// `(max_time_us, block)` of the last summary read: the next page starts below it.
    last: (i64, i64),
    /// Every summary has been read.
    done: bool,
    page: i64,
    /// Units of the blocks split so far, latest end on top.
    units: BinaryHeap<ByEnd>,
    scratch: Vec<Block>,
}

impl<'c, 'p> NewestFirst<'c, 'p> {
    pub fn new(conn: &'c Connection, prune: &'p Prune) -> Self {
        NewestFirst {
            conn,
            prune,
            blocks: VecDeque::new(),
            last: (i64::MAX, i64::MAX),
            done: false,
            page: FIRST_PAGE,
            units: BinaryHeap::new(),
            scratch: Vec::new(),
        }
    }

    /// The next page of summaries, latest `max_time_us` first (ties: higher block first).
    fn read_page(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY} FROM LogBlocks INDEXED BY LogBlocks_max_time \
             WHERE max_time_us BETWEEN ?3 AND ?5 AND (max_time_us < ?5 OR block < ?6) \
             AND block BETWEEN ?1 AND ?2 AND min_time_us <= ?4 \
             ORDER BY max_time_us DESC, block DESC LIMIT ?7"
        ))?;
        let (first, last) = self.prune.block_span();
        let (max, block) = self.last;
        let mut rows = stmt.query([
            first,
            last,
            self.prune.since,
            self.prune.until,
            max,
            block,
            self.page,
        ])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            n += 1;
            self.last = (r.get(2)?, r.get(0)?);
            self.blocks.extend(self.prune.block(r)?);
        }
        self.done = n < self.page;
        self.page = (self.page * 4).min(MAX_PAGE);
        Ok(())
    }
}

impl Units for NewestFirst<'_, '_> {
    fn peek(&mut self) -> Result<Option<&Block>, StoreError> {
        loop {
            // The latest end any unit not yet split can have.
            let bound = match self.blocks.front() {
                Some(b) => Some(b.max_time_us),
                None if self.done => None,
                None => Some(self.last.0),
            };
            let ready = self
                .units
                .peek()
                .is_some_and(|u| bound.is_none_or(|m| u.0.max_time_us >= m));
            if ready {
                return Ok(self.units.peek().map(|u| &u.0));
            }
            if let Some(b) = self.blocks.pop_front() {
                block_units(b, self.prune.since, self.prune.until, &mut self.scratch);
                self.units.extend(self.scratch.drain(..).map(ByEnd));
            } else if self.done {
                return Ok(None);
            } else {
                self.read_page()?;
            }
        }
    }

    fn next(&mut self) -> Option<Block> {
        self.units.pop().map(|u| u.0)
    }
}

/// A unit ordered by its latest time (then by id, so the order is total).
struct ByEnd(Block);

impl Ord for ByEnd {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.max_time_us, self.0.first_id).cmp(&(other.0.max_time_us, other.0.first_id))
    }
}

impl PartialOrd for ByEnd {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByEnd {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByEnd {}
