//! `logq simulate`: client services sending realistic, varied logs — the original
//! system's simulator, and our load generator. Threads each own some services, one TCP
//! connection per service, and write in large chunks, so one process sends hundreds of
//! thousands of messages per second when unthrottled.

use super::error::CliError;
use super::relay_auth::{AuthArgs, Target};
use crate::client::connect::Stream;
use crate::message::{Facility, Level, LogMessage, SdElement};
use crate::protocol::serialize::{Format, encode_framed};
use chrono::Utc;
use clap::Args;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocols {
    /// Services alternate between native JSON and RFC 5424
    Mixed,
    Json,
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of simulated services (one connection each)
    #[arg(long, default_value_t = 6)]
    pub services: usize,
    /// Total messages to send
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Send for this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Messages per second in total [default: as fast as possible]
    #[arg(long)]
    pub rate: Option<f64>,
    /// Wire protocols to use
    #[arg(long, value_enum, default_value = "mixed")]
    pub protocol: Protocols,
    /// The relay, HOST:PORT
    #[arg(long, env = "LOGRELAY_SERVER", default_value = crate::settings::DEFAULT_LISTEN)]
    pub server: String,
    /// Seed for the random choices (runs with the same seed send the same messages)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Every service sends through the `Logger` with acknowledgements (native
    /// protocol); report sent / acknowledged, fail when something was never acknowledged
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
}

/// A small, fast, seedable generator (xorshift64*): no need for a crate here.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Weights like real systems: mostly info, some warnings, rare errors (per mille).
const LEVEL_WEIGHTS: [(Level, u64); 7] = [
    (Level::Debug, 40),
    (Level::Info, 780),
    (Level::Notice, 60),
    (Level::Warning, 80),
    (Level::Err, 35),
    (Level::Crit, 4),
    (Level::Alert, 1),
];

struct Service {
    name: &'static str,
    facility: u8,
    templates: &'static [(&'static str, Level)],
}

const SERVICES: &[Service] = &[
    Service {
        name: "AuthService",
        facility: 10,
        templates: &[
            ("User {user} logged in from {ip}", Level::Info),
            ("Session {id} refreshed for {user}", Level::Debug),
            (
                "Failed login for {user} from {ip}: invalid password",
                Level::Warning,
            ),
            ("Account {user} locked after 5 failed attempts", Level::Err),
            ("Token signing key rotated", Level::Notice),
        ],
    },
    Service {
        name: "PaymentGateway",
        facility: 16,
        templates: &[
            (
                "Payment {id} of {amount} EUR authorised for order {order}",
                Level::Info,
            ),
            (
                "Card declined for order {order}: insufficient funds",
                Level::Warning,
            ),
            (
                "Acquirer timeout after {ms} ms for payment {id}",
                Level::Err,
            ),
            ("Refund {id} of {amount} EUR issued", Level::Notice),
            ("Fraud score {pct} for payment {id}", Level::Debug),
        ],
    },
    Service {
        name: "InventoryService",
        facility: 17,
        templates: &[
            (
                "Reserved {n} units of SKU-{sku} for order {order}",
                Level::Info,
            ),
            (
                "Stock for SKU-{sku} below threshold: {n} left",
                Level::Warning,
            ),
            ("Inventory sync finished in {ms} ms", Level::Info),
            (
                "Deadlock detected while reserving SKU-{sku}; retrying",
                Level::Err,
            ),
        ],
    },
    Service {
        name: "NotificationService",
        facility: 18,
        templates: &[
            ("Email {id} queued for {user}", Level::Info),
            (
                "SMS provider responded {code} for message {id}",
                Level::Warning,
            ),
            ("Push notification {id} delivered in {ms} ms", Level::Debug),
            ("Template 'order-shipped' rendered", Level::Info),
        ],
    },
    Service {
        name: "OrderService",
        facility: 19,
        templates: &[
            (
                "Order {order} created by {user} with {n} items",
                Level::Info,
            ),
            (
                "Order {order} shipped via DHL, tracking {id}",
                Level::Notice,
            ),
            (
                "Order {order} stuck in state PENDING for {ms} ms",
                Level::Warning,
            ),
            (
                "Cannot reach PaymentGateway: connection refused",
                Level::Crit,
            ),
        ],
    },
    Service {
        name: "SearchService",
        facility: 20,
        templates: &[
            (
                "Query '{word}' answered in {ms} ms with {n} hits",
                Level::Info,
            ),
            ("Index segment merge took {ms} ms", Level::Debug),
            ("Slow query '{word}': {ms} ms", Level::Warning),
        ],
    },
];

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "mallory", "zoë",
];
const WORDS: &[&str] = &[
    "shoes",
    "laptop",
    "garden chair",
    "coffee",
    "lamp",
    "usb-c cable",
    "Schreibtisch",
];

