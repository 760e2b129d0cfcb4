//! Exceptions and interrupts: one IDT, one entry stub per vector, one trap frame.
//!
//! Every vector enters through a 16-byte stub that pushes a uniform frame (a zero where the CPU
//! pushes no error code, then the vector number), and `trap_common` saves the general registers
//! and calls [`trap_dispatch`]. Exceptions in the kernel are fatal and produce a precise report
//! (vector, error code, RIP, CR2, registers, a frame-pointer stack walk) — except the ones a
//! self-test announced through [`expect_fault`], which are recorded and skipped over.

use core::arch::global_asm;
use core::fmt::Write;

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;

use super::{apic, percpu, smp, timer, usermode};
use crate::boot_cell::BootCell;
use crate::console;

global_asm!(
    include_str!("traps.S"),
    dispatch = sym trap_dispatch,
);

unsafe extern "C" {
    static trap_stubs: u8;
    fn pappus_halt();
    static pappus_halt_insn: u8;
    static pappus_halt_resume: u8;
    pub fn probe_read(addr: u64) -> u64;
    pub fn probe_write(addr: u64, value: u64);
    pub fn probe_ud();
    pub static probe_read_insn: u8;
    pub static probe_read_resume: u8;
    pub static probe_write_insn: u8;
    pub static probe_write_resume: u8;
    pub static probe_ud_insn: u8;
    pub static probe_ud_resume: u8;
}

/// The registers `trap_common` saved, then what the stub and the CPU pushed.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// A fault a self-test is about to cause on purpose: where it will happen and where to resume.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedFault {
    pub rip: u64,
    pub resume: u64,
}

