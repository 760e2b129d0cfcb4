//! The kernel heap: `talc` over one contiguous run of frames, wrapped so that running out of
//! memory is reported with the numbers an operator needs.
//!
//! `talc` keeps its free chunks in size-binned lists, so an allocation and a free cost the same
//! whatever the number of free chunks. The `linked_list_allocator` used before kept one
//! address-sorted list and walked it on every free: with the many small live allocations of a
//! large fan-out the heap fragments, and a 16,384-item `each` spent 80% of its host
//! instructions walking that list (see `kernel/control/examples/invoke_fanout.rs`).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use kcore::units::Bytes;
use talc::{ErrOnOom, Span, Talc, Talck};

use crate::arch;

/// Heap size: a quarter of RAM, at least 4 MiB, at most 1 GiB. The front door holds request and
/// response bodies (up to 64 MiB each) and socket buffers here; the rest of RAM stays in frames
/// for function sandboxes.
const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 1 << 30;

struct KernelHeap {
    inner: Talck<spin::Mutex<()>, ErrOnOom>,
    failures: AtomicU64,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap { inner: Talc::new(ErrOnOom).lock(), failures: AtomicU64::new(0) };

// SAFETY: delegates to `Talck`, which upholds the `GlobalAlloc` contract.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if ptr.is_null() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let s = stats();
            log::error!(
                "out of memory: {} bytes (align {}) requested; heap {} used of {}, {} failures so far",
                layout.size(),
                layout.align(),
                Bytes(s.used as u64),
                Bytes(s.total as u64),
                s.failures
            );
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract; talc grows and shrinks in place where it can.
        let out = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if out.is_null() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            log::error!("out of memory: growing {} bytes to {}", layout.size(), new_size);
        }
        out
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub total: usize,
    pub used: usize,
    pub failures: u64,
}

pub fn stats() -> HeapStats {
    let heap = HEAP.inner.lock();
    let counters = heap.get_counters();
    // Used: the bytes of live allocations, what the requests asked for (the padding and chunk
    // headers around them, and free gaps too small to use, are talc's overhead, not usage).
    let total = counters.claimed_bytes;
    let used = counters.allocated_bytes;
    HeapStats { total, used, failures: HEAP.failures.load(Ordering::Relaxed) }
}

pub fn init() {
    let free = super::frame_stats().free * 4096;
    let size = (free / 4).clamp(MIN_HEAP, MAX_HEAP) & !0xfff;
    let phys = super::alloc_contiguous(size / 4096, 4096)
        .unwrap_or_else(|| panic!("no {} of contiguous RAM for the kernel heap", Bytes(size)));
    // SAFETY: the frames were just allocated for the heap alone and are mapped writable by the
    // direct map; the heap is initialised once, here, before anything allocates.
    let claimed = unsafe { HEAP.inner.lock().claim(Span::from_base_size(arch::phys_to_virt(phys), size as usize)) };
    if claimed.is_err() {
        panic!("the kernel heap could not claim {} at phys {phys:#x}", Bytes(size));
    }
    log::debug!("heap: {} at phys {phys:#x}", Bytes(size));
}
