//! Stores handled with care, with the real binaries and real files: readers never
//! create, migrate or alter a file (a store on a read-only directory can be read), the
//! relay refuses a file that is not a logrelay store before changing anything in it,
//! errors name the path and give a hint, and new store files get narrow permissions.

mod common;

use logrelay::message::{Level, LogMessage};
use logrelay::store::sqlite::SqliteWriter;
use logrelay::store::{Batch, StoreWriter};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every file in a directory with its bytes: what "left unchanged" compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs a binary to its end within 20 s.
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(common::WAIT) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            // SAFETY: kill(2) on the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {:?}", common::WAIT);
        }
    }
}

fn logq(db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logq"));
    cmd.arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .env_remove("LOGRELAY_DB")
        .env("NO_COLOR", "1");
    cmd
}

fn logrelayd(db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logrelayd"));
    cmd.args(["--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite:{}", db.display()))
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_LISTEN");
    cmd
}

/// A SQLite file of another program, with a `Logs` table of its own.
fn foreign_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE Logs (id INTEGER PRIMARY KEY, line TEXT);
         INSERT INTO Logs (line) VALUES ('mine, not logrelay''s');",
    )
    .unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn relay_refuses_foreign_files_and_leaves_them_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("other.db");
    foreign_sqlite(&sqlite);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all\n".repeat(100)).unwrap();
    for (path, reason) in [
        (&sqlite, "its Logs table has no time_us column"),
        (&text, "not an SQLite database"),
    ] {
        let before = snapshot(dir.path());
        let started = Instant::now();
        let out = run(logrelayd(path));
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            err.contains(&format!("{} is not a logrelay store", path.display()))
                && err.contains(reason),
            "{err}"
        );
        assert!(!err.contains("CREATE"), "no DDL in the error: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
        assert!(
            snapshot(dir.path()) == before,
            "{}: the directory and every byte stay as they were",
            path.display()
        );
    }
}

#[test]
fn logq_on_a_sqlite_file_without_logs_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE settings (k TEXT, v TEXT);")
            .unwrap();
    }
    let before = snapshot(dir.path());
    let out = run(logq(&path));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{} is not a logrelay store", path.display()))
            && err.contains("no Logs table"),
        "{err}"
    );
    assert!(snapshot(dir.path()) == before, "nothing created or changed");
    // An empty file is a store not made yet, and stays empty.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let out = run(logq(&empty));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

/// A store written by the relay's writer and closed (checkpointed, no `-wal` left).
fn small_store(path: &Path) {
    let mut w = SqliteWriter::open(path).unwrap();
    let mut b = Batch::new();
    let now = chrono::Utc::now();
    for i in 0..3 {
        b.push(&LogMessage::new(format!("stored {i}"), Level::Warning, now));
    }
    assert_eq!(w.insert(&[b]).unwrap(), 3);
}

/// Runs `cmd` as a user the directory's modes apply to: `nobody` when the tests run as
/// root (root passes any permission check), else the current user.
fn unprivileged(cmd: &mut Command) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_store_on_a_read_only_directory_is_read_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let db = ro.join("logs.db");
    small_store(&db);
    chmod(dir.path(), 0o755);
    chmod(&db, 0o444);
    chmod(&ro, 0o555);
    let before = snapshot(&ro);
    assert_eq!(before.len(), 1, "the closed store is one file: {before:?}");

    let mut cmd = logq(&db);
    unprivileged(&mut cmd);
    let out = run(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..3 {
        assert!(text.contains(&format!("stored {i}")), "{text}");
    }
    assert!(snapshot(&ro) == before, "the reader left no trace");

    // The relay cannot write there: the error names the file and says why.
    let mut cmd = logrelayd(&db);
    unprivileged(&mut cmd);
    let out = run(cmd);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&db.display().to_string()) && err.contains("read-only"),
        "{err}"
    );
    assert!(snapshot(&ro) == before, "the refused relay changed nothing");
    chmod(&ro, 0o755);
}

#[test]
fn new_store_files_are_0640_in_a_0750_directory() {
    let dir = tempfile::tempdir().unwrap();
    let new_dir = dir.path().join("a").join("b");
    let db = new_dir.join("logs.db");
    let w = SqliteWriter::open(&db).unwrap();
    // Under the usual umask 022 the modes are exactly these.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o640);
    assert_eq!(mode(&new_dir), 0o750);
    assert_eq!(mode(&dir.path().join("a")), 0o750);
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert_eq!(mode(&wal), 0o640, "SQLite gives its WAL the file's mode");
    drop(w);
}
