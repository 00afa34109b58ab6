//! Reading the SQLite store. Filters on time, severity, facility, source or host first
//! pick the blocks whose summaries can hold a match ([`super::blocks`]), then scan only
//! those blocks' id ranges. Time order across blocks is a merge: each block is split into
//! its time ranges, the units are read in order of their earliest (or latest) time, and a
//! row is passed on once no unread unit can hold one that sorts before it, so `-n 100`
//! reads a handful of units however big the store, even when every block also holds a
//! few rows from years away. Only a query in id order without such filters reads the
//! table by its rowid directly (there is no per-row time index).

use super::blocks::{BLOCK_SHIFT, TimeRanges, decode_counts, decode_names};
use super::sql::{name_match, row_clause};
use super::tokens::{ALL_SEGMENTS, Probe, SEGMENT_SHIFT, SEGMENTS};
use crate::store::columns::{self, Dict, Stored, Value};
use crate::store::sql::{Param, Sql};
use crate::store::{Batch, Filter, Query, RecordRef, StoreError, Visit};
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, Statement};
use std::collections::HashSet;

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

type Setter = for<'a> fn(&mut RecordRef<'a>, Value<'a>);

/// Where a read column's value is in a SELECT row.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// As the column's value.
    Direct(usize),
    /// As a dictionary id, whose name [`RowReader`] looks up.
    Name(Dict, usize),
    /// As `peer_id` (here) and `peer_port` (the next column).
    Peer(usize),
}

/// Names of ids below this are kept in a vector indexed by id (the dictionaries' ids
/// are small and dense); the few others in a map of at most this many entries.
const DENSE_IDS: usize = 1 << 16;

/// One dictionary's names as met so far: `None` not looked up yet, `Some(None)` an id
/// with no name.
#[derive(Default)]
struct NameCache {
    dense: Vec<Option<Option<Box<str>>>>,
    sparse: std::collections::HashMap<i64, Option<Box<str>>>,
}

impl NameCache {
    fn get(&self, id: i64) -> Option<&Option<Box<str>>> {
        match usize::try_from(id) {
            Ok(i) if i < DENSE_IDS => self.dense.get(i)?.as_ref(),
            _ => self.sparse.get(&id),
        }
    }

    fn insert(&mut self, id: i64, name: Option<Box<str>>) {
        match usize::try_from(id) {
            Ok(i) if i < DENSE_IDS => {
                if self.dense.len() <= i {
                    self.dense.resize(i + 1, None);
                }
                self.dense[i] = Some(name);
            }
            _ => {
                if self.sparse.len() >= DENSE_IDS {
                    self.sparse.clear();
                }
                self.sparse.insert(id, name);
            }
        }
    }
}

/// Turns SELECT rows into records. Rows are read with their dictionary ids, not the
/// names: the names are looked up here, once per id, from the small dictionary
/// tables; three joins per row in SQL cost a full scan (`-g`) ~18 % more CPU, and so did
/// hash maps; ids are small and dense, so a vector indexed by id holds them.
pub(super) struct RowReader<'c> {
    conn: &'c Connection,
    /// `id, …`: the SELECT list.
    pub select: String,
    columns: Vec<(Setter, Read)>,
    names: [NameCache; 3],
    /// The current row's peer text, if it has one.
    peer: Option<String>,
}

