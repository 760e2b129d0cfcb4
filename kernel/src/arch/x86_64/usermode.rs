//! Ring 3 for native sandboxes: entering user mode, the one exit (`syscall`), and routing
//! traps from ring 3 to the sandbox that caused them instead of to a kernel panic.
//!
//! - `init` (every CPU): SSE/AVX for ring 3 (CR0.MP, CR4.OSFXSR/OSXMMEXCPT/OSXSAVE, XCR0 with
//!   x87|SSE|AVX and never PKRU), `syscall` (EFER.SCE, STAR, LSTAR, FMASK), a zero
//!   `KERNEL_GS_BASE` so that `swapgs` gives ring 3 a zero GS base.
//! - [`enter_user`] saves the kernel's callee-saved registers and stack pointer in the per-CPU
//!   block, scrubs the general registers and enters ring 3 with `iretq` (interrupts on). It
//!   returns when the sandbox executes `syscall` ([`Exit::Syscall`], with the registers the
//!   exit call passes) or when the kernel ends it from a trap ([`end_sandbox`]).
//! - Traps from ring 3 land on the per-CPU ring-3 trap stack (TSS.rsp0) and go to the
//!   [`Session`] registered for this CPU: it maps a lazily allocated page and resumes, or ends
//!   the sandbox with the fault's description. The timer interrupt asks the session whether the
//!   time budget is spent.
//!
//! The kernel is built soft-float and never touches the FPU/SSE/AVX state, so the sandbox's
//! extended state needs no saving: [`scrub_extended_state`] loads the initial state before
//! entry and after exit, so nothing crosses from one function to the next.

use core::arch::{asm, global_asm};
use core::cell::Cell;

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

use super::percpu::{self, USER_KERNEL_RSP_OFFSET};
use super::traps::TrapFrame;
use crate::smp::MAX_CPUS;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const EFER_SCE: u64 = 1;
/// RFLAGS bits `syscall` clears: TF, IF, DF, NT, AC (so the kernel runs with SMAP enforced).
const FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 14) | (1 << 18);
/// XCR0 components the kernel enables for ring 3: x87, SSE, AVX. Bit 9 (PKRU) never: XRSTOR
/// must not be able to load PKRU.
const XCR0_X87: u64 = 1;
const XCR0_SSE: u64 = 2;
const XCR0_AVX: u64 = 4;
const XCR0_PKRU: u64 = 1 << 9;

/// Offsets in [`UserRegs`], for the assembly.
const REGS_RIP: usize = 0;
const REGS_RSP: usize = 8;
const REGS_RDI: usize = 16;
const REGS_OUT_RAX: usize = 24;
const REGS_OUT_RDI: usize = 32;
const REGS_OUT_RSI: usize = 40;
const REGS_OUT_RDX: usize = 48;
const REGS_OUT_RIP: usize = 56;

/// What [`enter_user`] starts the sandbox with and what its exit call passed back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    /// Entry point.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// First argument (the system data block).
    pub rdi: u64,
    /// At `syscall`: `rax` (the call number), `rdi`, `rsi`, `rdx`, and the address after the
    /// `syscall` instruction.
    pub out_rax: u64,
    pub out_rdi: u64,
    pub out_rsi: u64,
    pub out_rdx: u64,
    pub out_rip: u64,
}

/// How a sandbox run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It executed `syscall`; [`UserRegs`]' `out_*` fields hold its registers.
    Syscall,
    /// The kernel ended it from a trap ([`end_sandbox`]); the session knows why.
    Ended,
}

const EXIT_SYSCALL: u64 = 0;
const EXIT_ENDED: u64 = 1;

