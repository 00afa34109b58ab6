//! The SQLite store without a per-row time index: every block here also holds rows far
//! from the rest of it in time (a replayed log a year old, a sender whose clock is ten
//! years ahead, rows stamped with their receive time), so a block's time envelope spans
//! years and only its time ranges can keep time-bounded reads narrow. Time-bounded
//! queries in both orders and with limits, stats buckets, follow's cursor reads,
//! retention's `max-age` and `--disk-usage` are compared with plain SQL over the `Logs`
//! view; then the store is taken back to schema 6 (the time index, no ranges) and a
//! writer migrates it: the same answers, and the index gone.

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Level, LogMessage};
use logrelay::store::retention::{Policy, select};
use logrelay::store::sqlite::retention::SqliteRetention;
use logrelay::store::sqlite::{SqliteReader, SqliteWriter};
use logrelay::store::{Batch, Filter, Query, StatField, StatsQuery, StoreReader, StoreWriter};
use rusqlite::Connection;
use std::path::Path;

const ROWS: i64 = 20_000;
const HOUR: i64 = 3_600;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

/// Seconds after `base` of row `i` (0-based; its id is `i + 1`).
fn seconds(i: i64) -> i64 {
    if i % 40 == 7 {
        // A log from a year before, replayed in order beside live traffic.
        -365 * 24 * HOUR + i * 30
    } else if i % 613 == 5 && i > 9_000 {
        // A sender whose clock is ten years ahead (only in the later blocks, so that
        // the first ones are wholly older than a `max-age` cut).
        10 * 365 * 24 * HOUR + i
    } else if i % 97 == 3 {
        // Rows given their receive time: slightly later than the live rows around them.
        i + 400
    } else {
        i
    }
}

fn fill(path: &Path) {
    let mut w = SqliteWriter::open(path).unwrap();
    let mut batch = Batch::new();
    for i in 0..ROWS {
        let t = base() + Duration::seconds(seconds(i)) + Duration::microseconds(i % 1000);
        let level = Level::from_code(((i * 5 + i / 3) % 8) as u8).unwrap();
        let mut m = LogMessage::new(format!("m{i}"), level, t);
        m.source = Some(["api", "db", "cron"][(i % 3) as usize].into());
        batch.push(&m);
        // Commits of uneven size: blocks fill over several, and their ranges merge.
        if batch.len() as i64 == 1_000 + (i % 7) * 300 {
            w.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
        }
    }
    w.insert(std::slice::from_ref(&batch)).unwrap();
}

fn us(s: i64) -> i64 {
    (base() + Duration::seconds(s)).timestamp_micros()
}

fn at(s: i64) -> Option<DateTime<Utc>> {
    Some(base() + Duration::seconds(s))
}

