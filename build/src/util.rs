//! Running commands, paths, small formatting helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pappus_qemu::Arch;

/// A command's stdout, or an error when it fails.
pub use pappus::output;
/// An error that ends `cargo xtask` with a message and a non-zero status, and the result that
/// carries it: the `pappus` command's (one library runs commands for both).
pub use pappus::{Failure, Result};

/// A progress message, on stderr (stdout is kept for the lines scripts read).
pub fn say(message: impl std::fmt::Display) {
    eprintln!("xtask: {message}");
}

pub fn root() -> PathBuf {
    pappus_tests::workspace_root()
}

/// The cargo that runs us (so nested builds use the same toolchain), in the workspace root.
pub fn cargo() -> Command {
    let mut command = pappus::cargo();
    command.current_dir(root());
    command
}

/// Runs a command with its stdout sent to our stderr (our stdout is for the lines scripts read);
/// an error when it cannot start or fails.
pub fn run(command: Command) -> Result {
    pappus::run(&crate::fnctl::ui(), command)
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
