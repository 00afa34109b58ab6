//! Printing rows: journalctl-like text (`short`, `short-iso`, `short-precise`, `cat`)
//! and the contract's JSON, with colour by level only where asked for. Text modes escape
//! control characters from senders (see `escape`) unless `-a`; JSON is always exact.

use super::escape::{Shown, push_escaped};
use crate::message::Level;
use crate::store::RecordRef;
use crate::timefmt::write_rfc3339_utc;
use chrono::{DateTime, Local, Utc};
use clap::ValueEnum;
use owo_colors::{OwoColorize, Style};
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Short,
    ShortIso,
    ShortPrecise,
    /// Seconds since the epoch with microseconds, as journalctl's `short-unix`.
    ShortUnix,
    /// Weekday, full date and zone, as journalctl's `short-full`.
    ShortFull,
    /// Every field on its own line.
    Verbose,
    Json,
    JsonPretty,
    Cat,
}

/// The record's keys, as `-o json` and `--output-fields` name them.
pub const FIELDS: [&str; 13] = [
    "id",
    "timestamp",
    "received",
    "level",
    "facility",
    "hostname",
    "source",
    "procid",
    "msgid",
    "structured_data",
    "message",
    "protocol",
    "peer",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// `auto`: only on a terminal and only without `NO_COLOR` (any non-empty value).
    pub fn enabled(self, stdout_is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// err and worse red, warning yellow, notice bold, debug dim, info plain.
fn level_style(level: Level) -> Option<Style> {
    match level {
        Level::Emerg | Level::Alert | Level::Crit | Level::Err => Some(Style::new().red().bold()),
        Level::Warning => Some(Style::new().yellow()),
        Level::Notice => Some(Style::new().bold()),
        Level::Info => None,
        Level::Debug => Some(Style::new().dimmed()),
    }
}

pub struct Renderer {
    output: Output,
    color: bool,
    utc: bool,
    /// `-a`: text modes print control characters raw.
    raw: bool,
    /// The formatted time prefix of the last second printed (rows come in time order,
    /// so most rows reuse it instead of formatting again).
    cached_second: i64,
    cached_prefix: String,
    line: String,
    /// `--output-fields`: the keys `json`, `json-pretty` and `verbose` print.
    fields: Option<Vec<String>>,
}

fn to_datetime(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl Renderer {
    pub fn new(output: Output, color: bool, utc: bool) -> Self {
        Renderer {
            output,
            color,
            utc,
            raw: false,
            cached_second: i64::MIN,
            cached_prefix: String::new(),
            line: String::with_capacity(512),
            fields: None,
        }
    }

    /// `-a` / `--all`: print control characters in text modes raw instead of escaped.
    pub fn with_raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Sender-controlled text in a text mode: escaped unless `-a`.
    fn push_text(&mut self, s: &str) {
        if self.raw {
            self.line.push_str(s);
        } else {
            push_escaped(&mut self.line, s);
        }
    }

    /// Only these keys (of [`FIELDS`]) in `json`, `json-pretty` and `verbose`.
    pub fn with_fields(mut self, fields: Option<Vec<String>>) -> Self {
        self.fields = fields;
        self
    }

    fn wanted(&self, key: &str) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|k| k == key))
    }

    /// Drops the keys `--output-fields` did not name from the JSON object in `line`.
    fn keep_fields(&mut self) -> io::Result<()> {
        if self.fields.is_none() {
            return Ok(());
        }
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.line).map_err(io::Error::other)?;
        v.retain(|k, _| self.wanted(k));
        self.line = serde_json::to_string(&v).map_err(io::Error::other)?;
        Ok(())
    }

    pub fn write(&mut self, out: &mut impl Write, id: i64, r: &RecordRef<'_>) -> io::Result<()> {
        self.line.clear();
        match self.output {
            Output::Json => {
                self.json(id, r);
                self.keep_fields()?;
            }
            Output::JsonPretty => {
                self.json(id, r);
                self.keep_fields()?;
                let v: serde_json::Value =
                    serde_json::from_str(&self.line).map_err(io::Error::other)?;
                self.line = serde_json::to_string_pretty(&v).map_err(io::Error::other)?;
            }
            Output::Cat => self.message(r),
            Output::Verbose => self.verbose(id, r),
            Output::Short
            | Output::ShortIso
            | Output::ShortPrecise
            | Output::ShortUnix
            | Output::ShortFull => self.short(r),
        }
        self.line.push('\n');
        out.write_all(self.line.as_bytes())
    }

    fn time_prefix(&mut self, us: i64) {
        if self.output == Output::ShortUnix {
            let _ = std::fmt::Write::write_fmt(
                &mut self.line,
                format_args!(
                    "{}.{:06}",
                    us.div_euclid(1_000_000),
                    us.rem_euclid(1_000_000)
                ),
            );
            return;
        }
        let second = us.div_euclid(1_000_000);
        if second != self.cached_second {
            let t = to_datetime(second * 1_000_000);
            let fmt = match self.output {
                Output::ShortIso => "%Y-%m-%dT%H:%M:%S%z",
                Output::ShortFull => "%a %Y-%m-%d %H:%M:%S %Z",
                _ => "%b %d %H:%M:%S",
            };
            self.cached_prefix = if self.utc {
                t.format(fmt).to_string()
            } else {
                t.with_timezone(&Local).format(fmt).to_string()
            };
            self.cached_second = second;
        }
        if self.output == Output::ShortPrecise {
            self.line.push_str(&self.cached_prefix);
            let micros = us.rem_euclid(1_000_000);
            let _ = std::fmt::Write::write_fmt(&mut self.line, format_args!(".{micros:06}"));
        } else {
            self.line.push_str(&self.cached_prefix);
        }
    }

    fn short(&mut self, r: &RecordRef<'_>) {
        self.time_prefix(r.time_us);
        self.line.push(' ');
        self.push_text(r.hostname.unwrap_or("-"));
        self.line.push(' ');
        self.push_text(r.source.unwrap_or("-"));
        if let Some(pid) = r.procid {
            self.line.push('[');
            self.push_text(pid);
            self.line.push(']');
        }
        self.line.push_str(": ");
        let indent = self.line.chars().count();
        self.message_indented(r, indent);
    }

    /// journalctl's `verbose`: a header line with the precise time and the id, then
    /// `    KEY=value` for every field that has a value.
    fn verbose(&mut self, id: i64, r: &RecordRef<'_>) {
        let t = to_datetime(r.time_us);
        let fmt = "%a %Y-%m-%d %H:%M:%S%.6f %Z";
        let head = if self.utc {
            t.format(fmt).to_string()
        } else {
            t.with_timezone(&Local).format(fmt).to_string()
        };
        let _ = std::fmt::Write::write_fmt(&mut self.line, format_args!("{head} [id={id}]"));
        let mut received = String::new();
        write_rfc3339_utc(r.received_us, 6, &mut received);
        let mut timestamp = String::new();
        write_rfc3339_utc(r.time_us, 6, &mut timestamp);
        let id_text = id.to_string();
        let fields: [(&str, Option<&str>); 13] = [
            ("id", Some(&id_text)),
            ("timestamp", Some(&timestamp)),
            ("received", Some(&received)),
            ("level", Some(r.level.name())),
            ("facility", r.facility.map(|f| f.name())),
            ("hostname", r.hostname),
            ("source", r.source),
            ("procid", r.procid),
            ("msgid", r.msgid),
            ("structured_data", r.structured_data),
            ("message", Some(r.message)),
            ("protocol", Some(r.protocol.name())),
            ("peer", r.peer),
        ];
        for (key, value) in fields {
            let Some(value) = value.filter(|_| self.wanted(key)) else {
                continue;
            };
            self.line.push_str("\n    ");
            self.line.push_str(&key.to_ascii_uppercase());
            self.line.push('=');
            // One line per field: a newline inside a value is shown as `\n` (other
            // control characters as the text modes show them).
            for (i, part) in value.split('\n').enumerate() {
                if i > 0 {
                    self.line.push_str("\\n");
                }
                self.push_text(part);
            }
        }
    }

    fn message(&mut self, r: &RecordRef<'_>) {
        self.message_indented(r, 0);
    }

    /// The message, coloured by level; continuation lines indented to line up.
    fn message_indented(&mut self, r: &RecordRef<'_>, indent: usize) {
        let style = if self.color {
            level_style(r.level)
        } else {
            None
        };
        for (i, part) in r.message.split('\n').enumerate() {
            if i > 0 {
                self.line.push('\n');
                self.line.extend(std::iter::repeat_n(' ', indent));
            }
            match style {
                Some(s) => {
                    let _ = std::fmt::Write::write_fmt(
                        &mut self.line,
                        format_args!(
                            "{}",
                            Shown {
                                text: part,
                                raw: self.raw
                            }
                            .style(s)
                        ),
                    );
                }
                None => self.push_text(part),
            }
        }
    }

    fn json(&mut self, id: i64, r: &RecordRef<'_>) {
        crate::store::record_json::write(id, r, &mut self.line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Facility, Protocol};

    fn rec<'a>(msg: &'a str, level: Level) -> RecordRef<'a> {
        RecordRef {
            time_us: 1_700_000_000_123_456,
            received_us: 1_700_000_001_000_000,
            level,
            facility: Facility::from_code(3),
            hostname: Some("web1"),
            source: Some("nginx"),
            procid: Some("42"),
            msgid: None,
            structured_data: Some(r#"{"a":{"b":"c"}}"#),
            message: msg,
            protocol: Protocol::Rfc5424,
            peer: None,
        }
    }

    fn render(out: Output, color: bool, r: &RecordRef<'_>) -> String {
        let mut buf = Vec::new();
        Renderer::new(out, color, true)
            .write(&mut buf, 7, r)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn short_forms() {
        let r = rec("line one\nline two", Level::Info);
        assert_eq!(
            render(Output::Short, false, &r),
            "Nov 14 22:13:20 web1 nginx[42]: line one\n                                line two\n"
        );
        assert_eq!(
            render(Output::ShortPrecise, false, &r)
                .lines()
                .next()
                .unwrap(),
            "Nov 14 22:13:20.123456 web1 nginx[42]: line one"
        );
        assert!(render(Output::ShortIso, false, &r).starts_with("2023-11-14T22:13:20+0000 web1"));
        assert_eq!(render(Output::Cat, false, &rec("x", Level::Info)), "x\n");
        assert!(
            render(Output::ShortUnix, false, &r)
                .starts_with("1700000000.123456 web1 nginx[42]: line one"),
            "{}",
            render(Output::ShortUnix, false, &r)
        );
        assert!(
            render(Output::ShortFull, false, &r)
                .starts_with("Tue 2023-11-14 22:13:20 UTC web1 nginx[42]: "),
            "{}",
            render(Output::ShortFull, false, &r)
        );
    }

    #[test]
    fn verbose_and_output_fields() {
        let r = rec("line one\nline two", Level::Info);
        let v = render(Output::Verbose, false, &r);
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines[0], "Tue 2023-11-14 22:13:20.123456 UTC [id=7]");
        assert!(lines.contains(&"    LEVEL=info"));
        assert!(lines.contains(&"    MESSAGE=line one\\nline two"));
        assert!(!v.contains("MSGID="), "no line for a field without a value");
        let mut buf = Vec::new();
        Renderer::new(Output::Json, false, true)
            .with_fields(Some(vec!["message".into(), "level".into()]))
            .write(&mut buf, 7, &r)
            .unwrap();
        let obj: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(obj.as_object().unwrap().len(), 2);
        assert_eq!(obj["level"], "info");
        let mut buf = Vec::new();
        Renderer::new(Output::Verbose, false, true)
            .with_fields(Some(vec!["hostname".into()]))
            .write(&mut buf, 7, &r)
            .unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "Tue 2023-11-14 22:13:20.123456 UTC [id=7]\n    HOSTNAME=web1\n"
        );
    }

    #[test]
    fn colour_only_when_enabled() {
        let red = render(Output::Cat, true, &rec("boom", Level::Err));
        assert!(red.contains("\x1b[") && red.contains("31"), "{red:?}");
        assert!(!render(Output::Cat, false, &rec("boom", Level::Err)).contains('\x1b'));
        assert!(!render(Output::Cat, true, &rec("fine", Level::Info)).contains('\x1b'));
    }

    #[test]
    fn json_has_exactly_the_contract_keys() {
        let line = render(Output::Json, true, &rec("q\"uote", Level::Warning));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "id",
            "timestamp",
            "received",
            "level",
            "facility",
            "hostname",
            "source",
            "procid",
            "msgid",
            "structured_data",
            "message",
            "protocol",
            "peer",
        ];
        let mut got = keys.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["level"], "warning");
        assert_eq!(v["facility"], "daemon");
        assert_eq!(v["structured_data"]["a"]["b"], "c");
        assert_eq!(v["message"], "q\"uote");
        assert!(v["msgid"].is_null() && v["peer"].is_null());
    }
}
