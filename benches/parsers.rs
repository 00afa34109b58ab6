//! Parser throughput on the realistic workload of ../shared/bench/gen_rfc5424.py, with
//! the crates syslog_loose and syslog_rfc5424 measured on the same input as peers.
//!
//!     cargo bench --bench parsers
//!
//! Messages per second come from criterion's element throughput; MB/s follow from the
//! mean message size printed at the start.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logrelay::protocol::framing::{Decoder, Event, Mode};
use logrelay::protocol::{Context, decode_frame, json, rfc3164, rfc5424, serialize};
use logrelay::store::Batch;
use logrelay::store::batch::Rfc5424Rows;
use logrelay::store::words::{for_each_token_hash, for_each_token_hash_in};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

const N: usize = 50_000;

/// Runs the shared generator (cached under target/) and returns its output.
fn workload(args: &[&str], name: &str) -> Vec<u8> {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    if let Ok(b) = std::fs::read(&cache) {
        return b;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_rfc5424.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["-n", &N.to_string()])
        .args(args)
        .output()
        .expect("python3 and ../shared/bench/gen_rfc5424.py are needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(&cache, &out.stdout);
    out.stdout
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn ctx() -> Context<'static> {
    Context::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap())
}

fn bench(c: &mut Criterion) {
    let lf = workload(&["--framing", "lf"], "bench-workload.lf");
    let octet = workload(&["--framing", "octet"], "bench-workload.octet");
    let ndjson = workload(&["--format", "ndjson"], "bench-workload.ndjson");
    let msgs = lines(&lf);
    let strs: Vec<&str> = msgs
        .iter()
        .map(|m| std::str::from_utf8(m).unwrap())
        .collect();
    let total: usize = msgs.iter().map(|m| m.len()).sum();
    eprintln!(
        "workload: {} messages, mean {} bytes",
        msgs.len(),
        total / msgs.len()
    );

    let mut g = c.benchmark_group("rfc5424");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.sample_size(20);
    g.bench_function("logrelay rfc5424::parse", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(rfc5424::parse(black_box(m)).is_ok());
            }
        })
    });
    let c0 = ctx();
    g.bench_function("logrelay decode_frame (to LogMessage)", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(decode_frame(black_box(m), &c0));
            }
        })
    });
    g.bench_function("logrelay decode_frame + Batch::push", |b| {
        let mut batch = Batch::with_capacity(msgs.len(), total * 2);
        b.iter(|| {
            batch.clear();
            for m in &msgs {
                if let Some(rec) = decode_frame(black_box(m), &c0) {
                    batch.push(&rec);
                }
            }
            black_box(batch.len());
        })
    });
    g.bench_function("logrelay Rfc5424Rows::push (frame to row)", |b| {
        let mut batch = Batch::with_capacity(msgs.len(), total * 2);
        b.iter(|| {
            batch.clear();
            let mut direct = Rfc5424Rows::new(&c0);
            for m in &msgs {
                if !direct.push(black_box(m), &mut batch)
                    && let Some(rec) = decode_frame(m, &c0)
                {
                    batch.push(&rec);
                }
            }
            black_box(batch.len());
        })
    });
    g.bench_function("syslog_loose::parse_message (RFC5424)", |b| {
        b.iter(|| {
            for s in &strs {
                black_box(syslog_loose::parse_message(
                    black_box(s),
                    syslog_loose::Variant::RFC5424,
                ));
            }
        })
    });
    g.bench_function("syslog_rfc5424::parse_message", |b| {
        b.iter(|| {
            for s in &strs {
                black_box(syslog_rfc5424::parse_message(black_box(*s)).is_ok());
            }
        })
    });
    g.finish();

    // The words a store's token filters index (message and structured-data values).
    let mut g = c.benchmark_group("words");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.sample_size(20);
    let mut batch = Batch::with_capacity(msgs.len(), total * 2);
    for m in &msgs {
        if let Some(rec) = decode_frame(m, &c0) {
            batch.push(&rec);
        }
    }
    g.bench_function("logrelay words::for_each_token_hash", |b| {
        let mut buf = String::new();
        b.iter(|| {
            let mut sum = 0u64;
            for r in batch.iter_after(None) {
                for_each_token_hash(r.message, r.structured_data, &mut buf, &mut |h| {
                    sum = sum.wrapping_add(h)
                });
            }
            black_box(sum);
        })
    });
    // As the token filer gets them: the rows' texts one after the other in one text.
    let mut text = String::new();
    let mut rows = Vec::new();
    for r in batch.iter_after(None) {
        let message = text.len()..text.len() + r.message.len();
        text.push_str(r.message);
        let sd = r.structured_data.map(|sd| {
            text.push_str(sd);
            text.len() - sd.len()..text.len()
        });
        rows.push((message, sd));
    }
    g.bench_function("logrelay words::for_each_token_hash_in", |b| {
        let mut buf = String::new();
        b.iter(|| {
            let mut sum = 0u64;
            for (message, sd) in &rows {
                for_each_token_hash_in(&text, message.clone(), sd.clone(), &mut buf, &mut |h| {
                    sum = sum.wrapping_add(h)
                });
            }
            black_box(sum);
        })
    });
    g.finish();

    // RFC 3164: the same messages written the way syslog(3) writes them.
    let c1 = ctx();
    let bsd: Vec<String> = msgs
        .iter()
        .filter_map(|m| decode_frame(m, &c1))
        .map(|m| {
            let mut s = String::new();
            serialize::to_rfc3164(&m, &mut s);
            s
        })
        .collect();
    let mut g = c.benchmark_group("rfc3164");
    g.throughput(Throughput::Elements(bsd.len() as u64));
    g.sample_size(20);
    g.bench_function("logrelay rfc3164::parse", |b| {
        b.iter(|| {
            for s in &bsd {
                black_box(rfc3164::parse(black_box(s.as_bytes())).is_ok());
            }
        })
    });
    g.bench_function("syslog_loose::parse_message (RFC3164)", |b| {
        b.iter(|| {
            for s in &bsd {
                black_box(syslog_loose::parse_message(
                    black_box(s),
                    syslog_loose::Variant::RFC3164,
                ));
            }
        })
    });
    g.finish();

    let json_lines = lines(&ndjson);
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(json_lines.len() as u64));
    g.sample_size(20);
    g.bench_function("logrelay json::parse", |b| {
        let t = chrono::DateTime::from_timestamp(0, 0).unwrap();
        b.iter(|| {
            for l in &json_lines {
                black_box(json::parse(black_box(l), t).is_ok());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Bytes(octet.len() as u64));
    g.sample_size(20);
    for (name, data) in [("octet-counted stream", &octet), ("LF stream", &lf)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = Decoder::new(Mode::Auto, 64 * 1024);
                let mut pos = 0;
                let mut frames = 0usize;
                loop {
                    let (used, ev) = d.decode_eof(&data[pos..]);
                    pos += used;
                    match ev {
                        Some(Event::Frame(_)) | Some(Event::Truncated(..)) => frames += 1,
                        _ => break,
                    }
                }
                black_box(frames)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
