//! Inputs the fuzzers found interesting, kept so they stay handled: each goes through
//! every parser and the dispatch. (No crash has been found so far; the fuzzers' slow-
//! unit reports came from pausing them, but the inputs are kept all the same.)

use logrelay::protocol::framing::{Decoder, Event, Mode};
use logrelay::protocol::{Context, decode_frame, json, rfc3164, rfc5424};

const INPUTS: &[&[u8]] = &[
    // fuzz/artifacts/rfc3164/slow-unit-f53abd1f…: Cisco counters, then a broken time.
    b"<1>10: 20: Mar 11  0&542     z   \xa0                          ",
];

#[test]
fn kept_fuzz_inputs_are_handled() {
    let ctx = Context::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    for input in INPUTS {
        let _ = rfc5424::parse(input);
        let _ = rfc3164::parse(input);
        assert!(
            rfc3164::parse_lenient(input).is_ok(),
            "a readable PRI is read leniently"
        );
        let _ = json::parse(input, ctx.received);
        let m = decode_frame(input, &ctx).expect("non-empty frame gives a record");
        assert!(!m.message.is_empty());
        let mut d = Decoder::new(Mode::Auto, 64);
        let _ = d.decode_eof(input);
    }
}

/// fuzz/artifacts/framing/slow-unit-3033c1f9…: LF mode, 24-byte limit, one byte per read,
/// as the framing fuzz target replays it. Every frame stays within the limit.
#[test]
fn kept_framing_input_byte_by_byte() {
    let data = include_bytes!("golden/fuzz-framing-slow-unit.bin");
    let (mode, max) = (Mode::Lf, 24);
    let mut d = Decoder::new(mode, max);
    let mut buf = Vec::new();
    let mut frames = 0;
    for (i, b) in data[1..].iter().enumerate() {
        buf.push(*b);
        let eof = i + 2 == data.len();
        let mut pos = 0;
        loop {
            let (used, ev) = if eof {
                d.decode_eof(&buf[pos..])
            } else {
                d.decode(&buf[pos..])
            };
            pos += used;
            match ev {
                Some(Event::Frame(f)) | Some(Event::Truncated(f, _)) => {
                    assert!(f.len() <= max);
                    frames += 1;
                }
                _ => break,
            }
        }
        buf.drain(..pos);
    }
    assert!(frames > 10, "{frames}");
}
