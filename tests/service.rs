//! Running logrelay as a service, checked with the tools a sysadmin has: man pages and
//! completions (man, bash), systemd units (systemd-analyze, systemd-socket-activate),
//! service notifications on a NOTIFY_SOCKET, /metrics (promtool), check-config, SIGHUP.

mod common;
#[path = "service/docs.rs"]
mod docs;

use common::have;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let bless = std::env::var_os("LOGRELAY_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, content) in docs::generated() {
        let file = repo().join(&path);
        if std::fs::read(&file).ok().as_deref() == Some(&content[..]) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, &content).expect("write");
        } else {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (the flags changed?): {stale:?}; regenerate with LOGRELAY_BLESS=1 cargo test --test service"
    );
}

fn man_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .expect("man/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| ["1", "5", "8"].contains(&&*e.to_string_lossy()))
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn man_pages_format_without_warnings() {
    if !have("man") {
        return;
    }
    let pages = man_pages();
    assert!(pages.len() >= 5, "{pages:?}");
    for page in pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .stdin(Stdio::null())
            .output()
            .expect("run man");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{}: {stderr}",
            page.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SEE ALSO"), "{}: {text}", page.display());
    }
}

#[test]
fn the_toml_page_names_keys_the_file_accepts() {
    let page = std::fs::read_to_string(repo().join("man/logrelayd.toml.5")).expect("page");
    let keys: Vec<&str> = page
        .split(".TP\n")
        .skip(1)
        .filter_map(|entry| entry.strip_prefix("\\fB")?.split("\\fR").next())
        .collect();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in keys {
        let key = key.replace("\\-", "-");
        assert!(
            docs::is_key(&key),
            "{key} is not a key of the settings file"
        );
    }
}

#[test]
fn bash_completes_logq_priority() {
    if !have("bash") {
        return;
    }
    let script = repo().join("completions/logq.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(logq --pr); COMP_CWORD=1; COMP_LINE='logq --pr'; \
             COMP_POINT=9; _logq logq --pr logq; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        words.trim(),
        "--priority",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
