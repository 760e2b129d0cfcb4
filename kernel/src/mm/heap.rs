//! The kernel heap: `linked_list_allocator` over one contiguous run of frames, wrapped so
//! that running out of memory is reported with the numbers an operator needs.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use kcore::units::Bytes;
use linked_list_allocator::LockedHeap;

use crate::arch;
use crate::smp::MAX_CPUS;

/// Heap size: a quarter of RAM, at least 4 MiB, at most 1 GiB. The front door holds request and
/// response bodies (up to 64 MiB each) and socket buffers here; the rest of RAM stays in frames
/// for function sandboxes.
const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 1 << 30;

/// The part of the heap kept for the kernel's own small, infallible allocations (connection
/// state, smoltcp, the control plane's bookkeeping): a sixteenth of the heap, at least 4 MiB.
/// Tenants' budgets are carved from the rest (`config::memory_budgets`), and request paths
/// that could take more (request bodies, preparing an image) ask [`room_for`] first.
const MIN_RESERVE: usize = 4 << 20;

struct KernelHeap {
    inner: LockedHeap,
    failures: AtomicU64,
    /// Per CPU: bytes allocated less bytes freed there, wrapping ([`allocated_here`]).
    net: [AtomicU64; MAX_CPUS],
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    inner: LockedHeap::empty(),
    failures: AtomicU64::new(0),
    net: [const { AtomicU64::new(0) }; MAX_CPUS],
};

fn this_cpu() -> usize {
    arch::cpu_index_if_ready().unwrap_or(0) % MAX_CPUS
}

// SAFETY: delegates to `LockedHeap`, which upholds the `GlobalAlloc` contract.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            self.net[this_cpu()].fetch_add(layout.size() as u64, Ordering::Relaxed);
        } else {
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
        self.net[this_cpu()].fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { self.inner.dealloc(ptr, layout) }
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
    HeapStats { total: heap.size(), used: heap.used(), failures: HEAP.failures.load(Ordering::Relaxed) }
}

/// Bytes allocated less bytes freed on this CPU since boot (wrapping): read before and after
/// work done on this CPU, the difference is what the work kept.
pub fn allocated_here() -> u64 {
    HEAP.net[this_cpu()].load(Ordering::Relaxed)
}

/// The kernel's reserve ([`MIN_RESERVE`]).
pub fn reserve() -> usize {
    (stats().total / 16).max(MIN_RESERVE)
}

/// Whether `bytes` more can be taken for a request and still leave the kernel its reserve.
pub fn room_for(bytes: usize) -> bool {
    let s = stats();
    let free = s.total.saturating_sub(s.used);
    free.checked_sub(bytes).is_some_and(|left| left >= reserve())
}

pub fn init() {
    let free = super::frame_stats().free * 4096;
    let size = (free / 4).clamp(MIN_HEAP, MAX_HEAP) & !0xfff;
    let phys = super::alloc_contiguous(size / 4096, 4096)
        .unwrap_or_else(|| panic!("no {} of contiguous RAM for the kernel heap", Bytes(size)));
    // SAFETY: the frames were just allocated for the heap alone and are mapped writable by the
    // direct map; the heap is initialised once, here, before anything allocates.
    unsafe { HEAP.inner.lock().init(arch::phys_to_virt(phys), size as usize) };
    log::debug!("heap: {} at phys {phys:#x}", Bytes(size));
}
