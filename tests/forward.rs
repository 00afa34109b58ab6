//! Forwarding with real binaries on loopback: an edge relay (`--db none`,
//! `--forward-to`) in front of a central relay with a real SQLite store; the central
//! relay stopped for 30 s under load and started again, the edge killed with -9 while it
//! drains its spool, and the origin of each record carried across two hops. The outage
//! test takes about 40 s (the others run beside it).

mod common;

use common::{Daemon, final_stat};
use logrelay::client::{Config, Logger};
use logrelay::message::Level;
use std::path::Path;
use std::time::{Duration, Instant};

/// An edge relay that stores nothing and forwards to `central`, its spool under `dir`.
fn edge(dir: tempfile::TempDir, central: &str, extra: &[&str]) -> Daemon {
    let spool = dir.path().join("spool");
    let mut args = vec![
        "--spool-dir",
        spool.to_str().expect("utf-8 temp path"),
        "--forward-to",
        central,
    ];
    args.extend_from_slice(extra);
    let db = dir.path().join("unused.db");
    Daemon::start_args(dir, db, "none", "127.0.0.1:0", &args)
}

fn count(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM Logs", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Waits (bounded) until the store holds at least `n` rows.
fn wait_count(db: &Path, n: i64, within: Duration) -> i64 {
    let start = Instant::now();
    loop {
        let c = count(db);
        if c >= n || start.elapsed() > within {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every (source, message) stored, in id order.
fn stored(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open the central store");
    let mut stmt = conn
        .prepare("SELECT source, message FROM Logs ORDER BY id")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// Checks that each sender's `i=N` messages are all there, once each, in order.
fn assert_complete_in_order(rows: &[(String, String)], senders: usize, per: u64) {
    for s in 0..senders {
        let source = format!("sender-{s}");
        let seen: Vec<u64> = rows
            .iter()
            .filter(|(src, _)| *src == source)
            .map(|(_, m)| {
                m.strip_prefix("i=")
                    .and_then(|n| n.parse().ok())
                    .expect("i=N")
            })
            .collect();
        let expected: Vec<u64> = (0..per).collect();
        if seen != expected {
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            panic!(
                "{source}: {} rows, {} distinct of {per}, in order: {}",
                seen.len(),
                sorted.len(),
                seen.windows(2).all(|w| w[0] < w[1])
            );
        }
    }
}

/// Senders keep writing to the edge while the central relay is stopped for 30 s and
/// started again: every message arrives once, each sender's in its order, and the
/// edge's spool is drained.
#[test]
fn central_stopped_under_load_loses_nothing_and_keeps_order() {
    const SENDERS: usize = 2;
    const OUTAGE: Duration = Duration::from_secs(30);
    // One message a millisecond per sender, for about 36 s: before, during and after
    // the outage (about 60,000 rows wait in the edge's spool by its end).
    const PER: u64 = 36_000;
    const EVERY: Duration = Duration::from_millis(1);
    let central = Daemon::start(&[]);
    let edge = edge(tempfile::tempdir().unwrap(), &central.addr.to_string(), &[]);
    let edge_addr = edge.addr.to_string();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let addr = edge_addr.clone();
            std::thread::spawn(move || {
                let source = format!("sender-{s}");
                let l = Logger::new(Config::new(source.clone()).server(addr)).unwrap();
                let start = Instant::now();
                for i in 0..PER {
                    l.log(Level::Info, format!("i={i}"), source.as_str());
                    let due = EVERY * i as u32;
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                l.flush(Duration::from_secs(20))
                    .expect("the edge acknowledged all");
                (l.accepted(), l.dropped(), l.acknowledged())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = count(&central.db);
    assert!(before > 0, "nothing forwarded before the stop");
    // Stopped under load, then started again on the same address and store.
    let central = central.restart(OUTAGE);
    assert!(
        senders.iter().any(|h| !h.is_finished()),
        "the senders should still be sending when the central relay comes back"
    );
    for h in senders {
        assert_eq!(h.join().unwrap(), (PER, 0, PER));
    }
    let total = SENDERS as i64 * PER as i64;
    assert_eq!(
        wait_count(&central.db, total, Duration::from_secs(60)),
        total,
        "the edge's log:\n{}",
        edge.stderr()
    );
    // A moment for anything extra to show up, then the checks.
    std::thread::sleep(Duration::from_millis(300));
    assert_complete_in_order(&stored(&central.db), SENDERS, PER);
    let mut edge = edge;
    let (status, err) = edge.terminate();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("upstream relay unreachable"),
        "the edge never saw the outage:\n{err}"
    );
    assert_eq!(final_stat(&err, "forward_backlog"), 0, "{err}");
    assert_eq!(final_stat(&err, "forwarded"), total as u64, "{err}");
}

/// The edge holds 60,000 acknowledged messages in its spool (the central relay is not
/// up yet), starts draining them, and is killed with -9 mid-way; restarted, it sends
/// the rest. Every message the edge acknowledged is stored once: what the central
/// relay had acknowledged before the kill is not stored again.
#[test]
fn edge_killed_mid_drain_stores_everything_once() {
    const PER: u64 = 60_000;
    let port = common::unused_port();
    let central_addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    // Small chunks: many round trips, so the kill lands mid-drain.
    let edge = edge(dir, &central_addr, &["--batch-rows", "300"]);
    let l = Logger::new(Config::new("sender-0").server(edge.addr.to_string())).unwrap();
    for i in 0..PER {
        l.log(Level::Info, format!("i={i}"), "sender-0");
    }
    l.flush(Duration::from_secs(20))
        .expect("the edge acknowledged all");
    assert_eq!((l.accepted(), l.dropped(), l.acknowledged()), (PER, 0, PER));

    let central_dir = tempfile::tempdir().unwrap();
    let db = central_dir.path().join("logs.db");
    let mut central = Daemon::start_with_db(central_dir, db.clone(), &central_addr, &[]);
    let start = Instant::now();
    while count(&db) < PER as i64 / 4 && start.elapsed() < common::WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(edge.pid(), libc::SIGKILL);
    }
    let at_kill = count(&db);
    assert!(
        at_kill > 0 && at_kill < PER as i64,
        "the kill should land mid-drain ({at_kill} of {PER} stored)"
    );
    // The same spool (the Daemon's directory outlives the killed process).
    let mut edge = edge;
    let edge_dir = std::mem::replace(&mut edge.dir, tempfile::tempdir().unwrap());
    drop(edge);
    let mut edge = self::edge(edge_dir, &central_addr, &["--batch-rows", "300"]);
    // Bounded generously: beside the outage test on a loaded machine the drain of
    // 60,000 rows in 300-row chunks has taken over 20 s.
    assert_eq!(
        wait_count(&db, PER as i64, Duration::from_secs(60)),
        PER as i64,
        "the edge's log:\n{}",
        edge.stderr()
    );
    let (status, err) = edge.terminate();
    assert!(status.success(), "{err}");
    assert_eq!(final_stat(&err, "forward_backlog"), 0, "{err}");
    let rows = stored(&db);
    assert_complete_in_order(&rows, 1, PER);
    let (_, central_err) = central.terminate();
    eprintln!(
        "killed at {at_kill} of {PER}; resent rows the central store dropped: {}",
        final_stat(&central_err, "duplicates")
    );
}

/// Two hops (edge → middle relay that stores and forwards → central): each stored record
/// names the original sender's address and protocol, not the hop's. A plain client's own
/// `peer` key stays its data (only a forwarding relay's hello makes it the origin).
#[test]
fn origin_peer_and_protocol_cross_every_hop() {
    use std::io::Write;
    let central = Daemon::start(&[]);
    let middle_spool = tempfile::tempdir().unwrap();
    let middle = Daemon::start(&[
        "--spool-dir",
        middle_spool.path().to_str().expect("utf-8 temp path"),
        "--forward-to",
        &central.addr.to_string(),
    ]);
    let edge = edge(tempfile::tempdir().unwrap(), &middle.addr.to_string(), &[]);
    let frames: [(&str, &str); 4] = [
        (
            "<165>1 2026-12-01T10:00:00.000Z web-1 app - ID47 - origin 5424\n",
            "rfc5424",
        ),
        ("<13>Dec  1 10:00:00 web-2 app: origin 3164\n", "rfc3164"),
        (r#"{"message":"origin json","source":"app"}"#, "json"),
        (
            r#"{"message":"origin forged","peer":"192.0.2.66:1","protocol":"rfc5424"}"#,
            "json",
        ),
    ];
    let mut want = Vec::new();
    for (frame, protocol) in frames {
        let mut s = std::net::TcpStream::connect(edge.addr).expect("connect to the edge");
        let line = if frame.ends_with('\n') {
            frame.to_string()
        } else {
            format!("{frame}\n")
        };
        s.write_all(line.as_bytes()).expect("send");
        let peer = s.local_addr().expect("local address").to_string();
        drop(s);
        want.push((protocol.to_string(), Some(peer)));
    }
    for relay in [&central, &middle] {
        let rows = relay.wait_rows(4);
        assert_eq!(rows.len(), 4, "{rows:?}");
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| {
                let n = ["5424", "3164", "json", "forged"]
                    .iter()
                    .position(|k| r.message.ends_with(k))
                    .expect("a sent message");
                (n, (r.protocol.clone(), r.peer.clone()))
            })
            .collect();
        got.sort();
        let got: Vec<_> = got.into_iter().map(|(_, g)| g).collect();
        assert_eq!(
            got,
            want,
            "stored at the {} hop",
            if relay.port() == central.port() {
                "central"
            } else {
                "middle"
            }
        );
        let forged = rows
            .iter()
            .find(|r| r.message.ends_with("forged"))
            .expect("the forged row");
        assert_eq!(
            forged.structured_data.as_deref(),
            Some(r#"{"fields":{"peer":"192.0.2.66:1","protocol":"rfc5424"}}"#),
            "a plain client's keys are its data"
        );
    }
}
