//! SIGHUP: what can change without a restart. Each part that can reload registers a
//! hook (the daemon's log level; TLS certificates can add theirs); on SIGHUP the daemon
//! re-reads the configuration and runs every hook with it, and logs what each reloaded.

use super::Config;
use std::sync::Mutex;

/// Applies the new settings; says what changed (`None`: nothing to do) or why not.
pub type Hook = Box<dyn Fn(&Config) -> Result<Option<String>, String> + Send + Sync>;

#[derive(Default)]
pub struct Reloader {
    hooks: Mutex<Vec<(&'static str, Hook)>>,
}

/// What one reload did, per part.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reloaded: Vec<String>,
    pub unchanged: Vec<&'static str>,
    pub failed: Vec<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.reloaded.is_empty() {
            parts.push(format!("reloaded {}", self.reloaded.join(", ")));
        }
        if !self.unchanged.is_empty() {
            parts.push(format!("unchanged {}", self.unchanged.join(", ")));
        }
        if !self.failed.is_empty() {
            parts.push(format!("FAILED {}", self.failed.join(", ")));
        }
        if parts.is_empty() {
            parts.push("nothing to reload".into());
        }
        f.write_str(&parts.join("; "))
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .hooks
            .lock()
            .map(|h| h.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        f.debug_struct("Reloader").field("hooks", &names).finish()
    }
}

impl Reloader {
    /// Registers the part `name` (e.g. "log level", "tls certificates").
    pub fn register(&self, name: &'static str, hook: Hook) {
        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.push((name, hook));
        }
    }

    /// Runs every hook with `config`; a failing part does not stop the others.
    pub fn reload(&self, config: &Config) -> Outcome {
        let mut out = Outcome::default();
        let Ok(hooks) = self.hooks.lock() else {
            return out;
        };
        for (name, hook) in hooks.iter() {
            match hook(config) {
                Ok(Some(what)) => out.reloaded.push(format!("{name} ({what})")),
                Ok(None) => out.unchanged.push(name),
                Err(e) => out.failed.push(format!("{name}: {e}")),
            }
        }
        out
    }
}
