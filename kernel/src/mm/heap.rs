//! The kernel heap: `talc` over one contiguous run of frames, wrapped so that running out of
//! memory is reported with the numbers an operator needs.
//!
//! `talc` keeps its free chunks in size-binned lists, so an allocation and a free cost the same
//! whatever the number of free chunks. The `linked_list_allocator` used before kept one
//! address-sorted list and walked it on every free: with the many small live allocations of a
//! large fan-out the heap fragments, and a 16,384-item `each` spent 80% of its host
//! instructions walking that list (see `kernel/control/examples/invoke_fanout.rs`).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kcore::blocks::{self, CLASS_SIZES, Cache, SMALL_ALIGN};
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
    /// Per CPU: small blocks freed there, for its next allocations of their size
    /// (`kcore::blocks`). Each CPU takes only its own lock (a CPU not yet set up uses the first),
    /// so the locks are not contended; like talc's, none is taken in interrupt context.
    small: [CpuCache; MAX_CPUS],
    /// Bytes of blocks held by the caches (allocated from talc, free for the kernel).
    cached: AtomicUsize,
    failures: AtomicU64,
    /// Per CPU: bytes allocated less bytes freed there, wrapping ([`allocated_here`]).
    net: [AtomicU64; MAX_CPUS],
    /// Per CPU: allocations and reallocations served there ([`HeapStats::allocations`]).
    allocations: [AtomicU64; MAX_CPUS],
    /// The bytes the heap claimed at boot (it never grows): what [`reserve`] is a share of,
    /// read without the heap's lock.
    claimed: AtomicUsize,
}

/// One CPU's cache, on its own cache lines.
#[repr(align(64))]
struct CpuCache(spin::Mutex<Cache>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    inner: Talc::new(ErrOnOom).lock(),
    small: [const { CpuCache(spin::Mutex::new(Cache::new())) }; MAX_CPUS],
    cached: AtomicUsize::new(0),
    failures: AtomicU64::new(0),
    net: [const { AtomicU64::new(0) }; MAX_CPUS],
    allocations: [const { AtomicU64::new(0) }; MAX_CPUS],
    claimed: AtomicUsize::new(0),
};

fn this_cpu() -> usize {
    arch::cpu_index_if_ready().unwrap_or(0) % MAX_CPUS
}

/// The layout talc allocates a small block of `class` with.
fn class_layout(class: usize) -> Layout {
    // Class sizes are multiples of SMALL_ALIGN, itself a power of two.
    Layout::from_size_align(CLASS_SIZES[class], SMALL_ALIGN).unwrap_or(Layout::new::<u8>())
}

impl KernelHeap {
    /// A block for `layout`: from this CPU's cache when it is small and one is kept, else from
    /// talc; after a talc failure every cache gives its blocks back and talc is asked again.
    fn allocate(&self, layout: Layout, cpu: usize) -> *mut u8 {
        let Some(class) = blocks::class_of(layout.size(), layout.align()) else {
            // SAFETY: forwarded contract (non-zero size is the caller's).
            return self.or_after_draining(layout, |l| unsafe { self.inner.alloc(l) });
        };
        if let Some(addr) = self.small[cpu].0.lock().take(class) {
            self.cached.fetch_sub(CLASS_SIZES[class], Ordering::Relaxed);
            return addr as *mut u8;
        }
        // SAFETY: a class layout has a non-zero size.
        self.or_after_draining(class_layout(class), |l| unsafe { self.inner.alloc(l) })
    }

    fn or_after_draining(&self, layout: Layout, alloc: impl Fn(Layout) -> *mut u8) -> *mut u8 {
        let ptr = alloc(layout);
        if !ptr.is_null() || self.cached.load(Ordering::Relaxed) == 0 {
            return ptr;
        }
        self.drain_caches();
        alloc(layout)
    }

