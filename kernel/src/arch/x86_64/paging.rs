//! The kernel's own page tables.
//!
//! Replaces the boot tables with:
//! - a direct map of physical memory at `PHYS_OFFSET` (2 MiB pages, NX; write-back where the
//!   2 MiB overlaps usable RAM, uncached elsewhere, i.e. MMIO holes like the local APIC's);
//! - the kernel image in its top-2-GiB window with exact permissions: text read+execute,
//!   rodata read-only NX, data and bss read+write NX, stack guard pages left unmapped;
//! - nothing in the lower half: that is for function sandboxes.
//!
//! It also turns on SMEP and SMAP where the CPU has them, so the kernel can neither run nor
//! (outside explicit accessors) touch user pages.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags as F, PhysFrame, Size2MiB,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::{KERNEL_VMA, PHYS_OFFSET, cpu, stacks};
use crate::boot::BootInfo;
use crate::mm;

pub use x86_64::structures::paging::PageTableFlags;

static MAPPER: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);
/// The end of the direct map (everything below is mapped at `PHYS_OFFSET`, 0 before `init`).
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(0);

/// Bumped after every change [`map_page`] makes to the kernel's page tables (which may add a
/// top-level entry): sandbox address spaces copy the kernel's upper half again only when it
/// moved (`uspace::AddressSpace::refresh_kernel_half`).
static KERNEL_TABLES_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The kernel's PML4 (physical), set once by [`init`].
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

/// The kernel's own PML4 (physical): what sandbox address spaces copy their upper half from
/// and what a CPU loads when it leaves one. A CPU may run kernel code on another PML4 (the MPK
/// engine's shared space stays loaded between runs: `uspace::AddressSpace::make_resident`),
/// so CR3 does not always hold this.
pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

/// The kernel's page tables' generation ([`KERNEL_TABLES_GENERATION`]).
pub fn kernel_tables_generation() -> u64 {
    KERNEL_TABLES_GENERATION.load(Ordering::Acquire)
}

/// Hands the frame allocator to the `x86_64` crate's mapper, which asks it for table frames.
struct Frames;

// SAFETY: `mm::alloc_frame` returns unused, zeroed frames that nothing else will use.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        mm::alloc_frame().map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

fn section(start: &u8, end: &u8) -> (u64, u64) {
    (start as *const u8 as u64, end as *const u8 as u64)
}

/// Builds and loads the kernel page tables. Runs once, on the boot CPU.
/// The direct map: every 2 MiB of the first 4 GiB (firmware tables, MMIO) and all RAM above,
/// at `PHYS_OFFSET`, in 2 MiB pages written straight into fresh tables (one page directory per
/// GiB; through the mapper, one walk per page cost ~200 instructions, 400,000 at boot).
/// Returns where it ends.
fn direct_map(pml4: &mut PageTable, info: &BootInfo) -> u64 {
    const GIB: u64 = 1 << 30;
    let table = |phys: u64| -> &'static mut PageTable {
        // SAFETY: `phys` is a page-table frame of these fresh tables (allocated zeroed here and
        // used by nothing else), reached through the boot tables' direct map.
        unsafe { &mut *(super::phys_to_virt(phys).cast::<PageTable>()) }
    };
    let parent = F::PRESENT | F::WRITABLE;
    let top = info.memory.highest_usable().max(1 << 32).next_multiple_of(Size2MiB::SIZE);
    let usable = info.memory.usable();
    for gib in (0..top).step_by(GIB as usize) {
        let virt = VirtAddr::new(PHYS_OFFSET + gib);
        let pml4e = &mut pml4[virt.p4_index()];
        if pml4e.is_unused() {
            pml4e.set_addr(PhysAddr::new(mm::alloc_frame().expect("no frame for the direct map")), parent);
        }
        let pdpt = table(pml4e.addr().as_u64());
        let pd_phys = mm::alloc_frame().expect("no frame for the direct map");
        pdpt[virt.p3_index()].set_addr(PhysAddr::new(pd_phys), parent);
        let pd = table(pd_phys);
        for (i, entry) in pd.iter_mut().enumerate() {
            let phys = gib + i as u64 * Size2MiB::SIZE;
            if phys >= top {
                break;
            }
            let ram = usable.iter().any(|r| r.start < phys + Size2MiB::SIZE && r.end > phys);
            let mut flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL | F::HUGE_PAGE;
            if !ram {
                flags |= F::NO_CACHE | F::WRITE_THROUGH;
            }
            entry.set_addr(PhysAddr::new(phys), flags);
        }
    }
    top
}

