//! Faults injected against the real daemon and a real SQLite file: a store locked by
//! another connection, SIGTERM while it is locked, many connections during a stall, a
//! torn spool segment, a UDP burst larger than the socket buffer.

mod common;

use common::{Daemon, final_stat};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Holds SQLite's write lock on `db` (BEGIN EXCLUSIVE from another connection) until
/// dropped, as a backup tool or a stuck reader-writer would.
struct Lock(rusqlite::Connection);

impl Lock {
    fn hold(db: &Path) -> Lock {
        let c = rusqlite::Connection::open(db).expect("open store for locking");
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the write lock");
        Lock(c)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// `senders` connections each sending `per` LF-framed lines tagged `tag`; returns how
/// many lines were sent.
fn push(addr: std::net::SocketAddr, tag: &str, senders: usize, per: usize) -> usize {
    // Every line unique across calls, so a duplicate in the store is visible.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let tag = tag.to_string();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).expect("connect");
                let mut text = String::new();
                for i in 0..per {
                    text.push_str(&format!("<14>1 - h app - - - {tag} {call}-{s}-{i}\n"));
                }
                c.write_all(text.as_bytes()).expect("send");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    senders * per
}

fn count(db: &Path, tag: &str) -> usize {
    let Ok(c) = rusqlite::Connection::open(db) else {
        return 0;
    };
    c.query_row(
        "SELECT count(*) FROM Logs WHERE message LIKE ?1",
        [format!("{tag} %")],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as usize)
}

fn wait_count(db: &Path, tag: &str, n: usize, within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let got = count(db, tag);
        if got >= n || start.elapsed() > within {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spool_dir(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".spool");
    PathBuf::from(p)
}

#[test]
fn a_store_locked_past_the_busy_timeout_under_load_loses_nothing_and_drains_after() {
    let mut d = Daemon::start(&[]);
    let sent_before = push(d.addr, "before", 2, 500);
    assert_eq!(
        wait_count(&d.db, "before", sent_before, common::WAIT),
        sent_before
    );
    let lock = Lock::hold(&d.db);
    let locked_at = Instant::now();
    let addr = d.addr;
    let load = std::thread::spawn(move || {
        let mut sent = 0;
        while locked_at.elapsed() < Duration::from_secs(10) {
            sent += push(addr, "during", 2, 1_000);
            std::thread::sleep(Duration::from_millis(300));
        }
        sent
    });
    let sent = load.join().expect("load");
    // Past SQLite's 10 s busy timeout, so the writer's transaction fails and spools.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(locked_at.elapsed()));
    assert_eq!(
        count(&d.db, "during"),
        0,
        "nothing can be stored while locked"
    );
    drop(lock);
    assert_eq!(
        wait_count(&d.db, "during", sent, Duration::from_secs(30)),
        sent,
        "every row sent during the lock is stored after it"
    );
    assert!(d.wait_stderr("store recovered after"), "{}", d.stderr());
    let (status, err) = d.terminate();
    assert!(status.success());
    assert!(
        final_stat(&err, "spooled") > 0,
        "the lock outlasted the busy timeout: {err}"
    );
    assert_eq!(final_stat(&err, "stored") as usize, sent + sent_before);
    let rows = d.rows();
    let mut ids: Vec<_> = rows.iter().map(|r| r.message.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "no row stored twice");
}

#[test]
fn sigterm_while_the_store_is_locked_exits_in_bounded_time_and_the_next_start_stores_the_rows() {
    let mut d = Daemon::start(&[]);
    let lock = Lock::hold(&d.db);
    let sent = push(d.addr, "held", 4, 3_000);
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let (status, err) = d.terminate();
    let took = t.elapsed();
    assert!(status.success(), "exit 0: {err}");
    assert!(
        took < Duration::from_secs(15),
        "SIGTERM took {took:?} (bound: drain 3 s + one busy timeout 10 s)"
    );
    let left = err
        .lines()
        .rev()
        .find(|l| l.contains("stopped:"))
        .expect("final line");
    let sent_text = format!("{sent}");
    let grouped = format!(
        "{},{}",
        &sent_text[..sent_text.len() - 3],
        &sent_text[sent_text.len() - 3..]
    );
    assert!(
        left.contains(&format!("{grouped} rows left in the spool")),
        "{left}"
    );
    assert_eq!(count(&d.db, "held"), 0);
    drop(lock);
    // The status subcommand sees them without the daemon running.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logrelayd"))
        .args(["spool", "status", "--db"])
        .arg(format!("sqlite:{}", d.db.display()))
        .output()
        .expect("logrelayd spool status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{sent} rows waiting")), "{text}");
    let mut d = d.start_again(&[]);
    assert_eq!(wait_count(&d.db, "held", sent, common::WAIT), sent);
    assert!(d.wait_stderr("spooled by an earlier run"), "{}", d.stderr());
    let (_, err) = d.terminate();
    assert_eq!(final_stat(&err, "replayed") as usize, sent);
    assert!(!spool_dir(&d.db).join("00000000000000000001.seg").exists());
}

#[test]
fn a_torn_spool_segment_is_counted_and_skipped_never_a_crash_loop() {
    let mut d = Daemon::start(&[]);
    let lock = Lock::hold(&d.db);
    // Two batches at least: one connection each, sent one after the other.
    let a = push(d.addr, "torn", 1, 100);
    std::thread::sleep(Duration::from_millis(300));
    let b = push(d.addr, "torn", 1, 100);
    let (status, _) = d.terminate();
    assert!(status.success());
    drop(lock);
    // A crash mid-write: cut the last record short.
    let seg = std::fs::read_dir(spool_dir(&d.db))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a spool segment");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_logrelayd"))
        .args(["spool", "verify", "--db"])
        .arg(format!("sqlite:{}", d.db.display()))
        .output()
        .expect("logrelayd spool verify");
    let report = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{report}");
    assert!(report.contains("torn at byte"), "{report}");
    let mut d = d.start_again(&[]);
    let stored = wait_count(&d.db, "torn", a, common::WAIT);
    assert!(
        stored >= a && stored < a + b,
        "the whole records before the tear: {stored}"
    );
    // Still serving: new traffic is stored.
    let after = push(d.addr, "after", 1, 10);
    assert_eq!(wait_count(&d.db, "after", after, common::WAIT), after);
    let (status, err) = d.terminate();
    assert!(status.success());
    assert_eq!(final_stat(&err, "spool_torn"), 1, "{err}");
}

