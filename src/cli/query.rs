//! Running a [`Plan`]: one query, or a follow.

use super::error::CliError;
use super::pager::Pager;
use super::plan::Plan;
use super::stats_render;
use crate::store::archive::ArchiveDir;
use crate::store::archive_query::WithArchives;
use crate::store::{self, Batch, Filter, Query, RecordRef, StatsQuery, StoreError, StoreReader};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What printing rows ended with.
enum Printed {
    Rows(u64),
    /// The reader of stdout went away (`| head`): stop quietly.
    Closed,
}

fn print_rows(
    store: &mut dyn StoreReader,
    plan: &mut Plan,
    query: &Query,
    want: Option<u64>,
    out: &mut impl Write,
) -> Result<Printed, CliError> {
    if want == Some(0) {
        return Ok(Printed::Rows(0));
    }
    let mut n = 0u64;
    let mut io_err: Option<io::Error> = None;
    // Newest N printed oldest first: gather them, then print in reverse.
    let mut gathered = (query.newest_first && !plan.reverse).then(|| (Batch::new(), Vec::new()));
    let regex = plan.regex.clone();
    store.query(query, &mut |id, r| {
        if regex.as_ref().is_some_and(|re| !re.is_match(r.message)) {
            return true;
        }
        n += 1;
        match gathered.as_mut() {
            Some((batch, ids)) => {
                batch.push_record(r);
                ids.push(id);
            }
            None => {
                if let Err(e) = plan.renderer.write(out, id, r) {
                    io_err = Some(e);
                    return false;
                }
            }
        }
        want.is_none_or(|w| n < w)
    })?;
    if let Some((batch, ids)) = gathered {
        let rows: Vec<_> = batch.iter().collect();
        for (id, r) in ids.iter().zip(rows.iter()).rev() {
            if let Err(e) = plan.renderer.write(out, *id, r) {
                io_err = Some(e);
                break;
            }
        }
    }
    if io_err.is_none() {
        io_err = out.flush().err();
    }
    match io_err {
        None => Ok(Printed::Rows(n)),
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Printed::Closed),
        Some(e) => Err(CliError::Runtime(format!("cannot write output: {e}"))),
    }
}

/// Runs the plan; `Ok(true)` when at least one row matched.
/// The store, and with `--archive` (or a configured archive dir) its archives behind it.
pub(super) fn open_reader(plan: &Plan) -> Result<Box<dyn store::StoreReader>, CliError> {
    let store = store::open_reader(&plan.url)?;
    Ok(match archives(plan)? {
        Some(dir) => Box::new(WithArchives::new(store, dir)),
        None => store,
    })
}

/// The archives `--archive` (or the configured archive dir) names, if any.
fn archives(plan: &Plan) -> Result<Option<ArchiveDir>, CliError> {
    Ok(plan.archive.as_deref().map(ArchiveDir::open).transpose()?)
}

pub fn run(mut plan: Plan) -> Result<bool, CliError> {
    if plan.follow {
        return follow(plan).map(|()| true);
    }
    let mut store = open_reader(&plan)?;
    if plan.list_fields {
        return list_fields(store.as_mut());
    }
    if plan.count {
        let n = count(store.as_mut(), &plan)?;
        println!("{n}");
        return Ok(n > 0);
    }
    if let Some(field) = plan.field {
        return field_values(store.as_mut(), &plan, field);
    }
    let mut pager = Pager::start(plan.pager, plan.pager_end);
    let sink: Box<dyn Write> = match pager.as_mut().and_then(Pager::input) {
        Some(input) => Box::new(input),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, sink);
    let query = Query {
        filter: plan.filter.clone(),
        newest_first: plan.lines.is_some() || plan.reverse,
        by_id: false,
        limit: plan.sql_limit(),
    };
    let lines = plan.lines;
    let printed = if plan.context != (0, 0) {
        with_context(store.as_mut(), &mut plan, &query, lines, &mut out)
    } else {
        print_rows(store.as_mut(), &mut plan, &query, lines, &mut out)
    };
    drop(out);
    if let Some(p) = pager {
        p.wait();
    }
    match printed? {
        Printed::Rows(n) => Ok(n > 0),
        Printed::Closed => Ok(true),
    }
}

/// `--count`: from the store's counts, or (with `-g`) by reading the candidate rows.
fn count(store: &mut dyn StoreReader, plan: &Plan) -> Result<u64, CliError> {
    let Some(re) = plan.regex.as_ref() else {
        return Ok(store.count(&plan.filter)?);
    };
    let mut n = 0u64;
    let q = Query {
        filter: plan.filter.clone(),
        ..Query::default()
    };
    store.query(&q, &mut |_, r| {
        n += u64::from(re.is_match(r.message));
        true
    })?;
    Ok(n)
}

