//! RELP input (`--listen-relp`): the Reliable Event Logging Protocol as rsyslog's
//! `omrelp` speaks it. Each frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; the
//! client opens with its offers, sends `syslog` frames (a window of them outstanding),
//! and closes. A `syslog` frame is answered `rsp 200` only once its message is durable:
//! its batch carries the connection's [`AckPoint`] like an acknowledging native
//! client's, with a sequence number per frame that this connection assigns.

use super::Shared;
use super::stats::Stats;
use crate::protocol::{Context, decode_frame};
use crate::store::Batch;
use crate::store::batch::AckPoint;
use chrono::Utc;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const READ_SIZE: usize = 64 * 1024;
/// Longest TXNR and DATALEN fields (RELP: at most 9 digits).
const MAX_DIGITS: usize = 9;
/// Longest command name.
const MAX_COMMAND: usize = 32;

/// One RELP frame, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u64,
    pub command: &'a [u8],
    pub data: &'a [u8],
}

/// The next frame in `buf` and the bytes it used; `Ok(None)` when incomplete.
pub fn parse(buf: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, String> {
    let mut pos = 0;
    let Some(txnr) = number(buf, &mut pos)? else {
        return Ok(None);
    };
    if buf.get(pos) != Some(&b' ') {
        return Err("RELP: TXNR not followed by SP".into());
    }
    pos += 1;
    let Some(command) = word(buf, &mut pos)? else {
        return Ok(None);
    };
    let Some(len) = number(buf, &mut pos)? else {
        return Ok(None);
    };
    let len = len as usize;
    if len > max_data {
        return Err(format!(
            "RELP frame of {len} bytes is over the limit ({max_data})"
        ));
    }
    // After DATALEN: LF when there is no data (a SP before it is tolerated), else SP DATA LF.
    let data_start = match buf.get(pos) {
        None => return Ok(None),
        Some(b'\n') if len == 0 => return Ok(Some((frame(txnr, command, &[]), pos + 1))),
        Some(b' ') => pos + 1,
        Some(b) => return Err(format!("RELP: unexpected byte 0x{b:02x} after DATALEN")),
    };
    let end = data_start + len;
    match buf.get(end) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((frame(txnr, command, &buf[data_start..end]), end + 1))),
        Some(b) => Err(format!("RELP: frame trailer is 0x{b:02x}, not LF")),
    }
}

fn frame<'a>(txnr: u64, command: &'a [u8], data: &'a [u8]) -> Frame<'a> {
    Frame {
        txnr,
        command,
        data,
    }
}

/// Digits up to a SP or LF, which is left for the caller.
fn number(buf: &[u8], pos: &mut usize) -> Result<Option<u64>, String> {
    let start = *pos;
    let mut i = start;
    while let Some(b) = buf.get(i) {
        match b {
            b'0'..=b'9' if i - start < MAX_DIGITS => i += 1,
            b' ' | b'\n' if i > start => {
                let n = std::str::from_utf8(&buf[start..i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("RELP: bad number")?;
                *pos = i;
                return Ok(Some(n));
            }
            _ => return Err(format!("RELP: bad number field at byte {i}")),
        }
    }
    Ok(None)
}

fn word<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let start = *pos;
    let mut i = start;
    while let Some(b) = buf.get(i) {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' if i - start < MAX_COMMAND => i += 1,
            b' ' if i > start => {
                *pos = i + 1;
                return Ok(Some(&buf[start..i]));
            }
            _ => return Err(format!("RELP: bad command at byte {i}")),
        }
    }
    Ok(None)
}

/// Appends `TXNR rsp LEN DATA\n`.
fn rsp(out: &mut Vec<u8>, txnr: u64, data: &str) {
    let mut head = String::with_capacity(24);
    let _ = write!(head, "{txnr} rsp {}", data.len());
    out.extend_from_slice(head.as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data.as_bytes());
    }
    out.push(b'\n');
}

