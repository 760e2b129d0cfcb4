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
    inner: Talck<spin::Mutex<()>, ErrOnOom>,
    failures: AtomicU64,
    /// Per CPU: bytes allocated less bytes freed there, wrapping ([`allocated_here`]).
    net: [AtomicU64; MAX_CPUS],
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    inner: Talc::new(ErrOnOom).lock(),
    failures: AtomicU64::new(0),
    net: [const { AtomicU64::new(0) }; MAX_CPUS],
};

fn this_cpu() -> usize {
    arch::cpu_index_if_ready().unwrap_or(0) % MAX_CPUS
}

// SAFETY: delegates to `Talck`, which upholds the `GlobalAlloc` contract.
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

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract; talc grows and shrinks in place where it can.
        let out = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if out.is_null() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            log::error!("out of memory: growing {} bytes to {}", layout.size(), new_size);
        } else {
            // The per-CPU count moves by the difference, as a free and an allocation would.
            let net = &self.net[this_cpu()];
            net.fetch_add(new_size as u64, Ordering::Relaxed);
            net.fetch_sub(layout.size() as u64, Ordering::Relaxed);
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
/// Counts what talc can still hand out (so its per-chunk overhead is not mistaken for room).
pub fn room_for(bytes: usize) -> bool {
    let available = HEAP.inner.lock().get_counters().available_bytes;
    available.checked_sub(bytes).is_some_and(|left| left >= reserve())
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
