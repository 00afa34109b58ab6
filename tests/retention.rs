//! Retention and archives end to end: real SQLite files, real archive files, the real
//! `logq` and `logrelayd` binaries.

mod common;

use chrono::{DateTime, Utc};
use common::Daemon;
use logrelay::message::{Facility, Level, LogMessage, Protocol, SdElement};
use logrelay::store::archive::ArchiveDir;
use logrelay::store::record_json;
use logrelay::store::sqlite::SqliteWriter;
use logrelay::store::{Batch, StoreWriter};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BLOCK: i64 = 4096;
const HOUR_US: i64 = 3_600_000_000;

/// `n` rows, row i at `t0_us + i * step_us`, with varied levels, hosts and sources.
fn fill(db: &Path, n: i64, t0_us: i64, step_us: i64) {
    let mut store = SqliteWriter::open(db).unwrap();
    let mut b = Batch::new();
    for i in 0..n {
        let t = DateTime::<Utc>::from_timestamp_micros(t0_us + i * step_us).unwrap();
        let text = format!(
            "row {i} user=u{} path=/api/v1/items/{} took {} ms",
            i % 97,
            i % 1013,
            i % 250
        );
        let mut m = LogMessage::new(&text, Level::from_code((i % 8) as u8).unwrap(), t);
        m.facility = Facility::from_code((i % 24) as u8);
        m.hostname = Some(Cow::Owned(format!("web-{}", i % 5)));
        m.source = Some(Cow::Owned(format!("app{}", i % 3)));
        m.protocol = Protocol::Rfc5424;
        b.push(&m);
        if b.len() == 5000 {
            store.insert(&[std::mem::take(&mut b)]).unwrap();
        }
    }
    store.insert(&[b]).unwrap();
}

fn logq(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(args)
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_CONFIG")
        .output()
        .unwrap()
}

/// The first `n` lines `logq -f` prints (read for at most 60 s), then the follow is
/// stopped.
fn follow_first_lines(db: &Path, args: &[&str], n: usize) -> Vec<String> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_logq"))
        .arg("-f")
        .args(args)
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = std::io::BufReader::new(stdout)
            .lines()
            .take(n)
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    lines.expect("logq -f printed its first page within 60 s")
}

/// `logq` without a store (`archive verify`).
fn logq_plain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `logq -o json` lines by id.
fn json_by_id(text: &str) -> BTreeMap<i64, String> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_i64().unwrap(), l.to_string())
        })
        .collect()
}

/// Every record in the archive files (by their manifests), as (id, `-o json` line);
/// repeats kept.
fn archived(dir: &Path) -> Vec<(i64, String)> {
    let archive = ArchiveDir::open(dir).unwrap();
    let mut out = Vec::new();
    for m in archive.manifests().unwrap() {
        archive
            .read(&m, &mut |id, r| {
                let mut line = String::new();
                record_json::write(id, r, &mut line);
                out.push((id, line));
                Ok(())
            })
            .unwrap();
    }
    out
}

