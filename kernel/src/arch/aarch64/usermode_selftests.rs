//! Self-tests of EL0: a code page that exits through `svc #0` with its registers checked and
//! nothing of it left for the next run, faults and forbidden instructions at EL0 that end the
//! run (with the exception class, PC and address) instead of the kernel, a preemption by the
//! timer that resumes where it stopped, PAN: the kernel itself cannot read a user page, and
//! PXN: nor run one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::global_asm;

use super::traps::{self, esr_class};
use super::usermode::{self, Exit, ExtendedState, Session, Tick, UserRegs};
use super::uspace::{Access, AddressSpace, USER_START};
use crate::mm;
use crate::selftest::{Outcome, check};

const CODE: u64 = USER_START + 0x40_0000;
const DATA: u64 = USER_START + 0x80_0000;
const STACK_TOP: u64 = USER_START + 0x100_0000;

/// Records the first fault and ends the run; ticks go as `ticks` says, then end.
#[derive(Default)]
struct Probe {
    fault: Option<(u64, u64, u64, u64)>,
    ticks: Vec<Tick>,
}

impl Session for Probe {
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()> {
        self.fault = Some((vector, error_code, rip, cr2));
        None
    }

    fn on_tick(&mut self) -> Tick {
        let tick = if self.ticks.is_empty() { Tick::End } else { self.ticks.remove(0) };
        if tick == Tick::Resume {
            usermode::arm_tick(super::ticks() + super::ticks_per_second() / 200);
        }
        tick
    }
}

fn code_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A space with `code` at CODE, a data page at DATA holding 0x1122334455667788, a stack page.
fn space_with(code: &[u32]) -> Result<AddressSpace, String> {
    let mut space = AddressSpace::new().ok_or("no frame or ASID for a space")?;
    space.map_bytes(CODE, &code_bytes(code), 1, Access::Executable, 0).map_err(|_| "map code")?;
    space.map_bytes(DATA, &0x1122_3344_5566_7788u64.to_le_bytes(), 1, Access::Writable, 0).map_err(|_| "map data")?;
    space.map_zeroed(STACK_TOP - 4096, Access::Writable, 0).map_err(|_| "map stack")?;
    Ok(space)
}

/// Runs `regs` in `space` with `probe` (the timer armed `tick_in` counter ticks ahead if some).
fn run_in(space: &AddressSpace, regs: &mut UserRegs, probe: &mut Probe, tick_in: Option<u64>) -> Exit {
    let previous = space.activate();
    let exit = usermode::enter_user(regs, &mut ExtendedState::new(), probe, tick_in.map(|t| super::ticks() + t));
    AddressSpace::deactivate(previous);
    exit
}

/// Runs `code` once from a fresh context with x0 = `x0`; frees the space (checking it freed).
fn run(code: &[u32], x0: u64) -> Result<(Exit, UserRegs, Probe), String> {
    let space = space_with(code)?;
    let mut regs = UserRegs::start(CODE, STACK_TOP, x0);
    let mut probe = Probe::default();
    let exit = run_in(&space, &mut regs, &mut probe, None);
    let free_before = mm::frame_stats().free;
    drop(space);
    check(mm::frame_stats().free > free_before, || "the space freed no frame".into())?;
    Ok((exit, regs, probe))
}

/// `ldr x1, [x0]; fmov d5, x1; msr tpidr_el0, x1; mov x3, #1; cmp x3, #2 (NZCV = N);
/// mov x8, #0; mov x0, #7; mov x2, #3; svc #0`
const EXIT_WITH_DATA: &[u32] = &[
    0xf940_0001,
    0x9e67_0025,
    0xd51b_d041,
    0xd280_0023,
    0xf100_087f,
    0xd280_0008,
    0xd280_00e0,
    0xd280_0062,
    0xd400_0001,
];

