//! Small nom pieces shared by the syslog parsers.

use nom::IResult;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::char as ch;
use nom::sequence::delimited;

/// Parses `<PRIVAL>`: 1-3 digits, no leading zeros (only `<0>` starts with 0), 0..=191.
pub fn pri(input: &[u8]) -> IResult<&[u8], u8> {
    let (rest, digits) = delimited(
        ch('<'),
        take_while_m_n(1, 3, |b: u8| b.is_ascii_digit()),
        ch('>'),
    )(input)?;
    if digits.len() > 1 && digits[0] == b'0' {
        return fail(input);
    }
    let value = digits_value(digits);
    if value > 191 {
        return fail(input);
    }
    Ok((rest, value as u8))
}

/// The value of a run of ASCII digits (callers bound its length, so no overflow).
#[inline]
pub fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// Exactly `n` ASCII digits as a number.
#[inline]
pub fn fixed_digits(n: usize) -> impl Fn(&[u8]) -> IResult<&[u8], u32> {
    move |input: &[u8]| match input.get(..n) {
        Some(d) if d.iter().all(u8::is_ascii_digit) => Ok((&input[n..], digits_value(d))),
        _ => fail(input),
    }
}

pub fn sp(input: &[u8]) -> IResult<&[u8], &[u8]> {
    tag(b" ")(input)
}

pub fn fail<T>(input: &[u8]) -> IResult<&[u8], T> {
    Err(nom::Err::Error(nom::error::Error::new(
        input,
        nom::error::ErrorKind::Verify,
    )))
}

/// Microseconds from a fraction's digits: the first six count, the rest are cut off.
pub fn frac_micros(digits: &[u8]) -> u32 {
    let used = &digits[..digits.len().min(6)];
    digits_value(used) * 10u32.pow(6 - used.len() as u32)
}

/// UTF-8 text of a byte slice, replacing invalid sequences (borrowed when already valid).
/// Valid text is checked with SIMD first: `from_utf8_lossy`'s byte-by-byte walk was
/// ~13 % of the connection tasks' time in the 1M replay (BENCHMARKS.md).
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Drops one leading UTF-8 byte order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_rules() {
        assert_eq!(pri(b"<0>x").unwrap().1, 0);
        assert_eq!(pri(b"<191>").unwrap().1, 191);
        assert!(pri(b"<192>").is_err());
        assert!(pri(b"<01>").is_err());
        assert!(pri(b"<>").is_err());
        assert!(pri(b"<1000>").is_err());
    }

    #[test]
    fn fractions() {
        assert_eq!(frac_micros(b"1"), 100_000);
        assert_eq!(frac_micros(b"003"), 3_000);
        assert_eq!(frac_micros(b"1234567"), 123_456);
    }
}
