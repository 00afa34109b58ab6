//! Word search (`-w`) in the SQLite store against a reference selection: every row read
//! back and checked by this file's own whole-word test. The store holds three complete
//! blocks of 4,096 rows (with token filters) and a tail block still filling (without),
//! words in every field, upper and lower case, punctuation around them, near misses
//! (`needles`, `xneedle`, `needle_x`) and multi-byte text.

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Level, LogMessage, SdElement};
use logrelay::store::sqlite::{SqliteReader, SqliteWriter, word_filter_backlog};
use logrelay::store::{
    Batch, Filter, Query, RecordRef, StatsQuery, StoreReader, StoreWriter, Words,
};
use std::borrow::Cow;
use std::collections::BTreeSet;

const ROWS: usize = 3 * 4096 + 700;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

const FILLER: [&str; 8] = [
    "connection accepted",
    "request served in 12ms",
    "cache miss for key user:42",
    "GET /index.html 200",
    "worker started",
    "retrying upstream",
    "session closed",
    "queue depth 17",
];

/// Row `i`: filler text, with the rare words placed in chosen rows and fields.
fn row(i: usize) -> LogMessage<'static> {
    let mut m = LogMessage::new(
        format!("{} seq={i}", FILLER[i % FILLER.len()]),
        Level::from_code((i % 8) as u8).unwrap(),
        base() + Duration::seconds(i as i64),
    );
    m.hostname = Some(Cow::Owned(format!("web{}", i % 5)));
    m.source = Some(Cow::Borrowed("nginx"));
    let msg = |s: &str| Cow::Owned(format!("{s} seq={i}"));
    match i {
        // Block 0 (ids 1..4095 are rows 0..4094).
        10 => m.message = msg("found the Needle, finally"),
        11 => m.message = msg("needles everywhere"),
        12 => m.message = msg("xneedle and needle_x are other words"),
        // Block 1.
        5000 => m.message = msg("(NEEDLE)"),
        5001 => m.hostname = Some(Cow::Borrowed("Haystack-01")),
        5002 => m.source = Some(Cow::Borrowed("Payment-Gateway")),
        // Block 2.
        9000 => {
            m.structured_data = vec![SdElement {
                id: "origin@32473".into(),
                params: vec![
                    ("ip".into(), "192.0.2.1".into()),
                    ("note".into(), "Žluťoučký kůň \"quoted\"\nnext".into()),
                ],
            }]
        }
        9001 => m.message = msg("from 192.0.2.10 and 10.192.0.2.1"),
        9002 => m.message = msg("ΣΟΦΙΑ said 日本語テキスト, grüße"),
        // A key of structured data is not a value: no match for `needle` here.
        9003 => {
            m.structured_data = vec![SdElement {
                id: "needle@1".into(),
                params: vec![("needle".into(), "hay".into())],
            }]
        }
        // The tail block (no token filter yet).
        12_500 => m.message = msg("tail needle"),
        12_501 => m.message = msg("latest haystack"),
        _ => {}
    }
    m
}

/// The store written as a relay writes it, then opened as logq opens it.
fn store(dir: &tempfile::TempDir) -> SqliteReader {
    let path = dir.path().join("w.db");
    let mut s = SqliteWriter::open(&path).unwrap();
    // Several commits, one crossing a block boundary, as a relay makes them.
    let mut batch = Batch::new();
    for i in 0..ROWS {
        batch.push(&row(i));
        if batch.len() == 1500 || i + 1 == ROWS {
            s.insert(std::slice::from_ref(&batch)).unwrap();
            batch.clear();
        }
    }
    drop(s);
    SqliteReader::open(&path).unwrap()
}

/// This file's own whole-word test: the field split into runs of letters, digits and
/// `_`, lower-cased; a word of several runs (`192.0.2.1`) must appear with the same
/// characters between them.
fn has_word(field: &str, word: &str) -> bool {
    let lower: String = field.chars().flat_map(char::to_lowercase).collect();
    let word: String = word.chars().flat_map(char::to_lowercase).collect();
    let wordy = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    lower.match_indices(&word).any(|(at, _)| {
        !wordy(lower[..at].chars().last()) && !wordy(lower[at + word.len()..].chars().next())
    })
}

