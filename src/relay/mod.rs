//! The relay daemon: listeners, connections, the batch writer, shutdown.
//!
//! ```text
//! TCP accept ─▶ connection task (read ▸ frame ▸ parse ▸ Batch) ─┐
//! UDP socket ─▶ datagram task (parse ▸ Batch) ──────────────────┼─▶ bounded channel ─▶ writer thread ─▶ sinks (Store)
//!                                                                                          └─ store failing ─▶ disk spool ─▶ replay
//! ```
//! Parsing runs on the tokio workers, the store on its own thread: two cores busy.
//! Everything read and not yet committed or spooled is counted against one memory
//! budget ([`budget`]); when it is spent, connections stop reading.

pub mod activation;
pub mod auth;
pub mod budget;
pub mod config;
pub mod connection;
pub mod forward;
pub mod forward_wire;
pub mod health;
pub mod hello;
pub mod logging;
pub mod metrics;
pub mod mssql_retention;
pub mod notify;
pub mod reload;
pub mod relp;
pub mod retention;
pub mod spool;
pub mod spool_format;
pub mod stats;
pub mod tls;
pub mod udp;
pub mod writer;

pub use config::Config;
use stats::{Snapshot, Stats};

use crate::log_limit::{self, Limiter};
use crate::store;
use budget::Budget;
use spool::Spool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use writer::{Inbound, StoreSink, Writer};

/// Batches in flight between the connections and the writer.
const CHANNEL_BATCHES: usize = 256;

/// What every connection task shares.
pub struct Shared {
    pub config: Config,
    pub stats: Arc<Stats>,
    pub tx: mpsc::Sender<Inbound>,
    pub budget: Budget,
    /// When shutdown began: connections' drain deadlines count from it.
    pub shutdown_at: std::sync::OnceLock<tokio::time::Instant>,
    /// What SIGHUP reloads (see [`reload`]).
    pub reload: Arc<reload::Reloader>,
    /// Certificates, allow-list and tokens (reloadable).
    pub auth: Arc<auth::Auth>,
}

