//! `logq`'s search, counts, stats and pager end to end: the real binary on a real SQLite
//! store; for the pager a real pseudo-terminal and a fake pager program that records its
//! arguments and what it was given.

use chrono::{DateTime, Duration, Utc};
use logrelay::message::{Level, LogMessage};
use logrelay::store::sqlite::SqliteWriter;
use logrelay::store::{Batch, StoreWriter};
use std::borrow::Cow;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration as StdDuration, Instant};

/// `logq ARGS --db DB` (the store last: before a subcommand it would rule one out).
fn logq(db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logq"));
    c.args(args)
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_CONFIG")
        .env_remove("LOGQ_PAGER")
        .env_remove("PAGER")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    c
}

fn run(db: &Path, args: &[&str]) -> Output {
    let out = logq(db, args).output().unwrap();
    assert!(
        out.status.code().is_some(),
        "logq {args:?} was killed: {out:?}"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fill(db: &Path, rows: &[(DateTime<Utc>, Level, &str, &str)]) {
    let mut s = SqliteWriter::open(db).unwrap();
    let mut b = Batch::new();
    for (t, level, source, msg) in rows {
        let mut m = LogMessage::new(msg.to_string(), *level, *t);
        m.source = Some(Cow::Owned(source.to_string()));
        m.hostname = Some(Cow::Borrowed("web1"));
        b.push(&m);
    }
    s.insert(std::slice::from_ref(&b)).unwrap();
}

fn small_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let t0 = Utc::now() - Duration::hours(1);
    let rows: Vec<(DateTime<Utc>, Level, &str, &str)> = (0..60)
        .map(|i| {
            let msg = match i {
                7 => "Payment FAILED for order 7",
                8 => "payment ok for order 8",
                9 => "paymentfailed is not the word",
                _ => "request served",
            };
            let source = if i % 2 == 0 { "Payment-Gateway" } else { "web" };
            let level = if i % 10 == 0 { Level::Err } else { Level::Info };
            (t0 + Duration::seconds(i), level, source, msg)
        })
        .collect();
    fill(&db, &rows);
    (dir, db)
}

#[test]
fn words_counts_and_globs() {
    let (_dir, db) = small_store();
    let o = run(&db, &["-w", "FAILED", "-o", "cat"]);
    assert_eq!(stdout(&o), "Payment FAILED for order 7\n");
    let o = run(&db, &["-w", "payment", "-w", "order", "-o", "cat"]);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    // -w matches the source's words too: Payment-Gateway's rows.
    assert_eq!(run(&db, &["-w", "gateway", "--count"]).stdout, b"30\n");
    assert_eq!(run(&db, &["--count"]).stdout, b"60\n");
    assert_eq!(run(&db, &["-p", "err", "--count"]).stdout, b"6\n");
    assert_eq!(run(&db, &["-g", r"\bfailed\b", "--count"]).stdout, b"1\n");
    // `-t` is `-s`; FIELD= takes the same globs.
    assert_eq!(run(&db, &["-t", "Payment*", "--count"]).stdout, b"30\n");
    assert_eq!(run(&db, &["source=Payment*", "--count"]).stdout, b"30\n");
    assert_eq!(run(&db, &["source!=Payment*", "--count"]).stdout, b"30\n");
    // A bare -n means 10.
    let o = run(&db, &["-n", "-o", "cat"]);
    assert_eq!(stdout(&o).lines().count(), 10);
    // A word with nothing to search for is a usage error.
    assert_eq!(run(&db, &["-w", "..."]).status.code(), Some(2));
}

#[test]
fn helpful_errors() {
    let (_dir, db) = small_store();
    let o = run(&db, &["sned"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean 'send'"), "{err}");
    let o = run(&db, &["--since", "1h"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("'-1h'"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn field_values_and_field_names() {
    let (_dir, db) = small_store();
    let o = run(&db, &["-F", "source"]);
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Payment-Gateway") && l.ends_with("30")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("web") && l.ends_with("30")),
        "{text}"
    );
    let o = run(&db, &["-F", "level", "-o", "json"]);
    let levels: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(levels.len(), 2);
    assert!(
        levels
            .iter()
            .any(|v| v["level"] == "err" && v["count"] == 6)
    );
    let o = run(&db, &["-N"]);
    let names = stdout(&o);
    for f in ["hostname", "source", "level", "facility", "message"] {
        assert!(names.lines().any(|l| l == f), "{f} in {names}");
    }
}

/// Rows every 10 minutes over the night clocks go back in central Europe (2026-10-25,
/// 03:00 CEST -> 02:00 CET at 01:00 UTC), counted in 1-hour and 1-day buckets of that
/// zone (a POSIX TZ rule, so no zone database is needed) against this test's own sums.
#[test]
fn stats_buckets_across_a_time_zone_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let start = DateTime::parse_from_rfc3339("2026-10-24T19:05:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let change = DateTime::parse_from_rfc3339("2026-10-25T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let rows: Vec<(DateTime<Utc>, Level, &str, &str)> = (0..60)
        .map(|i| {
            let level = if i % 3 == 0 { Level::Err } else { Level::Info };
            (start + Duration::minutes(10 * i), level, "app", "tick")
        })
        .collect();
    fill(&db, &rows);
    let offset = |t: DateTime<Utc>| if t < change { 2 } else { 1 };
    let mut want_hours: std::collections::BTreeMap<String, u64> = Default::default();
    let mut want_days: std::collections::BTreeMap<String, u64> = Default::default();
    for (t, ..) in &rows {
        let local = *t + Duration::hours(offset(*t));
        let hour = local.format("%Y-%m-%dT%H:00:00").to_string();
        *want_hours
            .entry(format!("{hour}+0{}:00", offset(*t)))
            .or_default() += 1;
        *want_days
            .entry(local.format("%Y-%m-%d").to_string())
            .or_default() += 1;
    }
    let stats = |bucket: &str| {
        let out = logq(&db, &["stats", "--bucket", bucket, "-o", "json"])
            .env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut got: std::collections::BTreeMap<String, u64> = Default::default();
        for l in stdout(&out).lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            *got.entry(v["bucket"].as_str().unwrap().to_string())
                .or_default() += v["count"].as_u64().unwrap();
        }
        got
    };
    let hours = stats("1h");
    assert_eq!(hours, want_hours);
    assert!(hours.contains_key("2026-10-25T02:00:00+02:00"));
    assert!(
        hours.contains_key("2026-10-25T02:00:00+01:00"),
        "the repeated hour: {hours:?}"
    );
    let days: std::collections::BTreeMap<String, u64> = stats("1d")
        .into_iter()
        .map(|(k, v)| (k[..10].to_string(), v))
        .collect();
    assert_eq!(days, want_days);
    // By level: the same total per bucket, split.
    let out = logq(
        &db,
        &["stats", "--by", "level", "--bucket", "1d", "-o", "json"],
    )
    .env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    .output()
    .unwrap();
    let errs: u64 = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["level"] == "err")
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    assert_eq!(errs, 20);
}

/// A pseudo-terminal for logq's standard output; the master end is drained by a thread.
struct Pty {
    slave: OwnedFd,
    _reader: std::thread::JoinHandle<Vec<u8>>,
}

fn pty() -> Pty {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    Pty {
        slave,
        _reader: reader,
    }
}

/// A fake pager: records its arguments (one per line) and its input.
fn fake_pager(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/{name}.args'\ncat > '{d}/{name}.input'\n",
        d = dir.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn on_terminal(mut cmd: Command) -> std::process::ExitStatus {
    let pty = pty();
    let out = pty.slave.try_clone().unwrap();
    let mut child = cmd.stdout(Stdio::from(out)).spawn().unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "logq did not finish");
        std::thread::sleep(StdDuration::from_millis(20));
    }
}

#[test]
fn pager_on_a_terminal_only() {
    let (dir, db) = small_store();
    let d = dir.path();
    // $LOGQ_PAGER first, run by the shell (so it may carry arguments).
    let pager = fake_pager(d, "lp");
    let mut c = logq(&db, &["-o", "cat"]);
    c.env("LOGQ_PAGER", format!("{} --flag", pager.display()))
        .env("PAGER", "false");
    assert!(on_terminal(c).success());
    assert_eq!(
        std::fs::read_to_string(d.join("lp.args")).unwrap(),
        "--flag\n"
    );
    let input = std::fs::read_to_string(d.join("lp.input")).unwrap();
    assert_eq!(input.lines().count(), 60);
    assert!(input.contains("Payment FAILED for order 7"), "{input}");
    // Then $PAGER.
    let pager = fake_pager(d, "p");
    let mut c = logq(&db, &["-n", "5"]);
    c.env("PAGER", &pager);
    assert!(on_terminal(c).success());
    assert_eq!(
        std::fs::read_to_string(d.join("p.input"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    // Else `less` with journalctl's flags, and +G with -e.
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_pager(&bin, "less");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = logq(&db, &["-e"]);
    c.env("PATH", &path);
    assert!(on_terminal(c).success());
    assert_eq!(
        std::fs::read_to_string(bin.join("less.args")).unwrap(),
        "-FRSXMK\n+G\n"
    );
    // --no-pager, a pipe, and -f: no pager.
    std::fs::remove_file(bin.join("less.args")).unwrap();
    let mut c = logq(&db, &["--no-pager"]);
    c.env("PATH", &path);
    assert!(on_terminal(c).success());
    let o = logq(&db, &[]).env("PATH", &path).output().unwrap();
    assert_eq!(stdout(&o).lines().count(), 60, "piped: rows on stdout");
    let mut c = logq(&db, &["-f", "-n", "3"]);
    c.env("PATH", &path);
    let pty = pty();
    let mut child = c
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    std::thread::sleep(StdDuration::from_millis(700));
    // SAFETY: our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(
        !bin.join("less.args").exists(),
        "no pager with --no-pager, on a pipe or with -f"
    );
    let _ = pty.slave.as_raw_fd();
}
