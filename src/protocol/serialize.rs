//! Writing a record back out as RFC 5424 or RFC 3164 (for `logq send`, the simulator,
//! tests and forwarding). Header fields are made valid rather than rejected: characters
//! outside PRINTUSASCII become `_` and over-long fields are cut to the RFC's limits.

use crate::message::{Facility, LogMessage, write_json_str, write_sd_json};
use chrono::{DateTime, Datelike, Local, Utc};
use std::fmt::Write;

fn pri(m: &LogMessage<'_>) -> u8 {
    m.facility.unwrap_or(Facility::USER).code() * 8 + m.level.code()
}

fn push_field(out: &mut String, value: Option<&str>, max: usize) {
    match value {
        Some(v) if !v.is_empty() && v != "-" => out.extend(
            v.chars()
                .take(max)
                .map(|c| if ('!'..='~').contains(&c) { c } else { '_' }),
        ),
        _ => out.push('-'),
    }
}

/// An SD-NAME: PRINTUSASCII except `=`, `]`, `"`, SP; 1 to 32 characters.
fn sd_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| ('!'..='~').contains(c) && !matches!(c, '=' | ']' | '"'))
        .take(32)
        .collect();
    if clean.is_empty() { "_".into() } else { clean }
}

/// RFC 5424 timestamp with microseconds.
pub fn push_rfc5424_time(t: DateTime<Utc>, out: &mut String) {
    crate::timefmt::write_rfc3339_utc(t.timestamp_micros(), 6, out);
}

/// One RFC 5424 message (no framing). Non-ASCII messages get a BOM, as 6.4 asks.
pub fn to_rfc5424(m: &LogMessage<'_>, out: &mut String) {
    let _ = write!(out, "<{}>1 ", pri(m));
    // TIMESTAMP has four year digits; other years become NILVALUE.
    if (0..=9999).contains(&m.timestamp.year()) {
        push_rfc5424_time(m.timestamp, out);
        out.push(' ');
    } else {
        out.push_str("- ");
    }
    push_field(out, m.hostname.as_deref(), 255);
    out.push(' ');
    push_field(out, m.source.as_deref(), 48);
    out.push(' ');
    push_field(out, m.procid.as_deref(), 128);
    out.push(' ');
    push_field(out, m.msgid.as_deref(), 32);
    out.push(' ');
    if m.structured_data.is_empty() {
        out.push('-');
    }
    // An SD-ID may appear once: elements whose (cleaned) ids repeat join the first.
    let ids: Vec<String> = m.structured_data.iter().map(|e| sd_name(&e.id)).collect();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            continue;
        }
        out.push('[');
        out.push_str(id);
        let same_id = (i..ids.len()).filter(|&j| ids[j] == *id);
        for (name, value) in same_id.flat_map(|j| m.structured_data[j].params.iter()) {
            out.push(' ');
            out.push_str(&sd_name(name));
            out.push_str("=\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        out.push(']');
    }
    if !m.message.is_empty() {
        out.push(' ');
        if !m.message.is_ascii() {
            out.push('\u{FEFF}');
        }
        out.push_str(&m.message);
    }
}

/// One RFC 3164 message as syslog(3) writes it: local time, `TAG[PID]: MSG`.
pub fn to_rfc3164(m: &LogMessage<'_>, out: &mut String) {
    let local = m.timestamp.with_timezone(&Local);
    let _ = write!(out, "<{}>{} ", pri(m), local.format("%b %e %H:%M:%S"));
    push_field(out, m.hostname.as_deref(), 255);
    out.push(' ');
    push_field(out, m.source.as_deref(), 48);
    if let Some(pid) = m.procid.as_deref() {
        let _ = write!(out, "[{pid}]");
    }
    out.push_str(": ");
    out.push_str(&m.message);
}

/// One native JSON line (no trailing LF), with only the fields that are known.
pub fn to_json_line(m: &LogMessage<'_>, out: &mut String) {
    out.push_str("{\"timestamp\":\"");
    push_rfc5424_time(m.timestamp, out);
    let _ = write!(out, "\",\"level\":\"{}\"", m.level);
    if let Some(f) = m.facility {
        let _ = write!(out, ",\"facility\":\"{f}\"");
    }
    for (key, value) in [
        ("hostname", &m.hostname),
        ("source", &m.source),
        ("procid", &m.procid),
        ("msgid", &m.msgid),
    ] {
        if let Some(v) = value {
            let _ = write!(out, ",\"{key}\":");
            write_json_str(v, out);
        }
    }
    if !m.structured_data.is_empty() {
        out.push_str(",\"structured_data\":");
        write_sd_json(&m.structured_data, out);
    }
    out.push_str(",\"message\":");
    write_json_str(&m.message, out);
    out.push('}');
}

/// The wire formats a client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// Native NDJSON, one object per line
    Json,
    /// RFC 5424 with RFC 6587 octet counting
    Rfc5424,
    /// RFC 3164 (BSD syslog), LF-terminated
    Rfc3164,
}

/// Appends `m` to `out` framed for a TCP stream in `format`.
pub fn encode_framed(format: Format, m: &LogMessage<'_>, scratch: &mut String, out: &mut Vec<u8>) {
    scratch.clear();
    match format {
        Format::Json => to_json_line(m, scratch),
        Format::Rfc5424 => {
            to_rfc5424(m, scratch);
            let _ = std::io::Write::write_fmt(out, format_args!("{} ", scratch.len()));
        }
        Format::Rfc3164 => to_rfc3164(m, scratch),
    }
    out.extend_from_slice(scratch.as_bytes());
    if format == Format::Rfc3164 {
        // Embedded newlines would split the message in LF framing.
        let start = out.len() - scratch.len();
        for b in &mut out[start..] {
            if *b == b'\n' {
                *b = b' ';
            }
        }
    }
    if format != Format::Rfc5424 {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Level, SdElement};

    #[test]
    fn escapes_sd_and_marks_utf8() {
        let mut m = LogMessage::new(
            "héllo",
            Level::Err,
            DateTime::from_timestamp(0, 5000).unwrap(),
        );
        m.source = Some("my app".into());
        m.structured_data = vec![SdElement {
            id: "x@1".into(),
            params: vec![("k".into(), "a]\"\\".into())],
        }];
        let mut out = String::new();
        to_rfc5424(&m, &mut out);
        assert_eq!(
            out,
            "<11>1 1970-01-01T00:00:00.000005Z - my_app - - [x@1 k=\"a\\]\\\"\\\\\"] \u{FEFF}héllo"
        );
    }
}