impl<'c> RowReader<'c> {
    pub fn new(conn: &'c Connection) -> RowReader<'c> {
        let mut select = vec!["id"];
        let mut columns = Vec::new();
        for (c, set) in columns::readable(|c| c.sqlite.is_some_and(|s| s.read)) {
            let Some(s) = c.sqlite else { continue };
            let at = select.len();
            let read = match s.stored {
                Stored::NameId { dict, id_column } => {
                    select.push(id_column);
                    Read::Name(dict, at)
                }
                Stored::Peer => {
                    select.extend(["peer_id", "peer_port"]);
                    Read::Peer(at)
                }
                Stored::AsIs | Stored::Code(_) | Stored::Computed => {
                    select.push(s.name);
                    Read::Direct(at)
                }
            };
            columns.push((set, read));
        }
        RowReader {
            conn,
            select: select.join(", "),
            columns,
            names: Default::default(),
            peer: None,
        }
    }

    /// Makes sure the name of `id` is known.
    fn load(&mut self, dict: Dict, id: i64) -> rusqlite::Result<()> {
        if self.names[dict as usize].get(id).is_some() {
            return Ok(());
        }
        let name: Option<String> = self
            .conn
            .prepare_cached(&format!("SELECT name FROM {} WHERE id = ?1", dict.table()))?
            .query_row([id], |r| r.get(0))
            .optional()?;
        self.names[dict as usize].insert(id, name.map(String::into_boxed_str));
        Ok(())
    }

    fn name(&self, dict: Dict, id: Option<i64>) -> Option<&str> {
        self.names[dict as usize].get(id?)?.as_deref()
    }

    /// A SELECT row as a record (borrowing the row's text and the names).
    pub fn record<'r>(&'r mut self, row: &'r Row<'_>) -> rusqlite::Result<(i64, RecordRef<'r>)> {
        for i in 0..self.columns.len() {
            match self.columns[i].1 {
                Read::Direct(_) => {}
                Read::Name(dict, at) => {
                    if let Some(id) = row.get::<_, Option<i64>>(at)? {
                        self.load(dict, id)?;
                    }
                }
                Read::Peer(at) => {
                    let id = row.get::<_, Option<i64>>(at)?;
                    if let Some(id) = id {
                        self.load(Dict::Peers, id)?;
                    }
                    let port = row.get::<_, Option<i64>>(at + 1)?;
                    let mut text = self.peer.take().unwrap_or_default();
                    text.clear();
                    self.peer = self.name(Dict::Peers, id).map(|address| {
                        text.push_str(address);
                        if let Some(port) = port {
                            use std::fmt::Write;
                            let _ = write!(text, ":{port}");
                        }
                        text
                    });
                }
            }
        }
        let mut record = columns::EMPTY;
        for &(set, read) in &self.columns {
            let v = match read {
                Read::Direct(at) => value(row, at)?,
                Read::Name(dict, at) => self
                    .name(dict, row.get::<_, Option<i64>>(at)?)
                    .map_or(Value::Null, Value::Text),
                Read::Peer(_) => self.peer.as_deref().map_or(Value::Null, Value::Text),
            };
            set(&mut record, v);
        }
        Ok((row.get(0)?, record))
    }
}

pub fn run(conn: &Connection, q: &Query, visit: &mut Visit<'_>) -> Result<(), StoreError> {
    // One read transaction: the summaries, names and rows all come from one snapshot,
    // however many statements the query takes.
    let _snapshot = conn.unchecked_transaction()?;
    let Some(prune) = Prune::new(conn, &q.filter)? else {
        return Ok(()); // the -s/-H patterns name nothing in the store
    };
    // Sources and hosts are already resolved to dictionary ids: compare those (ids we
    // made, so literal) instead of a per-row subquery, which measured 6× slower.
    let sql = row_sql(&prune, &q.filter);
    let mut reader = RowReader::new(conn);
    let columns = reader.select.clone();
    let dir = if q.newest_first { "DESC" } else { "ASC" };
    let order = if q.by_id {
        format!("id {dir}")
    } else {
        format!("time_us {dir}, id {dir}")
    };
    if q.by_id && !prune.is_selective() && !prune.is_time_bounded() {
        let limit = q.limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let text = format!(
            "SELECT {columns} FROM Logs {} ORDER BY {order}{limit}",
            sql.clause
        );
        let mut stmt = conn.prepare_cached(&text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(row) = rows.next()? {
            let (id, record) = reader.record(row)?;
            if !visit(id, &record) {
                break;
            }
        }
        return Ok(());
    }
    // Within a block: its rowid range and a unit's time range.
    let sorted = format!(
        "SELECT {columns} FROM {} {} ORDER BY {order}",
        super::LOGS_NOT_INDEXED,
        block_clause(&sql)
    );
    let left = q.limit.unwrap_or(u64::MAX);
    if q.by_id {
        let blocks = prune.candidates(conn)?;
        let mut stmt = conn.prepare_cached(&sorted)?;
        return in_id_order(
            &mut stmt,
            &mut reader,
            &sql.params,
            &blocks,
            q.newest_first,
            left,
            visit,
        );
    }
    // A block whose rows came in time order is read by id, without SQLite sorting its
    // rows (what the time index spared such reads before): known from its summary's
    // flag, or, for a filter that keeps most rows, checked by reading the unit's times
    // first. Each statement is prepared when first needed (prepares were ~13 % of
    // `-n 100`'s CPU in a profile of schema 7's reader, which prepared all three).
    let mut scans = Scans {
        conn,
        sorted_sql: sorted,
        by_id_sql: format!(
            "SELECT {columns} FROM {} {} ORDER BY id {dir}",
            super::LOGS_NOT_INDEXED,
            block_clause(&sql)
        ),
        check_order: !prune.is_selective(),
        sorted: None,
        by_id: None,
        order: None,
    };
    if q.newest_first && !prune.has_words() {
        // Summaries read newest first, as the merge reaches them: `-n 100` reads a few.
        let mut units = super::newest_first::NewestFirst::new(conn, &prune);
        return in_time_order(
            &mut scans,
            &mut reader,
            &sql.params,
            &mut units,
            true,
            left,
            visit,
        );
    }
    let mut units = time_units(prune.candidates(conn)?, prune.since, prune.until);
    if q.newest_first {
        units.sort_by_key(|b| std::cmp::Reverse(b.max_time_us));
    } else {
        units.sort_by_key(|b| b.min_time_us);
    }
    let mut units = Sorted(units.into_iter().peekable());
    in_time_order(
        &mut scans,
        &mut reader,
        &sql.params,
        &mut units,
        q.newest_first,
        left,
        visit,
    )
}

/// The statements a time-ordered read uses, each prepared when first needed: the
/// block's rows sorted by SQLite, the rows by id (for units whose rows came in time
/// order), and, when the filter keeps most rows (`check_order`), the query that says
/// whether a unit not flagged in order came in order anyway.
struct Scans<'c> {
    conn: &'c Connection,
    sorted_sql: String,
    by_id_sql: String,
    check_order: bool,
    sorted: Option<CachedStatement<'c>>,
    by_id: Option<CachedStatement<'c>>,
    order: Option<CachedStatement<'c>>,
}

