//! EL0 for native sandboxes: entering EL0, the one exit (`svc #0`), and routing exceptions
//! from EL0 to the sandbox that caused them instead of to a kernel fault report.
//!
//! - `init` (every CPU): PAN on (and set again on every exception entry: SCTLR_EL1.SPAN
//!   clear), and SCTLR_EL1 so that EL0 cannot reach what the kernel keeps to itself: cache
//!   maintenance by VA (`dc civac`, `ic ivau`: UCI), `dc zva` (DZE), CTR_EL0 (UCT), DAIF
//!   (UMA), `wfi`/`wfe` (nTWI/nTWE) all trap; SP alignment checked at EL0 (SA0). EL0 counter
//!   and PMU access stay off (CNTKCTL_EL1, PMUSERENR_EL0), and DCC access traps (MDSCR_EL1).
//! - [`enter_user`] saves the kernel's callee-saved registers and stack pointer (the per-CPU
//!   block) and enters EL0 with `eret`, IRQs unmasked, in the context of a [`UserRegs`]: x0-x30,
//!   SP_EL0, PC, NZCV, TPIDR_EL0, TPIDRRO_EL0, FPCR, FPSR and q0-q31.
//! - Every exception from EL0 saves that whole context into the same [`UserRegs`] first (the
//!   kernel itself uses FP/SIMD, so the sandbox's vector registers must be out of the way before
//!   any Rust runs), then asks [`user_trap`] what to do: resume (a lazily mapped page, a timer
//!   tick with time left), or leave: [`Exit::Syscall`] (`svc #0`), [`Exit::Ended`] (the
//!   [`Session`] recorded why), [`Exit::Preempted`] (its slice is used up; `UserRegs` holds its
//!   whole context and resumes it).
//! - On the way out TPIDR_EL0, TPIDRRO_EL0, SP_EL0, FPCR, FPSR and every vector register are
//!   zeroed, and a fresh run starts from a zero [`UserRegs`], so nothing of one sandbox is
//!   visible to the next.

use core::arch::global_asm;
use core::cell::Cell;

use aarch64_cpu::registers::{ID_AA64MMFR1_EL1, Readable, SCTLR_EL1, Writeable};

use super::percpu::{USER_KERNEL_SP_OFFSET, USER_REGS_OFFSET};
use super::traps::esr_class;
use crate::smp::MAX_CPUS;

/// A sandbox's user-visible register state: what [`enter_user`] starts (or resumes) it with,
/// what an exception from EL0 saved (a preemption's resume point, or the exit call's
/// registers). A fresh run starts from [`UserRegs::start`]: every other register zero.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    /// SPSR as saved; only NZCV (31:28) is ever given back to EL0.
    pub pstate: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub fpcr: u64,
    pub fpsr: u64,
    pub v: [u128; 32],
    /// The capabilities a `cheri` sandbox runs with (off for `paging`); see [`CheriBounds`].
    pub cheri: CheriBounds,
}

/// The bounds the EL0 entry derives a `cheri` sandbox's capabilities from, on every entry and
/// resume (`morello_set_user_caps`): PCC over `[pcc_base, pcc_base + pcc_len)` with Load and
/// Execute, DDC (RDDC_EL0) and the Restricted stack pointer over `[ddc_base, ddc_base +
/// ddc_len)` with Load and Store. `on == 0`: the `paging` engine's root PCC.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheriBounds {
    pub pcc_base: u64,
    pub pcc_len: u64,
    pub ddc_base: u64,
    pub ddc_len: u64,
    pub on: u64,
    _pad: u64,
}

impl CheriBounds {
    pub fn new(pcc_base: u64, pcc_len: u64, ddc_base: u64, ddc_len: u64) -> Self {
        Self { pcc_base, pcc_len, ddc_base, ddc_len, on: 1, _pad: 0 }
    }
}

pub(super) const REGS_SP: usize = 248;
const REGS_PC: usize = 256;
pub(super) const REGS_TPIDR: usize = 272;
const REGS_FPCR: usize = 288;
const REGS_V: usize = 304;
pub(super) const REGS_CHERI: usize = 816;

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(UserRegs, sp) == REGS_SP && offset_of!(UserRegs, pc) == REGS_PC);
    assert!(offset_of!(UserRegs, pstate) == REGS_PC + 8 && offset_of!(UserRegs, tpidr_el0) == REGS_TPIDR);
    assert!(offset_of!(UserRegs, tpidrro_el0) == REGS_TPIDR + 8 && offset_of!(UserRegs, fpcr) == REGS_FPCR);
    assert!(offset_of!(UserRegs, fpsr) == REGS_FPCR + 8 && offset_of!(UserRegs, v) == REGS_V);
    assert!(offset_of!(UserRegs, cheri) == REGS_CHERI && offset_of!(CheriBounds, on) == 32);
};