fn disk_bytes(db: &Path) -> u64 {
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    std::fs::metadata(db).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// The bytes of the store's pages in use (without its free pages, with the WAL's).
fn pages_in_use(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let pragma = |name: &str| -> u64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
}

/// `max-age` removes exactly the blocks whose every row is older than the limit; the
/// rows left are exactly the reference selection; the archive holds every removed row
/// once, and `logq --archive` prints the same JSON as before the removal.
#[test]
fn max_age_removes_whole_old_blocks_and_archives_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    // 10 blocks' worth (ids 1..=40960), one row a second ending now.
    let n = 10 * BLOCK;
    let now = Utc::now().timestamp_micros();
    let step = 1_000_000;
    let t0 = now - n * step;
    fill(&db, n, t0, step);
    let before = ok(logq(&db, &["-o", "json"]));
    let before_rows = json_by_id(&before);
    assert_eq!(before_rows.len() as i64, n);
    // The limit falls inside block 4 (ids 16384..20479): blocks 0-3 go, block 4 stays.
    let cutoff_id = 4 * BLOCK + 2000;
    let age_s = (now - (t0 + (cutoff_id - 1) * step)) / 1_000_000;
    let age = format!("{age_s}s");
    let file_before = std::fs::metadata(&db).unwrap().len();
    let dry = ok(logq(&db, &["vacuum", "--max-age", &age, "--dry-run"]));
    let removed_ids = 4 * BLOCK - 1; // ids 1..=16383
    assert!(
        dry.contains(&format!(
            "would remove {} rows in 4 blocks",
            thousands(removed_ids)
        )),
        "{dry}"
    );
    assert_eq!(
        json_by_id(&ok(logq(&db, &["-o", "json"]))).len() as i64,
        n,
        "a dry run removes nothing"
    );
    let out = logq(
        &db,
        &[
            "vacuum",
            "--max-age",
            &age,
            "--archive",
            archive.to_str().unwrap(),
        ],
    );
    let said = ok(out);
    assert!(said.contains("removed"), "{said}");
    // The removal ends with SQLite's VACUUM: the file shrinks to the pages in use.
    let file_after = std::fs::metadata(&db).unwrap().len();
    assert!(
        file_after < file_before * 8 / 10,
        "4 of 10 blocks removed: {file_before} -> {file_after} bytes"
    );
    assert_eq!(
        file_after,
        pages_in_use(&db),
        "no free pages left in the file"
    );
    let after = json_by_id(&ok(logq(&db, &["-o", "json"])));
    let reference: BTreeMap<i64, String> = before_rows
        .iter()
        .filter(|(id, _)| **id >= 4 * BLOCK)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(after, reference);
    // A filtered, newest-first query equals the same selection of the reference.
    let filtered = ok(logq(&db, &["-o", "json", "-p", "err", "-H", "web-2", "-r"]));
    let want: Vec<&String> = reference
        .values()
        .rev()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["hostname"] == "web-2"
                && ["emerg", "alert", "crit", "err"].contains(&v["level"].as_str().unwrap())
        })
        .collect();
    assert_eq!(filtered.lines().collect::<Vec<_>>(), want);
    // Word search (block word filters) and counts (block summaries) after the removal.
    let has_word = |l: &String| l.contains("user=u42 ");
    let words = ok(logq(&db, &["-o", "json", "-w", "u42"]));
    let want: Vec<&String> = reference.values().filter(|l| has_word(l)).collect();
    assert!(!want.is_empty());
    assert_eq!(words.lines().collect::<Vec<_>>(), want);
    let count = ok(logq(&db, &["--count"]));
    assert_eq!(count.trim(), reference.len().to_string());
    // Every removed row is archived exactly once, as logq printed it.
    let mut in_archive = archived(&archive);
    in_archive.sort();
    let removed: Vec<(i64, String)> = before_rows
        .iter()
        .filter(|(id, _)| **id < 4 * BLOCK)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(in_archive, removed);
    // Store and archives together print what the store printed before.
    let a = archive.to_str().unwrap();
    assert_eq!(ok(logq(&db, &["-o", "json", "--archive", a])), before);
    let count = ok(logq(&db, &["--count", "--archive", a, "-w", "u42"]));
    let want = before_rows.values().filter(|l| has_word(l)).count();
    assert_eq!(
        count.trim(),
        want.to_string(),
        "counts include the archives"
    );
    let tail = ok(logq(
        &db,
        &[
            "-o",
            "json",
            "--archive",
            a,
            "-n",
            "5",
            "-r",
            "-p",
            "warning",
            "-s",
            "app1",
        ],
    ));
    let want_tail: Vec<&String> = before_rows
        .values()
        .rev()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["source"] == "app1"
                && ["emerg", "alert", "crit", "err", "warning"]
                    .contains(&v["level"].as_str().unwrap())
        })
        .take(5)
        .collect();
    assert_eq!(tail.lines().collect::<Vec<_>>(), want_tail);
    // Severities, newest first, a limit: picked from the archives without a scratch
    // store, merged with the store's.
    let errs = ok(logq(
        &db,
        &[
            "-o",
            "json",
            "--archive",
            a,
            "-p",
            "err",
            "-r",
            "-n",
            "15000",
        ],
    ));
    let want_errs: Vec<&String> = before_rows
        .values()
        .rev()
        .filter(|l| {
            l.contains("\"level\":\"err\"")
                || l.contains("\"level\":\"crit\"")
                || l.contains("\"level\":\"alert\"")
                || l.contains("\"level\":\"emerg\"")
        })
        .take(15000)
        .collect();
    let last: serde_json::Value = serde_json::from_str(want_errs[14_999]).unwrap();
    assert!(
        last["id"].as_i64().unwrap() < 4 * BLOCK,
        "reaches into the archives"
    );
    assert_eq!(errs.lines().collect::<Vec<_>>(), want_errs);
    // A follow's first page reaches into the archives as the query's does.
    let page = ["-o", "json", "--archive", a, "-p", "err", "-n", "15000"];
    let followed = follow_first_lines(&db, &page, 15000);
    assert_eq!(followed, ok(logq(&db, &page)).lines().collect::<Vec<_>>());
    // Old rows only in the archives: a time window before the cut.
    let since = DateTime::<Utc>::from_timestamp_micros(t0 + 100 * step)
        .unwrap()
        .to_rfc3339();
    let until = DateTime::<Utc>::from_timestamp_micros(t0 + 109 * step)
        .unwrap()
        .to_rfc3339();
    let window = ok(logq(
        &db,
        &[
            "-o",
            "json",
            "--archive",
            a,
            "-S",
            &since,
            "-U",
            &until,
            "--utc",
        ],
    ));
    assert_eq!(
        json_by_id(&window).keys().copied().collect::<Vec<_>>(),
        (101..=110).collect::<Vec<_>>()
    );
    // Verify: clean, then a flipped byte is found.
    let verified = logq_plain(&["archive", "verify", a]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let usage = ok(logq(&db, &["--disk-usage", "--archive", a]));
    assert!(
        usage.contains(&format!("rows      {}", thousands(n - removed_ids))),
        "{usage}"
    );
    assert!(usage.contains("archives"), "{usage}");
    assert!(usage.contains("words     filters for "), "{usage}");
    // Archives written before the columnar layout (JSON lines, manifests without a
    // format) read the same.
    rewrite_as_json_lines(&archive);
    assert_eq!(ok(logq(&db, &["-o", "json", "--archive", a])), before);
    assert!(logq_plain(&["archive", "verify", a]).status.success());
    let file = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let verified = logq_plain(&["archive", "verify", a]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("SHA-256"));
}

