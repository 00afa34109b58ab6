//! The man pages and shell completions, generated from the programs' clap definitions
//! plus the sections clap does not know (FILES, SIGNALS, EXIT STATUS, EXAMPLES, SEE
//! ALSO). They are checked in; `LOGRELAY_BLESS=1 cargo test --test service` rewrites them.

use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

/// One piece of a hand-written section.
pub enum Item {
    Para(&'static str),
    /// A term (in bold) and what it means.
    Term(&'static str, &'static str),
    /// Lines shown as they are (commands).
    Example(&'static str, &'static str),
}
use Item::*;

fn section(roff: &mut Roff, title: &str, items: &[Item]) {
    roff.control("SH", [title]);
    for item in items {
        match item {
            Para(text) => {
                roff.control("PP", []).text([roman(*text)]);
            }
            Term(term, text) => {
                roff.control("TP", [])
                    .text([bold(*term)])
                    .text([roman(*text)]);
            }
            Example(what, lines) => {
                roff.control("PP", []).text([roman(*what)]);
                roff.control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
                for line in lines.lines() {
                    roff.text([bold(line)]);
                }
                roff.control("fi", []).control("RE", []);
            }
        }
    }
}

/// A page: clap's sections for `cmd`, then `extra`.
fn page(cmd: clap::Command, section_no: &str, extra: &[(&str, &[Item])]) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section_no)
        .manual("logrelay manual")
        .source(format!("logrelay {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).expect("render");
    man.render_name_section(&mut out).expect("render");
    man.render_synopsis_section(&mut out).expect("render");
    man.render_description_section(&mut out).expect("render");
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).expect("render");
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).expect("render");
    }
    let mut roff = Roff::new();
    for (title, items) in extra {
        section(&mut roff, title, items);
    }
    out.extend_from_slice(roff.to_roff().as_bytes());
    out
}

const DAEMON_FILES: &[Item] = &[
    Term(
        "/etc/logrelay/logrelayd.toml",
        "The settings of the system service (see logrelayd.toml(5)); the unit passes it with --config.",
    ),
    Term(
        "/var/lib/logrelay/logs.db",
        "The store of the system service (with its -wal and -shm files), unless the settings name another.",
    ),
    Term(
        "~/.local/share/logrelay/logs.db",
        "The default store of a relay run by a user ($XDG_DATA_HOME/logrelay/logs.db).",
    ),
    Term(
        "/usr/lib/systemd/system/logrelayd.service, logrelayd.socket",
        "The systemd units: a hardened Type=notify service and optional socket activation.",
    ),
];

const DAEMON_SIGNALS: &[Item] = &[
    Term(
        "SIGTERM, SIGINT",
        "Stop accepting, read what every connection already sent, commit, exit 0.",
    ),
    Term(
        "SIGHUP",
        "Read the settings again (the --config file under the flags and variables) and apply what can change without a restart: the log level, and TLS certificates where TLS is configured. The log says what was reloaded; invalid settings are reported and the running ones kept. systemctl reload logrelayd sends it after check-config.",
    ),
];

const DAEMON_SERVICE: &[Item] = &[
    Para(
        "Under systemd (Type=notify) the relay sends READY=1 once it listens and its store is open, STATUS= with its counters every few seconds, RELOADING=1 around a reload and STOPPING=1 at shutdown. With WatchdogSec= set, the loop that stores rows sends WATCHDOG=1 as it turns, so a relay whose store call hangs is restarted; one that retries a failing store is not.",
    ),
    Para(
        "Socket activation: when the service manager passes sockets (LISTEN_FDS, as logrelayd.socket does), stream sockets are TCP listeners for every protocol and datagram sockets receive syslog; --listen is then not bound.",
    ),
    Para(
        "With --metrics ADDR, an HTTP endpoint answers /metrics (Prometheus text format: counters of received, stored, raw, truncated, refused (at a limit or by authentication) and dropped messages by reason, store errors, connections, memory-budget and spool use, and the commit latency histogram), /livez (200 while the process serves) and /readyz (503 with the reason while the store is failing, the memory budget is 90 % or more in use, or the spool is 90 % or more of spool-max-size or refused its last write; else 200).",
    ),
];