impl UserRegs {
    /// A fresh run's registers: PC at `entry`, SP at `stack_top` (16-byte aligned), x0 =
    /// `arg` (the system data block), everything else zero.
    pub fn start(entry: u64, stack_top: u64, arg: u64) -> Self {
        let mut regs = Self { pc: entry, sp: stack_top, ..Self::default() };
        regs.x[0] = arg;
        regs
    }

    /// Sets the thread pointer a fresh run finds: TPIDRRO_EL0, which EL0 reads and cannot write.
    pub fn set_thread_pointer(&mut self, address: u64) {
        self.tpidrro_el0 = address;
    }

    /// The exit call as the sandbox made it: x8 the number, x0 the status, x1 and x2 the
    /// pointer and length, and the address of the `svc` (PC is past it).
    pub fn exit_call(&self) -> native::ExitCall {
        native::ExitCall {
            number: self.x[8],
            status: self.x[0],
            pointer: self.x[1],
            len: self.x[2],
            rip: self.pc.wrapping_sub(4),
        }
    }
}

/// FP/SIMD state lives in [`UserRegs`] on aarch64 (saved on every exception from EL0); this is
/// the x86_64 engine's separate XSAVE area, empty here so that `native` reads the same.
#[derive(Default)]
pub struct ExtendedState;

impl ExtendedState {
    pub const fn new() -> Self {
        Self
    }

    /// As [`ExtendedState::new`] (nothing here: the vector registers are in `UserRegs`).
    pub fn reset(&mut self) {}
}

/// How a sandbox run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It executed `svc #0`; [`UserRegs::exit_call`] reads its registers.
    Syscall,
    /// The kernel ended it from an exception; the session knows why.
    Ended,
    /// Its time slice ran out: [`UserRegs`] holds its whole context.
    Preempted,
}

/// What a timer tick at EL0 does with the sandbox ([`Session::on_tick`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    Resume,
    End,
    Preempt,
}

/// What a sandbox engine provides while one of its sandboxes runs on this CPU.
pub trait Session {
    /// An exception from EL0 other than the exit call and interrupts: `vector` is ESR_EL1's
    /// exception class, `error_code` the whole ESR_EL1, `rip` ELR_EL1, `cr2` FAR_EL1 (the names
    /// are x86_64's, so that `native` reads the same). `Some(())`: handled, resume; `None`: end
    /// the sandbox (the session recorded why).
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()>;
    /// A timer tick while the sandbox ran.
    fn on_tick(&mut self) -> Tick;
}

const RESUME: u64 = 0;
const EXIT_SYSCALL: u64 = 1;
const EXIT_ENDED: u64 = 2;
const EXIT_PREEMPTED: u64 = 3;

/// Bytes `pappus_enter_user` keeps on the kernel stack: x19-x30 and d8-d15.
const KEEP: usize = 160;

global_asm!(
    include_str!("usermode.S"),
    keep = const KEEP,
    ksp = const USER_KERNEL_SP_OFFSET,
    uregs = const USER_REGS_OFFSET,
    v = const REGS_V,
    fpcr = const REGS_FPCR,
    tpidr = const REGS_TPIDR,
    sp_off = const REGS_SP,
    pc = const REGS_PC,
    cheri = const REGS_CHERI,
    user_trap = sym user_trap,
);

unsafe extern "C" {
    fn pappus_enter_user(regs: *mut UserRegs) -> u64;
}

/// What runs at EL0 on each CPU now (indexed by CPU number).
struct Slot(Cell<Option<*mut dyn Session>>);
// SAFETY: each slot is only touched by its own CPU (set around `enter_user`, read from that
// CPU's EL0 exception path).
unsafe impl Sync for Slot {}
static SESSIONS: [Slot; MAX_CPUS] = [const { Slot(Cell::new(None)) }; MAX_CPUS];

/// Whether the `cheri` engine can run here: a Morello CPU with capabilities enabled.
pub fn cheri_available() -> bool {
    super::morello::enabled()
}