/// `-n` over the archives reads the archive files best first and stops once no
/// further file can hold a row to print: the rows equal the store's before the
/// removal, whichever files hold them, and a file the limit does not reach is never
/// opened (its data file deleted, `-n 10` still answers; `-n 20000` needs it).
#[test]
fn newest_rows_from_the_archives_read_only_the_files_they_need() {
    const DAY_US: i64 = 24 * HOUR_US;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let now = Utc::now().timestamp_micros();
    // Ids and times out of step: 10 days old, then 20 days old, then the last hours.
    fill(&db, 3 * BLOCK, now - 10 * DAY_US, 1_000_000);
    fill(&db, 3 * BLOCK, now - 20 * DAY_US, 1_000_000);
    fill(&db, 3 * BLOCK, now - 3 * BLOCK * 1_000_000, 1_000_000);
    // Plain filters, then ones the archives answer from a scratch store (a host, a
    // word), each reaching into one or both archive files.
    let queries: [&[&str]; 9] = [
        &["-n", "10"],
        &["-n", "12000"],
        &["-n", "20000"],
        &["-n", "7", "-p", "err"],
        &["-n", "25000", "-r"],
        &["-n", "2400", "-H", "web-3"],
        &["-n", "7000", "-H", "web-3"],
        &["-n", "300", "-w", "U5", "-r"],
        &["-n", "20", "-w", "u5", "-p", "warning"],
    ];
    let run = |q: &[&str], a: Option<&str>| {
        let mut args = vec!["-o", "json"];
        args.extend_from_slice(q);
        if let Some(a) = a {
            args.extend(["--archive", a]);
        }
        logq(&db, &args)
    };
    let before: Vec<String> = queries.iter().map(|q| ok(run(q, None))).collect();
    let a = archive.to_str().unwrap();
    // Two files: the 20-day-old blocks, then the 10-day-old ones.
    ok(logq(&db, &["vacuum", "--max-age", "15d", "--archive", a]));
    ok(logq(&db, &["vacuum", "--max-age", "5d", "--archive", a]));
    let manifests = ArchiveDir::open(&archive).unwrap().manifests().unwrap();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&ok(run(q, Some(a))), want, "logq {q:?} --archive");
    }
    let oldest = manifests.iter().min_by_key(|m| m.max_time_us).unwrap();
    std::fs::remove_file(archive.join(&oldest.file)).unwrap();
    assert_eq!(ok(run(&["-n", "10"], Some(a))), before[0]);
    assert_eq!(ok(run(&["-n", "12000"], Some(a))), before[1]);
    assert!(
        !run(&["-n", "20000"], Some(a)).status.success(),
        "the rows past the newer file's come from the deleted one"
    );
    // The archives are searched for the limit on their own: the newer file's 2,458
    // ten-day-old rows of web-3 come before any in the deleted one; the 7,000 need it.
    assert_eq!(ok(run(queries[5], Some(a))), before[5]);
    assert!(!run(queries[6], Some(a)).status.success());
}

