//! Opening a connection to a relay: TCP, TLS when a CA is given (feature `client-tls`),
//! and the hello line (docs/PROTOCOL.md) that carries the token and asks for
//! acknowledgements. The `Logger`'s link, the forwarder, `logq send` and `logq simulate`
//! all connect through here, so they authenticate and fail the same way.

use super::{ClientAuth, ClientError};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest answer line to the hello that is read.
pub(crate) const MAX_ANSWER: usize = 4096;
/// A write the relay does not take within this long fails (the connection is redone).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be opened; the text says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {err}")]
    Unreachable { addr: String, err: String },
    #[error("TLS with {addr} failed: {err}")]
    Tls { addr: String, err: String },
    #[error("the relay at {addr} refused the connection: {text}")]
    Refused { addr: String, text: String },
    #[error("no answer to the hello from {addr}: {err}")]
    Hello { addr: String, err: String },
}

impl ConnectError {
    /// The relay is not there (as opposed to a TLS or authentication problem, which
    /// needs someone to fix a setting).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ConnectError::Unreachable { .. })
    }
}

/// One connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "client-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "client-tls")]
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Ends the sending side (TLS: with close_notify) and waits up to `wait` for the
    /// relay to close in turn: it has read everything by then. A TLS alert from the
    /// relay (a refused client certificate) is returned as an error.
    pub fn finish(&mut self, wait: Duration) -> io::Result<()> {
        #[cfg(feature = "client-tls")]
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            s.flush()?;
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
        let _ = self.tcp().set_read_timeout(Some(wait));
        let mut probe = [0u8; 512];
        loop {
            match self.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => {} // the relay sends nothing on such a connection; ignore
                Err(e) if is_tls_error(&e) => return Err(e),
                Err(_) => return Ok(()), // closed without close_notify, or timed out
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "client-tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "client-tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "client-tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Whether an I/O error came from TLS (an alert, a bad certificate) rather than the
/// socket.
#[cfg(feature = "client-tls")]
fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

#[cfg(not(feature = "client-tls"))]
fn is_tls_error(_: &io::Error) -> bool {
    false
}

/// How to reach one relay: TLS settings and the token. Cheap to clone.
#[derive(Clone, Default)]
pub struct Connector {
    #[cfg(feature = "client-tls")]
    tls: Option<Arc<super::tls::TlsClient>>,
    token: Option<Arc<str>>,
    /// A forwarding relay: its hello says `"forwarding":true`, so the upstream takes
    /// each line's `peer` and `protocol` as the record's origin.
    forwarding: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.is_tls())
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Connector {
    /// Reads the TLS files now: a missing or bad file is an error here, not a relay
    /// that is never reached. `server` (HOST:PORT) gives the name the relay's
    /// certificate must carry unless `auth.server_name` does.
    pub fn new(auth: &ClientAuth, server: &str) -> Result<Connector, ClientError> {
        if auth.tls_ca.is_none() && (auth.tls_cert.is_some() || auth.tls_key.is_some()) {
            return Err(ClientError::Tls(
                "a client certificate needs the CA that signed the relay's (tls-ca)".into(),
            ));
        }
        let token = match auth.token.as_deref().map(str::trim) {
            Some("") => return Err(ClientError::Tls("the token is empty".into())),
            Some(t) => Some(Arc::from(t)),
            None => None,
        };
        #[cfg(feature = "client-tls")]
        let tls = match &auth.tls_ca {
            Some(ca) => Some(Arc::new(super::tls::TlsClient::new(auth, ca, server)?)),
            None => None,
        };
        #[cfg(not(feature = "client-tls"))]
        if auth.tls_ca.is_some() {
            let _ = server;
            return Err(ClientError::Tls(
                "this build has no TLS (cargo feature client-tls)".into(),
            ));
        }
        Ok(Connector {
            #[cfg(feature = "client-tls")]
            tls,
            token,
            forwarding: false,
        })
    }

    /// The same for a forwarding relay (see `forwarding`).
    #[cfg(feature = "relay")]
    pub(crate) fn for_forwarding(mut self) -> Connector {
        self.forwarding = true;
        self
    }

    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "client-tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "client-tls"))]
        false
    }

    /// Whether connections open with a hello even without acknowledgements: to give
    /// the token, and over TLS to learn whether the relay took the client certificate
    /// before anything is written (TLS 1.3 tells it only on the first read).
    fn wants_hello(&self) -> bool {
        self.token.is_some() || self.is_tls()
    }

    /// Connects to the first address that answers, with TLS if configured.
    pub fn connect(&self, addrs: &[SocketAddr], timeout: Duration) -> Result<Stream, ConnectError> {
        let mut last = ConnectError::Unreachable {
            addr: "the relay".into(),
            err: "no address".into(),
        };
        for a in addrs {
            let sock = match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => s,
                Err(e) => {
                    last = ConnectError::Unreachable {
                        addr: a.to_string(),
                        err: e.to_string(),
                    };
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
            #[cfg(feature = "client-tls")]
            if let Some(tls) = &self.tls {
                return tls
                    .handshake(sock, timeout)
                    .map(|s| Stream::Tls(Box::new(s)))
                    .map_err(|e| ConnectError::Tls {
                        addr: a.to_string(),
                        err: tls_text(&e),
                    });
            }
            return Ok(Stream::Plain(sock));
        }
        Err(last)
    }

    /// Connects and says hello when there is a reason to: `client` asks for
    /// acknowledgements under that name; a token or TLS always say hello. Returns the
    /// stream and whether the relay will acknowledge.
    pub fn open(
        &self,
        addrs: &[SocketAddr],
        timeout: Duration,
        client: Option<&str>,
    ) -> Result<(Stream, bool), ConnectError> {
        let mut stream = self.connect(addrs, timeout)?;
        if client.is_none() && !self.wants_hello() {
            return Ok((stream, false));
        }
        let addr = stream
            .tcp()
            .peer_addr()
            .map_or_else(|_| "the relay".to_string(), |a| a.to_string());
        let line = hello_line(client, self.token.as_deref(), self.forwarding);
        let acks = hello(&mut stream, &line, timeout).map_err(|e| match e {
            HelloError::Refused(text) => ConnectError::Refused { addr, text },
            HelloError::Io(e) if is_tls_error(&e) => ConnectError::Tls {
                addr,
                err: tls_text(&e),
            },
            HelloError::Io(e) => ConnectError::Hello {
                addr,
                err: e.to_string(),
            },
        })?;
        Ok((stream, acks))
    }
}

/// The rustls error's text with a hint for the usual mistakes.
fn tls_text(e: &io::Error) -> String {
    let text = e.to_string();
    let hint = if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (the relay's certificate does not name the host connected to: --tls-server-name)"
    } else if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        " (the relay's certificate is not signed by the CA given: tls-ca)"
    } else if text.contains("CertificateRequired") {
        " (the relay wants a client certificate: tls-cert and tls-key)"
    } else if text.contains("alert") {
        " (the relay refused the client certificate: see its log and refusal counters)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

enum HelloError {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for HelloError {
    fn from(e: io::Error) -> HelloError {
        HelloError::Io(e)
    }
}

/// `{"hello":1,"client":…,"acks":…,"token":…,"forwarding":true}` (docs/PROTOCOL.md).
fn hello_line(client: Option<&str>, token: Option<&str>, forwarding: bool) -> String {
    let mut line = String::from("{\"hello\":1");
    if let Some(client) = client {
        line.push_str(",\"client\":");
        crate::message::write_json_str(client, &mut line);
    }
    line.push_str(if client.is_some() {
        ",\"acks\":true"
    } else {
        ",\"acks\":false"
    });
    if let Some(token) = token {
        line.push_str(",\"token\":");
        crate::message::write_json_str(token, &mut line);
    }
    if forwarding {
        line.push_str(",\"forwarding\":true");
    }
    line.push_str("}\n");
    line
}

/// Sends the hello and reads the answer: whether the relay will acknowledge.
fn hello(stream: &mut Stream, line: &str, timeout: Duration) -> Result<bool, HelloError> {
    stream.write_all(line.as_bytes())?;
    stream.flush()?;
    stream.tcp().set_read_timeout(Some(timeout))?;
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the answer's newline may be taken from the reader
    // thread (the relay sends nothing more before it has data to acknowledge).
    while !answer.ends_with(b"\n") {
        if answer.len() > MAX_ANSWER || Instant::now() > deadline {
            return Err(io::Error::from(io::ErrorKind::InvalidData).into());
        }
        match stream.read(&mut byte)? {
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            _ => answer.push(byte[0]),
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&answer).map_err(io::Error::from)?;
    if let Some(e) = v.get("error") {
        let mut text = e.as_str().map_or_else(|| e.to_string(), str::to_string);
        if let Some(reason) = v.get("reason").and_then(|r| r.as_str()) {
            text = format!("{text} ({reason})");
        }
        return Err(HelloError::Refused(text));
    }
    Ok(v.get("acks").and_then(|a| a.as_bool()).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_lines() {
        assert_eq!(
            hello_line(Some("c"), None, false),
            "{\"hello\":1,\"client\":\"c\",\"acks\":true}\n"
        );
        assert_eq!(
            hello_line(None, Some("t\"x"), false),
            "{\"hello\":1,\"acks\":false,\"token\":\"t\\\"x\"}\n"
        );
        assert_eq!(
            hello_line(Some("c"), Some("t"), true),
            "{\"hello\":1,\"client\":\"c\",\"acks\":true,\"token\":\"t\",\"forwarding\":true}\n"
        );
    }
}
