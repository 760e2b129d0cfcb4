//! Arm Morello (CHERI) under CTSRD-CHERI's QEMU fork: the `aarch64-morello` profile.
//!
//! These need a built aarch64 kernel and the Morello emulator (`qemu-system-morello`, found
//! through $PAPPUS_QEMU_MORELLO, PATH or ../shared/tools/morello/bin/: qemu/profiles.toml).
//! `cargo xtask test` runs this suite only where it finds the emulator, and names it SKIPPED in
//! its summary otherwise; run directly with PAPPUS_QEMU_TESTS=1 and no emulator, every test
//! here fails and says where to get one (never a silent pass).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pappus_tests::functions::{composition_answers_engine_on, composition_answers_on};
use pappus_tests::node;
use pappus_tests::protocol::SelftestDone;
use pappus_tests::{Arch, Boot, Marker, Qemu, RealHost, SelftestReport, kernel_image, qemu_tests_enabled};

const PROFILE: &str = pappus_qemu::MORELLO_AARCH64;
const STEP: Duration = Duration::from_secs(120);

/// The emulator, or a panic that says how to get one.
fn emulator() -> String {
    pappus_qemu::profile(PROFILE)
        .and_then(|p| p.binary_path(&RealHost))
        .unwrap_or_else(|e| panic!("{e}; see README.md, \"Morello\", for where the emulator comes from"))
}

fn boot(test: &str, cmdline: &str, smp: u32) -> Option<Qemu> {
    if !qemu_tests_enabled(test) {
        return None;
    }
    emulator();
    let kernel = kernel_image(Arch::Aarch64).unwrap_or_else(|e| panic!("{e}"));
    let boot = Boot::profile(PROFILE)
        .kernel(kernel)
        .cmdline(cmdline)
        .smp(smp)
        .log_name(test)
        .time_limit(Duration::from_secs(300));
    Some(boot.spawn().unwrap_or_else(|e| panic!("{e}")))
}

