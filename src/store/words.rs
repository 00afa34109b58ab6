//! Words, as `logq -w` searches for them and the SQLite store's token filters index
//! them: maximal runs of letters, digits and `_` (Unicode), compared case-insensitively
//! (each character lower-cased on its own, so `Σ` is always `σ`), in the message, the
//! hostname, the source and the structured-data values (not SD-IDs or parameter names).
//!
//! One definition for the writer (which indexes the words of each row), the readers
//! (which check rows exactly) and the regex analysis of `-g`, so that a block a filter
//! rules out can never hold a matching row.

use std::borrow::Cow;
use std::ops::Range;

/// A character that belongs to a word: the regex crate's `\w` (letters, marks, digits,
/// connector punctuation), so that `\b` in a `-g` pattern bounds exactly our words.
pub fn is_word_char(c: char) -> bool {
    regex_syntax::try_is_word_character(c).unwrap_or_else(|_| c.is_alphanumeric() || c == '_')
}

/// A character lower-cased for comparing words. `ſ` (long s) becomes `s`: besides the
/// Kelvin sign (which `char::to_lowercase` already makes `k`) it is the one character
/// that a case-insensitive regex equates with an ASCII letter.
fn lower(c: char) -> impl Iterator<Item = char> {
    let special = (c == 'ſ').then_some('s');
    let rest = if special.is_some() {
        None
    } else {
        Some(c.to_lowercase())
    };
    special.into_iter().chain(rest.into_iter().flatten())
}

/// Appends `text` lower-cased character by character (never `str::to_lowercase`, whose
/// final-sigma rule depends on context and would tokenise differently; see [`lower`]).
pub fn push_lower(text: &str, out: &mut String) {
    if text.is_ascii() {
        // The common case: one pass, no char decoding.
        let start = out.len();
        out.push_str(text);
        out[start..].make_ascii_lowercase();
        return;
    }
    for c in text.chars() {
        out.extend(lower(c));
    }
}

/// Calls `f` with each word of `text`, lower-cased. `buf` is scratch space (kept by the
/// caller so that a hot loop does not allocate).
pub fn for_each_word(text: &str, buf: &mut String, f: &mut impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    buf.clear();
    if text.is_ascii() {
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphanumeric() || b == b'_' {
                buf.push(b.to_ascii_lowercase() as char);
            } else if !buf.is_empty() {
                f(buf);
                buf.clear();
            }
            i += 1;
        }
    } else {
        for c in text.chars() {
            for l in lower(c) {
                if is_word_char(l) {
                    buf.push(l);
                } else if !buf.is_empty() {
                    f(buf);
                    buf.clear();
                }
            }
        }
    }
    if !buf.is_empty() {
        f(buf);
        buf.clear();
    }
}

/// The hash a word is filed under in the token filters: XXH3-64 of the lower-cased
/// word, a fixed, documented function, so filters written by one version are read by
/// the next.
#[inline]
pub fn token_hash(token: &str) -> u64 {
    word_hash(token.as_bytes())
}

/// [`token_hash`] of a word's bytes, as the scan finds them (already lower case).
#[inline(always)]
fn word_hash(word: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(word)
}

/// Calls `f` with the hash of each word a row's token filter indexes: the message's
/// and the structured-data values' (hostnames and sources are indexed per block, from
/// the dictionaries). Words repeated within a row may be passed more than once, and not
/// always in the order of the text. `buf` is scratch space.
pub fn for_each_token_hash(
    message: &str,
    structured_data: Option<&str>,
    buf: &mut String,
    f: &mut impl FnMut(u64),
) {
    for_each_word_hash(message, buf, f);
    match structured_data {
        Some(sd) if sd.len() >= WINDOW => sd_words(sd, 0, sd, buf, f),
        Some(sd) => for_each_sd_value(sd, &mut |v| for_each_word_hash(v, buf, f)),
        None => {}
    }
}

/// [`for_each_token_hash`] of a row whose message is `text[message]` and whose
/// structured data is `text[structured_data]` (a range that is not of `text`, or not
/// at its characters' boundaries, has no words): the rows of a transaction or a block
/// lie one after the other in one text, so that the window scan looks at a short
/// message or structured data where it lies, its windows reaching into the rows beside
/// it (those bytes are masked off), instead of word by word.
pub fn for_each_token_hash_in(
    text: &str,
    message: Range<usize>,
    structured_data: Option<Range<usize>>,
    buf: &mut String,
    f: &mut impl FnMut(u64),
) {
    let sd = structured_data.and_then(|r| Some((r.start, text.get(r)?)));
    if text.len() < WINDOW {
        let message = text.get(message).unwrap_or_default();
        return for_each_token_hash(message, sd.map(|(_, s)| s), buf, f);
    }
    if text.get(message.clone()).is_some() {
        window_scan(text, message.start, message.end, buf, f, |_| u64::MAX);
    }
    if let Some((at, sd)) = sd {
        sd_words(text, at, sd, buf, f);
    }
}

/// The words of the structured-data values of `sd`, which is `text[at..]` (`text` at
/// least a [`WINDOW`] long). Up to [`SD_SPAN`] bytes, the values' bytes are marked in a
/// bitmap, then one window scan of the whole text finds the words in them (a quote
/// ends every value, so no word runs into a key). Values are short: word by word they
/// took a call per word and per separator. A value with escapes is decoded and scanned
/// on its own.
fn sd_words(text: &str, at: usize, sd: &str, buf: &mut String, f: &mut impl FnMut(u64)) {
    if sd.len() > SD_SPAN {
        for_each_sd_value(sd, &mut |v| for_each_word_hash(v, buf, f));
        return;
    }
    let mut values = [0u64; SD_SPAN / 64 + 1];
    sd_values(sd, &mut |start, v| match v {
        Cow::Borrowed(v) => mark(&mut values, start, start + v.len()),
        Cow::Owned(v) => for_each_word_hash(&v, buf, f),
    });
    // Bit `k`: byte `at + k` of `text`.
    let bits_from = |k: usize| {
        let (w, shift) = (k / 64, k % 64);
        let low = values.get(w).map_or(0, |x| x >> shift);
        let high = match shift {
            0 => 0,
            _ => values.get(w + 1).map_or(0, |x| x << (64 - shift)),
        };
        low | high
    };
    window_scan(text, at, at + sd.len(), buf, f, |base| {
        if base >= at {
            bits_from(base - at)
        } else if at - base < 64 {
            bits_from(0) << (at - base)
        } else {
            0
        }
    });
}

