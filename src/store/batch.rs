//! A batch of records packed into one text arena: pushing a record copies its strings
//! into a shared `String` instead of allocating one per field, so the hot path costs a
//! few `push_str` per message and the writer frees one buffer per batch.

use crate::message::{Facility, Level, LogMessage, Protocol, write_sd_json};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

const NONE: Span = Span {
    start: u32::MAX,
    len: 0,
};

#[derive(Debug, Clone)]
struct Row {
    time_us: i64,
    received_us: i64,
    level: Level,
    facility: Option<Facility>,
    protocol: Protocol,
    hostname: Span,
    source: Span,
    procid: Span,
    msgid: Span,
    structured_data: Span,
    message: Span,
    peer: Span,
}

/// One record as the stores see it: borrowed text, times as microseconds since the
/// epoch, structured data as its JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub time_us: i64,
    pub received_us: i64,
    pub level: Level,
    pub facility: Option<Facility>,
    pub hostname: Option<&'a str>,
    pub source: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Option<&'a str>,
    pub message: &'a str,
    pub protocol: Protocol,
    pub peer: Option<&'a str>,
}

#[derive(Debug, Clone, Default)]
pub struct Batch {
    text: String,
    rows: Vec<Row>,
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn with_capacity(rows: usize, text: usize) -> Self {
        Batch {
            text: String::with_capacity(text),
            rows: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    fn put(&mut self, s: Option<&str>) -> Span {
        match s {
            None => NONE,
            Some(s) => {
                let start = self.text.len() as u32;
                self.text.push_str(s);
                Span {
                    start,
                    len: s.len() as u32,
                }
            }
        }
    }

    pub fn push(&mut self, m: &LogMessage<'_>) {
        let structured_data = if m.structured_data.is_empty() {
            NONE
        } else {
            let start = self.text.len();
            write_sd_json(&m.structured_data, &mut self.text);
            Span {
                start: start as u32,
                len: (self.text.len() - start) as u32,
            }
        };
        let row = Row {
            time_us: micros(m.timestamp),
            received_us: micros(m.received),
            level: m.level,
            facility: m.facility,
            protocol: m.protocol,
            hostname: self.put(m.hostname.as_deref()),
            source: self.put(m.source.as_deref()),
            procid: self.put(m.procid.as_deref()),
            msgid: self.put(m.msgid.as_deref()),
            structured_data,
            message: self.put(Some(&m.message)),
            peer: self.put(m.peer.as_deref()),
        };
        self.rows.push(row);
    }

    /// Copies a record (as read from a store) into the batch.
    pub fn push_record(&mut self, r: &RecordRef<'_>) {
        let row = Row {
            time_us: r.time_us,
            received_us: r.received_us,
            level: r.level,
            facility: r.facility,
            protocol: r.protocol,
            hostname: self.put(r.hostname),
            source: self.put(r.source),
            procid: self.put(r.procid),
            msgid: self.put(r.msgid),
            structured_data: self.put(r.structured_data),
            message: self.put(Some(r.message)),
            peer: self.put(r.peer),
        };
        self.rows.push(row);
    }

    fn get(&self, s: Span) -> Option<&str> {
        (s.start != u32::MAX).then(|| &self.text[s.start as usize..(s.start + s.len) as usize])
    }

    fn record(&self, r: &Row) -> RecordRef<'_> {
        RecordRef {
            time_us: r.time_us,
            received_us: r.received_us,
            level: r.level,
            facility: r.facility,
            hostname: self.get(r.hostname),
            source: self.get(r.source),
            procid: self.get(r.procid),
            msgid: self.get(r.msgid),
            structured_data: self.get(r.structured_data),
            message: self.get(r.message).unwrap_or_default(),
            protocol: r.protocol,
            peer: self.get(r.peer),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecordRef<'_>> {
        self.rows.iter().map(|r| self.record(r))
    }

    /// The `i`th record, if there is one.
    pub fn record_at(&self, i: usize) -> Option<RecordRef<'_>> {
        self.rows.get(i).map(|r| self.record(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_push_record_iter_round_trip() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let mut a = Batch::new();
        let mut m = LogMessage::new("first", Level::Err, now);
        m.source = Some("app".into());
        a.push(&m);
        let mut b = Batch::new();
        let mut m2 = LogMessage::new("second", Level::Info, now);
        m2.hostname = Some("h".into());
        b.push(&m2);
        let copied = b.iter().next().unwrap();
        a.push_record(&copied);
        let rows: Vec<_> = a.iter().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].message, rows[0].source, rows[0].hostname),
            ("first", Some("app"), None)
        );
        assert_eq!(
            (rows[1].message, rows[1].source, rows[1].hostname),
            ("second", None, Some("h"))
        );
        assert_eq!(rows[1].time_us, 1_700_000_000_123_456);
    }
}
