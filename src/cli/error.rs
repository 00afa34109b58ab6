//! `logq`'s errors and their exit codes (DESIGN.md): 2 usage, 3 store or runtime.

use std::fmt;
use std::process::ExitCode;

#[derive(Debug)]
pub enum CliError {
    /// Bad flag, time, level, field or regex; the hint lists valid forms.
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// The store could not be opened or read, or another runtime failure.
    Runtime(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>, hint: Option<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage { .. } => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(3),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage { message, hint } => {
                write!(f, "logq: error: {message}")?;
                if let Some(h) = hint {
                    write!(f, "\n  hint: {h}")?;
                }
                Ok(())
            }
            CliError::Runtime(m) => write!(f, "logq: error: {m}"),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::Runtime(e.to_string())
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("warnig", &["warning", "err"]), Some("warning"));
        assert_eq!(
            did_you_mean("hostnme", &["hostname", "source"]),
            Some("hostname")
        );
        assert_eq!(did_you_mean("zzzzzz", &["warning", "err"]), None);
    }
}