/// Structured data up to this many bytes is scanned whole, its values marked in a
/// bitmap on the stack; longer goes value by value.
const SD_SPAN: usize = 1024;

/// Sets bits `from..to` of `bits` (those beyond it are left alone).
fn mark(bits: &mut [u64], from: usize, to: usize) {
    let to = to.min(bits.len() * 64);
    let mut k = from;
    while k < to {
        let (w, lo) = (k / 64, k % 64);
        let hi = (to - w * 64).min(64);
        bits[w] |= (u64::MAX >> (64 - (hi - lo))) << lo;
        k = w * 64 + hi;
    }
}

/// How the word scan of [`for_each_word_hash`] treats a byte.
const NOT_WORD: u8 = 0;
/// A word byte that lower-casing keeps: `a`–`z`, `0`–`9`, `_`.
const KEPT: u8 = 1;
/// `A`–`Z`.
const UPPER: u8 = 2;
/// The first byte of a non-ASCII character (classified by [`NonAscii`]).
const NON_ASCII: u8 = 3;

/// `0x01` in every byte of a `u64`.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGHS: u64 = ONES * 0x80;

/// The high bit of each ASCII byte of `x` that lies in `lo..=hi` (`hi` < 0x80), up to
/// the first byte that is not ASCII; what is above that byte may be wrong.
#[inline(always)]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    // Per byte: `(b | 0x80) - lo` keeps its high bit when b >= lo (never borrowing),
    // and `(0x80 + hi) - b` when b <= hi; only a byte above 0x80 + hi (not ASCII)
    // borrows, from the byte above it.
    (x | HIGHS).wrapping_sub(ONES * u64::from(lo))
        & (ONES * u64::from(0x80 + hi)).wrapping_sub(x)
        & HIGHS
}

/// Where the run of lower-case ASCII letters, digits and `_` (bytes that are
/// [`KEPT`]) from `i` ends: eight bytes a step, where the byte loop's branch on every
/// byte mispredicted at each word's end (most words are 3 to 8 bytes).
#[inline]
fn kept_run_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let x = u64::from_le_bytes(lanes);
        let ascii = !x & HIGHS;
        let kept =
            (in_range(x, b'a', b'z') | in_range(x, b'0', b'9') | in_range(x, b'_', b'_')) & ascii;
        // The lowest byte not kept is right whatever the bytes above it hold.
        let other = !kept & HIGHS;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && BYTE_CLASS[bytes[i] as usize] == KEPT {
        i += 1;
    }
    i
}

const BYTE_CLASS: [u8; 256] = {
    let mut t = [NOT_WORD; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'a'..=b'z' | b'0'..=b'9' | b'_' => KEPT,
            b'A'..=b'Z' => UPPER,
            0x80..=0xff => NON_ASCII,
            _ => NOT_WORD,
        };
        b += 1;
    }
    t
};

/// A non-ASCII character that needs Unicode's tables: it lower-cases to more than one
/// character, or to one that is not a word character (or lies beyond U+FFFF).
const LOOKUP: u16 = 0;
/// Not a word character, and lower-casing keeps it: it ends a word.
const ENDS_WORD: u16 = 1;
/// A word character that lower-casing keeps.
const KEEPS: u16 = 2;

/// What lower-casing makes of the characters of two and three UTF-8 bytes (U+0080 to
/// U+FFFF: the Latin, Greek and Cyrillic letters, CJK, kana, Hangul and punctuation of
/// most non-ASCII logs), tabled once from the functions [`for_each_word`] uses, so that
/// the word scan needs no lookup for them: lookups were ~7 % of the word filer's time
/// with lower-case Latin, Greek and Cyrillic letters still looked up one by one.
struct NonAscii {
    /// U+0000–U+07FF by code point: [`LOOKUP`], [`ENDS_WORD`], [`KEEPS`], or the one
    /// word character it lower-cases to (always above 2: those are not word characters).
    two: [u16; 0x800],
    /// U+0000–U+FFFF, two bits each: [`LOOKUP`], [`ENDS_WORD`] or [`KEEPS`].
    three: [u8; 0x10000 / 4],
}

impl NonAscii {
    fn get() -> &'static NonAscii {
        static TABLES: std::sync::OnceLock<Box<NonAscii>> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            let mut t = Box::new(NonAscii {
                two: [LOOKUP; 0x800],
                three: [0; 0x10000 / 4],
            });
            for c in ('\u{80}'..='\u{ffff}').filter(|c| !c.is_ascii()) {
                let mut lowered = lower(c);
                let (Some(l), None) = (lowered.next(), lowered.next()) else {
                    continue;
                };
                let class = match (l == c, is_word_char(l)) {
                    (true, true) => KEEPS,
                    (true, false) => ENDS_WORD,
                    (false, true) if c < '\u{800}' && l <= '\u{ffff}' => l as u16,
                    _ => LOOKUP,
                };
                let cp = c as usize;
                if cp < 0x800 {
                    t.two[cp] = class;
                } else if class <= KEEPS {
                    t.three[cp / 4] |= (class as u8) << (2 * (cp % 4));
                }
            }
            t
        })
    }

    /// The character starting at `bytes[i]` (a non-ASCII one, in valid UTF-8): its
    /// class, or for a two-byte character the word character it lower-cases to; and
    /// its length in bytes.
    #[inline(always)]
    fn at(&self, bytes: &[u8], i: usize) -> (u16, usize) {
        let b = |k: usize| bytes.get(i + k).map_or(0, |&b| usize::from(b & 0x3f));
        let lead = usize::from(bytes[i]);
        if lead < 0xe0 {
            (self.two[((lead & 0x1f) << 6 | b(1)) & 0x7ff], 2)
        } else if lead < 0xf0 {
            let cp = (lead & 0x0f) << 12 | b(1) << 6 | b(2);
            (u16::from(self.three[cp / 4] >> (2 * (cp % 4)) & 3), 3)
        } else {
            (LOOKUP, 4)
        }
    }
}

