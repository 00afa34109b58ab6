//! The normalised record every wire format is turned into, and its vocabulary:
//! syslog severities (`Level`), facilities and the protocol a record came in by.

use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The eight syslog severities, most severe first (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Err,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    /// Canonical names, indexed by severity code.
    pub const NAMES: [&'static str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];

    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(code as usize).copied()
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        Level::NAMES[self as usize]
    }

    /// The original table's `LogLevel` text (Python logging's names where they exist).
    pub fn log_level_name(self) -> &'static str {
        const LOG_LEVEL: [&str; 8] = [
            "EMERG", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG",
        ];
        LOG_LEVEL[self as usize]
    }

    /// Names and aliases accepted on input, for "did you mean" hints.
    pub const ACCEPTED: [&'static str; 19] = [
        "emerg",
        "alert",
        "crit",
        "err",
        "warning",
        "notice",
        "info",
        "debug",
        "panic",
        "emergency",
        "critical",
        "fatal",
        "error",
        "warn",
        "information",
        "informational",
        "trace",
        "0..7",
        "FROM..TO",
    ];
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level '{0}' (expected emerg, alert, crit, err, warning, notice, info, debug or 0-7)"
)]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Names, the aliases real clients send (any case) and the numbers 0-7.
    fn from_str(s: &str) -> Result<Level, UnknownLevel> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>() {
            return Level::from_code(n).ok_or_else(|| UnknownLevel(s.to_string()));
        }
        let level = match t.to_ascii_lowercase().as_str() {
            "emerg" | "panic" | "emergency" => Level::Emerg,
            "alert" => Level::Alert,
            "crit" | "critical" | "fatal" => Level::Crit,
            "err" | "error" => Level::Err,
            "warning" | "warn" => Level::Warning,
            "notice" => Level::Notice,
            "info" | "information" | "informational" => Level::Info,
            "debug" | "trace" => Level::Debug,
            _ => return Err(UnknownLevel(s.to_string())),
        };
        Ok(level)
    }
}

/// A syslog facility code 0-23 (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Facility(u8);

impl Facility {
    pub const NAMES: [&'static str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    pub const USER: Facility = Facility(1);

    pub fn from_code(code: u8) -> Option<Facility> {
        (code < 24).then_some(Facility(code))
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        Facility::NAMES[self.0 as usize]
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown facility '{0}' (expected kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0-local7 or 0-23)"
)]
pub struct UnknownFacility(pub String);

impl FromStr for Facility {
    type Err = UnknownFacility;

    fn from_str(s: &str) -> Result<Facility, UnknownFacility> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>() {
            return Facility::from_code(n).ok_or_else(|| UnknownFacility(s.to_string()));
        }
        let lower = t.to_ascii_lowercase();
        // `security` is the old name of auth, as in syslog(3) and logger(1).
        let lower = if lower == "security" {
            "auth".to_string()
        } else {
            lower
        };
        Facility::NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| Facility(i as u8))
            .ok_or_else(|| UnknownFacility(s.to_string()))
    }
}

/// The wire format a record arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rfc5424,
    Rfc3164,
    Json,
    /// A frame no parser accepted, kept with its text.
    Raw,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Rfc5424,
        Protocol::Rfc3164,
        Protocol::Json,
        Protocol::Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rfc5424 => "rfc5424",
            Protocol::Rfc3164 => "rfc3164",
            Protocol::Json => "json",
            Protocol::Raw => "raw",
        }
    }

    pub fn from_name(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One SD-ELEMENT: its SD-ID and its parameters in input order (repeats kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: Cow<'a, str>,
    pub params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl SdElement<'_> {
    pub fn into_owned(self) -> SdElement<'static> {
        SdElement {
            id: Cow::Owned(self.id.into_owned()),
            params: self
                .params
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }
}

/// The normalised record. Text fields borrow from the frame they were parsed
/// from where they can (`LogMessage<'static>` owns everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage<'a> {
    /// When the event happened (UTC, microseconds); the receive time if the sender gave none.
    pub timestamp: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub level: Level,
    pub facility: Option<Facility>,
    pub hostname: Option<Cow<'a, str>>,
    /// RFC 5424 APP-NAME, RFC 3164 TAG, or the native `source`.
    pub source: Option<Cow<'a, str>>,
    pub procid: Option<Cow<'a, str>>,
    pub msgid: Option<Cow<'a, str>>,
    pub structured_data: Vec<SdElement<'a>>,
    pub message: Cow<'a, str>,
    pub protocol: Protocol,
    pub peer: Option<Cow<'a, str>>,
}

