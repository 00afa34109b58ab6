//! Running logrelay as a service, checked with the tools a sysadmin has: man pages and
//! completions (man, bash), systemd units (systemd-analyze, systemd-socket-activate),
//! service notifications on a NOTIFY_SOCKET, /metrics (promtool), check-config, SIGHUP.

mod common;
#[path = "service/docs.rs"]
mod docs;

use common::WAIT;
use common::have;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let bless = std::env::var_os("LOGRELAY_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, content) in docs::generated() {
        let file = repo().join(&path);
        if std::fs::read(&file).ok().as_deref() == Some(&content[..]) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, &content).expect("write");
        } else {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (the flags changed?): {stale:?}; regenerate with LOGRELAY_BLESS=1 cargo test --test service"
    );
}

fn man_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .expect("man/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| ["1", "5", "8"].contains(&&*e.to_string_lossy()))
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn man_pages_format_without_warnings() {
    if !have("man") {
        return;
    }
    let pages = man_pages();
    assert!(pages.len() >= 5, "{pages:?}");
    for page in pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .stdin(Stdio::null())
            .output()
            .expect("run man");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{}: {stderr}",
            page.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SEE ALSO"), "{}: {text}", page.display());
    }
}

#[test]
fn the_toml_page_names_keys_the_file_accepts() {
    let page = std::fs::read_to_string(repo().join("man/logrelayd.toml.5")).expect("page");
    let keys: Vec<&str> = page
        .split(".TP\n")
        .skip(1)
        .filter_map(|entry| entry.strip_prefix("\\fB")?.split("\\fR").next())
        .collect();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in keys {
        let key = key.replace("\\-", "-");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("one.toml");
        std::fs::write(&file, format!("{key} = []\n")).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_logrelayd"))
            .arg("check-config")
            .arg(&file)
            .output()
            .expect("run check-config");
        let err = String::from_utf8_lossy(&out.stderr);
        // Lists whose empty value means "off" take `[]`; nothing else does.
        let empty_is_off =
            ["listen-tls", "tls-allow", "listen-relp", "forward-to"].contains(&key.as_str());
        assert!(
            empty_is_off || !out.status.success(),
            "{key} = [] accepted?"
        );
        assert!(!err.contains("unknown field"), "{key}: {err}");
    }
}

