//! aarch64 boots under the virt profile.
//!
//! These need a built kernel and QEMU; they run under `cargo xtask test` (which sets
//! `PAPPUS_QEMU_TESTS=1`) and print a skip line under a plain `cargo test`.

use std::time::Duration;

use pappus_tests::node;
use pappus_tests::protocol::{Ready, SelftestDone};
use pappus_tests::{Arch, Boot, Marker, Qemu, SelftestReport, kernel_image, qemu_tests_enabled};

const STEP: Duration = Duration::from_secs(60);

fn boot(test: &str, cmdline: &str) -> Option<Qemu> {
    boot_with(test, cmdline, |b| b)
}

/// As [`boot`], with the profile's invocation changed by `adjust` (a GIC version, -icount, -smp).
fn boot_with(test: &str, cmdline: &str, adjust: impl FnOnce(Boot) -> Boot) -> Option<Qemu> {
    if !qemu_tests_enabled(test) {
        return None;
    }
    let kernel = kernel_image(Arch::Aarch64).unwrap_or_else(|e| panic!("{e}"));
    let boot =
        Boot::arch(Arch::Aarch64).kernel(kernel).cmdline(cmdline).log_name(test).time_limit(Duration::from_secs(180));
    Some(adjust(boot).spawn().unwrap_or_else(|e| panic!("{e}")))
}

/// Boots with `test`, waits for the self-tests' end and a passing exit, and returns the report
/// (every self-test passed) and the log.
fn selftests_pass(qemu: &mut Qemu) -> (SelftestReport, String) {
    qemu.wait_for(Marker::words(&["pappus", "aarch64"]), STEP).unwrap_or_else(|e| panic!("{e}"));
    let done = qemu.wait_for(Marker::starts_with("SELFTEST DONE"), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.expect_pass(STEP).unwrap_or_else(|e| panic!("{e}"));
    let tail = qemu.tail(60);
    let done = SelftestDone::parse(&done).unwrap_or_else(|| panic!("bad DONE line {done:?}\n{tail}"));
    assert_eq!(done.failed, 0, "{tail}");
    let report = SelftestReport::from_lines(&qemu.lines());
    assert_eq!(report.failed().count(), 0, "{tail}");
    (report, qemu.lines().join("\n"))
}

/// The interrupt self-tests ran and passed: a timer deadline taken as the GIC's PPI, and a
/// wake-up SGI ending a `wfi`.
fn assert_interrupts(report: &SelftestReport, log: &str, gic: &str) {
    for name in ["gic.timer_interrupt", "gic.sgi_wakeup"] {
        assert!(report.passed().any(|r| r.name == name), "{name} did not pass:\n{log}");
    }
    assert!(log.contains(&format!("gic: {gic} distributor at 0x8000000")), "{gic} from the device tree:\n{log}");
}

#[test]
fn virt_boots_to_banner() {
    let Some(mut qemu) = boot("aarch64-banner", "") else { return };
    qemu.wait_for(Marker::words(&["pappus", "aarch64"]), STEP).unwrap_or_else(|e| panic!("{e}"));
    qemu.kill();
}

/// The profile's GICv3: every self-test passes, the interrupt ones included.
#[test]
fn virt_selftests_pass() {
    let Some(mut qemu) = boot("aarch64-selftests", "test") else { return };
    let (report, log) = selftests_pass(&mut qemu);
    assert_interrupts(&report, &log, "GICv3");
}

/// The same on a GICv2 (`virt`'s own default; the device tree says `arm,cortex-a15-gic`) with
/// two CPUs (SGIs through GICD_SGIR's target list), under -icount, where a CPU that waited by
/// spinning instead of `wfi` would stall the others.
#[test]
fn virt_gicv2_selftests_pass() {
    let Some(mut qemu) =
        boot_with("aarch64-gicv2", "test", |b| b.smp(2).icount(true).extra_args(["-machine", "gic-version=2"]))
    else {
        return;
    };
    let (report, log) = selftests_pass(&mut qemu);
    assert_interrupts(&report, &log, "GICv2");
    for name in SMP_SELFTESTS {
        let detail = report.result(name).map(|r| r.detail.clone()).unwrap_or_default();
        assert!(detail.contains("cpus=2"), "{name}: {detail:?}\n{log}");
    }
}

/// virtio-net on virt's PCIe (ECAM from the device tree, BARs placed by the kernel): the front
/// door answers through a host port forward.
#[test]
fn virt_serves_http_over_virtio_net() {
    const TENANT: node::Tenant = node::Tenant { name: "arm", token: "aarch64-token-0123456789abcd" };
    let Some(mut node) = node::boot_arch("aarch64-http", Arch::Aarch64, &[TENANT]) else { return };
    let log = node.qemu.lines().join("\n");
    assert!(log.contains("pci: ECAM at 0x4010000000"), "ECAM from the device tree:\n{log}");
    assert!(log.contains("BAR(s) placed in"), "BARs assigned by the kernel:\n{log}");
    assert!(log.contains("virtio-net at 00:01.0") && log.contains("MSI-X"), "NIC line:\n{log}");

    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.text().contains("\"arch\":\"aarch64\""), "{}", health.text());
    let body = node::pattern(100_000);
    let echo = node.call("POST", "/v1/echo", &body);
    assert_eq!(echo.status, 200, "{}", echo.status);
    assert_eq!(echo.body, body);

    // The boot configuration arrived (`-device loader` + `bootconfig=`): the tenant can register
    // and run a wasm function, the same module as on x86_64.
    let auth = format!("Bearer {}", TENANT.token);
    let template = pappus_tests::functions::wasm("template");
    let r = node.request(
        "PUT",
        "/v1/functions/upper?engine=wasm&inputs=lines&outputs=upper&memory=1MiB",
        &[("Authorization", &auth)],
        &template,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = node.request(
        "POST",
        "/v1/invoke/upper",
        &[("Authorization", &auth), ("Accept", "application/octet-stream")],
        b"hello from aarch64",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "HELLO FROM AARCH64"), "{}", r.text());
    let r = node.request("GET", "/v1/functions", &[("Authorization", "Bearer wrong-token-0000000000")], b"");
    assert_eq!(r.status, 401);
    node.qemu.kill();
}

