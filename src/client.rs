//! The `Logger` client: applications hand it messages and carry on. A bounded queue
//! feeds one background thread that keeps one TCP connection to the relay (native
//! JSON lines), reconnects with backoff, and reports what it had to drop.
//!
//! It runs on a plain thread, so it works the same with or without a tokio runtime in
//! the calling program. `log::info!` and friends reach the relay once [`init`] installed
//! it as the `log` crate's backend.
//!
//! ```no_run
//! let _guard = logrelay::client::init(logrelay::client::Config::new("MyService")).unwrap();
//! logrelay::client::global().unwrap().log("INFO", "This is a test log", "MyService");
//! log::warn!("disk almost full"); // reaches the relay as warning, source MyService
//! // the guard flushes when main returns
//! ```

use crate::message::{Level, LogMessage, SdElement};
use crate::protocol::serialize::to_json_line;
use chrono::Utc;
use std::borrow::Cow;
pub mod connect;
pub(crate) mod link;
#[cfg(feature = "client-tls")]
mod tls;
mod unacked;

use connect::{ConnectError, Connector};
use link::Link;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use unacked::Unacked;

#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the relay.
    pub server: String,
    /// The `source` of `log` crate records and of [`Logger::log`] calls without one.
    pub source: String,
    pub hostname: Option<String>,
    /// Messages held while the relay is slow or away; beyond this they are dropped.
    pub queue_capacity: usize,
    pub connect_timeout: Duration,
    /// Ask the relay to acknowledge what it stored, and keep every message until it
    /// did: a relay that restarts or is killed loses nothing (docs/PROTOCOL.md).
    pub acks: bool,
    /// Most messages written and not yet acknowledged; beyond this, new messages wait
    /// in the queue.
    pub max_unacked: usize,
    /// TLS and the token (none: plain TCP, as before).
    pub auth: ClientAuth,
}

/// How a client proves who it is and checks who the relay is: TLS with the relay's CA
/// (and a client certificate for mutual TLS), and a token for the hello line
/// (docs/PROTOCOL.md). TLS needs the cargo feature `client-tls`.
#[derive(Clone, Default)]
pub struct ClientAuth {
    /// CA certificates (PEM) the relay's certificate must chain to; set, the
    /// connection is TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for relays that want one (`tls-client-ca`).
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The name the relay's certificate must carry [default: the host of `server`].
    pub server_name: Option<String>,
    /// Sent in the hello line, for relays with `auth-tokens-file`.
    pub token: Option<String>,
}

impl std::fmt::Debug for ClientAuth {
    /// Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("server_name", &self.server_name)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl ClientAuth {
    /// A token from a file: its first line (so a file with a trailing newline works).
    pub fn read_token_file(path: &std::path::Path) -> Result<String, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Tls(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(ClientError::Tls(format!(
                "the token file {} is empty",
                path.display()
            )));
        }
        Ok(token.to_string())
    }
}

impl Config {
    pub fn new(source: impl Into<String>) -> Config {
        Config {
            server: crate::settings::DEFAULT_LISTEN.to_string(),
            source: source.into(),
            hostname: crate::sys::hostname(),
            queue_capacity: 100_000,
            connect_timeout: Duration::from_secs(3),
            acks: true,
            max_unacked: 100_000,
            auth: ClientAuth::default(),
        }
    }

    /// TLS and token settings.
    pub fn auth(mut self, auth: ClientAuth) -> Config {
        self.auth = auth;
        self
    }

    /// With `false`, plain JSON lines as the original client sent them: written is
    /// as far as the logger knows.
    pub fn acks(mut self, on: bool) -> Config {
        self.acks = on;
        self
    }

    pub fn server(mut self, server: impl Into<String>) -> Config {
        self.server = server.into();
        self
    }

    pub fn queue_capacity(mut self, n: usize) -> Config {
        self.queue_capacity = n.max(1);
        self
    }
}

/// Anything that names a level: a [`Level`], or text such as `"INFO"`, `"warning"`,
/// `"3"` (unknown text counts as info: a log call never fails).
pub trait AsLevel {
    fn as_level(&self) -> Level;
}

impl AsLevel for Level {
    fn as_level(&self) -> Level {
        *self
    }
}

impl AsLevel for &str {
    fn as_level(&self) -> Level {
        self.parse().unwrap_or(Level::Info)
    }
}

impl AsLevel for log::Level {
    fn as_level(&self) -> Level {
        match self {
            log::Level::Error => Level::Err,
            log::Level::Warn => Level::Warning,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Debug,
        }
    }
}

