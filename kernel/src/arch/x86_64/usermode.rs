//! Ring 3 for native sandboxes: entering user mode, the one exit (`syscall`), and routing
//! traps from ring 3 to the sandbox that caused them instead of to a kernel panic.
//!
//! - `init` (every CPU): SSE/AVX for ring 3 (CR0.MP, CR4.OSFXSR/OSXMMEXCPT/OSXSAVE, XCR0 with
//!   x87|SSE|AVX and never PKRU), CR4.UMIP where CPUID has it, `syscall` (EFER.SCE, STAR,
//!   LSTAR, FMASK), a zero `KERNEL_GS_BASE` so that `swapgs` gives ring 3 a zero GS base.
//! - [`enter_user`] saves the kernel's callee-saved registers and stack pointer in the per-CPU
//!   block and enters ring 3 with `iretq` (interrupts on) in the context of a [`UserRegs`]
//!   (every general register, RIP/RSP/RFLAGS, DS/ES/FS/GS, FS/GS bases) and an
//!   [`ExtendedState`]. It returns when the sandbox executes `syscall` ([`Exit::Syscall`], with
//!   the registers the exit call passes), when the kernel ends it from a trap ([`end_sandbox`],
//!   [`Exit::Ended`]), or when its slice is used up ([`Exit::Preempted`]: its whole context saved
//!   in the same `UserRegs` and `ExtendedState`, which resume it).
//! - Traps from ring 3 land on the per-CPU ring-3 trap stack (TSS.rsp0) and go to the
//!   [`Session`] registered for this CPU: it maps a lazily allocated page and resumes, or ends
//!   the sandbox with the fault's description. The timer interrupt asks the session whether to
//!   resume, end or preempt ([`Tick`]).
//!
//! The kernel is built soft-float and does not otherwise touch the FPU/SSE/AVX state, so between
//! entry and exit it is the sandbox's alone: [`scrub_extended_state`] loads the initial state on
//! the way out, and every entry loads the run's own (XRSTOR of the saved state after a
//! preemption, the initial state for a fresh run), so nothing crosses from one function to the
//! next. Outside every run the vector registers are the kernel's scratch: [`zero`] stores a
//! cleared XMM0/YMM0, and the wasm interpreter's float arithmetic uses XMM0/XMM1 (`float.S`);
//! no trap handler does either. Data segments and FS/GS bases go back to null and zero on every
//! exit likewise.

use core::arch::{asm, global_asm};
use core::cell::Cell;
use core::mem::MaybeUninit;

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

use super::cpu::leaf as cpuid;
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
const REGS_RFLAGS: usize = 64;
const REGS_RAX: usize = 72;
const REGS_RBX: usize = 80;
const REGS_RCX: usize = 88;
const REGS_RDX: usize = 96;
const REGS_RSI: usize = 104;
const REGS_RBP: usize = 112;
const REGS_R8: usize = 120;
const REGS_R9: usize = 128;
const REGS_R10: usize = 136;
const REGS_R11: usize = 144;
const REGS_R12: usize = 152;
const REGS_R13: usize = 160;
const REGS_R14: usize = 168;
const REGS_R15: usize = 176;

/// A sandbox's user-visible register state: what [`enter_user`] starts (or resumes) it with,
/// what a preemption saved, and what its exit call passed back. A fresh run starts from
/// `UserRegs { rip, rsp, rdi, ..Default::default() }`: every other register zero, RFLAGS
/// 0x202, null data segments, zero FS/GS bases.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    /// Where the sandbox (re)starts.
    pub rip: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// `rdi` (at the first entry: the system data block).
    pub rdi: u64,
    /// At `syscall`: `rax` (the call number), `rdi`, `rsi`, `rdx`, and the address after the
    /// `syscall` instruction.
    pub out_rax: u64,
    pub out_rdi: u64,
    pub out_rsi: u64,
    pub out_rdx: u64,
    pub out_rip: u64,
    /// RFLAGS; only the bits ring 3 may hold are restored ([`USER_RFLAGS`]), IF always set.
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The data segment selectors (only null or the user selectors are ever loaded).
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    /// FS and GS bases (only canonical lower-half values are ever loaded).
    pub fs_base: u64,
    pub gs_base: u64,
}

