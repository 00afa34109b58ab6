//! `logq send` and `logq simulate` against a real relay.

mod common;

use common::Daemon;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn logq(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logq"));
    c.args(args).env_remove("LOGRELAY_SERVER");
    c
}

fn run(args: &[&str]) -> Output {
    logq(args).output().unwrap()
}

#[test]
fn send_one_message_in_each_format() {
    let d = Daemon::start(&[]);
    let server = d.addr.to_string();
    for format in ["json", "rfc5424", "rfc3164"] {
        let out = run(&[
            "send", "--server", &server, "--format", format, "-p", "err", "-s", "billing",
            "payment", "failed", format,
        ]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = d.wait_rows(3);
    assert_eq!(rows.len(), 3);
    for (r, proto) in rows.iter().zip(["json", "rfc5424", "rfc3164"]) {
        assert_eq!(r.message, format!("payment failed {proto}"));
        assert_eq!(
            (r.protocol.as_str(), r.severity, r.source.as_deref()),
            (proto, 3, Some("billing"))
        );
        assert_eq!(r.facility, Some(1));
        assert!(r.hostname.is_some() && r.procid.is_some());
    }
}

#[test]
fn send_every_line_of_stdin() {
    let d = Daemon::start(&[]);
    let mut child = logq(&[
        "send",
        "--server",
        &d.addr.to_string(),
        "-s",
        "app",
        "--format",
        "rfc5424",
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..500 {
        writeln!(stdin, "line {i} with \u{e9}").unwrap();
    }
    writeln!(stdin).unwrap(); // empty lines are skipped
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let rows = d.wait_rows(500);
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[499].message, "line 499 with \u{e9}");
    assert!(rows.iter().all(|r| r.source.as_deref() == Some("app")));
}

#[test]
fn send_without_a_relay_is_a_clear_error() {
    let port = common::unused_port();
    let out = run(&["send", "--server", &format!("127.0.0.1:{port}"), "hello"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("logq: error: cannot reach the relay"),
        "{err}"
    );
    let out = run(&["send", "-p", "loud", "hello"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_count_leaves_exactly_that_many_rows() {
    let d = Daemon::start(&[]);
    let out = run(&[
        "simulate",
        "--server",
        &d.addr.to_string(),
        "--count",
        "100000",
        "--services",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.starts_with("sent 100000, failed 0,"), "{summary}");
    assert!(out.stderr.is_empty(), "no progress bar without a terminal");
    let rows = d.wait_rows(100_000);
    assert_eq!(rows.len(), 100_000);
    let sources: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r.source.as_deref()).collect();
    assert_eq!(sources.len(), 5, "{sources:?}");
    let protocols: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.protocol.as_str()).collect();
    assert_eq!(
        protocols.into_iter().collect::<Vec<_>>(),
        ["json", "rfc5424"]
    );
    let info = rows.iter().filter(|r| r.severity == 6).count();
    let errors = rows.iter().filter(|r| r.severity <= 3).count();
    assert!(
        info > 70_000 && errors > 1_000 && errors < 10_000,
        "info {info}, errors {errors}"
    );
}

#[test]
fn simulate_honours_the_rate() {
    let d = Daemon::start(&[]);
    let start = std::time::Instant::now();
    let out = run(&[
        "simulate",
        "--server",
        &d.addr.to_string(),
        "--rate",
        "2000",
        "--duration",
        "2",
    ]);
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    let sent: f64 = summary
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap();
    assert!(
        (3600.0..=4400.0).contains(&sent),
        "sent {sent} in 2 s at 2000/s: {summary}"
    );
    assert!((1.8..4.0).contains(&secs), "took {secs} s");
    assert_eq!(d.wait_rows(sent as usize).len(), sent as usize);
}

#[test]
fn simulate_needs_an_amount_and_a_relay() {
    assert_eq!(run(&["simulate"]).status.code(), Some(2));
    let port = common::unused_port();
    let out = run(&[
        "simulate",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--count",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(3));
}
