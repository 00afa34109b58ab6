//! Wire formats: framing, the three message syntaxes, and the dispatch that turns any
//! frame into one [`LogMessage`]. Everything here is a pure function over bytes.

pub mod common;
pub mod framing;
pub mod json;
pub mod rfc3164;
pub mod rfc5424;
pub mod serialize;

use crate::message::{Facility, Level, LogMessage, Protocol};
use chrono::{DateTime, FixedOffset, Utc};
use common::{lossy, strip_bom};
use std::borrow::Cow;

/// What a parser needs to know beyond the bytes: when the frame arrived, from whom,
/// and the zone in which to read RFC 3164 times that carry none.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub received: DateTime<Utc>,
    pub peer: Option<&'a str>,
    pub zone: FixedOffset,
}

impl Context<'_> {
    pub fn new(received: DateTime<Utc>) -> Self {
        Context {
            received,
            peer: None,
            zone: FixedOffset::east_opt(0).expect("UTC is a valid offset"),
        }
    }
}

/// Turns one frame into a record: JSON when it starts with `{`, RFC 5424 when it has a
/// VERSION after the PRI, RFC 3164 otherwise, and `raw` (with the PRI when it was
/// readable) when none of them accepts it. Returns `None` only for an empty frame.
pub fn decode_frame<'a>(frame: &'a [u8], ctx: &Context<'a>) -> Option<LogMessage<'a>> {
    let start = frame
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(frame.len());
    let body = &frame[start..];
    let mut msg = match body.first()? {
        b'{' => json::parse(body, ctx.received).ok(),
        b'<' if looks_like_5424(body) => match rfc5424::parse(body) {
            Ok(m) => Some(from_5424(m, ctx)),
            Err(_) => rfc3164::parse_lenient(body).ok().map(|m| from_3164(m, ctx)),
        },
        _ => rfc3164::parse_lenient(body).ok().map(|m| from_3164(m, ctx)),
    }
    .unwrap_or_else(|| raw(frame, ctx));
    msg.received = ctx.received;
    msg.peer = ctx.peer.map(Cow::Borrowed);
    Some(msg)
}

/// `<PRI>` followed by a digit: a VERSION, so RFC 5424 (3164 times never start so).
pub(crate) fn looks_like_5424(frame: &[u8]) -> bool {
    match common::pri(frame) {
        Ok((rest, _)) => rest.first().is_some_and(u8::is_ascii_digit) && !is_iso_date(rest),
        Err(_) => false,
    }
}

/// `<PRI>2003-10-11T…` is RFC 3164 with an ISO time, not VERSION 2003.
fn is_iso_date(rest: &[u8]) -> bool {
    rest.len() > 4 && rest[..4].iter().all(u8::is_ascii_digit) && rest[4] == b'-'
}

/// One LF (or CRLF) ending a message is framing residue (rsyslog's RFC 5424 templates
/// end in `\n` even inside octet-counted frames); newlines inside the text stay.
pub(crate) fn trailing_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r\n")
        .or_else(|| b.strip_suffix(b"\n"))
        .unwrap_or(b)
}

pub(crate) fn pri_parts(pri: u8) -> (Level, Option<Facility>) {
    (
        Level::from_code(pri & 7).unwrap_or(Level::Notice),
        Facility::from_code(pri >> 3),
    )
}

pub fn from_5424<'a>(m: rfc5424::Rfc5424<'a>, ctx: &Context<'a>) -> LogMessage<'a> {
    let (level, facility) = pri_parts(m.pri);
    LogMessage {
        timestamp: m.timestamp.map_or(ctx.received, |t| t.with_timezone(&Utc)),
        received: ctx.received,
        level,
        facility,
        hostname: m.hostname.map(Cow::Borrowed),
        source: m.app_name.map(Cow::Borrowed),
        procid: m.procid.map(Cow::Borrowed),
        msgid: m.msgid.map(Cow::Borrowed),
        structured_data: m.structured_data,
        message: m
            .msg
            .map_or(Cow::Borrowed(""), |b| lossy(strip_bom(trailing_newline(b)))),
        protocol: Protocol::Rfc5424,
        peer: None,
    }
}