/// `mrs x1, tpidr_el0; mrs x2, fpcr; mrs x3, nzcv; fmov x4, d5; mrs x5, tpidrro_el0;
/// mov x8, #0; mov x0, #0; svc #0`
const READ_STATE: &[u32] =
    &[0xd53b_d041, 0xd53b_4402, 0xd53b_4203, 0x9e66_00a4, 0xd53b_d065, 0xd280_0008, 0xd280_0000, 0xd400_0001];

pub fn svc_exit() -> Outcome {
    let (exit, regs, probe) = run(EXIT_WITH_DATA, DATA)?;
    check(exit == Exit::Syscall, || format!("ended {exit:?} with fault {:?}", probe.fault))?;
    let call = regs.exit_call();
    check(call.number == 0 && call.status == 7 && call.len == 3, || format!("exit call {call:?}"))?;
    check(call.pointer == 0x1122_3344_5566_7788, || format!("read {:#x} from its data page", call.pointer))?;
    let svc_at = CODE + 4 * (EXIT_WITH_DATA.len() as u64 - 1);
    check(call.rip == svc_at, || format!("svc at {:#x}, expected {svc_at:#x}", call.rip))?;
    check(regs.v[5] as u64 == 0x1122_3344_5566_7788 && regs.tpidr_el0 == 0x1122_3344_5566_7788, || {
        format!("saved d5 {:#x}, TPIDR_EL0 {:#x}", regs.v[5], regs.tpidr_el0)
    })?;
    check(regs.pstate >> 28 == 0b1000, || format!("saved NZCV {:#x}", regs.pstate >> 28))?;
    // Nothing of that run is left in the registers the kernel now runs with, nor for the next.
    let tpidr: u64;
    // SAFETY: reading TPIDR_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) tpidr, options(nomem, nostack)) };
    check(tpidr == 0, || format!("TPIDR_EL0 {tpidr:#x} after the run"))?;
    let (exit, next, probe) = run(READ_STATE, 0)?;
    check(exit == Exit::Syscall, || format!("second run ended {exit:?} with fault {:?}", probe.fault))?;
    check(next.x[1..6].iter().all(|&r| r == 0), || {
        format!("the next run saw TPIDR_EL0, FPCR, NZCV, d5, TPIDRRO_EL0 = {:x?}", &next.x[1..6])
    })?;
    Ok(format!(
        "EL0 read its page, set d5/TPIDR_EL0/NZCV and exited through svc at {svc_at:#x}; the next run saw zeros"
    ))
}

/// `ldr x1, [x0]` then `svc #1` (never reached).
const READ_X0: &[u32] = &[0xf940_0001, 0xd400_0021];

pub fn user_fault() -> Outcome {
    // The kernel's image (EL1-only): a permission fault, reported with ESR, PC and FAR.
    let kernel = super::boot::kernel_image().0;
    let (exit, _, probe) = run(READ_X0, kernel)?;
    let (ec, esr, pc, far) = probe.fault.ok_or_else(|| format!("no fault, exit {exit:?}"))?;
    check(exit == Exit::Ended, || format!("exit {exit:?}"))?;
    check(ec == 0x24 && esr_class(esr) == 0x24 && esr & 0x3c == 0x0c && far == kernel && pc == CODE, || {
        format!("EC {ec:#x} ESR {esr:#x} PC {pc:#x} FAR {far:#x}")
    })?;
    Ok(format!(
        "EL0 read of kernel memory: data abort ESR {esr:#x} (permission fault), the run ended, the kernel did not"
    ))
}

/// Single forbidden instructions (each at CODE, x0 = a kernel address) and the class each
/// must trap with: undefined (0x00), trapped system instruction (0x18), trapped WFI (0x01),
/// BRK (0x3c), SVC other than the exit call's (0x15), instruction abort (0x20).
const FORBIDDEN: &[(&str, u32, u64)] = &[
    ("mrs x0, sctlr_el1", 0xd538_1000, 0x00),
    ("msr daifset, #2", 0xd503_42df, 0x18),
    ("dc zva, x0", 0xd50b_7420, 0x18),
    ("dc civac, x0", 0xd50b_7e20, 0x18),
    ("hvc #0", 0xd400_0002, 0x00),
    ("smc #0", 0xd400_0003, 0x00),
    ("tlbi vmalle1", 0xd508_871f, 0x00),
    ("ic iallu", 0xd508_751f, 0x00),
    ("eret", 0xd69f_03e0, 0x00),
    ("mrs x0, cntvct_el0", 0xd53b_e040, 0x18),
    ("wfi", 0xd503_207f, 0x01),
    ("brk #1", 0xd420_0020, 0x3c),
    ("svc #1", 0xd400_0021, 0x15),
    ("br x0 (kernel text)", 0xd61f_0000, 0x20),
];