enum Item {
    Message(LogMessage<'static>),
    /// Answered once everything queued before it has been written to the relay.
    Flush(SyncSender<()>),
    Stop,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad relay address '{0}': {1}")]
    Address(String, String),
    #[error("the logger's background thread could not start: {0}")]
    Thread(io::Error),
    #[error("not everything was delivered within {0:?} (is the relay reachable?)")]
    FlushTimeout(Duration),
    #[error("the queue stayed full for {0:?} (is the relay reachable?)")]
    QueueFull(Duration),
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    /// A TLS or token setting that cannot work (an unreadable file, a key without its
    /// certificate, TLS asked of a build without it).
    #[error("{0}")]
    Tls(String),
}

pub struct Logger {
    tx: SyncSender<Item>,
    counters: Arc<Counters>,
    config: Config,
    worker: Option<JoinHandle<()>>,
}

impl Logger {
    /// A logger of its own (tests, or several relays); [`init`] installs the global one.
    pub fn new(config: Config) -> Result<Logger, ClientError> {
        let addrs: Vec<SocketAddr> = config
            .server
            .to_socket_addrs()
            .map_err(|e| ClientError::Address(config.server.clone(), e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::Address(
                config.server.clone(),
                "no address".into(),
            ));
        }
        let connector = Connector::new(&config.auth, &config.server)?;
        let (tx, rx) = sync_channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            addrs,
            connector,
            warned: None,
            counters: counters.clone(),
            connect_timeout: config.connect_timeout,
            reported_drops: 0,
            source: config.source.clone(),
            client: config.acks.then(|| client_name(&config)),
            max_unacked: config.max_unacked.max(1) as u64,
        };
        let handle = std::thread::Builder::new()
            .name("logrelay-client".into())
            .spawn(move || worker.run())
            .map_err(ClientError::Thread)?;
        Ok(Logger {
            tx,
            counters,
            config,
            worker: Some(handle),
        })
    }

    /// Queues one message; never blocks. When the queue is full the message is dropped
    /// and counted (the count is sent to the relay once it takes messages again).
    pub fn log(&self, level: impl AsLevel, message: impl Into<String>, source: impl Into<String>) {
        let mut m = LogMessage::new(message.into(), level.as_level(), Utc::now());
        m.source = Some(Cow::Owned(source.into()));
        self.submit(m);
    }

    /// Queues a full record (facility, msgid, structured data…); never blocks.
    pub fn submit(&self, mut m: LogMessage<'static>) {
        if m.hostname.is_none() {
            m.hostname = self.config.hostname.clone().map(Cow::Owned);
        }
        match self.tx.try_send(Item::Message(m)) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues a full record, waiting up to `timeout` for room in the queue instead of
    /// dropping it (for senders that would rather slow down, such as `logq send`).
    /// Fails (the message is not queued, nor counted as dropped) if the queue stayed full.
    pub fn submit_wait(
        &self,
        mut m: LogMessage<'static>,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        if m.hostname.is_none() {
            m.hostname = self.config.hostname.clone().map(Cow::Owned);
        }
        let deadline = Instant::now() + timeout;
        let mut item = Item::Message(m);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => return Err(ClientError::QueueFull(timeout)),
            }
        }
    }

    /// Waits until everything queued so far has been acknowledged by the relay (with
    /// acks; without, written to it).
    pub fn flush(&self, timeout: Duration) -> Result<(), ClientError> {
        let (ack_tx, ack_rx) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut item = Item::Flush(ack_tx);
        // The queue may be full: retry until there is room or time runs out.
        loop {
            match self.tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return Err(ClientError::FlushTimeout(timeout)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        ack_rx
            .recv_timeout(left)
            .map_err(|_| ClientError::FlushTimeout(timeout))
    }

    /// Messages accepted into the queue so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Messages written to the relay (once each, however often they were resent).
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    /// Messages the relay acknowledged as stored (or spooled); 0 without acks.
    pub fn acknowledged(&self) -> u64 {
        self.counters.acknowledged.load(Ordering::Relaxed)
    }

    pub fn source(&self) -> &str {
        &self.config.source
    }
}

impl Drop for Logger {
    /// Delivers what is queued (for up to 5 s), then stops the thread.
    fn drop(&mut self) {
        let _ = self.flush(Duration::from_secs(5));
        let _ = self.tx.try_send(Item::Stop);
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut m = LogMessage::new(
            record.args().to_string(),
            record.level().as_level(),
            Utc::now(),
        );
        m.source = Some(Cow::Owned(self.config.source.clone()));
        m.structured_data = vec![SdElement {
            id: Cow::Borrowed("rust"),
            params: vec![(
                Cow::Borrowed("target"),
                Cow::Owned(record.target().to_string()),
            )],
        }];
        self.submit(m);
    }

    fn flush(&self) {
        let _ = Logger::flush(self, Duration::from_secs(5));
    }
}

/// The name under which the relay remembers this logger's sequence numbers: unique per
/// logger instance, since each one numbers its messages from 1.
fn client_name(config: &Config) -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static INSTANCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}/{}/{}-{started}-{}",
        config.hostname.as_deref().unwrap_or("-"),
        config.source,
        std::process::id(),
        INSTANCE.fetch_add(1, Ordering::Relaxed)
    )
}

