//! Retention: which rows to remove (oldest first, whole blocks), archiving them first
//! when an archive directory is set, then removing them. The relay runs a pass in the
//! background; `logq vacuum` runs one by hand.

use super::StoreError;
use super::archive::{self, ArchiveDir};
use super::sqlite::retention::SqliteRetention;
use std::path::Path;
use std::time::Duration;

/// The limits, each off when `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub max_age: Option<Duration>,
    /// The store's size on disk: pages in use plus the WAL.
    pub max_size: Option<u64>,
    /// Free space to leave on the store's file system (free pages inside the file count
    /// as free: new rows go there first).
    pub keep_free: Option<u64>,
    /// Blocks of room kept under `max-size` and above `keep-free`. The relay keeps two
    /// (with `max-size` also as many as one removal transaction deletes): it removes
    /// before the limit is reached, so that what arrives until the next pass stays
    /// within the limit (with `max-size` the next pass comes once the rows stored fill
    /// that room but two blocks, the rows a commit brings before the writer asks again).
    /// `logq vacuum` keeps none.
    pub headroom_blocks: u64,
}

impl Policy {
    pub fn is_off(&self) -> bool {
        self.max_age.is_none() && self.max_size.is_none() && self.keep_free.is_none()
    }
}

/// One block: a range of row ids and the times its rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub first_id: i64,
    pub last_id: i64,
    pub min_time_us: i64,
    pub max_time_us: i64,
}

/// What a store takes on disk and holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub file_bytes: u64,
    pub wal_bytes: u64,
    /// Free pages inside the file (reused before the file grows).
    pub free_bytes: u64,
    pub rows: u64,
    pub oldest_us: Option<i64>,
    pub newest_us: Option<i64>,
}

impl Usage {
    /// Bytes the rows need: the file without its free pages, plus the WAL.
    pub fn used(&self) -> u64 {
        self.file_bytes.saturating_sub(self.free_bytes) + self.wal_bytes
    }
}

/// Free bytes for an unprivileged user on the file system holding `path`.
pub fn fs_available(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statvfs to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// The blocks the policy removes now, oldest first: every block wholly older than
/// `max-age`, and as many of the oldest as bring the size within `max-size` and the
/// free space above `keep-free` (a block's size estimated as the average).
pub fn select(
    policy: &Policy,
    blocks: &[Block],
    usage: &Usage,
    fs_free: Option<u64>,
    now_us: i64,
) -> Vec<Block> {
    let mut take = vec![false; blocks.len()];
    if let Some(age) = policy.max_age {
        let cutoff = now_us.saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
        for (t, b) in take.iter_mut().zip(blocks) {
            *t |= b.max_time_us < cutoff;
        }
    }
    let per_block = block_bytes(blocks, usage);
    let headroom = per_block.saturating_mul(policy.headroom_blocks);
    let mut excess = 0u64;
    if let Some(max) = policy.max_size {
        excess = excess.max((usage.used() + headroom).saturating_sub(max));
    }
    if let (Some(keep), Some(free)) = (policy.keep_free, fs_free) {
        excess = excess.max((keep + headroom).saturating_sub(free + usage.free_bytes));
    }
    let oldest = excess.div_ceil(per_block) as usize;
    for t in take.iter_mut().take(oldest) {
        *t = true;
    }
    blocks
        .iter()
        .zip(take)
        .filter_map(|(b, t)| t.then_some(*b))
        .collect()
}

/// A block's bytes on disk, estimated as the average over the pages in use.
pub fn block_bytes(blocks: &[Block], usage: &Usage) -> u64 {
    // +1: the newest block, never removed, holds rows too.
    (usage.file_bytes.saturating_sub(usage.free_bytes) / (blocks.len() as u64 + 1)).max(1)
}

/// Rows removed (or, in a dry run, that would be) in one id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub first_id: i64,
    pub last_id: i64,
    pub min_time_us: i64,
    pub max_time_us: i64,
    pub rows: u64,
}

impl Block {
    /// This block, removed with its `rows`.
    pub fn removed(&self, rows: u64) -> Removed {
        Removed {
            first_id: self.first_id,
            last_id: self.last_id,
            min_time_us: self.min_time_us,
            max_time_us: self.max_time_us,
            rows,
        }
    }
}

