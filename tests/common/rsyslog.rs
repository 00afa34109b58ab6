//! A real rsyslogd on loopback for the client tests: started from a config text with a
//! plain TCP input (`imtcp`) on a free port, waited for until that input listens, and
//! killed (and reaped) when dropped, whatever the test's outcome.

use super::{WAIT, have};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian and others keep rsyslog's loadable modules.
const MODULE_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/rsyslog",
    "/usr/lib/aarch64-linux-gnu/rsyslog",
    "/usr/lib/rsyslog",
    "/usr/lib64/rsyslog",
];

pub struct Rsyslog {
    child: Child,
    /// Its work directory, config, pid file and stderr.
    dir: tempfile::TempDir,
    /// The port of its `imtcp` input on 127.0.0.1.
    pub in_port: u16,
}

impl Rsyslog {
    /// Whether rsyslogd is installed (if not: SKIPPED, or a failure under
    /// LOGRELAY_REQUIRE_CLIENTS).
    pub fn installed() -> bool {
        Self::program().is_some()
    }

    fn program() -> Option<&'static str> {
        ["/usr/sbin/rsyslogd", "rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists() || have(p))
    }

    /// Whether rsyslog's module `file` (`omrelp.so`, `lmnsd_gtls.so`) is installed; if not,
    /// says SKIPPED, or fails under LOGRELAY_REQUIRE_CLIENTS.
    pub fn module_installed(file: &str) -> bool {
        let found = MODULE_DIRS.iter().any(|d| Path::new(d).join(file).exists());
        if !found {
            if std::env::var_os("LOGRELAY_REQUIRE_CLIENTS").is_some() {
                panic!("rsyslog's {file} is required (LOGRELAY_REQUIRE_CLIENTS is set)");
            }
            eprintln!("SKIPPED: rsyslog's {file} is not installed");
        }
        found
    }

    /// Starts rsyslogd with `global(workDirectory=… GLOBAL)`, the `imtcp` input, then
    /// `rest` (modules and actions), and waits until the input listens.
    pub fn start(global: &str, rest: &str) -> Rsyslog {
        let program = Self::program().expect("rsyslogd (check Rsyslog::installed first)");
        let dir = tempfile::tempdir().expect("temp dir");
        let in_port = super::unused_port();
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\" {global})\n\
                 module(load=\"imtcp\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{in_port}\")\n\
                 {rest}\n",
                work = dir.path().display()
            ),
        )
        .expect("write rsyslog.conf");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = Command::new(program)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start rsyslogd");
        let mut r = Rsyslog {
            child,
            dir,
            in_port,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", in_port)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rsyslogd exited ({status}): {}", r.stderr());
            }
            assert!(
                start.elapsed() < WAIT,
                "rsyslogd did not listen: {}",
                r.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// A connection to its input.
    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.in_port)).expect("connect to rsyslogd")
    }

    /// util-linux `logger --tcp` into its input, with the tag and, if given, the priority.
    pub fn logger(&self, tag: &str, priority: Option<&str>, msg: &str) {
        let mut cmd = Command::new("logger");
        cmd.args(["--tcp", "-n", "127.0.0.1", "-P", &self.in_port.to_string()])
            .args(["-t", tag]);
        if let Some(p) = priority {
            cmd.args(["-p", p]);
        }
        let ok = cmd.arg(msg).status().expect("run logger");
        assert!(ok.success(), "logger into rsyslogd failed");
    }

    /// What rsyslogd wrote to stderr so far (its config errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
