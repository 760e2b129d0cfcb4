//! Memory management shared by every architecture: the physical frame allocator (over the
//! boot memory map) and the kernel heap. Page tables are per architecture (`arch::*::paging`).

mod heap;

pub use heap::{
    allocated_here as heap_allocated_here, init as init_heap, reserve as heap_reserve, room_for as heap_room_for,
    stats as heap_stats,
};

use kcore::frames::{FrameAllocator, FrameStats, FreeError, bitmap_bytes};
use spin::Mutex;

use crate::arch;
use crate::boot::BootInfo;

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// Places the frame bitmap in usable RAM (reserving it) and hands every other usable frame
/// to the allocator.
pub fn init_frames(info: &BootInfo) {
    let mut map = info.memory.clone();
    let bytes = bitmap_bytes(map.highest_usable());
    // Below 4 GiB, which every boot protocol maps for us before our own page tables exist.
    let phys = map.take(bytes, 0x10_0000).filter(|&p| p + bytes <= 1 << 32).unwrap_or_else(|| {
        panic!("no room below 4 GiB for the {bytes}-byte frame bitmap");
    });
    let words = (bytes / 8) as usize;
    // SAFETY: `take` reserved `[phys, phys + bytes)` out of usable RAM, so nothing else uses it,
    // and `phys_to_virt` maps all RAM below 4 GiB writable from now on.
    let bits = unsafe { core::slice::from_raw_parts_mut(arch::phys_to_virt(phys).cast::<u64>(), words) };
    let alloc = FrameAllocator::new(bits, &map);
    log::debug!("frames: bitmap of {bytes} bytes at {phys:#x}, {} frames free", alloc.stats().free);
    *FRAMES.lock() = Some(alloc);
}

fn with<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("frame allocator used before init"))
}

/// One zeroed 4 KiB frame (physical address).
pub fn alloc_frame() -> Option<u64> {
    let frame = with(|a| a.alloc())?;
    // SAFETY: the frame was just handed to us and the direct map covers it.
    unsafe { core::ptr::write_bytes(arch::phys_to_virt(frame), 0, 4096) };
    Some(frame)
}

/// A frame as the allocator has it, not zeroed: it may hold what its last user left. Only for
/// a caller that writes every byte before anything else can read it
/// (`AddressSpace::map_overwritten`).
pub fn alloc_frame_unzeroed() -> Option<u64> {
    with(|a| a.alloc())
}

/// `count` contiguous frames aligned to `align` bytes, not zeroed.
pub fn alloc_contiguous(count: u64, align: u64) -> Option<u64> {
    with(|a| a.alloc_contiguous(count, align))
}

pub fn free_contiguous(phys: u64, count: u64) -> Result<(), FreeError> {
    with(|a| a.free_contiguous(phys, count))
}

pub fn free_frame(phys: u64) -> Result<(), FreeError> {
    with(|a| a.free(phys))
}

pub fn frame_stats() -> FrameStats {
    with(|a| a.stats())
}

/// A copy of boot data the loader left in reserved RAM (the configuration module).
pub fn copy_boot_data(range: crate::boot::PhysRange) -> alloc::vec::Vec<u8> {
    let len = usize::try_from(range.len).unwrap_or(0);
    // SAFETY: the boot code reserved this range out of the allocator's RAM, so nothing writes it,
    // and the direct map covers all RAM.
    let bytes = unsafe { core::slice::from_raw_parts(arch::phys_to_virt(range.start), len) };
    bytes.to_vec()
}
