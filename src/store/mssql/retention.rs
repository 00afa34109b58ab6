//! Retention on the SQL Server store: the oldest rows of `dbo.Logs` removed in blocks of
//! ids (the SQLite store's 4,096-id blocks, so archives and reports read the same on
//! both), each block by `DELETE TOP (2000) … WHERE id BETWEEN …` statements of their
//! own: short transactions, a small log, and row locks only (SQL Server escalates to a
//! table lock at 5,000 locks on one table or index in a statement, which would hold
//! up the relays' inserts). With an archive directory, a run of blocks is read back
//! through the same SELECT columns as `logq` and written (and synced) to an archive
//! file before any of its rows is deleted.
//!
//! `max-size` is the table's *used* space (data and all its indexes, `sp_spaceused`'s
//! reserved minus unused): the pages rows occupy, which deleting rows gives back. The
//! reserved space also holds unused pages of allocated extents, which SQL Server fills
//! first and does not always hand back on a delete: a cap on it could be out of reach
//! and retention would then remove everything. `sp_spaceused` rather than
//! `sys.dm_db_partition_stats` because any user may run it; the view needs VIEW
//! DATABASE STATE, which a relay's login should not need. The database's files do not
//! shrink (that is `DBCC SHRINKFILE`, a DBA's decision); freed pages take new rows.
//!
//! `dbo.ClientSeq` (one row per sender, not per log row) is left alone.

use super::{Cell, MssqlStore, SELECT_COLUMNS, TABLE};
use crate::store::archive::ArchiveDir;
use crate::store::retention::{Policy, Removed, RetentionError, Usage};
use crate::store::sql::Param;
use crate::store::{StoreError, Visit, Words};
use std::time::Duration;

/// Ids per block, as in the SQLite store.
pub const BLOCK_IDS: i64 = 4096;
/// Rows per DELETE statement: below the lock escalation threshold (5,000).
pub const DELETE_ROWS: i64 = 2000;
const _: () = assert!(DELETE_ROWS < 5000);
/// Rows one look at the oldest blocks reads (16 blocks or more).
pub const WINDOW_ROWS: i64 = 65_536;
/// Windows a bounded plan for `max-age` looks at at most (each after an old row): old
/// rows in young blocks everywhere (a sender whose clock is far behind) cost a pass at
/// most this many windows of rows; the next pass goes on where it stopped.
const MAX_LOOKS: usize = 8;
/// Blocks per archive file at most (about 65,000 rows), as in the SQLite store.
const BLOCKS_PER_FILE: usize = 16;

/// Why `retention.keep-free` is refused with a SQL Server store.
pub const KEEP_FREE_REFUSED: &str = "retention.keep-free has no meaning for a SQL Server store: \
    the free space of the database server's disks is not visible to logrelay and is the \
    server's to manage (file growth limits, alerts); use retention.max-size (the table's used \
    size) or retention.max-age";

/// The table's sizes (one result set for one object; any user may run it).
pub const SPACE_SQL: &str = "EXEC sp_spaceused N'dbo.Logs'";
/// Oldest and newest event time: two seeks on the `time_us` index.
pub const TIMES_SQL: &str = "SELECT MIN(time_us), MAX(time_us) FROM dbo.Logs";
/// The lowest and highest id, and the lowest id of a row an open transaction wrote
/// (read uncommitted, through the `rv` index): retention stays below it, so a row that
/// commits later with a smaller id than committed ones is never deleted unarchived.
pub const BOUNDS_SQL: &str = "SELECT MIN(id), MAX(id), \
    (SELECT MIN(id) FROM dbo.Logs WITH (READUNCOMMITTED) WHERE rv >= MIN_ACTIVE_ROWVERSION()) \
    FROM dbo.Logs";
