//! Builds a large SQLite store from the realistic workload for the logq benchmark:
//!
//!     cargo run --release --example fill_store -- WORKLOAD.lf DB ROWS SPAN_HOURS
//!
//! WORKLOAD.lf is LF-framed RFC 5424 from ../shared/bench/gen_rfc5424.py. Its messages are
//! reused until ROWS rows are written; event times are spread evenly over the SPAN_HOURS
//! before now, so `-S -1h`, `today` and `yesterday` all select real data.

use chrono::{Duration, Utc};
use logrelay::protocol::{Context, decode_frame};
use logrelay::store::{Batch, StoreWriter, sqlite::SqliteWriter};
use std::borrow::Cow;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: fill_store WORKLOAD.lf DB ROWS SPAN_HOURS");
        std::process::exit(2);
    }
    let data = std::fs::read(&args[1]).expect("read workload");
    let rows: u64 = args[3].parse().expect("ROWS");
    let span_hours: i64 = args[4].parse().expect("SPAN_HOURS");
    let frames: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let now = Utc::now();
    let start = now - Duration::hours(span_hours);
    let step_us = span_hours * 3_600_000_000 / rows as i64;
    let peer = "127.0.0.1:50000";
    let mut store = SqliteWriter::open(Path::new(&args[2])).expect("open store");
    let begun = std::time::Instant::now();
    let mut batch = Batch::new();
    for i in 0..rows {
        let frame = frames[(i % frames.len() as u64) as usize];
        let ctx = Context::new(now);
        let Some(mut m) = decode_frame(frame, &ctx) else {
            continue;
        };
        m.timestamp = start + Duration::microseconds(i as i64 * step_us);
        m.peer = Some(Cow::Borrowed(peer));
        batch.push(&m);
        if batch.len() == 5000 {
            store.insert(std::slice::from_ref(&batch)).expect("insert");
            batch.clear();
        }
        if i % 1_000_000 == 0 && i > 0 {
            eprintln!(
                "{i} rows, {:.0} rows/s",
                i as f64 / begun.elapsed().as_secs_f64()
            );
        }
    }
    store.insert(std::slice::from_ref(&batch)).expect("insert");
    eprintln!("{rows} rows in {:.1} s", begun.elapsed().as_secs_f64());
    // Leave the store as a relay at rest does: the word filer works at the lowest
    // priority and, on a busy machine, falls behind; an idle writer waits for it to
    // make every complete block's filters from the stored rows. Exiting at once left
    // over half of a 10M-row store without filters, so word searches read those
    // blocks whole (seconds instead of milliseconds) until a relay next opened it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while let Some(again) = store.idle() {
        if std::time::Instant::now() > deadline {
            eprintln!("word filters still being made after 600 s; a relay finishes them");
            break;
        }
        std::thread::sleep(again);
    }
    eprintln!(
        "word filters made, {:.1} s in all",
        begun.elapsed().as_secs_f64()
    );
}
