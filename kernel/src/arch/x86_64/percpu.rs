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
    tss: TaskStateSegment,
    gdt: GlobalDescriptorTable<8>,
    pub selectors: Selectors,
}

#[derive(Clone, Copy)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
}

// SAFETY: each block is only ever touched by the CPU it belongs to (through its own GS base);
// the `Sync` bound is needed only to keep blocks in statics.
unsafe impl Sync for PerCpu {}

static BOOT_CPU: BootCell<PerCpu> = BootCell::new(PerCpu {
    self_ptr: core::ptr::null(),
    index: 0,
    apic_id: Cell::new(0),
    expected_fault: Cell::new(None),
    last_fault: Cell::new(None),
    tss: TaskStateSegment::new(),
    gdt: GlobalDescriptorTable::new(),
    selectors: Selectors { kernel_code: SegmentSelector(0) },
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
    // SAFETY: as above; the TSS lives in a static and is never moved or written again.
    let tss: &'static TaskStateSegment = unsafe { &(*BOOT_CPU.get()).tss };
    let kernel_code = cpu.gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = cpu.gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = cpu.gdt.append(Descriptor::tss_segment(tss));
    cpu.selectors = Selectors { kernel_code };
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