fn fill(template: &str, rng: &mut Rng, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let key = &rest[open + 1..open + close];
        let _ = match key {
            "user" => write!(out, "{}", rng.pick(USERS)),
            "ip" => write!(
                out,
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            "id" => write!(out, "{:08x}", rng.next() as u32),
            "order" => write!(out, "ORD-{}", 100_000 + rng.below(900_000)),
            "amount" => write!(out, "{}.{:02}", rng.below(500), rng.below(100)),
            "ms" => write!(out, "{}", 1 + rng.below(5000)),
            "n" => write!(out, "{}", 1 + rng.below(50)),
            "sku" => write!(out, "{}", 1000 + rng.below(9000)),
            "pct" => write!(out, "{}", rng.below(100)),
            "code" => write!(out, "{}", *rng.pick(&[200, 202, 429, 500, 503])),
            "word" => write!(out, "{}", rng.pick(WORDS)),
            _ => write!(out, "{{{key}}}"),
        };
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
}

/// The next message of `service`: a template whose level fits the weighted draw.
fn generate(svc: &Service, rng: &mut Rng, text: &mut String) -> Level {
    let mut draw = rng.below(1000);
    let mut level = Level::Info;
    for (l, w) in LEVEL_WEIGHTS {
        if draw < w {
            level = l;
            break;
        }
        draw -= w;
    }
    let fitting = || svc.templates.iter().filter(|(_, l)| *l == level);
    let count = fitting().count() as u64;
    text.clear();
    let template = match fitting().nth(rng.below(count) as usize) {
        Some((t, _)) if count > 0 => *t,
        _ => generic(level),
    };
    fill(template, rng, text);
    level
}

/// Messages any service may log, for levels a service has no template of its own for.
fn generic(level: Level) -> &'static str {
    match level {
        Level::Emerg => "Kernel panic on worker {n}",
        Level::Alert => "Disk /var full on {ip}",
        Level::Crit => "Out of memory: killed worker {n}",
        Level::Err => "Unhandled exception in request {id}",
        Level::Warning => "Retrying request {id} ({n}/3)",
        Level::Notice => "Configuration reloaded",
        Level::Info => "Health check passed in {ms} ms",
        Level::Debug => "Cache hit ratio {pct}%",
    }
}

struct Shared {
    sent: AtomicU64,
    failed: AtomicU64,
    acknowledged: AtomicU64,
    stop: AtomicBool,
}

/// Where a worker's messages go: its own connections, or (with --acks) a `Logger` per
/// service.
enum Outlet {
    Plain {
        conns: Vec<Option<Stream>>,
        bufs: Vec<(Vec<u8>, u64)>,
    },
    Acked {
        loggers: Vec<crate::client::Logger>,
        wait: Duration,
    },
}

struct Plan {
    /// Messages for this thread, or `None` to run until the deadline.
    count: Option<u64>,
    deadline: Option<Instant>,
    /// Messages per second for this thread.
    rate: Option<f64>,
}

