//! One TCP connection from the `Logger` to the relay. With acknowledgements it opens
//! with the hello line (docs/PROTOCOL.md) and a small thread reads the relay's
//! `{"ack":N}` lines, so the worker never blocks on them and can write meanwhile.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the reader thread learns from the relay.
#[derive(Debug, Default)]
struct AckState {
    /// Highest acknowledged sequence number.
    acked: AtomicU64,
    /// EOF or an error: the relay closed the connection.
    closed: AtomicBool,
}

pub struct Link {
    stream: TcpStream,
    /// Set when the relay agreed to acknowledge.
    acks: Option<Arc<AckState>>,
    reader: Option<JoinHandle<()>>,
}

/// Longest answer line to the hello that is read.
const MAX_ANSWER: usize = 4096;

impl Link {
    /// Connects to the first address that answers; with `client`, says hello and asks
    /// for acknowledgements (`None` if the relay refuses the hello or does not answer).
    pub fn open(addrs: &[SocketAddr], timeout: Duration, client: Option<&str>) -> Option<Link> {
        Self::open_as(addrs, timeout, client, false)
    }

    /// The same for a forwarding relay: its hello also says `"forwarding":true`, so the
    /// upstream takes each line's `peer` and `protocol` as the record's origin.
    #[cfg(feature = "relay")]
    pub fn open_forwarding(addrs: &[SocketAddr], timeout: Duration, client: &str) -> Option<Link> {
        Self::open_as(addrs, timeout, Some(client), true)
    }

    fn open_as(
        addrs: &[SocketAddr],
        timeout: Duration,
        client: Option<&str>,
        forwarding: bool,
    ) -> Option<Link> {
        let stream = addrs.iter().find_map(|a| {
            let s = TcpStream::connect_timeout(a, timeout).ok()?;
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
            Some(s)
        })?;
        let Some(client) = client else {
            return Some(Link {
                stream,
                acks: None,
                reader: None,
            });
        };
        let acks = hello(&stream, client, forwarding, timeout).ok()?;
        if !acks {
            return Some(Link {
                stream,
                acks: None,
                reader: None,
            });
        }
        let state = Arc::new(AckState::default());
        let read_half = stream.try_clone().ok()?;
        let _ = read_half.set_read_timeout(None);
        let shared = state.clone();
        let reader = std::thread::Builder::new()
            .name("logrelay-client-acks".into())
            .spawn(move || read_acks(read_half, &shared))
            .ok()?;
        Some(Link {
            stream,
            acks: Some(state),
            reader: Some(reader),
        })
    }

    /// Whether the relay acknowledges on this connection.
    pub fn acknowledging(&self) -> bool {
        self.acks.is_some()
    }

    /// The highest sequence number acknowledged on this connection so far.
    pub fn acked(&self) -> u64 {
        self.acks
            .as_ref()
            .map_or(0, |a| a.acked.load(Ordering::Acquire))
    }

    /// Whether the relay closed the connection (EOF or error seen without blocking), so
    /// nothing is written into a socket that is already gone.
    pub fn closed(&self) -> bool {
        match &self.acks {
            Some(a) => a.closed.load(Ordering::Acquire),
            None => peer_closed(&self.stream),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Ends the reader thread's blocking read.
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Sends the hello and reads the answer: whether the relay will acknowledge.
fn hello(
    mut stream: &TcpStream,
    client: &str,
    forwarding: bool,
    timeout: Duration,
) -> io::Result<bool> {
    let mut line = String::from("{\"hello\":1,\"client\":");
    crate::message::write_json_str(client, &mut line);
    line.push_str(if forwarding {
        ",\"acks\":true,\"forwarding\":true}\n"
    } else {
        ",\"acks\":true}\n"
    });
    stream.write_all(line.as_bytes())?;
    stream.set_read_timeout(Some(timeout))?;
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the answer's newline may be taken from the reader
    // thread (the relay sends nothing more before it has data to acknowledge).
    while !answer.ends_with(b"\n") {
        if answer.len() > MAX_ANSWER || Instant::now() > deadline {
            return Err(io::ErrorKind::InvalidData.into());
        }
        match stream.read(&mut byte)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => answer.push(byte[0]),
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&answer)?;
    if let Some(e) = v.get("error") {
        log_refusal(&e.to_string());
        return Err(io::ErrorKind::PermissionDenied.into());
    }
    Ok(v.get("acks").and_then(|a| a.as_bool()).unwrap_or(false))
}

/// The relay's refusal reason, written once to stderr (a logger cannot log its own
/// errors through itself).
fn log_refusal(text: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        eprintln!("logrelay client: the relay refused the connection: {text}");
    }
}

fn read_acks(mut stream: TcpStream, state: &AckState) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut used = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[used..]) {
            if let Some(n) = parse_ack(&buf[used..used + i]) {
                state.acked.fetch_max(n, Ordering::Release);
            }
            used += i + 1;
        }
        buf.drain(..used);
        if buf.len() > MAX_ANSWER {
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
