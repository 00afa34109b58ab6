//! What the relay, `logq` and the `Logger` client agree on: the default address, the
//! default store, how paths are expanded, and the value types settings use (sizes like
//! `64MiB`, durations like `30d`). No flag parsing here, so the client-only build has it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where the relay listens and clients send by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5514";

/// The default SQLite store, the same for relay and `logq`:
/// `$XDG_DATA_HOME/logrelay/logs.db` (`~/.local/share/logrelay/logs.db`), or
/// `./logrelay.db` without a home.
pub fn default_store_path() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("logrelay").join("logs.db"))
        .unwrap_or_else(|| PathBuf::from("logrelay.db"))
}

/// Expands a leading `~` and `$VAR` / `${VAR}` (as a shell would) in a path taken from a
/// flag, a variable or the config file: `db = "sqlite:~/logs.db"` must not create a
/// directory named `~`.
pub fn expand_path(raw: &str) -> Result<PathBuf, String> {
    shellexpand::full(raw)
        .map(|p| PathBuf::from(p.as_ref()))
        .map_err(|e| format!("cannot expand path '{raw}': {e}"))
}

/// A byte count written `64MiB`, `1GiB`, `512KB` or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub const fn mib(n: u64) -> Size {
        Size(n << 20)
    }
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        s.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|_| format!("bad size '{s}' (expected e.g. 64MiB, 1GiB or a byte count)"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec_short())
    }
}

/// A duration written `30d`, `12h`, `90s`, `1h 30min`, `250ms`, or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        // A bare number is seconds, as `--idle-timeout 600` always was.
        if let Ok(secs) = s.trim().parse::<u64>() {
            return Ok(Span(Duration::from_secs(secs)));
        }
        humantime::parse_duration(s.trim())
            .map(Span)
            .map_err(|_| format!("bad duration '{s}' (expected e.g. 30d, 12h, 90s or 250ms)"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A limit that may be switched off: `off` (or nothing) reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrOff<T>(pub Option<T>);

impl<T: FromStr<Err = String>> FromStr for OrOff<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<OrOff<T>, String> {
        match s.trim() {
            "" | "off" | "none" => Ok(OrOff(None)),
            v => v.parse().map(|t| OrOff(Some(t))),
        }
    }
}

impl<T: fmt::Display> fmt::Display for OrOff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(t) => t.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// A directory named in a setting, with `~` and `$VAR` expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir(pub PathBuf);

impl FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Dir, String> {
        expand_path(s.trim()).map(Dir)
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// Deserialises a setting from its string form (`FromStr`), and sizes and durations
/// also from a bare integer (bytes, seconds), so TOML and flags read alike.
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($t), " as text"))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$t, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<$t, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    )*};
}
#[cfg_attr(not(feature = "relay"), allow(unused_imports))]
pub(crate) use deserialize_from_str;

deserialize_from_str!(Size, Span, OrOff<Size>, OrOff<Span>, OrOff<Dir>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_spans() {
        assert_eq!("64MiB".parse::<Size>().unwrap(), Size::mib(64));
        assert_eq!("1GiB".parse::<Size>().unwrap(), Size(1 << 30));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert!("lots".parse::<Size>().unwrap_err().contains("64MiB"));
        assert_eq!(
            "30d".parse::<Span>().unwrap().0,
            Duration::from_secs(30 * 86400)
        );
        assert_eq!("90s".parse::<Span>().unwrap().0, Duration::from_secs(90));
        assert!("soon".parse::<Span>().unwrap_err().contains("30d"));
        let t: toml::Table = toml::from_str("a = 600\nb = \"12h\"\nc = \"8MiB\"\nd = 42").unwrap();
        let span = |k: &str| Span::deserialize(t[k].clone()).unwrap().0;
        use serde::Deserialize;
        assert_eq!(span("a"), Duration::from_secs(600));
        assert_eq!(span("b"), Duration::from_secs(12 * 3600));
        assert_eq!(Size::deserialize(t["c"].clone()).unwrap(), Size::mib(8));
        assert_eq!(Size::deserialize(t["d"].clone()).unwrap(), Size(42));
    }

    #[test]
    fn paths_expand_home() {
        let home = std::env::var("HOME").unwrap_or_default();
        if home.is_empty() {
            return;
        }
        assert_eq!(
            expand_path("~/x.db").unwrap(),
            PathBuf::from(format!("{home}/x.db"))
        );
        assert_eq!(
            expand_path("$HOME/x.db").unwrap(),
            PathBuf::from(format!("{home}/x.db"))
        );
        assert_eq!(expand_path("/a/b").unwrap(), PathBuf::from("/a/b"));
        assert!(
            expand_path("$LOGRELAY_SURELY_UNSET_VAR/x")
                .unwrap_err()
                .contains("cannot expand")
        );
    }
}
