//! Exceptions: the vector table (VBAR_EL1), one trap frame, precise fault reports.
//!
//! Each of the 16 vectors pushes x0/x1 and branches to `trap_common` with its index (4 * group
//! plus type: groups "current EL with SP0", "current EL with SPx", "lower EL AArch64", "lower EL
//! AArch32"; types synchronous, IRQ, FIQ, SError). `trap_common` saves the rest of the frame
//! (x0-x30, sp, ELR, SPSR, ESR, FAR) and calls [`trap_dispatch`]. Exceptions in the kernel are
//! fatal and produce a precise report, except the ones a self-test announced through
//! [`expect_fault`], which are recorded and resumed elsewhere.
//!
//! Stack overflow: the kernel runs on SP_EL1, so an exception taken because the stack ran into
//! its guard page would fault again pushing its frame, forever. The current-EL vectors
//! therefore test, before pushing, whether the frame would land in the stack proper (bit
//! `stacks::STACK_BIT` of the address; see `stacks.rs`), using SP_EL0 as the one scratch
//! register; if not, they switch to the block's emergency stack and report kind
//! [`KIND_STACK_OVERFLOW`] with the overflowed sp in SP_EL0. (Kernel code never relies on
//! SP_EL0 across an exception; the EL0 entry path saves and restores it with the sandbox's
//! registers.)
//!
//! Exceptions from EL0 (AArch64) take their own path, `pappus_trap_user` in `usermode.rs`: the
//! sandbox's whole context goes into its `UserRegs`, and the sandbox's session decides.

use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::{Readable, SP_EL0};
use spin::Mutex;

use super::stacks;
use crate::console;

/// Bytes of [`TrapFrame`] on the stack (16-byte aligned).
const FRAME_SIZE: usize = 304;
const _: () = assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);

/// The vector index for a kernel stack overflow (after the 16 architectural ones).
pub const KIND_STACK_OVERFLOW: u64 = 16;

global_asm!(
    include_str!("traps.S"),
    frame = const FRAME_SIZE,
    stack_bit = const stacks::STACK_BIT,
    block_mask = const !(stacks::BLOCK as u64 - 1),
    emergency_top = const stacks::EMERGENCY_TOP,
    kind_overflow = const KIND_STACK_OVERFLOW,
    dispatch = sym trap_dispatch,
);

unsafe extern "C" {
    pub static exception_vectors: u8;
    pub fn probe_read(addr: u64) -> u64;
    pub fn probe_write(addr: u64, value: u64);
    pub fn probe_udf();
    pub static probe_read_insn: u8;
    pub static probe_read_resume: u8;
    pub static probe_write_insn: u8;
    pub static probe_write_resume: u8;
    pub static probe_udf_insn: u8;
    pub static probe_udf_resume: u8;
}

/// What the vector and `trap_common` saved.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub kind: u64,
    _pad: u64,
}

/// A fault a self-test is about to cause on purpose: where it will happen and where to resume.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedFault {
    pub pc: u64,
    pub resume: u64,
}

/// What an expected fault looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    pub kind: u64,
    pub esr: u64,
    pub elr: u64,
    pub far: u64,
}

impl FaultRecord {
    /// ESR_EL1.EC, the exception class.
    pub fn class(&self) -> u64 {
        esr_class(self.esr)
    }
}

static EXPECTED: Mutex<Option<ExpectedFault>> = Mutex::new(None);
static LAST_FAULT: Mutex<Option<FaultRecord>> = Mutex::new(None);
static OVERFLOW_REPORTED: AtomicBool = AtomicBool::new(false);

/// The vector table's address (installed in VBAR_EL1 by the entry code).
pub fn vectors() -> u64 {
    &raw const exception_vectors as u64
}

/// Announces that the next exception happens at `pc` and should resume at `resume`.
pub fn expect_fault(pc: u64, resume: u64) {
    *LAST_FAULT.lock() = None;
    *EXPECTED.lock() = Some(ExpectedFault { pc, resume });
}

/// The record of the last expected fault (None if it never happened), disarming the catch.
pub fn take_fault() -> Option<FaultRecord> {
    *EXPECTED.lock() = None;
    LAST_FAULT.lock().take()
}

