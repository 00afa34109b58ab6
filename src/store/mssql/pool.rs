//! A small pool of SQL Server connections, our own because the bb8/deadpool adapters pin
//! tiberius 0.12. Stores opened with the same connection string in one process share
//! one pool: at most `Max Pool Size` connections (default 4), made on demand within the
//! connect timeout (a writer's brings the schema up to date), reused while healthy,
//! closed after 200 idle seconds (before Azure cuts them) (firewalls and the server cut idle sessions), and
//! never returned after an error, a timeout or a result left unread.
//!
//! The pool owns a one-worker tokio runtime that drives every connection's socket, so
//! any thread may use any connection with `block_on`.

use super::catalog::{self, Catalog};
use super::connstr::{self, Settings};
use super::{Conn, schema, sql_error};
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// Idle connections are closed before Azure SQL's gateway cuts them (about 4 min).
const IDLE_LIFETIME: Duration = Duration::from_secs(200);
/// TCP keepalive: first probe after a minute of silence, so a connection a firewall
/// dropped is noticed within about two minutes instead of the kernel's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Fields drop in order: idle connections before the runtime that drives them.
pub struct Pool {
    state: Mutex<State>,
    returned: Condvar,
    pub settings: Settings,
    /// Whether each new connection brings the schema up to date (writers only).
    migrates: bool,
    /// The table's real column types, read by each new connection.
    catalog: Mutex<Arc<Catalog>>,
    runtime: tokio::runtime::Runtime,
}

#[derive(Default)]
struct State {
    idle: Vec<(Conn, Instant)>,
    /// Connections that exist: idle plus lent out plus being made.
    open: usize,
}

/// A connection lent out by the pool; back into the pool when dropped, unless
/// [`Pooled::discard`] was called.
pub struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    reuse: bool,
}

impl Pooled<'_> {
    pub fn client(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lent connection is present until it is dropped")
    }

    /// After an error or a timeout the connection's state is unknown, and a result left
    /// unread would be read to its end before the next statement: close it instead of
    /// lending it again.
    pub fn discard(&mut self) {
        self.reuse = false;
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        match self.conn.take() {
            Some(conn) if self.reuse => state.idle.push((conn, Instant::now())),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.returned.notify_one();
    }
}

type Registry = Mutex<HashMap<(String, bool), Weak<Pool>>>;

/// Pools by connection string and whether they migrate, alive while a store uses them.
fn registry() -> &'static Registry {
    static POOLS: OnceLock<Registry> = OnceLock::new();
    POOLS.get_or_init(Mutex::default)
}

impl Pool {
    /// The process's pool for this connection string, made if there is none.
    pub fn shared(conn_str: &str, migrates: bool) -> Result<Arc<Pool>, StoreError> {
        let key = (conn_str.to_string(), migrates);
        let mut pools = registry().lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|_, p| p.strong_count() > 0);
        if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
            return Ok(pool);
        }
        let settings = connstr::parse(conn_str).map_err(|e| StoreError::Url(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("logrelay-mssql")
            .enable_all()
            .build()?;
        let pool = Arc::new(Pool {
            state: Mutex::default(),
            returned: Condvar::new(),
            settings,
            migrates,
            catalog: Mutex::default(),
            runtime,
        });
        pools.insert(key, Arc::downgrade(&pool));
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The real column types as the last new connection read them (empty until then,
    /// or without a table: the listed types apply).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// An idle connection, a new one if fewer than the maximum exist, or the next one
    /// returned — waiting at most the connect timeout in all.
    pub fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        let mut state = self.lock();
        loop {
            let before = state.idle.len();
            state
                .idle
                .retain(|(_, since)| since.elapsed() < IDLE_LIFETIME);
            state.open -= before - state.idle.len();
            if let Some((conn, _)) = state.idle.pop() {
                return Ok(self.lend(conn));
            }
            if state.open < self.settings.pool_size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(self.lend(conn)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(StoreError::Server(format!(
                    "all {} SQL Server connections to {} stayed busy for {:?}",
                    self.settings.pool_size, self.settings.display, self.settings.connect_timeout
                )));
            };
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lend(&self, conn: Conn) -> Pooled<'_> {
        Pooled {
            pool: self,
            conn: Some(conn),
            reuse: true,
        }
    }

    /// A new connection within the connect timeout. A writer's first checks the schema:
    /// a new or empty table is set up at once, a populated one that needs steps is an
    /// error that names `logrelayd migrate`.
    fn connect(&self) -> Result<Conn, StoreError> {
        let settings = &self.settings;
        let connect = async {
            let mut client = self.login(Some(settings.command_timeout)).await?;
            if self.migrates {
                // The lock wait must end well inside the connect timeout.
                let warning = schema::ensure(&mut client, settings.connect_timeout / 2).await?;
                if let Some(w) = warning {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| tracing::warn!("{w}"));
                }
            }
            // Both sides: writers fit values to the columns, readers bind parameters
            // of the columns' types.
            let columns = match catalog::read(&mut client).await {
                Ok(c) => c,
                Err(e) if !self.migrates => {
                    tracing::debug!(error = %e, "column catalog not readable; using the schema's types");
                    Catalog::default()
                }
                Err(e) => return Err(e),
            };
            *self.catalog.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(columns);
            Ok::<Conn, StoreError>(client)
        };
        // The timer must be made inside the runtime: hence the async block.
        self.block_on(async { tokio::time::timeout(settings.connect_timeout, connect).await })
            .map_err(|_| {
                sql_error(
                    &format!(
                        "no connection to {} within {:?}",
                        settings.display, settings.connect_timeout
                    ),
                    "timed out",
                )
            })?
    }

    /// TCP and login; `command_timeout` bounds each later wait for the server. A server
    /// that redirects the login (Azure SQL's gateway, a read-only replica) is followed
    /// to the address it names, once.
    async fn login(&self, command_timeout: Option<Duration>) -> Result<Conn, StoreError> {
        let settings = &self.settings;
        let mut config = settings.config.clone();
        config.command_timeout(command_timeout);
        let mut redirected = false;
        loop {
            let addr = config.get_addr();
            let tcp = TcpStream::connect(&addr)
                .await
                .map_err(|e| sql_error(&format!("cannot connect to {addr}"), e))?;
            tcp.set_nodelay(true)?;
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL);
            socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
            match tiberius::Client::connect(config.clone(), tcp.compat_write()).await {
                Ok(client) => return Ok(client),
                Err(tiberius::error::Error::Routing { host, port }) if !redirected => {
                    tracing::debug!(%host, port, "login redirected");
                    config.host(&host);
                    config.port(port);
                    redirected = true;
                }
                Err(e) => {
                    return Err(sql_error(
                        &format!("login to {} failed", settings.display),
                        e,
                    ));
                }
            }
        }
    }

    /// `logrelayd migrate`: a connection made within the connect timeout, then every
    /// pending schema step with no time limit.
    pub fn migrate(&self, progress: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let settings = &self.settings;
        let mut client = self
            .block_on(async {
                tokio::time::timeout(settings.connect_timeout, self.login(None)).await
            })
            .map_err(|_| {
                sql_error(
                    &format!(
                        "no connection to {} within {:?}",
                        settings.display, settings.connect_timeout
                    ),
                    "timed out",
                )
            })??;
        self.block_on(schema::migrate_all(&mut client, progress))
    }
}