#[test]
fn bash_completes_logq_priority() {
    if !have("bash") {
        return;
    }
    let script = repo().join("completions/logq.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(logq --pr); COMP_CWORD=1; COMP_LINE='logq --pr'; \
             COMP_POINT=9; _logq logq --pr logq; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        words.trim(),
        "--priority",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The units with ExecStart pointing at the built binary, and a MANPATH holding our
/// pages, so `systemd-analyze verify` checks the commands and the Documentation= pages.
fn staged_units(dir: &std::path::Path) -> PathBuf {
    let units = dir.join("units");
    std::fs::create_dir_all(&units).expect("mkdir");
    for unit in ["logrelayd.service", "logrelayd.socket"] {
        let text = std::fs::read_to_string(repo().join("systemd").join(unit)).expect("unit");
        let text = text.replace("/usr/bin/logrelayd", env!("CARGO_BIN_EXE_logrelayd"));
        std::fs::write(units.join(unit), text).expect("write unit");
    }
    for page in man_pages() {
        let name = page
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let section = name.rsplit('.').next().expect("section").to_string();
        let to = dir.join("man").join(format!("man{section}"));
        std::fs::create_dir_all(&to).expect("mkdir");
        std::fs::copy(&page, to.join(&name)).expect("copy page");
    }
    units
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let units = staged_units(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("logrelayd.service"))
        .arg(units.join("logrelayd.socket"))
        .env("MANPATH", dir.path().join("man"))
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    // systemd's own exposure score: 10 is unprotected, below 2 is "OK".
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(units.join("logrelayd.service"))
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .split("Overall exposure level for logrelayd.service:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

/// A process of this test with its stderr collected; killed when dropped.
struct Proc {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .env_remove("LOGRELAY_LISTEN")
            .env_remove("LOGRELAY_DB")
            .env_remove("LOGRELAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Proc { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (bounded) for `needle` in stderr; returns everything read so far.
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(start.elapsed() < WAIT, "no '{needle}' in:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child; no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then the exit status (bounded).
    fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            assert!(
                start.elapsed() < WAIT,
                "no exit after SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logrelayd"));
    cmd.args(["--zone", "UTC", "--stats-interval", "3600"])
        .args(args);
    cmd
}

/// A listener the test holds, so that a relay trying to bind its address would fail.
fn occupied() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

#[test]
fn socket_activation_tcp_and_udp() {
    if !have("systemd-socket-activate") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("logs.db");
    let db_arg = format!("sqlite:{}", db.display());
    let (_held, busy) = occupied();
    for datagram in [false, true] {
        let port = common::unused_port();
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.args(["-l", &format!("127.0.0.1:{port}")]);
        if datagram {
            cmd.arg("--datagram");
        }
        // `--listen` names an address in use: the relay must not try to bind it.
        cmd.arg(env!("CARGO_BIN_EXE_logrelayd"))
            .args(["--db", &db_arg, "--listen", &busy, "--zone", "UTC"]);
        let mut relay = Proc::spawn(cmd);
        relay.wait_for(&format!("Listening on 127.0.0.1:{port}"));
        // systemd-socket-activate starts the relay at the first connection or datagram.
        let text =
            format!("<13>1 2026-01-01T00:00:00Z host app - - - activated datagram={datagram}");
        if datagram {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .expect("udp")
                .send_to(text.as_bytes(), ("127.0.0.1", port))
                .expect("send");
        } else {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(format!("{text}\n").as_bytes()).expect("send");
        }
        let log = relay.wait_for("using the sockets the service manager passed");
        let want = if datagram {
            "tcp=0 udp=1"
        } else {
            "tcp=1 udp=0"
        };
        assert!(log.contains(want), "{log}");
        let start = Instant::now();
        while !common::read_rows(&db)
            .iter()
            .any(|r| r.message.ends_with(&format!("datagram={datagram}")))
        {
            assert!(start.elapsed() < WAIT, "not stored:\n{}", relay.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(relay.stop().success(), "{}", relay.stderr());
    }
}

/// Reads notifications (bounded) until one contains `needle`; returns all read.
fn notified(sock: &std::os::unix::net::UnixDatagram, needle: &str, seen: &mut String) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(start.elapsed() < WAIT, "no {needle} in {seen:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('|');
        }
    }
}

#[test]
fn notify_ready_watchdog_reload_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let config = dir.path().join("logrelayd.toml");
    std::fs::write(&config, "log = \"info\"\n").expect("config");
    let db = format!("sqlite:{}", dir.path().join("logs.db").display());
    let listen = format!("127.0.0.1:{}", common::unused_port());
    let mut cmd = daemon(&["--listen", &listen, "--db", &db, "--config"]);
    cmd.arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000");
    let mut relay = Proc::spawn(cmd);
    let mut seen = String::new();
    notified(&sock, "READY=1", &mut seen);
    // READY=1 means listening: a connection succeeds at once.
    std::net::TcpStream::connect(&listen).expect("READY=1 came before listening");
    assert!(seen.contains("STATUS=received=0"), "{seen}");
    // Idle, the writer still turns (woken every 100 ms) and pings.
    seen.clear();
    notified(&sock, "WATCHDOG=1", &mut seen);
    seen.clear();
    notified(&sock, "WATCHDOG=1", &mut seen);
    // SIGHUP: the level from the file, said in the log and in STATUS=.
    std::fs::write(&config, "log = \"debug\"\n").expect("config");
    relay.signal(libc::SIGHUP);
    seen.clear();
    notified(&sock, "RELOADING=1", &mut seen);
    notified(
        &sock,
        "STATUS=reloaded: reloaded log level (INFO -> DEBUG)",
        &mut seen,
    );
    relay.wait_for("SIGHUP: reloaded log level (INFO -> DEBUG)");
    // A broken file is reported and the running settings kept.
    std::fs::write(&config, "log = \"loud\"\n").expect("config");
    relay.signal(libc::SIGHUP);
    relay.wait_for("keeping the running settings");
    assert!(relay.stop().success(), "{}", relay.stderr());
    seen.clear();
    notified(&sock, "STOPPING=1", &mut seen);
}

#[test]
fn check_config_says_ok_or_why_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = [\"127.0.0.1:5514\"]\nmetrics = \"127.0.0.1:9514\"\n",
    )
    .expect("write");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "max-frame = 10\n").expect("write");
    let example = repo().join("fixtures/logrelayd.toml");
    // Files the relay would open at start are opened too.
    let no_ca = dir.path().join("no-ca.toml");
    std::fs::write(
        &no_ca,
        "forward-to = [\"127.0.0.1:6514\"]\nforward-tls-ca = \"/nonexistent/up-ca.pem\"\n",
    )
    .expect("write");
    let no_cert = dir.path().join("no-cert.toml");
    std::fs::write(
        &no_cert,
        "listen-tls = [\"127.0.0.1:6514\"]\ntls-cert = \"/nonexistent/relay.pem\"\n\
         tls-key = \"/nonexistent/relay.key\"\n",
    )
    .expect("write");
    for (file, ok, needle) in [
        (&good, true, "ok"),
        (&example, true, "ok"),
        (&bad, false, "max-frame 10 out of range"),
        (&no_ca, false, "/nonexistent/up-ca.pem"),
        (&no_cert, false, "/nonexistent/relay.pem"),
        (
            &dir.path().join("missing.toml"),
            false,
            "cannot read config",
        ),
    ] {
        let out = daemon(&["check-config"])
            .arg(file)
            .env_remove("LOGRELAY_CONFIG")
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), ok, "{}: {text}", file.display());
        assert!(!ok || out.status.code() == Some(0));
        assert!(ok || out.status.code() == Some(2), "{text}");
        assert!(
            text.contains(needle) && text.contains(&*file.to_string_lossy()),
            "{text}"
        );
    }
}

