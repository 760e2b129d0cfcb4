//! Running commands, paths, small formatting helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Instant;

use pappus_qemu::Arch;

/// An error that ends `cargo xtask` with a message and a non-zero status.
#[derive(Debug)]
pub struct Failure(pub String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(error: T) -> Self {
        Failure(error.to_string())
    }
}

pub type Result<T = ()> = std::result::Result<T, Failure>;

/// A progress message, on stderr (stdout is kept for the lines scripts read).
pub fn say(message: impl std::fmt::Display) {
    eprintln!("xtask: {message}");
}

pub fn root() -> PathBuf {
    pappus_tests::workspace_root()
}

/// The cargo that runs us (so nested builds use the same toolchain).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root());
    command
}

/// How a command reads in a log line.
pub fn display(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|w| pappus_qemu::shell_quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command with its stdout sent to our stderr (our stdout is for the lines scripts read);
/// an error when it cannot start or fails.
pub fn run(mut command: Command) -> Result {
    use std::os::fd::AsFd;
    let line = display(&command);
    say(format!("$ {line}"));
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

/// Whether we run as root (the effective uid, from /proc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// Builds the kernel for each of `arches` (release) and returns the images.
pub fn build_kernels(arches: &[Arch]) -> Result<Vec<(Arch, PathBuf)>> {
    let mut images = Vec::new();
    for &arch in arches {
        let started = Instant::now();
        let mut command = cargo();
        command.args(["build", "-p", "pappus-kernel", "--release", "--target", arch.kernel_target()]);
        run(command)?;
        let image = pappus_tests::default_kernel_image(arch);
        if !image.is_file() {
            return Err(Failure(format!("the build succeeded but left no kernel at {}", image.display())));
        }
        say(format!("{arch} kernel: {} ({:.1} s)", relative(&image), started.elapsed().as_secs_f64()));
        images.push((arch, image));
    }
    Ok(images)
}

/// `path` relative to the workspace root when it is inside it.
pub fn relative(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

/// `--arch` as a list: one architecture, or both for `all` / when not given.
pub fn arches(value: Option<&str>) -> Result<Vec<Arch>> {
    match value {
        None | Some("all") => Ok(Arch::ALL.to_vec()),
        Some(one) => Ok(vec![Arch::parse(one)?]),
    }
}

/// Bytes in binary units, one decimal: `222.8MiB` (the `pappus` command's, shared).
pub use pappus::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_lists() {
        assert_eq!(arches(None).unwrap(), Arch::ALL);
        assert_eq!(arches(Some("aarch64")).unwrap(), [Arch::Aarch64]);
        assert!(arches(Some("sparc")).is_err());
    }
}
