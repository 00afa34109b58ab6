//! Turning the flags into a [`Filter`], and running a query or a follow.

use super::args::QueryArgs;
use super::error::{CliError, did_you_mean};
use super::render::Renderer;
use super::timespec;
use crate::message::{Facility, Level};
use crate::relay::config::Layer;
use crate::store::{
    self, Batch, Field, Filter, Match, OpenMode, Query, Store, StoreError, StoreUrl,
};
use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Everything a run needs, checked before anything is printed.
pub struct Plan {
    pub url: StoreUrl,
    pub filter: Filter,
    pub regex: Option<Regex>,
    pub lines: Option<u64>,
    pub reverse: bool,
    pub follow: bool,
    pub fail_if_empty: bool,
    pub renderer: Renderer,
}

const LEVEL_HINT: &str = "levels: emerg alert crit err warning notice info debug (or 0-7, aliases \
                          like error, warn, critical), a range FROM..TO";

fn level(s: &str) -> Result<Level, CliError> {
    s.parse::<Level>().map_err(|_| {
        let hint = match did_you_mean(s, &Level::ACCEPTED) {
            Some(m) => format!("did you mean '{m}'? {LEVEL_HINT}"),
            None => LEVEL_HINT.to_string(),
        };
        CliError::usage(format!("unknown level '{s}'"), Some(hint))
    })
}

/// `err` = err and more severe; `FROM..TO` inclusive, in either order.
pub fn priority(s: &str) -> Result<(Level, Level), CliError> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (level(a)?, level(b)?);
            Ok((a.min(b), a.max(b)))
        }
        None => Ok((Level::Emerg, level(s)?)),
    }
}

fn field_match(m: &str) -> Result<Match, CliError> {
    let hint = || {
        Some(format!(
            "matches are FIELD=VALUE or FIELD!=VALUE with FIELD one of {}, or SDID.PARAM=VALUE",
            Field::NAMES.join(", ")
        ))
    };
    let Some(eq) = m.find('=') else {
        return Err(CliError::usage(format!("'{m}' is not a match"), hint()));
    };
    let (mut key, value) = (&m[..eq], &m[eq + 1..]);
    let negate = key.ends_with('!');
    if negate {
        key = &key[..key.len() - 1];
    }
    if let Some(dot) = key.rfind('.') {
        let (id, param) = (&key[..dot], &key[dot + 1..]);
        if id.is_empty() || param.is_empty() {
            return Err(CliError::usage(
                format!("'{key}' is not SDID.PARAM"),
                hint(),
            ));
        }
        return Ok(Match::Sd {
            id: id.to_string(),
            param: param.to_string(),
            value: value.to_string(),
            negate,
        });
    }
    let Some(field) = Field::from_name(key) else {
        let hint = did_you_mean(key, &Field::NAMES)
            .map(|f| format!("did you mean '{f}'? {}", hint().unwrap_or_default()))
            .or_else(hint);
        return Err(CliError::usage(format!("unknown field '{key}'"), hint));
    };
    if field == Field::Facility {
        facility(value)?;
    }
    Ok(Match::Field {
        field,
        value: value.to_string(),
        negate,
    })
}

fn facility(s: &str) -> Result<Facility, CliError> {
    s.parse::<Facility>().map_err(|e| {
        let hint = did_you_mean(s, &Facility::NAMES).map(|f| format!("did you mean '{f}'?"));
        CliError::usage(e.to_string(), hint)
    })
}

fn time(s: &str, now: DateTime<Utc>, utc: bool) -> Result<DateTime<Utc>, CliError> {
    timespec::parse(s, now, utc).map_err(|e| CliError::usage(e, None))
}

/// Smart case: a pattern with no upper-case letter matches either case.
fn regex(pattern: &str) -> Result<Regex, CliError> {
    RegexBuilder::new(pattern)
        .case_insensitive(!pattern.chars().any(char::is_uppercase))
        .build()
        .map_err(|e| CliError::usage(format!("bad regex: {e}"), None))
}