fn sd_values(sd: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(sd).unwrap();
    let mut out = Vec::new();
    for params in v.as_object().unwrap().values() {
        for value in params.as_object().unwrap().values() {
            match value {
                serde_json::Value::Array(a) => {
                    out.extend(a.iter().map(|s| s.as_str().unwrap().to_string()))
                }
                s => out.push(s.as_str().unwrap().to_string()),
            }
        }
    }
    out
}

fn reference(r: &RecordRef<'_>, words: &[&str]) -> bool {
    words.iter().all(|w| {
        let mut fields: Vec<String> = vec![r.message.to_string()];
        fields.extend(r.hostname.map(str::to_string));
        fields.extend(r.source.map(str::to_string));
        if let Some(sd) = r.structured_data {
            fields.extend(sd_values(sd));
        }
        fields.iter().any(|f| has_word(f, w))
    })
}

fn ids(s: &mut SqliteReader, filter: Filter, newest_first: bool, limit: Option<u64>) -> Vec<i64> {
    let mut out = Vec::new();
    let q = Query {
        filter,
        newest_first,
        by_id: false,
        limit,
    };
    s.query(&q, &mut |id, _| {
        out.push(id);
        true
    })
    .unwrap();
    out
}

fn word_filter(words: &[&str]) -> Filter {
    Filter {
        words: Words::new(words).unwrap(),
        ..Filter::default()
    }
}

#[test]
fn word_search_matches_the_reference_selection() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let mut all: Vec<(i64, Batch)> = Vec::new();
    s.query(&Query::default(), &mut |id, r| {
        let mut b = Batch::new();
        b.push_record(r);
        all.push((id, b));
        true
    })
    .unwrap();
    assert_eq!(all.len(), ROWS);
    let cases: &[&[&str]] = &[
        &["needle"],
        &["NEEDLE"],
        &["haystack"],
        &["Haystack-01"],
        &["payment"],
        &["payment-gateway"],
        &["192.0.2.1"],
        &["žluťoučký"],
        &["ŽLUŤOUČKÝ", "kůň"],
        &["quoted"],
        &["next"],
        &["σοφια"],
        &["日本語テキスト"],
        &["grüße"],
        &["needle", "tail"],
        &["needle", "finally"],
        &["needle", "haystack"],
        &["needles"],
        &["needle_x"],
        &["seq"],
        &["accepted", "seq"],
        &["served", "12ms"],
        &["nothing-like-this"],
        &["hay"],
        &["origin"],
    ];
    for words in cases {
        let want: BTreeSet<i64> = all
            .iter()
            .filter(|(_, b)| reference(&b.iter().next().unwrap(), words))
            .map(|(id, _)| *id)
            .collect();
        let got = ids(&mut s, word_filter(words), false, None);
        let got_set: BTreeSet<i64> = got.iter().copied().collect();
        assert_eq!(got_set, want, "words {words:?}");
        assert_eq!(got.len(), want.len(), "no duplicates for {words:?}");
        let count = s.count(&word_filter(words)).unwrap();
        assert_eq!(count, want.len() as u64, "count of {words:?}");
    }
    // Spot checks that the reference itself means what it should.
    let needle = ids(&mut s, word_filter(&["needle"]), false, None);
    assert_eq!(
        needle.len(),
        3,
        "row 10, row 5000 and the tail row: {needle:?}"
    );
    assert!(ids(&mut s, word_filter(&["hay"]), false, None).len() == 1);
    // Newest first with a limit: the limit counts matching rows, not rows read.
    let newest = ids(&mut s, word_filter(&["needle"]), true, Some(2));
    assert_eq!(newest, vec![needle[2], needle[1]]);
    // With other filters: the word and the level must both hold.
    let f = Filter {
        levels: Some((Level::Emerg, Level::Debug)),
        hosts: vec!["web*".into()],
        ..word_filter(&["needle"])
    };
    assert_eq!(ids(&mut s, f, false, None), needle);
}

