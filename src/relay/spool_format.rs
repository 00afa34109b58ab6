//! The spool's on-disk format. A segment file starts with [`MAGIC`]; then records, each
//! `len: u32 LE | crc32(payload): u32 LE | payload`, one batch per record. A crash can
//! leave the last record short or half-written: [`read_record`] tells that apart
//! ([`Read::Torn`]) from a clean end, so a reader skips it instead of failing.
//!
//! Payload: `rows: u32`, then per row `time_us: i64, received_us: i64, level: u8,
//! facility: u8 (255 = none), protocol: u8`, then seven optional strings (hostname,
//! source, procid, msgid, structured data, message, peer), each `len: u32` (`u32::MAX`
//! = none) and its UTF-8 bytes. All integers little-endian.

use crate::message::{Facility, Level, Protocol};
use crate::store::{Batch, RecordRef};
use std::io::Read as _;

pub const MAGIC: &[u8; 8] = b"LRSPOOL1";
/// A record longer than this is corruption, not a batch (batches are a few MiB).
pub const MAX_RECORD: usize = 256 * 1024 * 1024;
const NONE: u32 = u32::MAX;

/// Appends `batch` as one record (header and payload) to `out`.
pub fn encode(batch: &Batch, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]); // header, filled in below
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for r in batch.iter() {
        out.extend_from_slice(&r.time_us.to_le_bytes());
        out.extend_from_slice(&r.received_us.to_le_bytes());
        out.push(r.level.code());
        out.push(r.facility.map_or(255, Facility::code));
        out.push(
            Protocol::ALL
                .iter()
                .position(|p| *p == r.protocol)
                .unwrap_or(0) as u8,
        );
        for s in [
            r.hostname,
            r.source,
            r.procid,
            r.msgid,
            r.structured_data,
            Some(r.message),
            r.peer,
        ] {
            match s {
                None => out.extend_from_slice(&NONE.to_le_bytes()),
                Some(s) => {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
    let payload_len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading the next record found.
#[derive(Debug)]
pub enum Read {
    Record(Batch),
    /// A clean end of the segment.
    End,
    /// A short, half-written or damaged record: nothing after it in this segment can be
    /// trusted. `why` says which.
    Torn {
        why: &'static str,
    },
}

/// Reads the next record from `r`, reusing `scratch` for the payload.
pub fn read_record(r: &mut impl std::io::Read, scratch: &mut Vec<u8>) -> std::io::Result<Read> {
    let mut header = [0u8; 8];
    match read_full(r, &mut header)? {
        0 => return Ok(Read::End),
        8 => {}
        _ => {
            return Ok(Read::Torn {
                why: "short header",
            });
        }
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return Ok(Read::Torn {
            why: "impossible length",
        });
    }
    scratch.clear();
    let got = r.take(len as u64).read_to_end(scratch)?;
    if got < len {
        return Ok(Read::Torn {
            why: "short record",
        });
    }
    if crc32fast::hash(scratch) != crc {
        return Ok(Read::Torn {
            why: "checksum mismatch",
        });
    }
    Ok(match decode(scratch) {
        Some(b) => Read::Record(b),
        None => Read::Torn {
            why: "undecodable record",
        },
    })
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    fn text(&mut self) -> Option<Option<&'a str>> {
        match self.u32()? {
            NONE => Some(None),
            n => std::str::from_utf8(self.take(n as usize)?).ok().map(Some),
        }
    }
}

fn decode(payload: &[u8]) -> Option<Batch> {
    let mut c = Cursor(payload);
    let rows = c.u32()? as usize;
    let mut batch = Batch::with_capacity(rows.min(1 << 16), payload.len());
    for _ in 0..rows {
        let time_us = c.i64()?;
        let received_us = c.i64()?;
        let level = Level::from_code(c.u8()?)?;
        let facility = match c.u8()? {
            255 => None,
            f => Some(Facility::from_code(f)?),
        };
        let protocol = *Protocol::ALL.get(c.u8()? as usize)?;
        let hostname = c.text()?;
        let source = c.text()?;
        let procid = c.text()?;
        let msgid = c.text()?;
        let structured_data = c.text()?;
        let message = c.text()??;
        let peer = c.text()?;
        batch.push_record(&RecordRef {
            time_us,
            received_us,
            level,
            facility,
            hostname,
            source,
            procid,
            msgid,
            structured_data,
            message,
            protocol,
            peer,
        });
    }
    c.0.is_empty().then_some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::LogMessage;

    fn sample() -> Batch {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let mut b = Batch::new();
        let mut m = LogMessage::new("héllo\nworld", Level::Warning, now);
        m.source = Some("app".into());
        m.facility = Facility::from_code(16);
        m.peer = Some("127.0.0.1:9".into());
        b.push(&m);
        b.push(&LogMessage::new("", Level::Debug, now));
        b
    }

    #[test]
    fn records_round_trip() {
        let b = sample();
        let mut bytes = Vec::new();
        encode(&b, &mut bytes);
        encode(&b, &mut bytes);
        let mut r = &bytes[..];
        let mut scratch = Vec::new();
        for _ in 0..2 {
            let Read::Record(got) = read_record(&mut r, &mut scratch).unwrap() else {
                panic!("a record")
            };
            assert_eq!(got.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        }
        assert!(matches!(
            read_record(&mut r, &mut scratch).unwrap(),
            Read::End
        ));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_torn_never_a_panic() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        let mut scratch = Vec::new();
        for cut in 1..bytes.len() {
            let got = read_record(&mut &bytes[..cut], &mut scratch).unwrap();
            assert!(matches!(got, Read::Torn { .. }), "cut at {cut}: {got:?}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let got = read_record(&mut &bad[..], &mut scratch).unwrap();
            assert!(matches!(got, Read::Torn { .. }), "flip at {i}: {got:?}");
        }
    }
}
