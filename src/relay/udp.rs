//! Syslog over UDP: one message per datagram. Datagrams already waiting are gathered
//! into one batch. UDP cannot push back, so it loses what does not fit, and says so:
//! - the kernel drops datagrams when the socket's receive buffer (`udp-recv-buffer`) is
//!   full; the socket reports its running drop count with each datagram
//!   (`SO_RXQ_OVFL`), which becomes `udp_kernel_dropped`;
//! - the relay drops a batch when the memory budget or the channel is full:
//!   `udp_dropped`.

use super::Shared;
use super::stats::Stats;
use super::writer::Inbound;
use crate::protocol::{Context, decode_frame};
use crate::store::Batch;
use chrono::Utc;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

/// Datagrams gathered into one batch at most.
const MAX_DATAGRAMS_PER_BATCH: usize = 512;

/// Asks for a `bytes` receive buffer (the kernel caps it at `net.core.rmem_max` unless
/// the relay may override that) and turns on drop counting.
pub fn tune(socket: &UdpSocket, bytes: usize) {
    let fd = socket.as_raw_fd();
    let want = i32::try_from(bytes).unwrap_or(i32::MAX);
    // SO_RCVBUFFORCE passes the cap with CAP_NET_ADMIN; otherwise SO_RCVBUF, capped.
    if setsockopt(fd, libc::SO_RCVBUFFORCE, want).is_err()
        && let Err(e) = setsockopt(fd, libc::SO_RCVBUF, want)
    {
        tracing::warn!(error = %e, "cannot set the UDP receive buffer");
    }
    // Linux reports twice the size it grants (bookkeeping overhead included).
    let got = socket2::SockRef::from(socket)
        .recv_buffer_size()
        .unwrap_or(0)
        / 2;
    if got < bytes {
        tracing::warn!(
            asked = bytes,
            got,
            "the kernel capped the UDP receive buffer; raise it with \
             `sysctl -w net.core.rmem_max={bytes}` (bursts beyond the buffer are dropped and \
             counted as udp_kernel_dropped)"
        );
    }
    if let Err(e) = setsockopt(fd, libc::SO_RXQ_OVFL, 1) {
        tracing::warn!(error = %e, "cannot count the kernel's UDP drops (SO_RXQ_OVFL)");
    }
}

fn setsockopt(fd: RawFd, opt: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket fd and a pointer to an int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One datagram: its length, sender, and the socket's drop count if the kernel sent it.
fn recv_datagram(fd: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr, Option<u32>)> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one u32 control message, u64-aligned.
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points at a live buffer of the stated size.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut drops = None;
    // SAFETY: walking the control buffer the kernel filled, with its own macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let peer =
        socket_addr(&addr).ok_or_else(|| std::io::Error::other("datagram without an IP sender"))?;
    Ok((n as usize, peer, drops))
}

fn socket_addr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

pub async fn serve(socket: UdpSocket, shared: Arc<Shared>, shutdown: CancellationToken) {
    let fd = socket.as_raw_fd();
    let mut buf = vec![0u8; 65_536];
    // The socket's drop count as last reported (it counts from the socket's creation).
    let mut kernel_drops = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.readable() => if r.is_err() { return },
        }
        let mut batch = Batch::new();
        for _ in 0..MAX_DATAGRAMS_PER_BATCH {
            let (n, peer, drops) =
                match socket.try_io(Interest::READABLE, || recv_datagram(fd, &mut buf)) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "UDP receive failed");
                        break;
                    }
                };
            if let Some(d) = drops {
                Stats::add(
                    &shared.stats.udp_kernel_dropped,
                    u64::from(d.wrapping_sub(kernel_drops)),
                );
                kernel_drops = d;
            }
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
        if batch.is_empty() {
            continue;
        }
        let Some(held) = shared.budget.try_acquire(batch.heap_bytes()) else {
            Stats::add(&shared.stats.udp_dropped, batch.len() as u64);
            continue;
        };
        match shared.tx.try_send(Inbound { batch, held }) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                Stats::add(&shared.stats.udp_dropped, b.batch.len() as u64);
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
