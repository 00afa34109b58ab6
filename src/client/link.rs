//! One connection from the `Logger` (or the forwarder) to the relay, plain TCP or TLS
//! (opened by [`Connector`]). With acknowledgements it opens with the hello line
//! (docs/PROTOCOL.md) and a small thread reads the relay's `{"ack":N}` lines, so the
//! worker never blocks on them and can write meanwhile. A TLS link always has that
//! thread: it also sees the relay close the connection.

use super::connect::{ConnectError, Connector, MAX_ANSWER, Stream};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the reader thread learns from the relay.
#[derive(Debug, Default)]
struct AckState {
    /// Highest acknowledged sequence number.
    acked: AtomicU64,
    /// EOF or an error: the relay closed the connection.
    closed: AtomicBool,
}

/// The writing side.
enum Out {
    Plain(TcpStream),
    /// TLS records must go out in the order they are made, and the reader thread may
    /// need to answer (a key update): both sides use the connection under this lock.
    /// The reader takes it only after it read bytes off the socket, never while blocked.
    #[cfg(feature = "client-tls")]
    Tls(Arc<std::sync::Mutex<TlsStream>>),
}

#[cfg(feature = "client-tls")]
type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub struct Link {
    out: Out,
    /// The socket, for shutting it down and probing it.
    tcp: TcpStream,
    /// What the reader thread saw (TLS connections always have one).
    state: Option<Arc<AckState>>,
    /// Set when the relay agreed to acknowledge.
    acks: bool,
    reader: Option<JoinHandle<()>>,
}

impl Link {
    /// Connects to the first address that answers; with `client`, says hello and asks
    /// for acknowledgements; with a token or TLS (`connector`), says hello in any case.
    pub fn open(
        addrs: &[SocketAddr],
        timeout: Duration,
        client: Option<&str>,
        connector: &Connector,
    ) -> Result<Link, ConnectError> {
        let (stream, acks) = connector.open(addrs, timeout, client)?;
        let unreadable = |e: io::Error| ConnectError::Hello {
            addr: "the relay".into(),
            err: format!("cannot start reading acknowledgements: {e}"),
        };
        let tcp = stream.tcp().try_clone().map_err(unreadable)?;
        match stream {
            Stream::Plain(s) if !acks => Ok(Link {
                out: Out::Plain(s),
                tcp,
                state: None,
                acks: false,
                reader: None,
            }),
            Stream::Plain(s) => {
                let state = Arc::new(AckState::default());
                let read_half = s.try_clone().map_err(unreadable)?;
                let _ = read_half.set_read_timeout(None);
                let shared = state.clone();
                let reader = std::thread::Builder::new()
                    .name("logrelay-client-acks".into())
                    .spawn(move || read_acks(read_half, &shared))
                    .map_err(unreadable)?;
                Ok(Link {
                    out: Out::Plain(s),
                    tcp,
                    state: Some(state),
                    acks: true,
                    reader: Some(reader),
                })
            }
            #[cfg(feature = "client-tls")]
            Stream::Tls(s) => {
                let state = Arc::new(AckState::default());
                let read_half = s.sock.try_clone().map_err(unreadable)?;
                let _ = read_half.set_read_timeout(None);
                let conn = Arc::new(std::sync::Mutex::new(*s));
                let (shared, c) = (state.clone(), conn.clone());
                let reader = std::thread::Builder::new()
                    .name("logrelay-client-acks".into())
                    .spawn(move || read_tls_acks(read_half, &c, &shared))
                    .map_err(unreadable)?;
                Ok(Link {
                    out: Out::Tls(conn),
                    tcp,
                    state: Some(state),
                    acks,
                    reader: Some(reader),
                })
            }
        }
    }

    /// Whether the relay acknowledges on this connection.
    pub fn acknowledging(&self) -> bool {
        self.acks
    }

    /// The highest sequence number acknowledged on this connection so far.
    pub fn acked(&self) -> u64 {
        self.state
            .as_ref()
            .filter(|_| self.acks)
            .map_or(0, |a| a.acked.load(Ordering::Acquire))
    }