/// Bit `k` set where byte `k` of `m` has its high bit set (and only high bits are).
#[inline(always)]
fn high_bits(m: u64) -> u64 {
    // Each byte's bit lands at bit 56 + k of the product, without carries.
    ((m >> 7) & ONES).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bytes scanned a window at a time by [`for_each_word_hash`].
const WINDOW: usize = 64;

/// Two bitmaps of a window (bit `k`: byte `k`): the bytes of words (`a`–`z`, `A`–`Z`,
/// `0`–`9`, `_`, and every non-ASCII byte: a character's own class is looked at only
/// in words that have one), and those of them that hashing in place cannot take as
/// they are (`A`–`Z`, non-ASCII). With SSE2 (every x86-64 CPU) sixteen bytes a step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(window: &[u8; WINDOW]) -> (u64, u64) {
    // SAFETY: SSE2 is part of every x86-64 CPU.
    unsafe { classify_sse2(window) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn classify_sse2(window: &[u8; WINDOW]) -> (u64, u64) {
    use std::arch::x86_64::*;
    let (mut word, mut special) = (0, 0);
    for (k, lanes) in window.chunks_exact(16).enumerate() {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&lanes[..8]);
        hi.copy_from_slice(&lanes[8..]);
        let x = _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo));
        // Signed compares: a non-ASCII byte is negative, in no range.
        let upper = _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(b'A' as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(b'Z' as i8 + 1)),
        );
        let lower = _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(b'a' as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(b'z' as i8 + 1)),
        );
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let kept = _mm_or_si128(
            _mm_or_si128(lower, digit),
            _mm_cmpeq_epi8(x, _mm_set1_epi8(b'_' as i8)),
        );
        let non_ascii = _mm_movemask_epi8(x) as u32 as u64;
        let upper = _mm_movemask_epi8(upper) as u32 as u64;
        let kept = _mm_movemask_epi8(kept) as u32 as u64;
        word |= (kept | upper | non_ascii) << (16 * k);
        special |= (upper | non_ascii) << (16 * k);
    }
    (word, special)
}

/// [`classify`] without SSE2: eight bytes a step in a `u64`.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(window: &[u8; WINDOW]) -> (u64, u64) {
    classify_swar(window)
}

/// [`classify`] on any CPU: eight bytes a step in a `u64`, with no branch.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn classify_swar(window: &[u8; WINDOW]) -> (u64, u64) {
    let (mut word, mut special) = (0, 0);
    for (k, lanes) in window.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(lanes);
        let x = u64::from_le_bytes(b);
        let non_ascii = x & HIGHS;
        // The ASCII bits alone: the range checks are exact for every byte.
        let y = x & !HIGHS;
        let alpha = in_range(y | (ONES * 0x20), b'a', b'z');
        // A letter with 0x20 clear is upper-case.
        let upper = alpha & !(y << 2);
        let w = alpha | in_range(y, b'0', b'9') | in_range(y, b'_', b'_') | non_ascii;
        word |= high_bits(w) << (8 * k);
        special |= high_bits(upper | non_ascii) << (8 * k);
    }
    (word, special)
}

/// Calls `f` with the [`token_hash`] of each word of `text`: the words of
/// [`for_each_word`], but a word whose characters lower-casing keeps (most words of
/// most messages, in any script) is hashed where it lies, without a copy; only the
/// others are lower-cased into `buf`, and only characters that [`NonAscii`] does not
/// table are looked up in Unicode's tables.
///
/// A text of 64 bytes or more is looked at 64 bytes at a time ([`classify`]): each
/// word of the window is found from its bitmaps (no table lookup or step per byte, for
/// words or the separators between them). A word with a non-ASCII byte is taken by
/// [`word_from`] and the window goes on after it; one that may go on past the window
/// starts the next window. Shorter texts go word by word, unless they lie in a longer
/// one ([`for_each_token_hash_in`]).
pub fn for_each_word_hash(text: &str, buf: &mut String, f: &mut impl FnMut(u64)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    if bytes.len() < WINDOW {
        while i < bytes.len() {
            i = word_from(text, i, buf, f);
        }
        return;
    }
    window_scan(text, 0, text.len(), buf, f, |_| u64::MAX);
}

