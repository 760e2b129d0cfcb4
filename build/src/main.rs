//! `cargo xtask`: the host tool that builds Pappus, boots it in QEMU, tests and benchmarks it.
//!
//! Progress goes to stderr; stdout carries only what scripts read (the `pappus ready: ` line,
//! `BENCH` lines, the test summary).

#![forbid(unsafe_code)]

mod args;
mod bench;
mod blobserver;
mod fleet;
mod fnctl;
mod fuzz;
mod image;
mod keepalive;
mod multiboot;
mod openapi;
mod preload;
mod prereq;
mod profile;
mod run;
mod soak;
mod util;

use std::process::ExitCode;
use std::time::Instant;

use pappus_qemu::Arch;

use crate::args::{Args, Spec};
use crate::util::{Failure, Result, cargo, say};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build   [--arch x86_64|aarch64|all]
          build the kernel (release) for each architecture
  run     [--port N] [--smp N] [--cpu MODEL] [--accel tcg|kvm|auto] [--arch x86_64|aarch64]
          [--token-file F] [--profile NAME] [--append CMDLINE] [--no-build] [--no-preload]
          build and boot in QEMU, deploy the example functions and compositions of
          functions/; the serial log streams to stderr, and one line `pappus ready: ...`
          goes to stdout when the kernel is ready. Ctrl-C ends it.
  fn      deploy <crate-dir|file.wasm> [--name N] [--inputs A,B] [--outputs C] [--memory 16MiB]
                 [--timeout-ms MS] [--engine E]
          compose <file.pappus> [--name N]
          invoke <name> [--set SET[:KEY]=@file|@-|text]... [--out DIR] [--binary]
          invoke <name> --raw @file|@-|text
          list | get <name> | rm <name>
          the /v1 API of a running kernel, through the `pappus` command's library
          (build/pappus; `cargo install --path build/pappus` installs the command itself):
          --url U --token T, else $PAPPUS_URL and $PAPPUS_TOKEN, else ~/.config/pappus/config.toml,
          else http://127.0.0.1:8080 and the token in target/pappus-dev.conf;
          deploy, compose, rm with --fleet ETCD_URL [--tenant NAME]: a fleet's desired state
          in etcd (and the image on its blob server) instead, for every node (docs/fleet.md)
  fleet   up [--nodes N] [--port P] [--prometheus-port P2] | status | kill K | boot K |
          etcd stop|start | down
          a fleet on this machine (root): a network namespace with a bridge and a TAP per
          node, dnsmasq (DHCP + TFTP), etcd, a blob server, HAProxy on 127.0.0.1:P (default
          8090), Prometheus on 127.0.0.1:P2 (default P+1), N QEMU nodes network-booting
          through SeaBIOS and iPXE; prints `pappus fleet ready: URL nodes=N token=...`;
          state in target/fleet/ (docs/fleet.md)
  test    [--arch x86_64|aarch64|all] [--no-lint]
          lint (fmt --check, clippy), host unit tests, kernel builds, QEMU integration tests
  image   [--target x86_64|aarch64|all] [--pxe DIR] [--disk FILE] [--config FILE]
          kernel ELFs for QEMU in target/images/; --pxe: a TFTP root (UEFI loader as
          bootx64.efi, pappus-kernel, pappus.conf, boot.ipxe); --disk: a GPT disk image with
          an EFI system partition; --config: the boot configuration (else a `dev` tenant)
  bench   [boot|net|model|wasm|native|e2e|smp|fleet|all] [--runs N] [--no-build]
          benchmarks: `BENCH <suite>.<name> <value> <unit>` lines; target/bench/report.md shows
          every suite run so far beside issue 14's targets, with a chart per suite
  profile echo64|matmul3-native|matmul3-wasm|boot [--interval N] [--requests N] [--allocations]
          [--no-build]
          boot under -icount with the kernel's sampling profiler on (a sample every N guest
          instructions, default 10007; boot 1009), drive the scenario, symbolize the samples:
          target/bench/profile-<scenario>.folded and .svg (flame graph), top 20 functions;
          --allocations: a sample per heap allocation instead (profile-<scenario>-alloc.*)
  soak    [--invocations N] [--workers N] [--reuse-images] [--only KIND,...] [--no-build]
          a long mixed load (two tenants, wasm and mpk, sizes to 1 MiB, bad input, unknown
          names, traps, timeouts, register/delete cycles) over keep-alive connections; every
          answer checked; heap, frames, sockets, MPK keys compared with the baseline at the end
  fuzz    [--seconds N] [--target NAME]
          every cargo-fuzz target (HTTP requests and responses, DSL, JSON and binary sets,
          boot configuration, function query, ELF) for N seconds each (default 30); needs
          `cargo install cargo-fuzz`, runs on the stable toolchain (no sanitizer)
  openapi [--url URL --token TOKEN] [--examples N]
          the OpenAPI contract alone: the `openapi` QEMU suite (docs/openapi.json served and
          valid, schemathesis finds no 5xx and no answer outside it); with --url, schemathesis
          against a running node with a tenant's token (it registers and deletes: a scratch node)
  lint    [--arch x86_64|aarch64|all]
          rustfmt --check and clippy -D warnings, host crates and the kernel per target

