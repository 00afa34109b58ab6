//! SQL Server connection strings: `mssql://user:pass@host[:port]/Database?encrypt=…` and
//! ADO.NET (`server=tcp:host,1433;database=LoggingDB;user id=…;password=…;…`).
//!
//! `Encrypt` = `strict` | `true`/`mandatory`/`yes` (required) | `false`/`optional`/`no`
//! (login only) | `off` (never; needs the server to allow it). Default: required.
//! `TrustServerCertificate=true` accepts any server certificate (a test server's
//! self-signed one). `Connect Timeout` / `connectTimeout` in seconds, default 15.
//! `Max Pool Size` / `maxPoolSize`: connections one process keeps at most, default 4.
//! `Command Timeout` / `commandTimeout` in seconds, default 60: how long an insert or the
//! cursor may take, and how long a query may wait for each part of its result.
//!
//! The password need not be in the string, where `ps` and shell histories show it:
//! `passwordFile=/path` (URL) / `Password File=/path` (ADO) reads it from a file (its
//! first line), and without either a password, `LOGRELAY_DB_PASSWORD` gives it.

use std::time::Duration;
use tiberius::{AuthMethod, Config, EncryptionLevel};

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_POOL_SIZE: usize = 4;
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Connections a process keeps to this server at most.
    pub pool_size: usize,
    /// host:port/database, for messages (never the password).
    pub display: String,
    /// The password is written in the string itself (not a file or the environment).
    pub password_inline: bool,
    /// The SQL Server login given to `config`, which has no getter for it (its Debug
    /// hides the password): what the tests check.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) login: Option<AuthMethod>,
}

/// The variable that gives the password when the string names a user but no password.
pub const PASSWORD_ENV: &str = "LOGRELAY_DB_PASSWORD";

/// Where the password comes from, besides the string itself.
#[derive(Debug, Clone, Copy)]
struct PasswordSources<'a> {
    /// `LOGRELAY_DB_PASSWORD`, if set.
    env: Option<&'a str>,
}

impl PasswordSources<'_> {
    /// The password for a string that gives `inline` (or not) and `file` (or not).
    fn resolve(&self, inline: Option<String>, file: Option<&str>) -> Result<Option<String>, Error> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(Error(
                "both a password and a password file: give one".into(),
            )),
            (Some(p), None) => Ok(Some(p)),
            (None, Some(path)) => read_password_file(path).map(Some),
            (None, None) => Ok(self.env.map(str::to_string)),
        }
    }
}

/// The first line of the file, without its line end.
fn read_password_file(path: &str) -> Result<String, Error> {
    let path = crate::settings::expand_path(path.trim()).map_err(Error)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error(format!(
            "the password file {} is empty",
            path.display()
        )));
    }
    Ok(line.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad SQL Server connection string: {0} (expected mssql://user:pass@host:1433/LoggingDB?encrypt=true or server=tcp:host,1433;database=LoggingDB;user id=…;password=…)"
)]
pub struct Error(pub String);

fn bool_value(key: &str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(Error(format!("{key}={v} is not true or false"))),
    }
}

fn encryption(v: &str) -> Result<EncryptionLevel, Error> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "strict" => EncryptionLevel::Strict,
        "true" | "yes" | "mandatory" | "required" => EncryptionLevel::Required,
        "false" | "no" | "optional" => EncryptionLevel::Off,
        "off" | "none" => EncryptionLevel::NotSupported,
        _ => {
            return Err(Error(format!(
                "encrypt={v} (expected strict, true, false or off)"
            )));
        }
    })
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| Error(format!("bad escape in '{s}'")))?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| Error(format!("bad escape in '{s}'")))?,
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error("escapes are not UTF-8".into()))
}

pub fn parse(s: &str) -> Result<Settings, Error> {
    let env = std::env::var(PASSWORD_ENV).ok();
    parse_with(
        s,
        PasswordSources {
            env: env.as_deref().filter(|p| !p.is_empty()),
        },
    )
}

fn parse_with(s: &str, passwords: PasswordSources<'_>) -> Result<Settings, Error> {
    let lower = s.trim().to_ascii_lowercase();
    if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
        parse_url(s.trim(), passwords)
    } else {
        parse_ado(s.trim(), passwords)
    }
}

/// Whether the string itself carries a password (`user:pass@` or `Password=`), without
/// parsing the rest: for the warning that `ps` shows it.
pub fn has_inline_password(s: &str) -> bool {
    let lower = s.trim().to_ascii_lowercase();
    if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
        let rest = s.split_once("://").map_or(s, |(_, r)| r);
        let main = rest.split_once('?').map_or(rest, |(m, _)| m);
        let authority = main.split_once('/').map_or(main, |(a, _)| a);
        authority
            .rsplit_once('@')
            .and_then(|(u, _)| u.split_once(':'))
            .is_some_and(|(_, p)| !p.is_empty())
    } else {
        ado_parts(s).iter().any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                matches!(
                    k.trim().to_ascii_lowercase().replace(' ', "").as_str(),
                    "password" | "pwd"
                ) && !v.trim().is_empty()
            })
        })
    }
}

