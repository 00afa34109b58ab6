//! RFC 5424 (`<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`), strict.
//!
//! A pure function over bytes: the result borrows from the input; only structured-data
//! values with escapes are copied.

use super::common::{digits_value, fail, frac_micros, pri, sp};
use crate::message::SdElement;
use chrono::{DateTime, FixedOffset};
use nom::IResult;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::char as ch;
use std::borrow::Cow;

/// The header and body of one RFC 5424 message, borrowed from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Rfc5424<'a> {
    pub pri: u8,
    pub version: u16,
    /// `None` for NILVALUE.
    pub timestamp: Option<DateTime<FixedOffset>>,
    /// The TIMESTAMP exactly as sent.
    pub timestamp_text: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    /// MSG octets as sent (BOM included); `None` when nothing follows STRUCTURED-DATA.
    pub msg: Option<&'a [u8]>,
}

/// The field being read where the first violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Pri,
    Version,
    Timestamp,
    Hostname,
    AppName,
    Procid,
    Msgid,
    StructuredData,
    Msg,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Pri => "pri",
            Part::Version => "version",
            Part::Timestamp => "timestamp",
            Part::Hostname => "hostname",
            Part::AppName => "app_name",
            Part::Procid => "procid",
            Part::Msgid => "msgid",
            Part::StructuredData => "structured_data",
            Part::Msg => "msg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 5424 {} at byte {offset}", part.name())]
pub struct Error {
    pub part: Part,
    pub offset: usize,
}

const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;
const MAX_SD_NAME: usize = 32;

/// Parses one complete RFC 5424 message.
pub fn parse(input: &[u8]) -> Result<Rfc5424<'_>, Error> {
    let mut structured_data = Vec::new();
    let h = parse_with(input, &mut structured_data)?;
    Ok(Rfc5424 {
        pri: h.pri,
        version: h.version,
        timestamp: h.timestamp.and_then(Stamp::to_datetime),
        timestamp_text: h.timestamp_text,
        hostname: h.hostname,
        app_name: h.app_name,
        procid: h.procid,
        msgid: h.msgid,
        structured_data,
        msg: h.msg,
    })
}

/// An RFC 5424 TIMESTAMP: the instant in microseconds since the epoch (UTC) and the
/// offset it was written in, without a calendar conversion back and forth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub utc_us: i64,
    pub offset_secs: i32,
}

impl Stamp {
    pub fn to_datetime(self) -> Option<DateTime<FixedOffset>> {
        let utc = DateTime::from_timestamp_micros(self.utc_us)?;
        Some(utc.with_timezone(&FixedOffset::east_opt(self.offset_secs)?))
    }
}

/// Everything of an RFC 5424 message but its STRUCTURED-DATA, which [`parse_with`]
/// hands to an [`SdSink`] as it reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub pri: u8,
    pub version: u16,
    /// `None` for NILVALUE.
    pub timestamp: Option<Stamp>,
    /// The TIMESTAMP exactly as sent.
    pub timestamp_text: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// MSG octets as sent (BOM included); `None` when nothing follows STRUCTURED-DATA.
    pub msg: Option<&'a [u8]>,
}

/// Receives the SD-ELEMENTs of a message in input order while [`parse_with`] reads
/// them. What it received is meaningless when the parse fails (a later element may
/// be malformed or repeat an SD-ID).
pub trait SdSink<'a> {
    /// An SD-ELEMENT starts.
    fn element(&mut self, id: &'a str);
    /// A parameter of the element that started last, its value unescaped.
    fn param(&mut self, name: &'a str, value: Cow<'a, str>);
    /// The element that started last is complete.
    fn end(&mut self);
}