/// `-F FIELD`: the field's values among the matching rows, most frequent first.
fn field_values(
    store: &mut dyn StoreReader,
    plan: &Plan,
    field: store::StatField,
) -> Result<bool, CliError> {
    if plan.regex.is_some() {
        return Err(CliError::usage(
            "-F does not take -g",
            Some("-w WORD narrows -F through the word index".into()),
        ));
    }
    let q = StatsQuery::everything(plan.filter.clone(), vec![field]);
    let mut rows = store.stats(&q)?;
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    let mut out = io::stdout().lock();
    let written = if matches!(
        plan.output,
        super::render::Output::Json | super::render::Output::JsonPretty
    ) {
        stats_render::json(&mut out, &rows, &[field], None)
    } else {
        stats_render::table(&mut out, &rows, &[field], None)
    };
    finish_write(written.and_then(|()| out.flush()))?;
    Ok(!rows.is_empty())
}

/// `-N`: the record's fields, then the `SDID.PARAM` names of the newest 10,000 rows.
fn list_fields(store: &mut dyn StoreReader) -> Result<bool, CliError> {
    let mut sd = std::collections::BTreeSet::new();
    let q = Query {
        newest_first: true,
        limit: Some(10_000),
        ..Query::default()
    };
    store.query(&q, &mut |_, r| {
        if let Some(text) = r.structured_data
            && let Ok(serde_json::Value::Object(ids)) = serde_json::from_str(text)
        {
            for (id, params) in ids {
                if let serde_json::Value::Object(params) = params {
                    for p in params.keys() {
                        sd.insert(format!("{id}.{p}"));
                    }
                }
            }
        }
        true
    })?;
    let mut out = io::stdout().lock();
    let mut text = String::new();
    for f in super::render::FIELDS {
        text.push_str(f);
        text.push('\n');
    }
    for f in &sd {
        text.push_str(f);
        text.push('\n');
    }
    finish_write(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
    Ok(true)
}

/// A closed pipe ends output quietly; other write errors are errors.
fn finish_write(r: io::Result<()>) -> Result<(), CliError> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::Runtime(format!("cannot write output: {e}")))
        }
        _ => Ok(()),
    }
}

/// The rows of one host and source around a match: `before` older and `after` newer
/// (by time, then id), the match between them.
fn context_rows(
    store: &mut dyn StoreReader,
    id: i64,
    r: &RecordRef<'_>,
    (before, after): (u64, u64),
) -> Result<Vec<(i64, Batch)>, CliError> {
    let base = Filter {
        sources: r.source.map(|s| vec![s.to_string()]).unwrap_or_default(),
        hosts: r.hostname.map(|h| vec![h.to_string()]).unwrap_or_default(),
        ..Filter::default()
    };
    let key = (r.time_us, id);
    let t = chrono::DateTime::from_timestamp_micros(r.time_us);
    let mut older = Vec::new();
    let mut newer = Vec::new();
    // Rows at the same instant sort by id: ask for a few more than needed.
    for (newest_first, want, into) in [(true, before, &mut older), (false, after, &mut newer)] {
        if want == 0 {
            continue;
        }
        let filter = Filter {
            until: if newest_first { t } else { None },
            since: if newest_first { None } else { t },
            ..base.clone()
        };
        let q = Query {
            filter,
            newest_first,
            by_id: false,
            limit: Some(want + 64),
        };
        store.query(&q, &mut |rid, row| {
            let k = (row.time_us, rid);
            if (newest_first && k < key) || (!newest_first && k > key) {
                let mut b = Batch::new();
                b.push_record(row);
                into.push((rid, b));
            }
            (into.len() as u64) < want
        })?;
    }
    older.reverse();
    let mut me = Batch::new();
    me.push_record(r);
    older.push((id, me));
    older.extend(newer);
    Ok(older)
}

