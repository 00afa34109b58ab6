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
                  facility or protocol (VALUE takes * and ? globs, as -s and -H do; facility \
                  takes a name or number), or SDID.PARAM=VALUE on structured data (exact).\n\
                  Examples:\n  logq -p err --since '1 hour ago' -s billing\n  \
                  logq -f -H 'web*'\n  logq -o json -n 100 | jq .message\n  \
                  logq -w 3fa2c9e1 -w timeout\n  logq stats --by level --bucket 1h -S today\n  \
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
    /// Count the matching rows per time bucket and per level, source, host or facility
    Stats(Box<StatsArgs>),
    /// Remove the oldest rows (archiving them first when an archive dir is set), then
    /// give the free space back to the file system
    Vacuum(super::lifecycle::VacuumArgs),
    /// Look after archives: `logq archive verify DIR`
    #[command(subcommand)]
    Archive(super::lifecycle::ArchiveCommand),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Group by these fields: level, source, host, facility (comma separated or repeated)
    #[arg(long, value_name = "FIELD[,FIELD]", value_delimiter = ',')]
    pub by: Vec<String>,
    /// Count per time bucket of the display zone: 1m, 1h or 1d
    #[arg(long, value_name = "1m|1h|1d")]
    pub bucket: Option<String>,
    #[command(flatten)]
    pub query: QueryArgs,
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
    /// Source (app name / tag, also -t); repeatable, ORed; `*` and `?` glob
    #[arg(
        short = 's',
        visible_short_alias = 't',
        long = "source",
        value_name = "APP"
    )]
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
    /// Whole word every row must contain, in the message, host, source or a structured-data
    /// value, any case; repeatable, ANDed. Uses the store's word index
    #[arg(short = 'w', long = "word", value_name = "WORD")]
    pub words: Vec<String>,
    /// Show the newest N rows (printed oldest first), or all [default: all; 10 with -f or a
    /// bare -n; 1000 with -e]
    #[arg(short = 'n', long = "lines", value_name = "N|all", num_args = 0..=1, default_missing_value = "10")]
    pub lines: Option<String>,
    /// Print the number of matching rows instead of the rows
    #[arg(long, conflicts_with = "follow")]
    pub count: bool,
    /// List the values of FIELD in the matching rows, with counts: level, source, host,
    /// facility
    #[arg(
        short = 'F',
        long = "field",
        value_name = "FIELD",
        conflicts_with = "follow"
    )]
    pub field: Option<String>,
    /// List the fields rows have (and the SDID.PARAM names of recent rows)
    #[arg(short = 'N', long = "fields")]
    pub fields: bool,
    /// Also print N rows after each match, from the same host and source
    #[arg(
        short = 'A',
        long = "after-context",
        value_name = "N",
        conflicts_with = "follow"
    )]
    pub after: Option<u64>,
    /// Also print N rows before each match, from the same host and source
    #[arg(
        short = 'B',
        long = "before-context",
        value_name = "N",
        conflicts_with = "follow"
    )]
    pub before: Option<u64>,
    /// -A N and -B N
    #[arg(
        short = 'C',
        long = "context",
        value_name = "N",
        conflicts_with = "follow"
    )]
    pub context: Option<u64>,
    /// Do not pipe the output into a pager
    #[arg(long)]
    pub no_pager: bool,
    /// Start the pager at the end (and show the newest 1000 rows unless -n says otherwise)
    #[arg(short = 'e', long = "pager-end")]
    pub pager_end: bool,
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
    /// Only these fields in json, json-pretty and verbose output (comma separated)
    #[arg(long, value_name = "FIELD,…", value_delimiter = ',')]
    pub output_fields: Vec<String>,
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
    /// Also query the archives in DIR (default: the config file's retention.archive-dir)
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Show the store's size on disk, rows, oldest and newest time, and the archives' size
    #[arg(long)]
    pub disk_usage: bool,
    /// FIELD=VALUE, FIELD!=VALUE or SDID.PARAM=VALUE
    #[arg(value_name = "MATCHES")]
    pub matches: Vec<String>,
}
