//! Where a packaged, system-wide relay keeps things (see `systemd/logrelayd.service`),
//! and how `logq` finds that store without flags: an admin on a server running the
//! service has no store of their own, so when the user's default store does not exist
//! `logq` reads the service's instead.

use crate::store::StoreUrl;
use std::path::{Path, PathBuf};

/// The service's settings file.
pub const SYSTEM_CONFIG: &str = "/etc/logrelay/logrelayd.toml";
/// The service's store when its settings name none (`XDG_DATA_HOME=/var/lib` in the unit).
pub const SYSTEM_STORE: &str = "/var/lib/logrelay/logs.db";

/// The store `logq` reads when nothing names one: the user's default store if it exists;
/// else the `db` of the system config (when it exists and names one); else the system
/// store if it exists; else the user's default (which `logq` then reports as missing).
pub fn default_store() -> StoreUrl {
    let user = StoreUrl::default_sqlite();
    fallback(&user, Path::new(SYSTEM_CONFIG), Path::new(SYSTEM_STORE)).unwrap_or(user)
}

fn fallback(user: &StoreUrl, config: &Path, store: &Path) -> Option<StoreUrl> {
    if let StoreUrl::Sqlite(p) = user
        && p.exists()
    {
        return None;
    }
    let configured = crate::cli::config_db(config)
        .ok()
        .flatten()
        .and_then(|db| StoreUrl::parse(&db).ok());
    configured.or_else(|| {
        store
            .exists()
            .then(|| StoreUrl::Sqlite(PathBuf::from(store)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_store_wins_then_the_system_config_then_the_system_store() {
        let dir = tempfile::tempdir().unwrap();
        let user_path = dir.path().join("user.db");
        let user = StoreUrl::Sqlite(user_path.clone());
        let config = dir.path().join("logrelayd.toml");
        let store = dir.path().join("system.db");
        assert_eq!(fallback(&user, &config, &store), None);
        std::fs::write(&store, b"").unwrap();
        assert_eq!(
            fallback(&user, &config, &store),
            Some(StoreUrl::Sqlite(store.clone()))
        );
        std::fs::write(&config, "db = \"sqlite:/srv/logs.db\"\n").unwrap();
        assert_eq!(
            fallback(&user, &config, &store),
            Some(StoreUrl::Sqlite("/srv/logs.db".into()))
        );
        std::fs::write(&user_path, b"").unwrap();
        assert_eq!(fallback(&user, &config, &store), None);
    }
}