const DAEMON_EXIT: &[Item] = &[
    Term(
        "0",
        "Stopped by SIGTERM or SIGINT after draining; check-config found the settings valid.",
    ),
    Term(
        "1",
        "Could not start: a listen address, the metrics address or the store could not be opened.",
    ),
    Term(
        "2",
        "Bad settings or flags (with the reason on standard error).",
    ),
];

const DAEMON_EXAMPLES: &[Item] = &[
    Example(
        "Relay on all addresses, storing into a chosen file:",
        "logrelayd --listen 0.0.0.0:5514 --db sqlite:/srv/logs/logs.db",
    ),
    Example(
        "Edge relay that stores nothing and forwards to a central relay (through a spool, with acknowledgements):",
        "logrelayd --db none --forward-to central-1.example.net:5514",
    ),
    Example(
        "Check the settings before a restart or reload:",
        "logrelayd check-config /etc/logrelay/logrelayd.toml",
    ),
    Example(
        "Install and start as a service (Debian package):",
        "dpkg -i logrelay_*.deb\nsystemctl enable --now logrelayd\nlogq -f",
    ),
];

const DAEMON_SEE_ALSO: &[Item] = &[Para(
    "logq(1), logrelayd.toml(5), systemd.service(5), systemd.socket(5), sd_notify(3), logger(1), rsyslogd(8)",
)];

const LOGQ_FILES: &[Item] = &[
    Term(
        "~/.local/share/logrelay/logs.db",
        "The default store, the same as a relay run by the same user.",
    ),
    Term(
        "/etc/logrelay/logrelayd.toml, /var/lib/logrelay/logs.db",
        "When the user has no default store and none is named, logq reads the system service's: the db in /etc/logrelay/logrelayd.toml, else /var/lib/logrelay/logs.db. Reading it needs root or membership of the logrelay group with write access to the -shm file; sudo logq works.",
    ),
];

const LOGQ_ENV: &[Item] = &[
    Term("LOGRELAY_DB", "The store, when --db is not given."),
    Term(
        "LOGRELAY_CONFIG",
        "logrelayd's settings file, whose db names the store.",
    ),
    Term("NO_COLOR", "When set, --color auto prints no colour."),
    Term(
        "LOGRELAY_TOKEN",
        "send and simulate: the token for the relay's hello, when neither --token nor --token-file is given (unlike --token, ps does not show it).",
    ),
    Term(
        "LOGRELAY_DB_PASSWORD",
        "The SQL Server password, when the connection string names a user and no password (nor passwordFile).",
    ),
];

const LOGQ_EXIT: &[Item] = &[
    Term(
        "0",
        "Success, also when no row matched, and follow mode ended by Ctrl-C, SIGTERM or a closed pipe.",
    ),
    Term("1", "Nothing matched, with -g or --fail-if-empty."),
    Term(
        "2",
        "Usage error: bad flag, time, level or regular expression.",
    ),
    Term("3", "Store or runtime error."),
];

const LOGQ_EXAMPLES: &[Item] = &[
    Example(
        "Errors and worse of one source in the last hour:",
        "logq -p err --since '1 hour ago' -s billing",
    ),
    Example("Follow web hosts:", "logq -f -H 'web*'"),
    Example("Messages as JSON:", "logq -o json -n 100 | jq .message"),
    Example(
        "Send one message:",
        "logq send -p err -s billing 'payment failed'",
    ),
];

const LOGQ_SEE_ALSO: &[Item] = &[Para(
    "logrelayd(8), logrelayd.toml(5), logq-send(1), logq-simulate(1), logq-stats(1), journalctl(1)",
)];

const SUB_SEE_ALSO: &[Item] = &[Para("logq(1), logrelayd(8), logrelayd.toml(5)")];

