//! Counts and stats in the SQLite store. A block that lies wholly inside the filter's
//! time range and inside one bucket is counted from its summary's rows per severity,
//! when the question is only about levels; every other candidate block is read as
//! narrow rows (time, severity, facility, source and host ids) through the row clause.
//! Over three days of 10M rows, 1-hour buckets leave ~72 blocks to read, not 2,400.

use super::blocks::BLOCK_SHIFT;
use super::query::{Block, Prune, row_sql};
use crate::store::sql::Param;
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
    let mut sql = row_sql(&prune, &q.filter);
    let n = sql.params.len();
    sql.and(&format!("id BETWEEN ?{} AND ?{}", n + 1, n + 2));
    let text = format!(
        "SELECT time_us, severity, facility, source_id, host_id FROM {} {}",
        super::LOGS_NOT_INDEXED,
        sql.clause
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let mut tally = Tally::default();
    for b in &blocks {
        if from_summary && counted_whole(&prune, q, b, &mut tally) {
            continue;
        }
        let range = [Param::Int(b.first_id), Param::Int(b.last_id)];
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter().chain(&range)))?;
        while let Some(r) = rows.next()? {
            let Some(bucket) = q.bucket(r.get(0)?) else {
                continue;
            };
            let mut key: Key = [None; 4];
            for (i, field) in q.by.iter().enumerate().take(4) {
                key[i] = r.get(match field {
                    StatField::Level => 1,
                    StatField::Facility => 2,
                    StatField::Source => 3,
                    StatField::Host => 4,
                })?;
            }
            tally.add(bucket, key, 1);
        }
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

/// Adds a block from its summary if it lies wholly inside the time range, the cursor
/// range and one bucket; `false` when its rows must be read.
fn counted_whole(prune: &Prune, q: &StatsQuery, b: &Block, tally: &mut Tally) -> bool {
    let Some(counts) = b.counts else {
        return false;
    };
    let start = (b.first_id >> BLOCK_SHIFT) << BLOCK_SHIFT;
    let whole_ids = b.first_id == start.max(1) && b.last_id == start + (1 << BLOCK_SHIFT) - 1;
    if !whole_ids || b.min_time_us < prune.since || b.max_time_us > prune.until {
        return false;
    }
    let (Some(bucket), Some(last)) = (q.bucket(b.min_time_us), q.bucket(b.max_time_us)) else {
        return false;
    };
    if bucket != last {
        return false;
    }
    for (severity, &n) in counts.iter().enumerate() {
        if prune.severities & (1 << severity) != 0 {
            let mut key: Key = [None; 4];
            for (i, field) in q.by.iter().enumerate().take(4) {
                if *field == StatField::Level {
                    key[i] = Some(severity as i64);
                }
            }
            tally.add(bucket, key, u64::from(n));
        }
    }
    true
}