/// The elements as [`Rfc5424::structured_data`] holds them.
impl<'a> SdSink<'a> for Vec<SdElement<'a>> {
    fn element(&mut self, id: &'a str) {
        self.push(SdElement {
            id: Cow::Borrowed(id),
            params: Vec::with_capacity(4),
        });
    }

    fn param(&mut self, name: &'a str, value: Cow<'a, str>) {
        if let Some(e) = self.last_mut() {
            e.params.push((Cow::Borrowed(name), value));
        }
    }

    fn end(&mut self) {}
}

/// Parses one complete RFC 5424 message as [`parse`] does (same acceptance, same
/// errors), handing its structured data to `sd` instead of building a list of it.
pub fn parse_with<'a, S: SdSink<'a>>(input: &'a [u8], sd: &mut S) -> Result<Header<'a>, Error> {
    let at = |part: Part, rest: &[u8]| Error {
        part,
        offset: input.len() - rest.len(),
    };
    let (rest, pri) = pri(input).map_err(|_| at(Part::Pri, input))?;
    let (rest, version) = version(rest).map_err(|_| at(Part::Version, rest))?;
    let (rest, (timestamp, ts_len)) = timestamp(rest).map_err(|_| at(Part::Timestamp, rest))?;
    let timestamp_text = ascii(&rest[..ts_len]);
    let rest = &rest[ts_len..];
    let rest = sp(rest).map_err(|_| at(Part::Timestamp, rest))?.0;
    let (rest, hostname) =
        header_field(rest, MAX_HOSTNAME).map_err(|_| at(Part::Hostname, rest))?;
    let (rest, app_name) = header_field(rest, MAX_APP_NAME).map_err(|_| at(Part::AppName, rest))?;
    let (rest, procid) = header_field(rest, MAX_PROCID).map_err(|_| at(Part::Procid, rest))?;
    let (rest, msgid) = header_field(rest, MAX_MSGID).map_err(|_| at(Part::Msgid, rest))?;
    let (rest, ()) =
        structured_data(rest, sd).map_err(|e| at(Part::StructuredData, error_input(e, rest)))?;
    let msg = match rest {
        [] => None,
        [b' ', msg @ ..] => Some(msg),
        _ => return Err(at(Part::StructuredData, rest)),
    };
    if let Some(body) = msg.and_then(|m| m.strip_prefix(b"\xEF\xBB\xBF")) {
        // MSG-UTF8: after a BOM the text must be UTF-8 (checked with SIMD: a tenth of
        // the realistic workload's messages carry a BOM).
        if let Err(e) = simdutf8::compat::from_utf8(body) {
            return Err(Error {
                part: Part::Msg,
                offset: input.len() - body.len() + e.valid_up_to(),
            });
        }
    }
    Ok(Header {
        pri,
        version,
        timestamp,
        timestamp_text: timestamp.map(|_| timestamp_text),
        hostname,
        app_name,
        procid,
        msgid,
        msg,
    })
}

fn error_input<'a>(e: nom::Err<nom::error::Error<&'a [u8]>>, fallback: &'a [u8]) -> &'a [u8] {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e.input,
        nom::Err::Incomplete(_) => fallback,
    }
}

/// Text already checked to be printable ASCII.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: every caller passes bytes it has checked to be in 33..=126 (ASCII), and
    // ASCII is valid UTF-8. This skips a second validation of every header field.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// VERSION = NONZERO-DIGIT 0*2DIGIT, then SP.
fn version(input: &[u8]) -> IResult<&[u8], u16> {
    let (rest, digits) = take_while_m_n(1, 3, |b: u8| b.is_ascii_digit())(input)?;
    if digits[0] == b'0' {
        return fail(input);
    }
    let (rest, _) = sp(rest)?;
    Ok((rest, digits_value(digits) as u16))
}

/// TIMESTAMP: NILVALUE or FULL-DATE "T" FULL-TIME. Returns the instant and the
/// length of its text, leaving the input unconsumed so the caller can keep the text.
fn timestamp(input: &[u8]) -> IResult<&[u8], (Option<Stamp>, usize)> {
    if input.first() == Some(&b'-') {
        return Ok((input, (None, 1)));
    }
    let (rest, t) = full_timestamp(input)?;
    Ok((input, (Some(t), input.len() - rest.len())))
}

