//! `cargo xtask bench [SUITE]`: benchmarks, one `BENCH <suite>.<name> <value> <unit>` line per
//! figure on stdout, plus `target/bench/report.md` with its plots.
//!
//! Suite `boot`: boot each profile with `-icount shift=0` (TCG), without `test`, and read the
//! kernel's `PAPPUS READY boot_ticks=...` line. Under icount a guest instruction is one TSC tick
//! (x86) and one nanosecond of virtual time (aarch64, whose counter runs at `tick_hz`), so the
//! figure is an exact instruction count from the kernel's first instruction to ready (on
//! aarch64 `boot_ticks * 1e9 / tick_hz`: the generic counter is no instruction counter, it
//! counts virtual time, 16 instructions a tick at QEMU virt's 62.5 MHz, so the count is exact
//! to 16 instructions). `--arch aarch64` (or `x86_64`) measures that architecture's profiles only.
//!
//! Also the UEFI path (`bench/uefi.rs`): OVMF boots the loader from a disk image; figures from
//! the loader's entry to ready, and the loader's share. And the legacy-BIOS image
//! (`pappus-kernel.mb`) through QEMU's multiboot loader, on the default x86_64 profile.
//!
//! Suites `net`, `model`, `wasm`: per-request figures from a booted node (see `bench/io.rs`).
//! Suite `native`: the MPK and paging engines under icount: a no-op sandbox's phases, and the
//! 128×128 matmul against the function's own instructions and the wasm engine (`bench/io.rs`);
//! `--arch aarch64`: the same for aarch64's `paging` engine at EL0 (`native.aarch64.*`).
//! Suite `smp`: throughput and fan-out makespan on 1, 2 and 3 CPUs under MTTCG (`bench/smp.rs`).
//! Suite `e2e`: a 3×3 matmul end to end, native and wasm, in each wire format (`bench/e2e.rs`).
//! Suite `fleet`: invocations/s through HAProxy for fleets of 1, 2 and 3 nodes (`bench/fleet.rs`).
//! `all`: every suite, one after another.
//!
//! Every suite's figures are kept in `target/bench/<suite>.json`, and `target/bench/report.md`
//! is made again after each from all of them, each figure beside its target (`bench/report.rs`).

mod e2e;
mod fleet;
mod io;
mod report;
mod smp;
mod uefi;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use pappus_qemu::{Arch, DEFAULT_AARCH64, DEFAULT_X86_64, MICROVM_X86_64};
use pappus_tests::protocol::{READY_PREFIX, Ready};
use pappus_tests::{Boot, Marker};

use crate::args::{Args, Spec};
use crate::util::{Failure, Result, relative, say};
use crate::{prereq, util};

pub const SPEC: Spec = Spec { values: &["runs", "arch"], switches: &["no-build"], max_positionals: 1 };

pub const SUITES: &[&str] = &["boot", "net", "model", "wasm", "native", "e2e", "smp", "fleet"];
/// The report's sections: the suites, then the runs of one architecture (`--arch`).
const REPORT_ORDER: &[&str] = &[
    "boot",
    "net",
    "model",
    "wasm",
    "native",
    "e2e",
    "smp",
    "fleet",
    "boot-x86_64",
    "boot-aarch64",
    "native-x86_64",
    "native-aarch64",
];

/// One boot figure: which profile, what it is called in BENCH lines.
struct Case {
    profile: &'static str,
    arch: Arch,
    instructions: &'static str,
    wall: &'static str,
}

const BOOT_CASES: [Case; 3] = [
    Case {
        profile: DEFAULT_X86_64,
        arch: Arch::X86_64,
        instructions: "boot.instructions_to_ready",
        wall: "boot.qemu_wall_ms",
    },
    Case {
        profile: MICROVM_X86_64,
        arch: Arch::X86_64,
        instructions: "boot.microvm.instructions_to_ready",
        wall: "boot.microvm.qemu_wall_ms",
    },
    Case {
        profile: DEFAULT_AARCH64,
        arch: Arch::Aarch64,
        instructions: "boot.aarch64.instructions_to_ready",
        wall: "boot.aarch64.qemu_wall_ms",
    },
];

