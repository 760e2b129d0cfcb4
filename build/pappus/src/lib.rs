//! The client side of Pappus for function authors: the `/v1` API as calls ([`api`]), function
//! crates and their registration metadata ([`fnmeta`]), their wasm and native builds
//! ([`native`]), sets on the command line ([`sets`]), where to connect ([`config`]), the
//! commands themselves ([`commands`]: deploy, compose, invoke, list, get, rm, health, metrics)
//! and new function crates ([`new`]).
//!
//! Two front ends share it: the `pappus` binary (clap, `src/main.rs`) and, inside the
//! repository, `cargo xtask fn` (build/src/fnctl.rs). Nothing here needs the Pappus source tree
//! at run time.

#![forbid(unsafe_code)]

pub mod api;
pub mod commands;
pub mod config;
pub mod fleet;
pub mod fnmeta;
pub mod http;
pub mod native;
pub mod new;
pub mod sets;

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, ExitStatus};

/// An error that ends a command with a message and a non-zero status.
#[derive(Debug)]
pub struct Failure(pub String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(error: T) -> Self {
        Failure(error.to_string())
    }
}

pub type Result<T = ()> = std::result::Result<T, Failure>;

/// How a front end wants results and progress shown.
#[derive(Clone, Debug)]
pub struct Ui {
    /// The prefix of progress lines on stderr (`pappus`, `xtask`).
    pub tool: String,
    /// How the user runs the commands, for messages that name one (`pappus`, `cargo xtask fn`).
    pub command: String,
    /// Results as JSON, one document per line, instead of text.
    pub json: bool,
    /// Progress bars on stderr (only where stderr is a terminal).
    pub progress: bool,
}

impl Ui {
    /// Text results; progress bars when stderr is a terminal.
    pub fn new(tool: &str, command: &str) -> Ui {
        Ui { tool: tool.into(), command: command.into(), json: false, progress: std::io::stderr().is_terminal() }
    }

    /// A progress message on stderr (stdout is kept for results).
    pub fn say(&self, message: impl std::fmt::Display) {
        eprintln!("{}: {message}", self.tool);
    }

    /// One result: its text lines, or its JSON document, on stdout.
    pub fn emit(&self, text: impl std::fmt::Display, json: &serde_json::Value) {
        if self.json {
            println!("{json}");
        } else {
            let text = text.to_string();
            if text.ends_with('\n') {
                print!("{text}");
            } else {
                println!("{text}");
            }
        }
    }
}

/// The cargo to build functions with: `$CARGO` when we run under cargo (the same toolchain),
/// else the `cargo` on the path.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
}

/// A word as a POSIX shell reads it back: as it is when it is plain, else single-quoted.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// How a command reads in a log line.
pub fn display(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|w| shell_quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command with its stdout sent to our stderr (our stdout is for results); an error
/// when it cannot start or fails.
pub fn run(ui: &Ui, mut command: Command) -> Result {
    use std::os::fd::AsFd;
    let line = display(&command);
    ui.say(format!("$ {line}"));
    if let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() {
        command.stdout(stderr);
    }
    let status = command.status().map_err(|e| format!("cannot run `{line}`: {e}"))?;
    check(status, &line)
}

/// Runs a command and returns its stdout; an error when it fails.
pub fn output(mut command: Command) -> Result<String> {
    let line = display(&command);
    let out = command.output().map_err(|e| format!("cannot run `{line}`: {e}"))?;
    check(out.status, &line)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(status: ExitStatus, line: &str) -> Result {
    if status.success() { Ok(()) } else { Err(Failure(format!("`{line}` failed ({status})"))) }
}

/// `path` relative to the current folder when it is inside it.
pub fn relative(path: &Path) -> String {
    let here = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&here).unwrap_or(path).display().to_string()
}

/// Bytes in binary units, one decimal: `222.8MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(266973184), "254.6MiB");
        assert_eq!(human_bytes(3 << 30), "3.0GiB");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("cargo"), "cargo");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
