//! What retention and `logq vacuum` / `--disk-usage` need of a store, the same for both
//! backends: its usage, the blocks a policy removes now, and their removal (archived
//! first when an archive directory is set).

use super::StoreError;
use super::StoreUrl;
use super::archive::ArchiveDir;
use super::mssql::retention::MssqlRetention;
use super::retention::{self, Block, Policy, Removed, RetentionError, Usage};
use super::sqlite::retention::SqliteRetention;

pub trait Retainer {
    /// What the store takes and holds (SQL Server: the table's reserved space as
    /// `file_bytes`, its unused part as `free_bytes`, and the server's row count).
    fn usage(&mut self) -> Result<Usage, StoreError>;
    /// The blocks `policy` removes now, oldest first, with their rows and times: what
    /// a dry run reports. The newest block is never among them.
    fn plan(&mut self, policy: &Policy, now_us: i64) -> Result<Vec<Removed>, StoreError>;
    /// Archives (when `archive` is set) and removes the planned blocks, oldest first,
    /// pushing each onto `done`; stops at the first failure, no row removed that was
    /// not archived.
    fn remove(
        &mut self,
        archive: Option<&ArchiveDir>,
        plan: &[Removed],
        done: &mut Vec<Removed>,
    ) -> Result<(), RetentionError>;
}

/// Opens an existing store to remove rows from (never creates one).
pub fn open(url: &StoreUrl) -> Result<Box<dyn Retainer>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(SqliteRetention::open(path)?)),
        StoreUrl::Mssql(conn) => Ok(Box::new(MssqlRetention::open(conn)?)),
    }
}

/// Opens an existing store only to look at it; a SQLite file is opened read-only.
pub fn open_read_only(url: &StoreUrl) -> Result<Box<dyn Retainer>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Box::new(SqliteRetention::open_read_only(path)?)),
        StoreUrl::Mssql(conn) => Ok(Box::new(MssqlRetention::open(conn)?)),
    }
}

impl Retainer for SqliteRetention {
    fn usage(&mut self) -> Result<Usage, StoreError> {
        SqliteRetention::usage(self)
    }

    fn plan(&mut self, policy: &Policy, now_us: i64) -> Result<Vec<Removed>, StoreError> {
        let sizes = self.sizes()?;
        let fs_free = match policy.keep_free {
            Some(_) => {
                let dir = self
                    .path()
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                retention::fs_available(dir).ok()
            }
            None => None,
        };
        let blocks = retention::select(policy, &self.blocks()?, &sizes, fs_free, now_us);
        blocks
            .iter()
            .map(|b| Ok(b.removed(self.count(b.first_id, b.last_id)?)))
            .collect()
    }

    fn remove(
        &mut self,
        archive: Option<&ArchiveDir>,
        plan: &[Removed],
        done: &mut Vec<Removed>,
    ) -> Result<(), RetentionError> {
        let blocks: Vec<Block> = plan.iter().map(Removed::block).collect();
        retention::remove(self, archive, &blocks, done, &mut |_| {})
    }
}

impl Retainer for MssqlRetention {
    fn usage(&mut self) -> Result<Usage, StoreError> {
        MssqlRetention::usage(self)
    }

    fn plan(&mut self, policy: &Policy, now_us: i64) -> Result<Vec<Removed>, StoreError> {
        // By hand, all that is due (the relay's passes are bounded).
        MssqlRetention::plan(self, policy, now_us, usize::MAX)
    }

    fn remove(
        &mut self,
        archive: Option<&ArchiveDir>,
        plan: &[Removed],
        done: &mut Vec<Removed>,
    ) -> Result<(), RetentionError> {
        MssqlRetention::remove(self, archive, plan, done)
    }
}