/// Every named capability instruction word (and each register of the families the kernel
/// uses) disassembles on the emulator as `cheri::insn` says. A small program at 0x40100000,
/// started by QEMU's generic loader, enables capabilities, installs a vector table whose
/// handler steps over any faulting word, then runs each word after resetting the registers it
/// reads to safe values; `-d in_asm` logs each word as the emulator decodes it.
#[test]
fn instruction_words_match_the_disassembler() {
    use cheri::insn::{self, Field};
    if !qemu_tests_enabled("morello-insn-words") {
        return;
    }
    let qemu = emulator();
    const BASE: u64 = 0x4010_0000;
    const VECTORS: u64 = BASE + 0x800;
    const SCRATCH: u64 = 0x4018_0000;
    let mut expected: Vec<(u32, String)> = insn::NAMED.iter().map(|n| (n.word, n.disasm.to_string())).collect();
    for n in 0..31 {
        expected.push((insn::cpy(n, 2), format!("mov c{n}, c2")));
        expected.push((insn::gc(Field::Tag, 1, n), format!("gctag x1, c{n}")));
    }
    // movz/movk of a 32-bit constant into x<rd>.
    let mov32 = |rd: u32, v: u64| {
        [0xd280_0000 | (((v & 0xffff) as u32) << 5) | rd, 0xf2a0_0000 | ((((v >> 16) & 0xffff) as u32) << 5) | rd]
    };
    let mut code: Vec<u32> = vec![0xd2a0_0180, 0xd518_1040, 0xd503_3fdf]; // mov x0, #0xc0000; msr cpacr_el1, x0; isb
    code.extend(mov32(1, VECTORS));
    code.extend([insn::MRS_C2_DDC, insn::SCVALUE_C2_C2_X1, insn::MSR_CVBAR_EL1_C2, 0xd503_3fdf]);
    let reset = |code: &mut Vec<u32>| {
        code.extend(mov32(0, SCRATCH));
        code.extend(mov32(1, VECTORS));
        code.extend([0xd280_0002, 0xaa00_03e3, 0xd280_0004]); // x2 = 0, x3 = x0, x4 = 0
        code.extend([insn::MRS_C2_DDC, insn::SCVALUE_C2_C2_X1, insn::MRS_C9_DDC, insn::SCVALUE_C9_C9_X0]);
    };
    for (word, _) in &expected {
        reset(&mut code);
        code.push(*word);
    }
    code.push(0x1400_0000); // b .
    // The handler (synchronous, current EL with SP_ELx: VECTORS + 0x200): return past the word.
    let handler = [
        0xd538_4021, // mrs x1, elr_el1
        0x9100_1021, // add x1, x1, #4
        insn::MRS_C2_CELR_EL1,
        insn::SCVALUE_C2_C2_X1,
        insn::MSR_CELR_EL1_C2,
        0xd69f_03e0, // eret
    ];
    let code_at = BASE + 0x1000;
    let mut image = vec![0u32; 0x400]; // BASE .. BASE + 0x1000
    // At BASE: branch to the code after the vector table.
    image[0] = 0x1400_0000 | (((code_at - BASE) / 4) as u32);
    // The same handler for SP_EL0 (0x000) and SP_ELx (0x200): the emulator picks the SP_EL0 group
    // when the faulting PCC lacks the Executive permission.
    for offset in [0, 0x200] {
        let h = ((VECTORS + offset - BASE) / 4) as usize;
        image[h..h + handler.len()].copy_from_slice(&handler);
    }
    image.extend(&code);
    let dir = pappus_tests::target_dir().join("morello");
    std::fs::create_dir_all(&dir).unwrap();
    let blob: PathBuf = dir.join("words.bin");
    std::fs::write(&blob, image.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let log = dir.join("words-in_asm.log");
    let _ = std::fs::remove_file(&log);
    let mut child = Command::new(&qemu)
        .args(["-M", "virt", "-cpu", "morello", "-m", "256M", "-display", "none", "-nic", "none"])
        .args(["-serial", "none", "-monitor", "none", "-d", "in_asm", "-D"])
        .arg(&log)
        .arg("-device")
        .arg(format!("loader,file={},addr={BASE:#x},cpu-num=0", blob.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{qemu}: {e}"));
    let end = format!("{:016x}:  14000000", code_at + 4 * (code.len() as u64 - 1));
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&end) || started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(&end), "the program did not reach its end in 60 s; log {}", log.display());
    let mut checked = 0;
    for (word, disasm) in &expected {
        let needle = format!("  {word:08x}  ");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&needle)).collect();
        assert!(!lines.is_empty(), "{word:#010x} ({disasm}) never decoded; log {}", log.display());
        for line in lines {
            let said = line.split_once(&needle).map(|(_, rest)| rest.trim()).unwrap_or("");
            assert_eq!(said, disasm, "{word:#010x}: the emulator says {said:?}, cheri::insn says {disasm:?}");
            checked += 1;
        }
    }
    eprintln!("{} words ({checked} decodings) match the emulator's disassembly", expected.len());
}