/// Summaries of the oldest blocks from `@P1` below `@P2`, at most `@P3` rows read (a
/// range seek on the clustered key).
pub const WINDOW_SQL: &str = "SELECT id / 4096, MIN(time_us), MAX(time_us), COUNT_BIG(*) \
    FROM (SELECT TOP (@P3) id, time_us FROM dbo.Logs WHERE id >= @P1 AND id < @P2 ORDER BY id) AS w \
    GROUP BY id / 4096 ORDER BY id / 4096";
/// The lowest id at or above `@P2` of a row older than `@P1`: a seek on the time index
/// (the schema's `Logs_time`) over the old rows only.
pub const FIRST_OLD_SQL: &str =
    "SELECT MIN(id) FROM dbo.Logs WITH (INDEX(Logs_time)) WHERE time_us < @P1 AND id >= @P2";
/// One short transaction of a block's delete, and how many rows it deleted (read from
/// `@@ROWCOUNT`, which a server or login with NOCOUNT on still sets).
pub const DELETE_SQL: &str = "DELETE TOP (@P3) FROM dbo.Logs WHERE id BETWEEN @P1 AND @P2; \
    SELECT CAST(@@ROWCOUNT AS bigint)";

/// The rows of an id range, with `logq`'s columns, in id order (what an archive holds).
pub fn rows_sql() -> String {
    format!(
        "SELECT id, {} FROM {TABLE} WHERE id BETWEEN @P1 AND @P2 ORDER BY id",
        SELECT_COLUMNS.as_str()
    )
}

/// A connection pool of its own (one that never changes the schema), for the relay's
/// retention and `logq vacuum` / `--disk-usage`.
pub struct MssqlRetention {
    store: MssqlStore,
    /// Where the next bounded plan's search for old rows goes on (the last one stopped
    /// at [`MAX_LOOKS`] there); `None`: from the lowest id.
    age_from: Option<i64>,
}

fn unexpected(what: &str, row: &[Cell]) -> StoreError {
    StoreError::Server(format!("SQL Server {what}: unexpected answer {row:?}"))
}

/// `sp_spaceused`'s sizes: "1234 KB".
fn kib(cell: Option<&Cell>) -> Option<u64> {
    let Some(Cell::Text(t)) = cell else {
        return None;
    };
    let n = t.trim().trim_end_matches("KB").trim();
    n.parse::<u64>().ok().map(|k| k * 1024)
}

fn count(cell: Option<&Cell>) -> Option<u64> {
    match cell {
        Some(Cell::Int(i)) => u64::try_from(*i).ok(),
        Some(Cell::Text(t)) => t.trim().parse().ok(),
        _ => None,
    }
}

