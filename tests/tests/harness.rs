//! The harness against a real QEMU with no kernel: the timeout path kills QEMU and leaves no
//! process behind, and a killed harness takes its QEMU with it (PR_SET_PDEATHSIG).
//!
//! They need `qemu-system-x86_64` but no kernel; without QEMU they are skipped, unless
//! `PAPPUS_QEMU_TESTS=1`, when a missing QEMU is a failure.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pappus_tests::{AccelChoice, Boot, HarnessError, QEMU_TESTS_ENV, Qemu, on_path, process_alive};

const HELPER_ENV: &str = "PAPPUS_HARNESS_HELPER";

fn have_qemu(test: &str) -> bool {
    if on_path("qemu-system-x86_64") {
        return true;
    }
    assert!(
        std::env::var(QEMU_TESTS_ENV).as_deref() != Ok("1"),
        "qemu-system-x86_64 is not installed (cargo xtask test installs it)"
    );
    let _ = writeln!(std::io::stderr(), "SKIP {test}: qemu-system-x86_64 is not installed");
    false
}

/// QEMU with no kernel: the firmware finds nothing to boot and QEMU sits there, never printing
/// the marker.
fn idle_qemu(name: &str) -> Qemu {
    Boot::profile("x86_64-microvm")
        .accel(AccelChoice::Tcg)
        .log_name(name)
        .time_limit(Duration::from_secs(60))
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn timeout_kills_qemu() {
    if !have_qemu("harness-timeout") {
        return;
    }
    let mut qemu = idle_qemu("harness-timeout");
    let pid = qemu.pid();
    let started = Instant::now();
    let err = qemu.wait_for("PAPPUS READY", Duration::from_millis(1500)).unwrap_err();
    assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(process_alive(pid), "QEMU runs until the harness ends it: {err}");
    // The exit wait times out too, and then kills and reaps.
    assert!(qemu.wait_exit(Duration::from_millis(200)).is_err());
    assert!(!process_alive(pid), "no QEMU left after the timeout");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "reaped, not a zombie");
}

#[test]
fn drop_kills_qemu() {
    if !have_qemu("harness-drop") {
        return;
    }
    let qemu = idle_qemu("harness-drop");
    let pid = qemu.pid();
    assert!(process_alive(pid));
    drop(qemu);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "Drop kills and reaps");
}

#[test]
fn qemu_dies_with_a_killed_harness() {
    if !have_qemu("harness-pdeathsig") {
        return;
    }
    // Run `helper_holds_qemu` in a child test process, learn its QEMU's pid, SIGKILL the child.
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_holds_qemu", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let qemu_pid: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints `test helper_holds_qemu ... ` before it on the same line.
        .find_map(|line| line.split_once("QEMU_PID ").and_then(|(_, p)| p.trim().parse().ok()))
        .expect("the helper reports its QEMU's pid");
    assert!(process_alive(qemu_pid));
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert!(wait_gone(qemu_pid), "QEMU {qemu_pid} outlived its killed harness");
}

/// Not a test by itself: the child process of `qemu_dies_with_a_killed_harness`.
#[test]
#[ignore = "helper process for qemu_dies_with_a_killed_harness"]
fn helper_holds_qemu() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let qemu = idle_qemu("harness-pdeathsig-helper");
    println!("QEMU_PID {}", qemu.pid());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}
