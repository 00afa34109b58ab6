//! Socket activation: listening sockets handed over by the service manager
//! (`LISTEN_FDS`/`LISTEN_PID`, sd_listen_fds(3)), as `logrelayd.socket` passes them.
//! Stream sockets become TCP listeners and datagram sockets UDP receivers; when any are
//! passed, `listen` is not bound.

use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, UdpSocket};

#[derive(Debug, Default)]
pub struct Inherited {
    pub tcp: Vec<TcpListener>,
    pub udp: Vec<UdpSocket>,
}

/// The descriptors are taken once per process: a second owner would close them twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets passed to this process, or `None` when it was not socket-activated.
/// Must run inside a tokio runtime.
pub fn take() -> Result<Option<Inherited>, String> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .map_err(|e| format!("bad socket activation variables: {e}"))?
        .collect();
    if fds.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    let mut got = Inherited::default();
    for fd in fds {
        let (domain, kind) = socket_kind(fd)?;
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            return Err(format!(
                "socket activation: descriptor {fd} is not an IPv4 or IPv6 socket (use ListenStream=/ListenDatagram= with an address or port)"
            ));
        }
        // SAFETY: the service manager passed `fd` to this process for it to own
        // (LISTEN_PID is ours, checked by listen_fds) and TAKEN makes this the only owner.
        match kind {
            libc::SOCK_STREAM => {
                let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                got.tcp
                    .push(TcpListener::from_std(l).map_err(|e| e.to_string())?);
            }
            libc::SOCK_DGRAM => {
                let u = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
                u.set_nonblocking(true).map_err(|e| e.to_string())?;
                got.udp
                    .push(UdpSocket::from_std(u).map_err(|e| e.to_string())?);
            }
            other => {
                return Err(format!(
                    "socket activation: descriptor {fd} has socket type {other}, neither stream nor datagram"
                ));
            }
        }
    }
    Ok(Some(got))
}

/// The address family and type of socket `fd` (getsockopt SO_DOMAIN and SO_TYPE).
fn socket_kind(fd: RawFd) -> Result<(i32, i32), String> {
    let get = |opt: libc::c_int| -> Result<i32, String> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(format!(
                "socket activation: descriptor {fd} is not a socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(value)
    };
    Ok((get(libc::SO_DOMAIN)?, get(libc::SO_TYPE)?))
}