/// A bound relay, not yet serving: its addresses are known (port 0 resolved).
pub struct Relay {
    shared: Arc<Shared>,
    tcp: Vec<TcpListener>,
    tls: Vec<TcpListener>,
    /// `--listen-relp` listeners.
    relp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
    writer: std::thread::JoinHandle<writer::Outcome>,
    stopping: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Relay {
    /// Opens the store (creating it) and binds every listener.
    pub async fn bind(config: Config) -> Result<Relay, String> {
        let auth = Arc::new(auth::Auth::load(&config)?);
        let store = match &config.db {
            config::Db::Store(url) => {
                for w in url.password_warnings() {
                    tracing::warn!("{w}");
                }
                let mut store =
                    store::open_writer(url).map_err(|e| format!("cannot open store {url}: {e}"))?;
                if let Some(bytes) = retention::wal_limit(&config.retention) {
                    store.limit_wal(bytes);
                }
                Some(store)
            }
            config::Db::None => None,
        };
        let spool_dir = config.spool_dir();
        let spool =
            Spool::open(&spool_dir, config.spool_max_size.bytes()).map_err(|e| e.to_string())?;
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        let passed = activation::take()?;
        let to_bind = if passed.is_some() {
            &[][..]
        } else {
            &config.listen[..]
        };
        if let Some(passed) = passed {
            tracing::info!(
                tcp = passed.tcp.len(),
                udp = passed.udp.len(),
                "using the sockets the service manager passed (listen is not bound)"
            );
            (tcp, udp) = (passed.tcp, passed.udp);
        }
        for addr in to_bind {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on tcp {addr}: {e}"))?;
            let bound = l.local_addr().map_err(|e| e.to_string())?;
            if config.udp {
                let u = UdpSocket::bind(bound)
                    .await
                    .map_err(|e| format!("cannot listen on udp {bound}: {e}"))?;
                udp::tune(&u, config.udp_recv_buffer.bytes() as usize);
                udp.push(u);
            }
            tcp.push(l);
            if !addr.ip().is_loopback() && !config.auth_required {
                tracing::warn!(
                    "plain listener on {addr} is reachable from other machines and takes \
                     messages from anyone (no TLS, no token required): use listen-tls or \
                     auth-required"
                );
            }
        }
        let mut tls = Vec::new();
        for addr in &config.listen_tls {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on tls {addr}: {e}"))?;
            tls.push(l);
        }
        let mut relp = Vec::new();
        for addr in &config.listen_relp {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for RELP on {addr}: {e}"))?;
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "RELP listener on {addr} is reachable from other machines and takes \
                     messages from anyone (RELP has no TLS or tokens here)"
                );
            }
            relp.push(l);
        }
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let stopping = Arc::new(std::sync::OnceLock::new());
        let mut jobs: Vec<Box<dyn writer::Job>> = Vec::new();
        match &config.db {
            config::Db::Store(store::StoreUrl::Mssql(conn)) => {
                if let Some(job) = mssql_retention::MssqlRetentionJob::new(conn, &config.retention)?
                {
                    jobs.push(Box::new(job));
                }
            }
            config::Db::Store(url) => {
                if let Some(job) = retention::RetentionJob::new(url, &config.retention)? {
                    jobs.push(Box::new(job));
                }
            }
            config::Db::None => {}
        }
        // The store first: a batch it refuses goes to the relay's spool before any
        // forwarding spool took it, so its replay forwards it once.
        let mut sinks: Vec<Box<dyn writer::Sink>> = Vec::new();
        if let Some(store) = store {
            sinks.push(Box::new(StoreSink(store)));
        }
        for f in config.forwards() {
            let sink = forward::ForwardSink::start(
                &f,
                &spool_dir,
                config.spool_max_size,
                config.batch_rows,
                stats.clone(),
                stopping.clone(),
            )?;
            tracing::info!(to = %f.to, spool = %f.spool_dir(&spool_dir).display(), "forwarding");
            sinks.push(Box::new(sink));
        }
        let w = Writer {
            sinks,
            spool: Some(spool),
            jobs,
            batch_rows: config.batch_rows,
            stats: stats.clone(),
            stopping: stopping.clone(),
        };
        let rt = tokio::runtime::Handle::current();
        let writer = std::thread::Builder::new()
            .name("logrelay-writer".into())
            .spawn(move || w.run(rx, rt))
            .map_err(|e| format!("cannot start writer thread: {e}"))?;
        let budget = Budget::new(config.memory_budget.bytes() as usize);
        stats.levels.watch_budget(&budget);
        Ok(Relay {
            shared: Arc::new(Shared {
                config,
                stats,
                tx,
                budget,
                shutdown_at: std::sync::OnceLock::new(),
                reload: Arc::default(),
                auth,
            }),
            tcp,
            tls,
            relp,
            udp,
            writer,
            stopping,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.tcp)
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    pub fn reloader(&self) -> Arc<reload::Reloader> {
        self.shared.reload.clone()
    }

    /// The TLS listeners' addresses.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.tls)
    }