const ORDER_SQL: &str = "SELECT time_us FROM LogRows NOT INDEXED \
    WHERE id BETWEEN ?1 AND ?2 AND time_us BETWEEN ?3 AND ?4 ORDER BY id";

fn prepared<'s, 'c>(
    slot: &'s mut Option<CachedStatement<'c>>,
    conn: &'c Connection,
    sql: &str,
) -> rusqlite::Result<&'s mut Statement<'c>> {
    let stmt = match slot.take() {
        Some(s) => s,
        None => conn.prepare_cached(sql)?,
    };
    Ok(slot.insert(stmt))
}

impl<'c> Scans<'c> {
    /// The statement that reads unit `b`'s rows in the query's order.
    fn for_unit(&mut self, b: &Block, alone: bool) -> rusqlite::Result<&mut Statement<'c>> {
        // Alone, a unit not flagged in order may be checked (the check costs a read of
        // its times; a unit merged with others is sorted by SQLite as it is).
        let in_order = b.ranges.rising
            || (alone && self.check_order && {
                let order = prepared(&mut self.order, self.conn, ORDER_SQL)?;
                ids_in_time_order(order, b)?
            });
        if in_order {
            prepared(&mut self.by_id, self.conn, &self.by_id_sql)
        } else {
            prepared(&mut self.sorted, self.conn, &self.sorted_sql)
        }
    }
}

/// The units of a time-ordered merge not read yet, in the order the merge takes them:
/// latest `max_time_us` first when newest first, else earliest `min_time_us` first.
pub(super) trait Units {
    fn peek(&mut self) -> Result<Option<&Block>, StoreError>;
    /// The unit [`peek`](Self::peek) returned.
    fn next(&mut self) -> Option<Block>;
}

/// Units known up front, sorted.
struct Sorted(std::iter::Peekable<std::vec::IntoIter<Block>>);

impl Units for Sorted {
    fn peek(&mut self) -> Result<Option<&Block>, StoreError> {
        Ok(self.0.peek())
    }

    fn next(&mut self) -> Option<Block> {
        self.0.next()
    }
}

/// Whether the unit's rows, in id order, have times that never decrease: then id order
/// is time order (ties by id too), and SQLite need not sort them. Reads only `time_us`.
fn ids_in_time_order(order: &mut Statement<'_>, b: &Block) -> rusqlite::Result<bool> {
    let mut rows = order.query(rusqlite::params_from_iter(block_params(b)))?;
    let mut last = i64::MIN;
    while let Some(r) = rows.next()? {
        let t: i64 = r.get(0)?;
        if t < last {
            return Ok(false);
        }
        last = t;
    }
    Ok(true)
}

