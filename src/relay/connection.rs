//! One TCP connection: read, cut frames, parse each into a record, hand the records of
//! each read to the writer as one batch. The channel is bounded, so when the store is
//! slow `send` waits, this task stops reading and TCP pushes back on the sender.

use super::Shared;
use super::stats::Stats;
use crate::protocol::framing::{Decoder, Event, Mode};
use crate::protocol::{Context, decode_frame};
use crate::store::Batch;
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const READ_SIZE: usize = 64 * 1024;
const SHUTDOWN_DRAIN_READS: u32 = 256;

/// Reads what is already available without waiting; 0 when nothing is.
fn read_ready(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    match stream.try_read_buf(buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// Frames cut from one read, parsed into `batch`. Returns how many bytes were used.
pub fn parse_frames(
    decoder: &mut Decoder,
    buf: &[u8],
    eof: bool,
    ctx: &Context<'_>,
    batch: &mut Batch,
    stats: &Stats,
) -> usize {
    let mut pos = 0;
    let (mut frames, mut raw, mut truncated) = (0u64, 0u64, 0u64);
    loop {
        let rest = &buf[pos..];
        let (used, event) = if eof {
            decoder.decode_eof(rest)
        } else {
            decoder.decode(rest)
        };
        pos += used;
        let frame = match event {
            None => break,
            Some(Event::Frame(f)) => f,
            Some(Event::Truncated(f, reason)) => {
                truncated += 1;
                tracing::warn!(peer = ctx.peer, ?reason, kept = f.len(), "frame truncated");
                f
            }
            Some(Event::Error(e)) => {
                // Only strict octet counting reports errors; auto mode falls back to LF.
                tracing::warn!(peer = ctx.peer, error = %e, "framing error, closing");
                break;
            }
        };
        if let Some(m) = decode_frame(frame, ctx) {
            frames += 1;
            raw += u64::from(m.protocol == crate::message::Protocol::Raw);
            batch.push(&m);
        }
    }
    Stats::add(&stats.received, frames);
    Stats::add(&stats.raw, raw);
    Stats::add(&stats.truncated, truncated);
    pos
}

pub async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let peer_text = peer.to_string();
    let mut decoder = Decoder::new(Mode::Auto, shared.config.max_frame);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
    let idle = shared.config.idle_timeout;
    // Once shutdown starts, what the kernel already holds is still read (a bounded
    // number of times), then the connection ends as at EOF.
    let mut drain_reads_left: Option<u32> = None;
    loop {
        buf.reserve(READ_SIZE);
        let read = match drain_reads_left.as_mut() {
            Some(0) => Ok(0),
            Some(left) => {
                *left -= 1;
                read_ready(&stream, &mut buf)
            }
            None => tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    drain_reads_left = Some(SHUTDOWN_DRAIN_READS);
                    continue;
                }
                r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => r.unwrap_or_else(|_| {
                    tracing::info!(peer = %peer, "idle for {idle:?}, closing");
                    Ok(0)
                }),
            },
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "read failed");
                0
            }
        };
        let eof = n == 0;
        let received = Utc::now();
        let ctx = Context {
            received,
            peer: Some(&peer_text),
            zone: shared.config.zone.offset_at(received),
        };
        let mut batch = Batch::with_capacity(256, buf.len() + buf.len() / 4);
        let used = parse_frames(&mut decoder, &buf, eof, &ctx, &mut batch, &shared.stats);
        buf.drain(..used);
        if !batch.is_empty() && shared.tx.send(batch).await.is_err() {
            tracing::error!(peer = %peer, "writer has stopped; closing connection");
            break;
        }
        if eof {
            break;
        }
    }
}
