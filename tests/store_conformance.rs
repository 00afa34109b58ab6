//! One conformance suite for every `Store` backend: SQLite always; SQL Server when
//! LOGRELAY_TEST_MSSQL holds a connection string. Without it the SQL Server twins are
//! reported as ignored, never as passed (this file has its own harness, libtest-mimic,
//! so that depends on the environment rather than on `#[ignore]`).

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Facility, Level, LogMessage, Protocol, SdElement};
use logrelay::store::{
    self, Batch, Field, Filter, Match, Query, StoreError, StoreReader, StoreUrl, StoreWriter, Visit,
};
use std::borrow::Cow;

struct Backend {
    name: &'static str,
    url: StoreUrl,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        name: "sqlite",
        url: StoreUrl::Sqlite(dir.path().join("conformance.db")),
        _dir: Some(dir),
    }
}

/// The SQL Server of LOGRELAY_TEST_MSSQL.
fn mssql_server() -> Option<String> {
    std::env::var("LOGRELAY_TEST_MSSQL")
        .ok()
        .filter(|c| !c.is_empty())
}

fn mssql() -> Backend {
    let conn = mssql_server()
        .expect("LOGRELAY_TEST_MSSQL must hold a SQL Server connection string for this test");
    Backend {
        name: "mssql",
        url: StoreUrl::parse(&conn).expect("LOGRELAY_TEST_MSSQL is a connection string"),
        _dir: None,
    }
}

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 123_456_000).unwrap()
}

/// A record with a distinct message, `minutes` after the base time.
fn rec(i: usize, minutes: i64, level: Level, host: &str, source: &str) -> LogMessage<'static> {
    let mut m = LogMessage::new(
        format!("message {i}"),
        level,
        base() + Duration::minutes(minutes),
    );
    m.received = base() + Duration::minutes(minutes) + Duration::milliseconds(5);
    m.hostname = Some(Cow::Owned(host.to_string()));
    m.source = Some(Cow::Owned(source.to_string()));
    m.facility = Facility::from_code((i % 24) as u8);
    m.procid = Some(Cow::Owned(format!("{}", 100 + i)));
    m.msgid = i.is_multiple_of(3).then_some(Cow::Borrowed("ID47"));
    m.protocol = Protocol::Rfc5424;
    m.peer = Some(Cow::Borrowed("127.0.0.1:5000"));
    m
}

fn dataset() -> Vec<LogMessage<'static>> {
    let hosts = ["web1", "web2", "db1"];
    let sources = ["nginx", "postgres", "billing", "billing-worker"];
    let mut v: Vec<LogMessage<'static>> = (0..40)
        .map(|i| {
            rec(
                i,
                i as i64,
                Level::from_code((i % 8) as u8).unwrap(),
                hosts[i % 3],
                sources[i % 4],
            )
        })
        .collect();
    v[5].structured_data = vec![SdElement {
        id: "origin@32473".into(),
        params: vec![
            ("ip".into(), "10.0.0.5".into()),
            ("ip".into(), "10.0.0.6".into()),
        ],
    }];
    v[6].message = Cow::Borrowed("non-ASCII: Grüße, 日本語, emoji 😀, quote \" backslash \\");
    v[7].message = Cow::Owned("x".repeat(60_000));
    v[8].hostname = Some(Cow::Owned("h".repeat(255)));
    v[9].hostname = None;
    v[9].facility = None;
    v
}

/// The relay's writer and a reader of the same store, side by side.
struct Opened {
    writer: Box<dyn StoreWriter>,
    reader: Box<dyn StoreReader>,
}

impl Opened {
    fn insert(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        self.writer.insert(batches)
    }
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        self.reader.query(q, visit)
    }
    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        self.reader.last_id()
    }
    fn changed(&mut self) -> Result<bool, StoreError> {
        self.reader.changed()
    }
}

fn open(b: &Backend) -> Opened {
    let writer = store::open_writer(&b.url).unwrap_or_else(|e| panic!("{}: {e}", b.name));
    let reader = store::open_reader(&b.url).unwrap_or_else(|e| panic!("{}: {e}", b.name));
    Opened { writer, reader }
}

