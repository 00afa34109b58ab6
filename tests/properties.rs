//! Property tests: RFC 5424 round trips, and no input makes any parser panic.

use chrono::{DateTime, Utc};
use logrelay::message::{Facility, Level, LogMessage, Protocol, SdElement};
use logrelay::protocol::framing::{Decoder, Event, Mode};
use logrelay::protocol::{Context, decode_frame, json, rfc3164, rfc5424, serialize};
use logrelay::store::Batch;
use logrelay::store::batch::Rfc5424Rows;
use proptest::prelude::*;
use std::borrow::Cow;

fn header_field(max: usize) -> impl Strategy<Value = Option<Cow<'static, str>>> {
    proptest::option::of(
        proptest::string::string_regex(&format!("[!-~]{{1,{max}}}"))
            .unwrap()
            .prop_filter("NILVALUE", |s| s != "-")
            .prop_map(Cow::Owned),
    )
}

fn sd_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[!#-<>-\\\\^-~]{1,32}").unwrap()
}

fn structured_data() -> impl Strategy<Value = Vec<SdElement<'static>>> {
    proptest::collection::vec(
        (
            sd_name(),
            proptest::collection::vec((sd_name(), any::<String>()), 0..4),
        ),
        0..4,
    )
    .prop_map(|els| {
        let mut seen = Vec::new();
        els.into_iter()
            .filter(|(id, _)| {
                let fresh = !seen.contains(id);
                seen.push(id.clone());
                fresh // SD-IDs are unique within a message
            })
            .map(|(id, params)| SdElement {
                id: Cow::Owned(id),
                params: params
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                    .collect(),
            })
            .collect()
    })
}

prop_compose! {
    fn message()(
        micros in 0i64..253_402_300_799_999_999,
        level in 0u8..8,
        facility in 0u8..24,
        hostname in header_field(255),
        source in header_field(48),
        procid in header_field(128),
        msgid in header_field(32),
        structured_data in structured_data(),
        // One trailing LF is framing residue by design; see protocol::trailing_newline.
        text in any::<String>().prop_filter("trailing LF", |s| !s.ends_with('\n')),
    ) -> LogMessage<'static> {
        let t = DateTime::from_timestamp_micros(micros).unwrap();
        LogMessage {
            timestamp: t,
            received: received(),
            level: Level::from_code(level).unwrap(),
            facility: Facility::from_code(facility),
            hostname, source, procid, msgid, structured_data,
            message: Cow::Owned(text),
            protocol: Protocol::Rfc5424,
            peer: None,
        }
    }
}

fn received() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rfc5424_round_trip(m in message()) {
        let mut wire = String::new();
        serialize::to_rfc5424(&m, &mut wire);
        let ctx = Context::new(received());
        let parsed = rfc5424::parse(wire.as_bytes());
        prop_assert!(parsed.is_ok(), "{:?} does not parse: {:?}", wire, parsed);
        let back = decode_frame(wire.as_bytes(), &ctx).unwrap().into_owned();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn no_parser_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let ctx = Context::new(received());
        let _ = rfc5424::parse(&bytes);
        let _ = rfc3164::parse(&bytes);
        let _ = rfc3164::parse_lenient(&bytes);
        let _ = json::parse(&bytes, received());
        let _ = decode_frame(&bytes, &ctx);
        for mode in [Mode::Auto, Mode::OctetCounting, Mode::Lf, Mode::Nul] {
            let mut d = Decoder::new(mode, 64);
            let mut pos = 0;
            for _ in 0..=bytes.len() {
                let (used, ev) = d.decode_eof(&bytes[pos..]);
                pos += used;
                match ev {
                    Some(Event::Frame(f)) | Some(Event::Truncated(f, _)) => prop_assert!(f.len() <= 64),
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn syslog_shaped_input_never_panics(
        pri in 0u16..300, version in 0u16..1000, rest in "[ -~\\[\\]\"\\\\=]{0,200}"
    ) {
        let line = format!("<{pri}>{version} {rest}");
        let ctx = Context::new(received());
        prop_assert!(decode_frame(line.as_bytes(), &ctx).is_some());
    }

    /// Frames read straight into a batch make the rows that decoding them to a record
    /// and pushing it makes, and what that path does not take is not RFC 5424.
    #[test]
    fn direct_rows_match_decoded_records(
        lead in "[ \t]{0,1}",
        pri in 0u16..200,
        ts in r"-|20[0-9]{2}-(0[0-9]|1[0-3])-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,7})?(Z|[+-][0-2][0-9]:[0-6][0-9])",
        sd in r#"-|(\[[ab]( [xy]="([a-c"\]é\x01]|\\.){0,4}")*\]){1,3}"#,
        msg in "( (\u{feff})?[a-z\n\r\u{e9}]{0,8}\n?)?",
    ) {
        let line = format!("{lead}<{pri}>1 {ts} host app - - {sd}{msg}");
        let mut ctx = Context::new(received());
        ctx.peer = Some("127.0.0.1:9");
        let mut general = Batch::new();
        if let Some(m) = decode_frame(line.as_bytes(), &ctx) {
            general.push(&m);
        }
        let general: Vec<_> = general.iter().collect();
        let mut direct = Batch::new();
        let took = Rfc5424Rows::new(&ctx).push(line.as_bytes(), &mut direct);
        let direct: Vec<_> = direct.iter().collect();
        prop_assert_eq!(took, general[0].protocol == Protocol::Rfc5424, "{:?}", line);
        if took {
            prop_assert_eq!(direct, general, "{:?}", line);
        } else {
            prop_assert!(direct.is_empty());
        }
    }
}
