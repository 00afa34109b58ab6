//! Real TLS clients no one here wrote, against a real relay's TLS listener: `openssl
//! s_client`, Python's `ssl`, rsyslog's omfwd with the gtls and ossl drivers (with and
//! without client certificates) and syslog-ng's `syslog(transport(tls))`. Each says
//! SKIPPED when missing; CI installs them and sets LOGRELAY_REQUIRE_CLIENTS=1.

#[path = "common/certs.rs"]
mod certs;
mod common;

use certs::{Ca, Leaf, VALID, ca, leaf, write};
use common::rsyslog::Rsyslog;
use common::{Daemon, final_stat, have};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The files a client and the relay need.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    client: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("test CA");
        let server = leaf_multi(&["localhost", "127.0.0.1"], &ca);
        let client = leaf("client1.example.net", Some(&ca), VALID);
        write(dir.path(), "ca.pem", &ca.pem);
        write(dir.path(), "server.pem", &server.cert_pem);
        write(dir.path(), "server.key", &server.key_pem);
        write(dir.path(), "client.pem", &client.cert_pem);
        write(dir.path(), "client.key", &client.key_pem);
        Pki { dir, ca, client }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A relay with a TLS listener; with `mtls`, client certificates from the CA whose
    /// name matches `*.example.net` are required.
    fn relay(&self, mtls: bool) -> (Daemon, SocketAddr) {
        let mut args = vec![
            "--listen-tls".to_string(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server.key"),
        ];
        if mtls {
            args.extend([
                "--tls-client-ca".into(),
                self.path("ca.pem"),
                "--tls-allow".into(),
                "*.example.net".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = Daemon::start(&args);
        assert!(d.wait_stderr("tls listener on "), "{}", d.stderr());
        let addr = d
            .stderr()
            .split("tls listener on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .expect("tls address");
        (d, addr)
    }
}

/// A server certificate for several names (DNS or IP).
fn leaf_multi(names: &[&str], ca: &Ca) -> Leaf {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

fn find_message(d: &Daemon, msg: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < common::WAIT {
        if d.rows().iter().any(|r| r.message == msg) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn s_client(pki: &Pki, addr: SocketAddr, extra: &[&str], line: &str) -> bool {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-quiet",
            "-no_ign_eof",
        ])
        .args(["-CAfile", &pki.path("ca.pem"), "-verify_return_error"])
        .args([
            "-cert",
            &pki.path("client.pem"),
            "-key",
            &pki.path("client.key"),
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(line.as_bytes());
    drop(stdin);
    wait_bounded(&mut child).success()
}

fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if start.elapsed() > common::WAIT {
            let _ = child.kill();
            panic!("client did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn openssl_s_client_tls12_tls13_and_refusals() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let (mut d, addr) = pki.relay(true);
    for v in ["-tls1_2", "-tls1_3"] {
        let msg = format!("<14>1 - host sclient - - - via s_client {v}\n");
        assert!(s_client(&pki, addr, &[v], &msg), "{v}");
        assert!(
            find_message(&d, &format!("via s_client {v}")),
            "{v}: {:?}",
            d.rows()
        );
    }
    // Older versions and suites without forward secrecy are refused.
    s_client(&pki, addr, &["-tls1_1"], "<14>1 - h a - - - tls1.1\n");
    s_client(
        &pki,
        addr,
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        "<14>1 - h a - - - rsa kx\n",
    );
    let (_, stderr) = d.terminate();
    assert_eq!(final_stat(&stderr, "stored"), 2, "{stderr}");
    assert_eq!(final_stat(&stderr, "refused_tls_handshake"), 2, "{stderr}");
}

#[test]
fn python_ssl_module_with_a_client_certificate() {
    if !have("python3") {
        return;
    }
    let pki = Pki::new();
    let (d, addr) = pki.relay(true);
    let script = format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile="{ca}")
ctx.load_cert_chain("{cert}", "{key}")
with socket.create_connection(("127.0.0.1", {port})) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(b'{{"level":"WARNING","message":"python over tls","source":"MyService"}}\n')
        t.unwrap()
"#,
        ca = pki.path("ca.pem"),
        cert = pki.path("client.pem"),
        key = pki.path("client.key"),
        port = addr.port()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(find_message(&d, "python over tls"), "{:?}", d.rows());
    let r = d
        .rows()
        .into_iter()
        .find(|r| r.message == "python over tls")
        .unwrap();
    assert_eq!((r.severity, r.source.as_deref()), (4, Some("MyService")));
    let _ = &pki.client;
    let _ = &pki.ca;
}

/// rsyslog receives on a plain port and forwards to the relay over TLS.
fn rsyslog_over_tls(driver: &str, client_cert: bool) {
    let driver_file = format!("lmnsd_{driver}.so");
    if !(Rsyslog::installed() && have("logger") && Rsyslog::module_installed(&driver_file)) {
        return;
    }
    let pki = Pki::new();
    let (d, addr) = pki.relay(client_cert);
    let mut global = format!("DefaultNetstreamDriverCAFile=\"{}\"", pki.path("ca.pem"));
    if client_cert {
        global += &format!(
            " DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
            pki.path("client.pem"),
            pki.path("client.key")
        );
    }
    let rsyslog = Rsyslog::start(
        &global,
        &format!(
            "*.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{out}\" protocol=\"tcp\" \
             StreamDriver=\"{driver}\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" \
             StreamDriverPermittedPeers=\"localhost\" \
             TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")",
            out = addr.port()
        ),
    );
    let msg = format!("rsyslog {driver} client cert {client_cert}");
    rsyslog.logger("viatls", None, &msg);
    let stored = find_message(&d, &msg);
    drop(rsyslog);
    assert!(stored, "{msg} not stored: {}", d.stderr());
    let r = d.rows().into_iter().find(|r| r.message == msg).unwrap();
    assert_eq!(
        (r.protocol.as_str(), r.source.as_deref()),
        ("rfc5424", Some("viatls"))
    );
}

#[test]
fn rsyslog_gtls_with_client_certificate() {
    rsyslog_over_tls("gtls", true);
}

#[test]
fn rsyslog_gtls_without_client_certificate() {
    rsyslog_over_tls("gtls", false);
}

#[test]
fn rsyslog_ossl_with_client_certificate() {
    rsyslog_over_tls("ossl", true);
}

#[test]
fn rsyslog_ossl_without_client_certificate() {
    rsyslog_over_tls("ossl", false);
}

#[test]
fn syslog_ng_syslog_transport_tls() {
    // Debian cannot install syslog-ng beside rsyslog (both are the system logger):
    // .ci/run unpacks it under /opt/syslog-ng; else one on PATH.
    let unpacked = Path::new("/opt/syslog-ng/usr/sbin/syslog-ng");
    let syslog_ng = || {
        if unpacked.exists() {
            let lib = "/opt/syslog-ng/usr/lib/syslog-ng";
            let mut c = Command::new(unpacked);
            c.env("LD_LIBRARY_PATH", lib)
                .arg(format!("--module-path={lib}/3.38"));
            c
        } else {
            Command::new("syslog-ng")
        }
    };
    if !(unpacked.exists() || have("syslog-ng")) || !have("logger") {
        return;
    }
    let pki = Pki::new();
    let (d, addr) = pki.relay(true);
    let work = tempfile::tempdir().unwrap();
    let in_port = common::unused_port();
    let version = syslog_ng()
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    // "Config version: 4.3" names the @version the binary wants.
    let config_version = version
        .lines()
        .find_map(|l| l.strip_prefix("Config version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "3.38".into());
    let conf: PathBuf = work.path().join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            "@version: {config_version}\n\
             options {{ keep-hostname(yes); }};\n\
             source s {{ network(ip(\"127.0.0.1\") port({in_port}) transport(\"tcp\")); }};\n\
             destination relay {{ syslog(\"127.0.0.1\" port({out}) transport(\"tls\") \
             tls(ca-file(\"{ca}\") cert-file(\"{cert}\") key-file(\"{key}\") \
             peer-verify(required-trusted))); }};\n\
             log {{ source(s); destination(relay); }};\n",
            out = addr.port(),
            ca = pki.path("ca.pem"),
            cert = pki.path("client.pem"),
            key = pki.path("client.key"),
        ),
    )
    .unwrap();
    let w = work.path();
    let mut ng = syslog_ng()
        .arg("-F")
        .arg("-f")
        .arg(&conf)
        .arg("-R")
        .arg(w.join("persist"))
        .arg("-p")
        .arg(w.join("pid"))
        .arg("-c")
        .arg(w.join("ctl"))
        .arg("--no-caps")
        .arg("-e")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("stderr")).unwrap())
        .spawn()
        .expect("start syslog-ng");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", in_port)).is_err() {
        assert!(start.elapsed() < common::WAIT, "syslog-ng did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = Command::new("logger")
        .args([
            "--tcp",
            "--rfc3164",
            "-n",
            "127.0.0.1",
            "-P",
            &in_port.to_string(),
            "-t",
            "viang",
        ])
        .arg("syslog-ng over tls")
        .status()
        .expect("logger");
    assert!(ok.success());
    let stored = find_message(&d, "syslog-ng over tls");
    let _ = ng.kill();
    let _ = ng.wait();
    let ng_log = std::fs::read_to_string(w.join("stderr")).unwrap_or_default();
    assert!(stored, "not stored: {:?}\nsyslog-ng: {ng_log}", d.rows());
    let r = d
        .rows()
        .into_iter()
        .find(|r| r.message == "syslog-ng over tls")
        .unwrap();
    assert_eq!(
        (r.protocol.as_str(), r.source.as_deref()),
        ("rfc5424", Some("viang"))
    );
}
