//! `logrelayd`: flags, logging, signals; the work is in [`crate::relay`].

use crate::relay::Relay;
use crate::relay::config::{Config, Layer};
use clap::{CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "logrelayd",
    version,
    about = "Receive syslog (RFC 5424, RFC 3164) and JSON lines on one port and store them",
    after_help = "Every setting can also be set in the TOML file given with --config, or through \
                  the LOGRELAY_* variable named in its help. Flags beat variables, variables beat \
                  the file."
)]
struct Args {
    /// TOML configuration file (see fixtures/logrelayd.toml)
    #[arg(long, env = "LOGRELAY_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Do not receive UDP datagrams (the same as --udp false)
    #[arg(long)]
    no_udp: bool,
    /// Print the store schema (sqlite or mssql) and exit
    #[arg(long, value_name = "BACKEND", value_parser = ["sqlite", "mssql"])]
    print_schema: Option<String>,
    #[command(flatten)]
    settings: Layer,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Bring the store's schema up to date step by step, showing progress, and exit
    /// (e.g. `logrelayd --db URL migrate`; for a populated SQL Server table, no time limit)
    Migrate,
    /// Inspect the disk spool (read-only; the daemon may be running)
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// Check a configuration file (and the flags and variables given with it), then exit:
    /// 0 when the relay would start with it, 2 with the reason when not
    CheckConfig {
        /// The file to check [default: --config, or none]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
enum SpoolCommand {
    /// Segments, bytes and rows waiting to be stored
    Status,
    /// Check every record's checksum; exit 1 if a record is torn or damaged
    Verify,
}

/// `logrelayd`'s command line, with each setting's `LOGRELAY_*` variable (also what the
/// man page and completions are made from).
pub fn command() -> clap::Command {
    crate::relay::config::with_env_vars(Args::command())
}

fn parse_args() -> Args {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Args::from_arg_matches(&m));
    parsed.unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit();
        }
        // The same shape as every other error: `logrelayd: error: …`, exit 2. A value
        // that failed its own check says why in its own words.
        match std::error::Error::source(&e) {
            Some(why) if e.kind() == ErrorKind::ValueValidation => {
                eprintln!("logrelayd: error: {why}")
            }
            _ => eprint!("logrelayd: {}", e.render()),
        }
        std::process::exit(2);
    })
}

pub fn main() -> ExitCode {
    let mut args = parse_args();
    if let Some(backend) = &args.print_schema {
        print!("{}", crate::store::schema_text(backend));
        return ExitCode::SUCCESS;
    }
    if let Some(Command::CheckConfig { file: Some(file) }) = &args.command {
        args.config = Some(file.clone());
    }
    let mut flags = args.settings;
    if args.no_udp {
        flags.udp = Some(false);
    }
    let settings = Settings {
        file: args.config,
        flags,
    };
    let config = settings.resolve();
    if matches!(args.command, Some(Command::CheckConfig { .. })) {
        // check-config: what the relay would say at start, and nothing else.
        let from = settings
            .file
            .as_ref()
            .map_or("flags and variables".into(), |p| p.display().to_string());
        return match config.and_then(|c| c.check_files().map(|()| c)) {
            Ok(c) => {
                println!("{from}: ok (listen {:?}, store {})", c.listen, c.db);
                ExitCode::SUCCESS
            }
            Err(e) if e.contains(&from) => fail(&e),
            Err(e) => fail(&format!("{from}: {e}")),
        };
    }
    let config = match config {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match &args.command {
        Some(Command::Migrate) => return migrate(&config),
        Some(Command::Spool(cmd)) => return spool_command(cmd, &config),
        _ => {}
    }
    crate::sys::raise_fd_limit();
    let log_level = crate::relay::logging::init(config.log.0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start runtime: {e}")),
    };
    runtime.block_on(serve(config, settings, log_level))
}

/// Where the settings come from, kept to read them again on SIGHUP.
struct Settings {
    file: Option<PathBuf>,
    flags: Layer,
}

impl Settings {
    /// Reads the file (again) and resolves flags > variables > file > defaults.
    fn resolve(&self) -> Result<Config, String> {
        let file = match &self.file {
            Some(p) => Layer::load(p)?,
            None => Layer::default(),
        };
        Config::resolve(self.flags.clone().over(file))
    }
}

fn migrate(config: &Config) -> ExitCode {
    let mut progress = |line: &str| eprintln!("logrelayd migrate: {line}");
    let crate::relay::config::Db::Store(url) = &config.db else {
        eprintln!("logrelayd migrate: error: db = none: there is no store to migrate");
        return ExitCode::from(1);
    };
    match crate::store::migrate(url, &mut progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logrelayd migrate: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `logrelayd spool status|verify`: read-only, safe beside a running daemon.
fn spool_command(cmd: &SpoolCommand, config: &Config) -> ExitCode {
    use crate::relay::spool;
    let dir = config.spool_dir();
    let result = match cmd {
        SpoolCommand::Status => spool::status(&dir).map(|r| (r, true)),
        SpoolCommand::Verify => spool::verify(&dir),
    };
    match result {
        Ok((report, sound)) => {
            print!("{report}");
            if sound {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!(
                "logrelayd: error: cannot read spool {}: {e} (hint: give the daemon's --db or --spool-dir)",
                dir.display()
            );
            ExitCode::from(3)
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("logrelayd: error: {msg}");
    ExitCode::from(2)
}

async fn serve(
    config: Config,
    settings: Settings,
    log_level: crate::relay::logging::LevelHandle,
) -> ExitCode {
    use crate::relay::{metrics, notify};
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a SIGTERM that arrives right after "listening on" must already
    // mean a graceful shutdown, not the default instant death.
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!("cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let db = config.db.to_string();
    let metrics_listener = match config.metrics.0 {
        Some(addr) => match metrics::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
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
    for addr in relay.tls_addrs() {
        tracing::info!("tls listener on {addr}");
    }
    for addr in relay.relp_addrs() {
        tracing::info!("taking RELP on {addr}");
    }
    let shutdown = CancellationToken::new();
    let stats = relay.stats();
    if let Some(l) = metrics_listener {
        if let Ok(addr) = l.local_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        tokio::spawn(metrics::serve(l, stats.clone(), shutdown.clone()));
    }
    relay
        .reloader()
        .register("log level", log_level.reload_hook());
    notify::watchdog(&stats);
    if notify::enabled() {
        tokio::spawn(notify::report_status(stats.clone(), shutdown.clone()));
    }
    notify::ready(&stats);
    let reloader = relay.reloader();
    // The signal is awaited here, on the thread that runs block_on, so a busy worker
    // pool cannot delay it.
    let run = relay.run(shutdown.clone());
    tokio::pin!(run);
    loop {
        let name = tokio::select! {
            _ = &mut run => return ExitCode::SUCCESS,
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => {
                reload(&settings, &reloader);
                continue;
            }
        };
        tracing::info!("{name} received");
        notify::stopping();
        shutdown.cancel();
        run.await;
        return ExitCode::SUCCESS;
    }
}

/// SIGHUP: read the settings again and apply what can change without a restart.
fn reload(settings: &Settings, reloader: &crate::relay::reload::Reloader) {
    crate::relay::notify::reloading();
    let outcome = match settings.resolve() {
        Ok(config) => reloader.reload(&config).to_string(),
        Err(e) => {
            tracing::error!("SIGHUP: {e}; keeping the running settings");
            format!("failed: {e}")
        }
    };
    tracing::info!("SIGHUP: {outcome}");
    crate::relay::notify::reloaded(&outcome);
}