pub fn forbidden_instructions() -> Outcome {
    let kernel = super::boot::kernel_image().0;
    let mut seen = Vec::new();
    for &(name, word, want) in FORBIDDEN {
        let (exit, _, probe) = run(&[word, 0xd400_0001], kernel)?;
        let (ec, esr, pc, _) = probe.fault.ok_or_else(|| format!("{name}: no fault, exit {exit:?}"))?;
        // Morello's emulator reports EL0's `msr daifset` (SCTLR_EL1.UMA clear) as an unknown
        // instruction (EC 0x00) rather than a trapped system instruction (0x18): either ends it.
        let morello_daif = super::morello::present() && want == 0x18 && ec == 0x00 && name.starts_with("msr daif");
        check(exit == Exit::Ended && (ec == want || morello_daif), || {
            format!("{name}: exit {exit:?}, EC {ec:#x} (ESR {esr:#x})")
        })?;
        let expected_pc = if want == 0x20 { kernel } else { CODE };
        // `svc` reports the address after it; everything else the instruction's own.
        let expected_pc = if want == 0x15 { CODE + 4 } else { expected_pc };
        // Morello's emulator reports a trapped EL0 `wfi` with bit 32 of ELR set (seen:
        // 0x101_0040_0000 for 0x100_0040_0000); the class is right, the run ends all the same.
        let morello_wfi = super::morello::present() && want == 0x01 && pc == expected_pc | (1 << 32);
        check(pc == expected_pc || morello_wfi, || format!("{name}: PC {pc:#x}, expected {expected_pc:#x}"))?;
        seen.push(format!("{name}: EC {ec:#04x}"));
    }
    // Data is never executable (W^X): a jump into the data page is an instruction abort.
    let (_, _, probe) = run(&[0xd61f_0000], DATA)?;
    let (ec, _, pc, _) = probe.fault.ok_or("a jump into data did not fault")?;
    check(ec == 0x20 && pc == DATA, || format!("jump into data: EC {ec:#x} at {pc:#x}"))?;
    Ok(format!("{}; jump into data: EC 0x20", seen.join(", ")))
}

pub fn preempt_resume() -> Outcome {
    // `add x1, x1, #1; b .-4`: counts forever.
    let space = space_with(&[0x9100_0421, 0x17ff_ffff])?;
    let mut regs = UserRegs::start(CODE, STACK_TOP, 0);
    let mut probe = Probe { ticks: alloc::vec![Tick::Resume, Tick::Preempt], ..Probe::default() };
    let slice = super::ticks_per_second() / 200; // 5 ms
    let exit = run_in(&space, &mut regs, &mut probe, Some(slice));
    check(exit == Exit::Preempted, || format!("first slice: {exit:?}, fault {:?}", probe.fault))?;
    let (pc, count) = (regs.pc, regs.x[1]);
    check((CODE..CODE + 8).contains(&pc) && count > 0, || format!("preempted at {pc:#x} with x1 = {count}"))?;
    let mut probe = Probe::default(); // the next tick ends it
    let exit = run_in(&space, &mut regs, &mut probe, Some(slice));
    check(exit == Exit::Ended && regs.x[1] > count, || format!("resumed: {exit:?}, x1 {} after {count}", regs.x[1]))?;
    Ok(format!(
        "the timer preempted the loop at {pc:#x} (x1 = {count}), resumed it, then ended it (x1 = {})",
        regs.x[1]
    ))
}