pub fn from_3164<'a>(m: rfc3164::Rfc3164<'a>, ctx: &Context<'a>) -> LogMessage<'a> {
    // RFC 3164 4.3.3: without a PRI the message is user.notice.
    let (level, facility) = pri_parts(m.pri.unwrap_or(13));
    LogMessage {
        timestamp: m
            .timestamp
            .and_then(|t| t.resolve(&ctx.zone, ctx.received))
            .unwrap_or(ctx.received),
        received: ctx.received,
        level,
        facility,
        hostname: m.hostname,
        source: m.tag,
        procid: m.procid,
        msgid: None,
        structured_data: Vec::new(),
        message: lossy(strip_bom(m.msg)),
        protocol: Protocol::Rfc3164,
        peer: None,
    }
}

/// A frame no parser took: its text after a readable PRI, with that PRI's level.
pub fn raw<'a>(frame: &'a [u8], ctx: &Context<'a>) -> LogMessage<'a> {
    let trimmed = frame.trim_ascii_start();
    let (text, level, facility) = match common::pri(trimmed) {
        Ok((rest, pri)) => {
            let (l, f) = pri_parts(pri);
            (rest, l, f)
        }
        Err(_) => (frame, Level::Notice, None),
    };
    let mut m = LogMessage::new(lossy(text), level, ctx.received);
    m.facility = facility;
    m.protocol = Protocol::Raw;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            received: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            peer: Some("127.0.0.1:5000"),
            zone: FixedOffset::east_opt(0).unwrap(),
        }
    }

    #[test]
    fn dispatch_by_first_bytes() {
        let c = ctx();
        let p = |f: &'static [u8]| decode_frame(f, &c).unwrap().protocol;
        assert_eq!(p(b"<13>1 - - - - - - hi"), Protocol::Rfc5424);
        assert_eq!(p(b"<13>Oct 11 22:14:15 host app: hi"), Protocol::Rfc3164);
        assert_eq!(
            p(b"<13>2003-10-11T22:14:15Z host app: hi"),
            Protocol::Rfc3164
        );
        assert_eq!(p(br#"{"message":"hi"}"#), Protocol::Json);
        assert_eq!(p(b"{not json"), Protocol::Raw);
        assert_eq!(p(b"just text"), Protocol::Raw);
        assert!(decode_frame(b"  \r", &c).is_none());
    }

    #[test]
    fn raw_keeps_text_and_readable_pri() {
        let c = ctx();
        let m = decode_frame(b"<11 no pri end", &c).unwrap();
        assert_eq!(m.protocol, Protocol::Raw);
        assert_eq!(m.message, "<11 no pri end");
        assert_eq!(m.peer.as_deref(), Some("127.0.0.1:5000"));
        let m = decode_frame(b"<14>1 broken 5424 header", &c).unwrap();
        assert_eq!((m.protocol, m.level), (Protocol::Rfc3164, Level::Info));
        assert_eq!(m.message, "1 broken 5424 header");
        let m = decode_frame(b"<999>x", &c).unwrap();
        assert_eq!((m.message.as_ref(), m.level), ("<999>x", Level::Notice));
    }

    #[test]
    fn pri_without_timestamp_is_read_as_rfc3164_allows() {
        let c = ctx();
        let m = decode_frame(b"<11>myapp[42]: disk full", &c).unwrap();
        assert_eq!(m.protocol, Protocol::Rfc3164);
        assert_eq!((m.level, m.facility.unwrap().name()), (Level::Err, "user"));
        assert_eq!(
            (m.source.as_deref(), m.procid.as_deref()),
            (Some("myapp"), Some("42"))
        );
        assert_eq!(m.message, "disk full");
        assert_eq!(m.timestamp, c.received);
    }

    #[test]
    fn bom_dropped_and_bad_utf8_replaced() {
        let c = ctx();
        let m = decode_frame(b"<13>1 - - - - - - \xEF\xBB\xBFh\xC3\xA9", &c).unwrap();
        assert_eq!(m.message, "hé");
        let m = decode_frame(b"<13>1 - - - - - - a\xFFb", &c).unwrap();
        assert_eq!(m.message, "a\u{FFFD}b");
        let m = decode_frame(b"<13>1 - - - - - - two\nlines\n", &c).unwrap();
        assert_eq!(m.message, "two\nlines");
    }
}
