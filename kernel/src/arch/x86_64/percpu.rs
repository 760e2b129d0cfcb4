//! The per-CPU block, reached through the GS base.
//!
//! Everything that differs between CPUs (its GDT and TSS, its APIC id, its trap bookkeeping)
//! lives in one `PerCpu`, whose first word points at itself so that `mov rax, gs:[0]` finds it.
//! Only the boot CPU exists today; SMP allocates one block per CPU and changes nothing else.

use core::cell::Cell;

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

// SAFETY: each block is only ever touched by the CPU it belongs to (through its own GS base);
// the `Sync` bound is needed only to keep blocks in statics.
unsafe impl Sync for PerCpu {}

static BOOT_CPU: BootCell<PerCpu> = BootCell::new(PerCpu {
    self_ptr: core::ptr::null(),
    index: 0,
    apic_id: Cell::new(0),
    expected_fault: Cell::new(None),
    last_fault: Cell::new(None),
    user_kernel_rsp: Cell::new(0),
    tss: TaskStateSegment::new(),
    gdt: GlobalDescriptorTable::new(),
    selectors: Selectors {
        kernel_code: SegmentSelector(0),
        user_code: SegmentSelector(0),
        user_data: SegmentSelector(0),
    },
});

/// Builds the boot CPU's block, loads its GDT and TSS and points GS at it.
pub fn init_boot_cpu() {
    use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
    use x86_64::instructions::tables::load_tss;

    // SAFETY: runs once on the boot CPU with interrupts off, before anything reads BOOT_CPU;
    // afterwards the block is reached only through `current()`.
    let cpu: &'static mut PerCpu = unsafe { &mut *BOOT_CPU.get() };
    cpu.self_ptr = &raw const *cpu;
    cpu.tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = VirtAddr::new(stacks::ist_top(0));
    cpu.tss.interrupt_stack_table[IST_NMI as usize] = VirtAddr::new(stacks::ist_top(1));
    cpu.tss.interrupt_stack_table[IST_MACHINE_CHECK as usize] = VirtAddr::new(stacks::ist_top(2));
    // Traps and interrupts from ring 3 (sandboxes) switch to this stack.
    cpu.tss.privilege_stack_table[0] = VirtAddr::new(stacks::user_trap_stack_top());
    // SAFETY: as above; the TSS lives in a static and is never moved or written again.
    let tss: &'static TaskStateSegment = unsafe { &(*BOOT_CPU.get()).tss };
    let kernel_code = cpu.gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = cpu.gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = cpu.gdt.append(Descriptor::tss_segment(tss));
    // User data before user code: the order SYSRET would expect (it is never used; sandboxes
    // leave only through `syscall`, and enter through `iretq`).
    let user_data = cpu.gdt.append(Descriptor::user_data_segment());
    let user_code = cpu.gdt.append(Descriptor::user_code_segment());
    cpu.selectors = Selectors {
        kernel_code,
        user_code: SegmentSelector(user_code.0 | 3),
        user_data: SegmentSelector(user_data.0 | 3),
    };
    // SAFETY: as above; the GDT is complete and never written again.
    let gdt: &'static GlobalDescriptorTable<8> = unsafe { &(*BOOT_CPU.get()).gdt };
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the right descriptor types.
    unsafe {
        CS::set_reg(kernel_code);
        SS::set_reg(kernel_data);
        DS::set_reg(kernel_data);
        ES::set_reg(kernel_data);
        load_tss(tss_sel);
    }
    GsBase::write(VirtAddr::from_ptr(cpu.self_ptr));
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
