#![no_main]
//! RFC 3164: strict and lenient readings, and resolving the time with any "now".
use libfuzzer_sys::fuzz_target;
use logrelay::protocol::rfc3164;

fuzz_target!(|data: &[u8]| {
    let _ = rfc3164::parse(data);
    if let Ok(m) = rfc3164::parse_lenient(data) {
        if let Some(t) = m.timestamp {
            let zone = chrono::FixedOffset::east_opt(-12 * 3600).unwrap();
            let _ = t.resolve(&zone, chrono::DateTime::from_timestamp(0, 0).unwrap());
            let _ = t.resolve(&zone, chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap());
        }
    }
});