/// What an expected fault looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cr2: u64,
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const MISSING: IdtEntry =
    IdtEntry { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

static IDT: BootCell<[IdtEntry; 256]> = BootCell::new([MISSING; 256]);

/// Fills the IDT with every stub (interrupt gates, DPL 0) and loads it (boot CPU).
pub fn init() {
    let sel = percpu::current().selectors.kernel_code.0;
    // SAFETY: runs once on the boot CPU with interrupts off, before any `lidt` of this table.
    let idt = unsafe { &mut *IDT.get() };
    let base = &raw const trap_stubs as u64;
    for (vector, entry) in idt.iter_mut().enumerate() {
        let addr = base + 16 * vector as u64;
        let ist = match vector {
            2 => percpu::IST_NMI + 1,
            8 => percpu::IST_DOUBLE_FAULT + 1,
            18 => percpu::IST_MACHINE_CHECK + 1,
            _ => 0,
        };
        *entry = IdtEntry {
            offset_low: addr as u16,
            selector: sel,
            ist: ist as u8,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
    }
    load();
}

/// Loads the IDT [`init`] built on this CPU: every CPU shares the one table (the stubs are the
/// same; the IST stacks each entry names come from the loading CPU's own TSS).
pub fn load() {
    let idt = IDT.get().cast_const();
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[IdtEntry; 256]>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the table is static and was completed by `init` on the boot CPU before any other
    // CPU started; every entry points at a valid stub.
    unsafe { lidt(&ptr) };
}

/// Announces that the next fault on this CPU happens at `rip` and should resume at `resume`.
pub fn expect_fault(rip: u64, resume: u64) {
    let cpu = percpu::current();
    cpu.last_fault.set(None);
    cpu.expected_fault.set(Some(ExpectedFault { rip, resume }));
}

/// The record of the last expected fault (None if it never happened), disarming the catch.
pub fn take_fault() -> Option<FaultRecord> {
    let cpu = percpu::current();
    cpu.expected_fault.set(None);
    cpu.last_fault.take()
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        // Another CPU is stopping the machine (`exit`): halt here for good.
        2 if smp::stop_requested() => smp::stop_this_cpu(),
        0..=31 => exception(frame),
        apic::SPURIOUS_VECTOR => {}
        timer::VECTOR => {
            let fired = timer::on_interrupt(frame);
            apic::end_of_interrupt();
            if fired {
                skip_pending_halt(frame);
                if usermode::from_user(frame) {
                    usermode::user_tick(frame);
                }
            }
        }
        apic::DEVICE_VECTOR => {
            // A received frame ends the I/O core's sleep; the loop polls the NIC itself.
            crate::wall_events::count(crate::wall_events::Event::DeviceInterrupt);
            apic::end_of_interrupt();
            skip_pending_halt(frame);
        }
        smp::WAKE_VECTOR => {
            // The wake-up itself is the point: the halted CPU runs again after this returns.
            percpu::current().wakeups.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            timer::resume_sampling();
            apic::end_of_interrupt();
            skip_pending_halt(frame);
        }
        _ => {
            log::warn!("unexpected interrupt vector {}", frame.vector);
            apic::end_of_interrupt();
        }
    }
    // An interrupt that returns to the halt's next instruction ended the halt (the sampler's
    // own go back to the `hlt` instead).
    if frame.rip == halt_resume_address() {
        percpu::current().halted.store(false, core::sync::atomic::Ordering::Relaxed);
    }
}

fn exception(frame: &mut TrapFrame) {
    let cr2 = if frame.vector == 14 { Cr2::read_raw() } else { 0 };
    if frame.vector == 14 {
        use crate::wall_events::{Event, count};
        count(if usermode::from_user(frame) { Event::UserPageFault } else { Event::KernelPageFault });
    }
    // A sandbox's fault is the sandbox's error, never the kernel's (NMI and machine checks are
    // the machine's, whoever was running).
    if usermode::from_user(frame) && frame.vector != 2 && frame.vector != 18 {
        usermode::user_exception(frame, cr2);
        return;
    }
    if percpu::ready() {
        let cpu = percpu::current();
        if let Some(expected) = cpu.expected_fault.get()
            && expected.rip == frame.rip
        {
            cpu.expected_fault.set(None);
            let record = FaultRecord { vector: frame.vector, error_code: frame.error_code, rip: frame.rip, cr2 };
            cpu.last_fault.set(Some(record));
            report(frame, cr2, "expected fault (self-test)");
            frame.rip = expected.resume;
            return;
        }
    }
    report(frame, cr2, "KERNEL FAULT");
    super::exit(false);
}

pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "non-maskable interrupt (NMI)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating point (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating point (#XM)",
        20 => "virtualization (#VE)",
        21 => "control protection (#CP)",
        28 => "hypervisor injection (#HV)",
        29 => "VMM communication (#VC)",
        30 => "security (#SX)",
        _ => "reserved exception",
    }
}

/// Explains a page-fault error code (SDM Vol. 3, 4.7).
struct PfError(u64);

impl core::fmt::Display for PfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        f.write_str(if e & 1 != 0 { "protection violation" } else { "page not present" })?;
        f.write_str(if e & 2 != 0 { ", write" } else { ", read" })?;
        for (bit, what) in
            [(2, ", user mode"), (3, ", reserved bit set"), (4, ", instruction fetch"), (5, ", protection key")]
        {
            if e & (1 << bit) != 0 {
                f.write_str(what)?;
            }
        }
        Ok(())
    }
}