/// Matches with `-A`/`-B`/`-C` context rows, groups apart separated by `--` in text
/// output (as grep does); a row shared by two groups is printed once.
fn with_context(
    store: &mut dyn StoreReader,
    plan: &mut Plan,
    query: &Query,
    want: Option<u64>,
    out: &mut impl Write,
) -> Result<Printed, CliError> {
    let mut matches: Vec<(i64, Batch)> = Vec::new();
    let regex = plan.regex.clone();
    let mut n = 0u64;
    store.query(query, &mut |id, r| {
        if regex.as_ref().is_some_and(|re| !re.is_match(r.message)) {
            return true;
        }
        n += 1;
        let mut b = Batch::new();
        b.push_record(r);
        matches.push((id, b));
        want.is_none_or(|w| n < w)
    })?;
    if query.newest_first && !plan.reverse {
        matches.reverse();
    }
    let text = !matches!(
        plan.output,
        super::render::Output::Json | super::render::Output::JsonPretty
    );
    let mut printed = std::collections::HashSet::new();
    let mut first = true;
    let mut result = Ok(());
    'groups: for (id, b) in &matches {
        let Some(r) = b.record_at(0) else { continue };
        let group = context_rows(store, *id, &r, plan.context)?;
        let overlaps = group.iter().any(|(gid, _)| printed.contains(gid));
        if text && !first && !overlaps {
            result = out.write_all(b"--\n");
        }
        for (gid, gb) in &group {
            if result.is_err() {
                break 'groups;
            }
            if !printed.insert(*gid) {
                continue;
            }
            if let Some(row) = gb.record_at(0) {
                result = plan.renderer.write(out, *gid, &row);
            }
        }
        first = false;
    }
    finish_write(result.and_then(|()| out.flush()))?;
    Ok(Printed::Rows(n))
}

/// Whether the reader of our stdout has gone (a closed pipe reports POLLERR).
fn stdout_closed() -> bool {
    let mut pfd = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

const POLL: Duration = Duration::from_millis(20);

fn follow(mut plan: Plan) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| CliError::Runtime(format!("cannot handle signals: {e}")))?;
    }
    let done = || stop.load(Ordering::Relaxed) || stdout_closed();
    let mut said_waiting = false;
    let mut said_half_made = false;
    let mut store = loop {
        match store::open_reader(&plan.url) {
            Ok(s) => break s,
            // A store not created yet, or one a starting relay is still upgrading.
            Err(StoreError::Missing(p) | StoreError::TooOld { path: p, .. }) => {
                if !said_waiting {
                    eprintln!(
                        "logq: waiting for {} to be created or upgraded (start logrelayd)",
                        p.display()
                    );
                    said_waiting = true;
                }
            }
            // A store that appeared while we waited can be caught half made (its schema
            // being created): say so once and keep waiting, as for a missing one.
            Err(e) if said_waiting => {
                if !said_half_made {
                    eprintln!("logq: {e} (still waiting)");
                    said_half_made = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if done() {
            return Ok(());
        }
        std::thread::sleep(POLL * 5);
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut cursor = store.last_id()?.unwrap_or(0);
    let initial = Query {
        filter: Filter {
            upto_id: Some(cursor),
            ..plan.filter.clone()
        },
        newest_first: true,
        by_id: false,
        limit: plan.sql_limit(),
    };
    let lines = plan.lines;
    // The first page as a query prints it, from the archives too (`-n` may reach back
    // past what retention left); new rows only ever come from the store.
    let (first_page, mut store) = match archives(&plan)? {
        Some(dir) => {
            let mut both = WithArchives::new(store, dir);
            let printed = print_rows(&mut both, &mut plan, &initial, lines, &mut out)?;
            (printed, both.into_live())
        }
        None => {
            let printed = print_rows(store.as_mut(), &mut plan, &initial, lines, &mut out)?;
            (printed, store)
        }
    };
    if let Printed::Closed = first_page {
        return Ok(());
    }
    // Only forward from here on, by row id: nothing is repeated or skipped, whatever
    // the event times say.
    plan.reverse = false;
    let mut warned = false;
    while !done() {
        match poll_new(store.as_mut(), &mut plan, &mut cursor, &mut out) {
            Ok(Some(Printed::Closed)) => return Ok(()),
            Ok(_) => warned = false,
            Err(e) if !warned => {
                eprintln!("{e} (retrying)");
                warned = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Prints the rows stored since `cursor` (when the store changed) and moves it.
fn poll_new(
    store: &mut dyn StoreReader,
    plan: &mut Plan,
    cursor: &mut i64,
    out: &mut impl Write,
) -> Result<Option<Printed>, CliError> {
    if !store.changed()? {
        return Ok(None);
    }
    let newest = store.last_id()?.unwrap_or(0);
    if newest <= *cursor {
        return Ok(None);
    }
    let query = Query {
        filter: Filter {
            after_id: Some(*cursor),
            upto_id: Some(newest),
            ..plan.filter.clone()
        },
        newest_first: false,
        by_id: true,
        limit: None,
    };
    let printed = print_rows(store, plan, &query, None, out)?;
    *cursor = newest;
    Ok(Some(printed))
}