/// The password file a connection string names (`passwordFile=` / `Password File=`), as
/// written.
pub fn password_file(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
        let query = s.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            matches!(
                k.to_ascii_lowercase().as_str(),
                "passwordfile" | "password_file"
            )
            .then(|| percent_decode(v).ok())
            .flatten()
        })
    } else {
        ado_parts(s).iter().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().to_ascii_lowercase().replace(' ', "") == "passwordfile")
                .then(|| v.trim().trim_matches(['\'', '"']).to_string())
        })
    }
}

/// A warning when the password file can be read by others than its owner (group or
/// world bits set), as ssh and libpq warn about keys and `.pgpass`.
pub fn password_file_warning(s: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::settings::expand_path(password_file(s)?.trim()).ok()?;
    let mode = std::fs::metadata(&path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "the password file {} can be read by others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

fn parse_url(s: &str, passwords: PasswordSources<'_>) -> Result<Settings, Error> {
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| Error("unclosed [ in host".into()))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(Error("no host".into()));
    }
    let port: u16 = match port {
        Some(p) => p.parse().map_err(|_| Error(format!("bad port '{p}'")))?,
        None => 1433,
    };
    let mut config = Config::new();
    // Our name unless the string gives one (`applicationName`).
    config.application_name("logrelay");
    config.host(&host);
    config.port(port);
    config.encryption(EncryptionLevel::Required);
    let database = percent_decode(database)?;
    if !database.is_empty() {
        config.database(&database);
    }
    let mut timeout = DEFAULT_CONNECT_TIMEOUT;
    let mut command_timeout = DEFAULT_COMMAND_TIMEOUT;
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut password_file = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        let v = percent_decode(v)?;
        match k.to_ascii_lowercase().as_str() {
            "passwordfile" | "password_file" => password_file = Some(v),
            "encrypt" => config.encryption(encryption(&v)?),
            "trustservercertificate" => {
                if bool_value(k, &v)? {
                    config.trust_cert();
                }
            }
            "connecttimeout" | "connect_timeout" => timeout = seconds(&v)?,
            "commandtimeout" | "command_timeout" => command_timeout = seconds(&v)?,
            "maxpoolsize" | "max_pool_size" => pool_size = count(&v)?,
            "applicationname" | "application_name" => config.application_name(&v),
            _ => return Err(Error(format!("unknown option '{k}'"))),
        }
    }
    let mut password_inline = false;
    let mut login = None;
    if let Some(u) = userinfo {
        let (user, pass) = match u.split_once(':') {
            Some((user, pass)) => (user, Some(percent_decode(pass)?).filter(|p| !p.is_empty())),
            None => (u, None),
        };
        password_inline = pass.is_some();
        let pass = passwords.resolve(pass, password_file.as_deref())?;
        let auth = AuthMethod::sql_server(percent_decode(user)?, pass.unwrap_or_default());
        config.authentication(auth.clone());
        login = Some(auth);
    } else if password_file.is_some() {
        return Err(Error(
            "passwordFile without a user (mssql://USER@host/…)".into(),
        ));
    }
    Ok(Settings {
        config,
        connect_timeout: timeout,
        command_timeout,
        pool_size,
        display: format!("{host}:{port}/{database}"),
        password_inline,
        login,
    })
}

fn seconds(v: &str) -> Result<Duration, Error> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| Error(format!("timeout '{v}' is not a number of seconds")))
}

fn count(v: &str) -> Result<usize, Error> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            Error(format!(
                "max pool size '{v}' is not a number from 1 to 1000"
            ))
        })
}

/// The `key=value` parts of an ADO.NET string, split at `;` outside quotes (`'…'`,
/// `"…"`, `{…}`), so a quoted password may hold `;`.
fn ado_parts(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (None, '{') => quote = Some('}'),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.retain(|p| !p.trim().is_empty());
    parts
}

