//! TLS listeners (RFC 5425), client certificates, the allow-list and hello tokens,
//! against a real relay, with certificates made at test time.

mod common;

#[path = "common/certs.rs"]
mod certs;

use certs::{VALID, ca, client_config, fingerprint, leaf, send_tls, write};
use common::{Daemon, final_stat};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn plain(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn tls_addr(d: &Daemon) -> SocketAddr {
    assert!(d.wait_stderr("tls listener on "), "{}", d.stderr());
    d.stderr()
        .split("tls listener on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("tls address")
}

fn line(msg: &str) -> Vec<u8> {
    format!("<14>1 2026-11-30T10:00:00Z host app - - - {msg}\n").into_bytes()
}

#[test]
fn client_certificates_allow_list_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca("test CA");
    let other = ca("other CA");
    let server = leaf("localhost", Some(&ca1), VALID);
    let good = leaf("client1.example.net", Some(&ca1), VALID);
    let expired = leaf("old.example.net", Some(&ca1), (-30, -1));
    let future = leaf("soon.example.net", Some(&ca1), (2, 30));
    let foreign = leaf("client2.example.net", Some(&other), VALID);
    let intruder = leaf("intruder.example.org", Some(&ca1), VALID);
    let pinned = leaf("pinned.example.org", Some(&ca1), VALID);
    let tokens = write(
        dir.path(),
        "tokens",
        "# two valid at once\nold-token\nnew-token\n",
    );
    let args = [
        (
            "--tls-cert",
            write(dir.path(), "server.pem", &server.cert_pem),
        ),
        (
            "--tls-key",
            write(dir.path(), "server.key", &server.key_pem),
        ),
        ("--tls-client-ca", write(dir.path(), "ca.pem", &ca1.pem)),
        ("--auth-tokens-file", tokens),
    ];
    let mut extra: Vec<String> = vec![
        "--listen-tls".into(),
        "127.0.0.1:0".into(),
        "--tls-allow".into(),
        "*.example.net".into(),
        "--tls-allow".into(),
        format!("sha256:{}", fingerprint(&pinned.der)),
        "--auth-required".into(),
        "--udp".into(),
        "false".into(),
    ];
    for (k, v) in &args {
        extra.push((*k).into());
        extra.push(v.display().to_string());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut d = Daemon::start(&extra);
    let addr = tls_addr(&d);
    let roots = [&ca1.der];

    // Good clients: a name on the list, a pinned fingerprint, and tokens on the plain port.
    send_tls(addr, client_config(&roots, Some(&good)), &line("good cert")).expect("good client");
    send_tls(
        addr,
        client_config(&roots, Some(&pinned)),
        &line("pinned cert"),
    )
    .expect("pinned");
    let answer = plain(
        d.addr,
        b"{\"hello\":1,\"client\":\"t\",\"token\":\"new-token\"}\n{\"message\":\"token one\"}\n",
    );
    assert_eq!(answer, "{\"hello\":1,\"acks\":false}\n");
    plain(
        d.addr,
        b"{\"hello\":1,\"token\":\"old-token\",\"acks\":true}\n{\"message\":\"token two\"}\n",
    );

    // The negative matrix.
    for (who, cfg) in [
        ("expired", client_config(&roots, Some(&expired))),
        ("not yet valid", client_config(&roots, Some(&future))),
        ("other CA", client_config(&roots, Some(&foreign))),
        ("name not allowed", client_config(&roots, Some(&intruder))),
        ("no certificate", client_config(&roots, None)),
    ] {
        let r = send_tls(addr, cfg, &line(who));
        assert!(r.as_ref().map_or(true, |a| a.is_empty()), "{who}: {r:?}");
    }
    let bad = plain(
        d.addr,
        b"{\"hello\":1,\"token\":\"guess\"}\n{\"message\":\"bad token\"}\n",
    );
    assert!(bad.contains("\"reason\":\"bad_token\""), "{bad}");
    let missing = plain(d.addr, b"{\"message\":\"no hello\"}\n");
    assert!(
        missing.contains("\"reason\":\"missing_token\""),
        "{missing}"
    );
    plain(d.addr, &line("plain syslog, no token"));

    // A good client after all of them is still stored.
    send_tls(
        addr,
        client_config(&roots, Some(&good)),
        &line("good again"),
    )
    .expect("good again");
    let rows = d.wait_rows(5);
    let mut msgs: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    msgs.sort_unstable();
    assert_eq!(
        msgs,
        [
            "good again",
            "good cert",
            "pinned cert",
            "token one",
            "token two"
        ]
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, stderr) = d.terminate();
    for (reason, n) in [
        ("expired", 1),
        ("not_yet_valid", 1),
        ("unknown_ca", 1),
        ("not_allowed", 1),
        ("no_certificate", 1),
        ("bad_token", 1),
        ("missing_token", 2),
    ] {
        assert_eq!(
            final_stat(&stderr, &format!("refused_{reason}")),
            n,
            "{reason}\n{stderr}"
        );
    }
    assert_eq!(final_stat(&stderr, "stored"), 5);
    // Logged without flooding: at most one full line per interval.
    assert_eq!(stderr.matches("connection refused:").count(), 1, "{stderr}");
}

#[test]
fn fingerprints_alone_and_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = ca("test CA");
    let server = leaf("localhost", Some(&ca1), VALID);
    let me = leaf("self-signed client", None, VALID);
    let stranger = leaf("self-signed stranger", None, VALID);
    let cert = write(dir.path(), "server.pem", &server.cert_pem);
    let key = write(dir.path(), "server.key", &server.key_pem);
    let allow = format!("sha256:{}", fingerprint(&me.der));
    let d = Daemon::start(&[
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-allow",
        &allow,
    ]);
    let addr = tls_addr(&d);
    send_tls(addr, client_config(&[&ca1.der], Some(&me)), &line("pinned")).expect("pinned");
    let r = send_tls(
        addr,
        client_config(&[&ca1.der], Some(&stranger)),
        &line("stranger"),
    );
    assert!(r.as_ref().map_or(true, |a| a.is_empty()), "{r:?}");
    assert_eq!(d.wait_rows(1).len(), 1);

    // A bad new pair (SIGHUP) keeps the old one and says why.
    std::fs::write(&key, "not a key").unwrap();
    unsafe {
        libc::kill(d.pid(), libc::SIGHUP);
    }
    assert!(d.wait_stderr("keeping the previous"), "{}", d.stderr());
    send_tls(
        addr,
        client_config(&[&ca1.der], Some(&me)),
        &line("old pair"),
    )
    .expect("old pair kept");

    // A new pair from another CA is picked up when the files change.
    let ca2 = ca("new CA");
    let server2 = leaf("localhost", Some(&ca2), VALID);
    std::fs::write(&cert, &server2.cert_pem).unwrap();
    std::fs::write(&key, &server2.key_pem).unwrap();
    let start = std::time::Instant::now();
    while send_tls(
        addr,
        client_config(&[&ca2.der], Some(&me)),
        &line("new pair"),
    )
    .is_err()
    {
        assert!(
            start.elapsed() < common::WAIT,
            "new certificate never served: {}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(send_tls(addr, client_config(&[&ca1.der], Some(&me)), b"x\n").is_err());
    let rows = d.wait_rows(3);
    assert!(rows.iter().any(|r| r.message == "new pair"), "{rows:?}");
}

#[test]
fn non_loopback_plain_listener_warns() {
    let d = Daemon::start(&["--listen", "0.0.0.0:0"]);
    assert!(
        d.wait_stderr("reachable from other machines"),
        "{}",
        d.stderr()
    );
}

#[test]
fn bad_tls_settings_are_clear_errors() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logrelayd"))
        .args(["--listen-tls", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs tls-cert and tls-key"));
}
