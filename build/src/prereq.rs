//! What the build and the QEMU runs need: the toolchain's targets and components, and QEMU.
//!
//! Rust: the targets and components `rust-toolchain.toml` lists are added with rustup when
//! missing (our machines run rustup with auto-install off). QEMU: installed from the
//! distribution when missing and we are root; otherwise the exact command is printed.

use std::process::Command;

use pappus_qemu::Arch;
use serde::Deserialize;

use crate::util::{Failure, Result, is_root, output, root, run, say};

#[derive(Debug, Deserialize)]
struct ToolchainFile {
    toolchain: Toolchain,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Toolchain {
    channel: String,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
}

fn parse_toolchain(text: &str) -> Result<Toolchain> {
    let file: ToolchainFile = toml::from_str(text).map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    Ok(file.toolchain)
}

fn rustup() -> Command {
    let mut command = Command::new("rustup");
    command.current_dir(root());
    command
}

/// Whether `component` is in rustup's list of installed components (which names them with the
/// host triple appended: `clippy-x86_64-unknown-linux-gnu`).
fn component_installed(installed: &str, component: &str) -> bool {
    const ARCHES: [&str; 8] = ["x86_64", "aarch64", "i686", "arm", "riscv", "powerpc", "s390x", "loongarch"];
    let wanted = component.strip_suffix("-preview").unwrap_or(component);
    installed.lines().any(|line| {
        let line = line.trim();
        let line = line.strip_suffix(" (installed)").unwrap_or(line).replace("-preview", "");
        line == wanted
            || line
                .strip_prefix(wanted)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|triple| ARCHES.iter().any(|a| triple.starts_with(a)))
    })
}

/// Adds the targets and components `rust-toolchain.toml` lists that rustup does not have.
pub fn rust() -> Result {
    let text = std::fs::read_to_string(root().join("rust-toolchain.toml"))
        .map_err(|e| format!("cannot read rust-toolchain.toml: {e}"))?;
    let toolchain = parse_toolchain(&text)?;
    if Command::new("rustup").arg("--version").output().is_err() {
        say(format!(
            "rustup not found; make sure toolchain {} has targets {:?} and components {:?}",
            toolchain.channel, toolchain.targets, toolchain.components
        ));
        return Ok(());
    }
    let mut list = rustup();
    list.args(["target", "list", "--installed"]);
    let installed = output(list)?;
    let missing: Vec<&String> =
        toolchain.targets.iter().filter(|t| !installed.lines().any(|l| l.trim() == t.as_str())).collect();
    if !missing.is_empty() {
        let mut add = rustup();
        add.args(["target", "add"]).args(&missing);
        run(add)?;
    }
    let mut list = rustup();
    list.args(["component", "list", "--installed"]);
    let installed = output(list)?;
    let missing: Vec<&String> = toolchain.components.iter().filter(|c| !component_installed(&installed, c)).collect();
    if !missing.is_empty() {
        let mut add = rustup();
        add.args(["component", "add"]).args(&missing);
        run(add)?;
    }
    Ok(())
}

/// The Debian package that has the QEMU for `arch`.
fn qemu_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86",
        Arch::Aarch64 => "qemu-system-arm",
    }
}

/// Makes sure the QEMU binaries for `arches` are there: installs them when root, otherwise
/// says what to run and fails.
pub fn qemu(arches: &[Arch]) -> Result {
    let missing: Vec<Arch> = arches
        .iter()
        .copied()
        .filter(|&arch| {
            let profile = pappus_qemu::profile(arch.default_profile()).expect("shipped profile");
            !pappus_tests::on_path(&profile.binary)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Both packages at once: cheaper than a second apt run later.
    let packages = [qemu_package(Arch::X86_64), qemu_package(Arch::Aarch64)];
    let install = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if !is_root() {
        return Err(Failure(format!(
            "QEMU for {} is missing; install it with:\n    sudo apt-get update && sudo {install}",
            missing.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" and ")
        )));
    }
    say(format!("QEMU is missing; installing {}", packages.join(" ")));
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "--no-install-recommends"]).args(packages);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    run(install)?;
    for arch in missing {
        let profile = pappus_qemu::profile(arch.default_profile()).expect("shipped profile");
        if !pappus_tests::on_path(&profile.binary) {
            return Err(Failure(format!("{} is still missing after the install", profile.binary)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_toolchain_file() {
        let text = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
        let toolchain = parse_toolchain(&text).unwrap();
        assert!(toolchain.targets.iter().any(|t| t == "x86_64-unknown-none"));
        assert!(toolchain.targets.iter().any(|t| t == "aarch64-unknown-none"));
        assert!(toolchain.components.iter().any(|c| c == "clippy"));
    }

    #[test]
    fn component_names() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                         llvm-tools-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-none\n";
        assert!(component_installed(installed, "clippy"));
        assert!(component_installed(installed, "llvm-tools"));
        assert!(component_installed(installed, "llvm-tools-preview"));
        assert!(!component_installed(installed, "rustfmt"));
        assert!(!component_installed(installed, "rust-src"));
        assert!(component_installed("rustfmt (installed)\n", "rustfmt"));
    }
}