/// Row ids from plain SQL over the `Logs` view.
fn reference(conn: &Connection, sql: &str, params: &[i64]) -> Vec<i64> {
    conn.prepare(sql)
        .unwrap()
        .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn ids(s: &mut SqliteReader, q: &Query) -> Vec<i64> {
    let mut out = Vec::new();
    s.query(q, &mut |id, _| {
        out.push(id);
        true
    })
    .unwrap();
    out
}

/// Every query shape against its SQL reference; returns how many rows they returned.
fn check_queries(path: &Path) -> usize {
    let mut s = SqliteReader::open(path).unwrap();
    let conn = Connection::open(path).unwrap();
    let mut returned = 0;
    // Windows: within the live rows, inside the old log, around the future clock, and
    // open on one side.
    let windows: [(Option<i64>, Option<i64>); 5] = [
        (Some(5_000), Some(5_900)),
        (
            Some(-365 * 24 * HOUR + 120_000),
            Some(-365 * 24 * HOUR + 240_000),
        ),
        (Some(HOUR), None),
        (None, Some(HOUR)),
        (Some(5 * 365 * 24 * HOUR), None),
    ];
    for (since, until) in windows {
        for levels in [None, Some((Level::Emerg, Level::Err))] {
            let (lo, hi) = (since.map_or(i64::MIN, us), until.map_or(i64::MAX, us));
            let max_sev = levels.map_or(7, |_| 3);
            let filter = Filter {
                since: since.and_then(at),
                until: until.and_then(at),
                levels,
                ..Filter::default()
            };
            let sql = |order: &str| {
                format!(
                    "SELECT id FROM Logs WHERE time_us BETWEEN ?1 AND ?2 AND severity <= ?3 \
                     ORDER BY {order}"
                )
            };
            for (newest_first, by_id, limit) in [
                (false, false, None),
                (true, false, None),
                (true, false, Some(100)),
                (false, false, Some(100)),
                (false, true, None),
                (true, true, Some(50)),
            ] {
                let dir = if newest_first { "DESC" } else { "ASC" };
                let order = if by_id {
                    format!("id {dir}")
                } else {
                    format!("time_us {dir}, id {dir}")
                };
                let mut want = reference(&conn, &sql(&order), &[lo, hi, max_sev]);
                want.truncate(limit.unwrap_or(usize::MAX));
                let q = Query {
                    filter: filter.clone(),
                    newest_first,
                    by_id,
                    limit: limit.map(|n| n as u64),
                };
                let got = ids(&mut s, &q);
                assert!(
                    got == want,
                    "{since:?}..{until:?} {levels:?} newest_first={newest_first} by_id={by_id} \
                     limit={limit:?}: {} rows, want {} (first difference at {:?})",
                    got.len(),
                    want.len(),
                    got.iter().zip(&want).position(|(a, b)| a != b)
                );
                returned += got.len();
            }
        }
    }
    // `-n 100` of everything, newest and oldest first.
    for newest_first in [true, false] {
        let dir = if newest_first { "DESC" } else { "ASC" };
        let want = reference(
            &conn,
            &format!("SELECT id FROM Logs ORDER BY time_us {dir}, id {dir} LIMIT 100"),
            &[],
        );
        let q = Query {
            newest_first,
            limit: Some(100),
            ..Query::default()
        };
        assert_eq!(ids(&mut s, &q), want, "-n 100 newest_first={newest_first}");
    }
    // Follow: the rows after a cursor in the middle of a block, up to the newest, in id
    // order, with and without a time bound.
    for since in [None, Some(10_000)] {
        let lo = since.map_or(i64::MIN, us);
        let q = Query {
            filter: Filter {
                after_id: Some(6_000),
                upto_id: Some(17_000),
                since: since.and_then(at),
                ..Filter::default()
            },
            by_id: true,
            ..Query::default()
        };
        let want = reference(
            &conn,
            "SELECT id FROM Logs WHERE id > 6000 AND id <= 17000 AND time_us >= ?1 ORDER BY id",
            &[lo],
        );
        assert_eq!(ids(&mut s, &q), want, "follow since {since:?}");
        returned += want.len();
    }
    // Stats by level in hourly buckets over the live rows (blocks straddle boundaries
    // and hold rows outside every bucket).
    let bounds: Vec<i64> = (0..=6).map(|h| us(h * HOUR - 1_800)).collect();
    for levels in [None, Some((Level::Warning, Level::Info))] {
        let q = StatsQuery {
            filter: Filter {
                levels,
                ..Filter::default()
            },
            by: vec![StatField::Level],
            bounds: bounds.clone(),
        };
        let mut got: Vec<(usize, String, u64)> = s
            .stats(&q)
            .unwrap()
            .into_iter()
            .map(|r| (r.bucket, r.key[0].clone().unwrap(), r.count))
            .collect();
        got.sort();
        let (lo, hi) = levels.map_or((0, 7), |(a, b)| (a.code(), b.code()));
        let mut want: Vec<(usize, String, u64)> = Vec::new();
        for w in 0..bounds.len() - 1 {
            let rows: Vec<(i64, i64)> = conn
                .prepare(
                    "SELECT severity, count(*) FROM Logs WHERE time_us >= ?1 AND time_us < ?2 \
                     AND severity BETWEEN ?3 AND ?4 GROUP BY severity",
                )
                .unwrap()
                .query_map([bounds[w], bounds[w + 1], lo.into(), hi.into()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for (severity, n) in rows {
                let name = Level::from_code(severity as u8).unwrap().name().to_string();
                want.push((w, name, n as u64));
            }
        }
        want.sort();
        assert_eq!(got, want, "stats {levels:?}");
        assert!(!want.is_empty());
    }
    returned
}

/// Retention's view: `max-age` takes exactly the blocks whose every row is older than
/// the cut (never the newest), and `--disk-usage` the oldest and newest row times.
fn check_retention(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let r = SqliteRetention::open_read_only(path).unwrap();
    let usage = r.usage().unwrap();
    let (rows, oldest, newest): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), min(time_us), max(time_us) FROM Logs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (usage.rows as i64, usage.oldest_us, usage.newest_us),
        (rows, Some(oldest), Some(newest))
    );
    let cut_s = 10_000;
    let now = us(cut_s) + 86_400_000_000;
    let policy = Policy {
        max_age: Some(std::time::Duration::from_secs(86_400)),
        max_size: None,
        keep_free: None,
        headroom_blocks: 0,
    };
    let chosen: Vec<i64> = select(&policy, &r.blocks().unwrap(), &usage, None, now)
        .iter()
        .map(|b| b.first_id >> 12)
        .collect();
    let want = reference(
        &conn,
        "SELECT id >> 12 FROM Logs WHERE id >> 12 < (SELECT max(id) >> 12 FROM Logs) \
         GROUP BY 1 HAVING max(time_us) < ?1 ORDER BY 1",
        &[us(cut_s)],
    );
    assert_eq!(chosen, want);
    assert!(
        !want.is_empty() && want.len() < 4,
        "some blocks, not all: {want:?}"
    );
}

#[test]
fn far_away_rows_in_every_block_answer_as_plain_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    fill(&path);
    let conn = Connection::open(&path).unwrap();
    let has_index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'LogRows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has_index, 0, "no per-row index on LogRows");
    // Every block spans years, and its ranges leave the years out.
    let spans: Vec<(i64, i64, usize)> = conn
        .prepare("SELECT min_time_us, max_time_us, length(time_ranges) / 16 FROM LogBlocks")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as usize))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(spans.len(), 5);
    for (lo, hi, ranges) in spans {
        assert!(hi - lo > 300 * 86_400_000_000, "{lo}..{hi}");
        assert!((2..=4).contains(&ranges), "{ranges} ranges");
    }
    drop(conn);
    let returned = check_queries(&path);
    assert!(returned > 10_000, "the cases return rows: {returned}");
    check_retention(&path);

    // Back to schema 6: the time index, no ranges. A writer migrates it.
    back_to_schema_6(&path);
    assert!(
        SqliteReader::open(&path).is_err(),
        "logq reads only the current schema"
    );
    drop(SqliteWriter::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let (version, index, ranged): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_master WHERE name = 'LogRows_time'),
                (SELECT count(*) FROM LogBlocks WHERE length(time_ranges) BETWEEN 32 AND 64)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((version, index, ranged), (8, 0, 5));
    assert!(
        has_end_index(&path),
        "schema 8's index on the summaries' ends"
    );
    drop(conn);
    assert_eq!(check_queries(&path), returned);
    check_retention(&path);
}

