//! `logq`: query and follow the store, send messages, simulate clients.

pub mod args;
pub mod error;
pub mod query;
pub mod render;
pub mod send;
pub mod simulate;
pub mod timespec;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
        None => query::plan(&cli.query, chrono::Utc::now()).and_then(|plan| {
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
