//! Counts and stats in the SQLite store. When the question is only about levels, a
//! block that lies wholly inside the filter's time range is counted from its summary's
//! rows per severity: whole if it lies inside one bucket, and if it straddles one bucket
//! boundary, by counting only the rows on the side of it that holds fewer (the block's
//! id range scanned for their times; only those rows' severities decoded) and taking the
//! rest from the summary. Every other candidate block is read
//! as narrow rows (time and the grouped columns) through the row clause. Over three days
//! of 10M rows, 1-hour buckets leave ~72 blocks to straddle a boundary, of 2,400.

use super::blocks::BLOCK_SHIFT;
use super::query::{Block, Prune, block_clause, block_params, row_sql};
use crate::store::stats::{Key, StatField, StatRow, StatsQuery, Tally};
use crate::store::{Filter, StoreError};
use rusqlite::{Connection, OptionalExtension};

/// Whether the summaries' counts can answer for a whole block: no filter that needs the
/// rows themselves, and only levels asked for.
fn summary_answers(f: &Filter, by: &[StatField]) -> bool {
    f.sources.is_empty()
        && f.hosts.is_empty()
        && f.facilities.is_empty()
        && f.matches.is_empty()
        && f.words.is_empty()
        && by.iter().all(|b| *b == StatField::Level)
}

pub fn stats(conn: &Connection, q: &StatsQuery) -> Result<Vec<StatRow>, StoreError> {
    let _snapshot = conn.unchecked_transaction()?;
    let Some(prune) = Prune::new(conn, &q.filter)? else {
        return Ok(Vec::new());
    };
    let blocks = prune.candidates(conn)?;
    let from_summary = summary_answers(&q.filter, &q.by);
    let sql = row_sql(&prune, &q.filter);
    // Only the columns asked for: time, then one per `by` field.
    let columns: Vec<&str> = std::iter::once("time_us")
        .chain(q.by.iter().take(4).map(|field| match field {
            StatField::Level => "severity",
            StatField::Facility => "facility",
            StatField::Source => "source_id",
            StatField::Host => "host_id",
        }))
        .collect();
    let text = format!(
        "SELECT {} FROM {} {}",
        columns.join(", "),
        super::LOGS_NOT_INDEXED,
        block_clause(&sql)
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let mut tally = Tally::default();
    let mut recent = Recent::default();
    for b in &blocks {
        if from_summary
            && let Some(counts) = whole_block_counts(&prune, b)
            && (counted_whole(&prune, q, b, counts, &mut tally)
                || counted_by_side(conn, &prune, q, b, counts, &mut tally)?)
        {
            continue;
        }
        let range = block_params(b);
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter().chain(&range)))?;
        let mut span = Span::default();
        while let Some(r) = rows.next()? {
            let Some(bucket) = span.bucket(q, r.get(0)?) else {
                continue;
            };
            let mut key: Key = [None; 4];
            for (i, k) in key.iter_mut().enumerate().take(columns.len() - 1) {
                *k = r.get(i + 1)?;
            }
            recent.add(bucket, key, &mut tally);
        }
        recent.flush(&mut tally);
    }
    let mut names = conn.prepare_cached("SELECT name FROM Sources WHERE id = ?1")?;
    let mut hosts = conn.prepare_cached("SELECT name FROM Hosts WHERE id = ?1")?;
    tally.rows(&q.by, |field, id| {
        let stmt = if field == StatField::Source {
            &mut names
        } else {
            &mut hosts
        };
        Ok(stmt.query_row([id], |r| r.get(0)).optional()?)
    })
}

/// The bucket of the row read last and its bounds: a block's rows come nearly in time
/// order, so most rows fall into the bucket of the row before.
#[derive(Default)]
struct Span {
    last: Option<(usize, i64, i64)>,
}

impl Span {
    fn bucket(&mut self, q: &StatsQuery, time_us: i64) -> Option<usize> {
        if let Some((bucket, from, to)) = self.last
            && from <= time_us
            && time_us < to
        {
            return Some(bucket);
        }
        let bucket = q.bucket(time_us)?;
        self.last = Some((bucket, q.bounds[bucket], q.bounds[bucket + 1]));
        Some(bucket)
    }
}

/// The groups of the rows read lately, counted in a short list before they go into the
/// tally's hash map: a block's rows fall into a few buckets and groups, and hashing each
/// row's key took a fifth of `stats`'s time.
#[derive(Default)]
struct Recent {
    groups: Vec<(usize, Key, u64)>,
}

impl Recent {
    const MAX: usize = 32;

    fn add(&mut self, bucket: usize, key: Key, tally: &mut Tally) {
        if let Some(g) = self
            .groups
            .iter_mut()
            .find(|(b, k, _)| *b == bucket && *k == key)
        {
            g.2 += 1;
            return;
        }
        if self.groups.len() == Self::MAX {
            self.flush(tally);
        }
        self.groups.push((bucket, key, 1));
    }

    fn flush(&mut self, tally: &mut Tally) {
        for (bucket, key, n) in self.groups.drain(..) {
            tally.add(bucket, key, n);
        }
    }
}

