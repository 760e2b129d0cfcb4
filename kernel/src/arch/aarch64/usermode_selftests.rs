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
