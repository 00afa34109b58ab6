//! Test harness: a real `logrelayd` process on 127.0.0.1 with a real SQLite file.
#![allow(dead_code)]

pub mod rsyslog;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// One stored row, as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub time_us: i64,
    pub severity: i64,
    pub facility: Option<i64>,
    pub hostname: Option<String>,
    pub source: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub structured_data: Option<String>,
    pub message: String,
    pub protocol: String,
    pub peer: Option<String>,
    pub log_level: String,
}

pub fn read_rows(db: &std::path::Path) -> Vec<Row> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return vec![];
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT id, time_us, severity, facility, hostname, source, procid, msgid, \
         structured_data, message, protocol, peer, LogLevel FROM Logs ORDER BY id",
    ) else {
        return vec![];
    };
    stmt.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            time_us: r.get(1)?,
            severity: r.get(2)?,
            facility: r.get(3)?,
            hostname: r.get(4)?,
            source: r.get(5)?,
            procid: r.get(6)?,
            msgid: r.get(7)?,
            structured_data: r.get(8)?,
            message: r.get(9)?,
            protocol: r.get(10)?,
            peer: r.get(11)?,
            log_level: r.get(12)?,
        })
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("logs.db");
        Daemon::start_with_db(dir, db, "127.0.0.1:0", extra)
    }

    /// A relay on `listen` storing into `db` (a restart keeps both).
    pub fn start_with_db(
        dir: tempfile::TempDir,
        db: PathBuf,
        listen: &str,
        extra: &[&str],
    ) -> Daemon {
        let url = format!("sqlite:{}", db.display());
        Daemon::start_args(dir, db, &url, listen, extra)
    }

    /// A relay on `listen` with `--db db_arg` (`none`, for one that only forwards);
    /// `db` is where [`Daemon::rows`] looks.
    pub fn start_args(
        dir: tempfile::TempDir,
        db: PathBuf,
        db_arg: &str,
        listen: &str,
        extra: &[&str],
    ) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logrelayd"))
            .args(["--listen", listen, "--db", db_arg])
            .args(["--stats-interval", "3600", "--zone", "UTC"])
            .args(extra)
            .env_remove("LOGRELAY_LISTEN")
            .env_remove("LOGRELAY_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start logrelayd");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stderr.clone();
        let pipe = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let addr = addr.split(',').next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                lines.lock().expect("lock").push(line);
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "logrelayd did not start: {:?}",
                    stderr.lock().map(|l| l.clone())
                )
            })
            .parse()
            .expect("listening address");
        Daemon {
            child,
            addr,
            db,
            dir,
            stderr,
        }
    }

    /// A new relay on the same store (and spool) once this one has exited.
    pub fn start_again(mut self, extra: &[&str]) -> Daemon {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let db = self.db.clone();
        drop(self);
        Daemon::start_with_db(dir, db, "127.0.0.1:0", extra)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).expect("connect to relay")
    }

    pub fn send(&self, bytes: &[u8]) {
        let mut s = self.connect();
        s.write_all(bytes).expect("send");
    }

    pub fn rows(&self) -> Vec<Row> {
        read_rows(&self.db)
    }

    /// Waits (bounded) until at least `n` rows are stored; returns them.
    pub fn wait_rows(&self, n: usize) -> Vec<Row> {
        let start = Instant::now();
        loop {
            let rows = self.rows();
            if rows.len() >= n || start.elapsed() > WAIT {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits (bounded) until the daemon's stderr contains `needle`; the log line can
    /// arrive a moment after the effect a test saw on its socket.
    pub fn wait_stderr(&self, needle: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits (bounded) for the exit; returns the status and all stderr.
    pub fn terminate(&mut self) -> (ExitStatus, String) {
        // SAFETY: kill(2) with our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            if start.elapsed() > WAIT {
                let _ = self.child.kill();
                panic!("logrelayd did not exit after SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the reader thread see the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr())
    }
}

impl Daemon {
    /// Stops this relay and starts another on the same address and store.
    pub fn restart(mut self, pause: Duration) -> Daemon {
        let (status, _) = self.terminate();
        assert!(status.success());
        std::thread::sleep(pause);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Daemon::start_with_db(dir, self.db.clone(), &self.addr.to_string(), &[])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=` in the daemon's final "stopped:" line.
pub fn final_stat(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no final stats in:\n{stderr}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// A loopback port nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// Whether an external program exists; CI sets LOGRELAY_REQUIRE_CLIENTS=1 so that a
/// missing client fails there instead of skipping.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("LOGRELAY_REQUIRE_CLIENTS").is_some() {
            panic!("{program} is required (LOGRELAY_REQUIRE_CLIENTS is set)");
        }
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }

    /// Fills the disk to the last byte with a file; removing it makes room again.
    pub fn fill_up(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 16 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&block[..1]);
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