/// The aarch64 kernel on an Arm Morello CPU (capabilities on), under CTSRD-CHERI's emulator;
/// measured where the emulator is found, else said to be skipped.
const MORELLO_CASE: Case = Case {
    profile: pappus_qemu::MORELLO_AARCH64,
    arch: Arch::Aarch64,
    instructions: "boot.morello.instructions_to_ready",
    wall: "boot.morello.qemu_wall_ms",
};

/// The multiboot1 image of the x86_64 kernel (`pappus-kernel.mb`), booted by QEMU's own
/// multiboot loader on the default profile; its count includes the image check.
const MULTIBOOT_CASE: Case = Case {
    profile: DEFAULT_X86_64,
    arch: Arch::X86_64,
    instructions: "boot.multiboot.instructions_to_ready",
    wall: "boot.multiboot.qemu_wall_ms",
};

/// What the runs of one case measured.
struct Measured {
    name: &'static str,
    profile: &'static str,
    /// Instructions per run (all equal when the boot is deterministic).
    instructions: Vec<u64>,
    /// Host wall clock from spawn to the ready line, per run.
    wall_ms: Vec<f64>,
    ready: Ready,
}

pub fn main(args: &Args) -> Result {
    let suite = args.positionals.first().map(String::as_str).unwrap_or("boot");
    if suite != "all" && !SUITES.contains(&suite) {
        return Err(Failure(format!("unknown bench suite {suite:?}; suites: {}, all", SUITES.join(", "))));
    }
    let runs: usize = args.parsed("runs")?.unwrap_or(3);
    if runs == 0 {
        return Err(Failure("--runs must be at least 1".into()));
    }
    let suites: Vec<&str> = if suite == "all" { SUITES.to_vec() } else { vec![suite] };
    let no_build = args.switch("no-build");
    // `--arch`: `boot` and `native` measure that architecture only; the other suites are x86_64's.
    let arch = match args.value("arch") {
        None => None,
        Some("x86_64") => Some(Arch::X86_64),
        Some("aarch64") => Some(Arch::Aarch64),
        Some(other) => return Err(Failure(format!("--arch {other:?}: x86_64 or aarch64"))),
    };
    if arch == Some(Arch::Aarch64) && suites.iter().any(|s| !["boot", "native"].contains(s)) {
        return Err(Failure("--arch aarch64: only the boot and native suites measure aarch64".into()));
    }
    let mut kernel: Option<PathBuf> = None;
    let mut failed = Vec::new();
    for suite in suites {
        if suite != "boot" {
            say(format!("=== bench {suite}"));
        }
        let result = run_suite(suite, runs, no_build, arch, &mut kernel);
        let (figures, notes) = report::take();
        let problems = result.as_ref().err().map(|e| vec![e.0.clone()]).unwrap_or_default();
        // A run of one architecture's figures is kept beside the whole suite's, not over it.
        let name = match arch {
            Some(arch) => format!("{suite}-{arch}"),
            None => suite.to_string(),
        };
        let run = report::SuiteRun {
            suite: name.clone(),
            figures,
            problems,
            notes,
            unix_time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            commit: report::commit(),
        };
        let dir = pappus_tests::target_dir().join("bench");
        let path = report::save(&dir, &run, REPORT_ORDER)?;
        say(format!("report: {} (chart {name}.svg)", relative(&path)));
        if let Err(e) = result {
            say(format!("bench {suite}: {}", e.0));
            failed.push(suite);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(Failure(format!("suite(s) failed: {}", failed.join(", ")))) }
}

/// Runs one suite; the kernel (x86_64, or `arch`'s) is built (or found) once for all the
/// suites that need it.
fn run_suite(suite: &str, runs: usize, no_build: bool, arch: Option<Arch>, kernel: &mut Option<PathBuf>) -> Result {
    if suite == "boot" {
        return boot(runs, no_build, arch);
    }
    if suite == "fleet" {
        // `fleet up` builds the kernel and its network-boot images itself.
        return fleet::run();
    }
    let arch = arch.unwrap_or(Arch::X86_64);
    prereq::rust()?;
    prereq::qemu(&[arch])?;
    let kernel = match kernel {
        Some(k) => k.clone(),
        None => {
            let built = if no_build {
                pappus_tests::kernel_image(arch).map_err(Failure)?
            } else {
                util::build_kernels(&[arch])?.remove(0).1
            };
            kernel.insert(built).clone()
        }
    };
    match suite {
        "net" => io::net(&kernel),
        "model" => io::model(&kernel),
        "smp" => smp::smp(&kernel),
        "native" if arch == Arch::Aarch64 => {
            io::native_aarch64(&kernel)?;
            // Arm Morello, where its emulator is found: `cheri` against `paging` on the same node.
            match pappus_qemu::profile(pappus_qemu::MORELLO_AARCH64).and_then(|p| p.binary_path(&pappus_qemu::RealHost))
            {
                Ok(_) => io::native_morello(&kernel),
                Err(e) => {
                    say(format!("native.morello: SKIPPED ({e})"));
                    Ok(())
                }
            }
        }
        "native" => io::native(&kernel),
        "e2e" => e2e::e2e(&kernel),
        _ => io::wasm(&kernel),
    }
}

fn boot(runs: usize, no_build: bool, only: Option<Arch>) -> Result {
    let arches: Vec<Arch> = Arch::ALL.into_iter().filter(|a| only.is_none_or(|o| o == *a)).collect();
    prereq::rust()?;
    prereq::qemu(&arches)?;
    let mut problems = Vec::new();
    let mut kernels = Vec::new();
    for arch in arches {
        let kernel = if no_build {
            pappus_tests::kernel_image(arch).map_err(Failure)
        } else {
            util::build_kernels(&[arch]).map(|mut k| k.remove(0).1)
        };
        match kernel {
            Ok(path) => kernels.push((arch, path)),
            Err(e) => problems.push(format!("{arch} kernel: {}", e.0)),
        }
    }

    let mut measured = Vec::new();
    let mut cases: Vec<(&Case, PathBuf)> = Vec::new();
    for case in &BOOT_CASES {
        if let Some((_, kernel)) = kernels.iter().find(|(a, _)| *a == case.arch) {
            cases.push((case, kernel.clone()));
        }
    }
    if let Some((_, kernel)) = kernels.iter().find(|(a, _)| *a == Arch::Aarch64) {
        match pappus_qemu::profile(MORELLO_CASE.profile).and_then(|p| p.binary_path(&pappus_qemu::RealHost)) {
            Ok(_) => cases.push((&MORELLO_CASE, kernel.clone())),
            Err(e) => say(format!("{}: SKIPPED ({e})", MORELLO_CASE.instructions)),
        }
    }
    if let Some((_, kernel)) = kernels.iter().find(|(a, _)| *a == Arch::X86_64) {
        match multiboot_image(kernel) {
            Ok(image) => cases.push((&MULTIBOOT_CASE, image)),
            Err(e) => problems.push(format!("multiboot image: {}", e.0)),
        }
    }
    for (case, kernel) in &cases {
        match measure(case, kernel, runs) {
            Ok(m) => {
                let instructions = median_u64(&m.instructions);
                report::record(case.instructions, instructions, "instructions");
                report::record(case.wall, format!("{:.1}", median_f64(&m.wall_ms)), "ms");
                if m.instructions.iter().any(|&i| i != instructions) {
                    say(format!("{}: instruction counts differ across runs: {:?}", case.profile, m.instructions));
                }
                measured.push(m);
            }
            Err(e) => problems.push(format!("{}: {}", case.profile, e.0)),
        }
    }

    // The bare-metal path: OVMF, the UEFI loader from a disk image, the kernel (x86_64).
    if let Some((_, kernel)) = kernels.iter().find(|(a, _)| *a == Arch::X86_64) {
        match uefi::measure(kernel) {
            Ok((total, loader)) => {
                report::record("boot.uefi.instructions_loader_entry_to_ready", total, "instructions");
                report::record("boot.uefi.loader_instructions", loader, "instructions");
            }
            Err(e) => problems.push(format!("UEFI boot: {}", e.0)),
        }
    }

    report::note(&boot_notes(&measured, runs));

    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure(format!("some boot figures are missing:\n  {}", problems.join("\n  "))))
    }
}

