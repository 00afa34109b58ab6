//! Forwarding to upstream relays (`forward-to`, `[[forward]]`): a [`Sink`] on the writer
//! that appends every batch to a disk spool of its own (one per upstream), and one
//! thread per upstream that sends that spool, in order, over the native protocol with
//! acknowledgements, using the `Logger`'s connection (`client::link`: hello, ack reader).
//!
//! Why always through the spool: the writer (and so the relay's own clients) never
//! waits on the network, order is the spool's order, and a restart resumes where the
//! upstream's last acknowledgement left off. Each row is sent with `seq` = its number
//! in the spool (kept in `replay.pos`), under a client name kept in the spool directory,
//! so a chunk sent again after a crash or a reconnect has the same numbers and the
//! upstream's store drops what it already has (docs/PROTOCOL.md, "Forwarding").
//!
//! Up to [`WINDOW`] chunks (of `batch-rows` rows, or one received batch) are in flight;
//! the spool moves past a chunk only once the upstream acknowledged its last row.

use super::spool::{Chunk, Spool, SpoolError};
use super::stats::Stats;
use super::writer::Sink;
use crate::client::ClientAuth;
use crate::client::connect::Connector;
use crate::client::link::Link;
use crate::log_limit::{Limiter, thousands};
use crate::settings::Size;
use crate::store::{Batch, StoreError};
use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One upstream relay: `--forward-to HOST:PORT`, or a `[[forward]]` table in the file.
/// The TLS and token keys a table leaves out come from the `forward-tls-*` and
/// `forward-token-file` settings ([`super::Config::forwards`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ForwardOptions {
    /// HOST:PORT of the upstream relay's native (plain TCP) listener.
    pub to: String,
    /// This link's spool [default: `forward-HOST-PORT` inside spool-dir].
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes this link's spool may take; when full, the relay's senders are held
    /// back [default: spool-max-size].
    #[serde(default)]
    pub spool_max_size: Option<Size>,
    /// CA certificates (PEM) the upstream's certificate must chain to: the link is TLS.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for an upstream with `tls-client-ca`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The key of `tls-cert` (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The name the upstream's certificate must carry [default: the host of `to`].
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// A file whose first line is the token for the upstream's hello (its
    /// `auth-tokens-file`); read again at each connect, so it can be rotated.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl ForwardOptions {
    pub fn new(to: &str) -> ForwardOptions {
        ForwardOptions {
            to: to.to_string(),
            spool_dir: None,
            spool_max_size: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
            token_file: None,
        }
    }

    /// How to connect: the TLS files and the token, read now (at start, so a bad file
    /// stops the relay with the reason; at each reconnect, so renewed files are used).
    pub fn connector(&self) -> Result<Connector, String> {
        let token = self
            .token_file
            .as_deref()
            .map(ClientAuth::read_token_file)
            .transpose()
            .map_err(|e| format!("forward to {}: {e}", self.to))?;
        let auth = ClientAuth {
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
            token,
        };
        Connector::new(&auth, &self.to).map_err(|e| format!("forward to {}: {e}", self.to))
    }

    /// The spool directory: its own, or `forward-HOST-PORT` inside the relay's.
    pub fn spool_dir(&self, relay_spool: &Path) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(|| {
            let name: String = self
                .to
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            relay_spool.join(format!("forward-{name}"))
        })
    }
}

