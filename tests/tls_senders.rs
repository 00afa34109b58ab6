//! Our own senders over TLS with client certificates and hello tokens, against a real
//! relay with certificates made at test time: the `Logger`, `logq send`, `logq simulate`,
//! and forwarding from an edge relay to a central one. Refusals (a bad token, no client
//! certificate) are counted by reason while a good client beside them is stored.

mod common;

#[path = "common/certs.rs"]
mod certs;

use certs::{Ca, Leaf, VALID, ca, leaf, write};
use common::{Daemon, final_stat};
use logrelay::client::{ClientAuth, Config, Logger};
use logrelay::message::Level;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const TOKEN: &str = "s3cret-token";

/// A CA, the relay's certificate (for `localhost`), a client's, and their files.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    tokens: PathBuf,
    token_file: PathBuf,
    _ca: Ca,
}

fn pki(dir: &Path) -> Pki {
    let ca1 = ca("senders test CA");
    let server = leaf("localhost", Some(&ca1), VALID);
    let client: Leaf = leaf("sender.example.net", Some(&ca1), VALID);
    Pki {
        ca: write(dir, "ca.pem", &ca1.pem),
        server_cert: write(dir, "server.pem", &server.cert_pem),
        server_key: write(dir, "server.key", &server.key_pem),
        client_cert: write(dir, "client.pem", &client.cert_pem),
        client_key: write(dir, "client.key", &client.key_pem),
        tokens: write(dir, "tokens", &format!("old-token\n{TOKEN}\n")),
        token_file: write(dir, "token", &format!("{TOKEN}\n")),
        _ca: ca1,
    }
}

/// A relay with a TLS listener wanting client certificates from the CA and tokens.
fn relay(p: &Pki, extra: &[&str]) -> (Daemon, SocketAddr) {
    let s = |p: &PathBuf| p.display().to_string();
    let mut args: Vec<String> = [
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        &s(&p.server_cert),
        "--tls-key",
        &s(&p.server_key),
        "--tls-client-ca",
        &s(&p.ca),
        "--auth-tokens-file",
        &s(&p.tokens),
        "--auth-required",
        "--udp",
        "false",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    assert!(d.wait_stderr("tls listener on "), "{}", d.stderr());
    let addr = d
        .stderr()
        .split("tls listener on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("tls address");
    (d, addr)
}

fn logq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(args)
        .env_remove("LOGRELAY_SERVER")
        .env_remove("LOGRELAY_TOKEN")
        .env_remove("LOGRELAY_TLS_CA")
        .env_remove("LOGRELAY_TLS_CERT")
        .env_remove("LOGRELAY_TLS_KEY")
        .env_remove("LOGRELAY_TOKEN_FILE")
        .output()
        .expect("run logq")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How a `logq` run must end.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Success,
    /// Refused by the relay or by the TLS handshake: exit status 3.
    Refused,
    /// Any failure: an error before anything is sent.
    Failure,
}

/// One `logq` run: its arguments, how it ends and what its output says.
struct Run<'a> {
    args: Vec<&'a str>,
    exit: Exit,
    stdout: Vec<&'a str>,
    stderr: Vec<&'a str>,
}

