//! A stored row as one JSON object: what `logq -o json` prints and what archives hold,
//! and the way back from that text to a record (archives are read with it).

use crate::message::{Facility, Level, Protocol, write_json_str};
use crate::store::{Batch, RecordRef};
use crate::timefmt::write_rfc3339_utc;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Appends row `id` as one JSON object (no newline) to `l`.
pub fn write(id: i64, r: &RecordRef<'_>, l: &mut String) {
    let _ = std::fmt::Write::write_fmt(l, format_args!("{{\"id\":{id},\"timestamp\":\""));
    write_rfc3339_utc(r.time_us, 6, l);
    l.push_str("\",\"received\":\"");
    write_rfc3339_utc(r.received_us, 6, l);
    l.push_str("\",\"level\":\"");
    l.push_str(r.level.name());
    l.push_str("\",\"facility\":");
    match r.facility {
        Some(f) => write_json_str(f.name(), l),
        None => l.push_str("null"),
    }
    for (key, value) in [
        ("hostname", r.hostname),
        ("source", r.source),
        ("procid", r.procid),
        ("msgid", r.msgid),
    ] {
        l.push_str(",\"");
        l.push_str(key);
        l.push_str("\":");
        match value {
            Some(v) => write_json_str(v, l),
            None => l.push_str("null"),
        }
    }
    // Stored structured data is JSON we wrote ourselves; it goes out as is.
    l.push_str(",\"structured_data\":");
    l.push_str(r.structured_data.unwrap_or("null"));
    l.push_str(",\"message\":");
    write_json_str(r.message, l);
    l.push_str(",\"protocol\":\"");
    l.push_str(r.protocol.name());
    l.push_str("\",\"peer\":");
    match r.peer {
        Some(p) => write_json_str(p, l),
        None => l.push_str("null"),
    }
    l.push('}');
}

#[derive(Deserialize)]
struct Line<'a> {
    id: i64,
    timestamp: &'a str,
    received: &'a str,
    level: &'a str,
    facility: Option<&'a str>,
    #[serde(borrow)]
    hostname: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    procid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    msgid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    structured_data: Option<&'a RawValue>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
    protocol: &'a str,
    #[serde(borrow)]
    peer: Option<std::borrow::Cow<'a, str>>,
}

fn micros(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("bad time '{text}': {e}"))
}

/// Reads one line written by [`write`] into `batch`; returns the row's id.
pub fn read(line: &str, batch: &mut Batch) -> Result<i64, String> {
    let l: Line<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let record = RecordRef {
        time_us: micros(l.timestamp)?,
        received_us: micros(l.received)?,
        level: l.level.parse::<Level>().map_err(|e| e.to_string())?,
        facility: match l.facility {
            Some(f) => Some(f.parse::<Facility>().map_err(|e| e.to_string())?),
            None => None,
        },
        hostname: l.hostname.as_deref(),
        source: l.source.as_deref(),
        procid: l.procid.as_deref(),
        msgid: l.msgid.as_deref(),
        structured_data: l
            .structured_data
            .map(RawValue::get)
            .filter(|s| *s != "null"),
        message: &l.message,
        protocol: Protocol::from_name(l.protocol)
            .ok_or_else(|| format!("unknown protocol '{}'", l.protocol))?,
        peer: l.peer.as_deref(),
    };
    batch.push_record(&record);
    Ok(l.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_line() {
        let r = RecordRef {
            time_us: 1_764_547_200_123_456,
            received_us: 1_764_547_200_223_456,
            level: Level::Warning,
            facility: Some(Facility::from_code(16).unwrap()),
            hostname: Some("web-1"),
            source: Some("app \"x\"\\ é"),
            procid: None,
            msgid: Some("ID7"),
            structured_data: Some(r#"{"a@1":{"k":["v\n1","v2"]}}"#),
            message: "line\tone\u{1}\nline two",
            protocol: Protocol::from_name("rfc5424").unwrap(),
            peer: Some("127.0.0.1:5000"),
        };
        let mut line = String::new();
        write(42, &r, &mut line);
        let mut batch = Batch::new();
        assert_eq!(read(&line, &mut batch).unwrap(), 42);
        let back = batch.record_at(0).unwrap();
        assert_eq!(back, r);
        let mut again = String::new();
        write(42, &back, &mut again);
        assert_eq!(again, line);
        assert!(read("{\"id\":1}", &mut batch).is_err());
        assert!(read("not json", &mut batch).is_err());
    }
}