fn int(cell: Option<&Cell>) -> Option<i64> {
    match cell {
        Some(Cell::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Rows to remove so the used size fits in `max-size`, at the table's average row size.
fn rows_over(policy: &Policy, sizes: &Usage) -> u64 {
    let Some(max) = policy.max_size else {
        return 0;
    };
    let used = sizes.used();
    if used <= max || sizes.rows == 0 {
        return 0;
    }
    let per_row = (used / sizes.rows).max(1);
    (used - max).div_ceil(per_row)
}

/// Consecutive blocks, at most [`BLOCKS_PER_FILE`] to a run (one archive file each).
fn runs(plan: &[Removed]) -> Vec<&[Removed]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=plan.len() {
        if i == plan.len()
            || plan[i].first_id != plan[i - 1].last_id + 1
            || i - start == BLOCKS_PER_FILE
        {
            out.push(&plan[start..i]);
            start = i;
        }
    }
    out
}

impl MssqlRetention {
    /// Parses the connection string; connects on first use.
    pub fn open(conn_str: &str) -> Result<MssqlRetention, StoreError> {
        Ok(MssqlRetention {
            store: MssqlStore::open_reader(conn_str)?,
            age_from: None,
        })
    }

    /// The table's sizes and rows (the server's count, no scan): `file_bytes` is the
    /// reserved space, `free_bytes` its unused part, so [`Usage::used`] is what
    /// `max-size` caps.
    pub fn sizes(&mut self) -> Result<Usage, StoreError> {
        let rows = self.store.small_query("sp_spaceused", SPACE_SQL, &[])?;
        let row = rows.first().map(Vec::as_slice).unwrap_or_default();
        // name, rows, reserved, data, index_size, unused
        let (Some(n), Some(reserved), Some(unused)) =
            (count(row.get(1)), kib(row.get(2)), kib(row.get(5)))
        else {
            return Err(unexpected("sp_spaceused", row));
        };
        Ok(Usage {
            file_bytes: reserved,
            free_bytes: unused.min(reserved),
            rows: n,
            ..Usage::default()
        })
    }

    /// Sizes, rows and the oldest and newest event time.
    pub fn usage(&mut self) -> Result<Usage, StoreError> {
        let sizes = self.sizes()?;
        let (oldest_us, newest_us) = self.times()?;
        Ok(Usage {
            oldest_us,
            newest_us,
            ..sizes
        })
    }

    fn times(&mut self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let rows = self.store.small_query("event times", TIMES_SQL, &[])?;
        let row = rows.first().map(Vec::as_slice).unwrap_or_default();
        Ok((int(row.first()), int(row.get(1))))
    }

    /// The lowest id and the start of the first block retention must not touch (the
    /// newest row's, or that of the lowest row an open transaction wrote); `None` when
    /// no block lies between.
    fn bounds(&mut self) -> Result<Option<(i64, i64)>, StoreError> {
        let rows = self.store.small_query("id bounds", BOUNDS_SQL, &[])?;
        let row = rows.first().map(Vec::as_slice).unwrap_or_default();
        let (Some(first), Some(newest)) = (int(row.first()), int(row.get(1))) else {
            return Ok(None); // an empty table
        };
        let limit = int(row.get(2)).map_or(newest, |open| open.min(newest));
        let below = limit.div_euclid(BLOCK_IDS) * BLOCK_IDS;
        Ok((first < below).then_some((first, below)))
    }

    /// The whole blocks among the oldest rows from `from` below `below`, and where the
    /// next look starts (`None`: `below` was reached). The last block of a full window
    /// may have been cut short by the row limit: it is left to the next look.
    fn window(&mut self, from: i64, below: i64) -> Result<(Vec<Removed>, Option<i64>), StoreError> {
        let rows = self.store.small_query(
            "retention blocks",
            WINDOW_SQL,
            &[Param::Int(from), Param::Int(below), Param::Int(WINDOW_ROWS)],
        )?;
        let mut blocks = Vec::with_capacity(rows.len());
        for row in &rows {
            let (Some(b), Some(lo), Some(hi), Some(n)) = (
                int(row.first()),
                int(row.get(1)),
                int(row.get(2)),
                count(row.get(3)),
            ) else {
                return Err(unexpected("retention blocks", row));
            };
            blocks.push(Removed {
                first_id: b * BLOCK_IDS,
                last_id: (b + 1) * BLOCK_IDS - 1,
                min_time_us: lo,
                max_time_us: hi,
                rows: n,
            });
        }
        if blocks.iter().map(|b| b.rows).sum::<u64>() < WINDOW_ROWS as u64 {
            return Ok((blocks, None));
        }
        let next = blocks.pop().map(|b| b.first_id);
        Ok((blocks, next))
    }

    /// The lowest id at or above `from` of a row older than `cutoff`.
    fn first_older(&mut self, cutoff: i64, from: i64) -> Result<Option<i64>, StoreError> {
        let rows = self.store.small_query(
            "oldest rows",
            FIRST_OLD_SQL,
            &[Param::Int(cutoff), Param::Int(from)],
        )?;
        Ok(int(rows.first().and_then(|r| r.first())))
    }

    /// The blocks `policy` removes now, in id order, at most `most` (`usize::MAX`: all
    /// that are due, however long the search): the blocks wholly older than `max-age`
    /// (found through the time index, then a window of rows from each), and the oldest blocks holding as many rows as take the used size within
    /// `max-size` at the average row size. Never a block at or above the newest row's
    /// or an open transaction's.
    pub fn plan(
        &mut self,
        policy: &Policy,
        now_us: i64,
        most: usize,
    ) -> Result<Vec<Removed>, StoreError> {
        if policy.keep_free.is_some() {
            return Err(StoreError::Url(KEEP_FREE_REFUSED.into()));
        }
        let mut plan: Vec<Removed> = Vec::new();
        let need = match policy.max_size {
            Some(_) => rows_over(policy, &self.sizes()?),
            None => 0,
        };
        let cutoff = policy
            .max_age
            .map(|age| now_us.saturating_sub(age.as_micros().min(i64::MAX as u128) as i64));
        if need == 0 && cutoff.is_none() {
            return Ok(plan);
        }
        let Some((first, below)) = self.bounds()? else {
            return Ok(plan);
        };
        if let Some(cutoff) = cutoff {
            // From each old row on, a window: its wholly old blocks; then on from the
            // next old row past it (young stretches are skipped by the index). Bounded
            // (`most` given): at most MAX_LOOKS windows, the next plan going on there.
            let looks = if most == usize::MAX {
                usize::MAX
            } else {
                MAX_LOOKS
            };
            let resume = self.age_from.take().filter(|f| (first..below).contains(f));
            let mut from = resume.unwrap_or(first);
            for look in 0.. {
                if look == looks {
                    self.age_from = Some(from);
                    break;
                }
                let Some(old) = self.first_older(cutoff, from)? else {
                    break;
                };
                if old >= below || plan.len() >= most {
                    break;
                }
                let (blocks, next) = self.window(old.div_euclid(BLOCK_IDS) * BLOCK_IDS, below)?;
                plan.extend(blocks.into_iter().filter(|b| b.max_time_us < cutoff));
                match next {
                    Some(n) => from = n,
                    None => break,
                }
            }
            plan.truncate(most);
        }
        // The oldest blocks for size, counting those already planned.
        let mut need = need.saturating_sub(plan.iter().map(|b| b.rows).sum());
        let mut from = first;
        while need > 0 && plan.len() < most {
            let (blocks, next) = self.window(from, below)?;
            for b in blocks {
                if need == 0 || plan.len() >= most {
                    break;
                }
                if !plan.iter().any(|p| p.first_id == b.first_id) {
                    need = need.saturating_sub(b.rows);
                    plan.push(b);
                }
            }
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        plan.sort_by_key(|b| b.first_id);
        Ok(plan)
    }

    /// Streams the rows with ids `first..=last` in id order; a row outside the range
    /// or out of order is an error (an archive must hold exactly its range).
    pub fn rows(&mut self, first: i64, last: i64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let mut prev = first.saturating_sub(1);
        let mut stray = None;
        self.store.stream(
            &rows_sql(),
            &[Param::Int(first), Param::Int(last)],
            &Words::default(),
            None,
            &mut |id, r| {
                if id <= prev || id > last {
                    stray = Some(id);
                    return false;
                }
                prev = id;
                visit(id, r)
            },
        )?;
        match stray {
            Some(id) => Err(StoreError::Server(format!(
                "SQL Server answered row {id} when asked for the rows {first} to {last} in id order"
            ))),
            None => Ok(()),
        }
    }

    /// Deletes the rows with ids `first..=last`, [`DELETE_ROWS`] a statement (each its
    /// own transaction); returns how many.
    pub fn delete(&mut self, first: i64, last: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let rows = self.store.small_query(
                "retention delete",
                DELETE_SQL,
                &[Param::Int(first), Param::Int(last), Param::Int(DELETE_ROWS)],
            )?;
            let row = rows.first().map(Vec::as_slice).unwrap_or_default();
            let n = count(row.first()).ok_or_else(|| unexpected("retention delete", row))?;
            total += n;
            if n < DELETE_ROWS as u64 {
                return Ok(total);
            }
        }
    }

    /// Archives (when `archive` is set) and deletes the planned blocks, oldest first:
    /// each run of consecutive blocks goes to one archive file, written and synced with
    /// its manifest before any of its rows is deleted; a run a manifest covers already
    /// (a pass cut short) is not archived again. Stops at the first failure; `done`
    /// holds what was deleted by then.
    pub fn remove(
        &mut self,
        archive: Option<&ArchiveDir>,
        plan: &[Removed],
        done: &mut Vec<Removed>,
    ) -> Result<(), RetentionError> {
        for run in runs(plan) {
            if let Some(dir) = archive {
                let (first, last) = (run[0].first_id, run[run.len() - 1].last_id);
                let archived = dir.covers(first, last).and_then(|covered| {
                    if covered {
                        return Ok(());
                    }
                    dir.write(first, last, |visit| {
                        run.iter()
                            .try_for_each(|b| self.rows(b.first_id, b.last_id, visit))
                    })
                    .map(|_| ())
                });
                archived.map_err(|e| RetentionError::Archive {
                    dir: dir.path().display().to_string(),
                    reason: e.to_string(),
                })?;
            }
            for b in run {
                let rows = self.delete(b.first_id, b.last_id)?;
                done.push(Removed { rows, ..*b });
            }
        }
        Ok(())
    }
}

/// How long a pass waits for SQL Server to show the space a removal freed (its ghost
/// cleanup runs every few seconds) before removing more for `max-size`.
pub const SETTLE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: i64, rows: u64) -> Removed {
        Removed {
            first_id: n * BLOCK_IDS,
            last_id: (n + 1) * BLOCK_IDS - 1,
            min_time_us: 0,
            max_time_us: 0,
            rows,
        }
    }

    #[test]
    fn sizes_parse_and_rows_over_the_cap() {
        assert_eq!(kib(Some(&Cell::Text("1234 KB".into()))), Some(1234 * 1024));
        assert_eq!(kib(Some(&Cell::Text(" 0 KB ".into()))), Some(0));
        assert_eq!(kib(Some(&Cell::Null)), None);
        assert_eq!(
            count(Some(&Cell::Text("42                  ".into()))),
            Some(42)
        );
        let sizes = Usage {
            file_bytes: 12_000,
            free_bytes: 2_000,
            rows: 100,
            ..Usage::default()
        };
        let cap = |max| Policy {
            max_size: Some(max),
            ..Policy::default()
        };
        // 10,000 used, 100 bytes a row.
        assert_eq!(rows_over(&cap(10_000), &sizes), 0);
        assert_eq!(rows_over(&cap(9_950), &sizes), 1);
        assert_eq!(rows_over(&cap(7_000), &sizes), 30);
        assert_eq!(rows_over(&Policy::default(), &sizes), 0);
    }

    #[test]
    fn runs_split_at_gaps_and_at_sixteen_blocks() {
        let mut plan: Vec<Removed> = (0..20).map(|n| block(n, 1)).collect();
        plan.push(block(22, 1));
        let r = runs(&plan);
        assert_eq!(r.iter().map(|r| r.len()).collect::<Vec<_>>(), [16, 4, 1]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn statements_name_what_the_fake_server_matches() {
        assert!(DELETE_SQL.starts_with("DELETE TOP ("));
        assert!(WINDOW_SQL.contains("GROUP BY") && !rows_sql().contains("GROUP BY"));
        assert!(FIRST_OLD_SQL.contains("INDEX(Logs_time)") && !WINDOW_SQL.contains("INDEX("));
        assert!(!WINDOW_SQL.contains("DELETE TOP (") && !rows_sql().contains("DELETE TOP ("));
        assert!(WINDOW_SQL.contains(&format!("id / {BLOCK_IDS}")));
    }
}
