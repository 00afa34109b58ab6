//! logrelayd end to end: real sockets on 127.0.0.1, a real SQLite file.

mod common;

use common::{Daemon, final_stat};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[test]
fn every_protocol_and_framing_on_one_port() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    let m5424 = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 \
                 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]\"] octet \u{1F600}";
    let mut stream = format!("{} {m5424}", m5424.len()).into_bytes();
    stream.extend_from_slice(b"<34>Oct 11 22:14:15 mymachine su: lf framed\n");
    stream.extend_from_slice(
        b"{\"level\":\"WARNING\",\"message\":\"json line\",\"source\":\"MyService\"}\n",
    );
    stream.extend_from_slice(b"<14>python: nul terminated\0");
    s.write_all(&stream).unwrap();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"<13>1 - udphost udpapp - - - over udp", d.addr)
        .unwrap();
    let rows = d.wait_rows(5);
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let by_msg = |m: &str| {
        rows.iter()
            .find(|r| r.message == m)
            .unwrap_or_else(|| panic!("{m} missing in {rows:#?}"))
    };

    let r = by_msg("octet \u{1F600}");
    assert_eq!(
        (r.protocol.as_str(), r.severity, r.facility),
        ("rfc5424", 5, Some(20))
    );
    assert_eq!(r.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(
        (r.source.as_deref(), r.procid.as_deref(), r.msgid.as_deref()),
        (Some("evntslog"), Some("42"), Some("ID47"))
    );
    assert_eq!(
        r.structured_data.as_deref(),
        Some(r#"{"exampleSDID@32473":{"iut":"3","eventSource":"App]"}}"#)
    );
    assert_eq!(r.time_us, 1_065_910_455_003_000);

    let r = by_msg("lf framed");
    assert_eq!(
        (r.protocol.as_str(), r.severity, r.source.as_deref()),
        ("rfc3164", 2, Some("su"))
    );
    assert_eq!(r.log_level, "CRITICAL");

    let r = by_msg("json line");
    assert_eq!(
        (
            r.protocol.as_str(),
            r.log_level.as_str(),
            r.source.as_deref()
        ),
        ("json", "WARNING", Some("MyService"))
    );

    let r = by_msg("nul terminated");
    assert_eq!(
        (r.protocol.as_str(), r.source.as_deref(), r.severity),
        ("rfc3164", Some("python"), 6)
    );

    let r = by_msg("over udp");
    assert_eq!(
        (r.hostname.as_deref(), r.source.as_deref()),
        (Some("udphost"), Some("udpapp"))
    );
    assert!(r.peer.as_deref().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn a_thousand_concurrent_connections() {
    let mut d = Daemon::start(&[]);
    const CONNS: usize = 1000;
    const PER: usize = 3;
    // Open them all first so they really are concurrent, then send on each.
    let mut streams: Vec<TcpStream> = (0..CONNS).map(|_| d.connect()).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        let mut buf = String::new();
        for j in 0..PER {
            buf.push_str(&format!("<14>1 - h app - - - conn={i} msg={j}\n"));
        }
        s.write_all(buf.as_bytes()).unwrap();
    }
    let rows = d.wait_rows(CONNS * PER);
    assert_eq!(rows.len(), CONNS * PER);
    let mut seen: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), CONNS * PER, "duplicates stored");
    drop(streams);
    let (status, err) = d.terminate();
    assert!(status.success());
    assert_eq!(final_stat(&err, "connections_total"), CONNS as u64);
}

/// A relay with nothing to write cuts its WAL to nothing: the WAL's bytes are the
/// store's too, and one at rest need not keep them (the WAL restarts at 32 MiB).
#[test]
fn an_idle_relay_empties_its_wal() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    for i in 0..2_000 {
        writeln!(s, "<14>1 - h app - - - message {i} of a burst").unwrap();
    }
    s.flush().unwrap();
    assert_eq!(d.wait_rows(2_000).len(), 2_000);
    let wal = d.db.with_file_name("logs.db-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if bytes == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle relay's WAL stays at {bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // It still takes rows afterwards.
    writeln!(s, "<14>1 - h app - - - after the rest").unwrap();
    assert_eq!(d.wait_rows(2_001).len(), 2_001);
}