pub fn init(info: &BootInfo) {
    let pml4_phys = mm::alloc_frame().expect("no frame for the kernel PML4");
    // SAFETY: the frame was just allocated (zeroed) and the boot tables map it at PHYS_OFFSET.
    let pml4 = unsafe { &mut *(super::phys_to_virt(pml4_phys).cast::<PageTable>()) };
    let top = direct_map(pml4, info);
    // SAFETY: PHYS_OFFSET maps all physical memory in the boot tables and in the ones built here.
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(PHYS_OFFSET)) };

    // SAFETY: linker-defined section bounds; only their addresses are used.
    let (text, rodata, data) = unsafe {
        (
            section(&__text_start, &__text_end),
            section(&__rodata_start, &__rodata_end),
            section(&__data_start, &__data_end),
        )
    };
    let guards = stacks::guard_pages();
    for ((start, end), flags) in [
        (text, F::PRESENT | F::GLOBAL),
        (rodata, F::PRESENT | F::GLOBAL | F::NO_EXECUTE),
        (data, F::PRESENT | F::GLOBAL | F::NO_EXECUTE | F::WRITABLE),
    ] {
        for virt in (start..end).step_by(4096).filter(|v| !guards.contains(v)) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
            let frame = PhysFrame::containing_address(PhysAddr::new(virt - KERNEL_VMA));
            // SAFETY: maps the kernel's own image to itself, as the boot tables did.
            unsafe { mapper.map_to(page, frame, flags, &mut Frames) }.expect("kernel image").ignore();
        }
    }

    let mut cr4 = Cr4Flags::PAGE_GLOBAL;
    if cpu::has_smep() {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if cpu::has_smap() {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: the new tables map the running code, its stack, and all data it will touch, with
    // the same virtual addresses as the boot tables; SMEP/SMAP only restrict user pages, of
    // which there are none yet.
    unsafe {
        Cr3::write(PhysFrame::containing_address(PhysAddr::new(pml4_phys)), Cr3Flags::empty());
        Cr4::update(|f| *f |= cr4);
    }
    crate::wall_events::count(crate::wall_events::Event::Cr3Write);
    log::debug!(
        "paging: direct map of {} MiB, text {:#x}..{:#x}, SMEP {}, SMAP {}",
        top >> 20,
        text.0,
        text.1,
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION)
    );
    KERNEL_PML4.store(pml4_phys, Ordering::Relaxed);
    *MAPPER.lock() = Some(mapper);
    DIRECT_MAP_END.store(top, Ordering::Relaxed);
}

/// Maps `[phys, phys + size)` uncached at `PHYS_OFFSET + phys` where the direct map does not
/// already cover it.
pub fn ensure_mmio_mapped(phys: u64, size: u64) {
    if phys.saturating_add(size) <= DIRECT_MAP_END.load(Ordering::Relaxed) {
        return; // the direct map covers it (uncached: it is not RAM)
    }
    let first = phys & !0xfff;
    let end = (phys + size).next_multiple_of(4096);
    for page in (first..end).step_by(4096) {
        if translate(PHYS_OFFSET + page).is_none() {
            let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH | F::GLOBAL;
            map_page(PHYS_OFFSET + page, page, flags).unwrap_or_else(|e| panic!("MMIO map of {page:#x}: {e:?}"));
        }
    }
}

/// Maps one 4 KiB page.
pub fn map_page(virt: u64, phys: u64, flags: PageTableFlags) -> Result<(), MapToError<Size4KiB>> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging not initialised");
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    // SAFETY: callers map fresh frames at addresses outside the kernel image and direct map,
    // so no existing reference is invalidated.
    unsafe { mapper.map_to(page, frame, flags, &mut Frames) }?.flush();
    // A CPU that stays on a resident sandbox space between runs runs kernel code through that
    // space's copy of the upper half: a top-level entry this mapping added must be there before
    // anyone can use the new page (x86 caches no non-present entry, so the copy is enough).
    super::uspace::sync_resident_kernel_half(kernel_pml4());
    KERNEL_TABLES_GENERATION.fetch_add(1, Ordering::Release);
    crate::wall_events::count(crate::wall_events::Event::TlbInvalidation);
    Ok(())
}

/// Unmaps one 4 KiB page, returning the frame it mapped.
pub fn unmap_page(virt: u64) -> Result<u64, UnmapError> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging not initialised");
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let (frame, flush) = mapper.unmap(page)?;
    flush.flush();
    crate::wall_events::count(crate::wall_events::Event::TlbInvalidation);
    Ok(frame.start_address().as_u64())
}

/// The leaf entry for `virt`: the physical address it maps to and its flags.
pub fn translate(virt: u64) -> Option<(u64, PageTableFlags)> {
    let guard = MAPPER.lock();
    translate_in(guard.as_ref()?, virt)
}

fn translate_in(mapper: &OffsetPageTable<'static>, virt: u64) -> Option<(u64, PageTableFlags)> {
    match mapper.translate(VirtAddr::try_new(virt).ok()?) {
        TranslateResult::Mapped { frame, offset, flags } => Some((frame.start_address().as_u64() + offset, flags)),
        _ => None,
    }
}

/// Whether `[addr, addr + len)` is mapped present in the kernel's tables. Used by the fault
/// report's stack walk, so it never waits for the lock (the faulting code may hold it).
pub fn is_kernel_readable(addr: u64, len: u64) -> bool {
    let Some(guard) = MAPPER.try_lock() else { return false };
    let Some(mapper) = guard.as_ref() else { return false };
    let last = addr.saturating_add(len.saturating_sub(1));
    [addr, last].iter().all(|&a| translate_in(mapper, a).is_some_and(|(_, f)| f.contains(F::PRESENT)))
}
