//! logrelay: a syslog-compatible log relay (`logrelayd`) and query CLI (`logq`).
//!
//! The library's API is the part applications use:
//! - [`client`]: the `Logger` that applications use (feature `client`, always on).
//! - [`message`]: the normalised record ([`LogMessage`]) and its vocabulary.
//! - [`protocol`]: bytes to records and back; framing and parsers, pure functions.
//! - [`settings`]: what relay, `logq` and client agree on (default address and store).
//! - [`store`]: the stores' interfaces and the SQLite and SQL Server backends
//!   (feature `store`).
//!
//! [`daemon::main`] and [`cli::main`] are the two programs; everything else is internal
//! (see docs/ARCHITECTURE.md).

pub mod client;
pub mod message;
pub mod protocol;
pub mod settings;
pub(crate) mod sys;
pub(crate) mod timefmt;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "relay")]
pub mod daemon;
#[cfg(feature = "store")]
pub(crate) mod log_limit;
#[cfg(feature = "relay")]
pub(crate) mod relay;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "cli")]
pub(crate) mod system;

pub use message::{Facility, Level, LogMessage, Protocol, SdElement};