/// Confines a sandbox whose context is `regs` by capabilities (the `cheri` engine): PCC over
/// `pcc` (base, length) with Load and Execute, DDC and the Restricted stack pointer over `ddc`
/// with Load and Store, derived afresh by every entry and resume. Refused when either is not
/// exactly representable (never rounded outwards) or capabilities are off.
pub fn confine(regs: &mut UserRegs, pcc: (u64, u64), ddc: (u64, u64)) -> Result<(), &'static str> {
    use super::morello::{DeriveError, derive};
    use cheri::perms::{ALL, SANDBOX_CODE, SANDBOX_DATA};
    for ((base, len), keep) in [(pcc, SANDBOX_CODE), (ddc, SANDBOX_DATA)] {
        derive(base, len, ALL & !keep).map_err(|e| match e {
            DeriveError::NotMorello => "CHERI capabilities need an Arm Morello CPU",
            DeriveError::NotRepresentable => "the sandbox's bounds are not exactly representable",
            DeriveError::Sealed => "the sandbox's capability came out sealed",
        })?;
    }
    regs.cheri = CheriBounds::new(pcc.0, pcc.1, ddc.0, ddc.1);
    Ok(())
}

/// Protection keys: aarch64 has none (QEMU offers no FEAT_S1POE), so the MPK engine is never
/// made here and PKRU is never written.
pub fn pku_enabled() -> bool {
    false
}

/// PKRU denying every key (x86_64 only; never used here).
pub const PKRU_DENY_ALL: u32 = u32::MAX;

/// PKRU granting `key` alone (x86_64 only; never used here).
pub const fn pkru_grant_only(key: u8) -> u32 {
    PKRU_DENY_ALL & !(0b11 << (2 * key as u32))
}

/// Never called on aarch64 ([`pku_enabled`] is false); logs if it ever is.
pub fn set_pkru(_value: u32) {
    log::error!("usermode: set_pkru on aarch64, which has no protection keys");
}

/// SCTLR_EL1 bits cleared for EL0: UCI (26), nTWE (18), nTWI (16), UCT (15), DZE (14), UMA (9),
/// and SPAN (23: PAN is set on every exception entry to EL1).
const SCTLR_CLEAR: u64 = (1 << 26) | (1 << 23) | (1 << 18) | (1 << 16) | (1 << 15) | (1 << 14) | (1 << 9);
/// SCTLR_EL1 bits set: SA0 (4), SP alignment checks at EL0.
const SCTLR_SET: u64 = 1 << 4;

/// Whether the CPU has PAN (ID_AA64MMFR1_EL1.PAN).
pub fn has_pan() -> bool {
    (ID_AA64MMFR1_EL1.get() >> 20) & 0xf != 0
}

/// Zeroes `bytes` (a page a sandbox wrote, between runs): its aligned middle a `DC ZVA` block
/// at a time (64 bytes on QEMU's `max` and on Morello, where it clears the capability tags
/// too), the ends with `fill`. Why: `fill` stores at most 16 bytes an instruction, and the
/// aarch64 engine zeroes its kept stack and heap pages after every run (`native.aarch64.paging.
/// noop.destroy_instructions`).
pub fn zero(bytes: &mut [u8]) {
    let dczid: u64;
    // SAFETY: DCZID_EL0 is readable at every exception level.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    // DZP (bit 4): DC ZVA prohibited. BS (bits 3:0): log2 of the block in 4-byte words.
    let block = 4usize << (dczid & 0xf);
    if dczid & 0x10 != 0 {
        bytes.fill(0);
        return;
    }
    // SAFETY: `middle` is ours to write (normal cacheable memory: the direct map), starts on a
    // block boundary and is a whole number of blocks; DC ZVA writes zeros to exactly the block
    // its address falls in.
    kcore::units::zero_by_blocks(bytes, block, |middle| unsafe {
        core::arch::asm!(
            "2:",
            "dc zva, {at}",
            "add {at}, {at}, {block}",
            "cmp {at}, {end}",
            "b.ne 2b",
            at = inout(reg) middle.as_mut_ptr() => _,
            block = in(reg) block,
            end = in(reg) middle.as_mut_ptr().add(middle.len()),
            options(nostack),
        );
    });
}

/// Sets up this CPU for sandboxes (each CPU; the secondaries copy the boot CPU's SCTLR_EL1,
/// but run this too for PSTATE.PAN and the EL0 access registers).
pub fn init() {
    SCTLR_EL1.set((SCTLR_EL1.get() & !SCTLR_CLEAR) | SCTLR_SET);
    // SAFETY: PMUSERENR_EL0 = 0 and MDSCR_EL1.TDCC: EL0 gets no PMU or debug-channel access;
    // neither changes anything for the kernel.
    unsafe {
        core::arch::asm!("msr pmuserenr_el0, xzr", "msr mdscr_el1, {}", "isb", in(reg) 1u64 << 12, options(nostack));
    }
    if has_pan() {
        // SAFETY: `msr pan, #1` (encoded by hand: the baseline target has no FEAT_PAN). The
        // kernel never dereferences a user address, so PAN only turns a kernel bug into a fault.
        unsafe { core::arch::asm!(".inst 0xd500419f", options(nomem, nostack)) };
    }
    if super::cpu_index() == 0 {
        log::info!(
            "usermode: EL0 ready (svc exit, {} ASIDs, PAN {})",
            super::paging::asid_count(),
            if has_pan() { "on" } else { "absent" }
        );
    }
}

