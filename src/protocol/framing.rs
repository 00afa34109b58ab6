//! RFC 6587 framing as a streaming decoder: feed it whatever a read returned, get frames
//! out as slices of that buffer. It never copies a frame and keeps only a few integers
//! of state between reads, so it works on partial reads and on one frame per byte alike.
//!
//! Usage: call [`Decoder::decode`] on the unconsumed bytes until it returns `None`, drop
//! the consumed prefix, read more; at end of stream call [`Decoder::decode_eof`] the same
//! way, which also delivers an unterminated last frame.

use memchr::{memchr, memchr2};

/// Default frame limit (DESIGN.md): 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The longest MSG-LEN we read; anything longer is no length but garbage.
const MAX_LEN_DIGITS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 6587 3.4.1 only: `MSG-LEN SP MSG`; any other header is an error.
    OctetCounting,
    /// Frames end at LF; one CR before the LF is dropped.
    Lf,
    /// Frames end at NUL.
    Nul,
    /// Per frame: octet counting when the frame starts `DIGITS SP <`, else a frame
    /// that ends at LF or NUL (Python's `SysLogHandler` ends TCP messages with NUL, as
    /// syslog-ng's text server accepts). A sender that loses sync falls back to LF
    /// framing instead of losing the stream.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("framing error: {found:?} where MSG-LEN was expected")]
    BadLength { found: u8 },
    #[error("framing error: MSG-LEN has leading zeros or is zero")]
    LeadingZero,
    #[error("framing error: no SP after MSG-LEN")]
    MissingSpace,
    #[error("framing error: MSG-LEN is not a plausible number")]
    LengthTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncReason {
    /// The frame was longer than the limit; the rest of it is skipped.
    TooLong { declared: Option<u64> },
    /// The stream ended inside an octet-counted frame.
    Eof { declared: u64 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Frame(&'a [u8]),
    /// The part of a frame that was kept (at most the limit), and why it is partial.
    Truncated(&'a [u8], TruncReason),
    /// A framing error in strict octet-counting mode; the stream is out of sync and
    /// the decoder delivers nothing more.
    Error(FramingError),
}

/// What ends a non-transparent frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailer {
    Lf,
    Nul,
    LfOrNul,
}

impl Trailer {
    fn find(self, buf: &[u8]) -> Option<usize> {
        match self {
            Trailer::Lf => memchr(b'\n', buf),
            Trailer::Nul => memchr(0, buf),
            Trailer::LfOrNul => memchr2(b'\n', 0, buf),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FrameStart,
    /// Discarding the rest of an oversize line, up to its terminator.
    SkipToTrailer(Trailer),
    /// Discarding the rest of an oversize octet-counted frame.
    SkipOctets(u64),
    Failed,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    mode: Mode,
    max_frame: usize,
    state: State,
}

enum Header {
    /// Not enough bytes to decide yet.
    NeedMore,
    Octet {
        header_len: usize,
        len: u64,
    },
    NotOctet(FramingError),
}

impl Decoder {
    pub fn new(mode: Mode, max_frame: usize) -> Self {
        Decoder {
            mode,
            max_frame: max_frame.max(1),
            state: State::FrameStart,
        }
    }

    /// The next event from `buf` and how many bytes of `buf` it consumed. `None` means
    /// more input is needed (whatever was consumed is still reported).
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> (usize, Option<Event<'a>>) {
        self.next(buf, false)
    }

    /// Like [`decode`](Self::decode) for the bytes left at end of stream.
    pub fn decode_eof<'a>(&mut self, buf: &'a [u8]) -> (usize, Option<Event<'a>>) {
        self.next(buf, true)
    }

    fn next<'a>(&mut self, buf: &'a [u8], eof: bool) -> (usize, Option<Event<'a>>) {
        let mut consumed = 0;
        loop {
            let rest = &buf[consumed..];
            match self.state {
                State::Failed => return (buf.len(), None),
                State::SkipOctets(n) => {
                    let k = (rest.len() as u64).min(n);
                    consumed += k as usize;
                    if k < n {
                        self.state = State::SkipOctets(n - k);
                        return (consumed, None);
                    }
                    self.state = State::FrameStart;
                }
                State::SkipToTrailer(t) => match t.find(rest) {
                    Some(i) => {
                        consumed += i + 1;
                        self.state = State::FrameStart;
                    }
                    None => return (buf.len(), None),
                },
                State::FrameStart => {
                    if rest.is_empty() {
                        return (consumed, None);
                    }
                    let (n, ev) = self.frame(rest, eof);
                    return (consumed + n, ev);
                }
            }
        }
    }

    fn frame<'a>(&mut self, buf: &'a [u8], eof: bool) -> (usize, Option<Event<'a>>) {
        match self.mode {
            Mode::Lf => self.delimited(buf, Trailer::Lf, eof),
            Mode::Nul => self.delimited(buf, Trailer::Nul, eof),
            Mode::OctetCounting => match octet_header(buf, eof, false) {
                Header::NeedMore => (0, None),
                Header::Octet { header_len, len } => self.octet(buf, header_len, len, eof),
                Header::NotOctet(e) => {
                    self.state = State::Failed;
                    (buf.len(), Some(Event::Error(e)))
                }
            },
            Mode::Auto => match octet_header(buf, eof, true) {
                Header::NeedMore => (0, None),
                Header::Octet { header_len, len } => self.octet(buf, header_len, len, eof),
                Header::NotOctet(_) => self.delimited(buf, Trailer::LfOrNul, eof),
            },
        }
    }

    fn octet<'a>(
        &mut self,
        buf: &'a [u8],
        header_len: usize,
        len: u64,
        eof: bool,
    ) -> (usize, Option<Event<'a>>) {
        let body = &buf[header_len..];
        let max = self.max_frame;
        if len > max as u64 {
            if body.len() < max && !eof {
                return (0, None);
            }
            let keep = body.len().min(max);
            let skip = len - keep as u64;
            self.state = State::SkipOctets(skip);
            let reason = TruncReason::TooLong {
                declared: Some(len),
            };
            return (
                header_len + keep,
                Some(Event::Truncated(&body[..keep], reason)),
            );
        }
        let len = len as usize;
        if body.len() >= len {
            return (header_len + len, Some(Event::Frame(&body[..len])));
        }
        if eof {
            let reason = TruncReason::Eof {
                declared: len as u64,
            };
            return (buf.len(), Some(Event::Truncated(body, reason)));
        }
        (0, None)
    }

    fn delimited<'a>(
        &mut self,
        buf: &'a [u8],
        trailer: Trailer,
        eof: bool,
    ) -> (usize, Option<Event<'a>>) {
        let max = self.max_frame;
        let window = &buf[..buf.len().min(max + 2)];
        match trailer.find(window) {
            Some(i) => {
                let mut frame = &buf[..i];
                if buf[i] == b'\n' {
                    frame = frame.strip_suffix(b"\r").unwrap_or(frame);
                }
                if frame.len() > max {
                    let reason = TruncReason::TooLong { declared: None };
                    return (i + 1, Some(Event::Truncated(&frame[..max], reason)));
                }
                (i + 1, Some(Event::Frame(frame)))
            }
            None if buf.len() > max => {
                self.state = State::SkipToTrailer(trailer);
                let reason = TruncReason::TooLong { declared: None };
                (max, Some(Event::Truncated(&buf[..max], reason)))
            }
            // An unterminated last frame is still a frame: nothing is lost at EOF.
            None if eof => (buf.len(), Some(Event::Frame(buf))),
            None => (0, None),
        }
    }
}

