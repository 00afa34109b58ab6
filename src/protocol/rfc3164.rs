//! RFC 3164 ("BSD syslog") as real devices send it. RFC 3164 has no strict grammar, so
//! this follows the convention of `shared/corpus/README.md` (rsyslog, syslog-ng and
//! syslog-loose agree on it) plus the vendor quirks seen in the wild: ISO 8601 times,
//! a year before or after the time, Cisco counters and `*` (unsynchronised clock),
//! NX-OS `YYYY Mmm dd hh:mm:ss ZONE:`, AIX "Message forwarded from", no hostname,
//! no PRI. The instant is not resolved here: a BSD time has no year and no zone, and
//! that is the relay's policy (see [`Timestamp::resolve`]).

use super::common::{digits_value, fail, fixed_digits, frac_micros, lossy, pri};
use super::rfc5424::{make_datetime, offset};
use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Utc};
use nom::IResult;
use nom::bytes::complete::{take_while, take_while_m_n, take_while1};
use nom::character::complete::char as ch;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub struct Rfc3164<'a> {
    /// `None` when the message had no PRI (RFC 3164 4.3.3 then means user.notice).
    pub pri: Option<u8>,
    /// `None` only from [`parse_lenient`], for a message that has none.
    pub timestamp: Option<Timestamp>,
    /// The timestamp exactly as written, without a `:` after it.
    pub timestamp_text: Option<&'a str>,
    pub hostname: Option<Cow<'a, str>>,
    /// The TAG without `[pid]`.
    pub tag: Option<Cow<'a, str>>,
    pub procid: Option<Cow<'a, str>>,
    pub msg: &'a [u8],
    /// Cisco IOS message counter and sequence number (`<189>105: 000104: Mar 12 …`).
    pub message_counter: Option<u64>,
    pub sequence: Option<u64>,
    /// Cisco's `*` before the time: the device clock is not synchronised.
    pub clock_unsynced: bool,
}

/// A timestamp as written: a wall-clock time that may lack year and zone, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    Local {
        year: Option<i32>,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        micros: u32,
        /// The zone was written as UTC/GMT (NX-OS); other zone names are ignored.
        utc: bool,
    },
    Absolute(DateTime<FixedOffset>),
}

