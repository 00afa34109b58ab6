//! The `Logger` client against a real relay and a real SQLite store.

mod common;

use common::Daemon;
use logrelay::client::{Config, Logger};
use logrelay::message::Level;
use std::time::{Duration, Instant};

fn logger(d: &Daemon, capacity: usize) -> Logger {
    Logger::new(
        Config::new("ClientTest")
            .server(d.addr.to_string())
            .queue_capacity(capacity),
    )
    .unwrap()
}

#[test]
fn delivers_everything_accepted_in_order() {
    let d = Daemon::start(&[]);
    let l = logger(&d, 100_000);
    for i in 0..5000 {
        l.log("INFO", format!("seq={i}"), "MyService");
    }
    l.flush(Duration::from_secs(10)).unwrap();
    assert_eq!((l.accepted(), l.dropped(), l.sent()), (5000, 0, 5000));
    let rows = d.wait_rows(5000);
    assert_eq!(rows.len(), 5000);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.message, format!("seq={i}"), "out of order at {i}");
        assert_eq!(
            (r.source.as_deref(), r.protocol.as_str(), r.severity),
            (Some("MyService"), "json", 6)
        );
    }
}

#[test]
fn original_api_shape_and_levels() {
    let d = Daemon::start(&[]);
    let l = logger(&d, 100);
    l.log("INFO", "This is a test log", "MyService");
    l.log("WARNING", "careful", "MyService");
    l.log("CRITICAL", "on fire", "MyService");
    l.log(Level::Debug, "details", "Other");
    l.log("nonsense-level", "still delivered", "MyService");
    l.flush(Duration::from_secs(5)).unwrap();
    let rows = d.wait_rows(5);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.log_level.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("INFO", "This is a test log"),
            ("WARNING", "careful"),
            ("CRITICAL", "on fire"),
            ("DEBUG", "details"),
            ("INFO", "still delivered"),
        ]
    );
}

#[test]
fn flush_waits_for_delivery_and_times_out_without_a_relay() {
    let d = Daemon::start(&[]);
    let l = logger(&d, 10_000);
    for i in 0..2000 {
        l.log(Level::Info, format!("m{i}"), "f");
    }
    l.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        l.sent(),
        2000,
        "flush returned before everything was written"
    );
    assert_eq!(d.wait_rows(2000).len(), 2000);

    // Nothing listens on this port: flush must give up with an error, not hang.
    let port = common::unused_port();
    let lost = Logger::new(Config::new("x").server(format!("127.0.0.1:{port}"))).unwrap();
    lost.log(Level::Info, "nobody hears this", "x");
    let start = Instant::now();
    assert!(lost.flush(Duration::from_millis(500)).is_err());
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(lost.sent(), 0);
}

#[test]
fn relay_restart_loses_only_what_was_reported_dropped() {
    let d = Daemon::start(&[]);
    let l = logger(&d, 500);
    let mut seq = 0u64;
    let mut send_for = |l: &Logger, dur: Duration| {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            l.log(Level::Info, format!("seq={seq}"), "restart");
            seq += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    send_for(&l, Duration::from_millis(300));
    // The relay goes away for a second, then comes back on the same port and store.
    let d = std::thread::scope(|s| {
        let h = s.spawn(|| d.restart(Duration::from_millis(1000)));
        while !h.is_finished() {
            send_for(&l, Duration::from_millis(50));
        }
        h.join().unwrap()
    });
    send_for(&l, Duration::from_millis(300));
    l.flush(Duration::from_secs(15)).unwrap();
    let (accepted, dropped) = (l.accepted(), l.dropped());
    assert!(
        dropped > 0,
        "the outage should have overflowed a 500-message queue"
    );
    let rows = d.wait_rows(accepted as usize);
    let delivered: Vec<&str> = rows
        .iter()
        .filter(|r| r.message.starts_with("seq="))
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(
        delivered.len() as u64,
        accepted,
        "accepted {accepted}, dropped {dropped}"
    );
    let reported: u64 = rows
        .iter()
        .filter_map(|r| r.message.strip_prefix("logrelay client dropped "))
        .filter_map(|r| r.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(reported, dropped, "every drop is reported to the relay");
}

/// The Logger uses its own thread, so it works the same inside a tokio runtime, on the
/// runtime's thread, without blocking it (log never waits).
#[tokio::test(flavor = "current_thread")]
async fn works_inside_a_tokio_runtime() {
    let d = Daemon::start(&[]);
    let l = logger(&d, 1000);
    let start = Instant::now();
    for i in 0..100 {
        l.log(Level::Info, format!("from tokio {i}"), "async-app");
        tokio::task::yield_now().await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "log must not block"
    );
    tokio::task::spawn_blocking(move || l.flush(Duration::from_secs(10)).map(|_| l.sent()))
        .await
        .unwrap()
        .map(|sent| assert_eq!(sent, 100))
        .unwrap();
    assert_eq!(d.wait_rows(100).len(), 100);
}