/// The token filters really skip blocks: a word written into a complete block behind
/// the filter's back (plain SQL, as no writer would) is not found there, while the same
/// word in the tail block, which has no filter yet, is.
#[test]
fn blocks_whose_filter_rules_a_word_out_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let path = dir.path().join("w.db");
    let filtered: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(DISTINCT id >> 6) FROM LogTokens", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        filtered, 3,
        "three complete blocks have filters, the tail none"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE LogRows SET message = 'smuggled' WHERE id IN (100, 12700)",
        [],
    )
    .unwrap();
    let found = ids(&mut s, word_filter(&["smuggled"]), false, None);
    assert_eq!(found, vec![12700], "block 0's filter rules 'smuggled' out");
    // A block whose filter is gone (damaged, or from before filters) is read whole.
    conn.execute("DELETE FROM LogTokens WHERE id >> 6 = 0", [])
        .unwrap();
    let found = ids(&mut s, word_filter(&["smuggled"]), false, None);
    assert_eq!(found, vec![100, 12700]);
    // A damaged filter blob reads as unknown too.
    conn.execute(
        "UPDATE LogTokens SET filter = x'0102' WHERE id >> 6 = 1",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE LogRows SET message = 'smuggled' WHERE id = 4200",
        [],
    )
    .unwrap();
    let found = ids(&mut s, word_filter(&["smuggled"]), false, None);
    assert_eq!(found, vec![100, 4200, 12700]);
}

/// Within a block, only the segments (256 ids) whose filter may hold the word are read:
/// the word smuggled into another segment of the same block is not found, into the same
/// segment it is. Hostnames and sources are indexed in the segments of their rows.
#[test]
fn segments_whose_filter_rules_a_word_out_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let before = ids(&mut s, word_filter(&["needle"]), false, None);
    assert!(before.contains(&11), "row 10 (id 11, block 0 segment 0)");
    let conn = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
    // Id 12: segment 0 as id 11; id 3000: segment 11 of the same block.
    conn.execute(
        "UPDATE LogRows SET message = 'needle smuggled' WHERE id IN (12, 3000)",
        [],
    )
    .unwrap();
    let after = ids(&mut s, word_filter(&["needle"]), false, None);
    assert!(after.contains(&12), "{after:?}");
    assert!(!after.contains(&3000), "segment 11 cannot hold 'needle'");
    // Haystack-01 is the host of id 5002 (block 1, segment 3) only.
    let found = ids(&mut s, word_filter(&["haystack"]), false, None);
    assert_eq!(
        found,
        vec![5002, 12502],
        "a host, and a message in the tail"
    );
    conn.execute(
        "UPDATE LogRows SET host_id = (SELECT host_id FROM LogRows WHERE id = 5002) \
         WHERE id IN (5003, 8000)",
        [],
    )
    .unwrap();
    let found = ids(&mut s, word_filter(&["haystack"]), false, None);
    assert_eq!(found, vec![5002, 5003, 12502], "id 8000 is in segment 15");
    // Counted the same way.
    let counted = s.count(&word_filter(&["haystack"])).unwrap();
    assert_eq!(counted, 3);
}

