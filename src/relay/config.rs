//! The relay's settings, each declared once in [`settings!`] below: that one entry gives
//! its flag `--NAME`, its variable `LOGRELAY_NAME`, its TOML key `NAME`, its type, its
//! default and its help text. Precedence: flags > variables > the file > defaults.
//!
//! Adding a setting: one entry here, a line in `fixtures/logrelayd.toml` and one in the
//! README's synopsis (a test checks both).

use super::forward::ForwardOptions;
use crate::protocol::framing::DEFAULT_MAX_FRAME;
use crate::settings::{DEFAULT_LISTEN, Dir, OrOff, Size, Span, deserialize_from_str};
use crate::store::StoreUrl;
use chrono::{DateTime, FixedOffset, Local, Offset, Utc};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Declares the settings: `Layer` (every key optional: one per source, stacked with
/// [`Layer::over`]) and `Config` (the resolved values, defaults filled in).
///
/// A TOML table (`[retention]`) is a settings list of its own, named under `tables`;
/// its flags and variables carry the table's name (`--retention-max-age`).
macro_rules! settings {
    ($layer:ident, $config:ident {
        $( $(#[$attr:meta])* $name:ident : $ty:ty = $default:expr; )*
    } tables {
        $( $tname:ident : $tlayer:ident => $tconfig:ident; )*
    }) => {
        /// One layer of settings — the TOML file, or the flags and `LOGRELAY_*` variables.
        #[derive(Debug, Default, Clone, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $layer {
            $( $(#[$attr])* pub $name: Option<$ty>, )*
            $( #[command(flatten)] #[serde(default)] pub $tname: $tlayer, )*
        }

        /// The resolved settings (see the layer for what each means).
        #[derive(Debug, Clone)]
        pub struct $config {
            $( pub $name: $ty, )*
            $( pub $tname: $tconfig, )*
        }

        impl Default for $config {
            fn default() -> Self {
                $config { $( $name: $default, )* $( $tname: $tconfig::default(), )* }
            }
        }

        impl $layer {
            /// This layer's keys, and `lower`'s where this one has none.
            pub fn over(self, lower: $layer) -> $layer {
                $layer {
                    $( $name: self.$name.or(lower.$name), )*
                    $( $tname: self.$tname.over(lower.$tname), )*
                }
            }

            fn or_defaults(self) -> $config {
                let d = $config::default();
                $config {
                    $( $name: self.$name.unwrap_or(d.$name), )*
                    $( $tname: self.$tname.or_defaults(), )*
                }
            }
        }
    };
}

settings! {
    Layer, Config {
    /// Address to listen on, TCP and UDP (repeatable, or comma separated) [default: 127.0.0.1:5514]
    #[arg(long, short = 'l', value_name = "ADDR", value_delimiter = ',', value_parser = listen_addr)]
    #[serde(default, deserialize_with = "listen_addrs")]
    listen: Vec<SocketAddr> = vec![default_listen()];

    /// Address to take RELP on (rsyslog's omrelp; conventionally port 2514), repeatable
    /// [default: none]
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    #[serde(default, deserialize_with = "listen_addrs")]
    listen_relp: Vec<SocketAddr> = Vec::new();

    /// Also receive syslog datagrams on the listen ports [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    udp: bool = true;

    /// The store: sqlite:PATH, a SQL Server connection (mssql://… or ADO.NET), or none
    /// (forward only) [default: sqlite:~/.local/share/logrelay/logs.db]
    #[arg(long, value_name = "URL", global = true)]
    db: Db = Db::Store(StoreUrl::default_sqlite());

    /// Upstream relay to forward everything to, HOST:PORT: native protocol with
    /// acknowledgements, through a spool of its own (repeatable, or comma separated;
    /// `[[forward]]` tables in the file) [default: none]
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',', value_parser = forward_target)]
    forward_to: Vec<String> = Vec::new();

    /// `[[forward]]` tables (file only): `to`, and optionally `spool-dir`,
    /// `spool-max-size`, `tls-ca`, `tls-cert`, `tls-key`, `tls-server-name` and
    /// `token-file` for that link; they add to forward-to.
    #[arg(skip)]
    forward: Vec<ForwardOptions> = Vec::new();

    /// CA certificates (PEM) the upstream relays' certificates must chain to: forward over TLS [default: plain TCP]
    #[arg(long, value_name = "FILE")]
    forward_tls_ca: PathBuf = PathBuf::new();

    /// Client certificate chain (PEM) for upstream relays that ask for one [default: none]
    #[arg(long, value_name = "FILE")]
    forward_tls_cert: PathBuf = PathBuf::new();

    /// The private key of forward-tls-cert (PEM)
    #[arg(long, value_name = "FILE")]
    forward_tls_key: PathBuf = PathBuf::new();

    /// The name the upstream relays' certificates must carry [default: the host of each forward-to]
    #[arg(long, value_name = "NAME")]
    forward_tls_server_name: String = String::new();

    /// File whose first line is the token for the upstream relays' hello, read at each connect [default: none]
    #[arg(long, value_name = "FILE")]
    forward_token_file: PathBuf = PathBuf::new();

    /// Longest frame in bytes; longer frames are truncated and counted [default: 65536]
    #[arg(long, value_name = "BYTES")]
    max_frame: usize = DEFAULT_MAX_FRAME;

    /// Most TCP connections at once; more are refused and counted [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: usize = 10_000;

    /// Close a connection idle this long (seconds, or 10min, 1h) [default: 10min]
    #[arg(long, value_name = "DURATION")]
    #[serde(alias = "idle-timeout-secs")]
    idle_timeout: Span = Span(Duration::from_secs(600));

    /// Most rows per store transaction [default: 5000]
    #[arg(long, value_name = "N")]
    batch_rows: usize = 5_000;

    /// Zone for RFC 3164 times, which carry none: local, UTC or +HH:MM [default: local]
    #[arg(long, value_name = "ZONE")]
    zone: Zone = Zone::Local;

    /// Time between counter reports in the log (seconds, or 1min) [default: 60s]
    #[arg(long, value_name = "DURATION")]
    #[serde(alias = "stats-interval-secs")]
    stats_interval: Span = Span(Duration::from_secs(60));

    /// TLS listener, RFC 5425 (repeatable, or comma separated; 6514 by convention) [default: off]
    #[arg(long, value_name = "ADDR", value_delimiter = ',', value_parser = listen_addr)]
    #[serde(default, deserialize_with = "listen_addrs")]
    listen_tls: Vec<SocketAddr> = Vec::new();

    /// The TLS listeners' certificate chain (PEM); reloaded on SIGHUP and when it changes
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf = PathBuf::new();

    /// The private key of tls-cert (PEM)
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf = PathBuf::new();

    /// CA certificates (PEM) that client certificates must chain to: mutual TLS [default: off]
    #[arg(long, value_name = "FILE")]
    tls_client_ca: PathBuf = PathBuf::new();

    /// Who may send over TLS (repeatable): a client certificate name glob (SAN or CN) or
    /// sha256:HEX fingerprint [default: any client certificate tls-client-ca accepts]
    #[arg(long, value_name = "GLOB|sha256:HEX")]
    tls_allow: Vec<String> = Vec::new();

    /// Tokens for the native protocol's hello line, one per line (reloaded like the certificates)
    #[arg(long, value_name = "FILE")]
    auth_tokens_file: PathBuf = PathBuf::new();

    /// Every TCP connection must authenticate: a client certificate or a hello token [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    auth_required: bool = false;

    /// Level of the relay's own log: error, warn, info, debug or trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    log: LogLevel = LogLevel(tracing::Level::INFO);

    /// Bytes read but not yet committed or spooled, all connections together [default: 64MiB]
    #[arg(long, value_name = "SIZE")]
    memory_budget: Size = Size::mib(64);

    /// Disk spool for when the store fails [default: beside the store, logs.db.spool]
    #[arg(long, value_name = "DIR", global = true)]
    spool_dir: SpoolDir = SpoolDir::default();

    /// Most bytes the spool may take; when full, senders are held back [default: 1GiB]
    #[arg(long, value_name = "SIZE")]
    spool_max_size: Size = Size::mib(1024);

    /// UDP socket receive buffer asked of the kernel [default: 8MiB]
    #[arg(long, value_name = "SIZE")]
    udp_recv_buffer: Size = Size::mib(8);

    /// HTTP address for /metrics, /livez and /readyz, e.g. 127.0.0.1:9514, or off [default: off]
    #[arg(long, value_name = "ADDR")]
    metrics: MetricsAddr = MetricsAddr(None);
    } tables {
        retention: RetentionLayer => Retention;
    }
}

settings! {
    RetentionLayer, Retention {
    /// Remove (whole blocks of) rows older than this, e.g. 30d [default: off]
    #[arg(long = "retention-max-age", value_name = "DURATION")]
    max_age: OrOff<Span> = OrOff(None);

    /// Keep the store (file and WAL; SQL Server: the table's used space) within this size, e.g. 20GiB, removing the oldest rows [default: off]
    #[arg(long = "retention-max-size", value_name = "SIZE")]
    max_size: OrOff<Size> = OrOff(None);

    /// Remove the oldest rows while the store's file system has less free space than this; SQLite only [default: off]
    #[arg(long = "retention-keep-free", value_name = "SIZE")]
    keep_free: OrOff<Size> = OrOff(None);

    /// Before removing rows, write them to zstd-compressed JSON files here [default: off]
    #[arg(long = "retention-archive-dir", value_name = "DIR")]
    archive_dir: OrOff<Dir> = OrOff(None);
    } tables {}
}

/// `spool-dir`: a directory, or (empty, the default) beside the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolDir(pub Option<PathBuf>);

impl FromStr for SpoolDir {
    type Err = String;
    fn from_str(s: &str) -> Result<SpoolDir, String> {
        if s.trim().is_empty() {
            return Ok(SpoolDir(None));
        }
        crate::settings::expand_path(s.trim()).map(|p| SpoolDir(Some(p)))
    }
}

impl Config {
    /// The spool directory: `spool-dir`, else beside a SQLite store (`logs.db` →
    /// `logs.db.spool/`), else `spool/` in the user's data directory.
    pub fn spool_dir(&self) -> PathBuf {
        if let Some(d) = &self.spool_dir.0 {
            return d.clone();
        }
        match &self.db {
            Db::Store(StoreUrl::Sqlite(p)) => {
                let mut name = p.file_name().unwrap_or_default().to_os_string();
                name.push(".spool");
                p.with_file_name(name)
            }
            Db::Store(StoreUrl::Mssql(_)) | Db::None => dirs::data_dir()
                .map(|d| d.join("logrelay").join("spool"))
                .unwrap_or_else(|| PathBuf::from("logrelay.spool")),
        }
    }

    /// Every upstream relay: `forward-to` addresses, then `[[forward]]` tables.
    pub fn forwards(&self) -> Vec<ForwardOptions> {
        let mut all: Vec<ForwardOptions> = self
            .forward_to
            .iter()
            .map(|t| ForwardOptions::new(t))
            .collect();
        all.extend(self.forward.iter().cloned());
        // What a link does not set itself comes from the forward-* settings.
        let given = |p: &PathBuf| Some(p.clone()).filter(|p| !p.as_os_str().is_empty());
        for f in &mut all {
            f.tls_ca = f.tls_ca.take().or_else(|| given(&self.forward_tls_ca));
            f.tls_cert = f.tls_cert.take().or_else(|| given(&self.forward_tls_cert));
            f.tls_key = f.tls_key.take().or_else(|| given(&self.forward_tls_key));
            f.tls_server_name = f
                .tls_server_name
                .take()
                .or_else(|| Some(self.forward_tls_server_name.clone()).filter(|n| !n.is_empty()));
            f.token_file = f
                .token_file
                .take()
                .or_else(|| given(&self.forward_token_file));
        }
        all
    }
}

/// `db`: a store, or `none` for a relay that only forwards.
#[derive(Debug, Clone, PartialEq)]
pub enum Db {
    Store(StoreUrl),
    None,
}

impl FromStr for Db {
    type Err = String;
    fn from_str(s: &str) -> Result<Db, String> {
        match s.trim() {
            "none" => Ok(Db::None),
            url => StoreUrl::parse(url)
                .map(Db::Store)
                .map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Display for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Db::Store(url) => write!(f, "{url}"),
            Db::None => f.write_str("none (forward only)"),
        }
    }
}

fn forward_target(s: &str) -> Result<String, String> {
    super::forward::check_target(s).map(|()| s.trim().to_string())
}

impl Config {
    /// Checks the forwarding settings: valid targets, one spool each, and something to
    /// do with the rows.
    fn check_forwarding(&self) -> Result<(), String> {
        let all = self.forwards();
        let spool = self.spool_dir();
        let mut dirs = Vec::new();
        for f in &all {
            super::forward::check_target(&f.to)?;
            let dir = f.spool_dir(&spool);
            if dirs.contains(&dir) || dir == spool {
                return Err(format!(
                    "forward to {}: its spool {} is used twice (give each [[forward]] its own spool-dir)",
                    f.to,
                    dir.display()
                ));
            }
            dirs.push(dir);
        }
        let r = &self.retention;
        let retains = r.max_age.0.is_some()
            || r.max_size.0.is_some()
            || r.keep_free.0.is_some()
            || r.archive_dir.0.is_some();
        if self.db == Db::None && retains {
            return Err("retention needs a store (db is none)".into());
        }
        if let Db::Store(crate::store::StoreUrl::Mssql(_)) = &self.db
            && r.keep_free.0.is_some()
        {
            return Err(crate::store::mssql::retention::KEEP_FREE_REFUSED.into());
        }
        if self.db == Db::None && all.is_empty() {
            return Err(
                "db = none needs forward-to (or [[forward]]): the rows would go nowhere".into(),
            );
        }
        Ok(())
    }
}

fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("bad listen address '{s}' (expected IP:PORT, e.g. 0.0.0.0:5514 or [::]:5514)")
    })
}

