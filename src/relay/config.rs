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

/// One layer of settings — the TOML file, or the flags and `LOGRELAY_*` variables —
/// every key optional (see fixtures/logrelayd.toml). Layers stack with [`Layer::over`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layer {
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

impl Layer {
    pub fn load(path: &Path) -> Result<Layer, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }

    /// This layer's keys, and `lower`'s where this one has none.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            listen: self.listen.filter(|l| !l.is_empty()).or(lower.listen),
            udp: self.udp.or(lower.udp),
            db: self.db.or(lower.db),
            max_frame: self.max_frame.or(lower.max_frame),
            max_connections: self.max_connections.or(lower.max_connections),
            idle_timeout_secs: self.idle_timeout_secs.or(lower.idle_timeout_secs),
            batch_rows: self.batch_rows.or(lower.batch_rows),
            zone: self.zone.or(lower.zone),
            stats_interval_secs: self.stats_interval_secs.or(lower.stats_interval_secs),
        }
    }
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
    /// The defaults under `layer`; checks every value.
    pub fn resolve(layer: Layer) -> Result<Config, String> {
        let mut c = Config::default();
        if let Some(listen) = layer.listen.filter(|l| !l.is_empty()) {
            c.listen = addrs(&listen)?;
        }
        c.udp = layer.udp.unwrap_or(c.udp);
        if let Some(db) = layer.db {
            c.db = StoreUrl::parse(&db).map_err(|e| e.to_string())?;
        }
        c.max_frame = layer.max_frame.unwrap_or(c.max_frame);
        c.max_connections = layer.max_connections.unwrap_or(c.max_connections);
        if let Some(s) = layer.idle_timeout_secs {
            c.idle_timeout = Duration::from_secs(s);
        }
        c.batch_rows = layer.batch_rows.unwrap_or(c.batch_rows);
        if let Some(z) = layer.zone {
            c.zone = Zone::parse(&z)?;
        }
        if let Some(s) = layer.stats_interval_secs {
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
        let file: Layer = toml::from_str(
            "listen = [\"0.0.0.0:6000\"]\nmax-frame = 8192\nzone = \"+02:00\"\nudp = false",
        )
        .unwrap();
        let flags = Layer {
            max_frame: Some(4096),
            listen: Some(vec![]),
            ..Layer::default()
        };
        let c = Config::resolve(flags.over(file)).unwrap();
        assert_eq!(c.listen[0].port(), 6000);
        assert_eq!(c.max_frame, 4096);
        assert!(!c.udp);
        assert_eq!(c.zone, Zone::Fixed(FixedOffset::east_opt(7200).unwrap()));
        assert_eq!(c.max_connections, 10_000);
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logrelayd.toml");
        let c = Config::resolve(Layer::load(&path).unwrap()).unwrap();
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
        let bad = |l: Layer| Config::resolve(l).unwrap_err();
        assert!(
            bad(Layer {
                listen: Some(vec!["localhost".into()]),
                ..Default::default()
            })
            .contains("IP:PORT")
        );
        assert!(
            bad(Layer {
                zone: Some("Mars/Base".into()),
                ..Default::default()
            })
            .contains("zone")
        );
        assert!(
            bad(Layer {
                max_frame: Some(10),
                ..Default::default()
            })
            .contains("max-frame")
        );
        assert!(toml::from_str::<Layer>("colour = 1").is_err());
    }
}