/// The window scan of [`for_each_word_hash`] over `full[from..to]` (`full` at least a
/// [`WINDOW`] long; windows may reach beyond the range, whose bytes are left out), for
/// the words that start at bytes `allowed(base)` lets in (bit `k`: byte `base + k`) of
/// each window. Only words that begin and end between non-word bytes (as the quotes
/// around a JSON string) can be told apart this way.
#[inline(always)]
fn window_scan(
    full: &str,
    from: usize,
    to: usize,
    buf: &mut String,
    f: &mut impl FnMut(u64),
    allowed: impl Fn(usize) -> u64,
) {
    // What `word_from` may look at: nothing beyond the range.
    let Some(text) = full.get(..to) else {
        return;
    };
    let bytes = full.as_bytes();
    let mut i = from;
    while i < to {
        // Near the end of `full` the last window ends with it: its bytes before `i` are
        // left out.
        let base = i.min(bytes.len().saturating_sub(WINDOW));
        let Some(window) = bytes
            .get(base..base + WINDOW)
            .and_then(|w| w.try_into().ok())
        else {
            break;
        };
        let (word, special) = classify(window);
        // `to - base` is at least 1 (`base` <= `i` < `to`).
        let in_range = u64::MAX >> WINDOW.saturating_sub(to - base);
        let word = word & allowed(base) & in_range;
        let skip = i - base;
        let mut left = word >> skip << skip;
        let at_end = base + WINDOW >= to;
        i = loop {
            if left == 0 {
                break base + WINDOW;
            }
            let at = left.trailing_zeros() as usize;
            let len = (!(left >> at)).trailing_zeros() as usize;
            let start = base + at;
            let end = start + len;
            if at + len == WINDOW && !at_end {
                // The word may go on: the next window starts with it (one that fills
                // a whole window goes the byte-wise way).
                break if start > i {
                    start
                } else {
                    word_from(text, start, buf, f)
                };
            }
            let run = (u64::MAX >> (WINDOW - len)) << at;
            left &= !run;
            let word = &bytes[start..end];
            if special & run == 0 {
                f(word_hash(word));
            } else if word.is_ascii() {
                buf.clear();
                buf.extend(word.iter().map(|b| b.to_ascii_lowercase() as char));
                f(token_hash(buf));
            } else {
                // Taken character by character; the window goes on after it (most
                // words of a non-Latin text are like this one).
                let next = word_from(text, start, buf, f);
                if next >= base + WINDOW {
                    break next;
                }
                // A character inside the run may have ended the word: the rest of the
                // run from `next` is looked at again.
                left = (left | run) & u64::MAX << (next - base);
            }
        };
    }
}

/// Passes the word that starts at `start` (a byte of a word) to `f`, byte by byte,
/// with any others that a character's lower case ends it into; returns where the scan
/// goes on (after the word, or right after a character that ended it).
fn word_from(text: &str, start: usize, buf: &mut String, f: &mut impl FnMut(u64)) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    let Some(&first) = bytes.get(i) else {
        return i;
    };
    let class = BYTE_CLASS[first as usize];
    if class == NOT_WORD {
        return i + 1;
    }
    // The common case first, in a loop of its own: lower-case ASCII.
    if class == KEPT {
        i = kept_run_end(bytes, i + 1);
        if i == bytes.len() || BYTE_CLASS[bytes[i] as usize] == NOT_WORD {
            f(word_hash(&bytes[start..i]));
            return i;
        }
    }
    // Non-ASCII characters that lower-casing keeps are hashed in place too, up to one
    // that ends the word; one going on with a character that needs lower-casing is
    // built in `buf` from there (not looked at twice).
    let tables = NonAscii::get();
    while BYTE_CLASS[bytes[i] as usize] == NON_ASCII {
        match tables.at(bytes, i) {
            (KEEPS, len) => i += len,
            (ENDS_WORD, len) => {
                if i > start {
                    f(word_hash(&bytes[start..i]));
                }
                return i + len;
            }
            _ => break,
        }
        i = kept_run_end(bytes, i);
        if i == bytes.len() || BYTE_CLASS[bytes[i] as usize] == NOT_WORD {
            f(word_hash(&bytes[start..i]));
            return i;
        }
    }
    buf.clear();
    buf.push_str(text.get(start..i).unwrap_or_default());
    lowered_word_rest(text, i, tables, buf, f)
}

/// The rest of a word from `i` (its start, lower-cased, in `buf`), built in `buf` and
/// passed to `f`, with any words that end inside a character's lower case. Returns
/// where the scan goes on: at the character after the word, or right after a character
/// that ended it.
fn lowered_word_rest(
    text: &str,
    mut i: usize,
    tables: &NonAscii,
    buf: &mut String,
    f: &mut impl FnMut(u64),
) -> usize {
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let b = bytes[i];
        match BYTE_CLASS[b as usize] {
            NOT_WORD => break,
            KEPT => buf.push(b as char),
            UPPER => buf.push(b.to_ascii_lowercase() as char),
            _ => {
                // `i` is always at a character boundary: only whole characters are
                // stepped over (were it not, the word would end here rather than panic).
                let (class, len) = tables.at(bytes, i);
                match class {
                    ENDS_WORD => break,
                    KEEPS => buf.push_str(text.get(i..i + len).unwrap_or_default()),
                    LOOKUP => {
                        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
                            break;
                        };
                        i += c.len_utf8();
                        for l in lower(c) {
                            if is_word_char(l) {
                                buf.push(l);
                            } else if !buf.is_empty() {
                                f(token_hash(buf));
                                buf.clear();
                            }
                        }
                        if buf.is_empty() {
                            // The character ended the word; the next one may be hashed
                            // in place.
                            return i;
                        }
                        continue;
                    }
                    l => buf.push(char::from_u32(u32::from(l)).unwrap_or('\u{fffd}')),
                }
                i += len;
                continue;
            }
        }
        i += 1;
    }
    if !buf.is_empty() {
        f(token_hash(buf));
        buf.clear();
    }
    i
}

/// Calls `f` with each value string of a structured-data JSON text as the stores keep it
/// (`{"SDID":{"PARAM":"VALUE","REPEATED":["V1","V2"]}}`), escapes decoded. Keys are
/// skipped. Text that is not such JSON yields what it can and never panics.
pub fn for_each_sd_value(json: &str, f: &mut impl FnMut(&str)) {
    sd_values(json, &mut |_, v| f(&v));
}

