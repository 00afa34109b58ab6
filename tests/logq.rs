//! `logq` end to end: a real SQLite store filled through the store API, the real binary.

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Facility, Level, LogMessage, Protocol, SdElement};
use logrelay::store::sqlite::SqliteWriter;
use logrelay::store::{Batch, StoreWriter};
use std::borrow::Cow;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

struct Rec {
    ago_min: i64,
    level: Level,
    facility: u8,
    host: &'static str,
    source: &'static str,
    msg: &'static str,
    sd: Option<(&'static str, &'static str, &'static str)>,
}

const fn rec(
    ago_min: i64,
    level: Level,
    facility: u8,
    host: &'static str,
    source: &'static str,
    msg: &'static str,
) -> Rec {
    Rec {
        ago_min,
        level,
        facility,
        host,
        source,
        msg,
        sd: None,
    }
}

fn rows() -> Vec<Rec> {
    vec![
        rec(3000, Level::Info, 1, "web1", "nginx", "very old request"),
        rec(
            120,
            Level::Err,
            16,
            "db1",
            "postgres",
            "Connection refused by peer",
        ),
        rec(90, Level::Warning, 16, "web1", "nginx", "upstream slow"),
        rec(
            50,
            Level::Crit,
            4,
            "web2",
            "sshd",
            "possible break-in attempt",
        ),
        rec(40, Level::Notice, 3, "web2", "cron", "job started"),
        rec(
            30,
            Level::Debug,
            3,
            "db1",
            "postgres",
            "checkpoint starting",
        ),
        Rec {
            sd: Some(("origin@32473", "ip", "10.0.0.7")),
            ..rec(20, Level::Info, 1, "web1", "billing", "invoice 17 paid")
        },
        rec(
            10,
            Level::Err,
            1,
            "web2",
            "billing",
            "payment FAILED for order 9",
        ),
        rec(
            5,
            Level::Info,
            1,
            "web3",
            "billing-worker",
            "line one\nline two",
        ),
        rec(1, Level::Alert, 0, "db2", "kernel", "disk failure imminent"),
    ]
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn to_message(r: &Rec, now: DateTime<Utc>) -> LogMessage<'static> {
    let t = now - Duration::minutes(r.ago_min);
    let mut m = LogMessage::new(r.msg, r.level, t);
    m.facility = Facility::from_code(r.facility);
    m.hostname = Some(Cow::Borrowed(r.host));
    m.source = Some(Cow::Borrowed(r.source));
    m.procid = Some(Cow::Borrowed("42"));
    m.protocol = Protocol::Rfc5424;
    if let Some((id, k, v)) = r.sd {
        m.structured_data = vec![SdElement {
            id: id.into(),
            params: vec![(k.into(), v.into())],
        }];
    }
    m
}

fn insert(db: &Path, recs: &[Rec]) {
    let mut store = SqliteWriter::open(db).unwrap();
    let mut b = Batch::new();
    let now = now();
    for r in recs {
        b.push(&to_message(r, now));
    }
    store.insert(&[b]).unwrap();
}

fn filled() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    insert(&db, &rows());
    (dir, db)
}

fn logq(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .args(["--utc"])
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_CONFIG")
        .output()
        .unwrap()
}

