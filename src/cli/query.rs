//! Running a [`Plan`]: one query, or a follow.

use super::error::CliError;
use super::plan::Plan;
use crate::store::{self, Batch, Filter, Query, StoreError, StoreReader};
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
pub fn run(mut plan: Plan) -> Result<bool, CliError> {
    if plan.follow {
        return follow(plan).map(|()| true);
    }
    let mut store = store::open_reader(&plan.url)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let query = Query {
        filter: plan.filter.clone(),
        newest_first: plan.lines.is_some() || plan.reverse,
        by_id: false,
        limit: plan.sql_limit(),
    };
    let lines = plan.lines;
    match print_rows(store.as_mut(), &mut plan, &query, lines, &mut out)? {
        Printed::Rows(n) => Ok(n > 0),
        Printed::Closed => Ok(true),
    }
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
    let mut store = loop {
        match store::open_reader(&plan.url) {
            Ok(s) => break s,
            Err(StoreError::Missing(p)) => {
                if !said_waiting {
                    eprintln!(
                        "logq: waiting for {} to be created (start logrelayd)",
                        p.display()
                    );
                    said_waiting = true;
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
    if let Printed::Closed = print_rows(store.as_mut(), &mut plan, &initial, lines, &mut out)? {
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