/// The row clause of a filter whose names `prune` has resolved to dictionary ids: those
/// ids are compared (ids we made, so literal) instead of a per-row subquery, which
/// measured 6× slower.
pub(super) fn row_sql(prune: &Prune, filter: &Filter) -> Sql {
    let mut sql = row_clause(filter);
    for (column, ids) in [("source_id", &prune.sources), ("host_id", &prune.hosts)] {
        if let Some(ids) = ids {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            sql.and(&format!("{column} IN ({})", list.join(", ")));
        }
    }
    sql
}

/// The row clause with a block's id range and a time range (parameters `?n+1` to `?n+4`
/// after the clause's `n`) first: the rowid range is where SQLite seeks, and the time
/// bounds, cheap, come before any pattern or word test.
pub(super) fn block_clause(sql: &Sql) -> String {
    let n = sql.params.len();
    let bounds = format!(
        "id BETWEEN ?{} AND ?{} AND time_us BETWEEN ?{} AND ?{}",
        n + 1,
        n + 2,
        n + 3,
        n + 4
    );
    match sql.clause.strip_prefix("WHERE ") {
        Some(rest) => format!("WHERE {bounds} AND {rest}"),
        None => format!("WHERE {bounds}"),
    }
}

/// The parameters of [`block_clause`]'s bounds for a block.
pub(super) fn block_params(b: &Block) -> [Param; 4] {
    [
        Param::Int(b.first_id),
        Param::Int(b.last_id),
        Param::Int(b.within.0),
        Param::Int(b.within.1),
    ]
}

/// A candidate block: its id range (cut to the cursor), time bounds and row counts; or,
/// in a time-ordered read, one of its time ranges (a unit of the merge).
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    pub first_id: i64,
    pub last_id: i64,
    /// Where its rows' times lie (the envelope, or a unit's range cut to the filter).
    pub min_time_us: i64,
    pub max_time_us: i64,
    /// The block's time ranges, from its summary.
    pub ranges: TimeRanges,
    /// The time bounds its rows are read with: everything for a whole block, the range
    /// for a unit.
    pub within: (i64, i64),
    /// Rows per severity in the whole block, if known.
    pub counts: Option<[u16; 8]>,
}

/// The blocks as units of a time-ordered merge: one per time range that meets
/// `since..=until`. Ranges are disjoint, so each row is in exactly one unit; a block
/// whose rows lie far apart in time is read once per range the merge reaches, and only
/// the rows of that range.
fn time_units(blocks: Vec<Block>, since: i64, until: i64) -> Vec<Block> {
    let mut units = Vec::with_capacity(blocks.len());
    for b in blocks {
        block_units(b, since, until, &mut units);
    }
    units
}

/// One block's units (see [`time_units`]); each unit's `max_time_us` is at most the
/// block's.
pub(super) fn block_units(b: Block, since: i64, until: i64, units: &mut impl Extend<Block>) {
    if b.ranges.as_slice().len() <= 1 {
        units.extend([b]);
        return;
    }
    units.extend(
        b.ranges
            .as_slice()
            .iter()
            .filter(|&&(from, to)| from <= until && since <= to)
            .map(|&(from, to)| Block {
                min_time_us: from.max(since),
                max_time_us: to.min(until),
                within: (from, to),
                counts: None,
                ..b
            }),
    );
}

/// What the summaries can rule out for a filter.
pub(super) struct Prune {
    pub severities: u8,
    facilities: u32,
    sources: Option<HashSet<i64>>,
    hosts: Option<HashSet<i64>>,
    pub since: i64,
    pub until: i64,
    after_id: i64,
    upto_id: i64,
    /// The tokens of `-w` words, looked up in the blocks' token filters.
    words: Option<Probe>,
}

const ANY_FACILITY: u32 = (1 << 25) - 1;