impl Timestamp {
    /// The instant, reading a zone-less time in `zone` and, without a year, taking the
    /// year that puts the time closest before `now` (a December message received on
    /// January 1st is last year's; one up to a day ahead is a clock skew, not a year ago).
    pub fn resolve(&self, zone: &FixedOffset, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            Timestamp::Absolute(t) => Some(t.with_timezone(&Utc)),
            Timestamp::Local {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
                utc,
            } => {
                let zone = if utc {
                    FixedOffset::east_opt(0)?
                } else {
                    *zone
                };
                let at =
                    |y: i32| {
                        let naive = chrono::NaiveDate::from_ymd_opt(y, month, day)?
                            .and_hms_micro_opt(hour, minute, second.min(59), micros)?;
                        zone.from_local_datetime(&naive)
                            .single()
                            .map(|t| t.with_timezone(&Utc))
                    };
                match year {
                    Some(y) => at(y),
                    None => {
                        let this_year = now.with_timezone(&zone).year();
                        let limit = now + chrono::Duration::days(1);
                        [this_year, this_year - 1, this_year - 2, this_year - 3]
                            .into_iter()
                            .filter_map(at) // Feb 29 exists only in leap years
                            .find(|t| *t <= limit)
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Neither a PRI nor a timestamp.
    Header,
    Pri,
    Timestamp,
    Hostname,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Header => "header",
            Part::Pri => "pri",
            Part::Timestamp => "timestamp",
            Part::Hostname => "hostname",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3164 {}", part.name())]
pub struct Error {
    pub part: Part,
}

fn err(part: Part) -> Error {
    Error { part }
}

/// Parses one BSD syslog message.
pub fn parse(input: &[u8]) -> Result<Rfc3164<'_>, Error> {
    // A single trailing LF or CRLF is left over from framing.
    let input = input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(input);
    let (rest, pri) = if input.first() == Some(&b'<') {
        let (rest, p) = pri(input).map_err(|_| err(Part::Pri))?;
        (rest, Some(p))
    } else {
        (input, None)
    };
    let rest = skip_spaces(rest);
    let no_time = err(if pri.is_some() {
        Part::Timestamp
    } else {
        Part::Header
    });

    let mut head = Header::default();
    let (rest, (timestamp, text)) = match stamped(rest) {
        Ok(ok) => ok,
        Err(_) if pri.is_some() => cisco_prefix(rest, &mut head).map_err(|_| no_time)?,
        Err(_) => return Err(no_time),
    };
    head.clock_unsynced |= text.0;
    let timestamp_text = std::str::from_utf8(text.1).unwrap_or_default();
    let rest = rest.strip_prefix(b":").unwrap_or(rest);

    let mut m = Rfc3164 {
        pri,
        timestamp: Some(timestamp),
        timestamp_text: Some(timestamp_text),
        hostname: head.hostname.map(lossy),
        tag: None,
        procid: None,
        msg: b"",
        message_counter: head.counter,
        sequence: head.sequence,
        clock_unsynced: head.clock_unsynced,
    };
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Ok(m); // the timestamp ended the message
    };
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix(b"Message forwarded from ") {
        // AIX: "Message forwarded from HOST: TAG…"
        let (r, host) = word(r);
        m.hostname = Some(lossy(host.strip_suffix(b":").unwrap_or(host)));
        rest = r.strip_prefix(b" ").unwrap_or(r);
    } else if m.hostname.is_none() {
        let (r, w) = word(rest);
        if w.iter().any(|&b| b < 0x20 && b != b'\t') {
            return Err(err(Part::Hostname));
        }
        if w.is_empty() {
            m.msg = rest.strip_prefix(b" ").unwrap_or(rest);
            return Ok(m);
        }
        if !is_tag_word(w) {
            m.hostname = (w != b"-").then(|| lossy(w));
            match r.strip_prefix(b" ") {
                // A second SP (an empty word) means no TAG.
                Some(after) if !after.starts_with(b" ") => rest = after,
                _ => {
                    m.msg = r.strip_prefix(b" ").unwrap_or(r);
                    return Ok(m);
                }
            }
        }
    }
    tag_and_msg(rest, &mut m);
    Ok(m)
}

/// Like [`parse`], but a message with a valid PRI and no timestamp is still read, as
/// RFC 3164 4.3.2 asks of relays: no time and no hostname, `TAG[pid]:` when the first
/// word has that form, and the rest is the message (`<15> openvpn[2499]: …`).
pub fn parse_lenient(input: &[u8]) -> Result<Rfc3164<'_>, Error> {
    let e = match parse(input) {
        Ok(m) => return Ok(m),
        Err(e) if e.part != Part::Timestamp => return Err(e),
        Err(e) => e,
    };
    let input = input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(input);
    let Ok((rest, pri)) = pri(input) else {
        return Err(e);
    };
    let rest = skip_spaces(rest);
    let mut m = Rfc3164 {
        pri: Some(pri),
        timestamp: None,
        timestamp_text: None,
        hostname: None,
        tag: None,
        procid: None,
        msg: rest,
        message_counter: None,
        sequence: None,
        clock_unsynced: false,
    };
    if is_tag_word(word(rest).1) {
        tag_and_msg(rest, &mut m);
    }
    Ok(m)
}

#[derive(Default)]
struct Header<'a> {
    counter: Option<u64>,
    sequence: Option<u64>,
    hostname: Option<&'a [u8]>,
    clock_unsynced: bool,
}

fn skip_spaces(input: &[u8]) -> &[u8] {
    let n = input.iter().take_while(|&&b| b == b' ').count();
    &input[n..]
}

/// The next SP-delimited word and what follows it.
fn word(input: &[u8]) -> (&[u8], &[u8]) {
    let n = input.iter().position(|&b| b == b' ').unwrap_or(input.len());
    (&input[n..], &input[..n])
}

/// A word in the HOSTNAME position that is really a TAG: `name:` or `name[pid]` /
/// `name[pid]:` (OpenBSD, haproxy). `fe80::1:` style IPv6 hosts are not tags.
fn is_tag_word(w: &[u8]) -> bool {
    if let Some(open) = w.iter().position(|&b| b == b'[') {
        return open > 0 && (w.ends_with(b"]") || w.ends_with(b"]:"));
    }
    match w.strip_suffix(b":") {
        Some(head) => !head.contains(&b':'),
        None => false,
    }
}

/// TAG (up to `[`, `:` or SP), optional `[pid]`, optional `:`, then MSG less one SP.
fn tag_and_msg<'a>(input: &'a [u8], m: &mut Rfc3164<'a>) {
    let end = input
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(input.len());
    let (tag, mut rest) = input.split_at(end);
    if !tag.is_empty() {
        m.tag = Some(lossy(tag));
        if let Some(r) = rest.strip_prefix(b"[")
            && let Some(close) = r.iter().position(|&b| b == b']')
        {
            m.procid = Some(lossy(&r[..close]));
            rest = &r[close + 1..];
        }
    }
    let rest = rest.strip_prefix(b":").unwrap_or(rest);
    m.msg = rest.strip_prefix(b" ").unwrap_or(rest);
}

