//! Queries over the archives and the live store together (`logq --archive DIR`). The
//! archive files a query's time and id range can touch are loaded into a scratch
//! SQLite store with their row ids, the same query runs there and on the live store,
//! and the two ordered results are merged; a row in both (archived, then a crash before
//! its removal) is passed on once, by id.

use super::archive::ArchiveDir;
use super::sqlite::ScratchStore;
use super::{Batch, Query, RecordRef, StoreError, StoreReader, Visit};

pub struct WithArchives {
    live: Box<dyn StoreReader>,
    dir: ArchiveDir,
}

impl WithArchives {
    pub fn new(live: Box<dyn StoreReader>, dir: ArchiveDir) -> WithArchives {
        WithArchives { live, dir }
    }

    /// The archived rows `q` can match, in `q`'s order.
    fn archived(&self, q: &Query) -> Result<(Batch, Vec<i64>), StoreError> {
        let f = &q.filter;
        let since = f.since.map(|t| t.timestamp_micros());
        let until = f.until.map(|t| t.timestamp_micros());
        let wanted: Vec<_> = self
            .dir
            .manifests()?
            .into_iter()
            .filter(|m| m.rows > 0)
            .filter(|m| since.is_none_or(|s| m.max_time_us >= s))
            .filter(|m| until.is_none_or(|u| m.min_time_us <= u))
            .filter(|m| f.after_id.is_none_or(|a| m.last_id > a))
            .filter(|m| f.upto_id.is_none_or(|u| m.first_id <= u))
            .collect();
        let mut found = (Batch::new(), Vec::new());
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut scratch = ScratchStore::create()?;
        let (mut batch, mut ids) = (Batch::new(), Vec::new());
        for m in &wanted {
            self.dir.read(m, &mut |id, r| {
                batch.push_record(r);
                ids.push(id);
                if ids.len() >= 10_000 {
                    scratch.insert(&batch, &ids)?;
                    batch.clear();
                    ids.clear();
                }
                Ok(())
            })?;
        }
        scratch.insert(&batch, &ids)?;
        let mut reader = scratch.reader()?;
        reader.query(q, &mut |id, r| {
            found.0.push_record(r);
            found.1.push(id);
            true
        })?;
        Ok(found)
    }
}

/// The sort key of a row under `q`: (time, id), or id alone in arrival order.
fn key(q: &Query, id: i64, r: &RecordRef<'_>) -> (i64, i64) {
    if q.by_id { (id, 0) } else { (r.time_us, id) }
}

impl StoreReader for WithArchives {
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (batch, ids) = self.archived(q)?;
        let mut archived = batch.iter().zip(ids.iter().copied()).peekable();
        let limit = q.limit.unwrap_or(u64::MAX);
        let mut sent = 0u64;
        let mut stopped = false;
        let before = |a: (i64, i64), b: (i64, i64)| if q.newest_first { a > b } else { a < b };
        self.live.query(q, &mut |id, r| {
            let live_key = key(q, id, r);
            while let Some((ar, aid)) = archived.peek() {
                let k = key(q, *aid, ar);
                if *aid == id {
                    archived.next(); // in both: the live row stands for it
                    continue;
                }
                if !before(k, live_key) {
                    break;
                }
                if sent >= limit || !visit(*aid, ar) {
                    stopped = true;
                    return false;
                }
                sent += 1;
                archived.next();
            }
            if sent >= limit || !visit(id, r) {
                stopped = true;
                return false;
            }
            sent += 1;
            true
        })?;
        if !stopped {
            for (r, id) in archived {
                if sent >= limit || !visit(id, &r) {
                    break;
                }
                sent += 1;
            }
        }
        Ok(())
    }

    fn last_id(&mut self) -> Result<Option<i64>, StoreError> {
        self.live.last_id()
    }

    fn changed(&mut self) -> Result<bool, StoreError> {
        self.live.changed()
    }
}
