//! x86_64 boots under the q35 and microvm profiles: self-tests, the ready line, failure paths.
//!
//! These need a built kernel and QEMU; they run under `cargo xtask test` (which sets
//! `PAPPUS_QEMU_TESTS=1`) and print a skip line under a plain `cargo test`.

use std::time::Duration;

use pappus_tests::protocol::{Banner, LogLine, Ready, SelftestDone};
use pappus_tests::{Arch, Boot, Marker, Qemu, SelftestReport, kernel_image, qemu_tests_enabled};

/// Generous: a TCG boot takes well under a second, but CI machines are shared.
const STEP: Duration = Duration::from_secs(60);

/// The self-tests every `test` boot must run and pass.
const REQUIRED_SELFTESTS: &[&str] = &[
    "frames",
    "paging.flags",
    "heap.stress",
    "trap.page_fault",
    "trap.general_protection",
    "trap.invalid_opcode",
    "timer.deadline",
];

fn boot(test: &str, profile: &str, cmdline: &str) -> Option<Qemu> {
    if !qemu_tests_enabled(test) {
        return None;
    }
    let kernel = kernel_image(Arch::X86_64).unwrap_or_else(|e| panic!("{e}"));
    let qemu = Boot::profile(profile)
        .kernel(kernel)
        .cmdline(cmdline)
        .log_name(test)
        .time_limit(Duration::from_secs(180))
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    Some(qemu)
}

fn check_selftests(test: &str, profile: &str) {
    let Some(mut qemu) = boot(test, profile, "test") else { return };
    let banner = qemu.wait_for(Marker::starts_with("pappus "), STEP).unwrap_or_else(|e| panic!("{e}"));
    let banner = Banner::parse(&banner)
        .unwrap_or_else(|| panic!("banner does not follow the protocol: {banner:?}\n{}", qemu.tail(40)));
    assert_eq!(banner.arch, "x86_64", "{banner:?}");
    assert_eq!(banner.cmdline, "test", "{banner:?}");

    let done = qemu.wait_for(Marker::starts_with("SELFTEST DONE"), STEP).unwrap_or_else(|e| panic!("{e}"));
    let exit = qemu.expect_pass(STEP).unwrap_or_else(|e| panic!("{e}"));

    let report = SelftestReport::from_lines(&qemu.lines());
    let tail = qemu.tail(60);
    let failed: Vec<_> = report.failed().collect();
    assert!(failed.is_empty(), "self-tests failed: {failed:?}\n{tail}");
    let done = SelftestDone::parse(&done).unwrap_or_else(|| panic!("bad DONE line {done:?}\n{tail}"));
    assert_eq!(done.failed, 0, "{tail}");
    assert_eq!(done.passed as usize, report.passed().count(), "DONE counts the PASS lines\n{tail}");
    for name in REQUIRED_SELFTESTS {
        assert!(report.result(name).is_some_and(|r| r.passed), "self-test {name} did not report PASS\n{tail}");
    }
    assert!(exit.is_pass());
}

#[test]
fn q35_selftests_pass() {
    check_selftests("x86_64-q35-selftests", "x86_64-q35");
}

#[test]
fn microvm_selftests_pass() {
    check_selftests("x86_64-microvm-selftests", "x86_64-microvm");
}

#[test]
fn boots_to_ready_with_memory_stats() {
    let Some(mut qemu) = boot("x86_64-ready", "x86_64-q35", "") else { return };
    let line = qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
    let tail = qemu.tail(40);
    let ready =
        Ready::parse(&line).unwrap_or_else(|| panic!("ready line does not follow the protocol: {line:?}\n{tail}"));
    assert!(ready.boot_ticks > 0, "{line}");
    assert!(ready.mem_total > 384 << 20 && ready.mem_total <= 512 << 20, "512M guest: {line}");
    assert!(ready.mem_free > 0 && ready.mem_free <= ready.mem_total, "{line}");
    assert!(ready.heap_total > 0 && ready.heap_used <= ready.heap_total, "{line}");
    assert!(qemu.exit().is_none(), "the kernel idles after ready\n{tail}");
    let pid = qemu.pid();
    qemu.kill();
    assert!(!pappus_tests::process_alive(pid));
}