impl Prune {
    /// `None` when the filter's source or host patterns match no name at all.
    pub fn new(conn: &Connection, f: &Filter) -> Result<Option<Prune>, StoreError> {
        let severities = match f.severity_codes() {
            Some((lo, hi)) => (lo..=hi).fold(0u8, |m, c| m | 1 << c),
            None => 0xff,
        };
        let facilities = if f.facilities.is_empty() {
            ANY_FACILITY
        } else {
            f.facilities.iter().fold(0, |m, f| m | 1 << f.code())
        };
        let sources = ids(conn, "Sources", &f.sources)?;
        let hosts = ids(conn, "Hosts", &f.hosts)?;
        if sources.as_ref().is_some_and(HashSet::is_empty)
            || hosts.as_ref().is_some_and(HashSet::is_empty)
        {
            return Ok(None);
        }
        Ok(Some(Prune {
            severities,
            facilities,
            sources,
            hosts,
            since: f.since.map_or(i64::MIN, |t| t.timestamp_micros()),
            until: f.until.map_or(i64::MAX, |t| t.timestamp_micros()),
            after_id: f.after_id.unwrap_or(0),
            upto_id: f.upto_id.unwrap_or(i64::MAX),
            words: Probe::new(&f.words),
        }))
    }

    fn is_time_bounded(&self) -> bool {
        self.since != i64::MIN || self.until != i64::MAX
    }

    fn is_selective(&self) -> bool {
        self.severities != 0xff
            || self.facilities != ANY_FACILITY
            || self.sources.is_some()
            || self.hosts.is_some()
            || self.words.is_some()
    }

    fn admits(
        &self,
        severities: u8,
        facilities: u32,
        sources: Option<&[u8]>,
        hosts: Option<&[u8]>,
    ) -> bool {
        severities & self.severities != 0
            && facilities & self.facilities != 0
            && names_admit(sources, self.sources.as_ref(), self.severities)
            && names_admit(hosts, self.hosts.as_ref(), self.severities)
    }

    /// The blocks that can hold a match, in id order.
    pub fn candidates(&self, conn: &Connection) -> Result<Vec<Block>, StoreError> {
        // NOT INDEXED: in block order by the rowid, never through the summaries' time
        // index (which serves only newest-first reads, [`super::newest_first`]).
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SUMMARY} FROM LogBlocks NOT INDEXED WHERE block BETWEEN ?1 AND ?2 \
             AND max_time_us >= ?3 AND min_time_us <= ?4 ORDER BY block"
        ))?;
        let (first_block, last_block) = self.block_span();
        let mut rows = stmt.query((first_block, last_block, self.since, self.until))?;
        let mut blocks = Vec::new();
        while let Some(r) = rows.next()? {
            blocks.extend(self.block(r)?);
        }
        if let Some(probe) = &self.words {
            let ids: Vec<i64> = blocks.iter().map(|b| b.first_id >> BLOCK_SHIFT).collect();
            let admitted = probe.admitted(conn, &ids)?;
            return Ok(segment_ranges(&blocks, &admitted));
        }
        Ok(blocks)
    }

    /// The first and last block the id bounds allow.
    pub(super) fn block_span(&self) -> (i64, i64) {
        (
            self.after_id.saturating_add(1).max(0) >> BLOCK_SHIFT,
            self.upto_id >> BLOCK_SHIFT,
        )
    }

    /// Whether token filters must be read for the candidates (`-w`).
    pub(super) fn has_words(&self) -> bool {
        self.words.is_some()
    }

    /// A summary row (the columns of [`SUMMARY`]) as a candidate block, unless it
    /// cannot hold a match.
    pub(super) fn block(&self, r: &Row<'_>) -> rusqlite::Result<Option<Block>> {
        let blob = |i| -> rusqlite::Result<Option<&[u8]>> {
            r.get_ref(i)?.as_blob_or_null().map_err(Into::into)
        };
        let severities = r.get::<_, i64>(3)? as u8;
        let facilities = r.get::<_, i64>(4)? as u32;
        if !self.admits(severities, facilities, blob(5)?, blob(6)?) {
            return Ok(None);
        }
        let (min_time_us, max_time_us) = (r.get(1)?, r.get(2)?);
        let ranges = TimeRanges::decode(r.get_ref(8)?)
            .unwrap_or_else(|| TimeRanges::envelope(min_time_us, max_time_us));
        if !ranges.is_empty() && !ranges.meets(self.since, self.until) {
            return Ok(None);
        }
        let block: i64 = r.get(0)?;
        Ok(Some(Block {
            first_id: (block << BLOCK_SHIFT).max(self.after_id.saturating_add(1)),
            last_id: ((block << BLOCK_SHIFT) | ((1 << BLOCK_SHIFT) - 1)).min(self.upto_id),
            min_time_us,
            max_time_us,
            ranges,
            within: (i64::MIN, i64::MAX),
            counts: decode_counts(r.get_ref(7)?),
        }))
    }
}

