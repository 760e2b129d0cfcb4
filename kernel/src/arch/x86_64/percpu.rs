//! The per-CPU block, reached through the GS base.
//!
//! Everything that differs between CPUs (its GDT and TSS, its APIC id, its trap bookkeeping)
//! lives in one `PerCpu`, whose first word points at itself so that `mov rax, gs:[0]` finds it.
//! The boot CPU's block is a static; each application processor gets one from the heap
//! (`smp.rs`), built and loaded by the same [`load`].

use alloc::boxed::Box;
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::stacks;
use super::traps::{ExpectedFault, FaultRecord};
use crate::boot_cell::BootCell;

/// IST slots (1-based in the IDT, 0-based here) for the exceptions that must not trust `rsp`.
pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;
pub const IST_MACHINE_CHECK: u16 = 2;

#[repr(C)]
pub struct PerCpu {
    self_ptr: *const PerCpu,
    pub index: u32,
    pub apic_id: Cell<u32>,
    /// Set by a self-test just before it faults on purpose; consumed by the trap handler.
    pub expected_fault: Cell<Option<ExpectedFault>>,
    /// What the last expected fault looked like, for the self-test to check.
    pub last_fault: Cell<Option<FaultRecord>>,
    /// This CPU's timer interrupts: the TSC at the last one, and how many (read by other CPUs
    /// in self-tests, hence atomics).
    pub timer_fired_at: AtomicU64,
    pub timer_firings: AtomicU64,
    /// Wake-up IPIs this CPU took (`smp::wake`).
    pub wakeups: AtomicU64,
    /// The deadline the timer is armed for (TSC, or `u64::MAX` for none; `timer.rs`); with the
    /// profiler on, also the next sample, whether the countdown runs for the sample, samples
    /// taken.
    pub timer_deadline: AtomicU64,
    pub sample_at: AtomicU64,
    pub armed_for_sample: AtomicBool,
    pub samples: AtomicU64,
    /// In `traps::wait_for_interrupt`'s halt: set before it, cleared by the interrupt that ends
    /// it (one that returns to the halt's next instruction). The sampler tells a halted CPU
    /// by it: an interrupt that comes right after another ended the halt finds the same
    /// instruction pointer, but a CPU that is running again.
    pub halted: AtomicBool,
    /// In `wait_for_work`, from before it looks for work until its halt ends: a
    /// `wake_if_waiting` sent while this is false finds the CPU running, and the work it
    /// announces is seen by the CPU's next look (`arch::wait_for_work`).
    pub waiting: AtomicBool,
    /// The kernel stack pointer saved by `usermode::enter_user`, where the sandbox's exit
    /// (its `syscall`, or a fault the kernel ends it for) resumes. Read by assembly at
    /// [`USER_KERNEL_RSP_OFFSET`].
    pub user_kernel_rsp: Cell<u64>,
    tss: TaskStateSegment,
    gdt: GlobalDescriptorTable<8>,
    pub selectors: Selectors,
}

#[derive(Clone, Copy)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    /// Ring-3 selectors (RPL 3) for sandboxes; `usermode.rs` enters with `iretq`.
    pub user_code: SegmentSelector,
    pub user_data: SegmentSelector,
}

/// Where `user_kernel_rsp` sits in the block, for `gs:[...]` in assembly.
pub const USER_KERNEL_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, user_kernel_rsp);

// SAFETY: the `Cell`s are only ever touched by the CPU the block belongs to (through its own GS
// base); what other CPUs read is atomic. The `Sync` bound is needed to keep blocks in statics
// and to hand an AP's block to it.
unsafe impl Sync for PerCpu {}

/// The most CPUs the kernel keeps blocks for (indices 0..MAX_CPUS): the kernel's one limit.
pub use crate::smp::MAX_CPUS;

impl PerCpu {
    const fn new(index: u32) -> Self {
        PerCpu {
            self_ptr: core::ptr::null(),
            index,
            apic_id: Cell::new(0),
            expected_fault: Cell::new(None),
            last_fault: Cell::new(None),
            timer_fired_at: AtomicU64::new(0),
            timer_firings: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            timer_deadline: AtomicU64::new(u64::MAX),
            sample_at: AtomicU64::new(u64::MAX),
            armed_for_sample: AtomicBool::new(false),
            samples: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            user_kernel_rsp: Cell::new(0),
            tss: TaskStateSegment::new(),
            gdt: GlobalDescriptorTable::new(),
            selectors: Selectors {
                kernel_code: SegmentSelector(0),
                user_code: SegmentSelector(0),
                user_data: SegmentSelector(0),
            },
        }
    }
}

static BOOT_CPU: BootCell<PerCpu> = BootCell::new(PerCpu::new(0));

