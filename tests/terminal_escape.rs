//! A sender must not drive the terminal of whoever reads the logs: the issue's attack,
//! sent through a real relay with `logq send`, read back with the real `logq`.

mod common;

use common::Daemon;
use std::io::Write;
use std::process::{Command, Output};

const ATTACK: &str = "innocent \x1b[2J\x1b[H\x1b]0;pwned\x07";

fn logq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logq"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("LOGRELAY_DB")
        .env_remove("LOGRELAY_CONFIG")
        .env_remove("LOGRELAY_SERVER")
        .output()
        .expect("run logq")
}

/// Every ESC in `out` starts one of our own colour sequences (`ESC [ digits/; m`).
fn only_colour_sequences(out: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = out[i..].iter().position(|&b| b == 0x1b) {
        let at = i + p;
        let rest = &out[at + 1..];
        let Some(end) = rest.iter().position(|&b| b == b'm') else {
            return false;
        };
        if rest.first() != Some(&b'[')
            || !rest[1..end]
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b';')
        {
            return false;
        }
        i = at + 1 + end;
    }
    true
}

#[test]
fn control_characters_are_escaped_unless_all() {
    let d = Daemon::start(&[]);
    let server = d.addr.to_string();
    for level in ["info", "err"] {
        let out = logq(&["send", "--server", &server, "-p", level, "-s", "x", ATTACK]);
        assert!(out.status.success(), "{out:?}");
    }
    // Fields other than the message come from the sender too (native JSON lets them
    // hold anything); C1 CSI (U+009B) and a newline in a hostname as well.
    let mut s = d.connect();
    s.write_all(
        b"{\"message\":\"c1 \\u009b2J\",\"source\":\"x\",\"hostname\":\"h\\u001b]0;t\\u0007\\nfake\"}\n",
    )
    .expect("send");
    drop(s);
    d.wait_rows(3);
    let db = format!("sqlite:{}", d.db.display());

    let out = logq(&["--db", &db, "-s", "x", "--color", "always"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        only_colour_sequences(&out.stdout),
        "raw escape sequence reached the terminal: {text:?}"
    );
    assert!(
        !out.stdout.contains(&0x07) && !text.contains('\u{9b}'),
        "{text:?}"
    );
    assert_eq!(
        text.matches(r"innocent \x1b[2J\x1b[H\x1b]0;pwned\x07")
            .count(),
        2,
        "{text:?}"
    );
    assert!(text.contains(r"c1 \x9b2J"), "{text:?}");
    assert!(text.contains(r"h\x1b]0;t\x07\x0afake x: "), "{text:?}");
    // Three rows, three lines: the hostname's newline cannot fake a row.
    assert_eq!(text.lines().count(), 3, "{text:?}");
    // Colour is still there for the err row.
    assert!(text.contains("\x1b[31"), "{text:?}");

    for mode in ["short", "cat", "short-precise"] {
        let out = logq(&["--db", &db, "-s", "x", "-o", mode, "--color", "never"]);
        assert!(!out.stdout.contains(&0x1b), "{mode}: {out:?}");
    }

    // -a: raw, as journalctl.
    let out = logq(&["--db", &db, "-s", "x", "-a", "--color", "never"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(ATTACK).count(), 2, "{text:?}");
    assert!(text.contains("c1 \u{9b}2J"), "{text:?}");

    // JSON is exact (escaped by JSON itself, never altered).
    let out = logq(&["--db", &db, "-s", "x", "-o", "json", "-n", "all"]);
    let msgs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["message"].as_str().expect("message").to_string()
        })
        .collect();
    assert_eq!(msgs, [ATTACK, ATTACK, "c1 \u{9b}2J"]);
}
