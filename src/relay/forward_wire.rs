//! A stored record as the native protocol's JSON line with its sequence number, as a
//! forwarding relay sends it upstream (docs/PROTOCOL.md). The upstream relay parses it
//! with the same parser as any native client's line, so every field the line carries
//! comes out as it went in; `protocol` and `peer` (the original sender's) are taken as the
//! record's own because the link's hello says `"forwarding":true`; `received` is the
//! upstream hop's own.

use crate::message::write_json_str;
use crate::store::RecordRef;
use std::fmt::Write as _;

/// Appends `{"seq":N,"timestamp":…,"message":…}` and a newline to `out`. The
/// structured data is already JSON text in the record (the same shape the parser
/// takes), so it is copied, not rebuilt.
pub fn push_line(r: &RecordRef<'_>, seq: u64, out: &mut String) {
    let _ = write!(out, "{{\"seq\":{seq},\"timestamp\":\"");
    crate::timefmt::write_rfc3339_utc(r.time_us, 6, out);
    let _ = write!(out, "\",\"level\":\"{}\"", r.level);
    if let Some(f) = r.facility {
        let _ = write!(out, ",\"facility\":\"{f}\"");
    }
    for (key, value) in [
        ("hostname", r.hostname),
        ("source", r.source),
        ("procid", r.procid),
        ("msgid", r.msgid),
    ] {
        if let Some(v) = value {
            let _ = write!(out, ",\"{key}\":");
            write_json_str(v, out);
        }
    }
    if let Some(sd) = r.structured_data.filter(|s| s.starts_with('{')) {
        out.push_str(",\"structured_data\":");
        out.push_str(sd);
    }
    let _ = write!(out, ",\"protocol\":\"{}\"", r.protocol.name());
    if let Some(peer) = r.peer {
        out.push_str(",\"peer\":");
        write_json_str(peer, out);
    }
    out.push_str(",\"message\":");
    write_json_str(r.message, out);
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Batch;

    /// A record pushed through the line and parsed again (as from a forwarding relay) is
    /// the same record, but for what the upstream hop sets itself (received).
    #[test]
    fn a_line_parses_back_to_the_record() {
        let line = br#"{"message":"a \"quoted\"\nline","level":"warning","timestamp":"2026-01-02T03:04:05.123456Z","facility":"local3","hostname":"web-1","source":"api","procid":"42","msgid":"ID7","structured_data":{"x@1":{"k":["1","2"]}},"user":"bob"}"#;
        let now = chrono::Utc::now();
        let m = crate::protocol::json::parse(line, now).unwrap();
        let mut m = m;
        m.protocol = crate::message::Protocol::Rfc5424;
        m.peer = Some("192.0.2.7:601".into());
        let mut batch = Batch::new();
        batch.push(&m);
        let r = batch.iter().next().unwrap();
        let mut out = String::new();
        push_line(&r, 77, &mut out);
        assert!(
            out.starts_with("{\"seq\":77,") && out.ends_with("}\n"),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["seq"], 77);
        let mut again = crate::protocol::json::parse(out.trim_end().as_bytes(), now).unwrap();
        again.peer = Some("127.0.0.1:40000".into());
        crate::relay::hello::take_origin(&mut again);
        let mut batch2 = Batch::new();
        batch2.push(&again);
        let r2 = batch2.iter().next().unwrap();
        // `seq` is not data: the relay strips it (here it lands among the extra fields,
        // since this is the bare parser); everything else matches.
        assert_eq!(
            (r2.time_us, r2.level, r2.facility, r2.hostname, r2.source),
            (r.time_us, r.level, r.facility, r.hostname, r.source)
        );
        assert_eq!(
            (r2.procid, r2.msgid, r2.message),
            (r.procid, r.msgid, r.message)
        );
        assert_eq!((r2.protocol, r2.peer), (r.protocol, r.peer));
        assert!(
            r2.structured_data
                .unwrap()
                .contains(r#""x@1":{"k":["1","2"]}"#)
        );
        assert!(r2.structured_data.unwrap().contains(r#""user":"bob""#));
    }
}