    /// Gives every CPU's kept blocks back to talc (so that they can merge into larger chunks).
    fn drain_caches(&self) {
        for cache in &self.small {
            let mut cache = cache.0.lock();
            let bytes = cache.bytes();
            // SAFETY: every kept block was allocated from talc with its class's layout and is
            // free (its owner freed it into the cache).
            cache.drain(|class, addr| unsafe { self.inner.dealloc(addr as *mut u8, class_layout(class)) });
            self.cached.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Frees a block allocated by [`allocate`](Self::allocate) for `layout`.
    ///
    /// # Safety
    /// `ptr` came from `allocate(layout, _)` and is not used again.
    unsafe fn release(&self, ptr: *mut u8, layout: Layout, cpu: usize) {
        match blocks::class_of(layout.size(), layout.align()) {
            Some(class) => {
                if self.small[cpu].0.lock().keep(class, ptr as usize) {
                    self.cached.fetch_add(CLASS_SIZES[class], Ordering::Relaxed);
                } else {
                    // SAFETY: small blocks come from talc with their class's layout.
                    unsafe { self.inner.dealloc(ptr, class_layout(class)) }
                }
            }
            // SAFETY: forwarded contract.
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }
}

// SAFETY: large blocks are talc's (`Talck` upholds the `GlobalAlloc` contract); a small block
// is a talc block of its class's size, which holds any layout of that class, handed to one
// owner at a time (a kept block is in exactly one cache until taken).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::profile::allocation();
        let cpu = this_cpu();
        let ptr = self.allocate(layout, cpu);
        if !ptr.is_null() {
            self.net[cpu].fetch_add(layout.size() as u64, Ordering::Relaxed);
            self.allocations[cpu].fetch_add(1, Ordering::Relaxed);
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
        let cpu = this_cpu();
        self.net[cpu].fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { self.release(ptr, layout, cpu) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        crate::profile::allocation();
        let cpu = this_cpu();
        let old_class = blocks::class_of(layout.size(), layout.align());
        let new_class = blocks::class_of(new_size, layout.align());
        let out = match (old_class, new_class) {
            // The same class: the block already has the room (and is freed as that class).
            (Some(old), Some(new)) if new == old => ptr,
            // Both large: talc grows and shrinks in place where it can.
            // SAFETY: forwarded contract; the block is talc's with this layout.
            (None, None) => self.or_after_draining(layout, |l| unsafe { self.inner.realloc(ptr, l, new_size) }),
            // Another class, or across the small/large line: a new block, the bytes copied,
            // the old block freed (talc frees a block by the layout it was allocated with).
            _ => {
                // SAFETY: `new_size` is non-zero and, rounded to the alignment, does not
                // overflow (the caller's contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let new = self.allocate(new_layout, cpu);
                if !new.is_null() {
                    // SAFETY: both blocks are live and distinct; the smaller size is in both.
                    unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
                    // SAFETY: `ptr` was allocated for `layout` and is replaced by `new`.
                    unsafe { self.release(ptr, layout, cpu) };
                }
                new
            }
        };
        if out.is_null() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            log::error!("out of memory: growing {} bytes to {}", layout.size(), new_size);
        } else {
            // The per-CPU count moves by the difference, as a free and an allocation would.
            let net = &self.net[cpu];
            net.fetch_add(new_size as u64, Ordering::Relaxed);
            net.fetch_sub(layout.size() as u64, Ordering::Relaxed);
            self.allocations[cpu].fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub total: usize,
    pub used: usize,
    pub failures: u64,
    /// Allocations and reallocations served since boot, over every CPU: read before and after
    /// some requests, the heap work they cost (`bench e2e` reports it per request).
    pub allocations: u64,
}

pub fn stats() -> HeapStats {
    let heap = HEAP.inner.lock();
    let counters = heap.get_counters();
    // Used: the bytes of live allocations, what the requests asked for (the padding and chunk
    // headers around them, and free gaps too small to use, are talc's overhead, not usage).
    // Blocks kept in the per-CPU caches are talc's allocations but free for the kernel.
    let total = counters.claimed_bytes;
    let used = counters.allocated_bytes.saturating_sub(HEAP.cached.load(Ordering::Relaxed));
    let allocations = HEAP.allocations.iter().map(|count| count.load(Ordering::Relaxed)).sum();
    HeapStats { total, used, failures: HEAP.failures.load(Ordering::Relaxed), allocations }
}

/// Bytes allocated less bytes freed on this CPU since boot (wrapping): read before and after
/// work done on this CPU, the difference is what the work kept.
pub fn allocated_here() -> u64 {
    HEAP.net[this_cpu()].load(Ordering::Relaxed)
}

/// The kernel's reserve ([`MIN_RESERVE`]).
pub fn reserve() -> usize {
    // Not `stats()`: every admission asks, and that takes the heap's lock and sums per-CPU
    // counters (~140 guest instructions, twice a request, in `cargo xtask profile matmul3-native`).
    (HEAP.claimed.load(Ordering::Relaxed) / 16).max(MIN_RESERVE)
}

/// Whether `bytes` more can be taken for a request and still leave the kernel its reserve.
/// Counts what talc can still hand out (so its per-chunk overhead is not mistaken for room).
pub fn room_for(bytes: usize) -> bool {
    let available = HEAP.inner.lock().get_counters().available_bytes + HEAP.cached.load(Ordering::Relaxed);
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
    HEAP.claimed.store(HEAP.inner.lock().get_counters().claimed_bytes, Ordering::Relaxed);
    log::debug!("heap: {} at phys {phys:#x}", Bytes(size));
}