fn fill(s: &mut Opened) {
    let data = dataset();
    let (a, rest) = data.split_at(15);
    let mut b1 = Batch::new();
    a.iter().for_each(|m| b1.push(m));
    let mut b2 = Batch::new();
    rest.iter().for_each(|m| b2.push(m));
    assert_eq!(s.insert(&[b1, b2]).unwrap(), 40);
}

/// Message numbers of the rows a query returns, in order.
fn ids(s: &mut Opened, q: Query) -> Vec<usize> {
    let mut out = Vec::new();
    s.query(&q, &mut |_, r| {
        let n = r
            .message
            .strip_prefix("message ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        out.push(n);
        true
    })
    .unwrap();
    out
}

fn q(filter: Filter) -> Query {
    Query {
        filter,
        ..Query::default()
    }
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let server = mssql_server();
    if server.is_none() {
        eprintln!(
            "SQL Server twins ignored: set LOGRELAY_TEST_MSSQL to a connection string to run them"
        );
    }
    type Suite = fn(Backend);
    let suites: [(&str, Suite); 5] = [
        ("conformance", conformance),
        ("resends_are_stored_once", resends_are_stored_once),
        (
            "readers_see_a_writers_commits",
            readers_see_a_writers_commits,
        ),
        ("many_rows_match_a_reference", many_rows_match_a_reference),
        (
            "retention_removes_old_blocks_archived_first",
            retention_removes_old_blocks_archived_first,
        ),
    ];
    let mut trials = Vec::new();
    for (name, suite) in suites {
        trials.push(libtest_mimic::Trial::test(
            format!("{name}_sqlite"),
            move || {
                suite(sqlite());
                Ok(())
            },
        ));
        trials.push(
            libtest_mimic::Trial::test(format!("{name}_mssql"), move || {
                suite(mssql());
                Ok(())
            })
            .with_ignored_flag(server.is_none()),
        );
    }
    libtest_mimic::run(&args, trials).exit_code()
}

fn conformance(b: Backend) {
    {
        let mut s = open(&b);
        fill(&mut s);
        let s = &mut s;
        let name = b.name;

        // Every field round-trips, large and non-ASCII values included.
        let mut all = Vec::new();
        s.query(&q(Filter::default()), &mut |id, r| {
            all.push((
                id,
                r.message.to_string(),
                r.hostname.map(str::to_string),
                r.structured_data.map(str::to_string),
                r.time_us,
                r.received_us,
                r.level,
                r.facility,
                r.source.map(str::to_string),
                r.procid.map(str::to_string),
                r.msgid.map(str::to_string),
                r.protocol,
                r.peer.map(str::to_string),
            ));
            true
        })
        .unwrap();
        assert_eq!(all.len(), 40, "{name}");
        let data = dataset();
        for (i, row) in all.iter().enumerate() {
            let m = &data[i];
            assert_eq!(row.1, m.message, "{name} message {i}");
            assert_eq!(
                row.2.as_deref(),
                m.hostname.as_deref(),
                "{name} hostname {i}"
            );
            assert_eq!(row.3, m.structured_data_json(), "{name} sd {i}");
            assert_eq!(row.4, m.timestamp.timestamp_micros(), "{name} time {i}");
            assert_eq!(row.5, m.received.timestamp_micros(), "{name} received {i}");
            assert_eq!((row.6, row.7), (m.level, m.facility), "{name} level {i}");
            assert_eq!(row.8.as_deref(), m.source.as_deref());
            assert_eq!(row.9.as_deref(), m.procid.as_deref());
            assert_eq!(row.10.as_deref(), m.msgid.as_deref());
            assert_eq!(
                (row.11, row.12.as_deref()),
                (Protocol::Rfc5424, Some("127.0.0.1:5000"))
            );
        }
        assert!(
            all.windows(2).all(|w| w[1].0 > w[0].0),
            "{name}: ids increase in insert order"
        );
        // The follow cursor is opaque (SQLite's row id, SQL Server's rowversion): it is
        // only ever compared with itself, never with row ids.
        let end = s.last_id().unwrap();
        assert!(end.is_some(), "{name}");
        let by_cursor = |after_id, upto_id| Query {
            filter: Filter {
                after_id,
                upto_id,
                ..Filter::default()
            },
            by_id: true,
            ..Query::default()
        };
        assert_eq!(ids(s, by_cursor(None, end)).len(), 40, "{name}");
        assert!(ids(s, by_cursor(end, None)).is_empty(), "{name}");

        // Filters.
        let lv = |a: Level, b: Level| {
            q(Filter {
                levels: Some((a, b)),
                ..Filter::default()
            })
        };
        assert_eq!(
            ids(s, lv(Level::Emerg, Level::Alert)),
            [0, 1, 8, 9, 16, 17, 24, 25, 32, 33],
            "{name}"
        );
        assert_eq!(ids(s, lv(Level::Err, Level::Err)), [3, 11, 19, 27, 35]);
        let since = Filter {
            since: Some(base() + Duration::minutes(35)),
            ..Filter::default()
        };
        assert_eq!(ids(s, q(since)), [35, 36, 37, 38, 39]);
        let window = Filter {
            since: Some(base() + Duration::minutes(10)),
            until: Some(base() + Duration::minutes(12)),
            ..Filter::default()
        };
        assert_eq!(ids(s, q(window)), [10, 11, 12]);
        let glob = Filter {
            sources: vec!["billing*".into()],
            ..Filter::default()
        };
        assert_eq!(ids(s, q(glob)).len(), 20);
        let exact = Filter {
            sources: vec!["billing".into(), "nginx".into()],
            ..Filter::default()
        };
        assert_eq!(ids(s, q(exact)).len(), 20);
        let hosts = Filter {
            hosts: vec!["db?".into()],
            levels: Some((Level::Emerg, Level::Err)),
            ..Filter::default()
        };
        assert_eq!(ids(s, q(hosts)), [2, 11, 17, 26, 32, 35]);
        let fac = Filter {
            facilities: vec![Facility::from_code(4).unwrap()],
            ..Filter::default()
        };
        assert_eq!(ids(s, q(fac)), [4, 28]);
        let m = |field, value: &str, negate| Match::Field {
            field,
            value: value.into(),
            negate,
        };
        let f = Filter {
            matches: vec![
                m(Field::Msgid, "ID47", false),
                m(Field::Hostname, "web1", true),
            ],
            ..Filter::default()
        };
        assert_eq!(
            ids(s, q(f)),
            [9],
            "{name}: msgid=ID47 rows are all on web1 but one without a host"
        );
        let f = Filter {
            matches: vec![m(Field::Hostname, "web1", true)],
            ..Filter::default()
        };
        assert_eq!(
            ids(s, q(f)).len(),
            40 - 14 + 1,
            "{name}: NULL hostname matches !="
        );
        let sd = |value: &str, negate| Match::Sd {
            id: "origin@32473".into(),
            param: "ip".into(),
            value: value.into(),
            negate,
        };
        assert_eq!(
            ids(
                s,
                q(Filter {
                    matches: vec![sd("10.0.0.6", false)],
                    ..Filter::default()
                })
            ),
            [5],
            "{name}: repeated param"
        );
        assert_eq!(
            ids(
                s,
                q(Filter {
                    matches: vec![sd("10.0.0.6", true)],
                    ..Filter::default()
                })
            )
            .len(),
            39
        );
        let injection = Filter {
            sources: vec!["x' OR '1'='1".into()],
            ..Filter::default()
        };
        assert!(ids(s, q(injection)).is_empty());

        // Ordering, limits, cursors.
        let newest = Query {
            newest_first: true,
            limit: Some(3),
            ..Query::default()
        };
        assert_eq!(ids(s, newest), [39, 38, 37]);
        // Cursors taken between inserts select what came after, and windows between.
        let mut cursors = vec![s.last_id().unwrap()];
        for k in 0..3 {
            let mut b = Batch::new();
            b.push(&rec(40 + k, 100 + k as i64, Level::Info, "web1", "seq"));
            s.insert(&[b]).unwrap();
            cursors.push(s.last_id().unwrap());
        }
        assert_eq!(ids(s, by_cursor(cursors[0], None)), [40, 41, 42], "{name}");
        assert_eq!(ids(s, by_cursor(cursors[1], cursors[2])), [41], "{name}");
        assert_eq!(ids(s, by_cursor(cursors[0], cursors[3])), [40, 41, 42]);

        // A later insert with an older timestamp still comes after the cursor.
        let cursor = s.last_id().unwrap().unwrap();
        let _ = s.changed();
        let mut late = Batch::new();
        late.push(&rec(99, -1000, Level::Info, "web1", "late"));
        s.insert(&[late]).unwrap();
        assert_eq!(
            ids(
                s,
                Query {
                    filter: Filter {
                        after_id: Some(cursor),
                        ..Filter::default()
                    },
                    by_id: true,
                    ..Query::default()
                }
            ),
            [99]
        );
        assert_eq!(
            ids(
                s,
                Query {
                    newest_first: false,
                    limit: Some(1),
                    ..Query::default()
                }
            ),
            [99],
            "{name}: time order"
        );

        // Opening again (migrations run twice) keeps the data.
        let newest = s.last_id().unwrap();
        let mut again = open(&b);
        assert_eq!(again.last_id().unwrap(), newest, "{name}");
        assert_ne!(
            newest,
            Some(cursor),
            "{name}: the late row moved the cursor"
        );
        assert_eq!(
            ids(&mut again, by_cursor(Some(cursor), None)),
            [99],
            "{name}"
        );
    }
}

fn readers_see_a_writers_commits(b: Backend) {
    {
        let mut writer = open(&b);
        let mut reader = store::open_reader(&b.url).unwrap();
        let _ = reader.changed().unwrap();
        let mut batch = Batch::new();
        batch.push(&rec(1, 0, Level::Info, "h", "s"));
        writer.insert(&[batch]).unwrap();
        assert!(
            reader.changed().unwrap(),
            "{}: a commit is seen as a change",
            b.name
        );
        assert!(reader.last_id().unwrap().is_some());
    }
}

/// Enough rows for many storage blocks, with event times in order and then overlapping
/// across blocks (jitter, and a few far in the past as from a wrong clock), and every query shape
/// `logq` uses, compared with the same selection made here in plain Rust.
fn many_rows_match_a_reference(b: Backend) {
    const ROWS: usize = 30_000;
    let mut s = open(&b);
    // On a shared SQL Server the table may hold earlier rows: look only after them.
    let start = s.last_id().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    struct Row {
        time_us: i64,
        level: u8,
        source: String,
        host: String,
    }
    let mut rows = Vec::with_capacity(ROWS);
    let mut batch = Batch::new();
    let (mut cut_a, mut cut_b) = (None, None);
    for i in 0..ROWS {
        let r = next();
        // The first half in time order (blocks that overlap none), the rest jittered.
        let jitter = if i < ROWS / 2 {
            0
        } else {
            (r % 4_000) as i64 - 2_000
        };
        let seconds = if r % 5_000 == 7 {
            -86_400 * 400 // a sender whose clock is a year behind
        } else {
            i as i64 + jitter
        };
        // One rare source (a handful of rows), the others common.
        let source = if i % 7_919 == 13 {
            "rare-app".to_string()
        } else {
            format!("app-{}", (r >> 16) % 12)
        };
        let host = format!("host-{}", (r >> 24) % 60);
        let level = match (r >> 32) % 100 {
            0..=2 => Level::Err,
            3..=9 => Level::Warning,
            10..=60 => Level::Info,
            _ => Level::Debug,
        };
        let mut m = LogMessage::new(
            format!("message {i}"),
            level,
            base() + Duration::seconds(seconds) + Duration::microseconds((r >> 40) as i64 % 1000),
        );
        m.source = Some(Cow::Owned(source.clone()));
        m.hostname = Some(Cow::Owned(host.clone()));
        m.facility = Facility::from_code(((r >> 48) % 24) as u8);
        rows.push(Row {
            time_us: m.timestamp.timestamp_micros(),
            level: level.code(),
            source,
            host,
        });
        batch.push(&m);
        // Batches of varying size, so blocks fill over several commits.
        if batch.len() as u64 > (r >> 56) * 40 {
            s.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
            // Follow cursors taken mid-stream (mid-block), as `logq -f` takes them.
            for (at, cut) in [(7_000, &mut cut_a), (19_000, &mut cut_b)] {
                if i + 1 >= at && cut.is_none() {
                    *cut = Some((i + 1, s.last_id().unwrap()));
                }
            }
        }
    }
    s.insert(std::slice::from_ref(&batch)).unwrap();
    let (Some((a_rows, a_cursor)), Some((b_rows, b_cursor))) = (cut_a, cut_b) else {
        panic!("{}: no cursors taken", b.name);
    };
    // The whole set after the start, and the window between the two cursors.
    let windows = [
        ("all", start, None, 0..ROWS),
        ("window", a_cursor, b_cursor, a_rows..b_rows),
    ];

    type Keep = Box<dyn Fn(&Row) -> bool>;
    let cases: Vec<(&str, Filter, Keep)> = vec![
        (
            "errors",
            Filter {
                levels: Some((Level::Emerg, Level::Err)),
                ..Filter::default()
            },
            Box::new(|r: &Row| r.level <= 3),
        ),
        (
            "rare source",
            Filter {
                sources: vec!["rare-*".into()],
                ..Filter::default()
            },
            Box::new(|r: &Row| r.source == "rare-app"),
        ),
        (
            "source and warnings",
            Filter {
                sources: vec!["app-3".into()],
                levels: Some((Level::Warning, Level::Warning)),
                ..Filter::default()
            },
            Box::new(|r: &Row| r.source == "app-3" && r.level == 4),
        ),
        (
            "host, errors, time window",
            Filter {
                hosts: vec!["host-1?".into()],
                levels: Some((Level::Emerg, Level::Err)),
                since: Some(base() + Duration::seconds(5_000)),
                until: Some(base() + Duration::seconds(20_000)),
                ..Filter::default()
            },
            Box::new(|r: &Row| {
                let t = (r.time_us - base().timestamp_micros()) / 1_000_000;
                r.host.starts_with("host-1")
                    && r.host.len() == 7
                    && r.level <= 3
                    && (5_000..20_000).contains(&t)
            }),
        ),
        (
            "no such source",
            Filter {
                sources: vec!["nobody".into()],
                ..Filter::default()
            },
            Box::new(|_: &Row| false),
        ),
        ("everything", Filter::default(), Box::new(|_: &Row| true)),
    ];
    for ((name, filter, keep), (window, after_id, upto_id, range)) in cases
        .iter()
        .flat_map(|c| windows.iter().map(move |w| (c, w)))
    {
        let filter = Filter {
            after_id: *after_id,
            upto_id: *upto_id,
            ..filter.clone()
        };
        let by_id: Vec<usize> = range.clone().filter(|&i| keep(&rows[i])).collect();
        let mut by_time = by_id.clone();
        by_time.sort_by_key(|&i| (rows[i].time_us, i));
        for (newest_first, by_id_order, limit) in [
            (false, false, None),
            (true, false, None),
            (true, false, Some(100)),
            (false, false, Some(7)),
            (false, true, None),
            (true, true, Some(50)),
        ] {
            let want: Vec<usize> = {
                let mut v = if by_id_order {
                    by_id.clone()
                } else {
                    by_time.clone()
                };
                if newest_first {
                    v.reverse();
                }
                v.truncate(limit.unwrap_or(usize::MAX));
                v
            };
            let query = Query {
                filter: filter.clone(),
                newest_first,
                by_id: by_id_order,
                limit: limit.map(|n| n as u64),
            };
            let got = ids(&mut s, query);
            assert!(
                got == want,
                "{}: {name} ({window}) newest_first={newest_first} by_id={by_id_order} limit={limit:?}: \
                 {} rows, want {} (first difference at {:?})",
                b.name,
                got.len(),
                want.len(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
}

/// A batch of an acknowledging client (`client`), its rows numbered `seqs`, with the
/// messages `NAME SEQ` from source `source`.
fn numbered(client: &str, name: &str, source: &str, seqs: std::ops::RangeInclusive<u64>) -> Batch {
    let mut batch = Batch::new();
    batch.set_delivery(
        Some(client.into()),
        std::sync::Arc::new(store::batch::AckPoint::default()),
    );
    for seq in seqs {
        let mut m = LogMessage::new(format!("{name} {seq}"), Level::Info, base());
        m.source = Some(Cow::Owned(source.to_string()));
        batch.push(&m);
        batch.push_seq(Some(seq));
    }
    batch
}

/// Acknowledged delivery: rows a named client sends again (after a reconnect, or a
/// forwarding relay's resend) are stored once, whether the first copy came in an
/// earlier call, in the same call, or before the writer was opened again; another
/// client's same numbers are its own, and rows without a number are always stored.
fn resends_are_stored_once(b: Backend) {
    // Names of this run's own: a shared SQL Server keeps the marks of earlier runs.
    let run = format!(
        "{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let (a, other) = (
        format!("conformance-a/{run}"),
        format!("conformance-b/{run}"),
    );
    let source = format!("resend-{run}");
    let name = b.name;
    let mut s = open(&b);
    let start = s.last_id().unwrap();
    let insert = |s: &mut Opened, batches: &[Batch]| s.insert(batches).unwrap();
    assert_eq!(
        insert(&mut s, &[numbered(&a, "a", &source, 1..=10)]),
        10,
        "{name}"
    );
    assert_eq!(
        insert(
            &mut s,
            &[
                numbered(&a, "a", &source, 6..=15),
                // Resent while the first copy waits in the same call.
                numbered(&a, "a", &source, 11..=20),
            ]
        ),
        10,
        "{name}: 11..=20 are new"
    );
    assert_eq!(
        insert(&mut s, &[numbered(&a, "a", &source, 1..=20)]),
        0,
        "{name}"
    );
    let mut plain = Batch::new();
    let mut m = LogMessage::new("plain 1", Level::Info, base());
    m.source = Some(Cow::Owned(source.clone()));
    plain.push(&m);
    assert_eq!(
        insert(
            &mut s,
            &[numbered(&other, "b", &source, 1..=5), plain.clone(), plain]
        ),
        7,
        "{name}: another client's numbers, and rows without any"
    );
    drop(s);
    // The marks outlive the writer: a resend after a restart.
    let mut s = open(&b);
    assert_eq!(
        insert(&mut s, &[numbered(&a, "a", &source, 15..=21)]),
        1,
        "{name}"
    );
    let mut stored = Vec::new();
    let query = Query {
        filter: Filter {
            sources: vec![source.clone()],
            after_id: start,
            ..Filter::default()
        },
        by_id: true,
        ..Query::default()
    };
    s.query(&query, &mut |_, r| {
        stored.push(r.message.to_string());
        true
    })
    .unwrap();
    let want: Vec<String> = (1..=20)
        .map(|i| format!("a {i}"))
        .chain((1..=5).map(|i| format!("b {i}")))
        .chain([
            "plain 1".to_string(),
            "plain 1".to_string(),
            "a 21".to_string(),
        ])
        .collect();
    assert_eq!(stored, want, "{name}: each row once, in the order stored");
}

/// This run's rows (by their source) as (id, event time, message), in id order.
fn rows_of(reader: &mut dyn StoreReader, source: &str) -> Vec<(i64, i64, String)> {
    let q = Query {
        filter: Filter {
            sources: vec![source.to_string()],
            ..Filter::default()
        },
        by_id: true,
        ..Query::default()
    };
    let mut out = Vec::new();
    reader
        .query(&q, &mut |id, r| {
            out.push((id, r.time_us, r.message.to_string()));
            true
        })
        .unwrap();
    out
}

/// Retention through the interface both stores share (`store::retainer`, what the
/// relay and `logq vacuum` use): a plan for max-size takes the oldest blocks first and
/// nothing under the cap; max-age removes exactly the blocks wholly older than the
/// limit, archived first; the archives and the store then answer a query as the store
/// did before; a missing archive dir removes nothing. The rows are of January 2001 and
/// "now" is set among them, so on a shared SQL Server no other suite's rows are that
/// old (a removal for size would take them: sizes are only planned here).
fn retention_removes_old_blocks_archived_first(b: Backend) {
    use logrelay::store::archive::ArchiveDir;
    use logrelay::store::retention::Policy;
    const ROWS: i64 = 10_000;
    let name = b.name;
    let source = format!(
        "retention-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let t0 = DateTime::from_timestamp(978_307_200, 0).unwrap(); // 2001-01-01
    let mut s = open(&b);
    let mut batch = Batch::new();
    for i in 0..ROWS {
        let mut m = LogMessage::new(
            format!("message {i}"),
            Level::Info,
            t0 + Duration::minutes(i),
        );
        m.source = Some(Cow::Owned(source.clone()));
        batch.push(&m);
    }
    assert_eq!(s.insert(&[batch]).unwrap(), ROWS as usize, "{name}");
    let before = rows_of(&mut *s.reader, &source);
    assert_eq!(before.len(), ROWS as usize, "{name}");
    // At rest, as between bursts: SQLite's WAL copied and emptied now, so that the
    // background checkpointer cannot grow the file between the two measurements below
    // (a copy in between once made a byte over the cap plan two blocks).
    s.writer.idle();

    let mut r = store::retainer::open(&b.url).unwrap();
    let u = r.usage().unwrap();
    assert!(u.rows >= ROWS as u64 && u.used() > 0, "{name}: {u:?}");
    let cutoff = t0 + Duration::minutes(6_000);
    let now = (cutoff + Duration::days(1)).timestamp_micros();
    let size = |max: u64| Policy {
        max_size: Some(max),
        ..Policy::default()
    };
    assert!(
        r.plan(&size(u.used() * 2), now).unwrap().is_empty(),
        "{name}: within the cap"
    );
    // A byte over: the oldest block; a cap of one byte: every block but the newest.
    let over = r.plan(&size(u.used() - 1), now).unwrap();
    let most = r.plan(&size(1), now).unwrap();
    assert!(
        over.len() == 1 && most.len() > 1,
        "{name}: {} then {} blocks",
        over.len(),
        most.len()
    );
    assert_eq!(most[0], over[0], "{name}: oldest first");
    assert!(
        most.windows(2).all(|w| w[0].last_id < w[1].first_id),
        "{name}: in id order"
    );

    let age = Policy {
        max_age: Some(std::time::Duration::from_secs(86_400)),
        ..Policy::default()
    };
    let plan = r.plan(&age, now).unwrap();
    let cutoff_us = cutoff.timestamp_micros();
    assert!(!plan.is_empty(), "{name}");
    assert!(
        plan.iter().all(|b| b.max_time_us < cutoff_us),
        "{name}: {plan:?}"
    );
    if name == "sqlite" {
        // Ids 1 to 10,000: block 0 (messages 0 to 4,094) is wholly before message
        // 6,000; block 1 is not; block 2 is the newest.
        let ranges: Vec<(i64, i64, u64)> = plan
            .iter()
            .map(|b| (b.first_id, b.last_id, b.rows))
            .collect();
        assert_eq!(ranges, [(0, 4095, 4095)]);
    }
    let in_plan = |id: i64| plan.iter().any(|b| b.first_id <= id && id <= b.last_id);
    let dir = tempfile::tempdir().unwrap();
    let archive = ArchiveDir::open(dir.path()).unwrap();
    let mut done = Vec::new();
    r.remove(Some(&archive), &plan, &mut done).unwrap();
    assert_eq!(done, plan, "{name}: every planned block removed");
    let want: Vec<_> = before.iter().filter(|r| !in_plan(r.0)).cloned().collect();
    assert_eq!(
        rows_of(&mut *s.reader, &source),
        want,
        "{name}: exactly the planned blocks' rows are gone"
    );
    let mut archived = Vec::new();
    for m in archive.manifests().unwrap() {
        archive
            .read(&m, &mut |id, r| {
                if r.source == Some(source.as_str()) {
                    archived.push((id, r.time_us, r.message.to_string()));
                }
                Ok(())
            })
            .unwrap();
    }
    let removed: Vec<_> = before.iter().filter(|r| in_plan(r.0)).cloned().collect();
    assert_eq!(archived, removed, "{name}: each removed row archived once");
    let mut both = store::archive_query::WithArchives::new(
        store::open_reader(&b.url).unwrap(),
        ArchiveDir::open(dir.path()).unwrap(),
    );
    assert_eq!(
        rows_of(&mut both, &source),
        before,
        "{name}: the archives and the store answer as the store did"
    );

    // A later "now": the rest is due, but the archive dir is gone: nothing removed.
    let later = (t0 + Duration::days(30)).timestamp_micros();
    let plan = r.plan(&age, later).unwrap();
    assert!(!plan.is_empty(), "{name}");
    drop(dir);
    let err = r
        .remove(Some(&archive), &plan, &mut Vec::new())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no row removed that was not archived"),
        "{name}: {err}"
    );
    assert_eq!(rows_of(&mut *s.reader, &source), want, "{name}");
}