/// The start of the rows in `tests/golden/archive-format-2`: `fill(db, BLOCK + 10,
/// GOLDEN_T0, 1 s)`, whose first block an earlier `logq vacuum --archive` wrote there.
const GOLDEN_T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// Archives in the columnar layout's formats 2 (names referred to by number at every
/// use), 3 (texts preceded by their lengths) and 4 (messages in row order, not grouped
/// by source), as earlier logq versions wrote them, read and verify as before.
#[test]
fn older_archive_formats_still_read() {
    for format in [2, 3, 4] {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/archive-format-{format}"));
        let manifests = ArchiveDir::open(&golden).unwrap().manifests().unwrap();
        assert_eq!(
            manifests.iter().map(|m| m.format).collect::<Vec<_>>(),
            [format]
        );
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("logs.db");
        fill(&db, BLOCK + 10, GOLDEN_T0, 1_000_000);
        let before = ok(logq(&db, &["-o", "json"]));
        ok(logq(&db, &["vacuum", "--max-age", "1s"]));
        assert_eq!(json_by_id(&ok(logq(&db, &["-o", "json"]))).len(), 11);
        let a = golden.to_str().unwrap();
        assert_eq!(
            ok(logq(&db, &["-o", "json", "--archive", a])),
            before,
            "format {format}"
        );
        let verified = logq_plain(&["archive", "verify", a]);
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

/// Every field as the store keeps it (names in dictionaries, peers as address and
/// port, structured data, procid and msgid, text beyond ASCII, empty and multi-line
/// messages, absent values) comes back from the archive as it was.
#[test]
fn every_field_comes_back_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let peers = [
        None,
        Some("127.0.0.1:514"),
        Some("[::1]:6514"),
        Some("unix"),
        Some("10.0.0.1:0"),
        Some("h:0514"),
    ];
    let t0 = Utc::now().timestamp_micros() - 10 * HOUR_US;
    let mut b = Batch::new();
    for i in 0..BLOCK + 10 {
        let at = |us: i64| DateTime::<Utc>::from_timestamp_micros(t0 + us).unwrap();
        let text = match i % 4 {
            0 => format!("row {i} grüße"),
            1 => format!("line one {i}\nline two ÿ \u{1F600}"),
            2 => String::new(),
            _ => format!("row {i} {}", "x".repeat((i % 300) as usize)),
        };
        let mut m = LogMessage::new(text, Level::from_code((i % 8) as u8).unwrap(), at(i * 1000));
        m.received = at(i * 1000 + (i % 7) * 13);
        m.facility = Facility::from_code((i % 24) as u8).filter(|_| i % 5 != 0);
        m.hostname = (i % 6 != 0).then(|| Cow::Owned(format!("host-{}", i % 11)));
        m.source = (i % 7 != 0).then(|| Cow::Owned(format!("app-{}", i % 4)));
        m.procid = (i % 3 != 0).then(|| Cow::Owned(format!("{}", 1000 + i % 300)));
        m.msgid = (i % 2 == 0).then_some(Cow::Borrowed("ID47"));
        if i % 3 == 1 {
            m.structured_data = vec![SdElement {
                id: "exampleSDID@32473".into(),
                params: vec![
                    ("iut".into(), i.to_string().into()),
                    ("note".into(), "quoted \"ü\" ] \\".into()),
                ],
            }];
        }
        m.protocol = Protocol::ALL[i as usize % Protocol::ALL.len()];
        m.peer = peers[i as usize % peers.len()].map(Cow::Borrowed);
        b.push(&m);
    }
    SqliteWriter::open(&db).unwrap().insert(&[b]).unwrap();
    let before = ok(logq(&db, &["-o", "json"]));
    let a = archive.to_str().unwrap();
    ok(logq(&db, &["vacuum", "--max-age", "1s", "--archive", a]));
    assert_eq!(json_by_id(&ok(logq(&db, &["-o", "json"]))).len(), 11);
    assert_eq!(ok(logq(&db, &["-o", "json", "--archive", a])), before);
    let verified = logq_plain(&["archive", "verify", a]);
    assert!(verified.status.success());
}

/// Rewrites every archive file as the first format had it: `-o json` lines, zstd,
/// a manifest without `format`.
fn rewrite_as_json_lines(dir: &Path) {
    use sha2::Digest;
    let archive = ArchiveDir::open(dir).unwrap();
    for m in archive.manifests().unwrap() {
        let mut text = String::new();
        archive
            .read(&m, &mut |id, r| {
                record_json::write(id, r, &mut text);
                text.push('\n');
                Ok(())
            })
            .unwrap();
        let data = zstd::encode_all(text.as_bytes(), 3).unwrap();
        let name = m.file.replace(".cols.zst", ".jsonl.zst");
        std::fs::write(dir.join(&name), &data).unwrap();
        std::fs::remove_file(dir.join(&m.file)).unwrap();
        let mut v = serde_json::to_value(&m).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("format");
        o.insert("file".into(), name.into());
        o.insert("bytes".into(), data.len().into());
        let sha: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        o.insert("sha256".into(), sha.into());
        let manifest = dir.join(m.file.replace(".cols.zst", ".manifest.json"));
        std::fs::write(manifest, serde_json::to_string(&v).unwrap()).unwrap();
    }
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// With `max-size`, the store's file plus WAL stays within the cap (and one block)
/// while messages keep arriving; the newest rows stay, the oldest go in whole blocks.
#[test]
fn max_size_holds_while_ingest_goes_on() {
    let cap: u64 = 6 << 20;
    let d = Daemon::start(&["--retention-max-size", "6MiB"]);
    let mut s = d.connect();
    let mut largest = 0u64;
    let mut largest_file = 0u64;
    let total = 60_000;
    let started = Instant::now();
    let mut line = String::new();
    for i in 0..total {
        line.clear();
        line.push_str(&format!(
            "<14>1 2026-11-30T10:00:00.000Z web-{} app{} {} - - request {i} user=u{} path=/api/v1/items/{} status=200 took {} ms and some more words to look like a real line\n",
            i % 7, i % 3, 1000 + i % 50, i % 97, i % 1013, i % 250
        ));
        s.write_all(line.as_bytes()).unwrap();
        if i % 250 == 249 {
            largest = largest.max(disk_bytes(&d.db));
            largest_file = largest_file.max(std::fs::metadata(&d.db).map_or(0, |m| m.len()));
        }
        if i % 1000 == 999 {
            // About 10,000 messages a second; retention looks four times a second.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(s);
    let rows = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ids: Vec<i64> = common::read_rows(&d.db).iter().map(|r| r.id).collect();
            if ids.last() == Some(&(total as i64)) || Instant::now() > deadline {
                break ids;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_millis(1500));
    largest = largest.max(disk_bytes(&d.db));
    let rows_now: Vec<i64> = common::read_rows(&d.db).iter().map(|r| r.id).collect();
    assert_eq!(rows.last(), Some(&(total as i64)), "the newest row is kept");
    let first = rows_now[0];
    assert!(first > 1, "old rows were removed");
    assert_eq!(
        first % BLOCK,
        0,
        "removed in whole blocks (first id left {first})"
    );
    assert_eq!(
        rows_now.len() as i64,
        total as i64 - first + 1,
        "no gap in what is left"
    );
    // One block of rows on disk: the pages in use (without free pages) per row now.
    let in_use = pages_in_use(&d.db);
    let block_bytes = in_use / rows_now.len() as u64 * BLOCK as u64;
    eprintln!(
        "largest file + WAL {largest} B (file alone {largest_file} B), cap {cap} B, \
         block ~{block_bytes} B, {} rows kept, {} s",
        rows_now.len(),
        started.elapsed().as_secs()
    );
    assert!(
        largest <= cap + block_bytes,
        "file + WAL reached {largest} B with a cap of {cap} B and blocks of ~{block_bytes} B"
    );
    assert!(
        in_use + block_bytes >= cap / 2,
        "the cap is used ({in_use} B of pages in use under a cap of {cap} B), not kept empty"
    );
}

/// Pages a transaction adds past the file's end are in the WAL only until a checkpoint
/// copies them, and the file then grows by them while the WAL keeps its share of the
/// cap: the size retention measures counts them already (`db_bytes`), where the file's
/// length does not.
#[test]
fn the_store_size_counts_new_pages_only_the_wal_holds() {
    use logrelay::store::sqlite::retention::SqliteRetention;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    fill(&db, 20_000, 1_700_000_000_000_000, 1_000);
    let file_len = || std::fs::metadata(&db).unwrap().len();
    let before = file_len();
    // Another connection doubles the rows without a checkpoint (kept open: closing it
    // would copy its pages into the file).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch(
        "INSERT INTO LogRows (time_us, received_us, severity, protocol, message)
            SELECT time_us, received_us, severity, protocol, message FROM LogRows",
    )
    .unwrap();
    let store = SqliteRetention::open(&db).unwrap();
    let sizes = store.sizes().unwrap();
    let db_bytes = store.db_bytes().unwrap();
    assert_eq!(file_len(), before, "no checkpoint ran");
    assert_eq!(sizes.file_bytes, before, "the file's length on disk");
    assert!(
        db_bytes >= before + before / 2,
        "the new rows' pages count: {db_bytes} B against a file of {before} B"
    );
    drop(store);
    drop(conn);
    assert_eq!(
        file_len(),
        db_bytes,
        "the file grew to that size at the checkpoint"
    );
}

/// A reader that holds an old snapshot keeps the WAL from starting over, so it grows past
/// its share of the cap for a while. Removing rows cannot shrink it: retention counts
/// only the WAL's reserved share and keeps a cap's worth of rows instead of emptying the
/// store (each pass used to see the store over the cap and remove more, whose deletes
/// grew the WAL further).
#[test]
fn a_reader_holding_the_wal_does_not_make_retention_empty_the_store() {
    let d = Daemon::start(&["--retention-max-size", "6MiB"]);
    let mut s = d.connect();
    let send = |s: &mut std::net::TcpStream, from: usize, to: usize| {
        let mut line = String::new();
        for i in from..to {
            line.clear();
            line.push_str(&format!(
                "<14>1 2026-11-30T10:00:00.000Z web-{} app {} - - request {i} user=u{} path=/api/v1/items/{} status=200 and some more words\n",
                i % 7, 1000 + i % 50, i % 97, i % 1013
            ));
            s.write_all(line.as_bytes()).unwrap();
            if i % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let wait_for_id = |id: i64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while common::read_rows(&d.db).last().map(|r| r.id) != Some(id) {
            assert!(Instant::now() < deadline, "row {id} was not stored in 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    send(&mut s, 0, 10_000);
    wait_for_id(10_000);
    let reader = rusqlite::Connection::open(&d.db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM Logs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 10_000);
    let total = 50_000;
    send(&mut s, 10_000, total);
    wait_for_id(total as i64);
    std::thread::sleep(Duration::from_millis(1500));
    let wal_while_held = disk_bytes(&d.db) - std::fs::metadata(&d.db).unwrap().len();
    let kept = common::read_rows(&d.db).len() as i64;
    reader.execute_batch("COMMIT").unwrap();
    eprintln!("WAL {wal_while_held} B while the reader held it; {kept} rows kept");
    assert!(
        wal_while_held > 6 << 20,
        "the held WAL grew past the cap ({wal_while_held} B): the case under test"
    );
    assert!(
        kept >= 3 * BLOCK,
        "retention kept {kept} rows of {total} under a 6 MiB cap (a cap's worth is ~20,000)"
    );
    // Let go, the WAL is emptied into the file and retention brings the pages in use
    // back under the cap (the file keeps its size, its free pages reused), keeping a
    // cap's worth.
    let cap = 6u64 << 20;
    let deadline = Instant::now() + Duration::from_secs(15);
    while pages_in_use(&d.db) > cap {
        assert!(
            Instant::now() < deadline,
            "{} B of pages in use over a {cap} B cap after the reader let go",
            pages_in_use(&d.db)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = common::read_rows(&d.db);
    eprintln!(
        "{} B of pages in use, {} rows kept",
        pages_in_use(&d.db),
        rows.len()
    );
    assert_eq!(rows.last().map(|r| r.id), Some(total as i64));
    assert!(
        rows.len() as i64 >= 3 * BLOCK,
        "after the reader let go, {} rows kept of {total} under a 6 MiB cap",
        rows.len()
    );
}

/// An archive dir that does not exist stops retention with a message; nothing is removed.
#[test]
fn missing_archive_dir_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let now = Utc::now().timestamp_micros();
    fill(&db, 3 * BLOCK, now - 48 * HOUR_US, 1000);
    let missing = dir.path().join("not-mounted");
    let d = Daemon::start_with_db(
        dir,
        db.clone(),
        "127.0.0.1:0",
        &[
            "--retention-max-age",
            "1h",
            "--retention-archive-dir",
            missing.to_str().unwrap(),
        ],
    );
    assert!(d.wait_stderr("retention stopped"), "{}", d.stderr());
    assert!(d.stderr().contains("not-mounted"));
    assert_eq!(common::read_rows(&db).len() as i64, 3 * BLOCK);
}

/// An archive dir on a full disk stops retention with the reason; no row is removed
/// that was not archived. With room again, retention goes on by itself: every row is
/// then in the store or in the archives, exactly once, as `logq` printed it before.
#[test]
fn full_archive_dir_removes_nothing_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = common::SmallDisk::mount(&dir.path().join("small"), "2m") else {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    };
    let n = 3 * BLOCK;
    let (db, _, before) = old_rows_to_archive(dir.path(), n);
    let filler = disk.fill_up();
    let a = disk.0.to_str().unwrap().to_string();
    let args = archive_args(&a);
    let d = Daemon::start_with_db(dir, db.clone(), "127.0.0.1:0", &args);
    assert!(d.wait_stderr("retention stopped"), "{}", d.stderr());
    assert!(
        d.stderr().contains("No space left on device"),
        "{}",
        d.stderr()
    );
    // Another pass or two, still without room: nothing goes.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(common::read_rows(&db).len() as i64, n);
    assert!(archived(&disk.0).is_empty());
    let names: Vec<String> = std::fs::read_dir(&disk.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["filler"], "a failed write leaves no file behind");
    std::fs::remove_file(&filler).unwrap();
    let left = only_newest_block_left(&db, &d, 30);
    let all = archived(&disk.0);
    let ids: std::collections::BTreeSet<i64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), all.len(), "no row archived twice");
    assert_eq!(
        ids.len() as i64 + left,
        n,
        "every row in the store or the archives"
    );
    assert_eq!(ok(logq(&db, &["-o", "json", "--archive", &a])), before);
    assert!(logq_plain(&["archive", "verify", &a]).status.success());
}

/// `n` rows two days old in `dir`/logs.db and an empty `dir`/archive, for a relay that
/// archives all but the newest block; with what `logq -o json` printed before.
fn old_rows_to_archive(dir: &Path, n: i64) -> (PathBuf, PathBuf, String) {
    let db = dir.join("logs.db");
    let archive = dir.join("archive");
    std::fs::create_dir(&archive).unwrap();
    fill(&db, n, Utc::now().timestamp_micros() - 48 * HOUR_US, 1000);
    let before = ok(logq(&db, &["-o", "json"]));
    (db, archive, before)
}

fn archive_args(archive: &str) -> [&str; 4] {
    [
        "--retention-max-age",
        "1h",
        "--retention-archive-dir",
        archive,
    ]
}

/// Waits up to `secs` until retention has left only the newest block; the rows left.
fn only_newest_block_left(db: &Path, d: &Daemon, secs: u64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while common::read_rows(db).len() as i64 > BLOCK && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = common::read_rows(db).len() as i64;
    assert!(
        left <= BLOCK,
        "retention finished after the restart ({left} rows left): {}",
        d.stderr()
    );
    left
}

/// kill -9 while the relay archives, then a restart: every row is in the store or in
/// the archives, and store and archives together print exactly what was there before.
#[test]
fn kill_during_archiving_loses_nothing() {
    for delay_ms in [100u64, 500] {
        let dir = tempfile::tempdir().unwrap();
        let n = 12 * BLOCK;
        let (db, archive, before) = old_rows_to_archive(dir.path(), n);
        let a = archive.to_str().unwrap().to_string();
        let args = archive_args(&a);
        let d = Daemon::start_with_db(dir, db.clone(), "127.0.0.1:0", &args);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(d.pid(), libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(200));
        let dir = std::mem::replace(&mut { d }.dir, tempfile::tempdir().unwrap());
        let d = Daemon::start_with_db(dir, db.clone(), "127.0.0.1:0", &args);
        let left = only_newest_block_left(&db, &d, 30);
        let both = ok(logq(&db, &["-o", "json", "--archive", &a]));
        assert_eq!(both, before, "kill after {delay_ms} ms");
        let ids: std::collections::BTreeSet<i64> =
            archived(&archive).iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids.len() as i64 + left,
            n,
            "every row in the store or the archives"
        );
        assert!(logq_plain(&["archive", "verify", &a]).status.success());
    }
}

/// SIGTERM while the relay archives (on its archive thread), then a restart: the stop
/// leaves no half-written file, nothing is lost and no row is archived twice.
#[test]
fn stop_during_archiving_loses_nothing_and_archives_once() {
    for delay_ms in [400u64, 1200] {
        let dir = tempfile::tempdir().unwrap();
        let n = 24 * BLOCK;
        let (db, archive, before) = old_rows_to_archive(dir.path(), n);
        let a = archive.to_str().unwrap().to_string();
        let args = archive_args(&a);
        let mut d = Daemon::start_with_db(dir, db.clone(), "127.0.0.1:0", &args);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let (status, stderr) = d.terminate();
        assert!(status.success(), "{stderr}");
        let names: Vec<String> = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "a stop leaves no half-written file: {names:?}"
        );
        assert!(logq_plain(&["archive", "verify", &a]).status.success());
        let d = d.start_again(&args);
        let left = only_newest_block_left(&db, &d, 60);
        assert_eq!(
            ok(logq(&db, &["-o", "json", "--archive", &a])),
            before,
            "stop after {delay_ms} ms"
        );
        let all = archived(&archive);
        let ids: std::collections::BTreeSet<i64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), all.len(), "no row archived twice");
        assert_eq!(
            ids.len() as i64 + left,
            n,
            "every row in the store or the archives"
        );
        assert!(logq_plain(&["archive", "verify", &a]).status.success());
    }
}

/// The archive files' id ranges, in id order.
fn archive_ranges(dir: &Path) -> Vec<(i64, i64)> {
    let archive = ArchiveDir::open(dir).unwrap();
    archive
        .manifests()
        .unwrap()
        .iter()
        .map(|m| (m.first_id, m.last_id))
        .collect()
}

/// With `max-size` and an archive dir, the oldest blocks beyond half of the cap are
/// archived while they are still stored (nothing is due yet): queries with the archives
/// print every row once, as without them. Under a lower cap those rows then go without
/// being archived again, and store and archives together still print what was there.
#[test]
fn archives_ahead_of_the_cap_and_removes_without_archiving_again() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30 * BLOCK;
    let db = dir.path().join("logs.db");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    fill(&db, n, Utc::now().timestamp_micros() - HOUR_US, 1000);
    let before = ok(logq(&db, &["-o", "json"]));
    let a = archive.to_str().unwrap().to_string();
    // Retention counts the pages in use, its WAL's share (an eighth of the cap and a
    // quarter of that) and three blocks of room (two, and one removal transaction's):
    // 5 blocks to spare under this cap, and ~19 blocks beyond its half.
    let used = pages_in_use(&db);
    let block = used / 31;
    let cap = (used + 5 * block) * 8 / 7;
    let cap_arg = cap.to_string();
    let args = [
        "--retention-max-size",
        &cap_arg,
        "--retention-archive-dir",
        &a,
    ];
    let d = Daemon::start_with_db(dir, db.clone(), "127.0.0.1:0", &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while archive_ranges(&archive).is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing archived: {}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // One whole run (16 blocks) ahead; the blocks after it wait to make a whole one.
    std::thread::sleep(Duration::from_millis(1000));
    let ahead = archive_ranges(&archive);
    assert_eq!(ahead, [(0, 16 * BLOCK - 1)], "{}", d.stderr());
    assert_eq!(
        common::read_rows(&db).len() as i64,
        n,
        "nothing removed yet"
    );
    // Rows both archived and stored come once, whichever way the query reads them:
    // picked as decoded (newest first, a limit), through a scratch store (a word), counted.
    for q in [
        &["-p", "err", "-n", "5000", "-o", "json"][..],
        &["-w", "u42", "-o", "json"],
        &["--count"],
    ] {
        let with: Vec<&str> = q.iter().copied().chain(["--archive", &a]).collect();
        assert_eq!(ok(logq(&db, &with)), ok(logq(&db, q)), "{q:?}");
    }
    // A lower cap: ~10 blocks due, all of them archived already.
    let cap = (used - 8 * block) * 8 / 7;
    let cap_arg = cap.to_string();
    let args = [
        "--retention-max-size",
        &cap_arg,
        "--retention-archive-dir",
        &a,
    ];
    let d = d.start_again(&args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::read_rows(&db).len() as i64 > n - 8 * BLOCK {
        assert!(Instant::now() < deadline, "nothing removed: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let left = common::read_rows(&db);
    let first = left[0].id;
    assert_eq!(
        first % BLOCK,
        0,
        "whole blocks removed (first id left {first})"
    );
    assert!(
        first <= 16 * BLOCK,
        "only archived blocks were due ({first})"
    );
    let ranges = archive_ranges(&archive);
    assert_eq!(
        ranges[0], ahead[0],
        "the run archived ahead is not written again"
    );
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "no id in two files: {ranges:?}");
    }
    let all = archived(&archive);
    let ids: std::collections::BTreeSet<i64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), all.len(), "no row archived twice");
    assert!(
        ids.range(..first).count() as i64 == first - 1,
        "every removed row archived"
    );
    assert_eq!(ok(logq(&db, &["-o", "json", "--archive", &a])), before);
    assert!(logq_plain(&["archive", "verify", &a]).status.success());
}

