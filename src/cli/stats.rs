//! `logq stats`: matching rows counted in the store per time bucket and per level,
//! source, host or facility; a table, JSON lines (`-o json`), or on a terminal a bar
//! chart of rows per bucket coloured by level.

use super::args::StatsArgs;
use super::buckets::{Buckets, Unit};
use super::error::{CliError, did_you_mean};
use super::plan;
use super::render::Output;
use super::stats_render;
use crate::store::{StatField, StatsQuery};
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

fn fields(names: &[String]) -> Result<Vec<StatField>, CliError> {
    let mut by = Vec::new();
    for n in names.iter().filter(|n| !n.is_empty()) {
        let f = StatField::from_name(n).ok_or_else(|| {
            let hint = did_you_mean(n, &StatField::NAMES)
                .map(|m| format!("did you mean '{m}'? "))
                .unwrap_or_default();
            CliError::usage(
                format!("--by takes level, source, host or facility, not '{n}'"),
                Some(format!("{hint}several: --by source,level")),
            )
        })?;
        if !by.contains(&f) {
            by.push(f);
        }
    }
    Ok(by)
}

pub fn run(a: Box<StatsArgs>) -> Result<ExitCode, CliError> {
    let plan = plan::plan(&a.query, chrono::Utc::now())?;
    if plan.follow || plan.regex.is_some() || plan.count || plan.field.is_some() {
        return Err(CliError::usage(
            "stats takes the filter flags, not -f, -g, --count or -F",
            Some("-w WORD narrows stats through the word index".into()),
        ));
    }
    let by = fields(&a.by)?;
    let unit = a
        .bucket
        .as_deref()
        .map(|b| {
            Unit::parse(b).ok_or_else(|| {
                CliError::usage(
                    format!("bad bucket '{b}'"),
                    Some("--bucket 1m, 1h or 1d".into()),
                )
            })
        })
        .transpose()?;
    let json = matches!(plan.output, Output::Json | Output::JsonPretty);
    let chart = unit.is_some()
        && !json
        && io::stdout().is_terminal()
        && by.iter().all(|f| *f == StatField::Level);
    let query_by = if chart {
        vec![StatField::Level]
    } else {
        by.clone()
    };
    let mut store = super::query::open_reader(&plan)?;
    let buckets = match unit {
        None => None,
        Some(unit) => {
            let Some((lo, hi)) = store.time_bounds(&plan.filter)? else {
                return Ok(ExitCode::SUCCESS); // nothing matches: nothing to count
            };
            let lo = plan
                .filter
                .since
                .map_or(lo, |s| lo.max(s.timestamp_micros()));
            let hi = plan
                .filter
                .until
                .map_or(hi, |u| hi.min(u.timestamp_micros()));
            Some(
                Buckets::new(unit, lo, hi.max(lo), plan.utc)
                    .map_err(|e| CliError::usage(e, None))?,
            )
        }
    };
    let q = match &buckets {
        Some(b) => StatsQuery {
            filter: plan.filter.clone(),
            by: query_by.clone(),
            bounds: b.bounds.clone(),
        },
        None => StatsQuery::everything(plan.filter.clone(), query_by.clone()),
    };
    let rows = store.stats(&q)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = match (&buckets, chart, json) {
        (_, _, true) => stats_render::json(&mut out, &rows, &query_by, buckets.as_ref()),
        (Some(b), true, _) => stats_render::chart(
            &mut out,
            &rows,
            b,
            plan.color,
            stats_render::terminal_width(),
        ),
        _ => stats_render::table(&mut out, &rows, &query_by, buckets.as_ref()),
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::Runtime(format!("cannot write output: {e}")))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
