//! The original client's usage, in Rust: start the relay (`cargo run --bin logrelayd`),
//! then `cargo run --example logger`, then `logq -n 5`.

use logrelay::client::{self, Config};

fn main() {
    // One line installs the process-wide logger (and the `log` crate backend); the
    // guard delivers what is still queued when main returns.
    let _guard = match client::init(Config::new("MyService")) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot start the logger: {e}");
            std::process::exit(1);
        }
    };
    let logger = client::global().expect("installed above");
    logger.log("INFO", "This is a test log", "MyService");
    logger.log("ERROR", "Something failed", "PaymentGateway");
    log::warn!("log crate macros work too");
    if logger.dropped() > 0 {
        eprintln!("{} messages were dropped", logger.dropped());
    }
}