/// `YYYY-MM-DDThh:mm:ss[.1-6 digits](Z|+hh:mm|-hh:mm)`, checked for real dates. Read
/// by position rather than with combinators: every message has one.
pub(crate) fn full_timestamp(input: &[u8]) -> IResult<&[u8], Stamp> {
    let Some(
        &[
            y0,
            y1,
            y2,
            y3,
            b'-',
            mo0,
            mo1,
            b'-',
            d0,
            d1,
            b'T',
            h0,
            h1,
            b':',
            mi0,
            mi1,
            b':',
            s0,
            s1,
        ],
    ) = input.first_chunk::<19>()
    else {
        return fail(input);
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        number(&[y0, y1, y2, y3]),
        number(&[mo0, mo1]),
        number(&[d0, d1]),
        number(&[h0, h1]),
        number(&[mi0, mi1]),
        number(&[s0, s1]),
    ) else {
        return fail(input);
    };
    let (rest, micros) = match &input[19..] {
        [b'.', fraction @ ..] => {
            let n = fraction
                .iter()
                .take(6)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n == 0 {
                return fail(input);
            }
            (&fraction[n..], frac_micros(&fraction[..n]))
        }
        rest => (rest, 0),
    };
    let (rest, offset) = offset(rest)?;
    let Some(utc_us) = civil_micros(year, month, day, hour, minute, second, micros, offset) else {
        return fail(input);
    };
    Ok((
        rest,
        Stamp {
            utc_us,
            offset_secs: offset,
        },
    ))
}

/// The value of `digits` if they all are ASCII digits.
#[inline]
fn number(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .all(u8::is_ascii_digit)
        .then(|| digits_value(digits))
}

/// TIME-OFFSET: `Z` or `(+|-)hh:mm`, as seconds east of UTC.
pub(crate) fn offset(input: &[u8]) -> IResult<&[u8], i32> {
    let (sign, hours, minutes, rest) = match input {
        [b'Z', rest @ ..] => return Ok((rest, 0)),
        [sign @ (b'+' | b'-'), h0, h1, b':', m0, m1, rest @ ..] => {
            match (number(&[*h0, *h1]), number(&[*m0, *m1])) {
                (Some(h), Some(m)) => (*sign, h, m, rest),
                _ => return fail(input),
            }
        }
        _ => return fail(input),
    };
    if hours > 23 || minutes > 59 {
        return fail(input);
    }
    let secs = (hours * 3600 + minutes * 60) as i32;
    Ok((rest, if sign == b'-' { -secs } else { secs }))
}

/// A real calendar instant, or `None` (Feb 30, hour 24, second 60, …).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_datetime(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    offset_secs: i32,
) -> Option<DateTime<FixedOffset>> {
    let utc_us = civil_micros(year, month, day, hour, minute, second, micros, offset_secs)?;
    Stamp {
        utc_us,
        offset_secs,
    }
    .to_datetime()
}

/// A real calendar instant as microseconds since the epoch (UTC), or `None`.
#[allow(clippy::too_many_arguments)]
fn civil_micros(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    offset_secs: i32,
) -> Option<i64> {
    // Checked by hand and converted with days-from-civil: chrono's calendar
    // constructors cost more than the rest of the header. Second 60 (a leap second)
    // is invalid in RFC 5424.
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return None;
    }
    // A valid offset is less than a day either way (`FixedOffset::east_opt`).
    if offset_secs.unsigned_abs() >= 86_400 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some((local - i64::from(offset_secs)) * 1_000_000 + i64::from(micros))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[inline]
