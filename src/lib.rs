//! logrelay: a syslog-compatible log relay (`logrelayd`) and query CLI (`logq`).
//!
//! - [`message`]: the normalised record ([`LogMessage`]) and its vocabulary.
//! - [`protocol`]: bytes to records; framing and parsers, pure functions, no sockets.
//! - [`store`]: the `Store` trait, the SQLite backend, filters as parameterised SQL.
//! - [`relay`]: the daemon: listeners, connections, the batch writer.
//! - [`cli`]: `logq` (query, follow, send, simulate); [`daemon`]: `logrelayd`'s flags.
//! - [`client`]: the `Logger` that applications use.
//! - [`log_limit`]: warnings that can repeat, logged once then counted per interval.

pub mod cli;
pub mod client;
pub mod daemon;
pub mod log_limit;
pub mod message;
pub mod protocol;
pub mod relay;
pub mod settings;
pub mod store;
pub mod sys;
pub mod timefmt;

pub use message::{Facility, Level, LogMessage, Protocol, SdElement};