// Every core's known answers on -smp 1, 2 and 4 (PSCI CPU_ON, the run queue's wake-up as an
// SGI) are the dispatch suite's, which runs on both architectures (tests/tests/dispatch.rs,
// `aarch64::compositions_agree_on_1_2_and_4_cpus_and_fan_out_across_cores`).

/// The self-tests that need the other CPUs; their details say how many there are.
const SMP_SELFTESTS: &[&str] = &["smp.wake", "smp.cpus", "smp.timer"];

/// With 1, 2 and 4 CPUs: every CPU comes up through PSCI CPU_ON, the self-tests pass (each
/// secondary wakes on an SGI, runs a job as itself on its own stack block with guard pages and
/// the boot CPU's tables, its own timer interrupts), the log names the CPUs and the ready line
/// counts them. -smp 4 also under -icount, where one host thread runs every vCPU and a CPU
/// that spun instead of sleeping in `wfi` would stall the others.
#[test]
fn virt_smp_cpus_start_and_pass_selftests() {
    for (cpus, icount) in [(1u32, false), (2, false), (4, false), (4, true)] {
        let test = format!("aarch64-smp{cpus}{}-selftests", if icount { "-icount" } else { "" });
        let Some(mut qemu) = boot_with(&test, "test", |b| b.smp(cpus).icount(icount)) else { return };
        let (report, log) = selftests_pass(&mut qemu);
        let online = format!("smp: {cpus} CPU{} online (MPIDRs", if cpus == 1 { "" } else { "s" });
        assert!(log.contains(&online), "-smp {cpus}: no {online:?} line\n{log}");
        for name in SMP_SELFTESTS {
            let result = report.result(name);
            assert!(result.is_some_and(|r| r.passed), "-smp {cpus}: self-test {name} did not pass\n{log}");
            let detail = &result.unwrap().detail;
            assert!(detail.contains(&format!("cpus={cpus}")), "-smp {cpus}: {name}: {detail}");
        }
    }
    for cpus in [2u32, 4] {
        let test = format!("aarch64-smp{cpus}-ready");
        let Some(mut qemu) = boot_with(&test, "", |b| b.smp(cpus)) else { return };
        let line = qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
        let ready = Ready::parse(&line).unwrap_or_else(|| panic!("bad ready line {line:?}"));
        assert_eq!(ready.cpus(), Some(u64::from(cpus)), "-smp {cpus}: {line}");
        qemu.kill();
    }
}

/// A panic on a secondary, and a stack overflow there (into its guard page, reported from its
/// emergency stack), stop the machine with the fail status: no hang, no silent crash.
#[test]
fn virt_secondary_failures_fail_the_run() {
    let cases = [
        ("smp.ap_panic", "deliberate panic on CPU 1"),
        ("smp.stack_overflow", "kernel stack overflow: the stack ran into its guard page"),
    ];
    for (selftest, marker) in cases {
        let test = format!("aarch64-{}", selftest.replace('.', "-"));
        let cmdline = format!("test selftest={selftest}");
        let Some(mut qemu) = boot_with(&test, &cmdline, |b| b.smp(2)) else { return };
        qemu.wait_for(Marker::contains(marker), STEP).unwrap_or_else(|e| panic!("{selftest}: {e}"));
        qemu.expect_fail(STEP).unwrap_or_else(|e| panic!("{selftest}: {e}"));
        assert!(
            !qemu.lines().iter().any(|l| l.starts_with("SELFTEST DONE")),
            "{selftest}: the boot CPU went on\n{}",
            qemu.tail(40)
        );
    }
}