/// `target/bench/pappus-kernel.mb`, made from the kernel ELF as `cargo xtask image --pxe` does.
fn multiboot_image(kernel: &PathBuf) -> Result<PathBuf> {
    let (image, _) = crate::multiboot::image(&std::fs::read(kernel)?).map_err(Failure)?;
    let dir = pappus_tests::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("pappus-kernel.mb");
    std::fs::write(&path, image)?;
    Ok(path)
}

fn measure(case: &Case, kernel: &PathBuf, runs: usize) -> Result<Measured> {
    let mut instructions = Vec::new();
    let mut wall_ms = Vec::new();
    let mut last = None;
    for run in 0..runs {
        let mut boot = Boot::profile(case.profile)
            .kernel(kernel)
            .icount(true)
            .log_name(&format!("bench-{}-{run}", case.profile))
            .time_limit(Duration::from_secs(300));
        if case.profile == MORELLO_CASE.profile {
            // The board's default NIC (which aarch64-virt's boots get, and wait for DHCP on)
            // needs a ROM the fork lacks: give it the profile's NIC, so both boots do the same.
            boot = boot.host_port(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
        }
        let mut qemu = boot.spawn()?;
        let line = qemu.wait_for(Marker::starts_with(READY_PREFIX), Duration::from_secs(300))?;
        let wall = qemu.elapsed().as_secs_f64() * 1e3;
        qemu.kill();
        let ready = Ready::parse(&line)
            .ok_or_else(|| Failure(format!("the ready line does not follow the protocol: {line:?}")))?;
        if case.arch == Arch::Aarch64 && ready.tick_hz <= 0.0 {
            return Err(Failure(format!("aarch64 ready line has no tick_hz: {line:?}")));
        }
        instructions.push(ready.icount_instructions(case.arch));
        wall_ms.push(wall);
        last = Some(ready);
    }
    let ready = last.ok_or_else(|| Failure("no runs".into()))?;
    Ok(Measured { name: case.instructions, profile: case.profile, instructions, wall_ms, ready })
}

fn median_u64(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The boot suite's part of the report: how it was measured, and each profile's figures with
/// its memory at ready.
fn boot_notes(measured: &[Measured], runs: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Each profile booted {runs} time(s) under `-icount shift=0` (TCG), without `test`, until the \
         kernel's `PAPPUS READY` line. *Instructions* are guest instructions from the kernel's first \
         instruction to that line: the TSC delta on x86_64 (one tick per instruction under icount), \
         `boot_ticks * 1e9 / tick_hz` on aarch64 (one instruction per virtual nanosecond). They do \
         not include the firmware before the kernel. *Wall* is the host's clock from starting QEMU \
         to reading the line (firmware and QEMU start-up included), median of the runs.\n"
    );
    let _ = writeln!(
        md,
        "| figure | profile | instructions | wall (ms) | deterministic | memory free / total | heap used / total |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---|---|---|");
    for m in measured {
        let instructions = median_u64(&m.instructions);
        let _ = writeln!(
            md,
            "| `{}` | `{}` | {} | {:.1} | {} | {} / {} | {} / {} |",
            m.name,
            m.profile,
            thousands(instructions),
            median_f64(&m.wall_ms),
            if m.instructions.iter().all(|&i| i == instructions) { "yes" } else { "no" },
            util::human_bytes(m.ready.mem_free),
            util::human_bytes(m.ready.mem_total),
            util::human_bytes(m.ready.heap_used),
            util::human_bytes(m.ready.heap_total),
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &'static str, profile: &'static str, instructions: u64) -> Measured {
        let ready =
            Ready::parse("PAPPUS READY boot_ticks=1 tick_hz=1 mem_total=2048 mem_free=1024 heap_total=10 heap_used=1")
                .unwrap();
        Measured { name, profile, instructions: vec![instructions; 3], wall_ms: vec![50.0, 40.0, 60.0], ready }
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(61187826), "61,187,826");
        assert_eq!(median_u64(&[3, 1, 2]), 2);
        assert_eq!(median_f64(&[50.0, 40.0, 60.0]), 50.0);
    }

    #[test]
    fn boot_notes_table() {
        let measured = [
            sample("boot.instructions_to_ready", "x86_64-q35", 2_000_000),
            sample("boot.microvm", "x86_64-microvm", 1_000_000),
        ];
        let md = boot_notes(&measured, 3);
        assert!(md.contains("| `boot.instructions_to_ready` | `x86_64-q35` | 2,000,000 | 50.0 | yes |"), "{md}");
        assert!(md.contains("booted 3 time(s)"));
    }
}