impl UserRegs {
    /// A fresh run's registers: RIP at `entry`, RSP at `stack_top` - 8 (as after a `call`),
    /// RDI = `arg` (the system data block), everything else zero.
    pub fn start(entry: u64, stack_top: u64, arg: u64) -> Self {
        Self { rip: entry, rsp: stack_top - 8, rdi: arg, ..Self::default() }
    }

    /// Sets the thread pointer a fresh run finds: the FS base (a function reads through it with
    /// `fs:`-relative loads, needing no FSGSBASE instructions).
    pub fn set_thread_pointer(&mut self, address: u64) {
        self.fs_base = address;
    }

    /// The exit call as the sandbox made it (`syscall` is 2 bytes before `out_rip`).
    pub fn exit_call(&self) -> native::ExitCall {
        native::ExitCall {
            number: self.out_rax,
            status: self.out_rdi,
            pointer: self.out_rsi,
            len: self.out_rdx,
            rip: self.out_rip.wrapping_sub(2),
        }
    }
}

/// What a fault from ring 3 means for a sandbox at `layout` (`native::classify_fault`, with
/// this arch's vector names).
pub fn classify_fault(
    layout: native::Layout,
    heap_end: u64,
    pages_left: u64,
    memory_limit: u64,
    fault: native::fault::Fault,
) -> native::FaultAction {
    native::classify_fault(layout, heap_end, pages_left, memory_limit, fault, super::vector_name(fault.vector))
}

// The assembly's offsets agree with the struct.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(UserRegs, rip) == REGS_RIP && offset_of!(UserRegs, rsp) == REGS_RSP);
    assert!(offset_of!(UserRegs, rdi) == REGS_RDI && offset_of!(UserRegs, out_rax) == REGS_OUT_RAX);
    assert!(offset_of!(UserRegs, out_rdi) == REGS_OUT_RDI && offset_of!(UserRegs, out_rsi) == REGS_OUT_RSI);
    assert!(offset_of!(UserRegs, out_rdx) == REGS_OUT_RDX && offset_of!(UserRegs, out_rip) == REGS_OUT_RIP);
    assert!(offset_of!(UserRegs, rflags) == REGS_RFLAGS && offset_of!(UserRegs, rax) == REGS_RAX);
    assert!(offset_of!(UserRegs, rbx) == REGS_RBX && offset_of!(UserRegs, rcx) == REGS_RCX);
    assert!(offset_of!(UserRegs, rdx) == REGS_RDX && offset_of!(UserRegs, rsi) == REGS_RSI);
    assert!(offset_of!(UserRegs, rbp) == REGS_RBP && offset_of!(UserRegs, r8) == REGS_R8);
    assert!(offset_of!(UserRegs, r9) == REGS_R9 && offset_of!(UserRegs, r10) == REGS_R10);
    assert!(offset_of!(UserRegs, r11) == REGS_R11 && offset_of!(UserRegs, r12) == REGS_R12);
    assert!(offset_of!(UserRegs, r13) == REGS_R13 && offset_of!(UserRegs, r14) == REGS_R14);
    assert!(offset_of!(UserRegs, r15) == REGS_R15);
};

/// RFLAGS bits a sandbox may set and get back after a preemption: CF, PF, AF, ZF, SF, TF, DF,
/// OF, AC, ID. IOPL, NT, RF, VM, VIF, VIP never; IF is always on.
pub const USER_RFLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;
const RFLAGS_IF_AND_RESERVED: u64 = 0x202;

/// A sandbox's x87/SSE/AVX registers while it is parked (XSAVE or FXSAVE image). The kernel is
/// soft-float, so between entry and exit these registers are the sandbox's alone; a preemption
/// saves them here and the resume loads them back, every other entry and exit loads the
/// initial state instead.
/// The area is left uninitialized until a preemption saves into it (only read when `saved`),
/// so making one costs no 1 KiB of zeroing and copying per run.
#[repr(C, align(64))]
pub struct ExtendedState {
    area: MaybeUninit<[u8; EXTENDED_AREA]>,
    /// Whether `area` holds a saved state (else a resume starts from the initial state).
    saved: bool,
}

/// Room for the XSAVE image of x87 + SSE + AVX (832 bytes); `init` keeps XCR0 within it.
const EXTENDED_AREA: usize = 1024;

