//! Native function images (engines `mpk`, `paging`, `native`): the recipe of
//! docs/writing-functions.md, "Native builds". The crate is built as a static library for
//! `x86_64-unknown-linux-gnu` used freestanding, then linked by the toolchain's own rust-lld
//! as a static PIE with `_start` (from `pappus_sdk::entry!`) as its entry.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc flags of a native function build: the SDK's native transport, position-independent
/// code. The target is `x86_64-unknown-linux-gnu` used freestanding (`no_std`, no C library, no
/// start files): it has real SSE2 floating point, which `x86_64-unknown-none` (soft-float) does
/// not.
pub const NATIVE_RUSTFLAGS: &str = "--cfg pappus_native -C relocation-model=pie";
/// The target of native function builds.
pub const NATIVE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds function package `package` (its Cargo name) of the workspace at `workspace` as a
/// native image in `<workspace>/target/native`. Returns the ELF's path.
pub fn build_native(workspace: &Path, package: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = workspace.join("target/native");
    let out = Command::new(&cargo)
        .args(["rustc", "--release", "-p", package, "--target", NATIVE_TARGET, "--crate-type", "staticlib"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env("RUSTFLAGS", NATIVE_RUSTFLAGS)
        .output()
        .map_err(|e| format!("cannot run cargo in {}: {e}", workspace.display()))?;
    if !out.status.success() {
        return Err(format!("native build of {package} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let lib_name = package.replace('-', "_");
    let release = target_dir.join(NATIVE_TARGET).join("release");
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
