//! The store's lifecycle by hand: `logq --disk-usage`, `logq vacuum`, `logq archive verify`.

use super::args::QueryArgs;
use super::error::CliError;
use super::plan::{archive_dir, store_url};
use crate::log_limit::thousands;
use crate::settings::{Size, Span};
use crate::store::StoreUrl;
use crate::store::archive::ArchiveDir;
use crate::store::retainer;
use crate::store::retention::{Policy, Removed};
use crate::store::sqlite::retention::SqliteRetention;
use clap::{Args, Subcommand};
use std::path::PathBuf;
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
    let u = retainer::open_read_only(&url)?.usage()?;
    match &url {
        StoreUrl::Sqlite(path) => {
            println!("store     {}", path.display());
            println!(
                "on disk   {} (file {}, WAL {}; {} of the file is free pages, reused before it grows)",
                size(u.file_bytes + u.wal_bytes),
                size(u.file_bytes),
                size(u.wal_bytes),
                size(u.free_bytes)
            );
            println!("rows      {}", thousands(u.rows));
        }
        StoreUrl::Mssql(_) => {
            println!("store     SQL Server, table dbo.Logs");
            println!(
                "used      {} (data and indexes; reserved {}, of which {} unused, filled before the table grows)",
                size(u.used()),
                size(u.file_bytes),
                size(u.free_bytes)
            );
            println!("rows      {} (the server's count)", thousands(u.rows));
        }
    }
    println!("oldest    {}", time(u.oldest_us));
    println!("newest    {}", time(u.newest_us));
    if let StoreUrl::Sqlite(path) = &url {
        let (blocks, missing) = crate::store::sqlite::word_filter_backlog(path)?;
        match missing {
            0 => println!(
                "words     filters for all {} complete blocks",
                thousands(blocks)
            ),
            _ => println!(
                "words     filters for {} of {} complete blocks; the relay makes the rest when it has CPU to spare (word searches read those blocks whole meanwhile)",
                thousands(blocks - missing),
                thousands(blocks)
            ),
        }
    }
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
    let archive = match archive_dir(a.archive.as_deref(), a.config.as_deref())? {
        Some(d) => Some(ArchiveDir::open(&d)?),
        None => None,
    };
    let mut store = retainer::open(&url)?;
    let policy = Policy {
        max_age: a.max_age.map(|s| s.0),
        max_size: a.max_size.map(|s| s.0),
        keep_free: None,
        headroom_blocks: 0,
    };
    let usage = store.usage()?;
    let now_us = chrono::Utc::now().timestamp_micros();
    let plan = store.plan(&policy, now_us)?;
    let rows: u64 = plan.iter().map(|b| b.rows).sum();
    let lo = plan.iter().map(|b| b.min_time_us).min();
    let hi = plan.iter().map(|b| b.max_time_us).max();
    let per_row = usage.file_bytes.saturating_sub(usage.free_bytes) / usage.rows.max(1);
    let verb = if a.dry_run {
        "would remove"
    } else {
        "removing"
    };
    if let (Some(first), Some(last)) = (plan.first(), plan.last()) {
        println!(
            "{verb} {} rows in {} blocks, times {} to {}, ids {} to {}, about {}{}",
            thousands(rows),
            plan.len(),
            time(lo),
            time(hi),
            first.first_id,
            last.last_id,
            size(rows * per_row),
            archive.as_ref().map_or(String::new(), |d| format!(
                ", archived first to {}",
                d.path().display()
            ))
        );
    } else {
        println!(
            "nothing to remove ({} rows, {} in use)",
            thousands(usage.rows),
            size(usage.used())
        );
    }
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let mut removed: Vec<Removed> = Vec::new();
    let result = store.remove(archive.as_ref(), &plan, &mut removed);
    let done: u64 = removed.iter().map(|r| r.rows).sum();
    if let Err(e) = result {
        return Err(CliError::Runtime(format!(
            "{e} (removed {} rows before that)",
            thousands(done)
        )));
    }
    drop(store);
    match &url {
        StoreUrl::Sqlite(path) => {
            // Gives the free pages back to the file system.
            let before = usage.file_bytes + usage.wal_bytes;
            let store = SqliteRetention::open(path)?;
            store.vacuum()?;
            let after = store.usage()?;
            println!(
                "removed {} rows; the store went from {} to {} on disk",
                thousands(done),
                size(before),
                size(after.file_bytes + after.wal_bytes)
            );
        }
        StoreUrl::Mssql(_) => println!(
            "removed {} rows; SQL Server reuses the freed pages for new rows (the database's \
             files keep their size: shrinking them is DBCC SHRINKFILE's, a DBA's decision)",
            thousands(done)
        ),
    }
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
