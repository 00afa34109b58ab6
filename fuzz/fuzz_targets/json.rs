#![no_main]
//! The native JSON line parser, and the record it gives stored into a batch.
use libfuzzer_sys::fuzz_target;
use logrelay::protocol::json;
use logrelay::store::Batch;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = json::parse(data, chrono::DateTime::from_timestamp(0, 0).unwrap()) {
        let mut b = Batch::new();
        b.push(&m);
        let sd = b.iter().next().and_then(|r| r.structured_data.map(str::to_string));
        if let Some(sd) = sd {
            assert!(serde_json_valid(&sd), "structured data JSON must be valid: {sd}");
        }
    }
});

fn serde_json_valid(s: &str) -> bool {
    // The fuzz crate has no serde_json of its own; re-parse through the JSON parser.
    let line = format!("{{\"message\":\"x\",\"structured_data\":{s}}}");
    json::parse(line.as_bytes(), chrono::DateTime::from_timestamp(0, 0).unwrap()).is_ok()
}