/// Reads `MSG-LEN SP` at the start of `buf`. With `want_pri` (auto mode) the frame
/// counts as octet-counted only when `<` follows the SP, so a plain line that starts
/// with a number stays a line.
fn octet_header(buf: &[u8], eof: bool, want_pri: bool) -> Header {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == buf.len() && !eof && digits <= MAX_LEN_DIGITS {
        return Header::NeedMore;
    }
    if digits == 0 {
        return Header::NotOctet(FramingError::BadLength {
            found: buf.first().copied().unwrap_or(0),
        });
    }
    if buf[0] == b'0' {
        return Header::NotOctet(FramingError::LeadingZero);
    }
    if digits > MAX_LEN_DIGITS {
        return Header::NotOctet(FramingError::LengthTooLong);
    }
    if buf.get(digits) != Some(&b' ') {
        return Header::NotOctet(FramingError::MissingSpace);
    }
    if want_pri {
        match buf.get(digits + 1) {
            None if !eof => return Header::NeedMore,
            Some(b'<') => {}
            _ => return Header::NotOctet(FramingError::MissingSpace),
        }
    }
    let len = buf[..digits]
        .iter()
        .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
    if len > u64::from(u32::MAX) {
        return Header::NotOctet(FramingError::LengthTooLong);
    }
    Header::Octet {
        header_len: digits + 1,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mode: Mode, max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut d = Decoder::new(mode, max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            buf.extend_from_slice(c);
            let eof = i + 1 == chunks.len();
            let mut pos = 0;
            loop {
                let (n, ev) = if eof {
                    d.decode_eof(&buf[pos..])
                } else {
                    d.decode(&buf[pos..])
                };
                pos += n;
                match ev {
                    Some(Event::Frame(f)) | Some(Event::Truncated(f, _)) => out.push(f.to_vec()),
                    Some(Event::Error(_)) => break,
                    None => break,
                }
            }
            buf.drain(..pos);
        }
        out
    }

    #[test]
    fn auto_mode_reads_each_frame_by_its_start() {
        let got = frames(
            Mode::Auto,
            100,
            &[
                b"4 <1>x7 <2>1 ab\n",
                b"12 apples\n{\"a\":1}\r\n3",
                b" <3tail",
            ],
        );
        let want: Vec<&[u8]> = vec![
            b"<1>x",
            b"<2>1 ab",
            b"",
            b"12 apples",
            b"{\"a\":1}",
            b"<3t",
            b"ail",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn oversize_octet_frame_is_truncated_and_the_rest_skipped() {
        let got = frames(Mode::Auto, 4, &[b"10 <1>456789", b"0x\n"]);
        assert_eq!(got, vec![b"<1>4".to_vec(), b"x".to_vec()]);
    }
}
