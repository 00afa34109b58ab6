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
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
}

impl Config {
    pub fn new(source: impl Into<String>) -> Config {
        Config {
            server: crate::settings::DEFAULT_LISTEN.to_string(),
            source: source.into(),
            hostname: crate::sys::hostname(),
            queue_capacity: 100_000,
            connect_timeout: Duration::from_secs(3),
        }
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
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad relay address '{0}': {1}")]
    Address(String, String),
    #[error("the logger's background thread could not start: {0}")]
    Thread(io::Error),
    #[error("not everything was delivered within {0:?} (is the relay reachable?)")]
    FlushTimeout(Duration),
    #[error("a global logger is already installed")]
    AlreadyInstalled,
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
        let (tx, rx) = sync_channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            addrs,
            counters: counters.clone(),
            connect_timeout: config.connect_timeout,
            reported_drops: 0,
            source: config.source.clone(),
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

    /// Waits until everything queued so far has been written to the relay.
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

    /// Messages written to the relay.
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
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
    counters: Arc<Counters>,
    connect_timeout: Duration,
    /// Drops already reported to the relay.
    reported_drops: u64,
    source: String,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const WRITE_CHUNK: usize = 64 * 1024;

impl Worker {
    fn run(mut self) {
        let mut conn: Option<TcpStream> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut pending: u64 = 0; // messages in `buf`
        let mut waiting: Vec<SyncSender<()>> = Vec::new();
        let mut scratch = String::new();
        let mut backoff = Duration::from_millis(50);
        let mut stopping = false;
        loop {
            // Gather what is queued (wait a little when nothing is). While the buffer
            // is full, messages wait in the bounded queue, which is what overflows.
            let first = if buf.len() >= WRITE_CHUNK {
                None
            } else if buf.is_empty() && waiting.is_empty() && !stopping {
                match self.rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                self.rx.try_recv().ok()
            };
            let mut next = first;
            while let Some(item) = next {
                match item {
                    Item::Message(m) => {
                        scratch.clear();
                        to_json_line(&m, &mut scratch);
                        buf.extend_from_slice(scratch.as_bytes());
                        buf.push(b'\n');
                        pending += 1;
                    }
                    Item::Flush(ack) => waiting.push(ack),
                    Item::Stop => stopping = true,
                }
                if buf.len() >= WRITE_CHUNK {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            self.report_drops(&mut buf, &mut scratch);
            if buf.is_empty() {
                for ack in waiting.drain(..) {
                    let _ = ack.send(());
                }
                if stopping {
                    return;
                }
                continue;
            }
            // Deliver the buffer, reconnecting as needed. It stays ours until written.
            if conn.as_ref().is_none_or(peer_closed) {
                conn = self.connect();
                if conn.is_none() {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if stopping {
                        return; // Drop already waited for delivery as long as it may
                    }
                    continue;
                }
                backoff = Duration::from_millis(50);
            }
            if let Some(c) = conn.as_mut() {
                match c.write_all(&buf) {
                    Ok(()) => {
                        self.counters.sent.fetch_add(pending, Ordering::Relaxed);
                        buf.clear();
                        pending = 0;
                    }
                    Err(_) => conn = None, // resent on the next connection
                }
            }
        }
    }

    fn connect(&self) -> Option<TcpStream> {
        self.addrs.iter().find_map(|a| {
            let s = TcpStream::connect_timeout(a, self.connect_timeout).ok()?;
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
            Some(s)
        })
    }

    /// Tells the relay how many messages were dropped since the last report.
    fn report_drops(&mut self, buf: &mut Vec<u8>, scratch: &mut String) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped == self.reported_drops {
            return;
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
        scratch.clear();
        to_json_line(&m, scratch);
        buf.extend_from_slice(scratch.as_bytes());
        buf.push(b'\n');
    }
}

/// Whether the relay closed the connection (EOF or error seen without blocking), so
/// nothing is written into a socket that is already gone.
fn peer_closed(s: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match (&*s).read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // the relay never sends; ignore
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = s.set_nonblocking(false);
    closed
}