fn own(v: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    v.map(|c| Cow::Owned(c.into_owned()))
}

impl<'a> LogMessage<'a> {
    /// A record with only a message; everything else unknown.
    pub fn new(message: impl Into<Cow<'a, str>>, level: Level, now: DateTime<Utc>) -> Self {
        LogMessage {
            timestamp: now,
            received: now,
            level,
            facility: None,
            hostname: None,
            source: None,
            procid: None,
            msgid: None,
            structured_data: Vec::new(),
            message: message.into(),
            protocol: Protocol::Json,
            peer: None,
        }
    }

    pub fn into_owned(self) -> LogMessage<'static> {
        LogMessage {
            timestamp: self.timestamp,
            received: self.received,
            level: self.level,
            facility: self.facility,
            hostname: own(self.hostname),
            source: own(self.source),
            procid: own(self.procid),
            msgid: own(self.msgid),
            structured_data: self
                .structured_data
                .into_iter()
                .map(SdElement::into_owned)
                .collect(),
            message: Cow::Owned(self.message.into_owned()),
            protocol: self.protocol,
            peer: own(self.peer),
        }
    }

    /// The structured data as the contract's JSON object, or `None` when there is none.
    pub fn structured_data_json(&self) -> Option<String> {
        if self.structured_data.is_empty() {
            return None;
        }
        let mut out = String::new();
        write_sd_json(&self.structured_data, &mut out);
        Some(out)
    }
}