global_asm!(
    r#"
    .section .text.usermode, "ax"
    .global pappus_enter_user
pappus_enter_user:
    /* rdi = &mut UserRegs. Save what the SysV ABI asks us to keep, then the flags (interrupt
       state) and the regs pointer; the exit paths find all of it at gs:[USER_KERNEL_RSP]. */
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    pushfq
    push rdi
    mov gs:[{krsp}], rsp
    cli
    push {user_ss}
    push qword ptr [rdi + {rsp_off}]
    push 0x202                  /* IF, reserved bit 1 */
    push {user_cs}
    push qword ptr [rdi + {rip_off}]
    mov rdi, [rdi + {rdi_off}]
    xor eax, eax
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor ebp, ebp
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    swapgs
    iretq

    /* `syscall` from ring 3: rcx = user rip, r11 = user rflags, FMASK cleared IF/AC/DF/TF. */
    .global pappus_syscall_entry
pappus_syscall_entry:
    swapgs
    mov rsp, gs:[{krsp}]
    mov r8, [rsp]
    mov [r8 + {out_rax}], rax
    mov [r8 + {out_rdi}], rdi
    mov [r8 + {out_rsi}], rsi
    mov [r8 + {out_rdx}], rdx
    mov [r8 + {out_rip}], rcx
    mov eax, {exit_syscall}
    jmp pappus_user_return

    /* From a trap handler on the ring-3 trap stack (kernel GS already swapped in): drop that
       stack and return from `pappus_enter_user` with rdi as the result. */
    .global pappus_end_sandbox
pappus_end_sandbox:
    mov rsp, gs:[{krsp}]
    mov rax, rdi
pappus_user_return:
    add rsp, 8                  /* the regs pointer */
    popfq
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d
    ret
    "#,
    krsp = const USER_KERNEL_RSP_OFFSET,
    user_ss = const USER_DATA_SELECTOR,
    user_cs = const USER_CODE_SELECTOR,
    rsp_off = const REGS_RSP,
    rip_off = const REGS_RIP,
    rdi_off = const REGS_RDI,
    out_rax = const REGS_OUT_RAX,
    out_rdi = const REGS_OUT_RDI,
    out_rsi = const REGS_OUT_RSI,
    out_rdx = const REGS_OUT_RDX,
    out_rip = const REGS_OUT_RIP,
    exit_syscall = const EXIT_SYSCALL,
);

/// The ring-3 selectors `percpu.rs` builds (GDT: null, kernel code, kernel data, TSS (two
/// slots), user data, user code), with RPL 3; `init` checks they agree.
const USER_DATA_SELECTOR: u64 = (5 << 3) | 3;
const USER_CODE_SELECTOR: u64 = (6 << 3) | 3;

unsafe extern "C" {
    fn pappus_enter_user(regs: *mut UserRegs) -> u64;
    fn pappus_syscall_entry();
    fn pappus_end_sandbox(result: u64) -> !;
}

/// What a sandbox engine provides while one of its sandboxes runs on this CPU.
pub trait Session {
    /// A fault from ring 3. `Some(())` means handled (a lazily mapped page): resume the
    /// sandbox. `None` means the sandbox must end; the session has recorded why.
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()>;
    /// A timer tick while the sandbox ran: `true` ends it (the budget is spent or the run is
    /// cancelled), `false` resumes it (the session re-arms the timer).
    fn on_tick(&mut self) -> bool;
}

/// The session of the sandbox running on each CPU (only the boot CPU runs sandboxes until the
/// SMP work gives every CPU its own block; indexed by CPU number).
struct Slot(Cell<Option<*mut dyn Session>>);
// SAFETY: each slot is only touched by its own CPU (set around `enter_user`, read from that
// CPU's trap handlers).
unsafe impl Sync for Slot {}
static SESSIONS: [Slot; MAX_CPUS] = [const { Slot(Cell::new(None)) }; MAX_CPUS];

/// Whether CR4.PKE is on (the MPK engine's precondition).
static PKU: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// PKRU denying access and writes for every key.
pub const PKRU_DENY_ALL: u32 = u32::MAX;

/// PKRU granting key `key` alone (read and write), every other key denied.
pub const fn pkru_grant_only(key: u8) -> u32 {
    PKRU_DENY_ALL & !(0b11 << (2 * key as u32))
}