impl ExtendedState {
    pub const fn new() -> Self {
        Self { area: MaybeUninit::uninit(), saved: false }
    }

    /// As [`ExtendedState::new`] for a reused area: nothing saved (the area's old bytes are
    /// never read, as in a fresh one).
    pub fn reset(&mut self) {
        self.saved = false;
    }
}

impl Default for ExtendedState {
    fn default() -> Self {
        Self::new()
    }
}

/// How a sandbox run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It executed `syscall`; [`UserRegs`]' `out_*` fields hold its registers.
    Syscall,
    /// The kernel ended it from a trap ([`end_sandbox`]); the session knows why.
    Ended,
    /// Its time slice ran out: [`UserRegs`] and the [`ExtendedState`] hold its whole user
    /// context, and [`enter_user`] with them resumes it where it was.
    Preempted,
}

/// What a timer tick in ring 3 does with the sandbox ([`Session::on_tick`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Keep running (the session re-armed the timer).
    Resume,
    /// End it (budget spent, or cancelled).
    End,
    /// Save its context and return [`Exit::Preempted`] (its slice is used up).
    Preempt,
}

const EXIT_SYSCALL: u64 = 0;
const EXIT_ENDED: u64 = 1;
const EXIT_PREEMPTED: u64 = 2;

global_asm!(
    include_str!("usermode.S"),
    krsp = const USER_KERNEL_RSP_OFFSET,
    user_ss = const USER_DATA_SELECTOR,
    user_cs = const USER_CODE_SELECTOR,
    rsp_off = const REGS_RSP,
    rip_off = const REGS_RIP,
    rdi_off = const REGS_RDI,
    rflags_off = const REGS_RFLAGS,
    rax_off = const REGS_RAX,
    rbx_off = const REGS_RBX,
    rcx_off = const REGS_RCX,
    rdx_off = const REGS_RDX,
    rsi_off = const REGS_RSI,
    rbp_off = const REGS_RBP,
    r8_off = const REGS_R8,
    r9_off = const REGS_R9,
    r10_off = const REGS_R10,
    r11_off = const REGS_R11,
    r12_off = const REGS_R12,
    r13_off = const REGS_R13,
    r14_off = const REGS_R14,
    r15_off = const REGS_R15,
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
    /// A timer tick while the sandbox ran: resume it (the session re-arms the timer), end it
    /// (the budget is spent or the run is cancelled), or preempt it (its slice is used up).
    fn on_tick(&mut self) -> Tick;
}

/// What runs on each CPU's ring 3 now: the session, and where a preemption saves the
/// sandbox's context (indexed by CPU number).
struct Slot(Cell<Option<Active>>);
#[derive(Clone, Copy)]
struct Active {
    session: *mut dyn Session,
    regs: *mut UserRegs,
    extended: *mut ExtendedState,
}
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
/// CHERI capabilities: never on x86_64 (the `cheri` engine is Arm Morello's).
pub fn cheri_available() -> bool {
    false
}

/// Never called on x86_64 ([`cheri_available`] is false).
pub fn confine(_regs: &mut UserRegs, _pcc: (u64, u64), _ddc: (u64, u64)) -> Result<(), &'static str> {
    Err("CHERI capabilities need an Arm Morello CPU")
}