fn report(frame: &TrapFrame, cr2: u64, headline: &str) {
    let f = frame;
    let mode = if f.cs & 3 == 0 { "kernel" } else { "user" };
    console::emergency_println(format_args!(
        "{headline}: vector {} {} error_code={:#x} rip={:#018x} cr2={:#018x} ({mode} mode)",
        f.vector,
        vector_name(f.vector),
        f.error_code,
        f.rip,
        cr2
    ));
    if f.vector == 14 {
        console::emergency_println(format_args!("  page fault: {}", PfError(f.error_code)));
    }
    if percpu::ready() && smp::cpus_online() > 1 {
        let cpu = percpu::current();
        console::emergency_println(format_args!("  on cpu {} (APIC id {})", cpu.index, cpu.apic_id.get()));
    }
    let near_guard = super::stacks::near_guard;
    if near_guard(f.rsp) || (f.vector == 14 && near_guard(cr2)) {
        console::emergency_println(format_args!("  kernel stack overflow: the stack ran into its guard page"));
    }
    console::emergency_println(format_args!(
        "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
        f.rax, f.rbx, f.rcx, f.rdx
    ));
    console::emergency_println(format_args!(
        "  rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}",
        f.rsi, f.rdi, f.rbp, f.rsp
    ));
    console::emergency_println(format_args!(
        "  r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}",
        f.r8, f.r9, f.r10, f.r11
    ));
    console::emergency_println(format_args!(
        "  r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}",
        f.r12, f.r13, f.r14, f.r15
    ));
    console::emergency_println(format_args!("  rflags={:#x} cs={:#x} ss={:#x}", f.rflags, f.cs, f.ss));
    if f.cs & 3 == 0 {
        stack_walk(f.rbp);
    }
}

/// Follows the frame-pointer chain (the kernel is built with frame pointers) for a few frames,
/// checking each pointer before reading through it.
fn stack_walk(mut rbp: u64) {
    let mut line = heapless_line();
    let _ = write!(line, "  stack:");
    for _ in 0..8 {
        if rbp == 0 || !rbp.is_multiple_of(8) || !super::paging::is_kernel_readable(rbp, 16) {
            break;
        }
        // SAFETY: the two words at `rbp` were just checked to be mapped, readable kernel memory.
        let (next, ret) = unsafe { ((rbp as *const u64).read(), (rbp as *const u64).add(1).read()) };
        if ret < super::KERNEL_VMA {
            break; // the boot code's frame: nothing above it
        }
        let _ = write!(line, " {ret:#x}");
        rbp = next;
    }
    console::emergency_println(format_args!("{}", line.as_str()));
}

/// A fixed buffer for the stack-walk line: the report must not allocate (the heap may be the
/// thing that broke).
struct Line {
    buf: [u8; 256],
    len: usize,
}

fn heapless_line() -> Line {
    Line { buf: [0; 256], len: 0 }
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

/// Enables interrupts on this CPU.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Waits for the next interrupt with interrupts enabled.
pub fn wait_for_interrupt() {
    percpu::current().halted.store(true, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: `pappus_halt` is `sti; hlt; ret`: it enables interrupts and halts atomically, so
    // no wake-up is lost, and touches no memory but its return address.
    unsafe { pappus_halt() };
    percpu::current().halted.store(false, core::sync::atomic::Ordering::Relaxed);
}

/// An interrupt that ends a wait (a deadline, a wake-up) and came in at the `hlt` itself, before
/// it ran, resumes after it: the wait is over. This happens when the sampler sent the CPU back to
/// its `hlt` and the deadline was already pending at the `iretq`; halting then would lose that
/// deadline, and with no timer left armed the CPU would halt for good (seen: the node stopped
/// answering now and then with `profile=50021` in real time).
fn skip_pending_halt(frame: &mut TrapFrame) {
    if frame.rip == halt_address() {
        frame.rip = halt_resume_address();
    }
}

/// The address of [`wait_for_interrupt`]'s `hlt` (its `sti` is done): an interrupt that
/// returns there halts again, with interrupts on.
pub fn halt_address() -> u64 {
    &raw const pappus_halt_insn as u64
}

/// The address an interrupt of [`wait_for_interrupt`]'s halt returns to.
pub fn halt_resume_address() -> u64 {
    &raw const pappus_halt_resume as u64
}

/// Lets pending interrupts in without halting (a halt would sleep until the next one).
pub fn wait_for_interrupt_or_spin() {
    x86_64::instructions::interrupts::enable();
    core::hint::spin_loop();
}

/// Raw addresses of the probe labels, for self-tests.
pub fn label(sym: &u8) -> u64 {
    sym as *const u8 as u64
}
