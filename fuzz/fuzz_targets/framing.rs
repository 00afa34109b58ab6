#![no_main]
//! Framing: the first byte picks the mode and the read size, the rest is the stream.
//! Frames must never exceed the limit, and the decoder must always make progress.
use libfuzzer_sys::fuzz_target;
use logrelay::protocol::framing::{Decoder, Event, Mode};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else { return };
    let mode = [Mode::Auto, Mode::OctetCounting, Mode::Lf, Mode::Nul][(ctl & 3) as usize];
    let chunk = 1 + (ctl >> 2) as usize;
    let max = 16 + (ctl as usize) * 4;
    let mut d = Decoder::new(mode, max);
    let mut buf = Vec::new();
    let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
    for (i, c) in chunks.iter().enumerate() {
        buf.extend_from_slice(c);
        let eof = i + 1 == chunks.len();
        let mut pos = 0;
        for _ in 0..=buf.len() + 1 {
            let (used, ev) = if eof { d.decode_eof(&buf[pos..]) } else { d.decode(&buf[pos..]) };
            pos += used;
            assert!(pos <= buf.len());
            match ev {
                Some(Event::Frame(f)) | Some(Event::Truncated(f, _)) => assert!(f.len() <= max),
                Some(Event::Error(_)) | None => break,
            }
        }
        buf.drain(..pos);
    }
});