fn worker(
    services: Vec<(usize, Format)>,
    target: Arc<Target>,
    plan: Plan,
    seed: u64,
    shared: Arc<Shared>,
    acks: Option<Duration>,
) {
    let hostname = crate::sys::hostname().unwrap_or_else(|| "localhost".into());
    let connect = || target.open().ok();
    let mut outlet = match acks {
        None => Outlet::Plain {
            conns: services.iter().map(|_| connect()).collect(),
            bufs: services
                .iter()
                .map(|_| (Vec::with_capacity(1 << 16), 0))
                .collect(),
        },
        Some(wait) => Outlet::Acked {
            loggers: services
                .iter()
                .filter_map(|(i, _)| {
                    let name = SERVICES[i % SERVICES.len()].name;
                    let config = crate::client::Config::new(name)
                        .server(target.server.clone())
                        .auth(target.auth.clone());
                    crate::client::Logger::new(config).ok()
                })
                .collect(),
            wait,
        },
    };
    let mut rng = Rng::new(seed);
    let mut text = String::new();
    let mut scratch = String::new();
    let start = Instant::now();
    let mut made = 0u64;
    let pid = std::process::id().to_string();
    let flush = |i: usize, conns: &mut Vec<Option<Stream>>, bufs: &mut Vec<(Vec<u8>, u64)>| {
        let (buf, n) = &mut bufs[i];
        if *n == 0 {
            return;
        }
        if conns[i].is_none() {
            conns[i] = connect();
        }
        let ok = conns[i].as_mut().is_some_and(|c| c.write_all(buf).is_ok());
        if ok {
            shared.sent.fetch_add(*n, Ordering::Relaxed);
        } else {
            conns[i] = None;
            shared.failed.fetch_add(*n, Ordering::Relaxed);
        }
        buf.clear();
        *n = 0;
    };
    loop {
        if plan.count.is_some_and(|c| made >= c)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
            || shared.stop.load(Ordering::Relaxed)
        {
            break;
        }
        let slot = (made % services.len() as u64) as usize;
        let (svc_index, format) = services[slot];
        let svc = &SERVICES[svc_index % SERVICES.len()];
        let level = generate(svc, &mut rng, &mut text);
        let mut m = LogMessage::new(text.as_str(), level, Utc::now());
        m.facility = Facility::from_code(svc.facility);
        m.source = Some(Cow::Borrowed(svc.name));
        m.hostname = Some(Cow::Borrowed(&hostname));
        m.procid = Some(Cow::Borrowed(&pid));
        if format == Format::Rfc5424 && rng.below(10) < 3 {
            m.structured_data = vec![SdElement {
                id: Cow::Borrowed("sim@32473"),
                params: vec![(Cow::Borrowed("service"), Cow::Borrowed(svc.name))],
            }];
        }
        made += 1;
        match &mut outlet {
            Outlet::Plain { conns, bufs } => {
                encode_framed(format, &m, &mut scratch, &mut bufs[slot].0);
                bufs[slot].1 += 1;
                if bufs[slot].0.len() >= 1 << 16 || plan.rate.is_some() {
                    flush(slot, conns, bufs);
                }
            }
            Outlet::Acked { loggers, wait } => {
                let sent = loggers
                    .get(slot)
                    .is_some_and(|l| l.submit_wait(m.into_owned(), *wait).is_ok());
                let counter = if sent { &shared.sent } else { &shared.failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(made as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
    match outlet {
        Outlet::Plain {
            mut conns,
            mut bufs,
        } => {
            for i in 0..services.len() {
                flush(i, &mut conns, &mut bufs);
            }
            // Half-close and wait until the relay has read everything.
            for c in conns.iter_mut().flatten() {
                let _ = c.finish(Duration::from_secs(10));
            }
        }
        Outlet::Acked { loggers, wait } => {
            let deadline = Instant::now() + wait;
            for l in loggers {
                let _ = l.flush(deadline.saturating_duration_since(Instant::now()));
                shared
                    .acknowledged
                    .fetch_add(l.acknowledged(), Ordering::Relaxed);
            }
        }
    }
}

pub fn run(a: SimulateArgs) -> Result<std::process::ExitCode, CliError> {
    if a.services == 0 {
        return Err(CliError::usage("--services must be at least 1", None));
    }
    if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(CliError::usage(
            "--rate must be a positive number of messages per second",
            None,
        ));
    }
    if a.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(CliError::usage(
            "--duration must be a positive number of seconds",
            None,
        ));
    }
    if a.count.is_none() && a.duration.is_none() {
        return Err(CliError::usage(
            "say how much to send",
            Some("--count N or --duration SECONDS".into()),
        ));
    }
    // Fail fast and clearly when the relay is not there or turns us away.
    let target = Arc::new(Target::new(&a.server, &a.auth)?);
    target.open()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = a.services.min(cores).max(1);
    let formats = |i: usize| match a.protocol {
        _ if a.acks => Format::Json,
        Protocols::Mixed if i.is_multiple_of(2) => Format::Json,
        Protocols::Mixed => Format::Rfc5424,
        Protocols::Json => Format::Json,
        Protocols::Rfc5424 => Format::Rfc5424,
        Protocols::Rfc3164 => Format::Rfc3164,
    };
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        acknowledged: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let deadline = a.duration.map(|d| start + Duration::from_secs_f64(d));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let services: Vec<(usize, Format)> = (t..a.services)
                .step_by(threads)
                .map(|i| (i, formats(i)))
                .collect();
            let count = a
                .count
                .map(|c| c / threads as u64 + u64::from((t as u64) < c % threads as u64));
            let plan = Plan {
                count,
                deadline,
                rate: a.rate.map(|r| r / threads as f64),
            };
            let target = target.clone();
            let shared = shared.clone();
            let seed = a.seed.wrapping_add(t as u64);
            let acks = a.acks.then_some(a.ack_timeout.0);
            std::thread::spawn(move || worker(services, target, plan, seed, shared, acks))
        })
        .collect();
    let bar = progress_bar(&a);
    while handles.iter().any(|h| !h.is_finished()) {
        if let Some(b) = &bar {
            b.set_position(shared.sent.load(Ordering::Relaxed));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let (sent, failed) = (
        shared.sent.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let acknowledged = shared.acknowledged.load(Ordering::Relaxed);
    let acked_text = if a.acks {
        format!(", acknowledged {acknowledged}")
    } else {
        String::new()
    };
    println!(
        "sent {sent}{acked_text}, failed {failed}, {:.0} msg/s over {secs:.2} s ({} services, {threads} threads)",
        sent as f64 / secs.max(1e-9),
        a.services
    );
    if a.acks && acknowledged < sent {
        eprintln!(
            "logq: {} messages were not acknowledged within {}",
            sent - acknowledged,
            a.ack_timeout
        );
    }
    Ok(if failed > 0 || (a.acks && acknowledged < sent) {
        std::process::ExitCode::from(3)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// A bar with rate and ETA on stderr, only when stdout and stderr are terminals.
fn progress_bar(a: &SimulateArgs) -> Option<indicatif::ProgressBar> {
    if !(std::io::stderr().is_terminal() && std::io::stdout().is_terminal()) {
        return None;
    }
    let bar = match a.count {
        Some(c) => indicatif::ProgressBar::new(c),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_weights() {
        let mut rng = Rng::new(7);
        let mut text = String::new();
        let mut counts = [0u32; 8];
        for i in 0..10_000 {
            let l = generate(&SERVICES[i % SERVICES.len()], &mut rng, &mut text);
            counts[l.code() as usize] += 1;
            assert!(!text.contains('{'), "unfilled template: {text}");
        }
        assert!(counts[Level::Info.code() as usize] > 7_000);
        assert!(counts[Level::Warning.code() as usize] > 500);
        assert!(counts[Level::Err.code() as usize] > 150);
        assert!(counts[Level::Err.code() as usize] < 600);
    }
}