/// Whether protection keys are on (CPUID has PKU and CR4.PKE is set).
pub fn pku_enabled() -> bool {
    PKU.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sets this CPU's PKRU (only with CR4.PKE on).
pub fn write_pkru(value: u32) {
    debug_assert!(pku_enabled());
    // SAFETY: WRPKRU with ECX = EDX = 0 only changes which protection keys user pages may be
    // accessed with; the kernel never touches user pages directly (SMAP).
    unsafe { asm!("wrpkru", in("eax") value, in("ecx") 0, in("edx") 0, options(nostack, nomem)) };
}

/// Whether the CPU enabled XSAVE (`scrub_extended_state` uses XRSTOR, else FXRSTOR).
static XSAVE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The initial x87/SSE state for FXRSTOR/XRSTOR: FCW 0x37f, MXCSR 0x1f80, every register zero,
/// and (XSAVE header) XSTATE_BV = 0, which makes XRSTOR put every component in its init state.
#[repr(C, align(64))]
struct InitArea([u8; 576]);
static INIT_AREA: InitArea = {
    let mut a = [0u8; 576];
    a[0] = 0x7f; // FCW = 0x037f
    a[1] = 0x03;
    a[24] = 0x80; // MXCSR = 0x1f80
    a[25] = 0x1f;
    a[28] = 0xff; // MXCSR_MASK (ignored by the restore)
    a[29] = 0xff;
    InitArea(a)
};

fn cpuid(leaf: u32, sub: u32) -> core::arch::x86_64::CpuidResult {
    // SAFETY: CPUID exists on every x86_64 CPU and has no side effects.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::__cpuid_count(leaf, sub)
    }
}

/// Sets up this CPU for sandboxes: extended state for ring 3, the `syscall` exit.
pub fn init() {
    let sel = percpu::current().selectors;
    assert!(
        u64::from(sel.user_data.0) == USER_DATA_SELECTOR && u64::from(sel.user_code.0) == USER_CODE_SELECTOR,
        "GDT layout changed: user selectors {:#x}/{:#x}",
        sel.user_data.0,
        sel.user_code.0
    );
    let has_xsave = cpuid(1, 0).ecx & (1 << 26) != 0;
    let has_pku = super::cpu::has_pku();
    let has_avx = cpuid(1, 0).ecx & (1 << 28) != 0;
    // SAFETY: enabling SSE for ring 3 changes nothing for the kernel (soft-float, it executes
    // no SSE instruction); CR0.EM off and MP on are what SSE requires.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            if has_xsave {
                f.insert(Cr4Flags::OSXSAVE);
            }
            if has_pku {
                f.insert(Cr4Flags::PROTECTION_KEY_USER);
            }
        });
    }
    if has_pku {
        PKU.store(true, core::sync::atomic::Ordering::Relaxed);
        // No user page is reachable outside a sandbox run.
        write_pkru(PKRU_DENY_ALL);
    }
    let mut xcr0 = 0;
    if has_xsave {
        let supported = u64::from(cpuid(0xd, 0).eax);
        xcr0 = XCR0_X87 | XCR0_SSE | if has_avx { supported & XCR0_AVX } else { 0 };
        debug_assert!(xcr0 & XCR0_PKRU == 0);
        // SAFETY: CR4.OSXSAVE is on; the value holds only components CPUID reports, x87 and SSE
        // included as the architecture requires, and never PKRU.
        unsafe { asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack)) };
        XSAVE.store(xcr0, core::sync::atomic::Ordering::Relaxed);
    }
    let kernel_cs = u64::from(sel.kernel_code.0);
    // SAFETY: `syscall` then enters `pappus_syscall_entry` with the kernel's CS (and SS = CS + 8,
    // the kernel data segment in this GDT), masking interrupts; SYSRET is never used. A zero
    // KERNEL_GS_BASE is what ring 3 sees as its GS base after `swapgs`.
    unsafe {
        Msr::new(MSR_STAR).write(kernel_cs << 32 | (USER_DATA_SELECTOR - 8 - 3) << 48);
        Msr::new(MSR_LSTAR).write(pappus_syscall_entry as *const () as u64);
        Msr::new(MSR_FMASK).write(FMASK);
        Msr::new(MSR_KERNEL_GS_BASE).write(0);
        let mut efer = Msr::new(MSR_EFER);
        let value = efer.read();
        efer.write(value | EFER_SCE);
    }
    // Once, from the boot CPU: the application processors set up the same.
    if percpu::current_index() == 0 {
        log::info!(
            "usermode: ring 3 ready (syscall exit, XCR0 {xcr0:#x}{}), PKU {}",
            if has_xsave { "" } else { ", FXSAVE only" },
            super::cpu::has_pku()
        );
    }
}

