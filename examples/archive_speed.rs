//! The archive thread's work alone, timed: reads every block of a store but the
//! newest and writes it to archive files as retention does (runs of 16 blocks a file),
//! without removing anything, PASSES times over, each pass into a fresh directory.
//! Prints this thread's CPU time per row for each pass and their median, and the
//! archives' bytes per row:
//!
//!     cargo run --release --example archive_speed -- DB ARCHIVE_DIR [PASSES]
//!
//! DB is a store the relay filled (e.g. with the 1M realistic replay); ARCHIVE_DIR must
//! exist and its contents are replaced. One thread, no ingest beside it: far steadier
//! than the archive thread's figure in bench/retention_bench.py, which shares two
//! cores with the relay's other threads.

use logrelay::store::archive::ArchiveDir;
use logrelay::store::retention::{archive_run, runs};
use logrelay::store::sqlite::retention::SqliteRetention;
use std::path::Path;

fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: archive_speed DB ARCHIVE_DIR [PASSES]");
        std::process::exit(2);
    }
    let passes: usize = args.get(3).map_or(5, |p| p.parse().expect("PASSES"));
    let store = SqliteRetention::open(Path::new(&args[1])).expect("open store");
    let blocks = store.blocks().expect("blocks");
    let rows: u64 = blocks
        .iter()
        .map(|b| store.count(b.first_id, b.last_id).expect("count"))
        .sum();
    let root = Path::new(&args[2]);
    let mut per_row = Vec::new();
    for pass in 0..passes {
        let dir = root.join(format!("pass{pass}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("archive dir");
        let archive = ArchiveDir::open(&dir).expect("archive dir");
        let begun = thread_cpu_s();
        for run in runs(&blocks) {
            archive_run(&store, &archive, run, &|| false).expect("archive");
        }
        let us = (thread_cpu_s() - begun) * 1e6 / rows.max(1) as f64;
        let (bytes, archived) = archive.size().expect("size");
        println!(
            "pass {pass}: {us:.3} us a row, {archived} rows, {:.2} B a row",
            bytes as f64 / archived.max(1) as f64
        );
        per_row.push(us);
        let _ = std::fs::remove_dir_all(&dir);
    }
    per_row.sort_by(f64::total_cmp);
    println!(
        "median {:.3} us a row (min {:.3}, max {:.3})",
        per_row[per_row.len() / 2],
        per_row[0],
        per_row[per_row.len() - 1]
    );
}
