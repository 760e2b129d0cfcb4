//! Native function images (engines `mpk`, `paging`, `native`): the recipe of
//! docs/writing-functions.md, "Native builds". The crate is built as a static library, then
//! linked by the toolchain's own rust-lld as a static PIE with `_start` (from
//! `pappus_sdk::entry!`) as its entry; for x86_64 from `x86_64-unknown-linux-gnu` used
//! freestanding, for aarch64 from `aarch64-unknown-none` ([`NativeArch`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc flags of a native function build: the SDK's native transport, position-independent
/// code.
pub const NATIVE_RUSTFLAGS: &str = "--cfg pappus_native -C relocation-model=pie";
/// The target of x86_64 native function builds ([`NativeArch::X86_64`]).
pub const NATIVE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The architecture a native image is built for: the node's (`/healthz` says `"arch"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeArch {
    X86_64,
    Aarch64,
}

impl NativeArch {
    /// The architecture `/healthz` names (`"x86_64"`, `"aarch64"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "x86_64" => Some(Self::X86_64),
            "aarch64" => Some(Self::Aarch64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// The Rust target the function is compiled for. Both have real floating point and SIMD:
    /// `x86_64-unknown-linux-gnu` (SSE2; `x86_64-unknown-none` is soft-float) used freestanding
    /// (`no_std`, no C library, no start files), and `aarch64-unknown-none` (FP/SIMD on).
    pub fn target(self) -> &'static str {
        match self {
            Self::X86_64 => NATIVE_TARGET,
            Self::Aarch64 => "aarch64-unknown-none",
        }
    }
}

/// Builds function package `package` (its Cargo name) of the workspace at `workspace` as an
/// x86_64 native image; see [`build_native_for`].
pub fn build_native(workspace: &Path, package: &str) -> Result<PathBuf, String> {
    build_native_for(workspace, package, NativeArch::X86_64)
}

/// Builds function package `package` of the workspace at `workspace` as a native image for
/// `arch` in `<workspace>/target/native/<target>`. Returns the ELF's path.
pub fn build_native_for(workspace: &Path, package: &str, arch: NativeArch) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = workspace.join("target/native");
    let target = arch.target();
    let out = Command::new(&cargo)
        .args(["rustc", "--release", "-p", package, "--target", target, "--crate-type", "staticlib"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env("RUSTFLAGS", NATIVE_RUSTFLAGS)
        .output()
        .map_err(|e| format!("cannot run cargo in {}: {e}", workspace.display()))?;
    if !out.status.success() {
        return Err(format!(
            "native {} build of {package} failed:\n{}",
            arch.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let lib_name = package.replace('-', "_");
    let release = target_dir.join(target).join("release");
    let lib = release.join(format!("lib{lib_name}.a"));
    let elf = release.join(format!("{lib_name}.elf"));
    let lld = rust_lld(workspace)?;
    let out = Command::new(&lld)
        .args(["-flavor", "gnu", "-static", "-pie", "--no-dynamic-linker", "-z", "text", "--gc-sections"])
        .args(["-z", "max-page-size=4096", "-e", "_start", "-o"])
        .arg(&elf)
        .arg(&lib)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", lld.display()))?;
    if !out.status.success() {
        return Err(format!("linking {package} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(elf)
}

/// The rust-lld of the toolchain that builds in `dir` (its rust-toolchain.toml, if any, picks it).
fn rust_lld(dir: &Path) -> Result<PathBuf, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let host = std::env::consts::ARCH.to_string() + "-unknown-linux-gnu";
    Ok(PathBuf::from(sysroot).join("lib/rustlib").join(host).join("bin/rust-lld"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_arch_names_its_native_target() {
        for (name, arch, target) in [
            ("x86_64", NativeArch::X86_64, "x86_64-unknown-linux-gnu"),
            ("aarch64", NativeArch::Aarch64, "aarch64-unknown-none"),
        ] {
            assert_eq!(NativeArch::from_name(name), Some(arch));
            assert_eq!(arch.name(), name);
            assert_eq!(arch.target(), target);
        }
        for other in ["", "arm64", "riscv64", "X86_64"] {
            assert_eq!(NativeArch::from_name(other), None, "{other:?}");
        }
    }
}