fn listen_addrs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    let list: Vec<String> = serde::Deserialize::deserialize(d)?;
    let addrs = list
        .iter()
        .map(|a| listen_addr(a))
        .collect::<Result<_, _>>();
    addrs.map(Some).map_err(serde::de::Error::custom)
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is an IP:PORT")
}

/// The variable that sets a setting: `LOGRELAY_` and its name, upper case.
pub fn env_var(name: &str) -> String {
    format!("LOGRELAY_{}", name.replace('-', "_").to_ascii_uppercase())
}

/// Gives every setting among `cmd`'s arguments its `LOGRELAY_*` variable, so the names
/// follow one rule instead of being spelled out per setting.
pub fn with_env_vars(cmd: clap::Command) -> clap::Command {
    let keys = setting_keys();
    cmd.mut_args(|a| {
        if keys.iter().any(|k| k == a.get_id().as_str()) {
            let var = env_var(a.get_long().unwrap_or(a.get_id().as_str()));
            a.env(var)
        } else {
            a
        }
    })
}

/// Every setting's id (the field name), in declaration order.
pub fn setting_keys() -> Vec<String> {
    use clap::Args;
    Layer::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

impl Layer {
    pub fn load(path: &Path) -> Result<Layer, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }
}

impl Config {
    /// The defaults under `layer`; checks every value.
    pub fn resolve(layer: Layer) -> Result<Config, String> {
        let mut c = layer.or_defaults();
        if c.listen.is_empty() {
            return Err("listen needs at least one address".into());
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
        if c.idle_timeout.0 < Duration::from_secs(1) || c.stats_interval.0 < Duration::from_secs(1)
        {
            return Err("idle-timeout and stats-interval must be at least 1s".into());
        }
        // A read (64 KiB) and its parsed batch must fit, or nothing could be read.
        if c.memory_budget < Size::mib(1) || c.memory_budget.bytes() > u32::MAX as u64 {
            return Err(format!(
                "memory-budget {} out of range (1MiB to 4GiB)",
                c.memory_budget
            ));
        }
        if c.udp_recv_buffer.bytes() > i32::MAX as u64 {
            return Err(format!("udp-recv-buffer {} too large", c.udp_recv_buffer));
        }
        c.expand_paths()?;
        super::tls::check_settings(&c)?;
        c.check_forwarding()?;
        Ok(c)
    }

    /// `~` and `$VAR` in every file setting, as in `db` and the directories: a file or a
    /// variable gives paths the shell never saw.
    fn expand_paths(&mut self) -> Result<(), String> {
        fn expand(p: &mut PathBuf) -> Result<(), String> {
            if let Some(raw) = p.to_str().filter(|r| !r.is_empty()) {
                *p = crate::settings::expand_path(raw)?;
            }
            Ok(())
        }
        for p in [
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.tls_client_ca,
            &mut self.auth_tokens_file,
            &mut self.forward_tls_ca,
            &mut self.forward_tls_cert,
            &mut self.forward_tls_key,
            &mut self.forward_token_file,
        ] {
            expand(p)?;
        }
        for f in &mut self.forward {
            for p in [
                &mut f.spool_dir,
                &mut f.tls_ca,
                &mut f.tls_cert,
                &mut f.tls_key,
                &mut f.token_file,
            ]
            .into_iter()
            .flatten()
            {
                expand(p)?;
            }
        }
        Ok(())
    }

    /// Opens what the relay would open at start besides the store and the sockets: the
    /// TLS certificates and keys, the tokens, each upstream's TLS files and token. For
    /// check-config, so a missing or unreadable file is found before a restart.
    pub fn check_files(&self) -> Result<(), String> {
        super::auth::Auth::load(self)?;
        for f in self.forwards() {
            f.connector()?;
        }
        Ok(())
    }
}

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

impl FromStr for Zone {
    type Err = String;
    fn from_str(s: &str) -> Result<Zone, String> {
        Zone::parse(s)
    }
}

/// The relay's own log level (`tracing`'s, which has no serde support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub tracing::Level);

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<LogLevel, String> {
        s.trim().parse().map(LogLevel).map_err(|_| {
            format!("bad log level '{s}' (expected error, warn, info, debug or trace)")
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the metrics endpoint listens, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

impl FromStr for MetricsAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<MetricsAddr, String> {
        match s.trim() {
            "" | "off" => Ok(MetricsAddr(None)),
            a => a.parse().map(|a| MetricsAddr(Some(a))).map_err(|_| {
                format!("bad metrics address '{s}' (expected IP:PORT, e.g. 127.0.0.1:9514, or off)")
            }),
        }
    }
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

impl FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<StoreUrl, String> {
        StoreUrl::parse(s).map_err(|e| e.to_string())
    }
}

deserialize_from_str!(Zone, LogLevel, StoreUrl, SpoolDir, MetricsAddr, Db);

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
    fn old_key_names_still_read() {
        let file: Layer =
            toml::from_str("idle-timeout-secs = 30\nstats-interval = \"2min\"").unwrap();
        let c = Config::resolve(file).unwrap();
        assert_eq!(c.idle_timeout.0, Duration::from_secs(30));
        assert_eq!(c.stats_interval.0, Duration::from_secs(120));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = |toml_text: &str| match toml::from_str::<Layer>(toml_text) {
            Ok(l) => Config::resolve(l).unwrap_err(),
            Err(e) => e.to_string(),
        };
        assert!(err("listen = [\"localhost\"]").contains("IP:PORT"));
        assert!(err("zone = \"Mars/Base\"").contains("zone"));
        assert!(err("max-frame = 10").contains("max-frame"));
        assert!(err("idle-timeout = \"soon\"").contains("30d"));
        assert!(err("log = \"loud\"").contains("log level"));
        assert!(err("colour = 1").contains("unknown field"));
        assert!(err("memory-budget = \"64 parsecs\"").contains("size"));
        assert!(err("memory-budget = \"1KiB\"").contains("memory-budget"));
        let relp = "listen-relp = [\"127.0.0.1:2514\"]\nudp = false\nauth-required = true\n\
                    auth-tokens-file = \"/t\"";
        assert!(err(relp).contains("listen-relp"));
    }

    #[test]
    fn forward_to_and_forward_tables_add_up() {
        let file: Layer = toml::from_str(
            "db = \"none\"\nspool-dir = \"/sp\"\nforward-to = [\"central-1:5514\"]\n\
             [[forward]]\nto = \"central-2:5514\"\nspool-max-size = \"2GiB\"\n",
        )
        .unwrap();
        let c = Config::resolve(file).unwrap();
        assert_eq!(c.db, Db::None);
        let f = c.forwards();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].spool_dir(&c.spool_dir()),
            PathBuf::from("/sp/forward-central-1-5514")
        );
        assert_eq!(f[1].to, "central-2:5514");
        assert_eq!(f[1].spool_max_size, Some(Size::mib(2048)));
        let err = |toml_text: &str| match toml::from_str::<Layer>(toml_text) {
            Ok(l) => Config::resolve(l).unwrap_err(),
            Err(e) => e.to_string(),
        };
        // TLS and token settings: a table's own, else the forward-* ones.
        let file: Layer = toml::from_str(
            "db = \"none\"\nforward-to = [\"central-1:6514\"]\nforward-tls-ca = \"/ca.pem\"\n\
             forward-token-file = \"/tok\"\n\
             [[forward]]\nto = \"central-2:6514\"\ntls-ca = \"/other-ca.pem\"\n\
             tls-cert = \"/c.pem\"\ntls-key = \"/c.key\"\ntls-server-name = \"central\"\n",
        )
        .unwrap();
        let f = Config::resolve(file).unwrap().forwards();
        assert_eq!(f[0].tls_ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(f[0].token_file, Some(PathBuf::from("/tok")));
        assert_eq!(f[0].tls_cert, None);
        assert_eq!(f[1].tls_ca, Some(PathBuf::from("/other-ca.pem")));
        assert_eq!(f[1].tls_key, Some(PathBuf::from("/c.key")));
        assert_eq!(f[1].tls_server_name.as_deref(), Some("central"));
        assert_eq!(f[1].token_file, Some(PathBuf::from("/tok")));
        // The server name too; `~` and `$VAR` expanded in the file as on a command line.
        let file: Layer = toml::from_str(
            "db = \"none\"\nforward-to = [\"10.0.0.1:6514\"]\nforward-tls-ca = \"~/ca.pem\"\n\
             forward-tls-server-name = \"central\"\ntls-cert = \"$HOME/relay.pem\"\n\
             [[forward]]\nto = \"10.0.0.2:6514\"\ntls-ca = \"~/b.pem\"\n\
             tls-server-name = \"other\"\nspool-dir = \"~/sp\"\n",
        )
        .unwrap();
        let c = Config::resolve(file).unwrap();
        let home = |p: &str| crate::settings::expand_path(&format!("~/{p}")).unwrap();
        assert!(!home("ca.pem").starts_with("~"));
        assert_eq!(c.tls_cert, home("relay.pem"));
        let f = c.forwards();
        assert_eq!(f[0].tls_ca, Some(home("ca.pem")));
        assert_eq!(f[0].tls_server_name.as_deref(), Some("central"));
        assert_eq!(f[1].tls_ca, Some(home("b.pem")));
        assert_eq!(f[1].spool_dir, Some(home("sp")));
        assert_eq!(f[1].tls_server_name.as_deref(), Some("other"));
        assert!(err("db = \"none\"").contains("forward-to"));
        assert!(err("forward-to = [\"central\"]").contains("HOST:PORT"));
        assert!(err("forward-to = [\"a:1\", \"a:1\"]").contains("used twice"));
        assert!(err("[[forward]]\nto = \"a:1\"\ncolour = 1").contains("unknown field"));
        // A SQL Server's free disk space is not the relay's to see: refused, not ignored.
        let mssql = "db = \"mssql://sa@db:1433/LoggingDB\"\n[retention]\n";
        assert!(
            err(&format!("{mssql}keep-free = \"1GiB\"")).contains("no meaning for a SQL Server")
        );
        assert!(
            toml::from_str::<Layer>(&format!("{mssql}max-size = \"1GiB\""))
                .map(|l| Config::resolve(l).is_ok())
                .unwrap()
        );
    }

    #[test]
    fn spool_lives_beside_a_sqlite_store() {
        let c = Config {
            db: Db::Store(StoreUrl::Sqlite("/var/lib/logrelay/logs.db".into())),
            ..Config::default()
        };
        assert_eq!(
            c.spool_dir(),
            PathBuf::from("/var/lib/logrelay/logs.db.spool")
        );
        let file: Layer =
            toml::from_str("spool-dir = \"/tmp/sp\"\nspool-max-size = \"2GiB\"").unwrap();
        let c = Config::resolve(file).unwrap();
        assert_eq!(c.spool_dir(), PathBuf::from("/tmp/sp"));
        assert_eq!(c.spool_max_size, Size::mib(2048));
    }

    /// The tables of settings, for the names of their flags.
    const TABLES: &[&str] = &["retention"];

    #[test]
    fn retention_is_a_table_with_its_own_flags() {
        let file: Layer = toml::from_str(
            "batch-rows = 10\n[retention]\nmax-age = \"30d\"\nmax-size = \"20GiB\"\narchive-dir = \"/tmp/a\"",
        )
        .unwrap();
        let flags = Layer {
            retention: RetentionLayer {
                max_size: Some(OrOff(Some(Size::mib(64)))),
                keep_free: Some(OrOff(None)),
                ..RetentionLayer::default()
            },
            ..Layer::default()
        };
        let c = Config::resolve(flags.over(file)).unwrap();
        let r = &c.retention;
        assert_eq!(r.max_age.0, Some(Span(Duration::from_secs(30 * 86400))));
        assert_eq!(r.max_size.0, Some(Size::mib(64)));
        assert_eq!(r.keep_free.0, None);
        assert_eq!(r.archive_dir.0, Some(Dir("/tmp/a".into())));
        assert!(Config::default().retention.max_age.0.is_none());
        assert!(toml::from_str::<Layer>("[retention]\nmax-age = \"soon\"").is_err());
        assert!(toml::from_str::<Layer>("[retention]\nmax-sise = 1").is_err());
        let cmd = with_env_vars(<Layer as clap::Args>::augment_args(clap::Command::new("t")));
        let m = cmd
            .try_get_matches_from([
                "t",
                "--retention-max-age",
                "12h",
                "--retention-max-size",
                "off",
            ])
            .unwrap();
        let l = <Layer as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!(
            l.retention.max_age,
            Some(OrOff(Some(Span(Duration::from_secs(43200)))))
        );
        assert_eq!(l.retention.max_size, Some(OrOff(None)));
    }

    /// The example file and the README name every setting, and the file holds nothing
    /// the relay rejects, each value being the default.
    #[test]
    fn docs_name_every_setting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = std::fs::read_to_string(root.join("fixtures/logrelayd.toml")).unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let cmd = <Layer as clap::Args>::augment_args(clap::Command::new("t"));
        for a in cmd.get_arguments() {
            let flag = a.get_long().unwrap();
            // A table's setting is `KEY` under `[TABLE]` in the file, `--TABLE-KEY` as a flag.
            let key = TABLES
                .iter()
                .find_map(|t| flag.strip_prefix(t)?.strip_prefix('-'))
                .unwrap_or(flag);
            let in_example = example.lines().any(|l| {
                l.trim_start_matches(['#', ' '])
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            });
            assert!(in_example, "fixtures/logrelayd.toml lacks the key {key}");
            assert!(
                readme.contains(&format!("--{flag} ")) || readme.contains(&format!("--{flag}]")),
                "README's synopsis lacks --{flag}"
            );
        }
        let c =
            Config::resolve(Layer::load(&root.join("fixtures/logrelayd.toml")).unwrap()).unwrap();
        let d = Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(
            (c.max_frame, c.max_connections, c.batch_rows, c.udp),
            (d.max_frame, d.max_connections, d.batch_rows, d.udp)
        );
        assert_eq!(
            (c.idle_timeout, c.stats_interval, c.zone, c.log),
            (d.idle_timeout, d.stats_interval, d.zone, d.log)
        );
    }

    #[test]
    fn every_setting_has_its_variable() {
        let cmd = with_env_vars(<Layer as clap::Args>::augment_args(clap::Command::new("t")));
        for a in cmd.get_arguments() {
            let long = a.get_long().expect("every setting has a flag");
            assert_eq!(
                a.get_env().and_then(|v| v.to_str()),
                Some(env_var(long).as_str())
            );
        }
        assert_eq!(env_var("max-frame"), "LOGRELAY_MAX_FRAME");
    }
}
