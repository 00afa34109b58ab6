//! The daemon's own log (stderr, which journald takes under systemd), with a level that
//! SIGHUP can change.

use super::reload::Hook;
use std::sync::Arc;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{Registry, reload};

/// Changes the level of the running log.
#[derive(Clone)]
pub struct LevelHandle {
    handle: reload::Handle<LevelFilter, Registry>,
    current: Arc<std::sync::Mutex<tracing::Level>>,
}

/// Installs the log at `level`; returns the handle that changes it.
pub fn init(level: tracing::Level) -> LevelHandle {
    let (filter, handle) = reload::Layer::new(LevelFilter::from_level(level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    LevelHandle {
        handle,
        current: Arc::new(std::sync::Mutex::new(level)),
    }
}

impl LevelHandle {
    /// The reload hook: sets the configured level when it differs.
    pub fn reload_hook(&self) -> Hook {
        let this = self.clone();
        Box::new(move |config| {
            let mut current = this.current.lock().map_err(|e| e.to_string())?;
            if *current == config.log.0 {
                return Ok(None);
            }
            this.handle
                .reload(LevelFilter::from_level(config.log.0))
                .map_err(|e| e.to_string())?;
            let what = format!("{} -> {}", *current, config.log.0);
            *current = config.log.0;
            Ok(Some(what))
        })
    }
}