pub fn pku_enabled() -> bool {
    PKU.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sets this CPU's PKRU (only with CR4.PKE on).
pub fn write_pkru(value: u32) {
    debug_assert!(pku_enabled());
    // SAFETY: WRPKRU with ECX = EDX = 0 only changes which protection keys user pages may be
    // accessed with; the kernel never touches user pages directly (SMAP).
    unsafe { asm!("wrpkru", in("eax") value, in("ecx") 0, in("edx") 0, options(nostack, nomem)) };
    crate::wall_events::count(crate::wall_events::Event::PkruWrite);
}

/// Sets this CPU's PKRU to `value` before a sandbox runs, writing it only when it differs
/// (only with CR4.PKE on). WRPKRU flushes an emulator's software TLB (QEMU's TCG flushes it on
/// every write), RDPKRU does not; consecutive runs under the same key (or the paging engine's
/// key 0) find it already right.
pub fn set_pkru(value: u32) {
    debug_assert!(pku_enabled());
    let current: u32;
    // SAFETY: RDPKRU with ECX = 0 reads PKRU into EAX (EDX cleared); CR4.PKE is on.
    unsafe { asm!("rdpkru", out("eax") current, in("ecx") 0, out("edx") _, options(nostack, nomem)) };
    if current != value {
        write_pkru(value);
    }
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
    let has_umip = super::cpu::has_umip();
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
            // SGDT, SIDT, SLDT, SMSW and STR from ring 3 fault (#GP) instead of telling a
            // function where the kernel's tables are.
            if has_umip {
                f.insert(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION);
            }
        });
    }
    SSE.store(true, core::sync::atomic::Ordering::Relaxed);
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
        let set = |xcr0: u64| {
            // SAFETY: CR4.OSXSAVE is on; the value holds only components CPUID reports, x87 and
            // SSE included as the architecture requires, and never PKRU.
            unsafe {
                asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack))
            };
        };
        set(xcr0);
        // A preempted sandbox's state must fit its `ExtendedState` (x87 + SSE + AVX: 832 bytes):
        // the size the components now enabled need (CPUID 0xD's EBX, after XSETBV). Not ECX,
        // the size of every component the CPU has: with PKU or AVX-512 there, that is larger
        // whatever XCR0 holds, and AVX was turned off on every such CPU (`-cpu max` included).
        if cpuid(0xd, 0).ebx as usize > EXTENDED_AREA {
            xcr0 &= XCR0_X87 | XCR0_SSE;
            set(xcr0);
        }
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
            "usermode: ring 3 ready (syscall exit, XCR0 {xcr0:#x}{}), PKU {}, UMIP {has_umip}",
            if has_xsave { "" } else { ", FXSAVE only" },
            super::cpu::has_pku()
        );
    }
}

