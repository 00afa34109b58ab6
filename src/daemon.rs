//! `logrelayd`: flags, logging, signals; the work is in [`crate::relay`].

use crate::relay::Relay;
use crate::relay::config::{Config, Layer};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "logrelayd",
    version,
    about = "Receive syslog (RFC 5424, RFC 3164) and JSON lines on one port and store them",
    after_help = "Every flag can also be set in the TOML file given with --config, or through the \
                  LOGRELAY_* variable named in its help. Flags beat variables, variables beat the file."
)]
struct Args {
    /// TOML configuration file (see fixtures/logrelayd.toml)
    #[arg(long, env = "LOGRELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, TCP and UDP (repeatable) [default: 127.0.0.1:5514]
    #[arg(long, short = 'l', env = "LOGRELAY_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// The store: sqlite:PATH (default: the user data dir) or a SQL Server connection
    #[arg(long, env = "LOGRELAY_DB")]
    db: Option<String>,
    /// Do not receive UDP datagrams
    #[arg(long, env = "LOGRELAY_NO_UDP")]
    no_udp: bool,
    /// Longest frame in bytes; longer frames are truncated and counted [default: 65536]
    #[arg(long, env = "LOGRELAY_MAX_FRAME")]
    max_frame: Option<usize>,
    /// Most TCP connections at once; more are refused and counted [default: 10000]
    #[arg(long, env = "LOGRELAY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Close a connection idle this many seconds [default: 600]
    #[arg(long, env = "LOGRELAY_IDLE_TIMEOUT")]
    idle_timeout: Option<u64>,
    /// Most rows per store transaction [default: 5000]
    #[arg(long, env = "LOGRELAY_BATCH_ROWS")]
    batch_rows: Option<usize>,
    /// Zone for RFC 3164 times, which carry none: local, UTC or +HH:MM [default: local]
    #[arg(long, env = "LOGRELAY_ZONE")]
    zone: Option<String>,
    /// Seconds between counter reports in the log [default: 60]
    #[arg(long, env = "LOGRELAY_STATS_INTERVAL")]
    stats_interval: Option<u64>,
    /// Print the store schema (sqlite or mssql) and exit
    #[arg(long, value_name = "BACKEND", value_parser = ["sqlite", "mssql"])]
    print_schema: Option<String>,
    /// Log level of the daemon's own messages (error, warn, info, debug, trace)
    #[arg(long, env = "LOGRELAY_LOG", default_value = "info")]
    log: tracing::Level,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(backend) = &args.print_schema {
        print!("{}", crate::store::schema_text(backend));
        return ExitCode::SUCCESS;
    }
    crate::sys::raise_fd_limit();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = match &args.config {
        Some(p) => match Layer::load(p) {
            Ok(f) => f,
            Err(e) => return fail(&e),
        },
        None => Layer::default(),
    };
    let flags = Layer {
        listen: Some(args.listen),
        udp: args.no_udp.then_some(false),
        db: args.db,
        max_frame: args.max_frame,
        max_connections: args.max_connections,
        idle_timeout_secs: args.idle_timeout,
        batch_rows: args.batch_rows,
        zone: args.zone,
        stats_interval_secs: args.stats_interval,
    };
    let config = match Config::resolve(flags.over(file)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start runtime: {e}")),
    };
    runtime.block_on(serve(config))
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("logrelayd: error: {msg}");
    ExitCode::from(2)
}

async fn serve(config: Config) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a SIGTERM that arrives right after "listening on" must already
    // mean a graceful shutdown, not the default instant death.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let db = config.db.to_string();
    let relay = match Relay::bind(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    for addr in relay.local_addrs() {
        tracing::info!("listening on {addr}, storing into {db}");
    }
    // The signal is awaited here, on the thread that runs block_on, so a busy worker
    // pool cannot delay it.
    let shutdown = CancellationToken::new();
    let run = relay.run(shutdown.clone());
    tokio::pin!(run);
    tokio::select! {
        _ = &mut run => {}
        _ = term.recv() => {
            tracing::info!("SIGTERM received");
            shutdown.cancel();
            run.await;
        }
        _ = int.recv() => {
            tracing::info!("SIGINT received");
            shutdown.cancel();
            run.await;
        }
    }
    ExitCode::SUCCESS
}
