//! `--metrics ADDR`: a small HTTP endpoint with `/metrics` (Prometheus text format
//! 0.0.4), `/livez` and `/readyz`. The counters come from [`Snapshot`] generically, so a
//! counter added to `relay::stats` shows up here without more work (naming rules in
//! `stats`). Plain HTTP/1.1, GET and HEAD only, one request per connection, bounded in
//! size, time and concurrency: the endpoint is for a scraper, not a browser.

use super::auth::Refusal;
use super::health::Latency;
use super::stats::{GAUGES, Snapshot, Stats};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Request head limit; a scraper sends a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request and take the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))
}

pub async fn serve(listener: TcpListener, stats: Arc<Stats>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &stats)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return respond(&mut stream, 431, "text/plain", "request too large\n", false).await;
        }
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head = method == "HEAD";
    if method != "GET" && !head {
        return respond(&mut stream, 405, "text/plain", "only GET and HEAD\n", head).await;
    }
    let path = target.split('?').next().unwrap_or("");
    match route(path, stats) {
        Some((status, kind, body)) => respond(&mut stream, status, kind, &body, head).await,
        None => {
            respond(
                &mut stream,
                404,
                "text/plain",
                "try /metrics, /livez or /readyz\n",
                head,
            )
            .await
        }
    }
}

/// The answer to `path`: status, content type and body.
pub fn route(path: &str, stats: &Stats) -> Option<(u16, &'static str, String)> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => Some((
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            render(stats),
        )),
        "/livez" => Some((200, TEXT, "ok\n".into())),
        "/readyz" => Some(match super::health::not_ready(stats) {
            None => (200, TEXT, "ready\n".into()),
            Some(why) => (503, TEXT, format!("not ready: {why}\n")),
        }),
        _ => None,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    body: &str,
    head: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// One metric family: its name, type, help and samples (label text, value).
struct Family {
    name: String,
    kind: &'static str,
    help: String,
    samples: Vec<(String, u64)>,
}

/// Every counter of `snap`, named and grouped by the rules in `relay::stats`.
fn families(snap: &Snapshot) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(snap) else {
        return out;
    };
    for (field, value) in fields {
        if field == "refused" {
            // Refusals by authentication, one sample per reason, beside the limits'.
            let counts = value.as_array().into_iter().flatten();
            for (why, n) in Refusal::ALL.iter().zip(counts) {
                push(
                    &mut out,
                    "logrelay_refused_total",
                    "counter",
                    REFUSED_HELP,
                    format!("{{reason=\"{}\"}}", why.name()),
                    n.as_u64().unwrap_or(0),
                );
            }
            continue;
        }
        let Some(value) = value.as_u64() else {
            continue;
        };
        let (name, kind, label, help) = if GAUGES.contains(&field.as_str()) {
            (
                format!("logrelay_{field}"),
                "gauge",
                String::new(),
                field.replace('_', " "),
            )
        } else if let Some(reason) = field.strip_suffix("_dropped") {
            (
                "logrelay_dropped_total".to_string(),
                "counter",
                format!("{{reason=\"{reason}\"}}"),
                "Messages dropped, by reason".to_string(),
            )
        } else if let Some(reason) = field
            .strip_suffix("_rejected")
            .or_else(|| field.strip_suffix("_refused"))
        {
            (
                "logrelay_refused_total".to_string(),
                "counter",
                format!("{{reason=\"{reason}\"}}"),
                REFUSED_HELP.to_string(),
            )
        } else {
            let name = match field.strip_suffix("_total") {
                Some(base) => format!("logrelay_{base}_total"),
                None => format!("logrelay_{field}_total"),
            };
            (name, "counter", String::new(), field.replace('_', " "))
        };
        push(&mut out, &name, kind, &help, label, value);
    }
    out
}

const REFUSED_HELP: &str =
    "Connections or messages refused at a limit or by authentication, by reason";

/// Adds a sample to its family (created on first use: one HELP/TYPE per family).
fn push(
    out: &mut Vec<Family>,
    name: &str,
    kind: &'static str,
    help: &str,
    label: String,
    value: u64,
) {
    match out.iter_mut().find(|f| f.name == name) {
        Some(f) => f.samples.push((label, value)),
        None => out.push(Family {
            name: name.to_string(),
            kind,
            help: help.to_string(),
            samples: vec![(label, value)],
        }),
    }
}

/// The whole `/metrics` page.
pub fn render(stats: &Stats) -> String {
    let mut out = String::with_capacity(4096);
    for f in families(&stats.snapshot()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "{}{labels} {v}", f.name);
        }
    }
    let up = u8::from(stats.writer.failing().is_none());
    let ready = u8::from(super::health::not_ready(stats).is_none());
    let _ = write!(
        out,
        "# HELP logrelay_store_up Whether the store's last insert succeeded\n\
         # TYPE logrelay_store_up gauge\nlogrelay_store_up {up}\n\
         # HELP logrelay_ready Whether /readyz answers 200 (store up, budget and spool below their high-water marks)\n\
         # TYPE logrelay_ready gauge\nlogrelay_ready {ready}\n"
    );
    write_histogram(
        &mut out,
        "logrelay_commit_duration_seconds",
        "Time of one store transaction",
        &stats.writer.latency(),
    );
    let _ = write!(
        out,
        "# HELP logrelay_build_info The running version\n# TYPE logrelay_build_info gauge\n\
         logrelay_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn write_histogram(out: &mut String, name: &str, help: &str, h: &Latency) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (le, n) in &h.cumulative {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_secs);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_the_rules() {
        let stats = Stats::default();
        Stats::add(&stats.received, 7);
        Stats::add(&stats.udp_dropped, 2);
        Stats::add(&stats.connections_rejected, 3);
        Stats::add(&stats.connections_total, 4);
        let page = render(&stats);
        assert!(page.contains("\nlogrelay_received_total 7\n"), "{page}");
        assert!(page.contains("logrelay_dropped_total{reason=\"udp\"} 2\n"));
        assert!(page.contains("logrelay_refused_total{reason=\"connections\"} 3\n"));
        assert!(page.contains("logrelay_connections_total 4\n"));
        assert!(page.contains("# TYPE logrelay_connections_open gauge\n"));
        assert!(page.contains("logrelay_commit_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        // One HELP/TYPE per family.
        assert_eq!(page.matches("# TYPE logrelay_dropped_total").count(), 1);
        // Authentication refusals share the refused family, every reason listed.
        stats.refuse(Refusal::BadToken);
        stats.refuse(Refusal::BadToken);
        let page = render(&stats);
        assert!(
            page.contains("logrelay_refused_total{reason=\"bad_token\"} 2\n"),
            "{page}"
        );
        assert!(page.contains("logrelay_refused_total{reason=\"no_certificate\"} 0\n"));
        assert_eq!(page.matches("# TYPE logrelay_refused_total").count(), 1);
        assert!(page.contains("\nlogrelay_ready 1\n"));
        assert!(page.contains("# TYPE logrelay_spool_bytes gauge\n"));
        assert!(page.contains("# TYPE logrelay_memory_budget_used_bytes gauge\n"));
    }

    #[test]
    fn readyz_says_why() {
        let stats = Stats::default();
        assert_eq!(route("/readyz", &stats).map(|r| r.0), Some(200));
        stats
            .writer
            .attempted(Duration::from_secs(1), 1, Some(&"database is locked"));
        let (status, _, body) = route("/readyz", &stats).unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("database is locked"), "{body}");
        assert!(route("/nope", &stats).is_none());
    }
}