/// Whether this kernel enabled SSE (CR4.OSFXSR), so that [`zero`] may use it.
static SSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Zeroes `bytes`: its 16-byte-aligned middle with SSE stores of a cleared XMM0 (the stores
/// that do not make a whole group of eight first, then eight a loop step), the ends (under 16
/// bytes each) with `fill`. Why: a sandbox's written pages are zeroed after every run, and
/// `rep stosq` (what `fill` compiles to) is one instruction per 8 bytes: 512 a page, a fifth of
/// a small invocation's engine work under `cargo xtask profile matmul3-native`; this is ~290.
/// A kept image's private page is zeroed from the end of its template's bytes, anywhere in the
/// page: its up to 127 bytes after the last whole group went to `fill` too, until the profile
/// showed them (~400 instructions a request in `memset`). Called only outside sandbox runs,
/// where the extended state is the initial one (XMM0 zero, [`scrub_extended_state`]): storing
/// a cleared XMM0 leaves it so.
pub fn zero(bytes: &mut [u8]) {
    if XSAVE.load(core::sync::atomic::Ordering::Relaxed) & XCR0_AVX != 0 {
        return zero_avx(bytes);
    }
    if !SSE.load(core::sync::atomic::Ordering::Relaxed) {
        bytes.fill(0);
        return;
    }
    // SAFETY: `middle` is ours to write, 16-byte aligned, a whole number of 16-byte blocks (one
    // at least); SSE is enabled (CR4.OSFXSR, `init`), and no sandbox's state lives in XMM0
    // outside a run (it is scrubbed on every exit and saved on a preemption) — XMM0 was zero
    // and stays zero.
    kcore::units::zero_by_blocks(bytes, 16, |middle| unsafe {
        asm!(
            "pxor xmm0, xmm0",
            // The blocks that do not make a group of eight: one store each.
            "mov {group}, {end}",
            "sub {group}, {at}",
            "and {group}, 112",
            "add {group}, {at}",
            "cmp {at}, {group}",
            "je 3f",
            "2:",
            "movdqa [{at}], xmm0",
            "add {at}, 16",
            "cmp {at}, {group}",
            "jne 2b",
            "3:",
            "cmp {at}, {end}",
            "je 5f",
            "4:",
            "movdqa [{at}], xmm0",
            "movdqa [{at} + 16], xmm0",
            "movdqa [{at} + 32], xmm0",
            "movdqa [{at} + 48], xmm0",
            "movdqa [{at} + 64], xmm0",
            "movdqa [{at} + 80], xmm0",
            "movdqa [{at} + 96], xmm0",
            "movdqa [{at} + 112], xmm0",
            "add {at}, 128",
            "cmp {at}, {end}",
            "jne 4b",
            "5:",
            at = inout(reg) middle.as_mut_ptr() => _,
            end = in(reg) middle.as_mut_ptr().add(middle.len()),
            group = out(reg) _,
            options(nostack),
        );
    });
}

/// [`zero`] where AVX is enabled (XCR0): 32-byte stores of a cleared YMM0, sixteen a turn, half
/// the stores of SSE's (a 4 KiB page: ~150 instructions instead of ~350 under icount; a wasm
/// function's 64 KiB memory ~2,400), the ends (under 32
/// bytes each) with `fill`; `vzeroupper` after, so that the upper halves are clean again
/// (their init state, as every run finds them).
fn zero_avx(bytes: &mut [u8]) {
    // SAFETY: `middle` is ours to write, 32-byte aligned, a whole number of 32-byte blocks (one
    // at least); AVX is enabled (XCR0, `init`), and no sandbox's state lives in YMM0 outside a
    // run (scrubbed on every exit, saved on a preemption), so it is scratch here.
    kcore::units::zero_by_blocks(bytes, 32, |middle| unsafe {
        asm!(
            "vpxor ymm0, ymm0, ymm0",
            "mov {group}, {end}",
            "sub {group}, {at}",
            "and {group}, 480",
            "add {group}, {at}",
            "cmp {at}, {group}",
            "je 3f",
            "2:",
            "vmovdqa [{at}], ymm0",
            "add {at}, 32",
            "cmp {at}, {group}",
            "jne 2b",
            "3:",
            "cmp {at}, {end}",
            "je 5f",
            "4:",
            "vmovdqa [{at}], ymm0",
            "vmovdqa [{at} + 32], ymm0",
            "vmovdqa [{at} + 64], ymm0",
            "vmovdqa [{at} + 96], ymm0",
            "vmovdqa [{at} + 128], ymm0",
            "vmovdqa [{at} + 160], ymm0",
            "vmovdqa [{at} + 192], ymm0",
            "vmovdqa [{at} + 224], ymm0",
            "vmovdqa [{at} + 256], ymm0",
            "vmovdqa [{at} + 288], ymm0",
            "vmovdqa [{at} + 320], ymm0",
            "vmovdqa [{at} + 352], ymm0",
            "vmovdqa [{at} + 384], ymm0",
            "vmovdqa [{at} + 416], ymm0",
            "vmovdqa [{at} + 448], ymm0",
            "vmovdqa [{at} + 480], ymm0",
            "add {at}, 512",
            "cmp {at}, {end}",
            "jne 4b",
            "5:",
            "vzeroupper",
            at = inout(reg) middle.as_mut_ptr() => _,
            end = in(reg) middle.as_mut_ptr().add(middle.len()),
            group = out(reg) _,
            options(nostack),
        );
    });
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

/// Loads a saved extended state (a preempted sandbox's), or the initial state.
fn restore_extended_state(state: &ExtendedState) {
    if !state.saved {
        return scrub_extended_state();
    }
    let xcr0 = XSAVE.load(core::sync::atomic::Ordering::Relaxed);
    if xcr0 != 0 {
        // SAFETY: the area is 64-byte aligned and holds what XSAVE wrote with the same XCR0
        // (which never includes PKRU).
        unsafe {
            asm!("xrstor64 [{}]", in(reg) state.area.as_ptr(), in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack, readonly))
        };
    } else {
        // SAFETY: a 16-byte aligned image FXSAVE wrote.
        unsafe { asm!("fxrstor64 [{}]", in(reg) state.area.as_ptr(), options(nostack, readonly)) };
    }
}

/// Saves the extended state (still the sandbox's: the kernel is soft-float) into `state`.
fn save_extended_state(state: &mut ExtendedState) {
    let xcr0 = XSAVE.load(core::sync::atomic::Ordering::Relaxed);
    if xcr0 != 0 {
        // The XSAVE header must be zero before XSAVE (it writes XSTATE_BV, leaves the rest).
        // SAFETY: bytes 512..576 lie inside the area, which is ours alone here.
        unsafe { state.area.as_mut_ptr().cast::<u8>().add(512).write_bytes(0, 64) };
        // SAFETY: 64-byte aligned area of `EXTENDED_AREA` bytes, at least XSAVE's size for
        // this XCR0 (`init` made sure).
        unsafe {
            asm!("xsave64 [{}]", in(reg) state.area.as_mut_ptr(), in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack))
        };
    } else {
        // SAFETY: a 16-byte aligned area of at least 512 bytes.
        unsafe { asm!("fxsave64 [{}]", in(reg) state.area.as_mut_ptr(), options(nostack)) };
    }
    state.saved = true;
}

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;

