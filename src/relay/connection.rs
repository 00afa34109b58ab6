//! One TCP connection: read, cut frames, parse each into a record, hand the records of
//! each read to the writer as one batch. Every read is first reserved from the memory
//! budget (see [`super::budget`]), so when the store is slow the budget runs out, this
//! task stops reading and TCP pushes back on the sender.

use super::Shared;
use super::budget::Held;
use super::stats::Stats;
use super::writer::Inbound;
use crate::log_limit::Limiter;
use crate::protocol::framing::{Decoder, Event, Mode};
use crate::protocol::{Context, decode_frame};
use crate::store::Batch;
use crate::store::batch::{AckPoint, Rfc5424Rows};
use chrono::Utc;
use futures_util::FutureExt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const READ_SIZE: usize = 64 * 1024;
/// A connection waits for data in a read this small, holding no budget; only then does
/// it reserve [`READ_SIZE`] and read the rest that is ready.
const PROBE_SIZE: usize = 2048;
/// See [`reserve`].
const OVERDRAFT_AFTER: Duration = Duration::from_secs(2);
/// At shutdown, a connection is read until it has been quiet this long…
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// …or for this long at most, however fast its sender keeps sending…
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// …then it gets a FIN, and what arrives within this grace is still read. A sender that
/// checks for the FIN before writing (our Logger does) stops in time, so nothing it
/// wrote lands in a socket that is being closed.
const FIN_GRACE: Duration = Duration::from_millis(250);

/// Where a connection is in the relay's shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Live,
    /// Reading what was already sent, until quiet or the deadline.
    Reading {
        until: Instant,
    },
    /// FIN sent; reading the last bytes in flight.
    Closing {
        until: Instant,
    },
}

/// One connection's framing state: the decoder, and whether a truncation was logged
/// (the first is; the rest are only counted, so a sender cannot flood the log).
pub struct Framer {
    decoder: Decoder,
    truncation_logged: bool,
    /// A forwarding relay's connection: native lines carry their origin's peer and
    /// protocol (see [`super::hello::take_origin`]).
    forwarded: bool,
}

impl Framer {
    pub fn new(max_frame: usize) -> Self {
        Framer {
            decoder: Decoder::new(Mode::Auto, max_frame),
            truncation_logged: false,
            forwarded: false,
        }
    }

    /// Frames cut from `buf`, parsed into `batch`. Returns how many bytes were used.
    pub fn parse(
        &mut self,
        buf: &[u8],
        eof: bool,
        ctx: &Context<'_>,
        batch: &mut Batch,
        stats: &Stats,
    ) -> usize {
        let mut pos = 0;
        let (mut frames, mut raw, mut truncated) = (0u64, 0u64, 0u64);
        // Acknowledged batches take each row's `seq` out of its record: those go the
        // general way.
        let mut direct = batch.delivery().is_none().then(|| Rfc5424Rows::new(ctx));
        loop {
            let rest = &buf[pos..];
            let (used, event) = if eof {
                self.decoder.decode_eof(rest)
            } else {
                self.decoder.decode(rest)
            };
            pos += used;
            let frame = match event {
                None => break,
                Some(Event::Frame(f)) => f,
                Some(Event::Truncated(f, reason)) => {
                    truncated += 1;
                    if !self.truncation_logged {
                        self.truncation_logged = true;
                        tracing::warn!(
                            peer = ctx.peer,
                            ?reason,
                            kept = f.len(),
                            "frame truncated (further truncations on this connection are only counted)"
                        );
                    }
                    f
                }
                Some(Event::Error(e)) => {
                    // Only strict octet counting reports errors; auto mode falls back to LF.
                    tracing::warn!(peer = ctx.peer, error = %e, "framing error, closing");
                    break;
                }
            };
            if let Some(d) = direct.as_mut()
                && d.push(frame, batch)
            {
                frames += 1;
                continue;
            }
            if let Some(mut m) = decode_frame(frame, ctx) {
                frames += 1;
                raw += u64::from(m.protocol == crate::message::Protocol::Raw);
                if self.forwarded && m.protocol == crate::message::Protocol::Json {
                    super::hello::take_origin(&mut m);
                }
                if batch.delivery().is_some() {
                    let seq = super::hello::take_seq(&mut m);
                    batch.push(&m);
                    batch.push_seq(seq);
                } else {
                    batch.push(&m);
                }
            }
        }
        Stats::add(&stats.received, frames);
        Stats::add(&stats.raw, raw);
        Stats::add(&stats.truncated, truncated);
        pos
    }
}