/// The kernel's self-tests on two Morello CPUs: all pass, the Morello ones for real (no
/// "skipped"): capabilities on, CVBAR a capability, each capability fault taken at EL1 and
/// decoded in the trap report, bounded derivation, every capability register cleared.
#[test]
fn selftests_pass_on_morello() {
    let Some(mut qemu) = boot("morello-selftests", "test", 2) else { return };
    let line = qemu.wait_for(Marker::contains("morello: "), STEP).unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("capabilities enabled (CPACR_EL1.CEN = 0b11)"), "{line}");
    let done =
        qemu.wait_for(Marker::starts_with("SELFTEST DONE"), Duration::from_secs(240)).unwrap_or_else(|e| panic!("{e}"));
    qemu.expect_pass(STEP).unwrap_or_else(|e| panic!("{e}"));
    let log = qemu.lines().join("\n");
    let done = SelftestDone::parse(&done).unwrap_or_else(|| panic!("bad DONE line {done:?}"));
    assert_eq!(done.failed, 0, "{log}");
    let report = SelftestReport::from_lines(&qemu.lines());
    for name in [
        "morello.capabilities",
        "morello.derive",
        "morello.fault_bounds",
        "morello.fault_tag",
        "morello.fault_seal",
        "morello.fault_permission",
        "morello.clear_registers",
        "morello.clear_tags",
        "cheri.sandbox",
        "cheri.bounds",
        "cheri.preempt_resume",
        "smp.cpus",
        "gic.timer_interrupt",
    ] {
        let r = report.result(name).unwrap_or_else(|| panic!("self-test {name} did not run\n{log}"));
        assert!(r.passed && !r.detail.contains("skipped"), "{name}: {}\n{log}", r.detail);
    }
    for cause in
        ["bounds fault on a read", "tag fault on a read", "seal fault on a read", "permission fault on a write"]
    {
        assert!(
            log.contains(&format!("  capability: capability {cause}")),
            "the trap report did not decode {cause}\n{log}"
        );
    }
}

/// The node serves on Morello: ready with its DHCP address, /healthz, the boot configuration's
/// tenant (its token works, a wrong one does not), a wasm function registered and invoked.
#[test]
fn node_serves_on_morello() {
    const TENANT: node::Tenant = node::Tenant { name: "morello", token: "morello-token-0123456789abc" };
    let Some(mut node) = node::boot_profile("morello-http", PROFILE, &[TENANT], None) else { return };
    let log = node.qemu.lines().join("\n");
    assert!(log.contains("morello: capabilities enabled"), "{log}");
    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.text().contains("\"arch\":\"aarch64\""), "{}", health.text());
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
        b"hello from morello",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "HELLO FROM MORELLO"), "{}", r.text());
    let r = node.request("GET", "/v1/functions", &[("Authorization", "Bearer wrong-token-0000000000")], b"");
    assert_eq!(r.status, 401);
    node.qemu.kill();
}

/// The example functions and compositions (as `cargo xtask run` preloads them, on wasm) give
/// on two Morello CPUs the answers they give on the plain aarch64 virt board.
#[test]
fn examples_answer_as_on_virt() {
    if !qemu_tests_enabled("morello-examples") {
        return;
    }
    emulator();
    let (morello, runs) = composition_answers_on("morello-examples", PROFILE, 2).unwrap();
    let (virt, _) = composition_answers_on("morello-examples-virt", Arch::Aarch64.default_profile(), 1).unwrap();
    assert_eq!(morello, virt, "Morello and virt disagree");
    assert!(runs.iter().any(|(cpu, n)| *cpu == 1 && *n > 0), "the compute core ran nothing: {runs:?}");
}

/// The `cheri` engine: the example functions' aarch64 native images (unchanged) registered with
/// `engine=cheri`, and with `engine=native` (which picks `cheri` on Morello), give the
/// compositions the answers their wasm builds give on the same emulator; the cheri runs are
/// counted as native runs in /metrics.
#[test]
fn examples_answer_under_cheri_as_under_wasm() {
    if !qemu_tests_enabled("morello-cheri-examples") {
        return;
    }
    emulator();
    let (wasm, _) = composition_answers_engine_on("morello-wasm-examples", PROFILE, 2, "wasm").unwrap();
    for engine in ["cheri", "native"] {
        let (answers, runs) =
            composition_answers_engine_on(&format!("morello-{engine}-examples"), PROFILE, 2, engine).unwrap();
        assert_eq!(answers, wasm, "{engine} and wasm disagree on Morello");
        assert!(runs.iter().any(|(_, n)| *n > 0), "no instance ran: {runs:?}");
    }
}
