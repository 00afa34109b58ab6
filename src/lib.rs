//! logrelay: a syslog-compatible log relay (`logrelayd`) and query CLI (`logq`).
//!
//! Layout: [`message`] is the normalised record; [`protocol`] turns bytes into records
//! (pure functions, no sockets).

pub mod message;
pub mod protocol;

pub use message::{Facility, Level, LogMessage, Protocol, SdElement};
pub mod relay;
pub mod store;
pub mod daemon;