fn is_print_us_ascii(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// One header field (NILVALUE or 1..=max PRINTUSASCII), then SP. A plain loop: this
/// runs four times per message and is the hottest code of the parser.
#[inline]
fn header_field(input: &[u8], max: usize) -> IResult<&[u8], Option<&str>> {
    let n = input
        .iter()
        .take(max + 1)
        .position(|&b| !is_print_us_ascii(b))
        .unwrap_or(input.len().min(max + 1));
    if n == 0 || n > max || input.get(n) != Some(&b' ') {
        return fail(&input[n.min(input.len())..]);
    }
    let value = &input[..n];
    Ok((&input[n + 1..], (value != b"-").then(|| ascii(value))))
}

#[inline]
fn is_sd_name(b: u8) -> bool {
    is_print_us_ascii(b) && !matches!(b, b'=' | b']' | b'"')
}

/// STRUCTURED-DATA: NILVALUE or 1*SD-ELEMENT; SD-IDs must be unique.
fn structured_data<'a, S: SdSink<'a>>(input: &'a [u8], sink: &mut S) -> IResult<&'a [u8], ()> {
    if input.first() == Some(&b'-') {
        return Ok((&input[1..], ()));
    }
    let mut seen = SeenIds::default();
    let mut rest = input;
    loop {
        let start = rest;
        let (r, id) = sd_element(rest, sink)?;
        if !seen.insert(id) {
            return fail(start);
        }
        rest = r;
        if rest.first() != Some(&b'[') {
            break;
        }
    }
    Ok((rest, ()))
}

/// The SD-IDs of one message so far: the first few on the stack (messages carry one
/// or two), any further ones in a list.
#[derive(Default)]
struct SeenIds<'a> {
    first: [&'a [u8]; 4],
    len: usize,
    more: Vec<&'a [u8]>,
}

impl<'a> SeenIds<'a> {
    /// Adds `id`; false when it was there already.
    fn insert(&mut self, id: &'a [u8]) -> bool {
        let on_stack = self.len.min(self.first.len());
        if self.first[..on_stack].contains(&id) || self.more.contains(&id) {
            return false;
        }
        match self.first.get_mut(self.len) {
            Some(slot) => *slot = id,
            None => self.more.push(id),
        }
        self.len += 1;
        true
    }
}

/// One SD-ELEMENT, handed to `sink`; returns its SD-ID.
fn sd_element<'a, S: SdSink<'a>>(input: &'a [u8], sink: &mut S) -> IResult<&'a [u8], &'a [u8]> {
    let (mut rest, _) = ch('[')(input)?;
    let (r, id) = take_while_m_n(1, MAX_SD_NAME, is_sd_name)(rest)?;
    sink.element(ascii(id));
    rest = r;
    loop {
        match rest.first() {
            Some(b']') => {
                sink.end();
                return Ok((&rest[1..], id));
            }
            Some(b' ') => {
                let (r, name) = take_while_m_n(1, MAX_SD_NAME, is_sd_name)(&rest[1..])?;
                let (r, _) = tag(b"=\"")(r)?;
                let (r, value) = param_value(r)?;
                sink.param(ascii(name), value);
                rest = r;
            }
            _ => return fail(rest),
        }
    }
}

/// PARAM-VALUE up to and including its closing quote. `\"`, `\\` and `\]` are
/// unescaped; any other backslash stays with the character after it (6.3.3).
fn param_value(input: &[u8]) -> IResult<&[u8], Cow<'_, str>> {
    let mut escaped = false;
    let mut i = 0;
    loop {
        // Jump to the next character that matters (SIMD search).
        match memchr::memchr3(b'"', b'\\', b']', &input[i..]) {
            None => return fail(&input[input.len()..]),
            Some(k) => i += k,
        }
        match input[i] {
            b'\\' if i + 1 < input.len() => {
                escaped |= matches!(input[i + 1], b'"' | b'\\' | b']');
                i += 2;
            }
            b'\\' => return fail(&input[i..]),
            b'"' => break,
            _ => return fail(&input[i..]), // `]` must be escaped
        }
    }
    let raw = &input[..i];
    // Most values are ASCII: checking that first (eight bytes at a time, inlined) is
    // cheaper than a call to the general validation for every short value.
    let text = if raw.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(raw) }
    } else {
        match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(_) => return fail(input),
        }
    };
    let value = if escaped {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(n @ ('"' | '\\' | ']')) => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    };
    Ok((&input[i + 1..], value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_with_sd() {
        let m = parse(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
              [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]\"] BOMAn application",
        )
        .unwrap();
        assert_eq!(m.pri, 165);
        assert_eq!(m.timestamp.unwrap().timestamp_subsec_micros(), 3000);
        assert_eq!(m.procid, None);
        assert_eq!(m.structured_data[0].params[1].1, "App]");
        assert_eq!(m.msg, Some(&b"BOMAn application"[..]));
    }

    #[test]
    fn civil_dates_match_chrono() {
        use chrono::{NaiveDate, TimeZone};
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (1969, 12, 31),
            (0, 3, 1),
            (9999, 12, 31),
            (2024, 7, 25),
        ] {
            let ours = make_datetime(y, m, d, 13, 14, 15, 16, 3600).unwrap();
            let naive = NaiveDate::from_ymd_opt(y as i32, m, d)
                .unwrap()
                .and_hms_micro_opt(13, 14, 15, 16)
                .unwrap();
            let theirs = FixedOffset::east_opt(3600)
                .unwrap()
                .from_local_datetime(&naive)
                .unwrap();
            assert_eq!(ours, theirs, "{y}-{m}-{d}");
        }
        assert!(make_datetime(2100, 2, 29, 0, 0, 0, 0, 0).is_none());
        assert!(make_datetime(2003, 9, 31, 0, 0, 0, 0, 0).is_none());
    }

    #[test]
    fn timestamps_read_by_position_as_rfc_3339_says() {
        for ok in [
            "2003-10-11T22:14:15.003Z",
            "2003-10-11T22:14:15Z",
            "1985-04-12T23:20:50.52+23:59",
            "2003-08-24T05:14:15.000003-07:00",
            "2000-02-29T00:00:00.123456-00:00",
            "0000-01-01T00:00:00+01:00",
        ] {
            let input = format!("{ok} x");
            let (rest, stamp) = full_timestamp(input.as_bytes()).unwrap();
            assert_eq!(rest, b" x", "{ok}");
            let chrono = DateTime::parse_from_rfc3339(ok).unwrap();
            assert_eq!(stamp.to_datetime(), Some(chrono), "{ok}");
        }
        for bad in [
            "2003-10-11t22:14:15Z",
            "2003-10-11T22:14:15.1234567Z",
            "2003-10-11T22:14:15.Z",
            "2003-10-11T22:14:15",
            "2003-10-11T22:14:15+24:00",
            "2003-10-11T22:14:15-00:60",
            "2003-10-11T22:14:15+0100",
            "2003-10-11T22:14:60Z",
            "2003-10-11T24:00:00Z",
            "2003-1-11T22:14:15Z",
            "2003-10-11T22:14:1Z",
            "2003-02-29T22:14:15Z",
            "2003-10-11T22:14:15z",
            "2003-10-11T22:14:15",
            "-003-10-11T22:14:15Z",
            "2003-10-11",
        ] {
            assert!(full_timestamp(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn violations_name_their_field() {
        assert_eq!(
            parse(b"<34>1 - - - - - [a b=\"]\"]").unwrap_err().part,
            Part::StructuredData
        );
        assert_eq!(
            parse(b"<34>1 2018-02-29T00:00:00Z - - - - -")
                .unwrap_err()
                .part,
            Part::Timestamp
        );
        assert_eq!(parse(b"<34>1 - - - - ID").unwrap_err().part, Part::Msgid);
    }
}