    /// The RELP listeners' addresses.
    pub fn relp_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.relp)
    }

    /// Serves until `shutdown` is cancelled, then drains every connection, commits
    /// and returns the final counters.
    pub async fn run(self, shutdown: CancellationToken) -> Snapshot {
        let Relay {
            shared,
            tcp,
            tls,
            relp,
            udp,
            writer,
            stopping,
        } = self;
        let tasks = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        let listeners = tcp
            .into_iter()
            .map(|l| (l, Listener::Plain))
            .chain(tls.into_iter().map(|l| (l, Listener::Tls)))
            .chain(relp.into_iter().map(|l| (l, Listener::Relp)));
        for (listener, kind) in listeners {
            tasks.spawn(accept_loop(
                listener,
                kind,
                shared.clone(),
                limit.clone(),
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        for socket in udp {
            tasks.spawn(udp::serve(socket, shared.clone(), shutdown.clone()));
        }
        let watcher = shared
            .auth
            .watches_files()
            .then(|| tokio::spawn(auth::watch(shared.auth.clone(), shutdown.clone())));
        let ticker = tokio::spawn(report_periodically(shared.clone(), shutdown.clone()));
        shutdown.cancelled().await;
        // From now on a failing store is not waited for: what it cannot take is spooled.
        let _ = stopping.set(std::time::Instant::now());
        let _ = shared.shutdown_at.set(tokio::time::Instant::now());
        tracing::info!("shutting down: draining connections");
        tasks.close();
        tasks.wait().await;
        ticker.abort();
        if let Some(w) = watcher {
            let _ = w.await;
        }
        let _ = ticker.await; // drops its sender before the writer is joined
        let stats = shared.stats.clone();
        drop(shared); // the last sender: the writer sees the channel close
        let joined = tokio::task::spawn_blocking(move || writer.join()).await;
        let outcome = match joined {
            Ok(Ok(o)) => o,
            _ => {
                tracing::error!("writer thread failed");
                writer::Outcome::default()
            }
        };
        log_limit::flush_all(true);
        let snap = stats.snapshot();
        let lost = if outcome.lost > 0 {
            format!(", {} rows LOST", log_limit::thousands(outcome.lost))
        } else {
            String::new()
        };
        tracing::info!(
            "stopped: {} rows stored, {} rows left in the spool (stored at the next start){lost}; {snap}",
            log_limit::thousands(snap.stored),
            log_limit::thousands(outcome.spooled_left),
        );
        snap
    }
}

/// What a listener speaks; the accept loop is shared, the connection handler is not.
#[derive(Clone, Copy, Debug)]
enum Listener {
    /// Syslog and native JSON lines in the clear (`listen`).
    Plain,
    /// The same after a TLS handshake (`listen-tls`).
    Tls,
    /// RELP (`listen-relp`).
    Relp,
}

async fn accept_loop(
    listener: TcpListener,
    kind: Listener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            a = listener.accept() => a,
            _ = shutdown.cancelled() => {
                take_backlog(listener, kind, &shared, &limit, &shutdown, &tasks);
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        spawn_connection(stream, peer, kind, &shared, &limit, &shutdown, &tasks);
    }
}

/// At shutdown, connections already established in the backlog may hold data their
/// senders consider sent: accept them too (they drain, then close). A plain
/// non-blocking accept(2) loop, so nothing depends on a readiness event not yet seen.
fn take_backlog(
    listener: TcpListener,
    kind: Listener,
    shared: &Arc<Shared>,
    limit: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    let Ok(listener) = listener.into_std() else {
        return;
    };
    while let Ok((stream, peer)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(stream));
        match stream {
            Ok(s) => spawn_connection(s, peer, kind, shared, limit, shutdown, tasks),
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "cannot take connection at shutdown")
            }
        }
    }
}

fn spawn_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: Listener,
    shared: &Arc<Shared>,
    limit: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    let Ok(permit) = limit.clone().try_acquire_owned() else {
        static REFUSED: Limiter = Limiter::new("connections refused at the connection limit");
        Stats::add(&shared.stats.connections_rejected, 1);
        crate::warn_limited!(REFUSED, peer = %peer, max = shared.config.max_connections, "connection limit reached; refusing");
        return;
    };
    let _ = stream.set_nodelay(true);
    Stats::add(&shared.stats.connections_total, 1);
    Stats::add(&shared.stats.connections_open, 1);
    let shared = shared.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        match kind {
            Listener::Plain => {
                connection::handle(stream, peer, shared.clone(), shutdown, false).await
            }
            Listener::Tls => match tls::accept(stream, &shared.auth).await {
                Ok((s, authenticated)) => {
                    connection::handle(s, peer, shared.clone(), shutdown, authenticated).await
                }
                Err((why, detail)) => refused(&shared, &peer, why, &detail),
            },
            Listener::Relp => relp::handle(stream, peer, shared.clone(), shutdown).await,
        }
        shared
            .stats
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(permit);
    });
}

fn addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

/// Counts a refused connection by reason and logs it without flooding.
fn refused(shared: &Shared, peer: &SocketAddr, why: auth::Refusal, detail: &str) {
    static REFUSED: Limiter = Limiter::new("connections refused by authentication");
    shared.stats.refuse(why);
    crate::warn_limited!(REFUSED, peer = %peer, reason = why.name(), "connection refused: {detail}");
}

async fn report_periodically(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.stats_interval.0);
    tick.tick().await;
    // Summaries of repeated warnings are due every few seconds at most.
    let mut summaries = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => tracing::info!("stats: {}", shared.stats.snapshot()),
            _ = summaries.tick() => log_limit::flush_all(false),
        }
    }
}
