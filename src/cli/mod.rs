//! `logq`: query and follow the store, send messages, simulate clients.

mod args;
mod buckets;
mod error;
mod escape;
mod grep_words;
mod levels;
mod lifecycle;
mod pager;
mod plan;
pub(crate) use plan::config_db;
mod query;
mod relay_auth;
mod render;
mod send;
mod simulate;
mod stats;
mod stats_render;
mod timespec;

use args::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// `logq`'s command line (also what the man page and completions are made from).
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = match command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprint!("logq: {}", e.render());
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Send(a)) => send::run(a),
        Some(Command::Simulate(a)) => simulate::run(a),
        Some(Command::Stats(a)) => stats::run(a),
        Some(Command::Vacuum(a)) => lifecycle::vacuum(a),
        Some(Command::Archive(a)) => lifecycle::archive(a),
        None if cli.query.disk_usage => lifecycle::disk_usage(&cli.query),
        None => plan::plan(&cli.query, chrono::Utc::now()).and_then(|plan| {
            let fail_if_empty = plan.fail_if_empty;
            query::run(plan).map(|matched| {
                if fail_if_empty && !matched {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            })
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}
