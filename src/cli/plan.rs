//! Flags to a [`Plan`]: the filter, the store, the output; every value checked before
//! anything is printed.

use super::args::QueryArgs;
use super::error::{CliError, did_you_mean};
use super::grep_words::required_words;
use super::levels::priority;
use super::render::{FIELDS, Output, Renderer};
use super::timespec;
use crate::message::Facility;
use crate::store::{Field, Filter, Match, StatField, StoreUrl, Words};
use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

/// Everything a run needs, checked before anything is printed.
pub struct Plan {
    pub url: StoreUrl,
    /// Archives queried with the store.
    pub archive: Option<PathBuf>,
    pub filter: Filter,
    pub regex: Option<Regex>,
    pub lines: Option<u64>,
    pub reverse: bool,
    pub follow: bool,
    pub fail_if_empty: bool,
    pub renderer: Renderer,
    /// `--count`: print the number of matching rows.
    pub count: bool,
    /// `-F FIELD`: list the field's values with counts.
    pub field: Option<StatField>,
    /// `-N`: list the fields.
    pub list_fields: bool,
    /// `-B`, `-A`: context rows before and after each match.
    pub context: (u64, u64),
    /// A pager on a terminal (not with `--no-pager`, `-f`, `--count`, `-F`, `-N`).
    pub pager: bool,
    /// `-e`: start the pager at the end.
    pub pager_end: bool,
    pub output: Output,
    pub color: bool,
    pub utc: bool,
}

/// The subcommands, for "did you mean" when one is mistyped (it reads as a match).
const SUBCOMMANDS: [&str; 3] = ["send", "simulate", "stats"];

fn field_match(m: &str) -> Result<Match, CliError> {
    let hint = || {
        Some(format!(
            "matches are FIELD=VALUE or FIELD!=VALUE with FIELD one of {}, or SDID.PARAM=VALUE",
            Field::NAMES.join(", ")
        ))
    };
    let Some(eq) = m.find('=') else {
        let hint = match did_you_mean(m, &SUBCOMMANDS) {
            Some(c) => Some(format!(
                "did you mean '{c}' (logq {c} …)? Or a match: {}",
                hint().unwrap_or_default()
            )),
            None => hint(),
        };
        return Err(CliError::usage(
            format!("'{m}' is neither a subcommand nor a match"),
            hint,
        ));
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
    timespec::parse(s, now, utc).map_err(|e| CliError::usage(e, timespec::hint(s)))
}

/// Smart case, as [`regex`] applies it.
fn case_insensitive(pattern: &str) -> bool {
    !pattern.chars().any(char::is_uppercase)
}

/// Smart case: a pattern with no upper-case letter matches either case.
fn regex(pattern: &str) -> Result<Regex, CliError> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive(pattern))
        .build()
        .map_err(|e| CliError::usage(format!("bad regex: {e}"), None))
}