/// The summary columns [`Prune::block`] reads.
pub(super) const SUMMARY: &str = "block, min_time_us, max_time_us, severities, facilities, \
    sources, hosts, counts, time_ranges";

/// The id ranges of the segments the token filters admitted: a block whose every
/// segment may match stays whole; otherwise each run of admitted segments becomes a
/// range of its own (with the block's time bounds, and no counts: they are the whole
/// block's). `admitted` is in block order, a subset of `blocks`.
fn segment_ranges(blocks: &[Block], admitted: &[(i64, u16)]) -> Vec<Block> {
    let mut out = Vec::with_capacity(admitted.len());
    let mut keep = admitted.iter().peekable();
    for b in blocks {
        let block = b.first_id >> BLOCK_SHIFT;
        let Some(&(_, mask)) = keep.next_if(|(k, _)| *k == block) else {
            continue;
        };
        if mask == ALL_SEGMENTS {
            out.push(*b);
            continue;
        }
        let mut seg = 0;
        while seg < SEGMENTS {
            if mask & (1 << seg) == 0 {
                seg += 1;
                continue;
            }
            let start = seg;
            while seg < SEGMENTS && mask & (1 << seg) != 0 {
                seg += 1;
            }
            let first = (block << BLOCK_SHIFT) + ((start as i64) << SEGMENT_SHIFT);
            let last = (block << BLOCK_SHIFT) + ((seg as i64) << SEGMENT_SHIFT) - 1;
            let (first, last) = (first.max(b.first_id), last.min(b.last_id));
            if first <= last {
                out.push(Block {
                    first_id: first,
                    last_id: last,
                    counts: None,
                    ..*b
                });
            }
        }
    }
    out
}

/// Whether a block's `(name id, severities)` pairs include a wanted name at a wanted
/// severity. An unknown or damaged summary admits everything.
fn names_admit(blob: Option<&[u8]>, wanted: Option<&HashSet<i64>>, severities: u8) -> bool {
    let (Some(wanted), Some(blob)) = (wanted, blob) else {
        return true;
    };
    decode_names(blob).is_none_or(|pairs| {
        pairs
            .iter()
            .any(|(id, bits)| bits & severities != 0 && wanted.contains(id))
    })
}

/// Dictionary ids whose names match the patterns; `None` when there are no patterns.
fn ids(
    conn: &Connection,
    table: &str,
    patterns: &[String],
) -> Result<Option<HashSet<i64>>, StoreError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let Sql { clause, params } = name_match(patterns);
    let mut stmt = conn.prepare_cached(&format!("SELECT id FROM {table} WHERE {clause}"))?;
    let ids = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<HashSet<i64>>>()?;
    Ok(Some(ids))
}

/// One block's matching rows, in the query's order, and how many were passed on.
struct Cursor {
    rows: Batch,
    /// `(time_us, id)` of each row.
    keys: Vec<(i64, i64)>,
    next: usize,
}

impl Cursor {
    fn head(&self) -> Option<(i64, i64)> {
        self.keys.get(self.next).copied()
    }
}

fn scan<'s>(
    stmt: &'s mut Statement<'_>,
    params: &[Param],
    b: &Block,
) -> rusqlite::Result<rusqlite::Rows<'s>> {
    let range = block_params(b);
    stmt.query(rusqlite::params_from_iter(params.iter().chain(&range)))
}

fn read_block(
    stmt: &mut Statement<'_>,
    reader: &mut RowReader<'_>,
    params: &[Param],
    b: &Block,
) -> Result<Cursor, StoreError> {
    let mut rows = scan(stmt, params, b)?;
    let mut c = Cursor {
        rows: Batch::new(),
        keys: Vec::new(),
        next: 0,
    };
    while let Some(row) = rows.next()? {
        let (id, r) = reader.record(row)?;
        c.keys.push((r.time_us, id));
        c.rows.push_record(&r);
    }
    Ok(c)
}

/// Passes a block's rows straight from SQLite to `visit`; `false` once the caller has
/// had enough (the limit, or `visit` said stop).
fn stream_block(
    stmt: &mut Statement<'_>,
    reader: &mut RowReader<'_>,
    params: &[Param],
    b: &Block,
    left: &mut u64,
    visit: &mut Visit<'_>,
) -> Result<bool, StoreError> {
    let mut rows = scan(stmt, params, b)?;
    while let Some(row) = rows.next()? {
        if *left == 0 {
            return Ok(false);
        }
        let (id, r) = reader.record(row)?;
        if !visit(id, &r) {
            return Ok(false);
        }
        *left -= 1;
    }
    Ok(*left > 0)
}