/// [`for_each_sd_value`], with each value's start in `json`: a value that is not
/// [`Cow::Borrowed`] had escapes; a borrowed one is `json[start..start + len]`.
fn sd_values<'a>(json: &'a str, f: &mut impl FnMut(usize, Cow<'a, str>)) {
    let bytes = json.as_bytes();
    let mut i = 0;
    // Open containers, a bit each (1: an array), innermost lowest: a string in an array
    // is a value; in an object it is a value right after `:`, else a key. Our JSON nests
    // three deep at most; deeper than 64, the outer ones are forgotten (no allocation
    // per call: this runs for every stored row's structured data).
    let mut arrays = 0u64;
    let mut depth = 0u32;
    let mut last = 0u8;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let (s, next) = json_string(json, i + 1);
                let is_value = depth > 0 && (arrays & 1 == 1 || last == b':');
                if is_value {
                    f(i + 1, s);
                }
                last = b'"';
                i = next;
                continue;
            }
            c @ (b'[' | b'{') => {
                arrays = arrays << 1 | u64::from(c == b'[');
                depth += 1;
                last = c;
            }
            c @ (b']' | b'}') => {
                arrays >>= 1;
                depth = depth.saturating_sub(1);
                last = c;
            }
            c @ (b':' | b',') => last = c,
            _ => {}
        }
        i += 1;
    }
}

/// The index of the first `"` or `\\` of `bytes` from `start`. Structured-data strings
/// are short (most keys and values under 16 bytes): `memchr2`'s setup for each was most
/// of the time spent walking a row's structured data, a third of the word scan's.
#[inline]
fn quote_or_backslash(bytes: &[u8], mut i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(i..i + 16) {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        let m = unsafe { quotes_sse2(chunk) };
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let x = u64::from_le_bytes(lanes);
        // A zero byte of `x ^ c` is a byte equal to `c`: the lowest high bit of
        // `(y - 1…) & !y & 0x80…` is right (bytes above it may be wrong).
        let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGHS;
        let m = zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = bytes.get(i..)?;
    rest.iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| i + p)
}

/// Bit `k` set where byte `k` of the 16 is `"` or `\\`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn quotes_sse2(chunk: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&chunk[..8]);
    hi.copy_from_slice(&chunk[8..16]);
    let x = _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo));
    let m = _mm_or_si128(
        _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8)),
        _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8)),
    );
    _mm_movemask_epi8(m) as u32
}