/// The relay's removals leave copying the WAL into the file to its own checkpoints:
/// by default SQLite checkpoints inside any commit that finds the WAL past 1,000
/// pages, with its syncs, and a removal runs on the relay's writer thread. The same
/// removal on a default connection (the control) does rewrite the file.
#[test]
fn removals_leave_checkpoints_to_the_relay() {
    use logrelay::store::sqlite::retention::SqliteRetention;
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.db");
    let db = dir.path().join("logs.db");
    // 40 blocks in a store of 8 KiB pages (as stores made before 32 KiB pages are),
    // so that the removal writes well over 1,000 pages; the writer's close empties
    // the WAL into the file.
    let made = rusqlite::Connection::open(&control).unwrap();
    made.execute_batch("PRAGMA page_size = 8192; VACUUM;")
        .unwrap();
    drop(made);
    fill(&control, 40 * BLOCK, 1_700_000_000_000_000, 1_000);
    std::fs::copy(&control, &db).unwrap();
    // WAL frames: a 32-byte header, then a 24-byte header and a page each.
    let page_size = rusqlite::Connection::open(&control)
        .unwrap()
        .pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
        .unwrap() as u64;
    let wal_pages = |db: &Path| {
        let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
        std::fs::metadata(wal).map_or(0, |m| m.len().saturating_sub(32)) / (page_size + 24)
    };
    let mut changed = Vec::new();
    for (path, leave) in [(&control, false), (&db, true)] {
        let before = std::fs::read(path).unwrap();
        let mut store = SqliteRetention::open(path).unwrap();
        if leave {
            store.no_auto_checkpoint().unwrap();
        }
        // 32 blocks in one transaction: well over 1,000 pages of WAL.
        let rows = store.remove(0, 32 * BLOCK - 1).unwrap();
        assert_eq!(rows, 32 * BLOCK as u64 - 1, "ids start at 1");
        assert!(
            wal_pages(path) > 1_000,
            "the removal wrote {} WAL pages",
            wal_pages(path)
        );
        changed.push(std::fs::read(path).unwrap() != before);
        drop(store);
    }
    assert_eq!(
        changed,
        [true, false],
        "file rewritten by the removal's commit: control, relay"
    );
    let left: Vec<i64> = common::read_rows(&db).iter().map(|r| r.id).collect();
    assert_eq!(left.first(), Some(&(32 * BLOCK)));
    assert_eq!(left.len() as i64, 8 * BLOCK + 1);
}
