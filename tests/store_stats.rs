//! `Store::stats` and `Store::count` of the SQLite store, which count whole blocks from
//! their summaries where they can, against the plain way (`stats::by_visiting`, every
//! matching row read and counted) on the same store, for buckets that blocks straddle,
//! buckets that hold whole blocks and buckets of uneven lengths that leave rows out,
//! with and without filters.

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Facility, Level, LogMessage};
use logrelay::store::sqlite::{SqliteReader, SqliteWriter};
use logrelay::store::stats::by_visiting;
use logrelay::store::{Batch, Filter, StatField, StatsQuery, StoreReader, StoreWriter, Words};
use std::borrow::Cow;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

/// 12,000 rows, one every 0.9 s with a little jitter (a block spans ~1 hour and
/// overlaps its neighbours), levels, sources, hosts and facilities all mixed.
fn store(dir: &tempfile::TempDir) -> SqliteReader {
    let path = dir.path().join("s.db");
    let mut s = SqliteWriter::open(&path).unwrap();
    let mut batch = Batch::new();
    for i in 0..12_000i64 {
        let jitter = (i * 7919) % 5000 - 2500;
        let t = base() + Duration::milliseconds(i * 900 + jitter);
        let level = Level::from_code(((i * 3 + i / 7) % 8) as u8).unwrap();
        let mut m = LogMessage::new(format!("event {} of {}", i % 13, i % 3), level, t);
        m.source = Some(Cow::Owned(["api", "db", "cron"][(i % 3) as usize].into()));
        m.hostname = (i % 11 != 0).then(|| Cow::Owned(format!("h{}", i % 4)));
        m.facility = (i % 17 != 0).then(|| Facility::from_code((i % 24) as u8).unwrap());
        batch.push(&m);
        if batch.len() == 2_500 {
            s.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
        }
    }
    s.insert(std::slice::from_ref(&batch)).unwrap();
    drop(s);
    SqliteReader::open(&path).unwrap()
}

/// Buckets of `step_s` seconds over 8 hours from `offset_s` after an hour before the
/// first row. Hourly ones: each whole block straddles one or two boundaries, one nearer
/// its start or its end depending on the offset.
fn bounds(step_s: i64, offset_s: i64) -> Vec<i64> {
    let start = base() - Duration::hours(1) + Duration::seconds(offset_s);
    (0..=(8 * 3600 / step_s))
        .map(|k| (start + Duration::seconds(k * step_s)).timestamp_micros())
        .collect()
}

/// Buckets of uneven lengths (as days across a time-zone change are) from 20 minutes
/// after the first row to 18 minutes before the last, so some rows fall into no bucket:
/// a block's rows move between short and long buckets and out of them.
fn uneven_bounds() -> Vec<i64> {
    let mut t = base() + Duration::minutes(20);
    let mut out = vec![t.timestamp_micros()];
    for minutes in [7, 61, 1, 23, 2, 3, 40, 5] {
        t += Duration::minutes(minutes);
        out.push(t.timestamp_micros());
    }
    out
}

#[test]
fn summary_counts_equal_counting_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let filters = [
        Filter::default(),
        Filter {
            levels: Some((Level::Emerg, Level::Err)),
            ..Filter::default()
        },
        Filter {
            levels: Some((Level::Warning, Level::Info)),
            since: Some(base() + Duration::minutes(70)),
            until: Some(base() + Duration::minutes(200)),
            ..Filter::default()
        },
        Filter {
            sources: vec!["d*".into()],
            ..Filter::default()
        },
        Filter {
            hosts: vec!["h1".into()],
            facilities: vec![Facility::from_code(3).unwrap()],
            ..Filter::default()
        },
        Filter {
            words: Words::new(&["event", "7"]).unwrap(),
            ..Filter::default()
        },
    ];
    let groupings: [&[StatField]; 4] = [
        &[],
        &[StatField::Level],
        &[StatField::Source, StatField::Level],
        &[StatField::Host, StatField::Facility],
    ];
    let mut nonzero = 0;
    for f in &filters {
        for by in groupings {
            for buckets in [
                bounds(60, 0),
                bounds(3600, 0),
                bounds(3600, 1200),
                uneven_bounds(),
            ] {
                let q = StatsQuery {
                    filter: f.clone(),
                    by: by.to_vec(),
                    bounds: buckets,
                };
                let fast = s.stats(&q).unwrap();
                let plain = by_visiting(&mut s, &q).unwrap();
                assert_eq!(fast, plain, "filter {f:?} by {by:?} buckets {:?}", q.bounds);
                nonzero += usize::from(!fast.is_empty());
            }
        }
        let mut n = 0u64;
        s.query(
            &logrelay::store::Query {
                filter: f.clone(),
                ..Default::default()
            },
            &mut |_, _| {
                n += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(s.count(f).unwrap(), n, "count of {f:?}");
    }
    assert!(nonzero >= 80, "the cases count something: {nonzero} of 96");
    // All rows, by level, in one bucket: exactly the rows per level.
    let q = StatsQuery::everything(Filter::default(), vec![StatField::Level]);
    let rows = s.stats(&q).unwrap();
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 12_000);
    assert_eq!(rows.len(), 8, "every level occurs: {rows:?}");
    // Rows deleted behind the summaries' back (no writer does that): a count by level
    // alone comes from the summaries and still sees them; one that reads rows does not.
    // This shows that the summaries, not the rows, answered.
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    conn.execute("DELETE FROM LogRows WHERE id BETWEEN 4096 AND 8191", [])
        .unwrap();
    assert_eq!(s.count(&Filter::default()).unwrap(), 12_000);
    // So do stats by level in hourly buckets: the block straddles one boundary, and only
    // the rows on its shorter side are read (none now), the rest from its summary.
    let hourly_total = |s: &mut SqliteReader, by: Vec<StatField>| {
        let q = StatsQuery {
            filter: Filter::default(),
            by,
            bounds: bounds(3600, 0),
        };
        s.stats(&q).unwrap().iter().map(|r| r.count).sum::<u64>()
    };
    assert_eq!(hourly_total(&mut s, vec![StatField::Level]), 12_000);
    assert_eq!(hourly_total(&mut s, vec![StatField::Source]), 12_000 - 4096);
    let read = Filter {
        sources: vec!["*".into()],
        ..Filter::default()
    };
    assert_eq!(s.count(&read).unwrap(), 12_000 - 4096);
}