#[test]
fn failing_selftest_fails_the_run() {
    let Some(mut qemu) = boot("x86_64-selftest-fail", "x86_64-q35", "test selftest=fail.deliberate") else {
        return;
    };
    qemu.wait_for(Marker::starts_with("SELFTEST FAIL fail.deliberate"), STEP).unwrap_or_else(|e| panic!("{e}"));
    let done = qemu.wait_for(Marker::starts_with("SELFTEST DONE"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.expect_fail(STEP).unwrap_or_else(|e| panic!("{e}"));
    let done = SelftestDone::parse(&done).unwrap_or_else(|| panic!("bad DONE line {done:?}"));
    assert_eq!(done.failed, 1, "{}", qemu.tail(40));
    let report = SelftestReport::from_lines(&qemu.lines());
    assert_eq!(report.results.len(), 1, "the filter runs only the named test\n{}", qemu.tail(40));
}

#[test]
fn bad_log_level_is_reported_and_boot_goes_on() {
    let Some(mut qemu) = boot("x86_64-log-bogus", "x86_64-q35", "log=bogus") else { return };
    let is_error = |l: &str| LogLine::parse(l).is_some_and(|l| l.level == "ERROR" && l.message.contains("bogus"));
    qemu.wait_for(Marker::predicate("an ERROR log line naming `bogus`", is_error), STEP)
        .unwrap_or_else(|e| panic!("{e}"));
    qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
}

/// q35's firmware describes PCIe's ECAM window in ACPI's MCFG, and the kernel uses it.
#[test]
fn q35_reaches_pci_through_ecam() {
    let Some(mut qemu) = boot("x86_64-ecam", "x86_64-q35", "") else { return };
    let line = qemu.wait_for(Marker::contains("pci: ECAM at"), STEP).unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("0xb0000000") && line.contains("ACPI MCFG"), "{line}");
    qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.kill();
}

/// microvm has no MCFG (and no PCI): the kernel says it falls back to the configuration ports.
#[test]
fn microvm_falls_back_to_configuration_ports() {
    let Some(mut qemu) = boot("x86_64-pci-ports", "x86_64-microvm", "") else { return };
    qemu.wait_for(Marker::contains("legacy configuration ports 0xcf8/0xcfc"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.kill();
}

/// Boots `profile` with `cpus` CPUs and `cmdline`.
fn boot_smp(test: &str, profile: &str, cpus: u32, cmdline: &str) -> Option<Qemu> {
    if !qemu_tests_enabled(test) {
        return None;
    }
    let kernel = kernel_image(Arch::X86_64).unwrap_or_else(|e| panic!("{e}"));
    let boot = Boot::profile(profile)
        .kernel(kernel)
        .smp(cpus)
        .cmdline(cmdline)
        .log_name(test)
        .time_limit(Duration::from_secs(180));
    if cpus > 1 {
        let line = boot.invocation().unwrap_or_else(|e| panic!("{e}")).shell_line();
        assert!(line.contains("-accel tcg,thread=multi") || line.contains("-accel kvm"), "MTTCG: {line}");
    }
    Some(boot.spawn().unwrap_or_else(|e| panic!("{e}")))
}

/// The self-tests that need the other CPUs, and what their detail says about how many.
const SMP_SELFTESTS: &[&str] = &["smp.wake", "smp.cpus", "smp.timer"];

/// With 1, 2 and 4 CPUs (multi-threaded TCG): every CPU comes up, the self-tests pass (each AP
/// wakes, runs a job as itself on its own stack, its own timer fires), the boot log names the
/// CPUs, and the ready line counts them.
#[test]
fn smp_cpus_start_and_pass_selftests() {
    for cpus in [1u32, 2, 4] {
        let test = format!("x86_64-smp{cpus}-selftests");
        let Some(mut qemu) = boot_smp(&test, "x86_64-q35", cpus, "test") else { return };
        let online = format!("smp: {cpus} CPU{} online (APIC ids", if cpus == 1 { "" } else { "s" });
        qemu.wait_for(Marker::contains(&online), STEP).unwrap_or_else(|e| panic!("{e}"));
        qemu.wait_for(Marker::starts_with("SELFTEST DONE"), STEP).unwrap_or_else(|e| panic!("{e}"));
        qemu.expect_pass(STEP).unwrap_or_else(|e| panic!("-smp {cpus}: {e}"));
        let report = SelftestReport::from_lines(&qemu.lines());
        let tail = qemu.tail(60);
        let failed: Vec<_> = report.failed().collect();
        assert!(failed.is_empty(), "-smp {cpus}: self-tests failed: {failed:?}\n{tail}");
        for name in REQUIRED_SELFTESTS.iter().chain(SMP_SELFTESTS) {
            let result = report.result(name);
            assert!(result.is_some_and(|r| r.passed), "-smp {cpus}: self-test {name} did not pass\n{tail}");
            if SMP_SELFTESTS.contains(name) {
                let detail = &result.unwrap().detail;
                assert!(detail.contains(&format!("cpus={cpus}")), "-smp {cpus}: {name}: {detail}");
            }
        }

        let test = format!("x86_64-smp{cpus}-ready");
        let Some(mut qemu) = boot_smp(&test, "x86_64-q35", cpus, "") else { return };
        let line = qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
        let ready = Ready::parse(&line).unwrap_or_else(|| panic!("bad ready line {line:?}"));
        assert_eq!(ready.cpus(), Some(u64::from(cpus)), "-smp {cpus}: {line}");
        qemu.kill();
    }
}

/// microvm's firmware (qboot) lists its CPUs in ACPI too.
#[test]
fn microvm_starts_two_cpus() {
    let Some(mut qemu) = boot_smp("x86_64-microvm-smp2", "x86_64-microvm", 2, "test selftest=smp.wake,smp.timer")
    else {
        return;
    };
    qemu.wait_for(Marker::contains("smp: 2 CPUs online"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.expect_pass(STEP).unwrap_or_else(|e| panic!("{e}"));
    let report = SelftestReport::from_lines(&qemu.lines());
    assert_eq!(report.passed().count(), 2, "{}", qemu.tail(40));
}

/// A panic on another CPU stops the machine: the other CPUs halt (NMI), and QEMU exits with the
/// fail status, not a hang or a crash.
#[test]
fn panic_on_an_ap_fails_the_run() {
    let Some(mut qemu) = boot_smp("x86_64-smp-ap-panic", "x86_64-q35", 2, "test selftest=smp.ap_panic") else {
        return;
    };
    qemu.wait_for(Marker::contains("deliberate panic on CPU 1"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.expect_fail(STEP).unwrap_or_else(|e| panic!("{e}"));
    assert!(!qemu.lines().iter().any(|l| l.starts_with("SELFTEST DONE")), "the boot CPU went on after the panic");
}