pub fn pan() -> Outcome {
    if !usermode::has_pan() {
        return Ok("skipped: no PAN".into());
    }
    let space = space_with(&[0xd400_0001])?;
    let previous = space.activate();
    let insn = traps::label(
        // SAFETY: only the label's address is used.
        unsafe { &traps::probe_read_insn },
    );
    // SAFETY: as above.
    let resume = traps::label(unsafe { &traps::probe_read_resume });
    traps::expect_fault(insn, resume);
    // SAFETY: the probe's one load faults (PAN) and resumes at its label.
    unsafe { traps::probe_read(DATA) };
    let fault = traps::take_fault();
    AddressSpace::deactivate(previous);
    let fault = fault.ok_or("the kernel read a user page with PAN on")?;
    check(fault.class() == 0x25 && fault.far == DATA && fault.esr & 0x3c == 0x0c, || {
        format!("EC {:#x} ESR {:#x} FAR {:#x}", fault.class(), fault.esr, fault.far)
    })?;
    Ok(format!("a kernel read of a user page faults: ESR {:#x} (permission fault)", fault.esr))
}

global_asm!(
    r#"
    .section .text.usermode_selftests, "ax"
    /* x0 = an address to call from EL1; a fault there resumes at the label after the call. */
    .global pappus_probe_exec, pappus_probe_exec_resume
pappus_probe_exec:
    stp x29, x30, [sp, #-16]!
    blr x0
pappus_probe_exec_resume:
    ldp x29, x30, [sp], #16
    ret
    "#
);

unsafe extern "C" {
    fn pappus_probe_exec(target: u64);
    static pappus_probe_exec_resume: u8;
}

pub fn pxn() -> Outcome {
    // `svc #0` in a user code page: executable at EL0, never at EL1.
    let space = space_with(&[0xd400_0001])?;
    let previous = space.activate();
    // SAFETY: only the label's address is used.
    let resume = traps::label(unsafe { &pappus_probe_exec_resume });
    traps::expect_fault(CODE, resume);
    // SAFETY: the call faults at its first instruction (PXN) and resumes after the call; were
    // it to run, `svc` from EL1 would be an unexpected exception, reported as a kernel fault.
    unsafe { pappus_probe_exec(CODE) };
    let fault = traps::take_fault();
    AddressSpace::deactivate(previous);
    let fault = fault.ok_or("the kernel ran a user page")?;
    check(fault.class() == 0x21 && fault.elr == CODE && fault.esr & 0x3c == 0x0c, || {
        format!("EC {:#x} ESR {:#x} ELR {:#x}", fault.class(), fault.esr, fault.elr)
    })?;
    Ok(format!("a kernel call into a user code page faults: ESR {:#x} (instruction abort, permission)", fault.esr))
}

/// The `cheri` engine's entry on Morello: a sandbox in the shared EL0 space runs with a PCC
/// bounded to its code page and a DDC (RDDC_EL0, Restricted mode) bounded to its two data pages
/// (data, stack). A page mapped right after each bound (EL0-accessible in the tables) shows
/// that only the capability stops an access there.
mod cheri_layout {
    use super::{CODE, DATA};
    pub const PCC_BASE: u64 = CODE;
    pub const PCC_LEN: u64 = 0x1000;
    pub const DDC_BASE: u64 = DATA;
    pub const DDC_LEN: u64 = 0x2000;
    pub const STACK_TOP: u64 = DATA + DDC_LEN;
    /// Mapped, writable at EL0 by the tables, one byte past the DDC's bound.
    pub const PAST_DDC: u64 = DDC_BASE + DDC_LEN;
    /// Mapped, executable at EL0 by the tables, just past the PCC's bound.
    pub const PAST_PCC: u64 = PCC_BASE + PCC_LEN;
}

/// A space for a `cheri` run: `code` at CODE, the data page (0x1122334455667788 first), the
/// stack page, a writable page past the DDC and a code page (`svc #0`) past the PCC.
fn cheri_space(code: &[u32]) -> Result<AddressSpace, String> {
    use cheri_layout::*;
    let mut space = space_with(code)?;
    space.map_zeroed(STACK_TOP - 4096, Access::Writable, 0).map_err(|_| "map stack")?;
    space.map_bytes(PAST_DDC, &0x99u64.to_le_bytes(), 1, Access::Writable, 0).map_err(|_| "map past DDC")?;
    space.map_bytes(PAST_PCC, &code_bytes(&[0xd400_0001]), 1, Access::Executable, 0).map_err(|_| "map past PCC")?;
    Ok(space)
}

/// Runs `code` as a `cheri` sandbox with x0 = `x0`.
fn run_cheri(code: &[u32], x0: u64) -> Result<(Exit, UserRegs, Probe), String> {
    use cheri_layout::*;
    for (base, len, perms) in
        [(PCC_BASE, PCC_LEN, cheri::perms::SANDBOX_CODE), (DDC_BASE, DDC_LEN, cheri::perms::SANDBOX_DATA)]
    {
        super::morello::derive(base, len, cheri::perms::ALL & !perms)
            .map_err(|e| format!("[{base:#x}, +{len:#x}) not derivable: {e:?}"))?;
    }
    let space = cheri_space(code)?;
    let mut regs = UserRegs::start(CODE, STACK_TOP, x0);
    regs.cheri = usermode::CheriBounds::new(PCC_BASE, PCC_LEN, DDC_BASE, DDC_LEN);
    let mut probe = Probe::default();
    let exit = run_in(&space, &mut regs, &mut probe, None);
    Ok((exit, regs, probe))
}

/// The sandbox's view: `ldr x1, [x0]` (its data page), a push and pop through SP (RCSP_EL0),
/// x7 = the sum (x10 = the data page); before that, x0 = the mask of c0..c30 still tagged (`gctag`, read before any register
/// is written, c1 kept on the stack meanwhile), and its DDC's tag, base, length and
/// permissions in x6, x3, x4, x5 (`mrs c2, ddc` in Restricted mode reads RDDC_EL0); `svc #0`.
fn cheri_view_code() -> Vec<u32> {
    use cheri::insn::{Field, MRS_C2_DDC, gc};
    let mut code = alloc::vec![
        gc(Field::Tag, 1, 1),
        0xf81f_0fe1, // str x1, [sp, #-16]!
        gc(Field::Tag, 1, 0),
        0xaa01_03e0, // mov x0, x1
        0xf841_07e1, // ldr x1, [sp], #16
        0xaa01_0400, // orr x0, x0, x1, lsl #1
    ];
    for n in 2..31 {
        code.push(gc(Field::Tag, 1, n));
        code.push(0xaa01_0000 | (n << 10)); // orr x0, x0, x1, lsl #n
    }
    code.extend([
        0xaa00_03e9, // mov x9, x0 (the mask)
        MRS_C2_DDC,
        gc(Field::Tag, 6, 2),
        gc(Field::Base, 3, 2),
        gc(Field::Len, 4, 2),
        gc(Field::Perm, 5, 2),
        0xf940_0141, // ldr x1, [x10]  (x10 = the data page, set by the kernel)
        0xf81f_0fe1, // str x1, [sp, #-16]!
        0xf841_07e2, // ldr x2, [sp], #16
        0x8b02_0027, // add x7, x1, x2
        0xd51b_d047, // msr tpidr_el0, x7 (Restricted: RTPIDR_EL0)
        0xd53b_d04b, // mrs x11, tpidr_el0
        0xaa09_03e0, // mov x0, x9
        0xd280_0008, // mov x8, #0
        0xd400_0001, // svc #0
    ]);
    code
}

pub fn cheri_sandbox() -> Outcome {
    if !super::morello::present() {
        return Ok("skipped: not a Morello CPU".into());
    }
    use cheri_layout::*;
    // x0 = DATA: the first run leaves it there for the next one to see nothing of it.
    let code = cheri_view_code();
    let space = cheri_space(&code)?;
    let mut regs = UserRegs::start(CODE, STACK_TOP, 0);
    regs.x[10] = DATA;
    regs.cheri = usermode::CheriBounds::new(PCC_BASE, PCC_LEN, DDC_BASE, DDC_LEN);
    let mut probe = Probe::default();
    let exit = run_in(&space, &mut regs, &mut probe, None);
    drop(space);
    check(exit == Exit::Syscall, || format!("ended {exit:?}, fault {:?}", describe_fault(probe.fault)))?;
    let (mask, tag, base, len, perms, sum) = (regs.x[0], regs.x[6], regs.x[3], regs.x[4], regs.x[5], regs.x[7]);
    check(mask == 0, || format!("capability registers tagged at entry: mask {mask:#x}"))?;
    check(sum == 0x1122_3344_5566_7788u64.wrapping_mul(2), || format!("computed {sum:#x}"))?;
    // Its TPIDR_EL0 (RTPIDR_EL0 in Restricted mode) was saved at the exit; nulled after it.
    check(regs.x[11] == sum && regs.tpidr_el0 == sum, || {
        format!("TPIDR_EL0 read back {:#x}, saved {:#x}", regs.x[11], regs.tpidr_el0)
    })?;
    let rtpidr: u64;
    // SAFETY: reading RTPIDR_EL0 (S3_3_C13_C0_4, a Morello EL0 register) has no side effects.
    unsafe { core::arch::asm!("mrs {}, s3_3_c13_c0_4", out(reg) rtpidr, options(nomem, nostack)) };
    check(rtpidr == 0, || format!("RTPIDR_EL0 {rtpidr:#x} after the run"))?;
    // The next sandbox reads TPIDR_EL0 as zero (`mrs x1, tpidr_el0; svc #0`).
    let (exit, next, probe) = run_cheri(&[0xd53b_d041, 0xd400_0001], 0)?;
    check(exit == Exit::Syscall && next.x[1] == 0, || {
        format!("the next sandbox: {exit:?}, TPIDR_EL0 {:#x}, {}", next.x[1], describe_fault(probe.fault))
    })?;
    check(tag == 1 && base == DDC_BASE && len == DDC_LEN && perms == cheri::perms::SANDBOX_DATA, || {
        format!("its DDC: tag {tag} base {base:#x} length {len:#x} perms {perms:#x}")
    })?;
    Ok(format!(
        "a cheri sandbox computed {sum:#x} through its DDC and RCSP and exited by svc; no capability register \
         tagged at entry; its DDC [{base:#x}, +{len:#x}) perms {perms:#x} ({}); its TPIDR_EL0 saved, then \
         zero for the next",
        cheri::perms::names(perms).collect::<Vec<_>>().join("+")
    ))
}

fn describe_fault(fault: Option<(u64, u64, u64, u64)>) -> String {
    match fault {
        None => "none".into(),
        Some((ec, esr, pc, far)) => {
            let cap = cheri::fault::decode(esr).map(|c| format!(" ({c})")).unwrap_or_default();
            format!("EC {ec:#x} ESR {esr:#x}{cap} PC {pc:#x} FAR {far:#x}")
        }
    }
}

/// One access that must end the run with a capability fault of `kind` on `access`.
fn cheri_fault(
    name: &str,
    code: &[u32],
    x0: u64,
    kind: cheri::fault::CapFaultKind,
    access: cheri::fault::Access,
) -> Result<String, String> {
    let (exit, _, probe) = run_cheri(code, x0)?;
    let (_, esr, pc, far) = probe.fault.ok_or_else(|| format!("{name}: no fault, exit {exit:?}"))?;
    let decoded = cheri::fault::decode(esr);
    check(
        exit == Exit::Ended && decoded == Some(cheri::fault::CapException::Fault { kind, access, lower_el: true }),
        || format!("{name}: exit {exit:?}, {}", describe_fault(probe.fault)),
    )?;
    let at = if access == cheri::fault::Access::Fetch { pc } else { far };
    check(at == x0, || format!("{name}: {}, expected the address {x0:#x}", describe_fault(probe.fault)))?;
    Ok(format!("{name}: {} (ESR {esr:#x})", decoded.map(|d| alloc::format!("{d}")).unwrap_or_default()))
}

pub fn cheri_bounds() -> Outcome {
    if !super::morello::present() {
        return Ok("skipped: not a Morello CPU".into());
    }
    use cheri::fault::{Access as A, CapFaultKind::Bounds};
    use cheri_layout::*;
    const LDRB: &[u32] = &[0x3940_0001, 0xd400_0001]; // ldrb w1, [x0]; svc #0
    const STRB: &[u32] = &[0x3900_0001, 0xd400_0001]; // strb w1, [x0]; svc #0
    const BR: &[u32] = &[0xd61f_0000]; // br x0
    // The first byte in bounds reads 0x88 (the data page), the last (the stack page's) 0.
    for (at, want) in [(DDC_BASE, 0x88), (PAST_DDC - 1, 0)] {
        let (exit, regs, probe) = run_cheri(LDRB, at)?;
        check(exit == Exit::Syscall && regs.x[1] == want, || {
            format!("a load at {at:#x} in bounds: exit {exit:?}, x1 {:#x}, {}", regs.x[1], describe_fault(probe.fault))
        })?;
    }
    let seen = [
        cheri_fault("load one byte past DDC", LDRB, PAST_DDC, Bounds, A::Read)?,
        cheri_fault("store one byte past DDC", STRB, PAST_DDC, Bounds, A::Write)?,
        cheri_fault("load one byte below DDC", LDRB, DDC_BASE - 1, Bounds, A::Read)?,
        cheri_fault("load of the kernel image", LDRB, super::boot::kernel_image().0, Bounds, A::Read)?,
        cheri_fault("jump past PCC", BR, PAST_PCC, Bounds, A::Fetch)?,
    ];
    Ok(format!("the first and last bytes in bounds read; {}; the kernel serves on", seen.join("; ")))
}

/// A `cheri` sandbox preempted by the timer resumes with its Restricted stack pointer
/// (RCSP_EL0, saved as its SP) and its capabilities derived again: `sub sp, sp, #16`, then
/// `add x1, x1, #1; str x1, [sp]; b .-8` forever.
pub fn cheri_preempt_resume() -> Outcome {
    if !super::morello::present() {
        return Ok("skipped: not a Morello CPU".into());
    }
    use cheri_layout::*;
    let space = cheri_space(&[0xd100_43ff, 0x9100_0421, 0xf900_03e1, 0x17ff_fffe])?;
    let mut regs = UserRegs::start(CODE, STACK_TOP, 0);
    regs.cheri = usermode::CheriBounds::new(PCC_BASE, PCC_LEN, DDC_BASE, DDC_LEN);
    let mut probe = Probe { ticks: alloc::vec![Tick::Resume, Tick::Preempt], ..Probe::default() };
    let slice = super::ticks_per_second() / 200; // 5 ms
    let exit = run_in(&space, &mut regs, &mut probe, Some(slice));
    check(exit == Exit::Preempted, || format!("first slice: {exit:?}, {}", describe_fault(probe.fault)))?;
    let (sp, count) = (regs.sp, regs.x[1]);
    check(sp == STACK_TOP - 16 && count > 0, || format!("preempted with SP {sp:#x}, x1 = {count}"))?;
    let mut probe = Probe::default(); // the next tick ends it
    let exit = run_in(&space, &mut regs, &mut probe, Some(slice));
    check(exit == Exit::Ended && probe.fault.is_none() && regs.x[1] > count && regs.sp == sp, || {
        format!("resumed: {exit:?}, x1 {} after {count}, SP {:#x}, {}", regs.x[1], regs.sp, describe_fault(probe.fault))
    })?;
    Ok(format!("preempted with SP {sp:#x} (RCSP_EL0) and x1 = {count}, resumed in bounds to x1 = {}", regs.x[1]))
}
