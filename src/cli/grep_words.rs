//! Which whole words every match of a `-g` pattern must contain, so that the store's
//! token filters can skip the blocks without them (`-g` then reads what `-w` would).
//!
//! A word counts only where the pattern bounds it on both sides: by a non-word
//! character inside the same literal (`for` in `failed password for user`), by `\b`, by
//! `^`/`$`, or by a class without word characters (`[ =:]`). `connection refused` alone
//! yields nothing (it also matches `reconnection refusedX`): write `\bconnection
//! refused\b`, or use `-w`. Alternatives contribute the words all of them require.
//! A case-insensitive pattern contributes ASCII words only: Unicode case folding
//! equates characters that lower-casing keeps apart.

use crate::store::words::{for_each_word, is_word_char};
use regex_syntax::hir::{Hir, HirKind, Look};

/// One element of a flattened concatenation.
enum Item<'h> {
    Lit(String),
    /// A zero-width or one-character element after or before which no word continues.
    Boundary,
    /// Alternatives: each is read with the neighbours' boundaries; to the literals
    /// beside it, it is `Other`.
    Alt(&'h [Hir]),
    /// Anything else: we know nothing of its neighbourhood.
    Other,
}

/// The lower-cased words every match of `pattern` contains whole; empty when unsure or
/// when the pattern does not parse (the regex crate reports that error itself).
pub fn required_words(pattern: &str, case_insensitive: bool) -> Vec<String> {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut words = required(&hir);
    if case_insensitive {
        words.retain(|w| w.is_ascii());
    }
    words.sort();
    words.dedup();
    words
}

fn required(hir: &Hir) -> Vec<String> {
    match hir.kind() {
        HirKind::Concat(_) | HirKind::Literal(_) | HirKind::Capture(_) => {
            let mut items = Vec::new();
            let mut nested = Vec::new();
            flatten(hir, &mut items, &mut nested);
            let mut words = words_of(&items);
            words.extend(nested);
            words
        }
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Alternation(alts) => {
            let mut sets = alts.iter().map(required);
            let first = sets.next().unwrap_or_default();
            sets.fold(first, |acc, s| {
                acc.into_iter().filter(|w| s.contains(w)).collect()
            })
        }
        _ => Vec::new(),
    }
}

/// A concatenation as items; what nested elements require on their own goes to
/// `nested`.
fn flatten<'h>(hir: &'h Hir, items: &mut Vec<Item<'h>>, nested: &mut Vec<String>) {
    match hir.kind() {
        HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
            Ok(s) => items.push(Item::Lit(s.to_string())),
            Err(_) => items.push(Item::Other),
        },
        HirKind::Capture(c) => flatten(&c.sub, items, nested),
        HirKind::Concat(parts) => {
            for p in parts {
                flatten(p, items, nested);
            }
        }
        HirKind::Repetition(r) if r.min == 1 && r.max == Some(1) => flatten(&r.sub, items, nested),
        HirKind::Alternation(alts) => items.push(Item::Alt(alts)),
        HirKind::Look(look) => items.push(match look {
            Look::WordUnicode
            | Look::Start
            | Look::End
            | Look::StartLF
            | Look::EndLF
            | Look::StartCRLF
            | Look::EndCRLF => Item::Boundary,
            _ => Item::Other,
        }),
        HirKind::Class(regex_syntax::hir::Class::Unicode(c))
            if c.ranges()
                .iter()
                .all(|r| (r.start()..=r.end()).all(|ch| !is_word_char(ch))) =>
        {
            // Bounded classes only (a huge range is checked lazily and fails early).
            items.push(Item::Boundary)
        }
        _ => {
            nested.extend(required(hir));
            items.push(Item::Other);
        }
    }
}