/// One HTTP GET: status code and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn wait_status(addr: &str, path: &str, want: u16) -> String {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, path);
        if status == want {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{path}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_pass_promtool_and_readyz_follows_the_store() {
    let tokens = tempfile::NamedTempFile::new().expect("tokens file");
    std::fs::write(tokens.path(), "good-token\n").expect("write tokens");
    let tokens_path = tokens.path().to_str().expect("utf-8 path");
    let d = common::Daemon::start(&[
        "--metrics",
        "127.0.0.1:0",
        "--auth-tokens-file",
        tokens_path,
    ]);
    let addr = metrics_addr(&d);
    d.send(b"<13>1 2026-01-01T00:00:00Z h app - - - one\n<13>1 2026-01-01T00:00:00Z h app - - - two\nnot syslog at all\n");
    assert_eq!(d.wait_rows(3).len(), 3);
    // A hello with a wrong token is refused, and counted by reason on /metrics.
    assert!(refused_hello(&d, "not-the-token").contains("bad_token"));
    let page = wait_body(
        &addr,
        "/metrics",
        "logrelay_refused_total{reason=\"bad_token\"} 1\n",
    );
    assert!(
        page.contains("logrelay_refused_total{reason=\"missing_token\"} 0\n"),
        "{page}"
    );
    assert!(page.contains("\nlogrelay_received_total 3\n"), "{page}");
    assert!(page.contains("\nlogrelay_stored_total 3\n"), "{page}");
    assert!(page.contains("\nlogrelay_raw_total 1\n"), "{page}");
    assert!(page.contains("\nlogrelay_ready 1\n"), "{page}");
    assert!(
        page.contains("logrelay_commit_duration_seconds_count "),
        "{page}"
    );
    promtool_accepts(&page);
    assert_eq!(get(&addr, "/livez").0, 200);
    assert_eq!(get(&addr, "/readyz").0, 200);
    assert_eq!(get(&addr, "/nothing").0, 404);
    // Another connection holds the write lock: the relay's inserts fail (after its busy
    // timeout) and /readyz says so; once the lock is gone the retry commits.
    let lock = rusqlite::Connection::open(&d.db).expect("open store");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    d.send(b"<13>1 2026-01-01T00:00:00Z h app - - - while locked\n");
    let body = wait_status(&addr, "/readyz", 503);
    assert!(
        body.contains("store failing") && body.contains("locked"),
        "{body}"
    );
    assert!(get(&addr, "/metrics").1.contains("\nlogrelay_store_up 0\n"));
    assert_eq!(get(&addr, "/livez").0, 200);
    lock.execute_batch("COMMIT").expect("release");
    wait_status(&addr, "/readyz", 200);
    assert_eq!(d.wait_rows(4).len(), 4);
}

/// With the store locked, a steady sender fills the spool (a small spool-max-size),
/// then the memory budget: `/readyz` names each high-water mark, `/metrics` shows the
/// levels (and still passes promtool), and all clears once the store takes rows again,
/// with every message stored.
#[test]
fn readyz_reports_the_spool_and_memory_budget_high_water_marks() {
    let d = common::Daemon::start(&[
        "--metrics",
        "127.0.0.1:0",
        "--memory-budget",
        "1MiB",
        "--spool-max-size",
        "262144",
    ]);
    let addr = metrics_addr(&d);
    assert_eq!(get(&addr, "/readyz").0, 200);
    let lock = rusqlite::Connection::open(&d.db).expect("open store");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    // 3 MiB of 1 KiB lines: more than spool and budget together. The writes block
    // under backpressure until the store is released (or the relay is killed).
    const LINES: usize = 3072;
    let mut conn = d.connect();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let filler = "x".repeat(1000);
        let mut out = Vec::with_capacity(LINES * 1100);
        for i in 0..LINES {
            writeln!(
                out,
                "<13>1 2026-01-01T00:00:00Z h app - - - {i:05} {filler}"
            )
            .expect("format");
        }
        conn.write_all(&out)
    });
    // The spool refuses a write that would pass its size (the writer spools what
    // waits as one write): full, possibly below the 90 % mark.
    let body = wait_body(&addr, "/readyz", "spool ");
    assert!(
        body.starts_with("not ready: ")
            && (body.contains("spool full") || body.contains("spool past its high-water mark")),
        "{body}"
    );
    let body = wait_body(&addr, "/readyz", "memory budget past its high-water mark");
    assert!(body.contains("of 1.0 MiB in use"), "{body}");
    let page = get(&addr, "/metrics").1;
    assert!(page.contains("\nlogrelay_ready 0\n"), "{page}");
    assert!(
        page.contains("\nlogrelay_memory_budget_bytes 1048576\n"),
        "{page}"
    );
    assert!(
        page.contains("\nlogrelay_spool_max_bytes 262144\n"),
        "{page}"
    );
    let gauge = |name: &str| -> u64 {
        page.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {page}"))
    };
    // (The spool may hold nothing yet: a first write bigger than the spool is refused.)
    assert!(gauge("logrelay_spool_bytes") <= 262_144, "{page}");
    assert!(
        gauge("logrelay_memory_budget_used_bytes") * 10 >= 1_048_576 * 9,
        "{page}"
    );
    promtool_accepts(&page);
    lock.execute_batch("COMMIT").expect("release");
    drop(lock);
    sender
        .join()
        .expect("sender thread")
        .expect("every line written once the store is back");
    wait_status(&addr, "/readyz", 200);
    assert_eq!(d.wait_rows(LINES).len(), LINES);
}