#[test]
fn a_message_split_across_reads() {
    let d = Daemon::start(&[]);
    let msg = "<13>1 2026-01-01T00:00:00Z h app - - - split into single bytes";
    let framed = format!("{} {msg}", msg.len());
    let mut s = d.connect();
    s.set_nodelay(true).unwrap();
    for b in framed.as_bytes() {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    for part in ["<13>Jan  2 03:04:05 host ", "tag: in three ", "parts\n"] {
        s.write_all(part.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    let rows = d.wait_rows(2);
    let msgs: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(msgs, ["split into single bytes", "in three parts"]);
}

#[test]
fn bad_input_never_takes_good_data_down() {
    let mut d = Daemon::start(&[]);
    let mut s = d.connect();
    s.write_all(b"<13>1 - h app - - - good one\n").unwrap();
    s.write_all(b"\xff\xfe\x00garbage\x01\x02\n").unwrap();
    s.write_all(b"{\"message\": unterminated json\n").unwrap();
    s.write_all(b"{\"level\":\"info\"}\n").unwrap(); // JSON without a message
    s.write_all(b"<999>bad pri\n").unwrap();
    s.write_all(b"<13>1 - h app - - - good two\n").unwrap();
    let rows = d.wait_rows(7);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.protocol.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("rfc5424", "good one"),
            ("raw", "\u{FFFD}\u{FFFD}"),
            ("raw", "garbage\u{1}\u{2}"),
            ("raw", "{\"message\": unterminated json"),
            ("raw", "{\"level\":\"info\"}"),
            ("raw", "<999>bad pri"),
            ("rfc5424", "good two"),
        ]
    );
    let (status, err) = d.terminate();
    assert!(status.success());
    assert_eq!(final_stat(&err, "raw"), 5);
}

#[test]
fn oversize_frames_are_truncated_counted_and_logged() {
    let mut d = Daemon::start(&["--max-frame", "1024"]);
    let mut s = d.connect();
    let long = format!("<13>1 - h app - - - {}\n", "x".repeat(5000));
    s.write_all(long.as_bytes()).unwrap();
    s.write_all(b"<13>1 - h app - - - after the long one\n")
        .unwrap();
    let huge = format!("<13>1 - h app - - - {}", "y".repeat(99_980));
    s.write_all(format!("{} {huge}", huge.len()).as_bytes())
        .unwrap();
    s.write_all(b"<13>1 - h app - - - after the huge one\n")
        .unwrap();
    let rows = d.wait_rows(4);
    assert_eq!(
        rows.len(),
        4,
        "{:?}",
        rows.iter().map(|r| r.message.len()).collect::<Vec<_>>()
    );
    assert_eq!(rows[0].message.len(), 1024 - "<13>1 - h app - - - ".len());
    assert_eq!(rows[1].message, "after the long one");
    assert!(rows[2].message.starts_with("yyy"));
    assert_eq!(rows[3].message, "after the huge one");
    let (_, err) = d.terminate();
    assert_eq!(final_stat(&err, "truncated"), 2);
    assert_eq!(
        err.matches("frame truncated").count(),
        1,
        "logged once per connection: {err}"
    );
}

#[test]
fn sigterm_stores_everything_already_sent() {
    let mut d = Daemon::start(&[]);
    const CONNS: usize = 4;
    const PER: usize = 5000;
    let mut streams: Vec<TcpStream> = (0..CONNS).map(|_| d.connect()).collect();
    for (c, s) in streams.iter_mut().enumerate() {
        let mut buf = String::new();
        for i in 0..PER {
            buf.push_str(&format!("<14>1 - h app - - - c={c} i={i}\n"));
        }
        s.write_all(buf.as_bytes()).unwrap();
    }
    // Every byte is in the relay's socket buffers (loopback write returned); stop now.
    let (status, err) = d.terminate();
    assert!(status.success(), "{err}");
    let rows = d.rows();
    assert_eq!(rows.len(), CONNS * PER, "{err}");
    assert_eq!(final_stat(&err, "stored"), (CONNS * PER) as u64);
    drop(streams);
}

#[test]
fn sigterm_under_load_loses_nothing_that_was_read() {
    let mut d = Daemon::start(&[]);
    let addr = d.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let start = Instant::now();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && start.elapsed() < Duration::from_secs(10)
                {
                    let line = format!("<14>1 - h app - - - c={c} i={i}\n");
                    if s.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    i += 1;
                }
                i
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = d.terminate();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u64 = senders.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(status.success(), "{err}");
    let rows = d.rows();
    let received = final_stat(&err, "received");
    assert!(received > 1000, "load was too light: {received}");
    assert_eq!(final_stat(&err, "stored"), received);
    assert_eq!(rows.len() as u64, received);
    assert!(received <= sent);
    // A line cut by the shutdown deadline is kept as an (incomplete) frame and counted
    // as truncated; it may then equal an earlier line ("i=12" of "i=123").
    let mut msgs: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    msgs.sort_unstable();
    msgs.dedup();
    let truncated = final_stat(&err, "truncated");
    assert!(truncated <= 4);
    assert!(
        rows.len() - msgs.len() <= truncated as usize,
        "duplicates beyond cut lines"
    );
}

#[test]
fn idle_connections_are_closed() {
    let d = Daemon::start(&["--idle-timeout", "1"]);
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(d.wait_stderr("idle"), "{}", d.stderr());
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let mut d = Daemon::start(&["--max-connections", "2"]);
    let _a = d.connect();
    let _b = d.connect();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = d.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "third connection should be closed"
    );
    let (_, err) = d.terminate();
    assert_eq!(final_stat(&err, "connections_rejected"), 1);
}

#[test]
fn many_refused_connections_are_one_warning_and_a_summary() {
    let mut d = Daemon::start(&["--max-connections", "1"]);
    let _a = d.connect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..200 {
        let mut c = d.connect();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            c.read(&mut buf).unwrap_or(0),
            0,
            "refused connection closed"
        );
    }
    let (_, err) = d.terminate();
    assert_eq!(final_stat(&err, "connections_rejected"), 200);
    let full = err.matches("connection limit reached; refusing").count();
    assert_eq!(full, 1, "one full warning, the rest counted:\n{err}");
    assert!(
        err.contains("connections refused at the connection limit: 199 more in the last"),
        "a summary with the count at exit:\n{err}"
    );
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logrelayd"))
        .args(["--listen", "localhost:99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("logrelayd: error: bad listen address"),
        "{err}"
    );
}
