//! The pager, as journalctl runs one: only when standard output is a terminal (never
//! when piped, never with `-f`), `$LOGQ_PAGER`, else `$PAGER` (each a shell command,
//! so `PAGER='less -S'` works), else `less -FRSXMK`: quit if one screen (F), colours
//! raw (R), chop long lines (S), no screen clearing (X), long prompt (M), Ctrl-C quits
//! (K). `-e` starts less at the end (`+G`). An empty variable or `cat` means none.

use std::io::{self, IsTerminal};
use std::process::{Child, ChildStdin, Command, Stdio};

/// journalctl's flags for less.
pub const LESS_FLAGS: &str = "-FRSXMK";

pub struct Pager {
    child: Child,
}

/// The pager command: `Some((program or shell command, is_shell))`, `None` for none.
fn command(jump_to_end: bool) -> Option<Command> {
    let from_env = ["LOGQ_PAGER", "PAGER"]
        .iter()
        .find_map(|v| std::env::var(v).ok());
    match from_env {
        Some(cmd) => {
            let cmd = cmd.trim().to_string();
            if cmd.is_empty() || cmd == "cat" {
                return None;
            }
            let first = cmd.split_whitespace().next().unwrap_or_default();
            let is_less = std::path::Path::new(first)
                .file_name()
                .is_some_and(|n| n == "less");
            let mut c = Command::new("/bin/sh");
            c.arg("-c");
            if jump_to_end && is_less {
                c.arg(format!("{cmd} +G"));
            } else {
                c.arg(cmd);
            }
            Some(c)
        }
        None => {
            let mut c = Command::new("less");
            c.arg(LESS_FLAGS);
            if jump_to_end {
                c.arg("+G");
            }
            Some(c)
        }
    }
}

impl Pager {
    /// Starts the pager if standard output is a terminal and paging is wanted;
    /// `None` otherwise, or when no pager can be started (then output goes straight
    /// to the terminal, as journalctl does).
    pub fn start(wanted: bool, jump_to_end: bool) -> Option<Pager> {
        if !wanted || !io::stdout().is_terminal() {
            return None;
        }
        let mut cmd = command(jump_to_end)?;
        let child = cmd.stdin(Stdio::piped()).spawn().ok()?;
        // Ctrl-C reaches the whole foreground group: less (K) quits on it, and logq
        // must then see the closed pipe and clean up rather than die mid-write with
        // the terminal still in the pager's hands.
        // SAFETY: setting a signal's disposition to ignore is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
        Some(Pager { child })
    }

    /// Where output goes.
    pub fn input(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for the user to leave the pager (its input must be closed first).
    pub fn wait(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