/// The messages printed by `-o cat`, in order.
fn messages(db: &Path, args: &[&str]) -> Vec<String> {
    let mut a = vec!["-o", "cat"];
    a.extend_from_slice(args);
    let out = logq(db, &a);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn filters_each_flag() {
    let (_d, db) = filled();
    let m = |a: &[&str]| messages(&db, a);
    assert_eq!(
        m(&["-p", "crit"]),
        ["possible break-in attempt", "disk failure imminent"]
    );
    assert_eq!(
        m(&["-p", "err..warning"]),
        [
            "Connection refused by peer",
            "upstream slow",
            "payment FAILED for order 9",
        ]
    );
    assert_eq!(m(&["-p", "3"]).len(), 4);
    assert_eq!(
        m(&["-S", "-15min"]),
        [
            "payment FAILED for order 9",
            "line one",
            "line two",
            "disk failure imminent"
        ]
    );
    assert_eq!(
        m(&["-S", "100 min ago", "-U", "45min ago"]),
        ["upstream slow", "possible break-in attempt"]
    );
    assert_eq!(m(&["-s", "billing*"]).len(), 4);
    assert_eq!(
        m(&["-s", "billing"]),
        ["invoice 17 paid", "payment FAILED for order 9"]
    );
    assert_eq!(
        m(&["-s", "cron", "-s", "kernel"]),
        ["job started", "disk failure imminent"]
    );
    assert_eq!(m(&["-H", "db?"]).len(), 3);
    assert_eq!(
        m(&["--facility", "auth,kern"]),
        ["possible break-in attempt", "disk failure imminent"]
    );
    assert_eq!(m(&["--facility", "16"]).len(), 2);
    assert_eq!(
        m(&["hostname=web2", "source!=sshd"]),
        ["job started", "payment FAILED for order 9"]
    );
    assert_eq!(m(&["facility=daemon"]).len(), 2);
    assert_eq!(m(&["origin@32473.ip=10.0.0.7"]), ["invoice 17 paid"]);
    assert_eq!(m(&["origin@32473.ip!=10.0.0.7"]).len(), 10);
    assert_eq!(
        m(&["-p", "err", "-s", "billing", "-S", "-1h"]),
        ["payment FAILED for order 9"]
    );
}

#[test]
fn grep_is_smart_case() {
    let (_d, db) = filled();
    assert_eq!(
        messages(&db, &["-g", "fail"]),
        ["payment FAILED for order 9", "disk failure imminent"]
    );
    assert_eq!(
        messages(&db, &["-g", "FAIL"]),
        ["payment FAILED for order 9"]
    );
    assert_eq!(
        messages(&db, &["-g", "^(job|upstream)"]),
        ["upstream slow", "job started"]
    );
    assert_eq!(
        messages(&db, &["-g", "o", "-n", "2"]),
        ["payment FAILED for order 9", "line one", "line two"]
    );
}

#[test]
fn lines_and_ordering() {
    let (_d, db) = filled();
    assert_eq!(
        messages(&db, &["-n", "2"]),
        ["line one", "line two", "disk failure imminent"]
    );
    assert_eq!(
        messages(&db, &["-n", "2", "-r"]),
        ["disk failure imminent", "line one", "line two"]
    );
    assert_eq!(
        messages(&db, &["-r"]).first().unwrap(),
        "disk failure imminent"
    );
    assert_eq!(messages(&db, &[]).first().unwrap(), "very old request");
    assert_eq!(messages(&db, &["-n", "all"]).len(), 11);
}

#[test]
fn output_modes() {
    let (_d, db) = filled();
    let out = logq(&db, &["-n", "2"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(" web3 billing-worker[42]: line one"),
        "{text}"
    );
    let indent = lines[0].find("line one").unwrap();
    assert_eq!(lines[1], format!("{}line two", " ".repeat(indent)));
    assert!(lines[2].ends_with(" db2 kernel[42]: disk failure imminent"));
    let precise = String::from_utf8(logq(&db, &["-n", "1", "-o", "short-precise"]).stdout).unwrap();
    assert!(
        precise.split_whitespace().nth(2).unwrap().contains('.'),
        "{precise}"
    );
    let iso = String::from_utf8(logq(&db, &["-n", "1", "-o", "short-iso"]).stdout).unwrap();
    assert!(
        iso.split_whitespace().next().unwrap().ends_with("+0000"),
        "{iso}"
    );

    let json = String::from_utf8(logq(&db, &["-o", "json", "-s", "billing"]).stdout).unwrap();
    let objs: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    let keys: Vec<&str> = objs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "timestamp",
            "received",
            "level",
            "facility",
            "hostname",
            "source",
            "procid",
            "msgid",
            "structured_data",
            "message",
            "protocol",
            "peer",
        ]
    );
    assert_eq!(objs[0]["structured_data"]["origin@32473"]["ip"], "10.0.0.7");
    assert_eq!(
        (objs[1]["level"].as_str(), objs[1]["facility"].as_str()),
        (Some("err"), Some("user"))
    );
    assert!(objs[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        objs[0]["timestamp"].as_str().unwrap().len(),
        "2026-11-23T10:00:00.000000Z".len()
    );

    let pretty = String::from_utf8(logq(&db, &["-o", "json-pretty", "-n", "1"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(v["message"], "disk failure imminent");
    assert!(pretty.lines().count() > 10);
}

#[test]
fn colour_rules() {
    let (_d, db) = filled();
    let always = String::from_utf8(logq(&db, &["--color", "always", "-p", "err"]).stdout).unwrap();
    assert!(
        always.contains("\x1b[31") || always.contains(";31m"),
        "{always:?}"
    );
    let piped = String::from_utf8(logq(&db, &["-p", "err"]).stdout).unwrap();
    assert!(!piped.contains('\x1b'), "auto must not colour a pipe");
    let never = String::from_utf8(logq(&db, &["--color", "never", "-p", "err"]).stdout).unwrap();
    assert!(!never.contains('\x1b'));
    let out = Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(["--db", &format!("sqlite:{}", db.display()), "-p", "warning"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8(out.stdout).unwrap().contains('\x1b'));
}

#[test]
fn exit_codes_and_errors() {
    let (_d, db) = filled();
    let code = |a: &[&str]| logq(&db, a).status.code();
    let err = |a: &[&str]| String::from_utf8(logq(&db, a).stderr).unwrap();
    assert_eq!(code(&["-p", "emerg"]), Some(0), "no rows is success");
    assert_eq!(code(&["-p", "emerg", "--fail-if-empty"]), Some(1));
    assert_eq!(code(&["-g", "no such text"]), Some(1));
    assert_eq!(code(&["-g", "paid"]), Some(0));
    for (args, needle) in [
        (&["-p", "warnig"][..], "did you mean 'warning'"),
        (&["-S", "last tuesday"][..], "bad time"),
        (&["hostnme=db1"][..], "did you mean 'hostname'"),
        (&["-g", "(unclosed"][..], "bad regex"),
        (&["--nope"][..], "unexpected argument"),
        (&["-n", "many"][..], "bad line count"),
        (&["--facility", "kernal"][..], "did you mean 'kern'"),
    ] {
        let out = logq(&db, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout before arguments are checked"
        );
        let e = err(args);
        assert!(
            e.starts_with("logq: error: ") && e.contains(needle),
            "{args:?}: {e}"
        );
    }
    let missing = logq(Path::new("/nonexistent/dir/logs.db"), &[]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("logq: error: no store at"));
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"this is not a database, just text padding ........................................................................................").unwrap();
    assert_eq!(logq(garbage.path(), &[]).status.code(), Some(3));
}

fn spawn_follow(db: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .args(["-f", "-o", "cat"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads lines from the child with a deadline (on a thread, so a stall cannot hang).
fn read_lines(
    child: &mut std::process::Child,
    n: usize,
) -> (Vec<String>, BufReader<std::process::ChildStdout>) {
    read_more(BufReader::new(child.stdout.take().unwrap()), n)
}

fn read_more(
    mut r: BufReader<std::process::ChildStdout>,
    n: usize,
) -> (Vec<String>, BufReader<std::process::ChildStdout>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..n {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            got.push(line.trim_end().to_string());
        }
        let _ = tx.send((got, r));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("follow output in time")
}

fn terminate(child: &mut std::process::Child) -> Option<i32> {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        if start.elapsed().as_secs() > 10 {
            let _ = child.kill();
            panic!("logq -f did not exit on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn follow_prints_the_tail_then_new_rows_and_ends_on_sigterm() {
    let (_d, db) = filled();
    let mut child = spawn_follow(&db, &["-n", "2", "-p", "err"]);
    let (first, reader) = read_lines(&mut child, 2);
    assert_eq!(
        first,
        ["payment FAILED for order 9", "disk failure imminent"]
    );
    // New rows after it started: a matching one with an OLD timestamp must still show
    // (follow goes by row id, not time); the info row must not.
    insert(
        &db,
        &[
            rec(600, Level::Err, 1, "h", "late", "late but new"),
            rec(0, Level::Info, 1, "h", "x", "filtered out"),
        ],
    );
    insert(&db, &[rec(0, Level::Crit, 1, "h", "x", "second batch")]);
    let (next, _reader) = read_more(reader, 2);
    assert_eq!(next, ["late but new", "second batch"]);
    assert_eq!(terminate(&mut child), Some(0));
}

#[test]
fn follow_ends_cleanly_when_the_pipe_closes() {
    let (_d, db) = filled();
    let mut child = spawn_follow(&db, &["-n", "3"]);
    let (lines, reader) = read_lines(&mut child, 3);
    assert_eq!(lines.len(), 3);
    drop(reader); // like `| head -3`
    insert(
        &db,
        &[rec(0, Level::Info, 1, "h", "x", "after the reader left")],
    );
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "logq -f kept running after its pipe closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn follow_waits_for_a_store_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("later.db");
    let mut child = spawn_follow(&db, &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "must wait, not fail");
    insert(&db, &[rec(0, Level::Info, 1, "h", "x", "first row ever")]);
    // Rows that existed when following began are the "last N"; this one is new either way.
    let (lines, _r) = read_lines(&mut child, 1);
    assert_eq!(lines, ["first row ever"]);
    assert_eq!(terminate(&mut child), Some(0));
}
