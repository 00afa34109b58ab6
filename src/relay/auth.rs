//! Who may send: the reasons a connection is refused, the TLS allow-list (certificate
//! name globs and `sha256:` fingerprints, RFC 5425 §5.2), the native protocol's tokens,
//! and the state that SIGHUP or a changed file reloads (certificates and tokens).

use super::Config;
use super::tls;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Why a connection was refused; each has its counter in [`super::stats::Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoCertificate,
    UnknownCa,
    Expired,
    NotYetValid,
    NotAllowed,
    MissingToken,
    BadToken,
    /// Any other TLS failure (not TLS at all, no shared version or suite, …).
    Handshake,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::NoCertificate,
        Refusal::UnknownCa,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::NotAllowed,
        Refusal::MissingToken,
        Refusal::BadToken,
        Refusal::Handshake,
    ];

    /// The name in counters (`refused_NAME=`) and in the hello's `reason`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::NotAllowed => "not_allowed",
            Refusal::MissingToken => "missing_token",
            Refusal::BadToken => "bad_token",
            Refusal::Handshake => "tls_handshake",
        }
    }
}

/// `tls-allow`: certificate name globs (`*`, `?`; matched against DNS SANs and CNs,
/// case-insensitively) and SHA-256 fingerprints of the whole certificate.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    names: Vec<String>,
    fingerprints: Vec<[u8; 32]>,
}

impl AllowList {
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            match e.strip_prefix("sha256:").or_else(|| e.strip_prefix("SHA256:")) {
                Some(hex) => list.fingerprints.push(parse_fingerprint(hex).ok_or_else(|| {
                    format!("bad tls-allow fingerprint '{e}' (expected sha256: and 64 hex digits, ':' allowed)")
                })?),
                None => list.names.push(e.to_ascii_lowercase()),
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.fingerprints.is_empty()
    }

    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether the certificate (DER) is allowed: an empty list allows every certificate
    /// that passed verification.
    pub fn permits(&self, cert: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let digest: [u8; 32] = Sha256::digest(cert).into();
        if self.fingerprints.contains(&digest) {
            return true;
        }
        !self.names.is_empty() && cert_names(cert).iter().any(|n| self.name_matches(n))
    }

    fn name_matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names
            .iter()
            .any(|g| glob_match(g.as_bytes(), name.as_bytes()))
    }
}

fn parse_fingerprint(hex: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// The DNS subject alternative names and common names of a certificate.
fn cert_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    names
}

/// `*` any run of bytes, `?` one byte.
fn glob_match(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && (glob[g] == b'?' || glob[g] == text[t]) {
            g += 1;
            t += 1;
        } else if g < glob.len() && glob[g] == b'*' {
            star = Some((g, t));
            g += 1;
        } else if let Some((sg, st)) = star {
            g = sg + 1;
            t = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// `auth-tokens-file`: one token per line (blank lines and `#` comments skipped), all
/// valid at once so they can be rotated. Only SHA-256 digests are kept, compared in
/// constant time.
#[derive(Debug, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read auth-tokens-file {}: {e}", path.display()))?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| Sha256::digest(l.as_bytes()).into())
            .collect();
        if digests.is_empty() {
            return Err(format!(
                "auth-tokens-file {} holds no token",
                path.display()
            ));
        }
        Ok(Tokens { digests })
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn check(&self, token: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = false;
        for t in &self.digests {
            let diff = t
                .iter()
                .zip(d.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= diff == 0;
        }
        found
    }
}

/// The authentication state every connection reads and the reloader replaces.
pub struct Auth {
    pub required: bool,
    pub allow: AllowList,
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    tokens: RwLock<Arc<Tokens>>,
    config: Config,
    /// The watched files and the modification times last loaded.
    watched: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Auth {
    /// Loads certificates and tokens; an error here stops the relay from starting.
    pub fn load(config: &Config) -> Result<Auth, String> {
        let allow = AllowList::parse(&config.tls_allow)?;
        let tls = if config.listen_tls.is_empty() {
            None
        } else {
            Some(Arc::new(tls::server_config(config, &allow)?))
        };
        let tokens = if config.auth_tokens_file.as_os_str().is_empty() {
            Tokens::default()
        } else {
            Tokens::load(&config.auth_tokens_file)?
        };
        let watched = [
            &config.tls_cert,
            &config.tls_key,
            &config.tls_client_ca,
            &config.auth_tokens_file,
        ]
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| (p.clone(), mtime(p)))
        .collect();
        Ok(Auth {
            required: config.auth_required,
            allow,
            tls: RwLock::new(tls),
            tokens: RwLock::new(Arc::new(tokens)),
            config: config.clone(),
            watched: Mutex::new(watched),
        })
    }

    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads certificates and tokens again; a bad new set keeps the old one and says why.
    pub fn reload(&self, why: &str) {
        let fresh = match Auth::load(&self.config) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(
                    "{why}: reload failed, keeping the previous certificates and tokens: {e}"
                );
                // Do not retry the same broken files every poll: wait for the next change.
                self.remember_mtimes();
                return;
            }
        };
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = fresh.tls();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = fresh.tokens();
        self.remember_mtimes();
        tracing::info!("{why}: certificates and tokens reloaded");
    }

    fn remember_mtimes(&self) {
        let mut w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        for (p, t) in w.iter_mut() {
            *t = mtime(p);
        }
    }

    fn changed(&self) -> bool {
        let w = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        w.iter().any(|(p, t)| mtime(p) != *t)
    }

    pub fn watches_files(&self) -> bool {
        !self
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// How often the certificate and token files are checked for changes.
const POLL: Duration = Duration::from_secs(2);

/// Reloads on SIGHUP and when a watched file changes, until shutdown.
pub async fn watch(auth: Arc<Auth>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "cannot handle SIGHUP ({e}); certificates reload when their files change"
            );
            None
        }
    };
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                auth.reload("SIGHUP");
            }
            _ = tick.tick() => {
                if auth.changed() {
                    auth.reload("certificate or token file changed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.example.net", b"web1.example.net"));
        assert!(!glob_match(b"*.example.net", b"example.org"));
        assert!(glob_match(b"web?", b"web1"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*b", b"acbd"));
        assert!(glob_match(b"a*b*", b"acbd"));
    }

    #[test]
    fn fingerprints_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex), Some([0xab; 32]));
        assert_eq!(parse_fingerprint(&colons), Some([0xab; 32]));
        assert!(parse_fingerprint("abc").is_none());
        assert!(AllowList::parse(&["sha256:zz".into()]).is_err());
    }

    #[test]
    fn tokens_several_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        std::fs::write(&p, "# rotated monthly\nold-secret\n\n  new-secret  \n").unwrap();
        let t = Tokens::load(&p).unwrap();
        assert!(t.check("old-secret") && t.check("new-secret"));
        assert!(!t.check("new-secre") && !t.check("") && !t.check("# rotated monthly"));
        std::fs::write(&p, "\n# none\n").unwrap();
        assert!(Tokens::load(&p).is_err());
    }
}