/// Vector kinds: an IRQ from EL1 (SP_ELx) and from EL0 (AArch64).
const KIND_IRQ_EL1: u64 = 5;
const KIND_IRQ_EL0: u64 = 9;

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.kind == KIND_IRQ_EL1 || frame.kind == KIND_IRQ_EL0 {
        super::handle_irq();
        return;
    }
    if frame.kind == KIND_STACK_OVERFLOW {
        frame.sp = SP_EL0.get();
        if OVERFLOW_REPORTED.swap(true, Ordering::SeqCst) {
            super::halt_forever(); // the report itself overflowed the emergency stack
        }
        report(frame, "KERNEL FAULT");
        super::exit(false);
    }
    // A synchronous exception from EL1 that a self-test announced.
    if frame.kind == 4
        && let Some(mut expected) = EXPECTED.try_lock()
        && let Some(e) = *expected
        && e.pc == frame.elr
    {
        *expected = None;
        drop(expected);
        let record = FaultRecord { kind: frame.kind, esr: frame.esr, elr: frame.elr, far: frame.far };
        if let Some(mut last) = LAST_FAULT.try_lock() {
            *last = Some(record);
        }
        report(frame, "expected fault (self-test)");
        frame.elr = e.resume;
        return;
    }
    report(frame, "KERNEL FAULT");
    super::exit(false);
}

pub fn esr_class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// ESR_EL1.EC names (Arm ARM D17.2.37).
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SIMD/FP access",
        0x0e => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort from the same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort from the same EL",
        0x26 => "SP alignment fault",
        0x29 => "capability instruction trapped (Morello)",
        0x2a => "capability system register access trapped (Morello)",
        0x2c => "trapped floating-point exception",
        0x2f => "SError interrupt",
        0x30 => "breakpoint from a lower EL",
        0x31 => "breakpoint from the same EL",
        0x32 => "software step from a lower EL",
        0x33 => "software step from the same EL",
        0x34 => "watchpoint from a lower EL",
        0x35 => "watchpoint from the same EL",
        0x3c => "BRK instruction",
        _ => "reserved exception class",
    }
}

/// The vector that was taken, in words.
pub fn kind_name(kind: u64) -> &'static str {
    match kind {
        0 => "synchronous, EL1 with SP_EL0",
        1 => "IRQ, EL1 with SP_EL0",
        2 => "FIQ, EL1 with SP_EL0",
        3 => "SError, EL1 with SP_EL0",
        4 => "synchronous, EL1",
        5 => "IRQ, EL1",
        6 => "FIQ, EL1",
        7 => "SError, EL1",
        8 => "synchronous, EL0 (AArch64)",
        9 => "IRQ, EL0 (AArch64)",
        10 => "FIQ, EL0 (AArch64)",
        11 => "SError, EL0 (AArch64)",
        12..=15 => "from EL0 (AArch32)",
        KIND_STACK_OVERFLOW => "synchronous, EL1, kernel stack overflow",
        _ => "unknown vector",
    }
}

/// The fault status code of an instruction or data abort (ISS bits 5:0), in words.
pub struct AbortStatus(pub u64);

impl AbortStatus {
    pub fn code(&self) -> u64 {
        self.0 & 0x3f
    }

    /// `Some(level)` for translation faults.
    pub fn translation_level(&self) -> Option<u64> {
        (self.code() & 0x3c == 0x04).then_some(self.code() & 3)
    }

    /// `Some(level)` for permission faults.
    pub fn permission_level(&self) -> Option<u64> {
        (self.code() & 0x3c == 0x0c).then_some(self.code() & 3)
    }
}

impl core::fmt::Display for AbortStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let code = self.code();
        let level = code & 3;
        match code {
            0x00..=0x03 => write!(f, "address size fault at level {level}"),
            0x04..=0x07 => write!(f, "translation fault at level {level}"),
            0x08..=0x0b => write!(f, "access flag fault at level {level}"),
            0x0c..=0x0f => write!(f, "permission fault at level {level}"),
            0x10 => f.write_str("synchronous external abort"),
            0x21 => f.write_str("alignment fault"),
            0x30 => f.write_str("TLB conflict abort"),
            0x28..=0x2c => {
                f.write_str(cheri::fault::CapFaultKind::from_status(code).map_or("capability fault", |k| k.name()))
            }
            _ => write!(f, "fault status {code:#x}"),
        }
    }
}

