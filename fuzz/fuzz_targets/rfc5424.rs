#![no_main]
//! RFC 5424: the strict parser, and whatever it accepts must survive the full
//! dispatch and serialise back to something that parses again.
use libfuzzer_sys::fuzz_target;
use logrelay::protocol::{Context, decode_frame, rfc5424, serialize};

fuzz_target!(|data: &[u8]| {
    let _ = rfc5424::parse(data);
    let ctx = Context::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    if let Some(m) = decode_frame(data, &ctx) {
        let mut out = String::new();
        serialize::to_rfc5424(&m, &mut out);
        assert!(rfc5424::parse(out.as_bytes()).is_ok(), "re-serialised message must parse: {out:?}");
    }
});
