//! Level names on the command line: one level, or a range `FROM..TO`.

use super::error::{CliError, did_you_mean};
use crate::message::Level;

const LEVEL_HINT: &str = "levels: emerg alert crit err warning notice info debug (or 0-7, aliases \
                          like error, warn, critical), a range FROM..TO";

pub fn level(s: &str) -> Result<Level, CliError> {
    s.parse::<Level>().map_err(|_| {
        let hint = match did_you_mean(s, &Level::ACCEPTED) {
            Some(m) => format!("did you mean '{m}'? {LEVEL_HINT}"),
            None => LEVEL_HINT.to_string(),
        };
        CliError::usage(format!("unknown level '{s}'"), Some(hint))
    })
}

/// `err` = err and more severe; `FROM..TO` inclusive, in either order.
pub fn priority(s: &str) -> Result<(Level, Level), CliError> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (level(a)?, level(b)?);
            Ok((a.min(b), a.max(b)))
        }
        None => Ok((Level::Emerg, level(s)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Level;

    #[test]
    fn priorities() {
        assert_eq!(priority("err").unwrap(), (Level::Emerg, Level::Err));
        assert_eq!(
            priority("warning..err").unwrap(),
            (Level::Err, Level::Warning)
        );
        assert_eq!(priority("3..5").unwrap(), (Level::Err, Level::Notice));
        let e = priority("warnig").unwrap_err().to_string();
        assert!(e.contains("did you mean 'warning'"), "{e}");
    }
}
