//! Queries over the archives and the live store together (`logq --archive DIR`). Only
//! the archive files a query's time and id range can touch are read (their manifests
//! say). A filter on times, ids, severities and facilities alone is applied to the
//! rows as they are read, which are then sorted; with a limit (`-n`), the files are
//! read best first and only until no further one can hold a row to print. Any other
//! filter (text, names, words) loads the files into a scratch SQLite store with their
//! row ids and runs the same query there: with a limit, a file at a time, best first,
//! and no further than the limit needs, as for the plain filter. The archived and the live results are
//! merged in order; a row in both (archived, then a crash before its removal) is
//! passed on once, by id.

use super::archive::{ArchiveDir, Manifest};
use super::sqlite::ScratchStore;
use super::{Batch, Filter, Query, RecordRef, StoreError, StoreReader, Visit};

pub struct WithArchives {
    live: Box<dyn StoreReader>,
    dir: ArchiveDir,
}

impl WithArchives {
    pub fn new(live: Box<dyn StoreReader>, dir: ArchiveDir) -> WithArchives {
        WithArchives { live, dir }
    }

    /// The live store alone again.
    pub fn into_live(self) -> Box<dyn StoreReader> {
        self.live
    }

    /// The archived rows `q` can match: the rows, their ids, and the order to pass
    /// them on in (`q`'s).
    fn archived(&self, q: &Query) -> Result<(Batch, Vec<i64>, Vec<usize>), StoreError> {
        let f = &q.filter;
        let since = f.since.map(|t| t.timestamp_micros());
        let until = f.until.map(|t| t.timestamp_micros());
        // The files the query's time and id range can touch (their manifests say).
        let mut wanted: Vec<_> = self
            .dir
            .manifests()?
            .into_iter()
            .filter(|m| m.rows > 0)
            .filter(|m| since.is_none_or(|s| m.max_time_us >= s))
            .filter(|m| until.is_none_or(|u| m.min_time_us <= u))
            .filter(|m| f.after_id.is_none_or(|a| m.last_id > a))
            .filter(|m| f.upto_id.is_none_or(|u| m.first_id <= u))
            .collect();
        let (mut batch, mut ids) = (Batch::new(), Vec::new());
        let limit = q.limit.and_then(|l| usize::try_from(l).ok());
        if limit.is_some() {
            // Best files first, so that a limit is met from the first few.
            wanted.sort_by_key(|m| best_key(q, m));
            if q.newest_first {
                wanted.reverse();
            }
        }
        let plain = needs_no_index(f);
        // A file at a time where reading may stop early (a limit) or costs nothing to
        // split (a plain filter); else all in one scratch store, queried once.
        let step = if limit.is_some() || plain {
            1
        } else {
            wanted.len().max(1)
        };
        let mut keys: Vec<(i64, i64)> = Vec::new();
        for files in wanted.chunks(step) {
            if let Some(limit) = limit
                && limit_met(q, &keys, limit, best_key(q, &files[0]))
            {
                // No row of this file (nor of the later ones, sorted after it) comes
                // before the `limit` rows already read.
                break;
            }
            let mut keep = |id: i64, r: &RecordRef<'_>| {
                batch.push_record(r);
                ids.push(id);
                keys.push(key(q, id, r));
            };
            if plain {
                // Times, ids, severities, facilities: picked as the file is read.
                self.dir.read(&files[0], &mut |id, r| {
                    if plain_match(f, since, until, id, r) {
                        keep(id, r);
                    }
                    Ok(())
                })?;
            } else {
                self.query_in_scratch(files, q, &mut keep)?;
            }
        }
        let mut keyed: Vec<((i64, i64), usize)> =
            keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        keyed.sort_unstable();
        if q.newest_first {
            keyed.reverse();
        }
        // An id in two files (not written so, but cheap to rule out): once.
        keyed.dedup_by_key(|(_, i)| ids[*i]);
        if let Some(limit) = limit {
            keyed.truncate(limit);
        }
        let order = keyed.into_iter().map(|(_, i)| i).collect();
        Ok((batch, ids, order))
    }

    /// Loads `files` into a scratch SQLite store with their row ids and passes on what
    /// `q` finds there (text, name and word filters need the store's query).
    fn query_in_scratch(
        &self,
        files: &[Manifest],
        q: &Query,
        keep: &mut impl FnMut(i64, &RecordRef<'_>),
    ) -> Result<(), StoreError> {
        let mut scratch = ScratchStore::create()?;
        let (mut part, mut part_ids) = (Batch::new(), Vec::new());
        for m in files {
            self.dir.read(m, &mut |id, r| {
                part.push_record(r);
                part_ids.push(id);
                if part_ids.len() >= 10_000 {
                    scratch.insert(&part, &part_ids)?;
                    part.clear();
                    part_ids.clear();
                }
                Ok(())
            })?;
        }
        scratch.insert(&part, &part_ids)?;
        scratch.reader()?.query(q, &mut |id, r| {
            keep(id, r);
            true
        })
    }
}

/// A filter on times, ids, severities and facilities only: no text to match, nothing
/// an index would help with.
fn needs_no_index(f: &Filter) -> bool {
    f.sources.is_empty() && f.hosts.is_empty() && f.matches.is_empty() && f.words.is_empty()
}

/// [`needs_no_index`]'s filter applied to one row, as the store's SQL does it.
fn plain_match(
    f: &Filter,
    since: Option<i64>,
    until: Option<i64>,
    id: i64,
    r: &RecordRef<'_>,
) -> bool {
    since.is_none_or(|s| r.time_us >= s)
        && until.is_none_or(|u| r.time_us <= u)
        && f.after_id.is_none_or(|a| id > a)
        && f.upto_id.is_none_or(|u| id <= u)
        && f.severity_codes()
            .is_none_or(|(lo, hi)| (lo..=hi).contains(&r.level.code()))
        && (f.facilities.is_empty() || r.facility.is_some_and(|x| f.facilities.contains(&x)))
}

/// The key of the row of archive file `m` that comes first under `q` at best: its
/// manifest's time or id bound on the side `q` starts from.
fn best_key(q: &Query, m: &Manifest) -> (i64, i64) {
    match (q.by_id, q.newest_first) {
        (true, true) => (m.last_id, 0),
        (true, false) => (m.first_id, 0),
        (false, true) => (m.max_time_us, m.last_id),
        (false, false) => (m.min_time_us, m.first_id),
    }
}

/// Whether `limit` of the rows read (their `keys`) all come before a row keyed `best`:
/// then no row keyed `best` or after it is passed on.
fn limit_met(q: &Query, keys: &[(i64, i64)], limit: usize, best: (i64, i64)) -> bool {
    if limit == 0 || keys.len() < limit {
        return limit == 0;
    }
    let mut sorted = keys.to_vec();
    let worst_kept = if q.newest_first {
        *sorted.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a)).1
    } else {
        *sorted.select_nth_unstable(limit - 1).1
    };
    if q.newest_first {
        best < worst_kept
    } else {
        best > worst_kept
    }
}

/// The sort key of a row under `q`: (time, id), or id alone in arrival order.
fn key(q: &Query, id: i64, r: &RecordRef<'_>) -> (i64, i64) {
    if q.by_id { (id, 0) } else { (r.time_us, id) }
}

impl StoreReader for WithArchives {
    fn query(&mut self, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (batch, ids, order) = self.archived(q)?;
        let mut archived = order
            .iter()
            .filter_map(|&i| Some((batch.record_at(i)?, ids[i])))
            .peekable();
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