/// The JSON string starting after its opening quote at `start`: its decoded text and
/// the index after its closing quote.
fn json_string(json: &str, start: usize) -> (Cow<'_, str>, usize) {
    let bytes = json.as_bytes();
    let Some(end) = quote_or_backslash(bytes, start) else {
        return (
            Cow::Borrowed(json.get(start..).unwrap_or_default()),
            bytes.len(),
        );
    };
    if bytes[end] == b'"' {
        return (
            Cow::Borrowed(json.get(start..end).unwrap_or_default()),
            end + 1,
        );
    }
    let mut out = String::new();
    let mut i = start;
    while i < bytes.len() {
        // A broken `\u` escape may have stepped into a character: on to its end.
        if !json.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let Some(at) = quote_or_backslash(bytes, i) else {
            out.push_str(&json[i..]);
            return (Cow::Owned(out), bytes.len());
        };
        out.push_str(&json[i..at]);
        i = at;
        if bytes[i] == b'"' {
            return (Cow::Owned(out), i + 1);
        }
        // An escape: `\X` or `\uXXXX` (with a surrogate pair for characters beyond the
        // BMP). Whatever it decodes to is pushed; a broken escape becomes U+FFFD.
        let esc = bytes.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match esc {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let hex = |at: usize| {
                    json.get(at..at + 4)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                let mut c = hex(i);
                i += 4;
                if let Some(hi @ 0xD800..=0xDBFF) = c
                    && json.get(i..i + 2) == Some("\\u")
                    && let Some(lo @ 0xDC00..=0xDFFF) = hex(i + 2)
                {
                    c = Some(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                    i += 6;
                }
                out.push(c.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
            }
            other if other.is_ascii() => out.push(other as char),
            _ => {
                // Not an escape: the character after the `\`, whole.
                let c = json.get(i - 1..).and_then(|t| t.chars().next());
                let c = c.unwrap_or('\u{FFFD}');
                out.push(c);
                i = i - 1 + c.len_utf8();
            }
        }
    }
    (Cow::Owned(out), bytes.len().min(i))
}

/// Search words: each must occur, whole, in some field of a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// Lower-cased, trimmed of non-word characters at both ends, never empty.
    words: Vec<String>,
}

impl Words {
    /// The words as given (`-w`), each trimmed of leading and trailing non-word
    /// characters; `None` for a word with no letter or digit at all.
    pub fn new<S: AsRef<str>>(words: &[S]) -> Result<Words, String> {
        let mut out = Vec::with_capacity(words.len());
        for w in words {
            let w = w.as_ref();
            let trimmed = w.trim_matches(|c: char| !is_word_char(c));
            if trimmed.is_empty() {
                return Err(format!("'{w}' has no letter or digit to search for"));
            }
            let mut lower = String::with_capacity(trimmed.len());
            push_lower(trimmed, &mut lower);
            let lower = lower.trim_matches(|c: char| !is_word_char(c)).to_string();
            if lower.is_empty() {
                return Err(format!("'{w}' has no letter or digit to search for"));
            }
            if !out.contains(&lower) {
                out.push(lower);
            }
        }
        Ok(Words { words: out })
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The lower-cased search words.
    pub fn as_slice(&self) -> &[String] {
        &self.words
    }

    /// Every word's single tokens: what a block must hold for any row of it to match
    /// (`192.0.2.1` needs `192`, `0`, `2` and `1`).
    pub fn tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut buf = String::new();
        for w in &self.words {
            for_each_word(w, &mut buf, &mut |t| {
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            });
        }
        out
    }

    /// The words joined by NUL, to travel as one bound SQL parameter.
    pub fn to_param(&self) -> String {
        self.words.join("\0")
    }

    /// [`Words::to_param`] read back (already lower-cased and trimmed).
    pub fn from_param(p: &str) -> Words {
        Words {
            words: p
                .split('\0')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Marks (bit i of `found`) the words found in `text`.
    fn check(&self, text: &str, found: &mut u64, buf: &mut String) {
        buf.clear();
        push_lower(text, buf);
        for (i, w) in self.words.iter().enumerate() {
            if *found & (1 << i) == 0 && contains_word(buf, w) {
                *found |= 1 << i;
            }
        }
    }

    /// Whether every word occurs whole in the message, hostname, source or a
    /// structured-data value. `buf` is scratch space.
    pub fn matches(
        &self,
        message: &str,
        hostname: Option<&str>,
        source: Option<&str>,
        structured_data: Option<&str>,
        buf: &mut String,
    ) -> bool {
        if self.words.is_empty() {
            return true;
        }
        // Bit i: word i found. At most 64 words are tracked by bit; more are rare
        // enough to be checked the slow way (each word on its own).
        if self.words.len() > 64 {
            return self.words.iter().all(|w| {
                Words {
                    words: vec![w.clone()],
                }
                .matches(message, hostname, source, structured_data, buf)
            });
        }
        let all = if self.words.len() == 64 {
            u64::MAX
        } else {
            (1u64 << self.words.len()) - 1
        };
        let mut found = 0u64;
        for text in [Some(message), hostname, source].into_iter().flatten() {
            self.check(text, &mut found, buf);
            if found == all {
                return true;
            }
        }
        if let Some(sd) = structured_data {
            for_each_sd_value(sd, &mut |v| {
                if found != all {
                    self.check(v, &mut found, buf);
                }
            });
        }
        found == all
    }
}

/// Whether `word` (lower-cased) occurs in `text` (lower-cased) with no word character
/// right before or after it.
pub fn contains_word(text: &str, word: &str) -> bool {
    for at in memchr::memmem::find_iter(text.as_bytes(), word.as_bytes()) {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = String::new();
        for_each_word(text, &mut buf, &mut |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn words_of_text() {
        assert_eq!(
            words("Failed password for user_1 from 192.0.2.7 port 22"),
            [
                "failed", "password", "for", "user_1", "from", "192", "0", "2", "7", "port", "22"
            ]
        );
        assert_eq!(
            words("Grüße, ΣΟΦΙΑ! 日本語テキスト"),
            ["grüße", "σοφια", "日本語テキスト"]
        );
        assert_eq!(words(" -- "), Vec::<String>::new());
    }

    /// Where a run of [`KEPT`] bytes from `start` ends, a byte at a time.
    fn byte_loop_run_end(text: &[u8], start: usize) -> usize {
        let mut end = start;
        while end < text.len() && BYTE_CLASS[text[end] as usize] == KEPT {
            end += 1;
        }
        end
    }

    /// The eight-bytes-a-step run end is the byte loop's, for every byte value at every
    /// place of a step and past its end.
    #[test]
    fn kept_runs_end_where_the_byte_table_says() {
        for b in 0..=255u8 {
            for at in 0..12 {
                let mut text = vec![b'k'; 12];
                text[at] = b;
                for start in 0..3 {
                    let want = byte_loop_run_end(&text, start);
                    assert_eq!(kept_run_end(&text, start), want, "byte {b:#x} at {at}");
                }
            }
        }
        // Two bytes at once: one that ends the run, then anything above it (a byte
        // beyond 0x80 + `z` borrows from the one above it).
        let edges = [
            0x00, b'/', b'0', b'9', b':', b'@', b'A', b'Z', b'[', b'_', b'`', b'a', b'z', b'{',
            0x7f, 0x80, 0xc3, 0xfa, 0xfb, 0xff,
        ];
        for &b in &edges {
            for &c in &edges {
                for at in 0..12 {
                    for at2 in 0..12 {
                        let mut text = vec![b'q'; 12];
                        text[at] = b;
                        text[at2] = c;
                        let want = byte_loop_run_end(&text, 0);
                        assert_eq!(kept_run_end(&text, 0), want, "{text:?}");
                    }
                }
            }
        }
    }

    /// The window bitmaps say what the byte table says, for every byte value at every
    /// place of a window, beside bytes of each class (the SSE2 code and the portable).
    #[test]
    fn window_bitmaps_match_the_byte_table() {
        for b in 0..=255u8 {
            for at in 0..WINDOW {
                let mut window = [[b'.', b'a', b'Z', 0xc3, b'9'][at % 5]; WINDOW];
                window[at] = b;
                window[(at + 1) % WINDOW] = b'_';
                window[(at + 7) % WINDOW] = 0xff - b;
                let mut want = (0u64, 0u64);
                for (k, &c) in window.iter().enumerate() {
                    let class = BYTE_CLASS[c as usize];
                    want.0 |= u64::from(class != NOT_WORD) << k;
                    want.1 |= u64::from(class == UPPER || class == NON_ASCII) << k;
                }
                assert_eq!(classify(&window), want, "byte {b:#x} at {at}");
                assert_eq!(classify_swar(&window), want, "byte {b:#x} at {at}");
            }
        }
    }

    /// Texts of a window and longer: words across a window's edge, ending at it, longer
    /// than a window, upper-case and non-ASCII ones at every place; the words of
    /// [`for_each_word`].
    #[test]
    fn words_across_windows_hash_as_the_reference() {
        let mut buf = String::new();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let mut check = |text: &str| {
            want.clear();
            got.clear();
            for_each_word(text, &mut buf, &mut |w| want.push(token_hash(w)));
            for_each_word_hash(text, &mut buf, &mut |h| got.push(h));
            assert_eq!(got, want, "{text:?}");
        };
        for word in ["k", "ab", "Upper", "é", "xİy", "ǅa", "日本", "q—r"] {
            for len in [1, 7, 8, 9, 62, 63, 64, 65, 66, 130] {
                let long: String = word.chars().cycle().take(len).collect();
                for at in 0..70 {
                    for after in ["", " ", "_end", ".x"] {
                        check(&format!("{}{long}{after}", "-".repeat(at)));
                        check(&format!("{}{long}{after} tail", "a ".repeat(at / 2)));
                    }
                }
            }
        }
        // Random texts of 64 to 300 characters, with long words.
        let pieces = [
            "a",
            "word",
            "Upper",
            "x1_",
            "é",
            "É",
            "İ",
            "日本",
            "—",
            " ",
            "  ",
            ".",
            "\"",
            "ſ",
            "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ];
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        for _ in 0..4_000 {
            let mut text = String::new();
            let len = 64 + (state % 237) as usize;
            while text.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            check(&text);
        }
    }

    /// The in-place hashing sees the same words as [`for_each_word`].
    #[test]
    fn word_hashes_are_the_hashes_of_the_words() {
        let mut buf = String::new();
        for text in [
            "Failed password for USER_1 from 192.0.2.7 port 22",
            "",
            " -- x",
            "Grüße, ΣΟΦΙΑ! 日本語テキスト",
            "trailing_Word",
            "\u{feff}Benutzer müller hat sich angemeldet (Größe=ä€) seq=50",
            "用户登录失败，密码错误 {\"trace_id\":\"724d7b1e\"} seq=11",
            "İstanbul ſtate KELVIN \u{212a}elvin ΌΣΟΣ aΣb foo—bar x\u{301}y",
            "ends in é",
            "é",
            "Ǆemal ǅ ǆ",
        ] {
            let mut want = Vec::new();
            for_each_word(text, &mut buf, &mut |w| want.push(token_hash(w)));
            let mut got = Vec::new();
            for_each_word_hash(text, &mut buf, &mut |h| got.push(h));
            assert_eq!(got, want, "{text}");
        }
        // Every order of a mix of word and non-word, upper, lower, ASCII and other
        // characters (some lower-casing to two characters, or to an ASCII letter).
        let alphabet = [
            'a', 'Z', '0', '_', ' ', '.', 'é', 'É', 'İ', 'ſ', '\u{212a}', 'Σ', '日', '，', '—',
            '\u{301}', '\u{feff}', '🚀', 'ǅ', 'カ', '한', 'ー', 'Ж', 'ж', 'ß', 'Ÿ', 'ς', '«', '，',
            'Ａ',
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..24_000 {
            // Mostly short texts; some long, with long words.
            let len = if round % 8 == 0 {
                (state % 160) as usize
            } else {
                (state % 9) as usize
            };
            let mut text = String::new();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut want = Vec::new();
            for_each_word(&text, &mut buf, &mut |w| want.push(token_hash(w)));
            let mut got = Vec::new();
            for_each_word_hash(&text, &mut buf, &mut |h| got.push(h));
            assert_eq!(got, want, "{text:?}");
        }
        let mut got = Vec::new();
        for_each_token_hash("a B", Some(r#"{"x":{"k":"Vee"}}"#), &mut buf, &mut |h| {
            got.push(h)
        });
        assert_eq!(got, ["a", "b", "vee"].map(token_hash));
    }

    /// Every character of one, two and three UTF-8 bytes (where the scan tables what
    /// lower-casing makes of them) and some of four, alone and between word and non-word
    /// characters: the in-place hashing sees the words [`for_each_word`] sees.
    #[test]
    fn every_tabled_char_hashes_as_the_reference() {
        let mut buf = String::new();
        let mut text = String::new();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let chars = ('\0'..='\u{ffff}').chain('\u{10000}'..='\u{10400}');
        for c in chars.chain(['\u{1f680}', '\u{20000}', '\u{e0001}']) {
            for (before, after) in [("", ""), ("aB", "x"), ("Ж", "é"), ("日", " "), ("-", "Ω")]
            {
                text.clear();
                text.push_str(before);
                text.push(c);
                text.push_str(after);
                want.clear();
                got.clear();
                for_each_word(&text, &mut buf, &mut |w| want.push(token_hash(w)));
                for_each_word_hash(&text, &mut buf, &mut |h| got.push(h));
                assert_eq!(got, want, "{text:?}");
            }
        }
        // Most letters of these scripts are tabled, not looked up.
        let t = NonAscii::get();
        let looked_up = ('\u{c0}'..='\u{24f}')
            .chain('\u{391}'..='\u{3c9}')
            .chain('\u{400}'..='\u{45f}')
            .filter(|&c| t.at(c.encode_utf8(&mut [0; 4]).as_bytes(), 0).0 == LOOKUP)
            .collect::<String>();
        assert_eq!(looked_up, "İ", "the one that lower-cases to two characters");
    }

    /// The words of a row's message and structured-data values as the reference finds
    /// them, hashed, sorted.
    fn reference_hashes(message: &str, sd: Option<&str>) -> Vec<u64> {
        let mut buf = String::new();
        let mut out = Vec::new();
        for_each_word(message, &mut buf, &mut |w| out.push(token_hash(w)));
        if let Some(sd) = sd {
            let mut values = Vec::new();
            for_each_sd_value(sd, &mut |v| values.push(v.to_string()));
            for v in values {
                for_each_word(&v, &mut buf, &mut |w| out.push(token_hash(w)));
            }
        }
        out.sort_unstable();
        out
    }

    /// Rows laid one after the other in one text, as the filer gets them: the window
    /// scan in place (windows reaching into the rows beside) and the structured data's
    /// values found from a bitmap of the whole text file the words of the reference, for
    /// random messages and structured data of every length around a window and around
    /// [`SD_SPAN`], with upper-case, multi-byte and long words, escapes, arrays, and text
    /// that is not JSON at all.
    #[test]
    fn rows_in_one_text_hash_as_the_reference() {
        let pieces = [
            "a",
            "word",
            "Upper",
            "x1_",
            "é",
            "É",
            "İ",
            "日本",
            "—",
            " ",
            "  ",
            ".",
            "ſ",
            "Σ",
            "\\",
            "\\\"",
            "\\u00e9",
            "\\n",
            "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "🚀",
            "ǅ",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut buf = String::new();
        for round in 0..3_000 {
            let mut text = String::new();
            let mut rows = Vec::new();
            for _ in 0..1 + next(6) {
                let m0 = text.len();
                let len = [0, 3, 20, 63, 64, 65, 140][next(7) as usize] + next(4) as usize;
                while text.len() - m0 < len {
                    text.push_str(pieces[next(pieces.len() as u64) as usize]);
                }
                let message = m0..text.len();
                let sd = match next(4) {
                    0 => None,
                    kind => {
                        let s0 = text.len();
                        let target = [0, 30, 90, 1000][next(4) as usize] + next(80) as usize;
                        text.push('{');
                        let mut first = true;
                        while text.len() - s0 < target {
                            if !first {
                                text.push(',');
                            }
                            first = false;
                            let string = |next: &mut dyn FnMut(u64) -> u64, out: &mut String| {
                                out.push('"');
                                for _ in 0..next(5) {
                                    let p = pieces[next(pieces.len() as u64) as usize];
                                    out.push_str(if p == "\\" { "x" } else { p });
                                }
                                out.push('"');
                            };
                            string(&mut next, &mut text);
                            text.push_str(":{");
                            for k in 0..1 + next(4) {
                                if k > 0 {
                                    text.push(',');
                                }
                                string(&mut next, &mut text);
                                text.push(':');
                                if next(5) == 0 {
                                    text.push('[');
                                    string(&mut next, &mut text);
                                    text.push(',');
                                    string(&mut next, &mut text);
                                    text.push(']');
                                } else {
                                    string(&mut next, &mut text);
                                }
                            }
                            text.push('}');
                        }
                        text.push('}');
                        if kind == 3 {
                            // Not JSON: pieces anywhere, a string left open.
                            for _ in 0..next(12) {
                                text.push_str(pieces[next(pieces.len() as u64) as usize]);
                            }
                            text.push_str(["\"", "{", "[\"", "\\"][next(4) as usize]);
                        }
                        Some(s0..text.len())
                    }
                };
                rows.push((message, sd));
            }
            for (message, sd) in rows {
                let want = reference_hashes(&text[message.clone()], sd.clone().map(|r| &text[r]));
                let mut got = Vec::new();
                for_each_token_hash_in(&text, message.clone(), sd.clone(), &mut buf, &mut |h| {
                    got.push(h)
                });
                got.sort_unstable();
                assert_eq!(got, want, "round {round}: {:?}", &text[message.start..]);
                got.clear();
                let alone = (&text[message.clone()], sd.clone().map(|r| &text[r]));
                for_each_token_hash(alone.0, alone.1, &mut buf, &mut |h| got.push(h));
                got.sort_unstable();
                assert_eq!(got, want, "round {round} alone: {alone:?}");
            }
        }
        // Ranges that are not the text's (or split a character) have no words.
        let mut got = Vec::new();
        let text = "é".repeat(40);
        for_each_token_hash_in(&text, 1..5, Some(70..90), &mut buf, &mut |h| got.push(h));
        for_each_token_hash_in(&text, 0..2, Some(0..200), &mut buf, &mut |h| got.push(h));
        assert_eq!(got, [token_hash("é")]);
    }

    #[test]
    fn sd_values_only_with_escapes() {
        let mut got = Vec::new();
        for_each_sd_value(
            r#"{"origin":{"ip":"192.0.2.1","note":["a\"b","line\nnext","\u00e9t\u00e9"]},"x@1":{"k":"v"}}"#,
            &mut |v| got.push(v.to_string()),
        );
        assert_eq!(got, ["192.0.2.1", "a\"b", "line\nnext", "été", "v"]);
        // Not JSON at all: no panic (a backslash before a multi-byte character, or a
        // broken `\u` escape over one, used to slice inside the character).
        for_each_sd_value("{\"a\":\"\\u12", &mut |_| {});
        let mut got = Vec::new();
        for_each_sd_value(r#"{"a":{"k":"x\—y","l":"\u日本z"}}"#, &mut |v| {
            got.push(v.to_string())
        });
        assert_eq!(got, ["x—y", "\u{FFFD}z"]);
        for_each_sd_value("\"\\", &mut |_| {});
    }

    #[test]
    fn whole_words_case_insensitive() {
        let w = Words::new(&["Timeout", "192.0.2.1"]).unwrap();
        let mut buf = String::new();
        let m = |msg: &str, sd: Option<&str>, buf: &mut String| {
            w.matches(msg, Some("h"), None, sd, buf)
        };
        assert!(m("connect TIMEOUT to 192.0.2.1:80", None, &mut buf));
        assert!(!m("connect timeouts to 192.0.2.1", None, &mut buf));
        assert!(!m("timeout to 192.0.2.10", None, &mut buf));
        assert!(m("timeout", Some(r#"{"o":{"ip":"192.0.2.1"}}"#), &mut buf));
        assert!(!m("timeout", Some(r#"{"192.0.2.1":{"ip":"x"}}"#), &mut buf));
        assert!(Words::new(&["--"]).is_err());
        assert_eq!(Words::new(&["(Ärger)"]).unwrap().as_slice(), ["ärger"]);
        assert_eq!(
            Words::new(&["192.0.2.1"]).unwrap().tokens(),
            ["192", "0", "2", "1"]
        );
    }
}