impl<'a> Run<'a> {
    /// `logq` with `args`, then the token's arguments, then the connection's.
    fn new(exit: Exit, args: &[&'a str], token: &[&'a str], connection: &[&'a str]) -> Run<'a> {
        Run {
            args: [args, token, connection].concat(),
            exit,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn ok(args: &[&'a str], token: &[&'a str], connection: &[&'a str]) -> Run<'a> {
        Run::new(Exit::Success, args, token, connection)
    }

    fn refused(args: &[&'a str], token: &[&'a str], connection: &[&'a str]) -> Run<'a> {
        Run::new(Exit::Refused, args, token, connection)
    }

    fn fails(args: &[&'a str], token: &[&'a str], connection: &[&'a str]) -> Run<'a> {
        Run::new(Exit::Failure, args, token, connection)
    }

    fn stdout(mut self, says: &'a str) -> Run<'a> {
        self.stdout.push(says);
        self
    }

    fn stderr(mut self, says: &'a str) -> Run<'a> {
        self.stderr.push(says);
        self
    }

    fn check(&self) {
        let o = logq(&self.args);
        let ended = match self.exit {
            Exit::Success => o.status.success(),
            Exit::Refused => o.status.code() == Some(3),
            Exit::Failure => !o.status.success(),
        };
        assert!(ended, "{:?}: want {:?}, {}", self.args, self.exit, text(&o));
        for (stream, says) in [(&o.stdout, &self.stdout), (&o.stderr, &self.stderr)] {
            let out = String::from_utf8_lossy(stream);
            for s in says {
                assert!(out.contains(s), "{:?}: want {s:?}, {}", self.args, text(&o));
            }
        }
    }
}

fn auth(p: &Pki) -> ClientAuth {
    ClientAuth {
        tls_ca: Some(p.ca.clone()),
        tls_cert: Some(p.client_cert.clone()),
        tls_key: Some(p.client_key.clone()),
        server_name: Some("localhost".into()),
        token: Some(TOKEN.into()),
    }
}

#[test]
fn logger_over_mutual_tls_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (mut d, tls) = relay(&p, &[]);
    let logger = Logger::new(
        Config::new("tls-logger")
            .server(tls.to_string())
            .auth(auth(&p)),
    )
    .expect("logger");
    for i in 0..500 {
        logger.log(Level::Info, format!("over tls {i}"), "tls-logger");
    }
    logger.flush(Duration::from_secs(20)).expect("flushed");
    assert_eq!(logger.acknowledged(), 500);
    let rows = d.wait_rows(500);
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|r| r.message.starts_with("over tls ")));
    drop(logger);
    let (_, stderr) = d.terminate();
    assert_eq!(final_stat(&stderr, "stored"), 500, "{stderr}");
}

#[test]
fn logq_send_and_simulate_over_tls_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (mut d, tls) = relay(&p, &[]);
    let server = format!("localhost:{}", tls.port());
    let s = |p: &PathBuf| p.display().to_string();
    let (ca, cert, key, token_file) = (
        s(&p.ca),
        s(&p.client_cert),
        s(&p.client_key),
        s(&p.token_file),
    );
    let tls_args = [
        "--server",
        &server,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let file = ["--token-file", token_file.as_str()];
    let own_ca = ["--server", &server, "--tls-ca", &ca];
    // In order: the good runs, the refusals (each says why, exits 3 and is counted by
    // the relay), the clear errors that never reach the relay's counters, and a good
    // client after them all, which is still stored.
    let runs = [
        Run::ok(
            &["send", "-s", "tls-send", "sent over tls"],
            &file,
            &tls_args,
        ),
        Run::ok(
            &["send", "--acks", "-s", "tls-send", "acked over tls"],
            &file,
            &tls_args,
        ),
        Run::ok(
            &["simulate", "--count", "300", "--services", "3"],
            &file,
            &tls_args,
        )
        .stdout("sent 300,"),
        Run::ok(
            &["simulate", "--count", "200", "--services", "2", "--acks"],
            &["--token", TOKEN],
            &tls_args,
        )
        .stderr("--token is shown by ps"),
        Run::refused(
            &["send", "-s", "bad", "bad token"],
            &["--token", "guess"],
            &tls_args,
        )
        .stderr("refused")
        .stderr("bad_token"),
        Run::refused(
            &["send", "-s", "nocert", "no client certificate"],
            &file,
            &own_ca,
        )
        .stderr("TLS with"),
        Run::refused(
            &["send", "--tls-server-name", "other.example", "x"],
            &file,
            &tls_args,
        )
        .stderr("--tls-server-name"),
        Run::fails(
            &["send", "x"],
            &[],
            &["--server", &server, "--tls-ca", "/nonexistent/ca.pem"],
        )
        .stderr("cannot read the CA file /nonexistent/ca.pem"),
        Run::ok(&["send", "-s", "tls-send", "still good"], &file, &tls_args),
    ];
    for run in &runs {
        run.check();
    }
    let rows = d.wait_rows(503);
    let mut sent: Vec<&str> = rows
        .iter()
        .filter(|r| r.source.as_deref() == Some("tls-send"))
        .map(|r| r.message.as_str())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, ["acked over tls", "sent over tls", "still good"]);
    assert_eq!(rows.len(), 503, "3 sent + 300 + 200 simulated");
    std::thread::sleep(Duration::from_millis(300));
    let (_, stderr) = d.terminate();
    assert_eq!(final_stat(&stderr, "refused_bad_token"), 1, "{stderr}");
    assert_eq!(final_stat(&stderr, "refused_no_certificate"), 1, "{stderr}");
    assert_eq!(final_stat(&stderr, "stored"), 503, "{stderr}");
}

#[test]
fn forwarding_over_mutual_tls_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (mut central, tls) = relay(&p, &[]);
    // The edge's [[forward]] table names the upstream by address: the certificate's
    // name is given, the token comes from a file.
    let edge_dir = tempfile::tempdir().unwrap();
    let config = write(
        edge_dir.path(),
        "edge.toml",
        &format!(
            "[[forward]]\nto = \"127.0.0.1:{}\"\ntls-ca = \"{}\"\ntls-cert = \"{}\"\n\
             tls-key = \"{}\"\ntls-server-name = \"localhost\"\ntoken-file = \"{}\"\n",
            tls.port(),
            p.ca.display(),
            p.client_cert.display(),
            p.client_key.display(),
            p.token_file.display()
        ),
    );
    let spool = edge_dir.path().join("spool");
    let db = edge_dir.path().join("unused.db");
    let mut edge = Daemon::start_args(
        edge_dir,
        db,
        "none",
        "127.0.0.1:0",
        &[
            "--config",
            config.to_str().unwrap(),
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    );
    const N: usize = 2000;
    let logger =
        Logger::new(Config::new("edge-sender").server(edge.addr.to_string())).expect("logger");
    for i in 0..N {
        logger.log(Level::Info, format!("i={i}"), "edge-sender");
    }
    logger
        .flush(Duration::from_secs(20))
        .expect("edge took everything");
    drop(logger);
    let rows = central.wait_rows(N);
    let mut seen: Vec<usize> = rows
        .iter()
        .map(|r| {
            r.message
                .strip_prefix("i=")
                .and_then(|n| n.parse().ok())
                .expect("i=N")
        })
        .collect();
    assert_eq!(seen.len(), N, "every message once");
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), N, "no message twice");
    let (_, edge_log) = edge.terminate();
    assert_eq!(final_stat(&edge_log, "forwarded"), N as u64, "{edge_log}");
    let (_, stderr) = central.terminate();
    assert_eq!(final_stat(&stderr, "stored"), N as u64, "{stderr}");
}

#[test]
fn forwarding_with_a_bad_token_is_refused_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (mut central, tls) = relay(&p, &[]);
    let bad = write(dir.path(), "bad-token", "guess\n");
    let edge_dir = tempfile::tempdir().unwrap();
    let spool = edge_dir.path().join("spool");
    let db = edge_dir.path().join("unused.db");
    let to = format!("localhost:{}", tls.port());
    let s = |p: &PathBuf| p.display().to_string();
    let mut edge = Daemon::start_args(
        edge_dir,
        db,
        "none",
        "127.0.0.1:0",
        &[
            "--spool-dir",
            spool.to_str().unwrap(),
            "--forward-to",
            &to,
            "--forward-tls-ca",
            &s(&p.ca),
            "--forward-tls-cert",
            &s(&p.client_cert),
            "--forward-tls-key",
            &s(&p.client_key),
            "--forward-token-file",
            &s(&bad),
        ],
    );
    edge.send(b"{\"message\":\"waits in the spool\"}\n");
    assert!(
        edge.wait_stderr("the upstream relay refused the link"),
        "{}",
        edge.stderr()
    );
    assert!(edge.stderr().contains("bad_token"), "{}", edge.stderr());
    let (_, _) = edge.terminate();
    let (_, stderr) = central.terminate();
    assert!(final_stat(&stderr, "refused_bad_token") >= 1, "{stderr}");
    assert_eq!(final_stat(&stderr, "stored"), 0, "{stderr}");
}