/// A data segment selector ring 3 may get back: null, or one of its own two.
fn user_selector(sel: u16) -> u16 {
    if u64::from(sel) == USER_DATA_SELECTOR || u64::from(sel) == USER_CODE_SELECTOR { sel } else { 0 }
}

/// A segment base ring 3 may get back: a canonical lower-half address, else zero.
fn user_base(base: u64) -> u64 {
    if base < 0x0000_8000_0000_0000 { base } else { 0 }
}

/// Loads DS/ES/FS/GS and the FS base and (swapped) GS base ring 3 will see, keeping the
/// kernel's GS base (the per-CPU block). Interrupts must be off: between `mov gs` and the
/// restore of its base, a trap would not find its per-CPU block.
fn load_user_segments(regs: &UserRegs) {
    let (ds, es, fs, gs) =
        (user_selector(regs.ds), user_selector(regs.es), user_selector(regs.fs), user_selector(regs.gs));
    // SAFETY: interrupts are off (checked by the callers' `without_interrupts`); each selector
    // is null or a valid user data/code selector of this CPU's GDT, and the kernel's GS base is
    // written back at once. FS is unused by the kernel; KERNEL_GS_BASE is what `swapgs` gives ring 3.
    unsafe {
        let kernel_gs = Msr::new(MSR_GS_BASE).read();
        asm!("mov ds, {0:x}", "mov es, {1:x}", "mov fs, {2:x}", "mov gs, {3:x}", in(reg) ds, in(reg) es, in(reg) fs, in(reg) gs, options(nostack, preserves_flags));
        Msr::new(MSR_GS_BASE).write(kernel_gs);
        Msr::new(MSR_FS_BASE).write(user_base(regs.fs_base));
        Msr::new(MSR_KERNEL_GS_BASE).write(user_base(regs.gs_base));
    }
}

/// Runs ring-3 code with `regs` until it exits through `syscall`, `session` ends it, or its
/// slice runs out ([`Exit::Preempted`]: `regs` and `extended` then hold its whole context, and
/// calling again with them resumes it). The caller has mapped the code, stack and data (user
/// pages) in the current address space. Every general register, RFLAGS, the data segment
/// selectors, the FS/GS bases and the extended state are loaded from `regs` and `extended`
/// on entry, and put back to null/zero/initial on the way out, so nothing of one sandbox is
/// visible to the next.
///
/// `first_tick` (a TSC deadline) arms the timer for the session's first `on_tick`; it is armed
/// with interrupts off, so a tick that comes due before ring 3 is reached stays pending and
/// is taken in ring 3 (armed earlier, with interrupts on, it could be taken in the kernel and
/// lost, leaving the sandbox without a tick). On the way out the tick is released, not
/// disarmed (`release_tick`): it may come later, early for the next run or in the kernel.
pub fn enter_user(
    regs: &mut UserRegs,
    extended: &mut ExtendedState,
    session: &mut dyn Session,
    first_tick: Option<u64>,
) -> Exit {
    let cpu = super::cpu_index();
    // SAFETY: the slot holds the pointers only while `enter_user` runs on this CPU; trap
    // handlers dereference them only then. The lifetime is erased for the slot's type and
    // restored by clearing the slot before `session` goes out of scope.
    let erased: *mut (dyn Session + 'static) = unsafe { core::mem::transmute(session as *mut dyn Session) };
    regs.rflags = (regs.rflags & USER_RFLAGS) | RFLAGS_IF_AND_RESERVED;
    SESSIONS[cpu].0.set(Some(Active { session: erased, regs: regs as *mut UserRegs, extended: extended as *mut _ }));
    let result = x86_64::instructions::interrupts::without_interrupts(|| {
        restore_extended_state(extended);
        extended.saved = false;
        load_user_segments(regs);
        if let Some(tick) = first_tick {
            arm_tick(tick);
        }
        // SAFETY: the assembly saves every register the ABI needs kept and restores them on
        // every exit path; it runs the sandbox at CPL 3, which cannot reach kernel memory.
        let result = unsafe { pappus_enter_user(regs) };
        if first_tick.is_some() {
            release_tick();
        }
        scrub_extended_state();
        load_user_segments(&UserRegs::default());
        result
    });
    SESSIONS[cpu].0.set(None);
    match result {
        EXIT_SYSCALL => Exit::Syscall,
        EXIT_PREEMPTED => Exit::Preempted,
        _ => Exit::Ended,
    }
}

/// Whether a trap frame comes from ring 3.
pub fn from_user(frame: &TrapFrame) -> bool {
    frame.cs & 3 != 0
}

fn active() -> Option<Active> {
    SESSIONS[super::cpu_index()].0.get()
}

fn session() -> Option<&'static mut dyn Session> {
    let ptr = active()?.session;
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
        end_sandbox(EXIT_ENDED);
    }
}