/// `--db` (or `LOGRELAY_DB`, through clap), else the config file's `db`, else the default
/// file (or the system service's store when the user has none:
/// [`crate::system::default_store`]).
pub fn store_url(db: Option<&str>, config: Option<&Path>) -> Result<StoreUrl, CliError> {
    let from_file = match config {
        Some(p) => config_db(p).map_err(|e| CliError::usage(e, None))?,
        None => None,
    };
    match db.map(str::to_string).or(from_file) {
        Some(u) => {
            let url = StoreUrl::parse(&u).map_err(|e| {
                CliError::usage(
                    e.to_string(),
                    Some("--db sqlite:PATH or mssql://user@host/db?passwordFile=PATH".into()),
                )
            })?;
            for w in url.password_warnings() {
                eprintln!("logq: warning: {w}");
            }
            Ok(url)
        }
        None => Ok(crate::system::default_store()),
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
    // -w words, and the whole words every match of -g must contain: the store's word
    // index then skips the blocks without them (the regex still decides).
    let mut words = a.words.clone();
    if let Some(g) = a.grep.as_deref() {
        words.extend(required_words(g, case_insensitive(g)));
    }
    filter.words = Words::new(&words).map_err(|e| {
        CliError::usage(e, Some("-w takes a word: letters, digits or _ (punctuation inside, as in 10.0.0.7, is fine)".into()))
    })?;
    let field = a
        .field
        .as_deref()
        .map(|f| {
            StatField::from_name(f).ok_or_else(|| {
                let hint = did_you_mean(f, &StatField::NAMES)
                    .map(|m| format!("did you mean '{m}'? "))
                    .unwrap_or_default();
                CliError::usage(
                    format!("-F lists level, source, host or facility, not '{f}'"),
                    Some(format!("{hint}logq -N lists the fields rows have")),
                )
            })
        })
        .transpose()?;
    for f in &a.output_fields {
        if !FIELDS.contains(&f.as_str()) {
            let hint = did_you_mean(f, &FIELDS).map(|m| format!("did you mean '{m}'? "));
            return Err(CliError::usage(
                format!("unknown output field '{f}'"),
                Some(format!(
                    "{}fields: {}",
                    hint.unwrap_or_default(),
                    FIELDS.join(", ")
                )),
            ));
        }
    }
    let context = (
        a.before.or(a.context).unwrap_or(0),
        a.after.or(a.context).unwrap_or(0),
    );
    let lines = match a.lines.as_deref() {
        None if a.follow => Some(10),
        None if a.pager_end => Some(1000),
        None | Some("all") => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            CliError::usage(
                format!("bad line count '{n}'"),
                Some("-n takes a number or 'all'".into()),
            )
        })?),
    };
    let color = a.color.enabled(io::stdout().is_terminal());
    let fields = (!a.output_fields.is_empty()).then(|| a.output_fields.clone());
    Ok(Plan {
        url: store_url(a.db.as_deref(), a.config.as_deref())?,
        archive: archive_dir(a.archive.as_deref(), a.config.as_deref())?,
        filter,
        regex: a.grep.as_deref().map(regex).transpose()?,
        lines,
        reverse: a.reverse,
        follow: a.follow,
        fail_if_empty: a.fail_if_empty || a.grep.is_some(),
        renderer: Renderer::new(a.output, color, a.utc)
            .with_raw(a.all)
            .with_fields(fields),
        count: a.count,
        field,
        list_fields: a.fields,
        context,
        pager: !a.no_pager && !a.follow && !a.count && field.is_none() && !a.fields,
        pager_end: a.pager_end,
        output: a.output,
        color,
        utc: a.utc,
    })
}

/// `--archive DIR`, else the config file's `retention.archive-dir`.
pub fn archive_dir(
    flag: Option<&Path>,
    config: Option<&Path>,
) -> Result<Option<PathBuf>, CliError> {
    if let Some(d) = flag {
        return Ok(Some(d.to_path_buf()));
    }
    let Some(p) = config else {
        return Ok(None);
    };
    match config_str(p, &["retention", "archive-dir"]).map_err(|e| CliError::usage(e, None))? {
        Some(d) => crate::settings::expand_path(&d)
            .map(Some)
            .map_err(|e| CliError::usage(e, None)),
        None => Ok(None),
    }
}

/// The `db` key of logrelayd's config file; the file's other keys are the relay's
/// business (this reader does not check them).
pub(crate) fn config_db(path: &Path) -> Result<Option<String>, String> {
    config_str(path, &["db"])
}

/// A string key of logrelayd's config file, by its path of table names.
fn config_str(path: &Path, keys: &[&str]) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))?;
    let mut value: Option<&toml::Value> = None;
    let mut at = &table;
    for (i, k) in keys.iter().enumerate() {
        value = at.get(*k);
        match value {
            Some(toml::Value::Table(t)) if i + 1 < keys.len() => at = t,
            _ if i + 1 < keys.len() => return Ok(None),
            _ => {}
        }
    }
    match value {
        None => Ok(None),
        Some(toml::Value::String(s)) if s.trim() == "none" => Err(format!(
            "{}: db = none (that relay forwards and stores nothing): name a store with --db",
            path.display()
        )),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!(
            "bad config {}: {} must be a string",
            path.display(),
            keys.join(".")
        )),
    }
}
impl Plan {
    /// The row limit SQL can apply: none when a regex filters rows after SQL.
    pub fn sql_limit(&self) -> Option<u64> {
        if self.regex.is_none() {
            self.lines
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = field_match("sned").unwrap_err().to_string();
        assert!(e.contains("did you mean 'send'"), "{e}");
    }
}