fn rss_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_thousand_connections_pushing_during_a_stall_stay_within_the_budget() {
    let _ = rlimit::increase_nofile_limit(8192);
    // A small budget and a small spool, so both run out and TCP pushes back.
    let mut d = Daemon::start(&["--memory-budget", "8MiB", "--spool-max-size", "1MiB"]);
    let before = rss_kib(d.pid(), "VmRSS:");
    let lock = Lock::hold(&d.db);
    let chunk: Vec<u8> = (0..128 * 1024 / 64)
        .flat_map(|i| format!("<14>1 - h app - - - stall {i:0>30}\n").into_bytes())
        .collect();
    let mut conns = Vec::new();
    for _ in 0..2_000 {
        match std::net::TcpStream::connect(d.addr) {
            Ok(c) => {
                c.set_nonblocking(true).unwrap();
                conns.push((c, 0usize));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    // Push 128 KiB on every connection, as far as TCP lets us, for a few seconds.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        for (c, off) in conns.iter_mut() {
            if *off < chunk.len()
                && let Ok(n) = c.write(&chunk[*off..])
            {
                *off += n;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let peak = rss_kib(d.pid(), "VmHWM:");
    let pushed: usize = conns.iter().map(|(_, o)| o).sum();
    drop(conns);
    drop(lock);
    let (status, err) = d.terminate();
    assert!(status.success());
    // Stated overhead: ~12 KiB per connection (task, probe buffer, framer) + 24 MiB
    // (runtime, SQLite page cache in use, spool encoding).
    let allowed = 8 * 1024 + 2_000 * 12 + 24 * 1024;
    eprintln!(
        "RSS before {before} KiB, peak {peak} KiB, allowed {allowed} KiB; pushed {} MiB",
        pushed >> 20
    );
    assert!(
        pushed > 32 << 20,
        "the senders pushed more than the budget: {pushed}"
    );
    assert!(
        peak < allowed as u64,
        "peak RSS {peak} KiB > {allowed} KiB\n{err}"
    );
}

#[test]
fn udp_beyond_the_socket_buffer_counts_what_the_kernel_dropped() {
    // A tiny buffer so a burst overflows it; every datagram is stored or counted.
    let mut d = Daemon::start(&["--udp-recv-buffer", "4096"]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 20_000;
    for i in 0..n {
        let _ = sock.send_to(
            format!("<14>1 - h app - - - udp {i:0>100}").as_bytes(),
            d.addr,
        );
    }
    // One more after a pause: the kernel reports its drop count with each datagram.
    std::thread::sleep(Duration::from_millis(500));
    sock.send_to(b"<14>1 - h app - - - marker 0", d.addr)
        .unwrap();
    assert_eq!(wait_count(&d.db, "marker", 1, common::WAIT), 1);
    std::thread::sleep(Duration::from_millis(300));
    let (_, err) = d.terminate();
    let stored = count(&d.db, "udp");
    let kernel = final_stat(&err, "udp_kernel_dropped") as usize;
    let relay = final_stat(&err, "udp_dropped") as usize;
    assert!(kernel > 0, "a 4 KiB buffer overflows: {err}");
    assert_eq!(stored + kernel + relay, n, "stored + counted drops = sent");
}

#[test]
fn a_full_disk_under_the_store_recovers_by_itself() {
    let base = tempfile::tempdir().unwrap();
    let Some(disk) = common::SmallDisk::mount(&base.path().join("small"), "3m") else {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    };
    let db = disk.0.join("logs.db");
    let spool = base.path().join("spool");
    let mut d = Daemon::start_with_db(
        tempfile::tempdir().unwrap(),
        db.clone(),
        "127.0.0.1:0",
        &["--spool-dir", spool.to_str().unwrap()],
    );
    let filler = disk.fill_up();
    let sent = push(d.addr, "full", 2, 5_000);
    assert!(
        d.wait_stderr("store write failed; spooling"),
        "{}",
        d.stderr()
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(wait_count(&db, "full", sent, common::WAIT), sent);
    assert!(d.wait_stderr("store recovered after"), "{}", d.stderr());
    let (status, err) = d.terminate();
    assert!(status.success());
    assert!(final_stat(&err, "spooled") > 0, "{err}");
    drop(disk);
}