/// A write bigger than the whole spool is refused while the spool stays empty: `/readyz`
/// says "spool full" while the store is locked, and is ready again once the store takes
/// the rows directly (nothing is ever replayed from the spool to clear it).
#[test]
fn readyz_clears_after_a_write_bigger_than_the_whole_spool() {
    let d = common::Daemon::start(&["--metrics", "127.0.0.1:0", "--spool-max-size", "4096"]);
    let addr = metrics_addr(&d);
    let lock = rusqlite::Connection::open(&d.db).expect("open store");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    // Each line alone is bigger than the spool: every append is refused.
    const LINES: usize = 3;
    let filler = "y".repeat(6000);
    let mut conn = d.connect();
    let mut out = Vec::new();
    for i in 0..LINES {
        use std::io::Write;
        writeln!(
            out,
            "<13>1 2026-01-01T00:00:00Z h app - - - {i:03} {filler}"
        )
        .expect("format");
    }
    std::io::Write::write_all(&mut conn, &out).expect("18 KiB fit the memory budget");
    let body = wait_body(&addr, "/readyz", "spool full");
    assert!(body.contains("of 4.0 KiB"), "{body}");
    lock.execute_batch("COMMIT").expect("release");
    drop(lock);
    assert_eq!(d.wait_rows(LINES).len(), LINES);
    wait_status(&addr, "/readyz", 200);
}

/// The metrics address the relay logged at start.
fn metrics_addr(d: &common::Daemon) -> String {
    assert!(d.wait_stderr("metrics on http://"), "{}", d.stderr());
    d.stderr()
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("metrics address")
        .to_string()
}

/// Polls `path` until its body contains `needle`; returns the body.
fn wait_body(addr: &str, path: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let (_, body) = get(addr, path);
        if body.contains(needle) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{path} never showed {needle:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a native hello with `token`; returns the relay's answer line.
fn refused_hello(d: &common::Daemon, token: &str) -> String {
    use std::io::{BufRead, Write};
    let mut s = d.connect();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    writeln!(s, "{{\"hello\":1,\"token\":\"{token}\"}}").expect("hello");
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .expect("answer");
    line
}

/// `promtool check metrics` finds nothing to say about `page` (skipped without it).
fn promtool_accepts(page: &str) {
    if !have("promtool") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(page.as_bytes()).expect("feed promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
