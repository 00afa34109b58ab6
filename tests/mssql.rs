//! SQL Server backend without a server: generated T-SQL against golden files, and the
//! behaviour with an unreachable server. The conformance suite (store_conformance.rs)
//! runs against a real server when LOGRELAY_TEST_MSSQL is set.

mod common;

use chrono::DateTime;
use logrelay::message::{Facility, Level};
use logrelay::store::mssql::query_sql;
use logrelay::store::{Field, Filter, Match, Query};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn cases() -> Vec<(&'static str, Query)> {
    let t = |s| DateTime::from_timestamp(s, 0).unwrap();
    let f = |filter: Filter| Query {
        filter,
        ..Query::default()
    };
    vec![
        ("all", Query::default()),
        (
            "priority",
            f(Filter {
                levels: Some((Level::Emerg, Level::Err)),
                ..Filter::default()
            }),
        ),
        (
            "priority_range",
            f(Filter {
                levels: Some((Level::Err, Level::Notice)),
                ..Filter::default()
            }),
        ),
        (
            "since_until",
            f(Filter {
                since: Some(t(1_700_000_000)),
                until: Some(t(1_700_003_600)),
                ..Filter::default()
            }),
        ),
        (
            "sources_globs",
            f(Filter {
                sources: vec!["web*".into(), "db_1".into(), "50%".into()],
                ..Filter::default()
            }),
        ),
        (
            "hosts",
            f(Filter {
                hosts: vec!["h?st".into()],
                ..Filter::default()
            }),
        ),
        (
            "facilities",
            f(Filter {
                facilities: vec![
                    Facility::from_code(4).unwrap(),
                    Facility::from_code(10).unwrap(),
                ],
                ..Filter::default()
            }),
        ),
        (
            "field_matches",
            f(Filter {
                matches: vec![
                    Match::Field {
                        field: Field::Msgid,
                        value: "ID47".into(),
                        negate: false,
                    },
                    Match::Field {
                        field: Field::Hostname,
                        value: "web1".into(),
                        negate: true,
                    },
                    Match::Field {
                        field: Field::Facility,
                        value: "local3".into(),
                        negate: false,
                    },
                ],
                ..Filter::default()
            }),
        ),
        (
            "structured_data",
            f(Filter {
                matches: vec![Match::Sd {
                    id: "origin@32473".into(),
                    param: "i\"p".into(),
                    value: "10.0.0.1".into(),
                    negate: false,
                }],
                ..Filter::default()
            }),
        ),
        (
            "newest_100",
            Query {
                newest_first: true,
                limit: Some(100),
                ..Query::default()
            },
        ),
        (
            "follow_cursor",
            Query {
                filter: Filter {
                    after_id: Some(41),
                    upto_id: Some(99),
                    levels: Some((Level::Emerg, Level::Warning)),
                    ..Filter::default()
                },
                by_id: true,
                ..Query::default()
            },
        ),
    ]
}

#[test]
fn generated_tsql_matches_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mssql");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, q) in cases() {
        let (sql, params) = query_sql(&q);
        let text = format!("{sql}\n-- params: {params:?}\n");
        let path = dir.join(format!("{name}.sql"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing {} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(text, want, "{name}");
        assert!(
            !sql.contains("LIMIT") && !sql.contains("GLOB"),
            "{name}: not T-SQL"
        );
    }
}

#[test]
fn logq_with_an_unreachable_server_exits_3_quickly() {
    let url = format!(
        "mssql://sa:secret@127.0.0.1:{}/LoggingDB?connectTimeout=2",
        common::unused_port()
    );
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(["--db", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    // The password is on the command line: a warning says so, then the error.
    assert!(
        err.starts_with("logq: warning: the SQL Server password is on the command line"),
        "{err}"
    );
    assert!(
        err.contains("\nlogq: error: SQL Server cannot connect to 127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("secret"), "never print the password: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn logq_with_a_silent_server_times_out_within_the_connect_timeout() {
    // Accepts TCP but never speaks TDS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(8).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(conns);
    });
    let url = format!(
        "server=tcp:127.0.0.1,{port};database=LoggingDB;user id=sa;password=x;Connect Timeout=2"
    );
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(["--db", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("within 2s"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn logq_rejects_a_malformed_connection_string() {
    let out = Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(["--db", "mssql://host:port/db"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad SQL Server connection string"));
}

#[test]
fn relay_with_an_unreachable_server_starts_reports_and_keeps_retrying() {
    let url = format!(
        "mssql://sa:secret@127.0.0.1:{}/LoggingDB?connectTimeout=1",
        common::unused_port()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_logrelayd"))
        .args(["--listen", "127.0.0.1:0", "--no-udp", "--db", &url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while Instant::now() < deadline
        && !seen
            .iter()
            .any(|l: &String| l.contains("store not reachable yet"))
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the relay must keep running: {seen:#?}");
    assert!(seen.iter().any(|l| l.contains("listening on")), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("the SQL Server password is on the command line")),
        "{seen:#?}"
    );
    let err = seen
        .iter()
        .find(|l| l.contains("store not reachable yet"))
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(
        err.contains("cannot connect to 127.0.0.1:") && !err.contains("secret"),
        "{err}"
    );
}