/// A timer tick that interrupted ring 3 (after EOI): end the sandbox if its time is up, save
/// its context and leave it if its slice is used up, else let it run on.
pub fn user_tick(frame: &TrapFrame) {
    let Some(active) = active() else { end_sandbox(EXIT_ENDED) };
    // SAFETY: set by `enter_user` on this CPU for the duration of the ring-3 run that trapped.
    match unsafe { &mut *active.session }.on_tick() {
        Tick::Resume => {}
        Tick::End => end_sandbox(EXIT_ENDED),
        Tick::Preempt => {
            // SAFETY: as above; `enter_user` is suspended below us on this CPU and does not
            // touch `regs` or `extended` until it returns.
            let (regs, extended) = unsafe { (&mut *active.regs, &mut *active.extended) };
            save_user_context(frame, regs);
            save_extended_state(extended);
            end_sandbox(EXIT_PREEMPTED)
        }
    }
}

/// Copies the interrupted ring-3 context (the trap frame, the data segment selectors still
/// loaded, FS base, and the swapped-out GS base) into `regs`.
fn save_user_context(f: &TrapFrame, regs: &mut UserRegs) {
    regs.rip = f.rip;
    regs.rsp = f.rsp;
    regs.rflags = f.rflags;
    (regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp) =
        (f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp);
    (regs.r8, regs.r9, regs.r10, regs.r11) = (f.r8, f.r9, f.r10, f.r11);
    (regs.r12, regs.r13, regs.r14, regs.r15) = (f.r12, f.r13, f.r14, f.r15);
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors and the FS/KERNEL_GS base MSRs has no side effects.
    unsafe {
        asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs", out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs, options(nomem, nostack, preserves_flags));
        regs.fs_base = Msr::new(MSR_FS_BASE).read();
        regs.gs_base = Msr::new(MSR_KERNEL_GS_BASE).read();
    }
    (regs.ds, regs.es, regs.fs, regs.gs) = (ds, es, fs, gs);
}

/// Abandons the ring-3 context (its registers stay behind on the trap stack, which is reset on
/// the next entry) and returns from [`enter_user`] with `how` (ended or preempted).
fn end_sandbox(how: u64) -> ! {
    // SAFETY: called only from a trap taken in ring 3 during `enter_user` on this CPU, so the
    // saved kernel stack pointer is valid and everything below it is dead.
    unsafe { pappus_end_sandbox(how) }
}

/// Arms this CPU's timer to interrupt the sandbox at TSC `deadline` (its next budget check)
/// at the latest: a deadline already armed that comes sooner stands (`timer::arm_by`).
pub fn arm_tick(deadline: u64) {
    super::timer::arm_by(deadline);
}

/// The sandbox's timer tick is no longer needed. The timer is left armed (`timer::release`):
/// a run that follows within the check interval reuses it instead of writing the timer again.
pub fn release_tick() {
    super::timer::release();
}