/// Sends `{"ack":N}` when the writer moved the connection's durable point past what
/// was last acknowledged. Returns false when the client is gone or stuck.
async fn send_ack<S: AsyncWrite + Unpin>(
    stream: &mut S,
    point: &AckPoint,
    acked: &mut u64,
    line: &mut String,
    idle: Duration,
) -> bool {
    let durable = point.durable.load(std::sync::atomic::Ordering::Acquire);
    if durable <= *acked {
        return true;
    }
    *acked = durable;
    line.clear();
    let _ = writeln!(line, "{{\"ack\":{durable}}}");
    matches!(
        tokio::time::timeout(idle, stream.write_all(line.as_bytes())).await,
        Ok(Ok(()))
    )
}

/// Serves one connection, plain or TLS; `authenticated` when a verified client
/// certificate already vouches for it (otherwise a hello token may be required).
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    authenticated: bool,
) {
    let peer_text = peer.to_string();
    let mut framer = Framer::new(shared.config.max_frame);
    // `buf`: bytes read and not yet parsed (an incomplete frame between reads), covered
    // by `held`. Empty and unallocated while the connection waits, so an idle
    // connection costs no budget; it waits in a small probe read instead.
    let mut held = Held::default();
    let mut probe = [0u8; PROBE_SIZE];
    let idle = shared.config.idle_timeout.0;
    let gate = super::hello::Gate {
        auth: &shared.auth,
        authenticated,
    };
    let (hello, mut buf) = match super::hello::negotiate(&mut stream, idle, &shutdown, gate).await {
        Ok(h) => h,
        Err(why) => {
            super::refused(&shared, &peer, why, "hello");
            return;
        }
    };
    framer.forwarded = hello.as_ref().is_some_and(|h| h.forwarding);
    // Acknowledged delivery: batches carry the sequence numbers and this point, which
    // the writer moves after each commit; the loop below sends `{"ack":N}` lines.
    let (acks, client) = match hello {
        Some(h) if h.acks => (
            Some(Arc::new(AckPoint::default())),
            h.client.map(Arc::<str>::from),
        ),
        _ => (None, None),
    };
    let mut acked = 0u64;
    let mut ack_line = String::new();
    let mut drain = Drain::Live;
    // Data that came with the hello is parsed before the first read.
    let mut primed = !buf.is_empty();
    loop {
        let now = Instant::now();
        // Whether this round's bytes are already in `buf` (they came with the hello).
        let from_hello = primed;
        let read = match drain {
            _ if primed => {
                primed = false;
                Ok(buf.len()).map(|n| n.max(1))
            }
            Drain::Live => tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // Counted from the shutdown, not from when this task noticed it
                    // (it may have waited for budget): shutdown stays bounded.
                    let since = shared.shutdown_at.get().copied().unwrap_or(now);
                    drain = Drain::Reading { until: (now + DRAIN_DEADLINE).min(since + DRAIN_DEADLINE) };
                    continue;
                }
                _ = async { acks.as_ref()?.notify.notified().await; Some(()) }, if acks.is_some() => {
                    if let Some(a) = &acks
                        && !send_ack(&mut stream, a, &mut acked, &mut ack_line, idle).await
                    {
                        break;
                    }
                    continue;
                }
                r = tokio::time::timeout(idle, stream.read(&mut probe)) => r.unwrap_or_else(|_| {
                    tracing::info!(peer = %peer, "idle for {idle:?}, closing");
                    Ok(0)
                }),
            },
            Drain::Reading { until } => {
                let quiet = if now < until {
                    tokio::time::timeout(DRAIN_QUIET, stream.read(&mut probe))
                        .await
                        .ok()
                } else {
                    None
                };
                match quiet {
                    Some(r) => r,
                    None => {
                        // Nothing more for now (or time is up): tell the sender with a
                        // FIN, and keep reading a little for what is already on its way.
                        let _ = stream.shutdown().await;
                        let since = shared.shutdown_at.get().copied().unwrap_or(now);
                        drain = Drain::Closing {
                            until: (now + FIN_GRACE).min(since + DRAIN_DEADLINE + FIN_GRACE),
                        };
                        continue;
                    }
                }
            }
            // (A zero timeout would still return data that is ready: check the time.)
            Drain::Closing { until } if now >= until => Ok(0),
            Drain::Closing { until } => tokio::time::timeout(until - now, stream.read(&mut probe))
                .await
                .unwrap_or(Ok(0)),
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "read failed");
                0
            }
        };
        let eof = n == 0;
        if !eof {
            // Data is here: reserve room for a full read (reading and parsing it),
            // waiting while the budget is spent; then take what the socket has.
            if !from_hello {
                buf.extend_from_slice(&probe[..n]);
            }
            // While draining, reads stay probe-sized (2 KiB), and budget is waited for
            // only until the drain deadline: with thousands of connections and a slow
            // store, shutdown stays bounded by the deadline, not by what senders queued.
            match drain {
                Drain::Live => {
                    // Shutdown while waiting for budget: keep the probe's bytes only.
                    let reserved = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => false,
                        _ = reserve(&shared, &mut held, buf.len() + READ_SIZE) => true,
                    };
                    if reserved {
                        buf.reserve(READ_SIZE);
                        // (An error or EOF here shows again at the next read.)
                        let _ = stream.read_buf(&mut buf).now_or_never();
                    }
                }
                Drain::Reading { until } | Drain::Closing { until } => {
                    let _ = tokio::time::timeout_at(until, reserve(&shared, &mut held, buf.len()))
                        .await;
                }
            }
        }
        let received = Utc::now();
        let ctx = Context {
            received,
            peer: Some(&peer_text),
            zone: shared.config.zone.offset_at(received),
        };
        let mut batch = Batch::reuse_or_new(256, buf.len() + buf.len() / 4);
        if let Some(a) = &acks {
            batch.set_delivery(client.clone(), a.clone());
        }
        let used = framer.parse(&buf, false, &ctx, &mut batch, &shared.stats);
        buf.drain(..used);
        if eof && !buf.is_empty() && acks.is_some() {
            // An acknowledging sender resends every line it has no ack for, this one
            // too: storing the cut-off piece as well would store it twice.
            Stats::add(&shared.stats.truncated, 1);
            static CUT_ACKED: Limiter = Limiter::new("incomplete lines dropped (sender resends)");
            crate::warn_limited!(CUT_ACKED, peer = %peer, bytes = buf.len(), "connection ended inside a line; dropped it (the sender resends what was not acknowledged)");
            buf.clear();
        } else if eof && !buf.is_empty() {
            if drain != Drain::Live {
                // Cut off by shutdown, not ended by the sender: the last frame is
                // probably incomplete. Keep it, but count and say so.
                Stats::add(&shared.stats.truncated, 1);
                static CUT: Limiter = Limiter::new("incomplete frames kept at shutdown");
                crate::warn_limited!(CUT, peer = %peer, bytes = buf.len(), "incomplete frame at shutdown kept");
            }
            framer.parse(&buf, true, &ctx, &mut batch, &shared.stats);
            buf.clear();
        }
        if buf.is_empty() {
            buf = Vec::new(); // nothing to keep: no memory held while waiting
        } else if buf.capacity() > 4 * buf.len().max(PROBE_SIZE) {
            // Only an incomplete frame is left: keep its bytes, not the 64 KiB read
            // buffer (thousands of connections waiting for budget would each hold one:
            // measured 346 MiB RSS with 9,000 pushing connections during a stall).
            buf.shrink_to(buf.len().max(PROBE_SIZE));
        }
        if !batch.is_empty() {
            // The batch takes its share of the reservation (more if it came out
            // larger, which many tiny frames can do); the connection keeps what
            // covers its incomplete frame.
            let cost = batch.heap_bytes();
            let mut share = held.split(cost);
            if share.bytes() < cost
                && let Some(extra) = shared.budget.try_acquire(cost - share.bytes())
            {
                share.merge(extra);
            }
            let inbound = Inbound { batch, held: share };
            if shared.tx.send(inbound).await.is_err() {
                tracing::error!(peer = %peer, "writer has stopped; closing connection");
                break;
            }
        } else {
            batch.recycle();
        }
        held.shrink_to(buf.len());
        // A read of 64 KiB is a lot of parsing: let other connections (and the
        // signal handler) run between reads even when this socket is always ready.
        tokio::task::yield_now().await;
        if eof {
            break;
        }
    }
    // TLS ends with close_notify (RFC 5425 §4.4); plain TCP with a FIN either way.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Tops `held` up to `want` bytes. A connection that already holds bytes (an
/// incomplete frame) waits only so long: if incomplete frames alone had spent the
/// budget, nobody could finish one, so after [`OVERDRAFT_AFTER`] it reads anyway and
/// the overdraft is counted.
async fn reserve(shared: &Shared, held: &mut Held, want: usize) {
    if held.bytes() >= want {
        return;
    }
    let need = want - held.bytes();
    let more = if held.bytes() == 0 {
        shared.budget.acquire(need).await
    } else {
        match tokio::time::timeout(OVERDRAFT_AFTER, shared.budget.acquire(need)).await {
            Ok(h) => h,
            Err(_) => {
                Stats::add(&shared.stats.budget_overdrafts, 1);
                return;
            }
        }
    };
    held.merge(more);
}