fn parse_ado(s: &str, passwords: PasswordSources<'_>) -> Result<Settings, Error> {
    let mut timeout = DEFAULT_CONNECT_TIMEOUT;
    let mut command_timeout = DEFAULT_COMMAND_TIMEOUT;
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut database = String::new();
    let mut encrypt = None;
    let mut user = None;
    let mut password = None;
    let mut password_file = None;
    let mut password_parts = Vec::new();
    let mut integrated = false;
    // The keys we read are taken out before tiberius parses the rest: its parser
    // rejects `Encrypt=Mandatory|Optional|Strict|off`, which ADO.NET accepts.
    let mut rest = Vec::new();
    for part in ado_parts(s) {
        let Some((k, v)) = part.split_once('=') else {
            rest.push(part);
            continue;
        };
        let v = v.trim().trim_matches(['\'', '"']);
        match k.trim().to_ascii_lowercase().replace(' ', "").as_str() {
            "connecttimeout" | "connectiontimeout" | "timeout" => timeout = seconds(v)?,
            "commandtimeout" => command_timeout = seconds(v)?,
            "maxpoolsize" => pool_size = count(v)?,
            "encrypt" => encrypt = Some(encryption(v)?),
            "passwordfile" => password_file = Some(v.to_string()),
            // Given to tiberius below, with the user, whatever its source.
            "password" | "pwd" => {
                let v = v
                    .strip_prefix('{')
                    .and_then(|v| v.strip_suffix('}'))
                    .unwrap_or(v);
                password = Some(v.to_string()).filter(|p| !p.is_empty());
                password_parts.push(part);
            }
            key => {
                if matches!(key, "userid" | "uid" | "user" | "username") {
                    user = Some(v.to_string());
                }
                integrated |= key == "integratedsecurity";
                if matches!(key, "database" | "initialcatalog") {
                    database = v.to_string();
                }
                rest.push(part);
            }
        }
    }
    let password_inline = password.is_some();
    if integrated {
        // Windows authentication: tiberius reads user and password itself.
        rest.extend(password_parts);
    }
    let mut config = Config::from_ado_string(&rest.join(";")).map_err(|e| Error(e.to_string()))?;
    config.encryption(encrypt.unwrap_or(EncryptionLevel::Required));
    let mut login = None;
    match user {
        _ if integrated => {}
        Some(user) => {
            let pass = passwords.resolve(password, password_file.as_deref())?;
            let auth = AuthMethod::sql_server(user, pass.unwrap_or_default());
            config.authentication(auth.clone());
            login = Some(auth);
        }
        None if password.is_some() || password_file.is_some() => {
            return Err(Error("a password without User Id".into()));
        }
        None => {}
    }
    let display = format!("{}/{database}", config.get_addr());
    Ok(Settings {
        config,
        connect_timeout: timeout,
        command_timeout,
        pool_size,
        display,
        password_inline,
        login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form() {
        let s = parse("mssql://sa:p%40ss%3Bword@db.example:14330/LoggingDB?encrypt=true&trustServerCertificate=true&connectTimeout=3").unwrap();
        assert_eq!(s.config.get_addr(), "db.example:14330");
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.display, "db.example:14330/LoggingDB");
        assert_eq!(s.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(s.command_timeout, DEFAULT_COMMAND_TIMEOUT);
        let s = parse("mssql://h/d?commandTimeout=5").unwrap();
        assert_eq!(s.command_timeout, Duration::from_secs(5));
        assert_eq!(parse("mssql://h/d?maxPoolSize=2").unwrap().pool_size, 2);
        let s = parse("mssql://[::1]/X").unwrap();
        assert_eq!(s.config.get_addr(), "::1:1433");
    }

    #[test]
    fn ado_form() {
        let s = parse("server=tcp:10.1.2.3,1444;database=LoggingDB;user id=sa;password='a;b';Encrypt=true;TrustServerCertificate=true;Connect Timeout=7").unwrap();
        assert_eq!(s.config.get_addr(), "10.1.2.3:1444");
        assert_eq!(s.connect_timeout, Duration::from_secs(7));
        assert!(s.display.ends_with("/LoggingDB"), "{}", s.display);
        assert_eq!(
            parse("server=tcp:h,1433;Max Pool Size=9")
                .unwrap()
                .pool_size,
            9
        );
    }

    /// ADO.NET's Encrypt values, which tiberius's own parser rejects, and a quoted `;`.
    #[test]
    fn ado_encrypt_values_and_quoted_separators() {
        for (v, want) in [
            ("Mandatory", EncryptionLevel::Required),
            ("Optional", EncryptionLevel::Off),
            ("Strict", EncryptionLevel::Strict),
            ("off", EncryptionLevel::NotSupported),
            ("True", EncryptionLevel::Required),
            ("no", EncryptionLevel::Off),
        ] {
            let s = parse(&format!(
                "Server=tcp:h,1433;Database=D;User Id=u;Encrypt={v};Password='x;Encrypt=off'"
            ))
            .unwrap_or_else(|e| panic!("{v}: {e}"));
            let debug = format!("{:?}", s.config);
            // A split inside the quoted password would have made the last Encrypt `off`.
            assert!(
                debug.contains(&format!("encryption: {want:?}")),
                "{v}: {debug}"
            );
        }
        let s = parse("Server=tcp:h,1433;Database=D").unwrap();
        assert!(format!("{:?}", s.config).contains("encryption: Required"));
    }

    #[test]
    fn an_application_name_given_is_kept() {
        let s = parse("mssql://h/d?applicationName=billing").unwrap();
        assert!(format!("{:?}", s.config).contains("\"billing\""));
        let s = parse("mssql://h/d").unwrap();
        assert!(format!("{:?}", s.config).contains("\"logrelay\""));
    }

    const NO_ENV: PasswordSources<'static> = PasswordSources { env: None };

    /// Whether tiberius will log in as `user` with `password`.
    fn logs_in(s: &Settings, user: &str, password: &str) -> bool {
        s.login == Some(AuthMethod::sql_server(user, password))
    }

    #[test]
    fn password_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.pass");
        std::fs::write(&file, "s3cret;x\n").unwrap();
        let url = format!("mssql://sa@h/D?passwordFile={}", file.display());
        let s = parse_with(&url, NO_ENV).unwrap();
        assert!(logs_in(&s, "sa", "s3cret;x"));
        assert!(!s.password_inline);
        let ado = format!(
            "Server=tcp:h,1433;User Id=sa;Password File={}",
            file.display()
        );
        let s = parse_with(&ado, NO_ENV).unwrap();
        assert!(logs_in(&s, "sa", "s3cret;x"));
        assert!(!s.password_inline);
        // A file that is not there, or empty, is a clear error.
        let e = parse_with("mssql://sa@h/D?passwordFile=/nonexistent/pw", NO_ENV).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read the password file /nonexistent/pw"),
            "{e}"
        );
        std::fs::write(&file, "").unwrap();
        let e = parse_with(&url, NO_ENV).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        // Both a password and a file: which one was meant is unclear.
        let both = format!("mssql://sa:x@h/D?passwordFile={}", file.display());
        assert!(parse_with(&both, NO_ENV).is_err());
    }

    #[test]
    fn a_password_file_others_can_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db pass");
        std::fs::write(&file, "s3cret\n").unwrap();
        let url = format!("mssql://sa@h/D?passwordFile={}", file.display()).replace(' ', "%20");
        let ado = format!("Server=tcp:h;User Id=sa;Password File='{}'", file.display());
        for conn in [&url, &ado] {
            assert_eq!(password_file(conn).as_deref(), file.to_str(), "{conn}");
            for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
                let w = password_file_warning(conn);
                assert_eq!(w.is_some(), warned, "{mode:o} {w:?}");
                assert!(w.is_none_or(|w| w.contains(&format!("mode {mode:o}"))));
            }
        }
        assert_eq!(password_file("mssql://sa:x@h/D"), None);
        assert_eq!(
            password_file_warning("mssql://sa@h/D?passwordFile=/nonexistent"),
            None
        );
    }

    #[test]
    fn password_from_the_environment() {
        let env = PasswordSources {
            env: Some("from-env"),
        };
        let s = parse_with("mssql://sa@h/D", env).unwrap();
        assert!(logs_in(&s, "sa", "from-env"));
        let s = parse_with("Server=tcp:h,1433;User Id=sa", env).unwrap();
        assert!(logs_in(&s, "sa", "from-env"));
        // The string's own password wins, and is reported as on the command line.
        let s = parse_with("mssql://sa:inline@h/D", env).unwrap();
        assert!(logs_in(&s, "sa", "inline"));
        assert!(s.password_inline);
        let s = parse_with("Server=tcp:h,1433;User Id=sa;Password=inline", env).unwrap();
        assert!(logs_in(&s, "sa", "inline"));
        assert!(s.password_inline);
    }

    #[test]
    fn inline_passwords_are_recognised() {
        assert!(has_inline_password("mssql://sa:x@h/D"));
        assert!(has_inline_password(
            "Server=tcp:h;User Id=sa;Password='a;b'"
        ));
        assert!(has_inline_password("server=h;uid=sa;pwd=x"));
        assert!(!has_inline_password("mssql://sa@h/D?passwordFile=/p"));
        assert!(!has_inline_password("mssql://h/D"));
        assert!(!has_inline_password(
            "Server=tcp:h;User Id=sa;Password File=/p"
        ));
    }

    #[test]
    fn bad_strings_are_clear_errors() {
        for bad in [
            "mssql://",
            "mssql://host:notaport/db",
            "mssql://host/db?encrypt=maybe",
            "mssql://host/db?colour=blue",
            "mssql://host/db?connectTimeout=soon",
            "mssql://u:%zz@host/db",
            "server=tcp:host,1433;Connect Timeout=x",
            "mssql://host/db?maxPoolSize=0",
            "mssql://host/db?commandTimeout=0",
            "server=tcp:host,1433;Max Pool Size=lots",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("bad SQL Server connection string"),
                "{bad}: {e}"
            );
        }
    }
}
