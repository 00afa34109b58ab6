//! The global Logger as the `log` crate's backend (its own test binary: one global).

mod common;

use common::Daemon;

#[test]
fn log_macros_arrive_with_level_and_source() {
    let d = Daemon::start(&[]);
    let guard = logrelay::client::init(
        logrelay::client::Config::new("MacroApp").server(d.addr.to_string()),
    )
    .unwrap();
    log::error!("macro error {}", 1);
    log::warn!("macro warn");
    log::info!("macro info");
    log::debug!("macro debug");
    log::trace!("macro trace");
    logrelay::client::global()
        .unwrap()
        .log("INFO", "This is a test log", "MyService");
    drop(guard); // flushes
    let rows = d.wait_rows(6);
    let got: Vec<(i64, Option<&str>, &str)> = rows
        .iter()
        .map(|r| (r.severity, r.source.as_deref(), r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, Some("MacroApp"), "macro error 1"),
            (4, Some("MacroApp"), "macro warn"),
            (6, Some("MacroApp"), "macro info"),
            (7, Some("MacroApp"), "macro debug"),
            (7, Some("MacroApp"), "macro trace"),
            (6, Some("MyService"), "This is a test log"),
        ]
    );
    let sd: serde_json::Value =
        serde_json::from_str(rows[0].structured_data.as_deref().unwrap()).unwrap();
    assert_eq!(sd["rust"]["target"], "client_log_macros");
    assert!(logrelay::client::init(logrelay::client::Config::new("again")).is_err());
}