QEMU profiles (qemu/profiles.toml): x86_64-q35 (default), x86_64-microvm, aarch64-virt,
  aarch64-morello (Arm Morello: CTSRD-CHERI's qemu-system-morello from $PAPPUS_QEMU_MORELLO,
  else PATH, else ../shared/tools/morello/bin/)";

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = words.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") || rest.iter().any(|w| w == "--help" || w == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (spec, action): (&Spec, fn(&Args) -> Result) = match command.as_str() {
        "build" => (&BUILD_SPEC, build),
        "run" => (&run::SPEC, run::main),
        "test" => (&TEST_SPEC, test),
        "image" => (&image::SPEC, image::main),
        "bench" => (&bench::SPEC, bench::main),
        "soak" => (&soak::SPEC, soak::main),
        "profile" => (&profile::SPEC, profile::main),
        "fuzz" => (&fuzz::SPEC, fuzz::main),
        "openapi" => (&openapi::SPEC, openapi::main),
        "lint" => (&LINT_SPEC, |args| lint(&util::arches(args.value("arch"))?)),
        "fleet" => (&fleet::SPEC, fleet::main),
        // Started by `fleet up` inside the fleet's namespace, not by users.
        "fleet-blob-server" => (&blobserver::SPEC, blobserver::main),
        "fn" => match fnctl::spec(rest.first().map(String::as_str)) {
            Ok(spec) => (spec, fnctl::main),
            Err(e) => {
                eprintln!("xtask fn: {e}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        other => {
            eprintln!("xtask: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let args = match Args::parse(spec, rest) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("xtask {command}: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match action(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("xtask {command}: error: {message}");
            ExitCode::FAILURE
        }
    }
}

const BUILD_SPEC: Spec = Spec { values: &["arch"], switches: &[], max_positionals: 0 };
const TEST_SPEC: Spec = Spec { values: &["arch"], switches: &["no-lint"], max_positionals: 0 };
const LINT_SPEC: Spec = Spec { values: &["arch"], switches: &[], max_positionals: 0 };

fn build(args: &Args) -> Result {
    prereq::rust()?;
    util::build_kernels(&util::arches(args.value("arch"))?)?;
    Ok(())
}

/// The commands `lint` runs: rustfmt over the workspace, clippy over the host crates (the
/// workspace's default members) and over the kernel for each bare-metal target.
fn lint_steps(arches: &[Arch]) -> Vec<(String, std::process::Command)> {
    let mut steps = Vec::new();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    steps.push(("rustfmt --check".to_string(), fmt));
    let mut host = cargo();
    host.args(["clippy", "--all-targets", "--", "-D", "warnings"]);
    steps.push(("clippy (host crates)".to_string(), host));
    for &arch in arches {
        let mut kernel = cargo();
        kernel.args(["clippy", "-p", "pappus-kernel", "--target", arch.kernel_target(), "--", "-D", "warnings"]);
        steps.push((format!("clippy (kernel, {arch})"), kernel));
    }
    // The SDK's native transport exists only under `--cfg pappus_native`: lint it as functions
    // build it, for each architecture's native target (its own target folder, so the flags do
    // not rebuild the host crates).
    for &arch in arches {
        let target = pappus_tests::functions::native_arch(arch).target();
        let mut sdk = cargo();
        sdk.args(["clippy", "-p", "pappus-sdk", "--target", target, "--", "-D", "warnings"])
            .env("RUSTFLAGS", pappus_tests::functions::NATIVE_RUSTFLAGS)
            .env("CARGO_TARGET_DIR", util::root().join("target/sdk-native"));
        steps.push((format!("clippy (SDK, native transport, {arch})"), sdk));
    }
    let mut loader = cargo();
    loader.args(["clippy", "-p", "pappus-loader", "--target", image::LOADER_TARGET, "--", "-D", "warnings"]);
    steps.push(("clippy (UEFI loader)".to_string(), loader));
    steps
}

fn lint(arches: &[Arch]) -> Result {
    prereq::rust()?;
    let mut failed = Vec::new();
    for (name, command) in lint_steps(arches) {
        if let Err(e) = util::run(command) {
            say(format!("{name}: {}", e.0));
            failed.push(name);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(Failure(format!("lint failed: {}", failed.join(", ")))) }
}

/// One named step of `test` and how it went.
struct Suite {
    name: String,
    result: Result,
    seconds: f64,
    /// Not run, and why (reported as SKIPPED, never counted as passed).
    skipped: Option<String>,
}

/// Set (by `.ci/run`) to make a missing Morello emulator a failure instead of a skip.
const REQUIRE_MORELLO_ENV: &str = "PAPPUS_REQUIRE_MORELLO";

/// The QEMU suites that boot the `aarch64-morello` profile (tests/tests/<name>.rs).
const MORELLO_SUITES: &[&str] = &["morello", "cheri"];

/// The QEMU suites that hold aarch64 variants of shared tests, run with the filter `aarch64`
/// (tests/tests/<name>.rs; `cli` is build/pappus/tests/cli.rs).
const AARCH64_VARIANT_SUITES: &[&str] = &["functions", "dispatch", "native", "control", "cli"];

/// Invocations of the soak inside `cargo xtask test`.
const SHORT_SOAK: u64 = 2_000;

fn suite(name: &str, f: impl FnOnce() -> Result) -> Suite {
    say(format!("=== {name}"));
    let started = Instant::now();
    let result = f();
    Suite { name: name.to_string(), result, seconds: started.elapsed().as_secs_f64(), skipped: None }
}

/// `cargo xtask test`: lint (unless `--no-lint`: fmt and clippy are cheap next to the QEMU
/// runs, and CI is where they must hold), host unit tests, kernel builds, QEMU integration tests.
/// Every suite runs even when an earlier one failed, except that the QEMU tests need kernels.
/// A short soak (x86_64) ends it, timed like the other suites.
fn test(args: &Args) -> Result {
    let arches = util::arches(args.value("arch"))?;
    prereq::rust()?;
    prereq::suites(&arches)?;
    if arches.contains(&Arch::X86_64) {
        prereq::python_tools()?;
    }

    let mut suites = Vec::new();
    if !args.switch("no-lint") {
        suites.push(suite("lint", || lint(&arches)));
    }
    suites.push(suite("host unit tests", || {
        let mut command = cargo();
        command.args(["test", "--no-fail-fast"]).env_remove(pappus_tests::QEMU_TESTS_ENV);
        util::run(command)
    }));
    let mut kernels = Vec::new();
    suites.push(suite("kernel build", || {
        kernels = util::build_kernels(&arches)?;
        Ok(())
    }));
    if kernels.len() == arches.len() {
        suites.push(suite("qemu integration tests", || {
            let mut command = cargo();
            command.args(["test", "--no-fail-fast", "-p", "pappus-tests", "--test", "harness"]);
            for arch in &arches {
                command.args(["--test", arch.as_str()]);
                if *arch == Arch::X86_64 {
                    // The front door over a real NIC (q35 with virtio-net), the /v1 control
                    // plane behind it, the dispatcher and the http function, the native engines,
                    // the bare-metal boot paths (UEFI, BIOS with iPXE), the OpenAPI contract
                    // (schemathesis against a live node).
                    for suite in [
                        "network",
                        "control",
                        "functions",
                        "dispatch",
                        "fetch",
                        "native",
                        "uefi",
                        "bios",
                        "profile",
                        "openapi",
                    ] {
                        command.args(["--test", suite]);
                    }
                    // The `pappus` command against a live node: its suite lives in its own
                    // package (build/pappus/tests/cli.rs), where cargo hands it the binary.
                    command.args(["-p", "pappus", "--test", "cli"]);
                }
            }
            // One QEMU at a time: the kernel's timer self-tests measure wall-clock deadlines,
            // and parallel TCG guests on a small CI machine would starve each other. The shared
            // suites' aarch64 variants (every test whose name says `aarch64`) run in their own
            // suite below, timed apart.
            command.args(["--", "--test-threads=1", "--skip", "aarch64"]);
            command.env(pappus_tests::QEMU_TESTS_ENV, "1");
            for (arch, kernel) in &kernels {
                command.env(pappus_tests::kernel_env_var(*arch), kernel);
            }
            util::run(command)
        }));
        if let Some((_, kernel)) = kernels.iter().find(|(arch, _)| *arch == Arch::Aarch64) {
            // Arm Morello under CTSRD-CHERI's emulator, which Debian does not ship: run where
            // it is found, else SKIPPED by name (a failure when $PAPPUS_REQUIRE_MORELLO=1).
            let name = format!("qemu morello suites ({})", MORELLO_SUITES.join(", "));
            match pappus_qemu::profile(pappus_qemu::MORELLO_AARCH64).and_then(|p| p.binary_path(&pappus_qemu::RealHost))
            {
                Ok(binary) => suites.push(suite(&name, || {
                    say(format!("Morello emulator: {binary}"));
                    let mut command = cargo();
                    command.args(["test", "--no-fail-fast", "-p", "pappus-tests"]);
                    for s in MORELLO_SUITES {
                        command.args(["--test", s]);
                    }
                    command.args(["--", "--test-threads=1"]);
                    command
                        .env(pappus_tests::QEMU_TESTS_ENV, "1")
                        .env(pappus_tests::kernel_env_var(Arch::Aarch64), kernel);
                    util::run(command)
                })),
                Err(e) if std::env::var(REQUIRE_MORELLO_ENV).is_ok_and(|v| v == "1") => suites.push(Suite {
                    name,
                    result: Err(Failure(format!("{e} ({REQUIRE_MORELLO_ENV}=1)"))),
                    seconds: 0.0,
                    skipped: None,
                }),
                Err(e) => suites.push(Suite { name, result: Ok(()), seconds: 0.0, skipped: Some(e.0) }),
            }
        }
        if kernels.iter().any(|(arch, _)| *arch == Arch::Aarch64) {
            // The functions, dispatch, native (hostile), control and CLI suites hold both
            // architectures' tests (shared code, the architecture a parameter): their aarch64
            // variants, each named for it (`aarch64::<test>` or `…aarch64…`), as one suite.
            let name = format!("qemu aarch64 variants ({})", AARCH64_VARIANT_SUITES.join(", "));
            suites.push(suite(&name, || {
                let mut command = cargo();
                command.args(["test", "--no-fail-fast", "-p", "pappus-tests"]);
                for s in AARCH64_VARIANT_SUITES.iter().filter(|s| **s != "cli") {
                    command.args(["--test", s]);
                }
                command.args(["-p", "pappus", "--test", "cli"]);
                command.args(["--", "--test-threads=1", "aarch64"]);
                command.env(pappus_tests::QEMU_TESTS_ENV, "1");
                for (arch, kernel) in &kernels {
                    command.env(pappus_tests::kernel_env_var(*arch), kernel);
                }
                util::run(command)
            }));
        }
        if arches.contains(&Arch::X86_64) {
            // A fleet of three network-booted nodes with dnsmasq, etcd, HAProxy and Prometheus
            // (tests/tests/fleet.rs; needs root). Its own suite, so its time shows apart (81 to
            // 147 s on a 2-core machine, depending on its other load; the nodes' boot under TCG
            // is most of it).
            suites.push(suite("fleet (3 nodes)", || {
                let mut command = cargo();
                command.args(["test", "-p", "pappus-tests", "--test", "fleet", "--", "--test-threads=1"]);
                command.env(pappus_tests::QEMU_TESTS_ENV, "1");
                util::run(command)
            }));
        }
        if let Some((_, kernel)) = kernels.iter().find(|(arch, _)| *arch == Arch::X86_64) {
            // A short soak: every answer checked, and memory, sockets and keys back at their
            // baseline afterwards (`cargo xtask soak` runs longer ones).
            suites.push(suite(&format!("soak ({SHORT_SOAK} invocations)"), || soak::run(kernel, SHORT_SOAK, 4, false)));
        }
    } else {
        suites.push(Suite {
            name: "qemu integration tests".into(),
            result: Err(Failure("not run: a kernel did not build".into())),
            seconds: 0.0,
            skipped: None,
        });
    }

    eprintln!();
    for s in &suites {
        match (&s.skipped, &s.result) {
            (Some(why), _) => say(format!("{:<24} SKIPPED: {why}", s.name)),
            (None, Ok(())) => say(format!("{:<24} ok      ({:.1} s)", s.name, s.seconds)),
            (None, Err(e)) => say(format!("{:<24} FAILED  ({:.1} s): {}", s.name, s.seconds, e.0)),
        }
    }
    println!("{}", summary(&suites));
    let failed = suites.iter().filter(|s| s.result.is_err()).count();
    if failed == 0 { Ok(()) } else { Err(Failure(format!("{failed} suite(s) failed"))) }
}

/// The summary line: passed, failed, and the skipped suites by name (never counted as passed).
fn summary(suites: &[Suite]) -> String {
    let skipped: Vec<&str> = suites.iter().filter(|s| s.skipped.is_some()).map(|s| s.name.as_str()).collect();
    let failed = suites.iter().filter(|s| s.skipped.is_none() && s.result.is_err()).count();
    let passed = suites.len() - skipped.len() - failed;
    let mut line = format!("{passed} passed, {failed} failed");
    if !skipped.is_empty() {
        line += &format!(", {} SKIPPED: {}", skipped.len(), skipped.join("; "));
    }
    line
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    #[test]
    fn skipped_suites_are_named_and_not_passed() {
        let suite = |name: &str, result: Result, skipped: Option<&str>| Suite {
            name: name.into(),
            result,
            seconds: 0.0,
            skipped: skipped.map(String::from),
        };
        let suites = [
            suite("lint", Ok(()), None),
            suite("host unit tests", Err(Failure("x".into())), None),
            suite("qemu morello suites (morello)", Ok(()), Some("no QEMU for profile aarch64-morello")),
        ];
        assert_eq!(summary(&suites), "1 passed, 1 failed, 1 SKIPPED: qemu morello suites (morello)");
        assert_eq!(summary(&suites[..1]), "1 passed, 0 failed");
    }
}