/// Cisco IOS prefixes before the time: `COUNTER: `, `SEQUENCE: `, `HOST: `, `*`.
#[allow(clippy::type_complexity)]
fn cisco_prefix<'a>(
    input: &'a [u8],
    head: &mut Header<'a>,
) -> IResult<&'a [u8], (Timestamp, (bool, &'a [u8]))> {
    let numbered = |i: &'a [u8]| -> IResult<&'a [u8], &'a [u8]> {
        let (r, d) = take_while(|b: u8| b.is_ascii_digit())(i)?;
        let (r, _) = nom::bytes::complete::tag(b": ")(r)?;
        Ok((r, d))
    };
    let (rest, counter) = numbered(input)?;
    head.counter = (!counter.is_empty() && counter.len() < 20).then(|| digits_value64(counter));
    if let Ok(ok) = stamped(rest) {
        return Ok(ok);
    }
    if let Ok((r, seq)) = numbered(rest)
        && !seq.is_empty()
        && seq.len() < 20
        && let Ok(ok) = stamped(r)
    {
        head.sequence = Some(digits_value64(seq));
        return Ok(ok);
    }
    let (r, host) = take_while1(|b: u8| b != b':' && b != b' ')(rest)?;
    let (r, _) = nom::bytes::complete::tag(b": ")(r)?;
    let ok = stamped(r)?;
    head.hostname = Some(host);
    Ok(ok)
}

fn digits_value64(d: &[u8]) -> u64 {
    d.iter().fold(0u64, |a, x| a * 10 + u64::from(x - b'0'))
}

/// An optional `*` and a timestamp; returns (unsynced, text) beside it.
#[allow(clippy::type_complexity)]
fn stamped(input: &[u8]) -> IResult<&[u8], (Timestamp, (bool, &[u8]))> {
    let (start, star) = match input.strip_prefix(b"*") {
        Some(r) => (r, true),
        None => (input, false),
    };
    let (rest, ts) = timestamp(start)?;
    // The timestamp must end the message or be followed by SP or ':'.
    if !matches!(rest.first(), None | Some(b' ') | Some(b':')) {
        return fail(input);
    }
    let text = &start[..start.len() - rest.len()];
    Ok((rest, (ts, (star, text))))
}

fn timestamp(input: &[u8]) -> IResult<&[u8], Timestamp> {
    iso(input).or_else(|_| bsd(input)).or_else(|_| nxos(input))
}

/// ISO 8601 / RFC 3339, with any number of fraction digits and an optional offset.
fn iso(input: &[u8]) -> IResult<&[u8], Timestamp> {
    let (rest, year) = fixed_digits(4)(input)?;
    let (rest, _) = ch('-')(rest)?;
    let (rest, month) = fixed_digits(2)(rest)?;
    let (rest, _) = ch('-')(rest)?;
    let (rest, day) = fixed_digits(2)(rest)?;
    let (rest, _) = ch('T')(rest)?;
    let (rest, (hour, minute, second, micros)) = clock(rest)?;
    let (rest, off) = match offset(rest) {
        Ok((r, o)) => (r, Some(o)),
        Err(_) => (rest, None),
    };
    let Some(t) = make_datetime(
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
        off.unwrap_or(0),
    ) else {
        return fail(input);
    };
    let ts = match off {
        Some(_) => Timestamp::Absolute(t),
        None => Timestamp::Local {
            year: Some(year as i32),
            month,
            day,
            hour,
            minute,
            second,
            micros,
            utc: false,
        },
    };
    Ok((rest, ts))
}

/// `hh:mm:ss[.frac]` with hour ≤ 23, minute and second ≤ 59.
fn clock(input: &[u8]) -> IResult<&[u8], (u32, u32, u32, u32)> {
    let (rest, hour) = fixed_digits(2)(input)?;
    let (rest, _) = ch(':')(rest)?;
    let (rest, minute) = fixed_digits(2)(rest)?;
    let (rest, _) = ch(':')(rest)?;
    let (rest, second) = fixed_digits(2)(rest)?;
    if hour > 23 || minute > 59 || second > 59 {
        return fail(input);
    }
    let (rest, micros) = match rest.strip_prefix(b".") {
        Some(r) => {
            let (r, d) = take_while1(|b: u8| b.is_ascii_digit())(r)?;
            (r, frac_micros(d))
        }
        None => (rest, 0),
    };
    Ok((rest, (hour, minute, second, micros)))
}

