//! `logq`'s command line (clap derive). The flag vocabulary is journalctl's.

use super::render::{ColorChoice, Output};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "logq",
    version,
    about = "Query and follow the logs stored by logrelayd",
    args_conflicts_with_subcommands = true,
    after_help = "Matches: FIELD=VALUE or FIELD!=VALUE on hostname, source, procid, msgid, \
                  facility or protocol, or SDID.PARAM=VALUE on structured data.\n\
                  Examples:\n  logq -p err --since '1 hour ago' -s billing\n  \
                  logq -f -H 'web*'\n  logq -o json -n 100 | jq .message\n  \
                  logq send -p err -s billing 'payment failed'"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one message, or every line of standard input, to a relay
    Send(super::send::SendArgs),
    /// Simulate many client services sending logs (also a load generator)
    Simulate(super::simulate::SimulateArgs),
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Level or range: one level means it and everything more severe; FROM..TO is inclusive
    #[arg(short = 'p', long = "priority", value_name = "LEVEL|FROM..TO")]
    pub priority: Option<String>,
    /// Rows at or after this time
    #[arg(short = 'S', long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Rows at or before this time
    #[arg(short = 'U', long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Source (app name / tag); repeatable, ORed; `*` and `?` glob
    #[arg(short = 's', long = "source", value_name = "APP")]
    pub sources: Vec<String>,
    /// Hostname; repeatable, ORed; `*` and `?` glob
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Facilities, names or numbers, comma separated
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub facility: Vec<String>,
    /// Regular expression on the message; all lower case means case-insensitive
    #[arg(short = 'g', long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Show the newest N rows (printed oldest first), or all [default: all; 10 with -f]
    #[arg(short = 'n', long = "lines", value_name = "N|all")]
    pub lines: Option<String>,
    /// Newest first
    #[arg(short = 'r', long)]
    pub reverse: bool,
    /// Print the last rows, then new rows as they are stored
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    pub output: Output,
    /// Print control characters in text output raw (default: escaped as \xNN)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show times in UTC (default: the local zone)
    #[arg(long)]
    pub utc: bool,
    /// Colour by level: auto = only on a terminal and without NO_COLOR
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorChoice,
    /// Exit 1 when no row matched
    #[arg(long)]
    pub fail_if_empty: bool,
    /// The store [default: the config file's db, or the default SQLite file]
    #[arg(long, env = "LOGRELAY_DB", value_name = "URL")]
    pub db: Option<String>,
    /// logrelayd's TOML config file, to find its store
    #[arg(long, env = "LOGRELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// FIELD=VALUE, FIELD!=VALUE or SDID.PARAM=VALUE
    #[arg(value_name = "MATCHES")]
    pub matches: Vec<String>,
}