fn report(frame: &TrapFrame, headline: &str) {
    let f = frame;
    let ec = esr_class(f.esr);
    // FAR_EL1 holds an address only for aborts, PC alignment faults and watchpoints.
    let mut far = Line { buf: [0; 256], len: 0 };
    if matches!(ec, 0x20..=0x22 | 0x24 | 0x25 | 0x34 | 0x35) {
        let _ = write!(far, " FAR={:#018x}", f.far);
    }
    console::emergency_println(format_args!(
        "{headline}: {} exception, EC {ec:#04x} {} ESR={:#010x}{} ELR={:#018x}",
        kind_name(f.kind),
        class_name(ec),
        f.esr,
        far.as_str(),
        f.elr
    ));
    if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
        let iss = f.esr & 0x01ff_ffff;
        let access = match ec {
            0x20 | 0x21 => "instruction fetch",
            _ if iss & (1 << 6) != 0 => "write",
            _ => "read",
        };
        let far_note = if iss & (1 << 10) != 0 { ", FAR not valid" } else { "" };
        console::emergency_println(format_args!("  abort: {}, {access}{far_note}", AbortStatus(iss)));
    }
    // Morello: a capability check that failed (tag, seal, bounds, permission), or a capability
    // instruction or register trapped.
    if let Some(cap) = cheri::fault::decode(f.esr) {
        console::emergency_println(format_args!("  capability: {cap}"));
    }
    if f.kind == KIND_STACK_OVERFLOW {
        console::emergency_println(format_args!(
            "  kernel stack overflow: the stack ran into its guard page (sp={:#018x}); x0 not saved",
            f.sp
        ));
    }
    for row in 0..7 {
        let r = row * 4;
        console::emergency_println(format_args!(
            "  x{:<2}={:#018x} x{:<2}={:#018x} x{:<2}={:#018x} x{:<2}={:#018x}",
            r,
            f.x[r],
            r + 1,
            f.x[r + 1],
            r + 2,
            f.x[r + 2],
            r + 3,
            f.x[r + 3]
        ));
    }
    console::emergency_println(format_args!(
        "  x28={:#018x} fp ={:#018x} lr ={:#018x} sp ={:#018x}",
        f.x[28], f.x[29], f.x[30], f.sp
    ));
    let el = (f.spsr >> 2) & 3;
    let sp_sel = if f.spsr & 1 != 0 { "h" } else { "t" };
    console::emergency_println(format_args!("  spsr={:#x} (EL{el}{sp_sel}, DAIF={:#x})", f.spsr, (f.spsr >> 6) & 0xf));
    if el == 1 {
        stack_walk(f.x[29]);
    }
}

/// Follows the frame-pointer chain (the kernel is built with frame pointers) for a few frames,
/// reading only inside the stack block it starts in, and only mapped pages of it.
fn stack_walk(mut fp: u64) {
    let mut line = Line { buf: [0; 256], len: 0 };
    let _ = write!(line, "  stack:");
    // The block of the stack the frame chain starts in: the boot CPU's or a secondary's.
    let lo = fp & !(stacks::BLOCK as u64 - 1);
    let hi = lo + stacks::BLOCK as u64;
    let (boot_lo, _) = stacks::block_range();
    if lo != boot_lo && !stacks::in_ap_region(lo) {
        return;
    }
    for _ in 0..8 {
        if !fp.is_multiple_of(16) || fp < lo || fp + 16 > hi {
            break;
        }
        // A frame record never lies in a guard page (and reading one would fault), nor in a page
        // not mapped.
        if stacks::guards_of(lo).iter().any(|&g| fp.wrapping_sub(g) < 4096) || super::paging::translate(fp).is_none() {
            break;
        }
        // SAFETY: the two words at `fp` lie inside the boot stack block, outside its guard pages,
        // so they are mapped, readable kernel memory.
        let (next, ret) = unsafe { ((fp as *const u64).read(), (fp as *const u64).add(1).read()) };
        if ret == 0 {
            break; // the entry code's zeroed link register: nothing above it
        }
        let _ = write!(line, " {ret:#x}");
        fp = next;
    }
    console::emergency_println(format_args!("{}", line.as_str()));
}

/// A fixed buffer for the stack-walk line: the report must not allocate (the heap may be the
/// thing that broke).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("  stack: <unprintable>")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Raw addresses of the probe labels, for self-tests.
pub fn label(sym: &u8) -> u64 {
    sym as *const u8 as u64
}