impl Removed {
    /// The block this removal covers.
    pub fn block(&self) -> Block {
        Block {
            first_id: self.first_id,
            last_id: self.last_id,
            min_time_us: self.min_time_us,
            max_time_us: self.max_time_us,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Archiving failed: nothing more was removed.
    #[error(
        "cannot archive to {dir}: {reason}; retention stopped, no row removed that was not archived"
    )]
    Archive { dir: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Blocks per archive file at most (about 65,000 rows).
pub const BLOCKS_PER_FILE: usize = 16;

/// Archives (when `archive` is set) and removes `blocks`, oldest first: each run of
/// consecutive blocks goes to one archive file, written and synced with its manifest
/// before any of its rows is removed. Rows already covered by a manifest (a pass cut
/// short by a crash) are removed without being archived again. `after_block` runs
/// after each block's removal (the relay cuts the WAL there).
pub fn remove(
    store: &mut SqliteRetention,
    archive: Option<&ArchiveDir>,
    blocks: &[Block],
    removed: &mut Vec<Removed>,
    after_block: &mut dyn FnMut(&SqliteRetention),
) -> Result<(), RetentionError> {
    for group in runs(blocks) {
        if let Some(dir) = archive {
            archive_run(store, dir, group, &|| false)?;
        }
        for b in group {
            let rows = store.remove(b.first_id, b.last_id)?;
            removed.push(b.removed(rows));
            after_block(store);
        }
    }
    Ok(())
}

/// Archives one run of consecutive blocks to one file and its manifest, both synced;
/// blocks the manifests cover already (archived ahead of their removal, or by a pass
/// cut short by a crash or a stop) are left out, so no row is archived twice.
/// The rows are read one block per statement, so no read snapshot is held long (a WAL
/// checkpoint waits for the readers it would overtake). `stop` is asked between blocks:
/// `Ok(false)` when it said stop and nothing more was written.
pub fn archive_run(
    store: &SqliteRetention,
    dir: &ArchiveDir,
    run: &[Block],
    stop: &dyn Fn() -> bool,
) -> Result<bool, RetentionError> {
    let manifests = dir.manifests().map_err(|e| archive_error(dir, e))?;
    let missing: Vec<Block> = run
        .iter()
        .filter(|b| !archive::covered(&manifests, b.first_id, b.last_id))
        .copied()
        .collect();
    for part in runs(&missing) {
        let (Some(head), Some(tail)) = (part.first(), part.last()) else {
            continue;
        };
        let mut stopped = false;
        let written = dir.write_columns(head.first_id, tail.last_id, |cols| {
            for b in part {
                if stop() {
                    stopped = true;
                    return Err(StoreError::Server("stopping".into()));
                }
                store.archive_rows(b.first_id, b.last_id, cols)?;
            }
            Ok(())
        });
        match written {
            Ok(_) => {}
            Err(_) if stopped => return Ok(false),
            Err(e) => return Err(archive_error(dir, e)),
        }
    }
    Ok(true)
}

/// The blocks to archive ahead of their removal: with `max-size`, the oldest beyond
/// [`AHEAD_SHARE`] of it, chosen as [`select`] chooses for the cap. Archiving them
/// while the store still fills lets the rows go at once when the cap is reached,
/// instead of waiting for the archiver then (which full-speed ingest on two cores
/// outruns). Off without `max-size`: a store under `max-age` or `keep-free` alone
/// would hold a second, compressed copy of rows far from their removal.
pub fn select_ahead(policy: &Policy, blocks: &[Block], usage: &Usage) -> Vec<Block> {
    let Some(max) = policy.max_size else {
        return Vec::new();
    };
    let early = Policy {
        max_size: Some(max / AHEAD_SHARE),
        max_age: None,
        keep_free: None,
        headroom_blocks: policy.headroom_blocks,
    };
    select(&early, blocks, usage, None, 0)
}

/// Archiving ahead starts once the store passes 1/`AHEAD_SHARE` of `max-size`.
pub const AHEAD_SHARE: u64 = 2;

fn archive_error(dir: &ArchiveDir, e: StoreError) -> RetentionError {
    RetentionError::Archive {
        dir: dir.path().display().to_string(),
        reason: e.to_string(),
    }
}

/// Consecutive blocks, at most [`BLOCKS_PER_FILE`] to a run (one archive file each).
pub fn runs(blocks: &[Block]) -> Vec<&[Block]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blocks.len() {
        let cut = i == blocks.len()
            || blocks[i].first_id != blocks[i - 1].last_id + 1
            || i - start == BLOCKS_PER_FILE;
        if cut {
            out.push(&blocks[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: i64, max_time_us: i64) -> Block {
        Block {
            first_id: n << 12,
            last_id: ((n + 1) << 12) - 1,
            min_time_us: max_time_us - 10,
            max_time_us,
        }
    }

    #[test]
    fn selects_wholly_old_blocks_and_the_oldest_for_size() {
        let blocks: Vec<Block> = [100, 300, 200, 400]
            .iter()
            .enumerate()
            .map(|(i, t)| block(i as i64, *t))
            .collect();
        let usage = Usage {
            file_bytes: 5_000,
            ..Usage::default()
        };
        let age = Policy {
            max_age: Some(Duration::from_micros(250)),
            ..Policy::default()
        };
        let picked = select(&age, &blocks, &usage, None, 500);
        assert_eq!(picked, [blocks[0], blocks[2]], "max_time < 250 only");
        let size = Policy {
            max_size: Some(3_000),
            ..Policy::default()
        };
        // 1,000 bytes a block (5 blocks with the newest): 2,000 over is two blocks.
        assert_eq!(select(&size, &blocks, &usage, None, 500), blocks[..2]);
        let room = Policy {
            headroom_blocks: 1,
            ..size.clone()
        };
        assert_eq!(select(&room, &blocks, &usage, None, 500), blocks[..3]);
        let free = Policy {
            keep_free: Some(1_500),
            ..Policy::default()
        };
        assert_eq!(select(&free, &blocks, &usage, Some(600), 500), blocks[..1]);
        assert!(select(&Policy::default(), &blocks, &usage, Some(0), 500).is_empty());
        let picked = [blocks[0], blocks[1], blocks[3]];
        assert_eq!(runs(&picked).len(), 2);
    }

    #[test]
    fn archives_ahead_beyond_half_of_max_size_only() {
        let blocks: Vec<Block> = (0..4).map(|i| block(i, 100)).collect();
        // 1,000 bytes a block, 5,000 in use.
        let usage = Usage {
            file_bytes: 5_000,
            ..Usage::default()
        };
        let cap = |max| Policy {
            max_size: Some(max),
            ..Policy::default()
        };
        // Nothing due under a 6,000-byte cap; beyond 3,000 are two blocks.
        assert!(select(&cap(6_000), &blocks, &usage, None, 0).is_empty());
        assert_eq!(select_ahead(&cap(6_000), &blocks, &usage), blocks[..2]);
        assert!(select_ahead(&cap(12_000), &blocks, &usage).is_empty());
        let age_only = Policy {
            max_age: Some(Duration::from_secs(1)),
            ..Policy::default()
        };
        assert!(select_ahead(&age_only, &blocks, &usage).is_empty());
    }
}
