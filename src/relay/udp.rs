//! Syslog over UDP: one message per datagram. Datagrams already waiting are gathered
//! into one batch; when the writer is behind, the batch is dropped and counted
//! (UDP has no way to push back).

use super::Shared;
use super::stats::Stats;
use crate::protocol::{Context, decode_frame};
use crate::store::Batch;
use chrono::Utc;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

/// Datagrams gathered into one batch at most.
const MAX_DATAGRAMS_PER_BATCH: usize = 512;

pub async fn serve(socket: UdpSocket, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let mut batch = Batch::new();
        let mut next = first;
        for _ in 0..MAX_DATAGRAMS_PER_BATCH {
            match next {
                Ok((n, peer)) => {
                    let received = Utc::now();
                    let peer_text = peer.to_string();
                    let ctx = Context {
                        received,
                        peer: Some(&peer_text),
                        zone: shared.config.zone.offset_at(received),
                    };
                    // Datagrams are whole messages; a trailing LF is framing residue.
                    let mut dgram = &buf[..n];
                    while let [rest @ .., b'\n' | b'\r' | b'\0'] = dgram {
                        dgram = rest;
                    }
                    let dgram = &dgram[..dgram.len().min(shared.config.max_frame)];
                    if n > shared.config.max_frame {
                        Stats::add(&shared.stats.truncated, 1);
                    }
                    if let Some(m) = decode_frame(dgram, &ctx) {
                        Stats::add(&shared.stats.received, 1);
                        Stats::add(
                            &shared.stats.raw,
                            u64::from(m.protocol == crate::message::Protocol::Raw),
                        );
                        batch.push(&m);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
            }
            next = match socket.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                other => other,
            };
        }
        if batch.is_empty() {
            continue;
        }
        match shared.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                Stats::add(&shared.stats.udp_dropped, b.len() as u64);
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