fn month(input: &[u8]) -> IResult<&[u8], u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let (rest, name) = take_while_m_n(3, 3, |b: u8| b.is_ascii_alphabetic())(input)?;
    let lower = [
        name[0].to_ascii_lowercase(),
        name[1].to_ascii_lowercase(),
        name[2].to_ascii_lowercase(),
    ];
    match MONTHS.iter().position(|m| **m == lower) {
        Some(i) => Ok((rest, i as u32 + 1)),
        None => fail(input),
    }
}

fn spaces1(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b == b' ')(input)
}

fn day(input: &[u8]) -> IResult<&[u8], u32> {
    let (rest, d) = take_while_m_n(1, 2, |b: u8| b.is_ascii_digit())(input)?;
    let d = digits_value(d);
    if !(1..=31).contains(&d) {
        return fail(input);
    }
    Ok((rest, d))
}

/// `Mmm d[d] [yyyy] hh:mm:ss[.frac] [yyyy]`: the year before the time (PIX) or after
/// it (Linksys; only when a word follows after a single SP).
fn bsd(input: &[u8]) -> IResult<&[u8], Timestamp> {
    let (rest, month) = month(input)?;
    let (rest, _) = spaces1(rest)?;
    let (rest, day) = day(rest)?;
    let (rest, _) = spaces1(rest)?;
    let (rest, mut year) = match year_then_space(rest) {
        Ok((r, y)) => (r, Some(y)),
        Err(_) => (rest, None),
    };
    let (mut rest, (hour, minute, second, micros)) = clock(rest)?;
    if year.is_none()
        && let Some(after) = rest.strip_prefix(b" ")
        && let Ok((r, y)) = fixed_digits(4)(after)
        && r.len() > 1
        && r[0] == b' '
        && r[1] != b' '
    {
        year = Some(y as i32);
        rest = r;
    }
    Ok((
        rest,
        Timestamp::Local {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            utc: false,
        },
    ))
}

fn year_then_space(input: &[u8]) -> IResult<&[u8], i32> {
    let (rest, y) = fixed_digits(4)(input)?;
    let (rest, _) = spaces1(rest)?;
    Ok((rest, y as i32))
}

/// NX-OS: `yyyy Mmm dd hh:mm:ss[ ZONE]`, the zone only when a `:` follows it.
fn nxos(input: &[u8]) -> IResult<&[u8], Timestamp> {
    let (rest, year) = year_then_space(input)?;
    let (
        rest,
        Timestamp::Local {
            month,
            day,
            hour,
            minute,
            second,
            micros,
            ..
        },
    ) = bsd(rest)?
    else {
        return fail(input);
    };
    let mut utc = false;
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix(b" ") {
        let n = after.iter().take_while(|b| b.is_ascii_uppercase()).count();
        if (1..=5).contains(&n) && after.get(n) == Some(&b':') {
            utc = matches!(&after[..n], b"UTC" | b"GMT" | b"Z");
            rest = &after[n..];
        }
    }
    Ok((
        rest,
        Timestamp::Local {
            year: Some(year),
            month,
            day,
            hour,
            minute,
            second,
            micros,
            utc,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        let m = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed").unwrap();
        assert_eq!(m.pri, Some(34));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.tag.as_deref(), Some("su"));
        assert_eq!(m.msg, b"'su root' failed");
    }

    #[test]
    fn year_inference_rolls_back_across_new_year() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 5, 0).unwrap();
        let m = parse(b"<13>Dec 31 23:59:00 h t: x").unwrap();
        let t = m.timestamp.unwrap().resolve(&utc, now).unwrap();
        assert_eq!(t.year(), 2026);
        let m = parse(b"<13>Jan  1 00:04:00 h t: x").unwrap();
        assert_eq!(
            m.timestamp.unwrap().resolve(&utc, now).unwrap().year(),
            2027
        );
        // Feb 29 goes back to the last leap year.
        let m = parse(b"<13>Feb 29 12:00:00 h t: x").unwrap();
        assert_eq!(
            m.timestamp.unwrap().resolve(&utc, now).unwrap().year(),
            2024
        );
    }

    #[test]
    fn configured_zone_applies_to_bsd_times() {
        let plus2 = FixedOffset::east_opt(7200).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let m = parse(b"<13>May  1 12:00:00 h t: x").unwrap();
        let t = m.timestamp.unwrap().resolve(&plus2, now).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-05-01T10:00:00+00:00");
    }
}
