//! The store's lifecycle by hand: `logq --disk-usage`, `logq vacuum`, `logq archive verify`.

use super::args::QueryArgs;
use super::error::CliError;
use super::plan::{archive_dir, store_url};
use crate::log_limit::thousands;
use crate::settings::{Size, Span};
use crate::store::StoreUrl;
use crate::store::archive::ArchiveDir;
use crate::store::retention::{self, Policy, Removed};
use crate::store::sqlite::retention::SqliteRetention;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Remove the blocks of rows wholly older than this (e.g. 30d)
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<Span>,
    /// Remove the oldest rows until the store (pages in use and WAL) fits in this
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<Size>,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Archive what is removed here first (default: the config file's retention.archive-dir)
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// The store [default: the config file's db, or the default SQLite file]
    #[arg(long, env = "LOGRELAY_DB", value_name = "URL")]
    pub db: Option<String>,
    /// logrelayd's TOML config file, to find its store and archive dir
    #[arg(long, env = "LOGRELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every archive file against its manifest (size, SHA-256, records, ranges)
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn sqlite_path(url: &StoreUrl) -> Result<&Path, CliError> {
    match url {
        StoreUrl::Sqlite(p) => Ok(p),
        StoreUrl::Mssql(_) => Err(CliError::usage(
            "this works on the SQLite store only",
            Some("for SQL Server see the README's retention recipe".into()),
        )),
    }
}

fn time(us: Option<i64>) -> String {
    let Some(us) = us else {
        return "-".into();
    };
    let mut s = String::new();
    crate::timefmt::write_rfc3339_utc(us, 0, &mut s);
    s
}

fn size(bytes: u64) -> String {
    Size(bytes).to_string()
}

pub fn disk_usage(a: &QueryArgs) -> Result<ExitCode, CliError> {
    let url = store_url(a.db.as_deref(), a.config.as_deref())?;
    let path = sqlite_path(&url)?;
    let store = SqliteRetention::open_read_only(path)?;
    let u = store.usage()?;
    println!("store     {}", path.display());
    println!(
        "on disk   {} (file {}, WAL {}; {} of the file is free pages, reused before it grows)",
        size(u.file_bytes + u.wal_bytes),
        size(u.file_bytes),
        size(u.wal_bytes),
        size(u.free_bytes)
    );
    println!("rows      {}", thousands(u.rows));
    println!("oldest    {}", time(u.oldest_us));
    println!("newest    {}", time(u.newest_us));
    if let Some(dir) = archive_dir(a.archive.as_deref(), a.config.as_deref())? {
        let archive = ArchiveDir::open(&dir)?;
        let ms = archive.manifests()?;
        let bytes: u64 = ms.iter().map(|m| m.bytes).sum();
        let rows: u64 = ms.iter().map(|m| m.rows).sum();
        println!(
            "archives  {} in {} files, {} rows, {} to {} ({})",
            size(bytes),
            ms.len(),
            thousands(rows),
            time(ms.iter().map(|m| m.min_time_us).min()),
            time(ms.iter().map(|m| m.max_time_us).max()),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vacuum(a: VacuumArgs) -> Result<ExitCode, CliError> {
    let url = store_url(a.db.as_deref(), a.config.as_deref())?;
    let path = sqlite_path(&url)?;
    let archive = match archive_dir(a.archive.as_deref(), a.config.as_deref())? {
        Some(d) => Some(ArchiveDir::open(&d)?),
        None => None,
    };
    let mut store = SqliteRetention::open(path)?;
    let policy = Policy {
        max_age: a.max_age.map(|s| s.0),
        max_size: a.max_size.map(|s| s.0),
        keep_free: None,
        headroom_blocks: 0,
    };
    let usage = store.usage()?;
    let now_us = chrono::Utc::now().timestamp_micros();
    let blocks = retention::select(&policy, &store.blocks()?, &usage, None, now_us);
    let mut rows = 0u64;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for b in &blocks {
        rows += store.count(b.first_id, b.last_id)?;
        lo = lo.min(b.min_time_us);
        hi = hi.max(b.max_time_us);
    }
    let per_row = usage.file_bytes.saturating_sub(usage.free_bytes) / usage.rows.max(1);
    let verb = if a.dry_run {
        "would remove"
    } else {
        "removing"
    };
    if blocks.is_empty() {
        println!(
            "nothing to remove ({} rows, {} in use)",
            thousands(usage.rows),
            size(usage.used())
        );
    } else {
        println!(
            "{verb} {} rows in {} blocks, times {} to {}, ids {} to {}, about {}{}",
            thousands(rows),
            blocks.len(),
            time(Some(lo)),
            time(Some(hi)),
            blocks[0].first_id,
            blocks[blocks.len() - 1].last_id,
            size(rows * per_row),
            archive.as_ref().map_or(String::new(), |d| format!(
                ", archived first to {}",
                d.path().display()
            ))
        );
    }
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let mut removed: Vec<Removed> = Vec::new();
    let result = retention::remove(
        &mut store,
        archive.as_ref(),
        &blocks,
        &mut removed,
        &mut |_| {},
    );
    let done: u64 = removed.iter().map(|r| r.rows).sum();
    if let Err(e) = result {
        return Err(CliError::Runtime(format!(
            "{e} (removed {} rows before that)",
            thousands(done)
        )));
    }
    let before = usage.file_bytes + usage.wal_bytes;
    store.vacuum()?;
    let after = store.usage()?;
    println!(
        "removed {} rows; the store went from {} to {} on disk",
        thousands(done),
        size(before),
        size(after.file_bytes + after.wal_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn archive(c: ArchiveCommand) -> Result<ExitCode, CliError> {
    match c {
        ArchiveCommand::Verify { dir } => {
            let archive = ArchiveDir::open(&dir)?;
            let ms = archive.manifests()?;
            let problems = archive.verify()?;
            for p in &problems {
                println!("{p}");
            }
            let rows: u64 = ms.iter().map(|m| m.rows).sum();
            if problems.is_empty() {
                println!(
                    "{} files, {} rows: all match their manifests",
                    ms.len(),
                    thousands(rows)
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} problems in {} files", problems.len(), ms.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}
