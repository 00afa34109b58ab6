//! Real syslog clients no one here wrote: util-linux `logger`, rsyslog forwarding with
//! omfwd, and Python's `logging.handlers.SysLogHandler`. Each test says SKIPPED when its
//! client is missing; CI installs them and sets LOGRELAY_REQUIRE_CLIENTS=1.

mod common;

use common::rsyslog::Rsyslog;
use common::{Daemon, Row, have};
use std::process::Command;

fn logger(d: &Daemon, args: &[&str], msg: &str) {
    let status = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &d.port().to_string()])
        .args(args)
        .arg(msg)
        .status()
        .expect("run logger");
    assert!(status.success(), "logger {args:?} failed");
}

fn find<'a>(rows: &'a [Row], msg: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.message == msg)
        .unwrap_or_else(|| panic!("{msg:?} not stored; rows: {rows:#?}"))
}

#[test]
fn util_linux_logger_every_transport_and_format() {
    if !have("logger") {
        return;
    }
    let d = Daemon::start(&[]);
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--tcp", "--rfc5424"], "tcp rfc5424", "rfc5424"),
        (&["--tcp", "--rfc3164"], "tcp rfc3164", "rfc3164"),
        (&["--udp", "--rfc5424"], "udp rfc5424", "rfc5424"),
        (&["--udp", "--rfc3164"], "udp rfc3164", "rfc3164"),
        (
            &["--tcp", "--octet-count", "--rfc5424"],
            "octet rfc5424",
            "rfc5424",
        ),
        (
            &["--tcp", "--octet-count", "--rfc3164"],
            "octet rfc3164",
            "rfc3164",
        ),
    ];
    for (args, msg, _) in cases {
        let mut a = args.to_vec();
        a.extend(["-t", "lgtest", "-p", "local4.warning"]);
        logger(&d, &a, msg);
    }
    let mut a = vec![
        "--tcp",
        "--rfc5424",
        "-t",
        "sdtest",
        "-p",
        "auth.err",
        "--sd-id",
        "origin@32473",
    ];
    a.extend(["--sd-param", "ip=\"10.0.0.1\"", "--msgid", "LOGIN"]);
    logger(&d, &a, "with structured data");
    let rows = d.wait_rows(cases.len() + 1);
    for (_, msg, protocol) in cases {
        let r = find(&rows, msg);
        assert_eq!(r.protocol, *protocol, "{msg}");
        assert_eq!(r.source.as_deref(), Some("lgtest"), "{msg}");
        assert_eq!((r.severity, r.facility), (4, Some(20)), "{msg}");
        assert!(r.hostname.is_some(), "{msg}");
    }
    let r = find(&rows, "with structured data");
    assert_eq!(
        (r.severity, r.facility, r.msgid.as_deref()),
        (3, Some(4), Some("LOGIN"))
    );
    let sd: serde_json::Value =
        serde_json::from_str(r.structured_data.as_deref().unwrap()).unwrap();
    assert_eq!(sd["origin@32473"]["ip"], "10.0.0.1");
}

#[test]
fn rsyslog_forwards_with_omfwd_octet_counted_rfc5424() {
    if !(Rsyslog::installed() && have("logger")) {
        return;
    }
    let d = Daemon::start(&[]);
    let rsyslog = Rsyslog::start(
        "",
        &format!(
            "*.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"tcp\" \
             TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")",
            d.port()
        ),
    );
    rsyslog.logger("viarsyslog", Some("daemon.notice"), "forwarded by rsyslog");
    rsyslog.logger(
        "viarsyslog",
        Some("mail.err"),
        "multi\u{e9} unicode through rsyslog",
    );
    let rows = d.wait_rows(2);
    drop(rsyslog);
    let r = find(&rows, "forwarded by rsyslog");
    assert_eq!(r.protocol, "rfc5424");
    assert_eq!(
        (r.source.as_deref(), r.severity, r.facility),
        (Some("viarsyslog"), 5, Some(3))
    );
    let r = find(&rows, "multi\u{e9} unicode through rsyslog");
    assert_eq!((r.severity, r.facility), (3, Some(2)));
}

#[test]
fn python_syslog_handler_over_tcp() {
    if !have("python3") {
        return;
    }
    let d = Daemon::start(&[]);
    let script = format!(
        r#"
import logging, logging.handlers, socket
h = logging.handlers.SysLogHandler(address=("127.0.0.1", {port}), socktype=socket.SOCK_STREAM,
                                   facility=logging.handlers.SysLogHandler.LOG_LOCAL2)
h.setFormatter(logging.Formatter("pyapp[%(process)d]: %(message)s"))
log = logging.getLogger("t"); log.addHandler(h); log.setLevel(logging.DEBUG)
log.info("python info"); log.warning("python warning"); log.error("python error")
log.debug("python debug")
h.close()
"#,
        port = d.port()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(status.success());
    let rows = d.wait_rows(4);
    for (msg, sev) in [
        ("python info", 6),
        ("python warning", 4),
        ("python error", 3),
        ("python debug", 7),
    ] {
        let r = find(&rows, msg);
        assert_eq!(
            (r.severity, r.facility, r.source.as_deref()),
            (sev, Some(18), Some("pyapp")),
            "{msg}"
        );
        assert!(
            r.procid
                .as_deref()
                .is_some_and(|p| p.parse::<u32>().is_ok())
        );
    }
}