/// Puts the x87/SSE/AVX registers in their initial state (no data from anyone).
pub fn scrub_extended_state() {
    let xcr0 = XSAVE.load(core::sync::atomic::Ordering::Relaxed);
    if xcr0 != 0 {
        // SAFETY: the area is 64-byte aligned, its header says every component is in its init
        // state, and XCR0 enables exactly the components asked for.
        unsafe {
            asm!("xrstor64 [{}]", in(reg) &INIT_AREA.0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack, readonly))
        };
    } else {
        // SAFETY: a valid 16-byte aligned FXSAVE image of the initial state.
        unsafe { asm!("fxrstor64 [{}]", in(reg) &INIT_AREA.0, options(nostack, readonly)) };
    }
}

/// Runs ring-3 code with `regs` until it exits through `syscall` or `session` ends it. The
/// caller has mapped the code, stack and data (user pages) in the current address space.
pub fn enter_user(regs: &mut UserRegs, session: &mut dyn Session) -> Exit {
    let cpu = super::cpu_index();
    // SAFETY: the slot holds the pointer only while `enter_user` runs on this CPU; trap handlers
    // dereference it only then. The lifetime is erased for the slot's type and restored by
    // clearing the slot before `session` goes out of scope.
    let erased: *mut (dyn Session + 'static) = unsafe { core::mem::transmute(session as *mut dyn Session) };
    SESSIONS[cpu].0.set(Some(erased));
    scrub_extended_state();
    // SAFETY: the assembly saves every register the ABI needs kept and restores them on both
    // exit paths; it runs the sandbox at CPL 3, which cannot reach kernel memory.
    let result = unsafe { pappus_enter_user(regs) };
    scrub_extended_state();
    SESSIONS[cpu].0.set(None);
    if result == EXIT_SYSCALL { Exit::Syscall } else { Exit::Ended }
}

/// Whether a trap frame comes from ring 3.
pub fn from_user(frame: &TrapFrame) -> bool {
    frame.cs & 3 != 0
}

fn session() -> Option<&'static mut dyn Session> {
    let ptr = SESSIONS[super::cpu_index()].0.get()?;
    // SAFETY: set by `enter_user` on this CPU for the duration of the ring-3 run that trapped.
    Some(unsafe { &mut *ptr })
}

/// An exception from ring 3: the session handles it or the sandbox ends.
pub fn user_exception(frame: &TrapFrame, cr2: u64) {
    let handled = match session() {
        Some(s) => s.on_fault(frame.vector, frame.error_code, frame.rip, cr2),
        None => None,
    };
    if handled.is_none() {
        end_sandbox();
    }
}

/// A timer tick that interrupted ring 3 (after EOI): end the sandbox if its time is up.
pub fn user_tick() {
    if session().is_none_or(|s| s.on_tick()) {
        end_sandbox();
    }
}

/// Abandons the ring-3 context (its registers stay behind on the trap stack, which is reset on
/// the next entry) and returns from [`enter_user`] with [`Exit::Ended`].
fn end_sandbox() -> ! {
    // SAFETY: called only from a trap taken in ring 3 during `enter_user` on this CPU, so the
    // saved kernel stack pointer is valid and everything below it is dead.
    unsafe { pappus_end_sandbox(EXIT_ENDED) }
}

/// Arms this CPU's timer to interrupt the sandbox at TSC `deadline` (its next budget check).
pub fn arm_tick(deadline: u64) {
    super::timer::arm_deadline(deadline);
}

/// Cancels the sandbox's pending timer tick.
pub fn disarm_tick() {
    super::timer::disarm();
}