static GLOBAL: OnceLock<Logger> = OnceLock::new();

/// Flushes the global logger when dropped: keep it alive in `main`.
#[must_use = "the guard flushes the logger when it is dropped"]
pub struct FlushGuard;

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(l) = GLOBAL.get() {
            let _ = l.flush(Duration::from_secs(5));
        }
    }
}

/// Installs the process-wide logger and makes it the `log` crate's backend.
pub fn init(config: Config) -> Result<FlushGuard, ClientError> {
    let logger = Logger::new(config)?;
    GLOBAL
        .set(logger)
        .map_err(|_| ClientError::AlreadyInstalled)?;
    let global = GLOBAL.get().ok_or(ClientError::AlreadyInstalled)?;
    log::set_logger(global).map_err(|_| ClientError::AlreadyInstalled)?;
    log::set_max_level(log::LevelFilter::Trace);
    Ok(FlushGuard)
}

/// The logger [`init`] installed.
pub fn global() -> Option<&'static Logger> {
    GLOBAL.get()
}

struct Worker {
    rx: Receiver<Item>,
    addrs: Vec<SocketAddr>,
    connector: Connector,
    /// When a connection failure was last written to stderr.
    warned: Option<Instant>,
    counters: Arc<Counters>,
    connect_timeout: Duration,
    /// Drops already reported to the relay.
    reported_drops: u64,
    source: String,
    /// With acknowledgements: the name the relay knows this logger by.
    client: Option<String>,
    /// Most lines written and not yet acknowledged.
    max_unacked: u64,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A failing connection is reported on stderr at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
const WRITE_CHUNK: usize = 64 * 1024;
/// While something waits for an acknowledgement, how often the worker looks.
const ACK_POLL: Duration = Duration::from_millis(2);

impl Worker {
    fn run(mut self) {
        let mut link: Option<Link> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut pending: u64 = 0; // the application's messages in `buf`
        // Every line gets the next sequence number, numbered or not on the wire, so
        // that flushes and the unacknowledged chunks are tracked one way.
        let mut next_seq: u64 = 1;
        let mut buf_first = next_seq; // sequence number of `buf`'s first line
        let mut unacked = Unacked::default();
        // Flush requests, each with the sequence number it waits for.
        let mut waiting: Vec<(SyncSender<()>, u64)> = Vec::new();
        let mut scratch = String::new();
        let mut backoff = Duration::from_millis(50);
        let mut stopping = false;
        loop {
            if let Some(l) = link.as_ref().filter(|l| l.acknowledging()) {
                let freed = unacked.ack(l.acked());
                self.counters
                    .acknowledged
                    .fetch_add(freed, Ordering::Relaxed);
            }
            // Gather what is queued (wait a little when nothing is). While the buffer
            // is full, or too much waits for acknowledgement, messages wait in the
            // bounded queue, which is what overflows.
            let in_buf = next_seq - buf_first;
            let room = unacked.held() + in_buf < self.max_unacked;
            let outstanding = !waiting.is_empty() || !unacked.is_empty() || stopping;
            let first = if buf.len() >= WRITE_CHUNK {
                None
            } else if !room {
                std::thread::sleep(ACK_POLL);
                None
            } else if buf.is_empty() && !outstanding {
                match self.rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else if buf.is_empty() && unacked.is_empty() {
                self.rx.try_recv().ok()
            } else if buf.is_empty() {
                self.rx.recv_timeout(ACK_POLL).ok()
            } else {
                self.rx.try_recv().ok()
            };
            let mut next = first;
            while let Some(item) = next {
                match item {
                    Item::Message(m) => {
                        self.push_line(&m, next_seq, &mut buf, &mut scratch);
                        next_seq += 1;
                        pending += 1;
                    }
                    Item::Flush(ack) => waiting.push((ack, next_seq - 1)),
                    Item::Stop => stopping = true,
                }
                if buf.len() >= WRITE_CHUNK
                    || unacked.held() + (next_seq - buf_first) >= self.max_unacked
                {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            if self.report_drops(next_seq, &mut buf, &mut scratch) {
                next_seq += 1;
            }
            // A flush is answered once every line before it is acknowledged (or, on a
            // connection without acknowledgements, written).
            waiting.retain(|(ack, upto)| {
                let done = *upto < buf_first && unacked.acked() >= *upto;
                if done {
                    let _ = ack.send(());
                }
                !done
            });
            if buf.is_empty() && unacked.is_empty() {
                if stopping && waiting.is_empty() {
                    return;
                }
                continue;
            }
            // Deliver, reconnecting as needed; what is not acknowledged stays ours.
            if link.as_ref().is_none_or(Link::closed) {
                link = match Link::open(
                    &self.addrs,
                    self.connect_timeout,
                    self.client.as_deref(),
                    &self.connector,
                ) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        self.warn(&e);
                        None
                    }
                };
                let Some(l) = link.as_mut() else {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if stopping {
                        return; // Drop already waited for delivery as long as it may
                    }
                    continue;
                };
                backoff = Duration::from_millis(50);
                // Written before but not acknowledged: again, in order (the relay
                // drops what it already stored).
                let mut resent = true;
                for chunk in unacked.chunks() {
                    if l.write_all(chunk).is_err() {
                        resent = false;
                        break;
                    }
                }
                if !resent {
                    link = None;
                    continue;
                }
                if !l.acknowledging() {
                    // An older relay: written is as far as anyone can tell.
                    unacked.ack(buf_first - 1);
                }
            }
            if buf.is_empty() {
                continue;
            }
            if let Some(l) = link.as_mut() {
                match l.write_all(&buf) {
                    Ok(()) => {
                        self.counters.sent.fetch_add(pending, Ordering::Relaxed);
                        let last = next_seq - 1;
                        if l.acknowledging() {
                            let chunk =
                                std::mem::replace(&mut buf, Vec::with_capacity(WRITE_CHUNK));
                            unacked.push(buf_first, last, pending, chunk);
                        } else {
                            buf.clear();
                            unacked.ack(last);
                        }
                        buf_first = next_seq;
                        pending = 0;
                    }
                    Err(_) => link = None, // resent on the next connection
                }
            }
        }
    }

    /// A connection that failed for a reason someone must fix (TLS, a refused token),
    /// on stderr at most once a minute: a logger cannot log its own errors through
    /// itself. An unreachable relay is only retried, as it always was.
    fn warn(&mut self, e: &ConnectError) {
        if e.is_unreachable() || self.warned.is_some_and(|t| t.elapsed() < WARN_INTERVAL) {
            return;
        }
        self.warned = Some(Instant::now());
        eprintln!("logrelay client: {e}; retrying, messages wait in the queue");
    }

    /// Appends one message as a JSON line, numbered when acknowledgements are asked for.
    fn push_line(&self, m: &LogMessage<'_>, seq: u64, buf: &mut Vec<u8>, scratch: &mut String) {
        scratch.clear();
        to_json_line(m, scratch);
        match (&self.client, scratch.strip_prefix('{')) {
            (Some(_), Some(rest)) => {
                let _ = write!(buf, "{{\"seq\":{seq},");
                buf.extend_from_slice(rest.as_bytes());
            }
            _ => buf.extend_from_slice(scratch.as_bytes()),
        }
        buf.push(b'\n');
    }

    /// Tells the relay how many messages were dropped since the last report; whether
    /// a line was added (it takes sequence number `seq`).
    fn report_drops(&mut self, seq: u64, buf: &mut Vec<u8>, scratch: &mut String) -> bool {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped == self.reported_drops {
            return false;
        }
        let n = dropped - self.reported_drops;
        self.reported_drops = dropped;
        let mut m = LogMessage::new(
            format!(
                "logrelay client dropped {n} messages: its queue was full (relay slow or unreachable)"
            ),
            Level::Warning,
            Utc::now(),
        );
        m.source = Some(Cow::Borrowed(&self.source));
        self.push_line(&m, seq, buf, scratch);
        true
    }
}