/// A writer that restarts in the middle of a block rebuilds that block's filter from
/// its rows when the block completes, and an old store gains filters on open.
#[test]
fn filters_survive_restarts_and_are_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    {
        let mut s = SqliteWriter::open(&path).unwrap();
        let mut b = Batch::new();
        for i in 0..3000 {
            b.push(&row(i));
        }
        s.insert(std::slice::from_ref(&b)).unwrap();
    }
    {
        // A new writer: it did not see block 0's first 3,000 rows.
        let mut w = SqliteWriter::open(&path).unwrap();
        let mut b = Batch::new();
        for i in 3000..5000 {
            b.push(&row(i));
        }
        w.insert(std::slice::from_ref(&b)).unwrap();
        let mut s = SqliteReader::open(&path).unwrap();
        assert_eq!(ids(&mut s, word_filter(&["needle"]), false, None).len(), 1);
        assert_eq!(ids(&mut s, word_filter(&["finally"]), false, None).len(), 1);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let blocks: Vec<i64> = conn
        .prepare("SELECT DISTINCT id >> 6 FROM LogTokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(blocks, vec![0]);
    // Back to schema 3: no filters, no counts, and the rows in a `Logs` table with the
    // names and texts (schema 5 made it a view). A writer migrates and backfills.
    conn.execute_batch(
        "DROP TABLE LogTokens; DROP INDEX LogBlocks_max_time;
         ALTER TABLE LogBlocks DROP COLUMN counts;
         ALTER TABLE LogBlocks DROP COLUMN time_ranges;
         CREATE TABLE LogsV3 AS SELECT id, time_us, received_us, severity, facility, hostname,
             source, host_id, source_id, procid, msgid, structured_data, message, protocol,
             peer, timestamp, LogLevel FROM Logs;
         DROP VIEW Logs; DROP TABLE LogRows; DROP TABLE Peers;
         ALTER TABLE LogsV3 RENAME TO Logs; PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    assert!(
        SqliteReader::open(&path).is_err(),
        "logq reads only the current schema"
    );
    drop(SqliteWriter::open(&path).unwrap());
    let mut s = SqliteReader::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM LogTokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 64, "block 0's filter, in 64 slices");
    conn.execute("UPDATE LogRows SET message = 'smuggled' WHERE id = 7", [])
        .unwrap();
    assert!(ids(&mut s, word_filter(&["smuggled"]), false, None).is_empty());
    assert_eq!(ids(&mut s, word_filter(&["needle"]), false, None).len(), 1);
    let q = StatsQuery::everything(Filter::default(), Vec::new());
    assert_eq!(s.stats(&q).unwrap()[0].count, 5000, "counts backfilled");
}

/// Filters that were never stored (the relay stopped before the filer got to them) are
/// made at the next start by the filer, from the stored rows, while the relay runs:
/// the same bytes as before, and word search skips those blocks again.
#[test]
fn missing_filters_are_made_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir);
    let path = dir.path().join("w.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let filters = |conn: &rusqlite::Connection| -> Vec<(i64, Vec<u8>)> {
        conn.prepare("SELECT id, filter FROM LogTokens ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let reference = filters(&conn);
    assert_eq!(reference.len(), 3 * 64);
    assert_eq!(word_filter_backlog(&path).unwrap(), (3, 0));
    conn.execute("DELETE FROM LogTokens WHERE id >> 6 IN (0, 2)", [])
        .unwrap();
    // What `logq --disk-usage` reports: two of the three complete blocks lack filters.
    assert_eq!(word_filter_backlog(&path).unwrap(), (3, 2));
    // Without its filter, block 0 is read whole.
    let message: String = conn
        .query_row("SELECT message FROM LogRows WHERE id = 100", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute("UPDATE LogRows SET message = 'smuggled' WHERE id = 100", [])
        .unwrap();
    assert_eq!(
        ids(&mut s, word_filter(&["smuggled"]), false, None),
        vec![100]
    );
    conn.execute("UPDATE LogRows SET message = ?1 WHERE id = 100", [&message])
        .unwrap();

    let mut w = SqliteWriter::open(&path).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while filters(&conn).len() < reference.len() && std::time::Instant::now() < deadline {
        // What the relay does when no rows come: store the filters made meanwhile.
        w.idle();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let made = filters(&conn);
    let differ: Vec<i64> = made
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0)
        .collect();
    assert!(
        made == reference,
        "blocks 0 and 2 made again, byte for byte: {} of {} slices, differing {differ:?}",
        made.len(),
        reference.len()
    );
    drop(w);
    assert_eq!(word_filter_backlog(&path).unwrap(), (3, 0));
    conn.execute("UPDATE LogRows SET message = 'smuggled' WHERE id = 100", [])
        .unwrap();
    assert!(ids(&mut s, word_filter(&["smuggled"]), false, None).is_empty());
}
