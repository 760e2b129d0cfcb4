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
