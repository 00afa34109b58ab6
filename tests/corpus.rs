//! Runs every case of `tests/corpus/` (cases from other parsers' test suites; each case's
//! `source` names where it came from, see tests/corpus/README.md).
//! Strict cases must pass unless listed in a `DIVERGENCES` table with the reason;
//! lenient cases (where public parsers disagree) are scored and the score printed.

use base64::Engine;
use logrelay::message::Protocol;
use logrelay::protocol::framing::{Decoder, Event, Mode};
use logrelay::protocol::{Context, decode_frame, rfc3164, rfc5424};
use logrelay::store::Batch;
use logrelay::store::batch::Rfc5424Rows;
use serde_json::{Value, json};
use std::path::PathBuf;

fn corpus(file: &str) -> Vec<Value> {
    let dir = std::env::var_os("LOGRELAY_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"));
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus file {} is required: {e}", path.display()));
    serde_json::from_str(&text).expect("corpus is valid JSON")
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().expect("base64 string"))
        .expect("valid base64")
}

fn bytes(case: &Value, key: &str) -> Vec<u8> {
    match case.get(key) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => b64(&case[format!("{key}_b64")]),
    }
}

fn is_lenient(case: &Value) -> bool {
    case["lenient"].as_bool().unwrap_or(false)
}

/// Collects mismatches; strict ones fail the test unless listed as a divergence.
struct Score {
    name: &'static str,
    strict: usize,
    strict_failures: Vec<String>,
    lenient: usize,
    lenient_ok: usize,
    divergences: &'static [(&'static str, &'static str)],
}

impl Score {
    fn new(name: &'static str, divergences: &'static [(&'static str, &'static str)]) -> Self {
        Score {
            name,
            strict: 0,
            strict_failures: Vec::new(),
            lenient: 0,
            lenient_ok: 0,
            divergences,
        }
    }

    fn record(&mut self, case: &Value, result: Result<(), String>) {
        let id = case["id"].as_str().unwrap_or("?");
        let divergent = self.divergences.iter().any(|(d, _)| *d == id);
        if is_lenient(case) {
            self.lenient += 1;
            self.lenient_ok += usize::from(result.is_ok());
            return;
        }
        self.strict += 1;
        match (result, divergent) {
            (Ok(()), false) => {}
            (Err(e), false) => self.strict_failures.push(format!("{id}: {e}")),
            (Err(_), true) => {}
            (Ok(()), true) => self.strict_failures.push(format!(
                "{id}: listed as a divergence but now passes; remove it"
            )),
        }
    }

    fn finish(self) {
        println!(
            "corpus {}: strict {}/{} pass ({} listed divergences), lenient {}/{} match the corpus reading",
            self.name,
            self.strict - self.strict_failures.len() - self.divergences.len(),
            self.strict,
            self.divergences.len(),
            self.lenient_ok,
            self.lenient
        );
        assert!(
            self.strict_failures.is_empty(),
            "{} strict {} cases fail:\n{}",
            self.strict_failures.len(),
            self.name,
            self.strict_failures.join("\n")
        );
    }
}