/// Streams the blocks' rows block after block (ids never overlap between blocks).
fn in_id_order(
    stmt: &mut Statement<'_>,
    reader: &mut RowReader<'_>,
    params: &[Param],
    blocks: &[Block],
    newest_first: bool,
    mut left: u64,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let mut order: Vec<&Block> = blocks.iter().collect();
    if newest_first {
        order.reverse();
    }
    for b in order {
        if !stream_block(stmt, reader, params, b, &mut left, visit)? {
            break;
        }
    }
    Ok(())
}

/// Merges the units' rows by `(time, id)`. Times within and across blocks overlap
/// (senders' clocks differ, several connections interleave), so a unit is read once
/// it may hold a row that sorts no later than the best row read so far; only those
/// few units are held in memory, and a unit that overlaps none is streamed.
fn in_time_order(
    scans: &mut Scans<'_>,
    reader: &mut RowReader<'_>,
    params: &[Param],
    unread: &mut dyn Units,
    newest_first: bool,
    mut left: u64,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let before = |a: (i64, i64), b: (i64, i64)| if newest_first { a > b } else { a < b };
    let reaches = |b: &Block, t: i64| {
        if newest_first {
            b.max_time_us >= t
        } else {
            b.min_time_us <= t
        }
    };
    let mut open: Vec<Cursor> = Vec::new();
    while left > 0 {
        let best = open
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.head()?)))
            .reduce(|x, y| if before(y.1, x.1) { y } else { x });
        let take = unread
            .peek()?
            .is_some_and(|b| best.is_none_or(|(_, (t, _))| reaches(b, t)));
        if let Some(b) = take.then(|| unread.next()).flatten() {
            // The usual case, times rising with ids: no other block overlaps this one's
            // time range, so its rows go out as SQLite sorts them, without a copy.
            let alone = open.is_empty()
                && unread.peek()?.is_none_or(|n| {
                    if newest_first {
                        n.max_time_us < b.min_time_us
                    } else {
                        n.min_time_us > b.max_time_us
                    }
                });
            let stmt = scans.for_unit(&b, alone)?;
            if alone {
                if !stream_block(stmt, reader, params, &b, &mut left, visit)? {
                    break;
                }
                continue;
            }
            let c = read_block(stmt, reader, params, &b)?;
            if c.head().is_some() {
                open.push(c);
            }
            continue;
        }
        let Some((i, _)) = best else {
            break;
        };
        let c = &mut open[i];
        if let Some(r) = c.rows.record_at(c.next)
            && !visit(c.keys[c.next].1, &r)
        {
            break;
        }
        c.next += 1;
        left -= 1;
        if c.head().is_none() {
            open.swap_remove(i);
        }
    }
    Ok(())
}

fn value<'a>(row: &'a Row<'_>, i: usize) -> rusqlite::Result<Value<'a>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).unwrap_or("\u{FFFD}")),
        other => {
            return Err(rusqlite::Error::InvalidColumnType(
                i,
                "text".into(),
                other.data_type(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_segments_become_id_ranges() {
        let block = |b: i64, first: i64, last: i64| Block {
            first_id: first,
            last_id: last,
            min_time_us: b,
            max_time_us: b + 1,
            ranges: TimeRanges::envelope(b, b + 1),
            within: (i64::MIN, i64::MAX),
            counts: Some([1; 8]),
        };
        // Block 2 whole, block 3 cut by a cursor at id 3·4096 + 300, block 5 unknown.
        let blocks = [
            block(2, 8192, 12287),
            block(3, 12588, 16383),
            block(4, 16384, 20479),
            block(5, 20480, 24575),
        ];
        let admitted = [
            (2, 0b1000_0000_0000_0110),
            (3, 0b0000_0000_0000_0011),
            (5, ALL_SEGMENTS),
        ];
        let got: Vec<(i64, i64, bool)> = segment_ranges(&blocks, &admitted)
            .iter()
            .map(|b| (b.first_id, b.last_id, b.counts.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                (8192 + 256, 8192 + 767, false),
                (8192 + 15 * 256, 12287, false),
                (12588, 12288 + 511, false),
                (20480, 24575, true),
            ]
        );
    }
}