/// The words of the literal runs that are bounded on both sides, and those every
/// alternative requires.
fn words_of(items: &[Item<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let boundary = |i: Option<usize>| {
        if i.and_then(|i| items.get(i))
            .is_some_and(|it| matches!(it, Item::Boundary))
        {
            Item::Boundary
        } else {
            Item::Other
        }
    };
    while i < items.len() {
        if let Item::Alt(alts) = &items[i] {
            let mut common: Option<Vec<String>> = None;
            for alt in alts.iter() {
                let mut sub = vec![boundary(i.checked_sub(1))];
                let mut nested = Vec::new();
                flatten(alt, &mut sub, &mut nested);
                sub.push(boundary(Some(i + 1)));
                let mut words = words_of(&sub);
                words.extend(nested);
                common = Some(match common {
                    None => words,
                    Some(c) => c.into_iter().filter(|w| words.contains(w)).collect(),
                });
            }
            out.extend(common.unwrap_or_default());
            i += 1;
            continue;
        }
        let Item::Lit(_) = &items[i] else {
            i += 1;
            continue;
        };
        let mut text = String::new();
        let start = i;
        while let Some(Item::Lit(s)) = items.get(i) {
            text.push_str(s);
            i += 1;
        }
        let left = start > 0 && matches!(items[start - 1], Item::Boundary);
        let right = matches!(items.get(i), Some(Item::Boundary));
        let first_is_word = text.chars().next().is_some_and(is_word_char);
        let last_is_word = text.chars().next_back().is_some_and(is_word_char);
        let mut runs = Vec::new();
        let mut buf = String::new();
        for_each_word(&text, &mut buf, &mut |w| runs.push(w.to_string()));
        let n = runs.len();
        for (k, w) in runs.into_iter().enumerate() {
            let left_ok = k > 0 || !first_is_word || left;
            let right_ok = k + 1 < n || !last_is_word || right;
            if left_ok && right_ok {
                out.push(w);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_match_must_contain() {
        let r = |p| required_words(p, false);
        assert_eq!(r("failed password for user"), ["for", "password"]);
        assert_eq!(r(r"\bconnection refused\b"), ["connection", "refused"]);
        assert_eq!(r("connection refused"), Vec::<String>::new());
        assert_eq!(r(r"^Started \w+\.service"), ["started"]);
        assert_eq!(r(r"user=(alice|bob)\b"), Vec::<String>::new());
        assert_eq!(r(r"\b(timeout|refused)\b"), Vec::<String>::new());
        assert_eq!(r(r"\b(?:get|post) /api\b"), ["api"]);
        assert_eq!(r(r"(\bdisk full\b|\bdisk error\b)"), ["disk"]);
        assert_eq!(r(r"[ =]order \d+ in"), ["order"]);
        assert_eq!(r(r"(?:\bxyz\b)+"), ["xyz"]);
        assert_eq!(r(r"(?:\bxyz\b)*"), Vec::<String>::new());
        assert_eq!(r(r"\bGrüße\b"), ["grüße"]);
        assert_eq!(required_words(r"\bgrüße\b", true), Vec::<String>::new());
        assert_eq!(r("(unclosed"), Vec::<String>::new());
    }

    /// Every match of each pattern contains each word the analysis names, whole.
    #[test]
    fn named_words_are_in_every_match() {
        let texts = [
            "failed password for user root",
            "connection refused by peer",
            "reconnection refusedX",
            "Started nginx.service",
            "GET /api/v1 200",
            "disk full on /var",
            "x order 7 in 3ms",
            "xyz xyz",
        ];
        for p in [
            "failed password for user",
            r"\bconnection refused\b",
            r"^Started \w+\.service",
            r"\b(?:GET|POST) /api\b",
            r"(\bdisk full\b|\bdisk error\b)",
            r"[ =]order \d+ in",
        ] {
            let re = regex::Regex::new(p).unwrap();
            for t in texts.iter().filter(|t| re.is_match(t)) {
                for w in required_words(p, false) {
                    let words = crate::store::Words::new(&[w.as_str()]).unwrap();
                    assert!(
                        words.matches(t, None, None, None, &mut String::new()),
                        "{p} matched {t:?} without the word {w}"
                    );
                }
            }
        }
    }
}