pub async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let peer_text = peer.to_string();
    let idle = shared.config.idle_timeout.0;
    let max_data = shared.config.max_frame.max(128 * 1024);
    let ack = Arc::new(AckPoint::default());
    // syslog frames waiting for their rsp: (sequence number, TXNR), oldest first.
    let mut waiting: VecDeque<(u64, u64)> = VecDeque::new();
    let mut next_seq = 1u64;
    let mut closing: Option<u64> = None; // TXNR of the client's close
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Answer what is durable; after a close, once nothing is waiting, say goodbye.
        let durable = ack.durable.load(Ordering::Acquire);
        while let Some(&(seq, txnr)) = waiting.front() {
            if seq > durable {
                break;
            }
            rsp(&mut out, txnr, "200 OK");
            waiting.pop_front();
        }
        let done = closing.is_some_and(|_| waiting.is_empty());
        if let Some(txnr) = closing.filter(|_| done) {
            rsp(&mut out, txnr, "");
        }
        if !out.is_empty() {
            let wrote = tokio::time::timeout(idle, stream.write_all(&out)).await;
            out.clear();
            if !matches!(wrote, Ok(Ok(()))) {
                break;
            }
        }
        if done {
            break;
        }
        buf.reserve(READ_SIZE);
        tokio::select! {
            biased;
            // Frames not yet answered are resent by the client to the next relay.
            _ = shutdown.cancelled() => break,
            _ = ack.notify.notified() => continue,
            r = tokio::time::timeout(idle, stream.read_buf(&mut buf)), if closing.is_none() => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => break, // EOF, error or idle
            },
        }
        let received = Utc::now();
        let ctx = Context {
            received,
            peer: Some(&peer_text),
            zone: shared.config.zone.offset_at(received),
        };
        let mut batch = Batch::with_capacity(64, buf.len());
        batch.set_delivery(None, ack.clone());
        let mut used = 0;
        let mut frames = 0u64;
        loop {
            let (f, n) = match parse(&buf[used..], max_data) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "RELP protocol error, closing");
                    return;
                }
            };
            used += n;
            match f.command {
                b"open" => rsp(
                    &mut out,
                    f.txnr,
                    "200 OK\nrelp_version=0\nrelp_software=logrelay\ncommands=syslog",
                ),
                b"syslog" => match decode_frame(f.data, &ctx) {
                    Some(m) => {
                        frames += 1;
                        batch.push(&m);
                        batch.push_seq(Some(next_seq));
                        waiting.push_back((next_seq, f.txnr));
                        next_seq += 1;
                    }
                    None => rsp(&mut out, f.txnr, "200 OK"), // empty: nothing to store
                },
                b"close" => closing = Some(f.txnr),
                _ => rsp(&mut out, f.txnr, "500 unknown command"),
            }
        }
        buf.drain(..used);
        Stats::add(&shared.stats.received, frames);
        if !batch.is_empty() {
            // Counted against the memory budget until durable (waits while it is spent).
            let held = shared.budget.acquire(batch.heap_bytes()).await;
            let inbound = super::writer::Inbound { batch, held };
            if shared.tx.send(inbound).await.is_err() {
                tracing::error!(peer = %peer, "writer has stopped; closing RELP connection");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let open = b"1 open 31 relp_version=0\ncommands=syslog\n\n2 syslog 5 <13>x\n3 close 0\n";
        let (f, n) = parse(open, 1000).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data),
            (1, &b"open"[..], &b"relp_version=0\ncommands=syslog\n"[..])
        );
        let (f, m) = parse(&open[n..], 1000).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data),
            (2, &b"syslog"[..], &b"<13>x"[..])
        );
        let (f, _) = parse(&open[n + m..], 1000).unwrap().unwrap();
        assert_eq!((f.txnr, f.command, f.data), (3, &b"close"[..], &b""[..]));
        for cut in 0..n {
            assert_eq!(parse(&open[..cut], 1000).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(b"x open 0\n", 1000).is_err());
        assert!(parse(b"1 syslog 5 abcdeX", 1000).is_err());
        assert!(parse(b"1 syslog 99999 ", 1000).is_err());
        assert!(parse(b"1234567890 open 0\n", 1000).is_err());
        let mut out = Vec::new();
        rsp(&mut out, 7, "200 OK");
        rsp(&mut out, 8, "");
        assert_eq!(out, b"7 rsp 6 200 OK\n8 rsp 0\n");
    }
}