    /// Whether the relay closed the connection (EOF or error seen without blocking), so
    /// nothing is written into a socket that is already gone.
    pub fn closed(&self) -> bool {
        match &self.state {
            Some(a) => a.closed.load(Ordering::Acquire),
            None => peer_closed(&self.tcp),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Out::Plain(s) => s.write_all(bytes),
            #[cfg(feature = "client-tls")]
            Out::Tls(conn) => write_tls_all(conn, bytes),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        #[cfg(feature = "client-tls")]
        if let Out::Tls(conn) = &self.out {
            let mut guard = lock(conn);
            let s = &mut *guard;
            s.conn.send_close_notify();
            while s.conn.wants_write() {
                if s.conn.write_tls(&mut s.sock).is_err() {
                    break;
                }
            }
        }
        // Ends the reader thread's blocking read.
        let _ = self.tcp.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[cfg(feature = "client-tls")]
fn lock(m: &std::sync::Mutex<TlsStream>) -> std::sync::MutexGuard<'_, TlsStream> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Encrypts and writes everything, in records of rustls's size.
#[cfg(feature = "client-tls")]
fn write_tls_all(conn: &std::sync::Mutex<TlsStream>, mut bytes: &[u8]) -> io::Result<()> {
    let mut guard = lock(conn);
    let s = &mut *guard;
    while !bytes.is_empty() {
        let n = s.conn.writer().write(bytes)?;
        bytes = &bytes[n..];
        let mut wrote = false;
        while s.conn.wants_write() {
            s.conn.write_tls(&mut s.sock)?;
            wrote = true;
        }
        if n == 0 && !wrote {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The reader thread of a TLS link: raw bytes off the socket (without the lock), then
/// decrypted under it; `{"ack":N}` lines raise the acknowledged mark.
#[cfg(feature = "client-tls")]
fn read_tls_acks(mut sock: TcpStream, conn: &std::sync::Mutex<TlsStream>, state: &AckState) {
    let mut raw = vec![0u8; 16 * 1024];
    let mut lines = Vec::with_capacity(1024);
    let mut plain = [0u8; 4096];
    // The hello's answer may have left plaintext in the connection: read it first.
    let mut n = 0;
    'read: loop {
        {
            let mut guard = lock(conn);
            let s = &mut *guard;
            let mut input = &raw[..n];
            loop {
                if !input.is_empty() && s.conn.read_tls(&mut input).is_err() {
                    break 'read;
                }
                if s.conn.process_new_packets().is_err() {
                    break 'read;
                }
                loop {
                    match s.conn.reader().read(&mut plain) {
                        Ok(0) => break 'read, // close_notify
                        Ok(k) => lines.extend_from_slice(&plain[..k]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break 'read,
                    }
                }
                while s.conn.wants_write() {
                    if s.conn.write_tls(&mut s.sock).is_err() {
                        break 'read;
                    }
                }
                if input.is_empty() {
                    break;
                }
            }
        }
        if !take_acks(&mut lines, state) {
            break;
        }
        n = match sock.read(&mut raw) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
    }
    state.closed.store(true, Ordering::Release);
}

/// Raises the mark for every whole `{"ack":N}` line in `buf` and keeps the rest;
/// `false` when the rest is too long to be the protocol.
fn take_acks(buf: &mut Vec<u8>, state: &AckState) -> bool {
    let mut used = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[used..]) {
        if let Some(n) = parse_ack(&buf[used..used + i]) {
            state.acked.fetch_max(n, Ordering::Release);
        }
        used += i + 1;
    }
    buf.drain(..used);
    buf.len() <= MAX_ANSWER
}

fn read_acks(mut stream: TcpStream, state: &AckState) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if !take_acks(&mut buf, state) {
            break; // not the protocol: give up on this connection
        }
    }
    state.closed.store(true, Ordering::Release);
}

/// `{"ack":N}`; anything else is ignored.
fn parse_ack(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("ack")?.as_u64()
}

fn peer_closed(s: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match (&*s).read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // the relay never sends without acknowledgements; ignore
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = s.set_nonblocking(false);
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines() {
        assert_eq!(parse_ack(br#"{"ack":42}"#), Some(42));
        assert_eq!(parse_ack(br#"{"ack":-1}"#), None);
        assert_eq!(parse_ack(br#"{"hello":1}"#), None);
        assert_eq!(parse_ack(b"garbage"), None);
    }
}
