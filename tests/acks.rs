//! Acknowledged delivery against real relays and a real SQLite store: the protocol on
//! a raw socket, and the `Logger` through relays killed with -9.

mod common;

use common::Daemon;
use logrelay::client::{Config, Logger};
use logrelay::message::Level;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn count_rows(d: &Daemon) -> i64 {
    rusqlite::Connection::open(&d.db)
        .and_then(|c| c.query_row("SELECT count(*) FROM Logs", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Kills the relay with SIGKILL (no drain, no final commit) and starts another on the
/// same address and store.
fn kill9_restart(mut d: Daemon) -> Daemon {
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().expect("temp dir"));
    let (db, addr) = (d.db.clone(), d.addr);
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(d.pid(), libc::SIGKILL);
    }
    drop(d); // reaps the child
    Daemon::start_with_db(dir, db, &addr.to_string(), &[])
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a line from the relay");
    line
}

/// Reads ack lines until one acknowledges `seq` (bounded).
fn wait_ack(r: &mut BufReader<TcpStream>, seq: u64) -> u64 {
    let start = Instant::now();
    loop {
        let line = read_line(r);
        let v: serde_json::Value = serde_json::from_str(&line).expect("an ack line is JSON");
        let n = v["ack"].as_u64().expect("{\"ack\":N}");
        if n >= seq || start.elapsed() > common::WAIT {
            return n;
        }
    }
}

#[test]
fn hello_acks_and_resent_rows_are_stored_once() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    s.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"{\"hello\":1,\"client\":\"raw-test\",\"acks\":true}\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "{\"hello\":1,\"acks\":true}\n");
    for i in 1..=3 {
        writeln!(s, r#"{{"seq":{i},"message":"m{i}","user":"bob"}}"#).unwrap();
    }
    assert_eq!(wait_ack(&mut r, 3), 3);
    drop((s, r));

    // A reconnecting client resends 2..=5: 2 and 3 are already stored.
    let mut s = d.connect();
    s.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"{\"hello\":1,\"client\":\"raw-test\",\"acks\":true}\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "{\"hello\":1,\"acks\":true}\n");
    for i in 2..=5 {
        writeln!(s, r#"{{"seq":{i},"message":"m{i}","user":"bob"}}"#).unwrap();
    }
    assert_eq!(wait_ack(&mut r, 5), 5);
    let rows = d.wait_rows(5);
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["m1", "m2", "m3", "m4", "m5"]);
    // `seq` is the protocol's, not the sender's data; other extra keys stay.
    assert_eq!(
        rows[0].structured_data.as_deref(),
        Some(r#"{"fields":{"user":"bob"}}"#)
    );
}

#[test]
fn without_hello_nothing_changes() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    // The original client's line, and one with a "seq" of its own: kept as data.
    s.write_all(b"{\"level\":\"INFO\",\"message\":\"plain\",\"source\":\"MyService\"}\n{\"seq\":1,\"message\":\"mine\"}\n")
        .unwrap();
    drop(s);
    let rows = d.wait_rows(2);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].message, "plain");
    assert_eq!(
        rows[1].structured_data.as_deref(),
        Some(r#"{"fields":{"seq":"1"}}"#)
    );
    // A hello without acks is answered, and no ack lines follow.
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"{\"hello\":1}\n{\"message\":\"after hello\"}\n")
        .unwrap();
    assert_eq!(read_line(&mut r), "{\"hello\":1,\"acks\":false}\n");
    assert_eq!(d.wait_rows(3).len(), 3);
    let mut more = String::new();
    assert!(r.read_line(&mut more).is_err() || more.is_empty());
}

/// The issue's check: 200,000 messages through the Logger, the relay killed with -9
/// twice mid-stream and restarted on the same store: 0 lost, 0 duplicated.
#[test]
fn logger_loses_and_doubles_nothing_across_two_kill9() {
    const N: u64 = 200_000;
    let mut d = Daemon::start(&[]);
    let l = Logger::new(
        Config::new("acks")
            .server(d.addr.to_string())
            .queue_capacity(N as usize),
    )
    .unwrap();
    let mut next = 0u64;
    let mut kills = 0;
    for round in 1..=3u64 {
        let end = N * round / 3;
        while next < end {
            l.log(Level::Info, format!("n={next}"), "acks");
            next += 1;
        }
        if round < 3 {
            // Kill while the relay is busy with this third: some of it stored, some
            // read and not committed, some still on the way.
            let start = Instant::now();
            let target = (N * (round - 1) / 3 + N / 10) as i64;
            while count_rows(&d) < target && start.elapsed() < common::WAIT {
                std::thread::sleep(Duration::from_millis(5));
            }
            d = kill9_restart(d);
            kills += 1;
        }
    }
    l.flush(Duration::from_secs(60))
        .expect("everything acknowledged");
    assert_eq!(kills, 2);
    assert_eq!((l.accepted(), l.dropped()), (N, 0));
    assert_eq!(l.acknowledged(), N);
    let conn = rusqlite::Connection::open(&d.db).unwrap();
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT message) FROM Logs WHERE message LIKE 'n=%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(distinct as u64, N, "lost {}", N as i64 - distinct);
    assert_eq!(rows, distinct, "duplicated {}", rows - distinct);
}