/// Writes structured data as `{"SD-ID":{"PARAM":"value", "REPEATED":["a","b"]}}`.
/// SD-IDs that appear twice (invalid, but sent) are merged into one object.
pub fn write_sd_json(elements: &[SdElement<'_>], out: &mut String) {
    out.push('{');
    let mut first_id = true;
    for (i, el) in elements.iter().enumerate() {
        if elements[..i].iter().any(|e| e.id == el.id) {
            continue; // merged into the first element with this id
        }
        if !first_id {
            out.push(',');
        }
        first_id = false;
        write_json_str(&el.id, out);
        out.push(':');
        if elements[i + 1..].iter().any(|e| e.id == el.id) {
            let merged: Vec<&(Cow<str>, Cow<str>)> = elements[i..]
                .iter()
                .filter(|e| e.id == el.id)
                .flat_map(|e| e.params.iter())
                .collect();
            write_params(&merged, out);
        } else {
            // The usual case: nothing to merge, so no list of the parameters is built.
            write_params(&el.params, out);
        }
    }
    out.push('}');
}

/// One SD-ELEMENT's parameters as a JSON object; a repeated name becomes an array.
pub(crate) fn write_params<'a, P: std::borrow::Borrow<(Cow<'a, str>, Cow<'a, str>)>>(
    params: &[P],
    out: &mut String,
) {
    out.push('{');
    let mut first_param = true;
    for (j, p) in params.iter().enumerate() {
        let (name_j, value) = p.borrow();
        if params[..j].iter().any(|q| q.borrow().0 == *name_j) {
            continue;
        }
        if !first_param {
            out.push(',');
        }
        first_param = false;
        write_json_str(name_j, out);
        out.push(':');
        if params[j + 1..].iter().any(|q| q.borrow().0 == *name_j) {
            out.push('[');
            let same = params[j..]
                .iter()
                .map(|q| q.borrow())
                .filter(|q| q.0 == *name_j);
            for (k, (_, v)) in same.enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_json_str(v, out);
            }
            out.push(']');
        } else {
            write_json_str(value, out);
        }
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal, escaping as RFC 8259 requires.
pub fn write_json_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(k) = first_to_escape(&bytes[start..]) {
        let i = start + k;
        out.push_str(&s[start..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Where the first byte JSON must escape (`"`, `\`, a control character) is. Looks at
/// eight bytes at a time: most text has none, and this runs for every string of every
/// record written as JSON (structured data in the hot path, `logq --json`).
#[inline]
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    // A zero byte in `x` sets its high bit in `zero(x)` (the classic test: no false
    // positives for "some byte is zero", which is all this needs).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in chunks.by_ref() {
        let x = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Below 0x20: subtracting 0x20 borrows into the high bit of a byte whose own
        // high bit is clear.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0
            && let Some(k) = c.iter().position(|&b| escape(b))
        {
            return Some(at + k);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| escape(b))
        .map(|k| at + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_names_aliases_and_numbers() {
        for (input, level) in [
            ("WARNING", Level::Warning),
            ("warn", Level::Warning),
            ("ERROR", Level::Err),
            ("CRITICAL", Level::Crit),
            ("fatal", Level::Crit),
            ("INFO", Level::Info),
            ("informational", Level::Info),
            ("DEBUG", Level::Debug),
            ("trace", Level::Debug),
            ("panic", Level::Emerg),
            ("0", Level::Emerg),
            ("7", Level::Debug),
        ] {
            assert_eq!(input.parse::<Level>(), Ok(level), "{input}");
        }
        assert!("8".parse::<Level>().is_err());
        assert!("verbose".parse::<Level>().is_err());
        assert_eq!(Level::Warning.to_string(), "warning");
    }

    #[test]
    fn facilities_parse_and_display() {
        assert_eq!("local7".parse::<Facility>().unwrap().code(), 23);
        assert_eq!("AUTHPRIV".parse::<Facility>().unwrap().code(), 10);
        assert_eq!("4".parse::<Facility>().unwrap().name(), "auth");
        assert!("24".parse::<Facility>().is_err());
        assert!("kernel".parse::<Facility>().is_err());
    }

    #[test]
    fn json_strings_escape_every_byte_that_needs_it_wherever_it_is() {
        let mut out = String::new();
        write_json_str("a\u{1}\"\\\n\r\t\u{1f}é\u{7f}", &mut out);
        assert_eq!(out, "\"a\\u0001\\\"\\\\\\n\\r\\t\\u001fé\u{7f}\"");
        // Each special byte at each place of a text longer than the eight-byte steps.
        for b in (0u8..0x20).chain([b'"', b'\\', b'a', 0x7f]) {
            for at in 0..19 {
                let mut text: Vec<u8> = b"0123456789abcdefghi".to_vec();
                text[at] = b;
                let text = String::from_utf8(text).unwrap();
                out.clear();
                write_json_str(&text, &mut out);
                assert!(!out.bytes().any(|c| c < 0x20), "{out:?}");
                let back: String = serde_json::from_str(&out).unwrap();
                assert_eq!(back, text, "{out}");
            }
        }
    }

    #[test]
    fn sd_json_groups_repeats_and_merges_ids() {
        let el = |id: &'static str, ps: &[(&'static str, &'static str)]| SdElement {
            id: id.into(),
            params: ps.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        };
        let sd = vec![
            el("a@1", &[("x", "1"), ("y", "q\"\\"), ("x", "2")]),
            el("b", &[]),
            el("a@1", &[("z", "\n")]),
        ];
        let mut out = String::new();
        write_sd_json(&sd, &mut out);
        assert_eq!(
            out,
            r#"{"a@1":{"x":["1","2"],"y":"q\"\\","z":"\n"},"b":{}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a@1"]["x"][1], "2");
    }
}