/// Seconds after `base` of row `i` in a store whose blocks mostly came in time order:
/// pairs of rows share a time; row 9,000 is earlier than the one before (its block is
/// out of order), rows from 14,000 on are two days later (their block rises, with two
/// ranges), and the commit of rows 17,000–17,999 starts earlier than the one before ended
/// (in order within each commit, not across them).
fn seconds_rising(i: i64) -> i64 {
    let s = match i {
        9_000 => i - 5_000,
        17_000..18_000 => i - 1_500,
        _ => i,
    } / 2
        * 2;
    if i >= 14_000 { s + 48 * HOUR } else { s }
}

fn fill_rising(path: &Path) {
    let mut w = SqliteWriter::open(path).unwrap();
    let mut batch = Batch::new();
    for i in 0..ROWS {
        let t = base() + Duration::seconds(seconds_rising(i));
        let level = Level::from_code(((i * 5 + i / 3) % 8) as u8).unwrap();
        batch.push(&LogMessage::new(format!("m{i}"), level, t));
        if batch.len() == 1_000 {
            w.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
        }
    }
    w.insert(std::slice::from_ref(&batch)).unwrap();
}

/// Per block: whether its summary says its times rise with ids, and whether they do
/// (from the rows, by SQL).
fn rising_flags(path: &Path) -> Vec<(bool, bool)> {
    let conn = Connection::open(path).unwrap();
    conn.prepare(
        "SELECT length(b.time_ranges) % 16 = 1,
            (SELECT coalesce(min(d) >= 0, 1) FROM (SELECT time_us - lag(time_us)
                OVER (ORDER BY id) AS d FROM Logs WHERE id >> 12 = b.block))
         FROM LogBlocks b ORDER BY block",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

#[test]
fn blocks_in_time_order_are_flagged_and_read_by_id_as_plain_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    fill_rising(&path);
    let truth = [true, true, false, true, false];
    let flags = rising_flags(&path);
    assert_eq!(
        flags,
        truth.iter().map(|&t| (t, t)).collect::<Vec<_>>(),
        "(flag, rows in order) per block"
    );
    let returned = check_queries(&path);
    assert!(returned > 10_000, "the cases return rows: {returned}");

    // A schema-7 store written before the flag: the same answers, every block read as
    // not known to be in order.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE LogBlocks SET time_ranges = substr(time_ranges, 1, length(time_ranges) / 16 * 16)",
    )
    .unwrap();
    drop(conn);
    assert!(rising_flags(&path).iter().all(|(flag, _)| !flag));
    assert_eq!(check_queries(&path), returned);

    // Schema 7 (no index on the summaries' ends) migrated: the index back, the same
    // answers.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP INDEX LogBlocks_max_time; PRAGMA user_version = 7;")
        .unwrap();
    drop(conn);
    assert!(
        SqliteReader::open(&path).is_err(),
        "logq reads only schema 8"
    );
    drop(SqliteWriter::open(&path).unwrap());
    assert!(has_end_index(&path));
    assert_eq!(check_queries(&path), returned);

    // Schema 6 migrated: the flags from the rows again.
    back_to_schema_6(&path);
    drop(SqliteWriter::open(&path).unwrap());
    assert_eq!(rising_flags(&path), flags);
    assert_eq!(check_queries(&path), returned);
}