/// `logrelayd.toml(5)`: one entry per setting, taken from the daemon's flags that have a
/// `LOGRELAY_*` variable (the settings), so it follows whatever settings exist.
fn toml_page(daemon: &clap::Command) -> Vec<u8> {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "logrelayd.toml",
            "5",
            "",
            &format!("logrelay {}", env!("CARGO_PKG_VERSION")),
            "logrelay manual",
        ],
    );
    roff.control("SH", ["NAME"])
        .text([roman("logrelayd.toml - settings of the logrelayd relay")]);
    roff.control("SH", ["SYNOPSIS"])
        .text([bold("/etc/logrelay/logrelayd.toml")]);
    section(
        &mut roff,
        "DESCRIPTION",
        &[
            Para(
                "A TOML file given to logrelayd(8) with --config (the system service reads /etc/logrelay/logrelayd.toml). Every key is optional. Each setting is one name used three ways: the key NAME here, the flag --NAME and the variable LOGRELAY_NAME (upper case, - as _). Flags beat variables, variables beat the file, the file beats the defaults.",
            ),
            Para(
                "Check a file with logrelayd check-config FILE. On SIGHUP the relay reads the file again and applies what can change without a restart (the log level, TLS certificates).",
            ),
        ],
    );
    roff.control("SH", ["SETTINGS"]);
    for arg in daemon.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        if long == "config" {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first().map(|s| s.to_string()))
            .unwrap_or_else(|| "VALUE".into());
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        // Each setting's TOML key is its flag's name; a table's settings (the flag
        // --retention-max-age) are the key max-age under [retention].
        let key = match long.strip_prefix("retention-") {
            Some(k) => format!("[retention] {k}"),
            None => long.to_string(),
        };
        roff.control("TP", [])
            .text([bold(key), roman(" = "), italic(value)])
            .text([roman(format!(
                "{help} (flag --{long}, variable {})",
                env.to_string_lossy()
            ))]);
    }
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/logrelayd.toml"
    ))
    .expect("fixtures/logrelayd.toml");
    roff.control("SH", ["EXAMPLE"]).text([roman(
        "Every key with its default (fixtures/logrelayd.toml):",
    )]);
    roff.control("PP", [])
        .control("RS", ["4"])
        .control("nf", []);
    for line in example.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []).control("RE", []);
    section(&mut roff, "SEE ALSO", &[Para("logrelayd(8), logq(1)")]);
    roff.to_roff().into_bytes()
}

/// Every generated file: its path under the repository and its content.
pub fn generated() -> Vec<(String, Vec<u8>)> {
    // `help` is a subcommand only on the command line; pages and completions skip it.
    let daemon = logrelay::daemon::command().disable_help_subcommand(true);
    let logq = logrelay::cli::command().disable_help_subcommand(true);
    let mut files = vec![
        (
            "man/logrelayd.8".to_string(),
            page(
                daemon.clone(),
                "8",
                &[
                    ("FILES", DAEMON_FILES),
                    ("SIGNALS", DAEMON_SIGNALS),
                    ("SERVICE, SOCKETS AND HEALTH", DAEMON_SERVICE),
                    ("EXIT STATUS", DAEMON_EXIT),
                    ("EXAMPLES", DAEMON_EXAMPLES),
                    ("SEE ALSO", DAEMON_SEE_ALSO),
                ],
            ),
        ),
        (
            "man/logq.1".to_string(),
            page(
                logq.clone(),
                "1",
                &[
                    ("FILES", LOGQ_FILES),
                    ("ENVIRONMENT", LOGQ_ENV),
                    ("EXIT STATUS", LOGQ_EXIT),
                    ("EXAMPLES", LOGQ_EXAMPLES),
                    ("SEE ALSO", LOGQ_SEE_ALSO),
                ],
            ),
        ),
        ("man/logrelayd.toml.5".to_string(), toml_page(&daemon)),
    ];
    let subcommands = daemon
        .get_subcommands()
        .map(|s| ("logrelayd", "8", s))
        .chain(logq.get_subcommands().map(|s| ("logq", "1", s)));
    for (parent, section_no, sub) in subcommands {
        let name = format!("{parent}-{}", sub.get_name());
        let cmd = sub.clone().name(name.clone()).bin_name(name.clone());
        files.push((
            format!("man/{name}.{section_no}"),
            page(cmd, section_no, &[("SEE ALSO", SUB_SEE_ALSO)]),
        ));
    }
    for (mut cmd, name) in [(daemon, "logrelayd"), (logq, "logq")] {
        for (shell, file) in [
            (Shell::Bash, format!("completions/{name}.bash")),
            (Shell::Zsh, format!("completions/_{name}")),
            (Shell::Fish, format!("completions/{name}.fish")),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut out);
            files.push((file, out));
        }
    }
    files
}
