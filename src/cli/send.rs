//! `logq send`: one message from the arguments, or every line of standard input.

use super::error::CliError;
use crate::message::{Facility, LogMessage};
use crate::protocol::serialize::{Format, encode_framed};
use chrono::Utc;
use clap::Args;
use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Level: a name, an alias or 0-7
    #[arg(
        short = 'p',
        long = "priority",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub priority: String,
    /// Source (app name / tag)
    #[arg(short = 's', long, default_value = "logq")]
    pub source: String,
    /// Facility name or number
    #[arg(long, default_value = "user")]
    pub facility: String,
    /// Hostname to send [default: this machine's]
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// Wire format
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// The relay, HOST:PORT
    #[arg(long, env = "LOGRELAY_SERVER", default_value = crate::settings::DEFAULT_LISTEN)]
    pub server: String,
    /// The message; without it, every line of standard input is one message
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(server: &str) -> Result<TcpStream, CliError> {
    let unreachable = |e: String| {
        CliError::Runtime(format!(
            "cannot reach the relay at {server}: {e} (is logrelayd running? --server HOST:PORT)"
        ))
    };
    let addrs = server
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?;
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

pub fn run(a: SendArgs) -> Result<std::process::ExitCode, CliError> {
    let level = super::levels::priority(&a.priority)?.1;
    let facility: Facility = a
        .facility
        .parse()
        .map_err(|e: crate::message::UnknownFacility| CliError::usage(e.to_string(), None))?;
    let hostname = a.host.clone().or_else(crate::sys::hostname);
    let mut stream = connect(&a.server)?;
    let mut out = Vec::with_capacity(4096);
    let mut scratch = String::new();
    let mut encode = |text: &str, out: &mut Vec<u8>| {
        let mut m = LogMessage::new(text, level, Utc::now());
        m.facility = Some(facility);
        m.source = Some(Cow::Borrowed(&a.source));
        m.hostname = hostname.as_deref().map(Cow::Borrowed);
        m.procid = Some(Cow::Owned(std::process::id().to_string()));
        encode_framed(a.format, &m, &mut scratch, out);
    };
    let write_err =
        |e: io::Error| CliError::Runtime(format!("sending to {} failed: {e}", a.server));
    if !a.message.is_empty() {
        encode(&a.message.join(" "), &mut out);
        stream.write_all(&out).map_err(write_err)?;
    } else {
        let stdin = io::stdin();
        let mut lines = io::BufReader::new(stdin.lock());
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines
                .read_line(&mut line)
                .map_err(|e| CliError::Runtime(format!("cannot read standard input: {e}")))?;
            if n == 0 {
                break;
            }
            let text = line.trim_end_matches(['\n', '\r']);
            if !text.is_empty() {
                encode(text, &mut out);
            }
            // Send when no more input is waiting, so `tail -F | logq send` is live.
            if lines.buffer().is_empty() || out.len() >= 1 << 16 {
                stream.write_all(&out).map_err(write_err)?;
                out.clear();
            }
        }
        stream.write_all(&out).map_err(write_err)?;
    }
    stream.flush().map_err(write_err)?;
    // Half-close and wait for the relay to close: it has read everything by then.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::Read::read(&mut stream, &mut [0u8; 1]);
    Ok(std::process::ExitCode::SUCCESS)
}
