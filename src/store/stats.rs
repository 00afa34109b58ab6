//! Counting rows: `logq --count`, `logq stats` (rows per time bucket and per level,
//! source, host or facility) and `logq -F FIELD`. Backends compute these in the store;
//! [`by_visiting`] is the plain way (every matching row read once) that a backend
//! without anything better uses.

use super::{Filter, Query, RecordRef, StoreError, StoreReader};
use crate::message::{Facility, Level};
use std::collections::HashMap;

/// What rows can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatField {
    Level,
    Source,
    Host,
    Facility,
}

impl StatField {
    pub const NAMES: [&'static str; 4] = ["level", "source", "host", "facility"];

    pub fn from_name(s: &str) -> Option<StatField> {
        Some(match s {
            "level" | "priority" | "severity" => StatField::Level,
            "source" | "app" | "tag" => StatField::Source,
            "host" | "hostname" => StatField::Host,
            "facility" => StatField::Facility,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            StatField::Level => "level",
            StatField::Source => "source",
            StatField::Host => "host",
            StatField::Facility => "facility",
        }
    }
}

/// Counts per time bucket and group.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    pub filter: Filter,
    pub by: Vec<StatField>,
    /// Bucket boundaries in microseconds, ascending: bucket `i` holds the rows with
    /// `bounds[i] <= time < bounds[i + 1]`; rows outside every bucket are not counted.
    pub bounds: Vec<i64>,
}

impl StatsQuery {
    /// One bucket for all time.
    pub fn everything(filter: Filter, by: Vec<StatField>) -> StatsQuery {
        StatsQuery {
            filter,
            by,
            bounds: vec![i64::MIN, i64::MAX],
        }
    }

    /// The bucket of a time, if any.
    pub fn bucket(&self, time_us: i64) -> Option<usize> {
        let i = self.bounds.partition_point(|&b| b <= time_us);
        (i > 0 && i < self.bounds.len()).then(|| i - 1)
    }
}

/// A group's value of one field, as stored: codes for level and facility, dictionary
/// ids or names for sources and hosts. `None` where the row has none.
pub type Key = [Option<i64>; 4];

/// One group's count in one bucket. `key` has one entry per `by` field, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub bucket: usize,
    pub key: Vec<Option<String>>,
    pub count: u64,
}

/// Adds up counts keyed by bucket and group values (integers until the end).
#[derive(Debug, Default)]
pub struct Tally {
    pub counts: HashMap<(usize, Key), u64>,
}

impl Tally {
    pub fn add(&mut self, bucket: usize, key: Key, n: u64) {
        if n > 0 {
            *self.counts.entry((bucket, key)).or_default() += n;
        }
    }

    /// The rows, sorted by bucket and then by key; `name` turns a source or host id
    /// into its name.
    pub fn rows(
        self,
        by: &[StatField],
        mut name: impl FnMut(StatField, i64) -> Result<Option<String>, StoreError>,
    ) -> Result<Vec<StatRow>, StoreError> {
        let mut out = Vec::with_capacity(self.counts.len());
        // Sorted by bucket, then levels and facilities by code, names by name.
        type SortKey = (usize, Vec<(i64, Option<String>)>);
        let mut order: Vec<SortKey> = Vec::new();
        for ((bucket, key), count) in self.counts {
            let mut values = Vec::with_capacity(by.len());
            let mut sort = Vec::with_capacity(by.len());
            for (i, field) in by.iter().enumerate() {
                let v = match (field, key[i]) {
                    (_, None) => None,
                    (StatField::Level, Some(c)) => {
                        Level::from_code(c.clamp(0, 7) as u8).map(|l| l.name().to_string())
                    }
                    (StatField::Facility, Some(c)) => {
                        Facility::from_code(c.clamp(0, 255) as u8).map(|f| f.name().to_string())
                    }
                    (f, Some(id)) => name(*f, id)?,
                };
                sort.push(match field {
                    StatField::Level | StatField::Facility => (key[i].unwrap_or(i64::MAX), None),
                    _ => (0, v.clone()),
                });
                values.push(v);
            }
            order.push((bucket, sort));
            out.push(StatRow {
                bucket,
                key: values,
                count,
            });
        }
        let mut idx: Vec<usize> = (0..out.len()).collect();
        idx.sort_by(|&a, &b| order[a].cmp(&order[b]));
        let mut slots: Vec<Option<StatRow>> = out.into_iter().map(Some).collect();
        let out: Vec<StatRow> = idx.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(out)
    }
}

/// Stats by reading every matching row (for backends without summaries). Source and
/// host names are keyed through a local dictionary.
pub fn by_visiting<S: StoreReader + ?Sized>(
    store: &mut S,
    q: &StatsQuery,
) -> Result<Vec<StatRow>, StoreError> {
    let mut tally = Tally::default();
    let mut names: Vec<String> = Vec::new();
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut id_of = |s: Option<&str>| {
        s.map(|s| match ids.get(s) {
            Some(id) => *id,
            None => {
                names.push(s.to_string());
                ids.insert(s.to_string(), names.len() as i64 - 1);
                names.len() as i64 - 1
            }
        })
    };
    let query = Query {
        filter: q.filter.clone(),
        ..Query::default()
    };
    store.query(&query, &mut |_, r: &RecordRef<'_>| {
        if let Some(bucket) = q.bucket(r.time_us) {
            let mut key: Key = [None; 4];
            for (i, f) in q.by.iter().enumerate().take(4) {
                key[i] = match f {
                    StatField::Level => Some(r.level.code().into()),
                    StatField::Facility => r.facility.map(|f| f.code().into()),
                    StatField::Source => id_of(r.source),
                    StatField::Host => id_of(r.hostname),
                };
            }
            tally.add(bucket, key, 1);
        }
        true
    })?;
    tally.rows(&q.by, |_, id| Ok(names.get(id as usize).cloned()))
}

/// The oldest and newest event time among the matching rows.
pub fn time_bounds<S: StoreReader + ?Sized>(
    store: &mut S,
    f: &Filter,
) -> Result<Option<(i64, i64)>, StoreError> {
    let mut ends = [None, None];
    for (i, newest_first) in [false, true].into_iter().enumerate() {
        let q = Query {
            filter: f.clone(),
            newest_first,
            by_id: false,
            limit: Some(1),
        };
        store.query(&q, &mut |_, r| {
            ends[i] = Some(r.time_us);
            false
        })?;
    }
    Ok(ends[0].zip(ends[1]))
}