/// `--db`, else `LOGRELAY_DB`, else the config file's `db`, else the default file.
pub fn store_url(db: Option<&str>, config: Option<&std::path::Path>) -> Result<StoreUrl, CliError> {
    let from_env = std::env::var("LOGRELAY_DB").ok().filter(|s| !s.is_empty());
    let from_file = match config {
        Some(p) => Layer::load(p).map_err(|e| CliError::usage(e, None))?.db,
        None => None,
    };
    match db.map(str::to_string).or(from_env).or(from_file) {
        Some(u) => StoreUrl::parse(&u).map_err(|e| {
            CliError::usage(
                e.to_string(),
                Some("--db sqlite:PATH or mssql://user:pass@host/db".into()),
            )
        }),
        None => Ok(StoreUrl::default_sqlite()),
    }
}

pub fn plan(a: &QueryArgs, now: DateTime<Utc>) -> Result<Plan, CliError> {
    let mut filter = Filter {
        levels: a.priority.as_deref().map(priority).transpose()?,
        since: a
            .since
            .as_deref()
            .map(|s| time(s, now, a.utc))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| time(s, now, a.utc))
            .transpose()?,
        sources: a.sources.clone(),
        hosts: a.hosts.clone(),
        ..Filter::default()
    };
    for f in a.facility.iter().filter(|f| !f.is_empty()) {
        filter.facilities.push(facility(f)?);
    }
    for m in &a.matches {
        filter.matches.push(field_match(m)?);
    }
    let lines = match a.lines.as_deref() {
        None if a.follow => Some(10),
        None | Some("all") => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            CliError::usage(
                format!("bad line count '{n}'"),
                Some("-n takes a number or 'all'".into()),
            )
        })?),
    };
    let color = a.color.enabled(io::stdout().is_terminal());
    Ok(Plan {
        url: store_url(a.db.as_deref(), a.config.as_deref())?,
        filter,
        regex: a.grep.as_deref().map(regex).transpose()?,
        lines,
        reverse: a.reverse,
        follow: a.follow,
        fail_if_empty: a.fail_if_empty || a.grep.is_some(),
        renderer: Renderer::new(a.output, color, a.utc),
    })
}

impl Plan {
    /// The row limit SQL can apply: none when a regex filters rows after SQL.
    fn sql_limit(&self) -> Option<u64> {
        if self.regex.is_none() {
            self.lines
        } else {
            None
        }
    }
}

/// What printing rows ended with.
enum Printed {
    Rows(u64),
    /// The reader of stdout went away (`| head`): stop quietly.
    Closed,
}

fn print_rows(
    store: &mut dyn Store,
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
    let mut store = store::open(&plan.url, OpenMode::Existing)?;
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
        match store::open(&plan.url, OpenMode::Existing) {
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
    store: &mut dyn Store,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        assert_eq!(priority("err").unwrap(), (Level::Emerg, Level::Err));
        assert_eq!(
            priority("warning..err").unwrap(),
            (Level::Err, Level::Warning)
        );
        assert_eq!(priority("3..5").unwrap(), (Level::Err, Level::Notice));
        let e = priority("warnig").unwrap_err().to_string();
        assert!(e.contains("did you mean 'warning'"), "{e}");
    }

    #[test]
    fn matches() {
        assert_eq!(
            field_match("source!=nginx").unwrap(),
            Match::Field {
                field: Field::Source,
                value: "nginx".into(),
                negate: true
            }
        );
        assert_eq!(
            field_match("exampleSDID@32473.iut=3").unwrap(),
            Match::Sd {
                id: "exampleSDID@32473".into(),
                param: "iut".into(),
                value: "3".into(),
                negate: false
            }
        );
        assert!(
            field_match("hostnam=x")
                .unwrap_err()
                .to_string()
                .contains("did you mean 'hostname'")
        );
        assert!(field_match("facility=kernal").is_err());
        assert!(field_match("novalue").is_err());
    }
}