/// `HOST:PORT` (a name or an address; names are resolved at each connect).
pub fn check_target(s: &str) -> Result<(), String> {
    let bad = || format!("bad forward address '{s}' (expected HOST:PORT, e.g. central-1:5514)");
    let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// Longest wait for the upstream to acknowledge a chunk before the connection is
/// given up and the chunk sent again on a new one.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Chunks on the wire at once: the next ones are written while the upstream commits.
const WINDOW: usize = 4;
/// How often the sender looks for an acknowledgement (the `Link` keeps the latest in
/// an atomic its reader thread raises).
const ACK_POLL: Duration = Duration::from_micros(500);
/// At stop, how long the sender still waits for the acknowledgement of what it sent.
const STOP_ACK_WAIT: Duration = Duration::from_secs(1);

static UNREACHABLE: Limiter = Limiter::new("upstream relay unreachable");
static REFUSED: Limiter = Limiter::new("upstream relay refused the link");
static FULL: Limiter = Limiter::new("forwarding spool full");
static SPOOL_ERROR: Limiter = Limiter::new("forwarding spool errors");

/// What the sink and its sender thread share.
struct Shared {
    spool: Mutex<Spool>,
    /// Signalled when rows were appended, or at stop.
    appended: Condvar,
    stop: AtomicBool,
}

pub struct ForwardSink {
    name: String,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    /// When the relay began to shut down: a full spool then takes the rows anyway
    /// (bounded by the memory budget), so the exit is not held up.
    stopping: Arc<OnceLock<Instant>>,
}

impl ForwardSink {
    /// Opens the link's spool and starts its sender thread.
    pub fn start(
        opts: &ForwardOptions,
        relay_spool: &Path,
        default_max: Size,
        batch_rows: usize,
        stats: Arc<Stats>,
        stopping: Arc<OnceLock<Instant>>,
    ) -> Result<ForwardSink, String> {
        let dir = opts.spool_dir(relay_spool);
        let max = opts.spool_max_size.unwrap_or(default_max).bytes();
        let spool = Spool::open(&dir, max).map_err(|e| e.to_string())?;
        opts.connector()?; // the TLS files and token are readable
        let client = client_name(&dir, spool.next_seq())?;
        Stats::add(&stats.forward_backlog, spool.rows());
        if !spool.is_empty() {
            tracing::info!(
                to = %opts.to,
                "{} rows wait in the forwarding spool from an earlier run; sending them first",
                thousands(spool.rows())
            );
        }
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            appended: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sender = Sender {
            opts: opts.clone(),
            to: opts.to.clone(),
            client,
            shared: shared.clone(),
            stats: stats.clone(),
            chunk_rows: batch_rows.max(1),
        };
        let sender = std::thread::Builder::new()
            .name("logrelay-forward".into())
            .spawn(move || sender.run())
            .map_err(|e| format!("cannot start the forwarding thread: {e}"))?;
        Ok(ForwardSink {
            name: format!("forward to {}", opts.to),
            shared,
            sender: Some(sender),
            stats,
            stopping,
        })
    }
}

impl Sink for ForwardSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Appends the batches to this link's spool: durable here, on its way upstream.
    /// A full spool holds the writer (backpressure) until the upstream catches up.
    fn write(&mut self, batches: &[Batch]) -> Result<usize, StoreError> {
        loop {
            let stopping = self.stopping.get().is_some();
            let mut spool = lock(&self.shared.spool);
            match spool.append(batches.iter(), stopping) {
                Ok(n) => {
                    // Counted before the sender can see these rows: were its
                    // acknowledgement subtracted first, the gauge (which stops at 0)
                    // would keep them for good.
                    Stats::add(&self.stats.forward_backlog, n);
                    drop(spool);
                    self.shared.appended.notify_one();
                    return Ok(n as usize);
                }
                Err(SpoolError::Full { .. }) => {
                    drop(spool);
                    crate::warn_limited!(FULL, sink = %self.name, "forwarding spool full; holding back senders until the upstream relay takes rows again");
                    // Waiting on purpose: still alive for the watchdog.
                    self.stats.writer.idle();
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(StoreError::Io(std::io::Error::other(e.to_string()))),
            }
        }
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Drop for ForwardSink {
    /// Stops the sender (what it had not sent waits in the spool for the next start).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.appended.notify_all();
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        lock(&self.shared.spool).sync();
    }
}

fn lock(m: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    // A panic elsewhere cannot leave the spool half-changed in a way that matters
    // more than stopping forwarding would.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The name the upstream relay remembers this link's sequence numbers under, kept in
/// the spool directory. A spool that never committed a row starts a new name: its
/// numbering starts at 1 again, and an old name would make the upstream drop those
/// rows as already stored (at worst the first chunk is stored twice, never lost).
fn client_name(dir: &Path, next_seq: u64) -> Result<String, String> {
    let path = dir.join("client");
    if next_seq > 1
        && let Ok(name) = std::fs::read_to_string(&path)
        && !name.trim().is_empty()
    {
        return Ok(name.trim().to_string());
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let host = crate::sys::hostname().unwrap_or_else(|| "-".into());
    let name = format!("{host}/logrelayd-forward/{started}");
    std::fs::write(&path, format!("{name}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(name)
}

/// Why a connection to the upstream failed: it is not there (retried quietly while
/// nothing waits), or it turned the link away (TLS, token: someone must fix a setting).
enum LinkFailure {
    Unreachable(String),
    Refused(String),
}

/// Connects to the upstream (TLS and the token as the options say) and says hello
/// asking for acknowledgements.
fn connect(opts: &ForwardOptions, client: &str) -> Result<Link, LinkFailure> {
    let to = &opts.to;
    let connector = opts
        .connector()
        .map_err(LinkFailure::Refused)?
        .for_forwarding();
    let addrs: Vec<_> = to
        .to_socket_addrs()
        .map_err(|e| LinkFailure::Unreachable(format!("cannot resolve {to}: {e}")))?
        .collect();
    let link = Link::open(&addrs, CONNECT_TIMEOUT, Some(client), &connector).map_err(|e| {
        if e.is_unreachable() {
            LinkFailure::Unreachable(e.to_string())
        } else {
            LinkFailure::Refused(e.to_string())
        }
    })?;
    if !link.acknowledging() {
        return Err(LinkFailure::Refused(format!(
            "{to} does not acknowledge (an older relay?): forwarding needs acknowledgements"
        )));
    }
    Ok(link)
}

struct Sender {
    opts: ForwardOptions,
    to: String,
    client: String,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    chunk_rows: usize,
}

impl Sender {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        let mut link: Option<Link> = None;
        let mut backoff = Duration::from_millis(50);
        let mut lines = String::new();
        // Chunks written and not yet acknowledged, oldest first, with their last `seq`
        // and when they were written.
        let mut inflight: VecDeque<(Chunk, u64, Instant)> = VecDeque::new();
        while !self.stopped() {
            if link.as_ref().is_none_or(Link::closed) {
                // Whatever was in flight is sent again, from the spool's position.
                inflight.clear();
                link = match connect(&self.opts, &self.client) {
                    Ok(l) => Some(l),
                    Err(failure) => {
                        let waiting = lock(&self.shared.spool).rows();
                        match failure {
                            LinkFailure::Unreachable(e) if waiting > 0 => {
                                crate::warn_limited!(UNREACHABLE, error = %e, "upstream relay unreachable; {} rows wait in the forwarding spool", thousands(waiting));
                            }
                            LinkFailure::Unreachable(_) => {}
                            LinkFailure::Refused(e) => {
                                crate::warn_limited!(REFUSED, error = %e, "the upstream relay refused the link; {} rows wait in the forwarding spool", thousands(waiting));
                            }
                        }
                        self.pause(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
            }
            let Some(l) = link.as_mut() else { continue };
            let mut progress = false;
            // Keep up to WINDOW chunks on the wire.
            if inflight.len() < WINDOW {
                let on_wire: u64 = inflight.iter().map(|(c, _, _)| c.rows()).sum();
                match self.next_chunk(inflight.back().map(|(c, _, _)| c), on_wire) {
                    Ok(Some(chunk)) => {
                        progress = true;
                        let last = chunk.first_seq + chunk.rows() - 1;
                        if chunk.rows() > 0 {
                            lines.clear();
                            let mut seq = chunk.first_seq;
                            for b in &chunk.batches {
                                for r in b.iter() {
                                    super::forward_wire::push_line(&r, seq, &mut lines);
                                    seq += 1;
                                }
                            }
                            if l.write_all(lines.as_bytes()).is_err() {
                                link = None;
                                continue;
                            }
                        }
                        inflight.push_back((chunk, last, Instant::now()));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        crate::error_limited!(SPOOL_ERROR, to = %self.to, error = %e, "cannot read the forwarding spool");
                        self.pause(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            if self.take_acked(l, &mut inflight) {
                progress = true;
                backoff = Duration::from_millis(50);
            }
            if inflight
                .front()
                .is_some_and(|(_, _, at)| at.elapsed() > ACK_TIMEOUT)
            {
                crate::warn_limited!(UNREACHABLE, to = %self.to, "no acknowledgement from the upstream relay in {ACK_TIMEOUT:?}; reconnecting");
                link = None;
                continue;
            }
            if !progress {
                if inflight.is_empty() {
                    // Nothing to send: wait for the writer to append.
                    let spool = lock(&self.shared.spool);
                    if spool.is_empty() {
                        let _ = self
                            .shared
                            .appended
                            .wait_timeout(spool, Duration::from_millis(200));
                    }
                } else {
                    std::thread::sleep(ACK_POLL);
                }
            }
        }
        // Stopping: what is on the wire is likely acknowledged in a moment. Waiting for
        // it (briefly) records it as forwarded, so the next start does not send the
        // upstream a second copy of rows it has stored.
        if let Some(l) = link.as_ref() {
            let until = Instant::now() + STOP_ACK_WAIT;
            while !inflight.is_empty() && !l.closed() && Instant::now() < until {
                if !self.take_acked(l, &mut inflight) {
                    std::thread::sleep(ACK_POLL);
                }
            }
        }
    }

    /// Moves past what the upstream acknowledged, in order (a chunk without rows, the
    /// end of a segment, needs no acknowledgement); whether anything was.
    fn take_acked(&self, l: &Link, inflight: &mut VecDeque<(Chunk, u64, Instant)>) -> bool {
        let acked = l.acked();
        let mut taken = false;
        while inflight
            .front()
            .is_some_and(|(c, last, _)| c.rows() == 0 || *last <= acked)
        {
            let Some((chunk, _, _)) = inflight.pop_front() else {
                break;
            };
            taken = true;
            Stats::add(&self.stats.forwarded, chunk.rows());
            let mut spool = lock(&self.shared.spool);
            if let Err(e) = spool.commit(&chunk) {
                crate::error_limited!(SPOOL_ERROR, to = %self.to, error = %e, "cannot record forwarding progress");
            }
            drop(spool);
            let _ = self.stats.forward_backlog.fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |b| Some(b.saturating_sub(chunk.rows())),
            );
        }
        taken
    }

    /// The chunk after `prev` (the oldest not acknowledged when `prev` is `None`);
    /// `None` when nothing new is there yet (`on_wire`: rows of the chunks in flight).
    fn next_chunk(&self, prev: Option<&Chunk>, on_wire: u64) -> Result<Option<Chunk>, SpoolError> {
        let mut spool = lock(&self.shared.spool);
        // Every row not yet acknowledged is already on the wire: nothing to read.
        if spool.rows() <= on_wire {
            return Ok(None);
        }
        let chunk = match prev {
            None => spool.read_chunk(self.chunk_rows)?,
            Some(p) => spool.read_after(p, self.chunk_rows)?,
        };
        // No rows and not the end of a segment: nothing appended since.
        Ok(chunk.filter(|c| c.rows() > 0 || c.ends_segment()))
    }

    /// Sleeps up to `d`, waking early at stop.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20).min(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_spool_dirs() {
        assert!(check_target("central-1:5514").is_ok());
        assert!(check_target("[::1]:5514").is_ok());
        assert!(check_target("central-1").is_err());
        assert!(check_target(":5514").is_err());
        assert!(check_target("h:0").is_err());
        assert!(check_target("h:99999").is_err());
        let o = ForwardOptions::new("10.0.0.5:5514");
        assert_eq!(
            o.spool_dir(Path::new("/s")),
            PathBuf::from("/s/forward-10.0.0.5-5514")
        );
    }

    #[test]
    fn a_client_name_lives_as_long_as_its_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let first = client_name(dir.path(), 1).unwrap();
        assert_eq!(client_name(dir.path(), 40).unwrap(), first);
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(client_name(dir.path(), 1).unwrap(), first);
    }
}