/// A block's rows per severity from its summary, if it has them and every row of the
/// block lies inside the time and cursor range.
fn whole_block_counts(prune: &Prune, b: &Block) -> Option<[u16; 8]> {
    let counts = b.counts?;
    let start = (b.first_id >> BLOCK_SHIFT) << BLOCK_SHIFT;
    let whole_ids = b.first_id == start.max(1) && b.last_id == start + (1 << BLOCK_SHIFT) - 1;
    (whole_ids && b.min_time_us >= prune.since && b.max_time_us <= prune.until).then_some(counts)
}

/// Adds a block from its summary if it lies inside one bucket; `false` when its rows
/// must be read.
fn counted_whole(
    prune: &Prune,
    q: &StatsQuery,
    b: &Block,
    counts: [u16; 8],
    tally: &mut Tally,
) -> bool {
    let (Some(bucket), Some(last)) = (q.bucket(b.min_time_us), q.bucket(b.max_time_us)) else {
        return false;
    };
    if bucket != last {
        return false;
    }
    add_levels(prune, q, bucket, counts.map(u64::from), tally);
    true
}

/// Counts a block that straddles one bucket boundary by counting only the rows on the
/// side of it that holds fewer of them; the other side's counts
/// are the summary's less those. `false` when the block must be read whole (it spans
/// more buckets, or its rows disagree with its summary).
fn counted_by_side(
    conn: &Connection,
    prune: &Prune,
    q: &StatsQuery,
    b: &Block,
    counts: [u16; 8],
    tally: &mut Tally,
) -> Result<bool, StoreError> {
    let (Some(first), Some(last)) = (q.bucket(b.min_time_us), q.bucket(b.max_time_us)) else {
        return Ok(false);
    };
    if last != first + 1 {
        return Ok(false);
    }
    let boundary = q.bounds[last];
    let mut stmt;
    let (early, mut rows);
    if b.ranges.rising {
        // Times rise with ids: the boundary is one id, found by binary search, and the
        // side with fewer ids is read by id alone.
        let split = first_id_at(conn, b, boundary)?;
        early = split - b.first_id <= b.last_id + 1 - split;
        let (from, to) = if early {
            (b.first_id, split - 1)
        } else {
            (split, b.last_id)
        };
        stmt = conn.prepare_cached("SELECT severity FROM LogRows WHERE id BETWEEN ?1 AND ?2")?;
        rows = stmt.query((from, to))?;
    } else {
        // Rows come at a steady rate within a block: the nearer end holds fewer.
        early = boundary.saturating_sub(b.min_time_us) <= b.max_time_us.saturating_sub(boundary);
        let (from, to) = if early {
            (b.min_time_us, boundary)
        } else {
            (boundary, b.max_time_us.saturating_add(1))
        };
        stmt = conn.prepare_cached(
            "SELECT severity FROM LogRows NOT INDEXED \
             WHERE id BETWEEN ?3 AND ?4 AND time_us >= ?1 AND time_us < ?2",
        )?;
        rows = stmt.query((from, to, b.first_id, b.last_id))?;
    }
    let mut side = [0u64; 8];
    while let Some(r) = rows.next()? {
        let severity: i64 = r.get(0)?;
        let Some(n) = usize::try_from(severity).ok().and_then(|s| side.get_mut(s)) else {
            return Ok(false);
        };
        *n += 1;
    }
    let mut rest = [0u64; 8];
    for (i, r) in rest.iter_mut().enumerate() {
        let Some(n) = u64::from(counts[i]).checked_sub(side[i]) else {
            return Ok(false);
        };
        *r = n;
    }
    let (before, after) = if early { (side, rest) } else { (rest, side) };
    add_levels(prune, q, first, before, tally);
    add_levels(prune, q, last, after, tally);
    Ok(true)
}

/// In a block whose times rise with ids: the first id whose row's time is `time_us` or
/// later (one past the block if none), by binary search over its id range, a rowid seek
/// per step (ids may have gaps).
fn first_id_at(conn: &Connection, b: &Block, time_us: i64) -> rusqlite::Result<i64> {
    let mut probe = conn.prepare_cached(
        "SELECT id, time_us FROM LogRows WHERE id BETWEEN ?1 AND ?2 ORDER BY id LIMIT 1",
    )?;
    // Rows below `lo` are earlier than `time_us`; rows from `hi` on are not.
    let (mut lo, mut hi) = (b.first_id, b.last_id.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row: Option<(i64, i64)> = probe
            .query_row((mid, b.last_id), |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((id, t)) if t < time_us => lo = id + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// Adds rows per severity to a bucket, for the severities the filter takes.
fn add_levels(prune: &Prune, q: &StatsQuery, bucket: usize, counts: [u64; 8], tally: &mut Tally) {
    for (severity, &n) in counts.iter().enumerate() {
        if prune.severities & (1 << severity) != 0 {
            let mut key: Key = [None; 4];
            for (i, field) in q.by.iter().enumerate().take(4) {
                if *field == StatField::Level {
                    key[i] = Some(severity as i64);
                }
            }
            tally.add(bucket, key, n);
        }
    }
}