/// Runs EL0 code with `regs` until it exits through `svc #0`, `session` ends it, or its slice
/// runs out ([`Exit::Preempted`]: `regs` then holds its whole context, and calling again with
/// it resumes it). The caller has mapped the code, stack and data in the current space.
/// `first_tick` (a counter deadline) arms the timer for the session's first `on_tick`, with
/// IRQs masked, so a tick due before EL0 is reached is taken at EL0; released on the way out
/// (`release_tick`: it may still come, early for the next run or in the kernel).
pub fn enter_user(
    regs: &mut UserRegs,
    _extended: &mut ExtendedState,
    session: &mut dyn Session,
    first_tick: Option<u64>,
) -> Exit {
    let cpu = super::cpu_index();
    // SAFETY: the slot holds the pointer only while `enter_user` runs on this CPU; the EL0
    // exception path dereferences it only then. The lifetime is erased for the slot's type and
    // restored by clearing the slot before `session` goes out of scope.
    let erased: *mut (dyn Session + 'static) = unsafe { core::mem::transmute(session as *mut dyn Session) };
    SESSIONS[cpu].0.set(Some(erased));
    super::mask_irqs();
    if let Some(tick) = first_tick {
        arm_tick(tick);
    }
    // SAFETY: the assembly keeps every register the AAPCS64 asks and restores them on every
    // exit path; it runs the sandbox at EL0, whose pages are its own (the kernel's are EL1-only).
    let result = unsafe { pappus_enter_user(regs) };
    if first_tick.is_some() {
        release_tick();
    }
    SESSIONS[cpu].0.set(None);
    match result {
        EXIT_SYSCALL => Exit::Syscall,
        EXIT_PREEMPTED => Exit::Preempted,
        _ => Exit::Ended,
    }
}

/// Exception kinds (the vector's index) from EL0.
const KIND_SYNC_EL0: u64 = 8;
const KIND_IRQ_EL0: u64 = 9;
/// ESR_EL1.EC of `svc` from AArch64.
const EC_SVC64: u64 = 0x15;

/// An exception from EL0, its context saved in the running sandbox's [`UserRegs`]: what to do.
extern "C" fn user_trap(kind: u64, esr: u64, far: u64) -> u64 {
    let cpu = super::cpu_index();
    let Some(session) = SESSIONS[cpu].0.get() else { return EXIT_ENDED };
    // SAFETY: set by `enter_user` on this CPU for the duration of the EL0 run that trapped.
    let session = unsafe { &mut *session };
    let elr: u64;
    // SAFETY: reading ELR_EL1 (unchanged since the exception) has no side effects.
    unsafe { core::arch::asm!("mrs {}, elr_el1", out(reg) elr, options(nomem, nostack)) };
    match kind {
        KIND_IRQ_EL0 => {
            let this = super::percpu::current();
            let before = this.timer_firings.load(core::sync::atomic::Ordering::Relaxed);
            super::handle_irq();
            if this.timer_firings.load(core::sync::atomic::Ordering::Relaxed) == before {
                return RESUME; // a wake-up or another interrupt: the sandbox goes on
            }
            match session.on_tick() {
                Tick::Resume => RESUME,
                Tick::End => EXIT_ENDED,
                Tick::Preempt => EXIT_PREEMPTED,
            }
        }
        KIND_SYNC_EL0 if esr_class(esr) == EC_SVC64 && esr & 0xffff == 0 => EXIT_SYSCALL,
        _ => match session.on_fault(if kind == KIND_SYNC_EL0 { esr_class(esr) } else { 0x2f }, esr, elr, far) {
            Some(()) => RESUME,
            None => EXIT_ENDED,
        },
    }
}

/// Arms this CPU's timer to interrupt the sandbox at counter `deadline` at the latest: a
/// deadline already armed that comes sooner stands (`timer::arm_by`).
pub fn arm_tick(deadline: u64) {
    super::timer::arm_by(deadline);
}

/// The sandbox's timer tick is no longer needed; the timer stays armed (`timer::release`) for
/// a run that follows within the check interval.
pub fn release_tick() {
    super::timer::release();
}

/// What a fault from EL0 means for a sandbox at `layout` (the aarch64 reading of ESR/FAR).
pub fn classify_fault(
    layout: native::Layout,
    heap_end: u64,
    pages_left: u64,
    memory_limit: u64,
    fault: native::fault::Fault,
) -> native::FaultAction {
    native::fault::classify_el0_fault(layout, heap_end, pages_left, memory_limit, fault)
}
