//! `logq send`: one message from the arguments, or every line of standard input.

use super::error::CliError;
use super::relay_auth::{AuthArgs, Target};
use crate::message::{Facility, LogMessage};
use crate::protocol::serialize::{Format, encode_framed};
use chrono::Utc;
use clap::Args;
use std::borrow::Cow;
use std::io::{self, BufRead, Write};
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
    /// Ask the relay to acknowledge what it stored (native protocol, JSON only); report
    /// sent / acknowledged and fail when something was never acknowledged
    #[arg(long)]
    pub acks: bool,
    /// With --acks: how long to wait for the last acknowledgement
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        requires = "acks"
    )]
    pub ack_timeout: crate::settings::Span,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The message; without it, every line of standard input is one message
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,
}

/// Every line of standard input (or the one message) as one message.
fn for_each_message(
    a: &SendArgs,
    mut each: impl FnMut(&str, bool) -> Result<(), CliError>,
) -> Result<(), CliError> {
    if !a.message.is_empty() {
        return each(&a.message.join(" "), true);
    }
    let stdin = io::stdin();
    let mut lines = io::BufReader::new(stdin.lock());
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines
            .read_line(&mut line)
            .map_err(|e| CliError::Runtime(format!("cannot read standard input: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if !text.is_empty() {
            each(text, lines.buffer().is_empty())?;
        }
    }
}

/// `--acks`: through the `Logger`, which numbers the messages, keeps them until the
/// relay acknowledged them and resends them after a reconnect.
fn send_acknowledged(
    a: &SendArgs,
    level: crate::message::Level,
    facility: Facility,
    hostname: Option<String>,
) -> Result<std::process::ExitCode, CliError> {
    if a.format != Format::Json {
        return Err(CliError::usage(
            "--acks needs the native protocol",
            Some("--format json (the default)".into()),
        ));
    }
    // Fail fast and clearly when the relay is not there or turns us away.
    let target = Target::new(&a.server, &a.auth)?;
    target.open()?;
    let mut config = crate::client::Config::new(a.source.clone())
        .server(a.server.clone())
        .auth(target.auth);
    config.hostname = hostname;
    let logger =
        crate::client::Logger::new(config).map_err(|e| CliError::Runtime(e.to_string()))?;
    let pid = std::process::id().to_string();
    for_each_message(a, |text, _| {
        let mut m = LogMessage::new(text.to_string(), level, Utc::now());
        m.facility = Some(facility);
        m.source = Some(Cow::Owned(a.source.clone()));
        m.procid = Some(Cow::Owned(pid.clone()));
        logger
            .submit_wait(m, a.ack_timeout.0)
            .map_err(|_| CliError::Runtime(format!("the relay at {} takes nothing", a.server)))
    })?;
    let flushed = logger.flush(a.ack_timeout.0);
    let (sent, acked) = (logger.accepted(), logger.acknowledged());
    eprintln!("sent {sent}, acknowledged {acked}");
    if flushed.is_err() || acked < sent {
        eprintln!(
            "logq: {} messages were not acknowledged within {} (they may or may not be stored)",
            sent - acked.min(sent),
            a.ack_timeout
        );
        return Ok(std::process::ExitCode::from(3));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn run(a: SendArgs) -> Result<std::process::ExitCode, CliError> {
    let level = super::levels::priority(&a.priority)?.1;
    let facility: Facility = a
        .facility
        .parse()
        .map_err(|e: crate::message::UnknownFacility| CliError::usage(e.to_string(), None))?;
    let hostname = a.host.clone().or_else(crate::sys::hostname);
    if a.acks {
        return send_acknowledged(&a, level, facility, hostname);
    }
    let mut stream = Target::new(&a.server, &a.auth)?.open()?;
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
    stream
        .finish(Duration::from_secs(2))
        .map_err(|e| CliError::Runtime(format!("the relay at {} refused: {e}", a.server)))?;
    Ok(std::process::ExitCode::SUCCESS)
}