fn compare(got: &Value, want: &Value) -> Result<(), String> {
    let Value::Object(want) = want else {
        return Err("bad expect".into());
    };
    let mut diffs = Vec::new();
    for (k, w) in want {
        let g = got.get(k).unwrap_or(&Value::Null);
        if g != w {
            diffs.push(format!("{k}: got {g} want {w}"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

fn msg_value(msg: Option<&[u8]>) -> (Value, Value) {
    match msg {
        None => (Value::Null, Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (json!(s), Value::Null),
            Err(_) => (
                Value::Null,
                json!(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        },
    }
}

fn rfc5424_fields(m: &rfc5424::Rfc5424<'_>) -> Value {
    let (msg, msg_b64) = msg_value(m.msg);
    let sd: Vec<Value> = m
        .structured_data
        .iter()
        .map(|e| {
            json!({"id": e.id, "params": e.params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()})
        })
        .collect();
    let mut v = json!({
        "pri": m.pri, "facility": m.pri >> 3, "severity": m.pri & 7, "version": m.version,
        "timestamp": m.timestamp_text, "hostname": m.hostname, "app_name": m.app_name,
        "procid": m.procid, "msgid": m.msgid, "structured_data": sd,
    });
    v["msg"] = msg;
    v["msg_b64"] = msg_b64;
    v
}

/// Cases where this parser deliberately reads the corpus differently.
const RFC5424_DIVERGENCES: &[(&str, &str)] = &[];

#[test]
fn rfc5424_corpus() {
    let mut score = Score::new("rfc5424", RFC5424_DIVERGENCES);
    for case in corpus("rfc5424.json") {
        let input = bytes(&case, "input");
        let parsed = rfc5424::parse(&input);
        let result = if case["valid"].as_bool() == Some(true) {
            match &parsed {
                Ok(m) => {
                    let mut want = case["expect"].clone();
                    // A message with only SP after SD reads as "" (the corpus allows null).
                    if want.get("msg") == Some(&json!("")) && m.msg.is_none() {
                        want["msg"] = Value::Null;
                    }
                    compare(&rfc5424_fields(m), &want)
                }
                Err(e) => Err(format!("rejected: {e}")),
            }
        } else {
            let want = case["invalid_part"].as_str().unwrap_or("?");
            match &parsed {
                Ok(_) => Err(format!("accepted, want invalid {want}")),
                Err(e) if e.part.name() == want => Ok(()),
                Err(e) => Err(format!("invalid at {}, want {want}", e.part.name())),
            }
        };
        score.record(&case, result);
    }
    score.finish();
}

/// Every case read straight into a batch gives the row that decoding it to a record
/// and pushing that gives, or is left to that path (and then is no RFC 5424 record).
#[test]
fn direct_rows_match_decoded_records() {
    let mut ctx = Context::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    ctx.peer = Some("127.0.0.1:9");
    let (mut taken, mut total) = (0, 0);
    for case in corpus("rfc5424.json").iter().chain(&corpus("rfc3164.json")) {
        let input = bytes(case, "input");
        let mut general = Batch::new();
        if let Some(m) = decode_frame(&input, &ctx) {
            general.push(&m);
        }
        let mut direct = Batch::new();
        let took = Rfc5424Rows::new(&ctx).push(&input, &mut direct);
        let id = case["id"].as_str().unwrap_or("?");
        let is_5424 = general.iter().next().map(|r| r.protocol) == Some(Protocol::Rfc5424);
        assert_eq!(took, is_5424, "{id}");
        if took {
            let (d, g): (Vec<_>, Vec<_>) = (direct.iter().collect(), general.iter().collect());
            assert_eq!(d, g, "{id}");
        } else {
            assert!(direct.is_empty(), "{id}");
        }
        taken += usize::from(took);
        total += 1;
    }
    assert!(
        taken > 50 && taken < total,
        "{taken} of {total} read directly"
    );
}

const RFC3164_DIVERGENCES: &[(&str, &str)] = &[];

fn rfc3164_fields(m: &rfc3164::Rfc3164<'_>) -> Value {
    let (msg, msg_b64) = msg_value(Some(m.msg));
    let mut extra = serde_json::Map::new();
    if let Some(c) = m.message_counter {
        extra.insert("message_counter".into(), json!(c));
    }
    if let Some(s) = m.sequence {
        extra.insert("sequence".into(), json!(s));
    }
    if m.clock_unsynced {
        extra.insert("clock_unsynced".into(), json!(true));
    }
    let mut v = json!({
        "pri": m.pri, "facility": m.pri.map(|p| p >> 3), "severity": m.pri.map(|p| p & 7),
        "timestamp_text": m.timestamp_text, "hostname": m.hostname, "tag": m.tag,
        "procid": m.procid, "msg": msg, "msg_b64": msg_b64,
    });
    if !extra.is_empty() {
        v["extra"] = Value::Object(extra);
    }
    v
}

#[test]
fn rfc3164_corpus() {
    let mut score = Score::new("rfc3164", RFC3164_DIVERGENCES);
    let (mut best_effort_ok, mut best_effort_total) = (0, 0);
    for case in corpus("rfc3164.json") {
        let input = bytes(&case, "input");
        let parsed = rfc3164::parse(&input);
        let result = if case["valid"].as_bool() == Some(true) {
            match &parsed {
                Ok(m) => compare(&rfc3164_fields(m), &case["expect"]),
                Err(e) => Err(format!("rejected: {e}")),
            }
        } else {
            let want = case["invalid_part"].as_str().unwrap_or("?");
            match &parsed {
                Ok(m) => Err(format!(
                    "accepted as {}, want invalid {want}",
                    rfc3164_fields(m)
                )),
                Err(e) if e.part.name() == want => Ok(()),
                Err(e) => Err(format!("invalid at {}, want {want}", e.part.name())),
            }
        };
        score.record(&case, result);
        if let Some(want) = case.get("lenient_expect") {
            best_effort_total += 1;
            if let Ok(m) = rfc3164::parse_lenient(&input) {
                best_effort_ok += usize::from(compare(&rfc3164_fields(&m), want).is_ok());
            }
        }
    }
    println!(
        "corpus rfc3164: best-effort reading (parse_lenient) matches lenient_expect in {best_effort_ok}/{best_effort_total} invalid cases"
    );
    score.finish();
}

/// logrelay's auto mode follows DESIGN.md: octet counting only for `DIGITS SP <`.
const FRAMING_DIVERGENCES: &[(&str, &str)] = &[(
    "auto-octet",
    "DESIGN.md: in auto mode a frame is octet-counted only when it starts `DIGITS SP <`, \
     so a plain line that starts with a number is LF-framed text; `32 0123…` has no `<`",
)];

struct FramingRun {
    frames: Vec<Vec<u8>>,
    error: bool,
    /// Frames delivered after the first error or truncation (recovery).
    after: Vec<Vec<u8>>,
    /// The frame delivered at EOF from unterminated bytes.
    tail: Option<Vec<u8>>,
}

fn run_framing(case: &Value) -> FramingRun {
    let mode = match case["framing"].as_str() {
        Some("octet-counting") => Mode::OctetCounting,
        Some("non-transparent-lf") => Mode::Lf,
        Some("non-transparent-nul") => Mode::Nul,
        _ => Mode::Auto,
    };
    let max = case["max_frame_len"]
        .as_u64()
        .map_or(logrelay::protocol::framing::DEFAULT_MAX_FRAME, |m| {
            m as usize
        });
    let stream = bytes(case, "stream");
    let chunks: Vec<Vec<u8>> = match (case.get("chunks"), case.get("chunks_b64")) {
        (Some(Value::Array(c)), _) => c
            .iter()
            .map(|s| s.as_str().unwrap_or("").as_bytes().to_vec())
            .collect(),
        (_, Some(Value::Array(c))) => c.iter().map(b64).collect(),
        _ => vec![stream],
    };
    let mut run = FramingRun {
        frames: vec![],
        error: false,
        after: vec![],
        tail: None,
    };
    let mut decoder = Decoder::new(mode, max);
    let mut buf: Vec<u8> = Vec::new();
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        buf.extend_from_slice(&chunk);
        let mut pos = 0;
        loop {
            let (used, ev) = decoder.decode(&buf[pos..]);
            pos += used;
            match ev {
                None => break,
                Some(Event::Frame(f)) if run.error => run.after.push(f.to_vec()),
                Some(Event::Frame(f)) => run.frames.push(f.to_vec()),
                Some(Event::Truncated(..)) | Some(Event::Error(_)) => run.error = true,
            }
        }
        buf.drain(..pos);
        if i + 1 == n {
            let mut pos = 0;
            loop {
                let (used, ev) = decoder.decode_eof(&buf[pos..]);
                pos += used;
                match ev {
                    None => break,
                    Some(Event::Frame(f)) => run.tail = Some(f.to_vec()),
                    Some(_) => run.error = true,
                }
            }
        }
    }
    run
}

fn frames_of(case: &Value, key: &str) -> Option<Vec<Vec<u8>>> {
    if let Some(Value::Array(a)) = case.get(key) {
        return Some(
            a.iter()
                .map(|s| s.as_str().unwrap_or("").as_bytes().to_vec())
                .collect(),
        );
    }
    match case.get(format!("{key}_b64")) {
        Some(Value::Array(a)) => Some(a.iter().map(b64).collect()),
        _ => None,
    }
}

#[test]
fn framing_corpus() {
    let mut score = Score::new("framing", FRAMING_DIVERGENCES);
    for case in corpus("framing.json") {
        let run = run_framing(&case);
        let mut problems = Vec::new();
        let want = frames_of(&case, "expect_frames").unwrap_or_default();
        if run.frames != want {
            problems.push(format!(
                "frames {:?} want {:?}",
                run.frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f))
                    .collect::<Vec<_>>(),
                want.iter()
                    .map(|f| String::from_utf8_lossy(f))
                    .collect::<Vec<_>>()
            ));
        }
        let want_error = case.get("expect_error").is_some_and(|e| !e.is_null());
        if run.error != want_error {
            problems.push(format!("error {} want {want_error}", run.error));
        }
        if let Some(tail) = case["unterminated_tail"].as_str() {
            // We deliver an unterminated last frame (nothing lost at EOF).
            if run.tail.as_deref() != Some(tail.as_bytes()) {
                problems.push(format!("tail {:?} want {tail:?}", run.tail));
            }
        } else if run.tail.is_some() && !want_error {
            problems.push(format!("unexpected tail frame {:?}", run.tail));
        }
        if let Some(after) = frames_of(&case, "frames_after_recovery") {
            let mut got = run.after.clone();
            got.extend(
                run.tail
                    .clone()
                    .filter(|_| want_error && mode_recovers(&case)),
            );
            if got != after && mode_recovers(&case) {
                problems.push(format!("after recovery {got:?} want {after:?}"));
            }
        }
        let result = if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        };
        score.record(&case, result);
    }
    score.finish();
}

/// LF framing resynchronises at the next LF; strict octet counting closes the stream
/// except after an oversize but well-formed MSG-LEN, whose octets it skips.
fn mode_recovers(case: &Value) -> bool {
    case["framing"].as_str() != Some("octet-counting")
        || case["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "oversize"))
}
