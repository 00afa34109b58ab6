//! The relay's settings: defaults, a TOML file (`--config`) and overrides from flags
//! and `LOGRELAY_*` variables (flags > env > file > defaults).

use crate::protocol::framing::DEFAULT_MAX_FRAME;
use crate::store::StoreUrl;
use chrono::{DateTime, FixedOffset, Local, Offset, Utc};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5514";

/// The zone in which RFC 3164 times (which carry none) are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Local,
    Fixed(FixedOffset),
}

impl Zone {
    pub fn parse(s: &str) -> Result<Zone, String> {
        match s.trim() {
            "local" | "Local" | "" => Ok(Zone::Local),
            "UTC" | "utc" | "Z" | "GMT" => Ok(Zone::Fixed(Utc.fix())),
            other => other.parse::<FixedOffset>().map(Zone::Fixed).map_err(|_| {
                format!("bad zone '{other}' (expected local, UTC or an offset like +02:00)")
            }),
        }
    }

    pub fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        match self {
            Zone::Local => t.with_timezone(&Local).offset().fix(),
            Zone::Fixed(o) => *o,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Also receive syslog datagrams on the same ports.
    pub udp: bool,
    pub db: StoreUrl,
    pub max_frame: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Rows per store transaction at most.
    pub batch_rows: usize,
    pub zone: Zone,
    pub stats_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![DEFAULT_LISTEN.parse().expect("valid default address")],
            udp: true,
            db: StoreUrl::default_sqlite(),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(600),
            batch_rows: 5_000,
            zone: Zone::Local,
            stats_interval: Duration::from_secs(60),
        }
    }
}

/// The TOML file's shape; every key optional (see fixtures/logrelayd.toml).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub udp: Option<bool>,
    pub db: Option<String>,
    pub max_frame: Option<usize>,
    pub max_connections: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub batch_rows: Option<usize>,
    pub zone: Option<String>,
    pub stats_interval_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }
}

/// Settings given on the command line or in the environment; `None` = not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Vec<String>,
    pub udp: Option<bool>,
    pub db: Option<String>,
    pub max_frame: Option<usize>,
    pub max_connections: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub batch_rows: Option<usize>,
    pub zone: Option<String>,
    pub stats_interval_secs: Option<u64>,
}

fn addrs(list: &[String]) -> Result<Vec<SocketAddr>, String> {
    list.iter()
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "bad listen address '{a}' (expected IP:PORT, e.g. 0.0.0.0:5514 or [::]:5514)"
                )
            })
        })
        .collect()
}

impl Config {
    /// Defaults, then the file, then the overrides; checks every value.
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Config, String> {
        let mut c = Config::default();
        let listen = if o.listen.is_empty() {
            file.listen.unwrap_or_default()
        } else {
            o.listen
        };
        if !listen.is_empty() {
            c.listen = addrs(&listen)?;
        }
        c.udp = o.udp.or(file.udp).unwrap_or(c.udp);
        if let Some(db) = o.db.or(file.db) {
            c.db = StoreUrl::parse(&db).map_err(|e| e.to_string())?;
        }
        c.max_frame = o.max_frame.or(file.max_frame).unwrap_or(c.max_frame);
        c.max_connections = o
            .max_connections
            .or(file.max_connections)
            .unwrap_or(c.max_connections);
        if let Some(s) = o.idle_timeout_secs.or(file.idle_timeout_secs) {
            c.idle_timeout = Duration::from_secs(s);
        }
        c.batch_rows = o.batch_rows.or(file.batch_rows).unwrap_or(c.batch_rows);
        if let Some(z) = o.zone.or(file.zone) {
            c.zone = Zone::parse(&z)?;
        }
        if let Some(s) = o.stats_interval_secs.or(file.stats_interval_secs) {
            c.stats_interval = Duration::from_secs(s);
        }
        if c.max_frame < 480 || c.max_frame > 16 * 1024 * 1024 {
            return Err(format!(
                "max-frame {} out of range (480 to 16777216 bytes; RFC 5424 receivers must take 480)",
                c.max_frame
            ));
        }
        if c.max_connections == 0 || c.batch_rows == 0 {
            return Err("max-connections and batch-rows must be at least 1".into());
        }
        if c.idle_timeout.is_zero() || c.stats_interval.is_zero() {
            return Err("idle-timeout-secs and stats-interval-secs must be at least 1".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = [\"0.0.0.0:6000\"]\nmax-frame = 8192\nzone = \"+02:00\"\nudp = false",
        )
        .unwrap();
        let o = Overrides {
            max_frame: Some(4096),
            ..Overrides::default()
        };
        let c = Config::resolve(file, o).unwrap();
        assert_eq!(c.listen[0].port(), 6000);
        assert_eq!(c.max_frame, 4096);
        assert!(!c.udp);
        assert_eq!(c.zone, Zone::Fixed(FixedOffset::east_opt(7200).unwrap()));
        assert_eq!(c.max_connections, 10_000);
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logrelayd.toml");
        let c = Config::resolve(FileConfig::load(&path).unwrap(), Overrides::default()).unwrap();
        let d = Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(
            (c.max_frame, c.max_connections, c.batch_rows),
            (d.max_frame, d.max_connections, d.batch_rows)
        );
        assert_eq!(
            (c.idle_timeout, c.zone, c.udp),
            (d.idle_timeout, d.zone, d.udp)
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let bad = |o: Overrides| Config::resolve(FileConfig::default(), o).unwrap_err();
        assert!(
            bad(Overrides {
                listen: vec!["localhost".into()],
                ..Default::default()
            })
            .contains("IP:PORT")
        );
        assert!(
            bad(Overrides {
                zone: Some("Mars/Base".into()),
                ..Default::default()
            })
            .contains("zone")
        );
        assert!(
            bad(Overrides {
                max_frame: Some(10),
                ..Default::default()
            })
            .contains("max-frame")
        );
        assert!(toml::from_str::<FileConfig>("colour = 1").is_err());
    }
}
