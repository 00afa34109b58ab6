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
    let args = parse_args();
    if let Some(backend) = &args.print_schema {
        print!("{}", crate::store::schema_text(backend));
        return ExitCode::SUCCESS;
    }
    crate::sys::raise_fd_limit();
    let file = match &args.config {
        Some(p) => match Layer::load(p) {
            Ok(f) => f,
            Err(e) => return fail(&e),
        },
        None => Layer::default(),
    };
    let command = args.command;
    let mut flags = args.settings;
    if args.no_udp {
        flags.udp = Some(false);
    }
    let config = match Config::resolve(flags.over(file)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match &command {
        Some(Command::Migrate) => return migrate(&config),
        Some(Command::Spool(cmd)) => return spool_command(cmd, &config),
        None => {}
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(config.log.0)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start runtime: {e}")),
    };
    runtime.block_on(serve(config))
}

fn migrate(config: &Config) -> ExitCode {
    let mut progress = |line: &str| eprintln!("logrelayd migrate: {line}");
    match crate::store::migrate(&config.db, &mut progress) {
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
