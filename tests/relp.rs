//! RELP input with the real rsyslog `omrelp` (Debian rsyslog-relp): messages with
//! sequence numbers through rsyslog into a relay that is killed with -9 twice
//! mid-stream and restarted on the same store; every sequence number must be stored.

mod common;

use common::Daemon;
use common::rsyslog::Rsyslog;
use std::io::Write;
use std::time::{Duration, Instant};

const N: usize = 200_000;

fn stored_seqs(d: &Daemon) -> Vec<usize> {
    let Ok(conn) = rusqlite::Connection::open(&d.db) else {
        return vec![];
    };
    let Ok(mut stmt) = conn.prepare("SELECT message FROM Logs WHERE message LIKE '%relpseq=%'")
    else {
        return vec![];
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| {
            rows.filter_map(Result::ok)
                .filter_map(|m| m.trim().strip_prefix("relpseq=")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill9_restart(mut d: Daemon, extra: &[&str]) -> Daemon {
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().expect("temp dir"));
    let (db, addr) = (d.db.clone(), d.addr);
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(d.pid(), libc::SIGKILL);
    }
    drop(d);
    Daemon::start_with_db(dir, db, &addr.to_string(), extra)
}

#[test]
fn rsyslog_omrelp_through_two_kill9_every_sequence_number_stored() {
    if !(Rsyslog::installed() && Rsyslog::module_installed("omrelp.so")) {
        return;
    }
    let relp_port = common::unused_port();
    let relp_addr = format!("127.0.0.1:{relp_port}");
    let extra = ["--listen-relp", relp_addr.as_str()];
    let mut d = Daemon::start(&extra);
    let rsyslog = Rsyslog::start(
        "",
        &format!(
            "module(load=\"omrelp\")\n\
             *.* action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{relp_port}\" \
             template=\"RSYSLOG_SyslogProtocol23Format\" queue.type=\"LinkedList\" \
             queue.size=\"{q}\" action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")",
            q = N * 2,
        ),
    );
    let mut input = rsyslog.connect();
    let feeder = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..N {
            writeln!(buf, "<13>Dec  1 04:00:00 h relptest: relpseq={i}").unwrap();
            if buf.len() > 60_000 {
                input.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        input.write_all(&buf).unwrap();
    });
    for kill in 1..=2 {
        // Kill while rsyslog is busy delivering.
        let target = kill * N / 5;
        let t = Instant::now();
        while stored_seqs(&d).len() < target && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        d = kill9_restart(d, &extra);
    }
    feeder.join().unwrap();
    let t = Instant::now();
    let mut seqs = stored_seqs(&d);
    loop {
        let mut distinct = seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() >= N || t.elapsed() > Duration::from_secs(90) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        seqs = stored_seqs(&d);
    }
    drop(rsyslog);
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let missing: Vec<usize> = (0..N)
        .filter(|i| distinct.binary_search(i).is_err())
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {N} missing, first {missing:?}",
        N - distinct.len()
    );
    // RELP resends the frames of its window that had no rsp when the connection broke:
    // those the relay had committed but not yet answered are stored twice.
    let duplicates = seqs.len() - distinct.len();
    println!(
        "RELP: {N} sequence numbers stored, {duplicates} duplicates (resent window after kill -9)"
    );
    assert!(
        duplicates <= 2 * 1024,
        "more duplicates than two windows: {duplicates}"
    );
}