/// Every CPU's block by index, for reading another CPU's counters (null: no such CPU yet).
static BLOCKS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Builds the boot CPU's block, loads its GDT and TSS and points GS at it.
pub fn init_boot_cpu() {
    // SAFETY: runs once on the boot CPU with interrupts off, before anything reads BOOT_CPU;
    // afterwards the block is reached only through `current()`.
    let cpu: &'static mut PerCpu = unsafe { &mut *BOOT_CPU.get() };
    load(cpu, [stacks::ist_top(0), stacks::ist_top(1), stacks::ist_top(2)], stacks::user_trap_stack_top());
    LOADED.store(true, core::sync::atomic::Ordering::Release);
}

/// Set once the boot CPU's block is loaded: from then on every CPU that runs kernel code has
/// its block in GS (APs load theirs first thing).
static LOADED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether [`current`] may be called without reading the GS base MSR (cheap enough for the
/// allocator's every call).
pub fn loaded() -> bool {
    LOADED.load(core::sync::atomic::Ordering::Acquire)
}

/// A fresh block for application processor `index`, on the heap (never freed: the CPU keeps it
/// until the machine stops). Loaded by the AP itself through [`load`].
pub fn new_ap_block(index: usize) -> &'static mut PerCpu {
    Box::leak(Box::new(PerCpu::new(index as u32)))
}

/// Fills `cpu`'s TSS (interrupt stacks at `ist_tops`, indexed by `IST_*`; traps from ring 3 on
/// `user_trap_top`) and GDT, loads them on this CPU and points GS at the block. Runs once per
/// CPU, on that CPU, with interrupts off.
pub fn load(cpu: &'static mut PerCpu, ist_tops: [u64; 3], user_trap_top: u64) {
    use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
    use x86_64::instructions::tables::load_tss;

    cpu.self_ptr = &raw const *cpu;
    cpu.tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = VirtAddr::new(ist_tops[IST_DOUBLE_FAULT as usize]);
    cpu.tss.interrupt_stack_table[IST_NMI as usize] = VirtAddr::new(ist_tops[IST_NMI as usize]);
    cpu.tss.interrupt_stack_table[IST_MACHINE_CHECK as usize] = VirtAddr::new(ist_tops[IST_MACHINE_CHECK as usize]);
    // Traps and interrupts from ring 3 (sandboxes) switch to this stack.
    cpu.tss.privilege_stack_table[0] = VirtAddr::new(user_trap_top);
    let kernel_code = cpu.gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = cpu.gdt.append(Descriptor::kernel_data_segment());
    let tss: *const TaskStateSegment = &raw const cpu.tss;
    // SAFETY: the TSS lives as long as its block ('static, never moved) and is complete; nothing
    // writes it again (only the CPU reads it), so the descriptor may point at it.
    let tss_sel = cpu.gdt.append(Descriptor::tss_segment(unsafe { &*tss }));
    // User data before user code: the order SYSRET would expect (it is never used; sandboxes
    // leave only through `syscall`, and enter through `iretq`).
    let user_data = cpu.gdt.append(Descriptor::user_data_segment());
    let user_code = cpu.gdt.append(Descriptor::user_code_segment());
    cpu.selectors = Selectors {
        kernel_code,
        user_code: SegmentSelector(user_code.0 | 3),
        user_data: SegmentSelector(user_data.0 | 3),
    };
    // From here on the block is only read (its Cells and atomics aside).
    let cpu: &'static PerCpu = cpu;
    cpu.gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the right descriptor types.
    unsafe {
        CS::set_reg(kernel_code);
        SS::set_reg(kernel_data);
        DS::set_reg(kernel_data);
        ES::set_reg(kernel_data);
        load_tss(tss_sel);
    }
    GsBase::write(VirtAddr::from_ptr(cpu.self_ptr));
    BLOCKS[cpu.index as usize].store((&raw const *cpu).cast_mut(), Ordering::Release);
}

/// CPU `index`'s block, once that CPU has loaded it.
pub fn of(index: usize) -> Option<&'static PerCpu> {
    let ptr = BLOCKS.get(index)?.load(Ordering::Acquire);
    // SAFETY: only `load` stores here, a pointer to a block that lives forever.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// This CPU's index (0 = boot CPU): one load through GS.
pub fn current_index() -> usize {
    current().index as usize
}

/// This CPU's block.
pub fn current() -> &'static PerCpu {
    let ptr: *const PerCpu;
    // SAFETY: GS base points at this CPU's block once `init_boot_cpu` ran (it runs before any
    // trap can be taken), and the block's first word is its own address.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags)) };
    // SAFETY: blocks are statics that live forever.
    unsafe { &*ptr }
}

/// Whether `current()` may be called yet (traps before `init_boot_cpu` cannot use it).
pub fn ready() -> bool {
    GsBase::read().as_u64() != 0
}
