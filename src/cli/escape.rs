//! Stored text shown on a terminal: whoever sent a message must not be able to drive
//! the reader's terminal (clear it, retitle the window, fake earlier lines, …).
//!
//! Control characters are shown as C-style `\xNN` escapes: C0 except tab (a newline is
//! handled by the caller, which indents continuation lines), DEL, and C1 (U+0080–U+009F,
//! which UTF-8 terminals also obey: U+009B is CSI). Escaping the character that starts
//! an escape sequence (ESC, CSI, OSC, DCS…) is enough to neutralise the whole sequence:
//! what follows it is printable text. `\xNN` keeps the message readable and exact
//! (`printf '%b'` turns it back into the bytes), where journalctl's `[N blob data]`
//! hides the whole message. A backslash already in the text is left alone, so a
//! literal `\x1b` typed by a sender looks the same as an escaped ESC — ambiguous but
//! harmless; `-o json` is the exact form.

use std::fmt;

/// Whether `c` must not reach a terminal raw. `\n` is included: a caller that keeps
/// newlines splits on them first.
#[inline]
fn is_control(c: char) -> bool {
    (c < ' ' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// Whether any character of `s` needs escaping. A byte scan: C0 and DEL are single
/// bytes, and every C1 character is encoded as 0xC2 0x80..=0x9F.
#[inline]
pub fn needs_escape(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        (c < 0x20 && c != b'\t')
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// Appends `s` with control characters escaped; a plain copy when there is nothing to
/// escape (the usual case), so it costs one scan and no allocation.
pub fn push_escaped(out: &mut String, s: &str) {
    if !needs_escape(s) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if is_control(c) {
            out.push_str(&s[start..i]);
            push_hex(out, c as u32);
            start = i + c.len_utf8();
        }
    }
    out.push_str(&s[start..]);
}

fn push_hex(out: &mut String, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(HEX[(code >> 4) as usize & 0xf] as char);
    out.push(HEX[code as usize & 0xf] as char);
}

/// `s` as `Display`, escaped unless `raw` (for text that is styled by `owo_colors`).
pub struct Shown<'a> {
    pub text: &'a str,
    pub raw: bool,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.raw || !needs_escape(self.text) {
            return f.write_str(self.text);
        }
        let mut start = 0;
        let mut buf = String::with_capacity(4);
        for (i, c) in self.text.char_indices() {
            if is_control(c) {
                f.write_str(&self.text[start..i])?;
                buf.clear();
                push_hex(&mut buf, c as u32);
                f.write_str(&buf)?;
                start = i + c.len_utf8();
            }
        }
        f.write_str(&self.text[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, s);
        assert_eq!(
            out,
            Shown {
                text: s,
                raw: false
            }
            .to_string()
        );
        out
    }

    #[test]
    fn the_attack_from_the_issue_is_inert() {
        let attack = "innocent \x1b[2J\x1b[H\x1b]0;pwned\x07";
        assert_eq!(esc(attack), r"innocent \x1b[2J\x1b[H\x1b]0;pwned\x07");
    }

    #[test]
    fn c0_del_and_c1_escaped_tab_and_text_kept() {
        assert_eq!(esc("a\tb"), "a\tb");
        assert_eq!(esc("\r\0\x7f"), r"\x0d\x00\x7f");
        assert_eq!(esc("csi\u{9b}31m nel\u{85}"), r"csi\x9b31m nel\x85");
        assert_eq!(esc("a\nb"), r"a\x0ab");
        // Non-control characters next to C1 in UTF-8 are kept: é is C3 A9, U+00A0 is C2 A0.
        assert_eq!(esc("café\u{a0}€ 日本"), "café\u{a0}€ 日本");
        assert!(!needs_escape("plain text, \\x1b typed by hand"));
    }

    #[test]
    fn raw_passes_everything() {
        let s = "\x1b[31mred";
        assert_eq!(Shown { text: s, raw: true }.to_string(), s);
    }
}