/// Turns a schema-8 store back into schema 6 (the per-row time index, no ranges), for a
/// writer to migrate.
fn back_to_schema_6(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP INDEX LogBlocks_max_time;
         ALTER TABLE LogBlocks DROP COLUMN time_ranges;
         CREATE INDEX LogRows_time ON LogRows (time_us);
         PRAGMA user_version = 6;",
    )
    .unwrap();
}

fn has_end_index(path: &Path) -> bool {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'LogBlocks_max_time'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

/// Newest-first reads take the block summaries by their latest time, a page at a time
/// (`newest_first.rs`): here the blocks' ends are in no order of their ids, every block
/// also holds rows from a month before and rows stamped later than every block's own
/// hour (so the merge holds several blocks' units at once), and there are more blocks
/// than the first page holds. Every limit and filter answers as plain SQL.
#[test]
fn newest_first_follows_block_ends_not_ids() {
    const N: i64 = 6 * 4096;
    let hour_of_block = [3, 0, 5, 1, 4, 2, 6];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut w = SqliteWriter::open(&path).unwrap();
    let mut batch = Batch::new();
    for i in 0..N {
        let block = ((i + 1) >> 12) as usize;
        let s = if i % 50 == 7 {
            -30 * 24 * HOUR + i
        } else if i % 333 == 5 {
            10 * HOUR + i / 100
        } else {
            hour_of_block[block] * HOUR + i % 4096 / 2
        };
        let level = Level::from_code(((i * 5 + i / 3) % 8) as u8).unwrap();
        batch.push(&LogMessage::new(
            format!("m{i}"),
            level,
            base() + Duration::seconds(s),
        ));
        if batch.len() == 2_000 {
            w.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
        }
    }
    w.insert(std::slice::from_ref(&batch)).unwrap();
    drop(w);
    let conn = Connection::open(&path).unwrap();
    let by_end = reference(
        &conn,
        "SELECT block FROM LogBlocks ORDER BY max_time_us DESC, block DESC",
        &[],
    );
    assert_eq!(by_end.len(), 7);
    assert_ne!(by_end, (0..7).rev().collect::<Vec<i64>>());
    let mut s = SqliteReader::open(&path).unwrap();
    let mut returned = 0;
    for (since, until) in [
        (None, None),
        (Some(2 * HOUR), Some(4 * HOUR + 1_800)),
        (Some(-31 * 24 * HOUR), Some(-29 * 24 * HOUR)),
        (Some(9 * HOUR), None),
    ] {
        for levels in [None, Some((Level::Emerg, Level::Err))] {
            for after_id in [None, Some(9_000)] {
                let (lo, hi) = (since.map_or(i64::MIN, us), until.map_or(i64::MAX, us));
                let max_sev = levels.map_or(7, |_| 3);
                let all = reference(
                    &conn,
                    "SELECT id FROM Logs WHERE time_us BETWEEN ?1 AND ?2 AND severity <= ?3 \
                     AND id > ?4 ORDER BY time_us DESC, id DESC",
                    &[lo, hi, max_sev, after_id.unwrap_or(0)],
                );
                for limit in [Some(1), Some(100), Some(5_000), None] {
                    let mut want = all.clone();
                    want.truncate(limit.unwrap_or(usize::MAX));
                    let q = Query {
                        filter: Filter {
                            since: since.and_then(at),
                            until: until.and_then(at),
                            levels,
                            after_id,
                            ..Filter::default()
                        },
                        newest_first: true,
                        by_id: false,
                        limit: limit.map(|n| n as u64),
                    };
                    let got = ids(&mut s, &q);
                    assert!(
                        got == want,
                        "{since:?}..{until:?} {levels:?} after {after_id:?} limit {limit:?}: \
                         {} rows, want {} (first difference at {:?})",
                        got.len(),
                        want.len(),
                        got.iter().zip(&want).position(|(a, b)| a != b)
                    );
                    returned += got.len();
                }
            }
        }
    }
    assert!(returned > 50_000, "the cases return rows: {returned}");
}
