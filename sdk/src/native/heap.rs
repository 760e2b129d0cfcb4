//! A bump allocator over the heap the system data block announces (zero, mapped on first
//! touch, counted against the function's memory limit). Memory is reused only by the most
//! recent allocation, as on wasm32.
#![cfg(feature = "allocator")]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

#[global_allocator]
static HEAP: Bump = Bump { next: AtomicUsize::new(0), end: AtomicUsize::new(0) };

/// Set when the heap refused an allocation: a failure after it is `out_of_memory`.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether the heap has refused an allocation in this run.
pub(super) fn refused() -> bool {
    REFUSED.load(Relaxed)
}

struct Bump {
    next: AtomicUsize,
    end: AtomicUsize,
}

pub(super) fn init(start: usize, len: usize) {
    HEAP.next.store(start, Relaxed);
    HEAP.end.store(start.saturating_add(len), Relaxed);
}

impl Bump {
    fn reserve(&self, layout: Layout) -> Option<usize> {
        let next = self.next.load(Relaxed);
        let start = next.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let top = start.checked_add(layout.size())?;
        if top > self.end.load(Relaxed) {
            REFUSED.store(true, Relaxed);
            return None;
        }
        self.next.store(top, Relaxed);
        Some(start)
    }
}

// SAFETY: hands out disjoint ranges of the heap (single-threaded: one function, one thread).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.reserve(layout) {
            Some(addr) => core::ptr::with_exposed_provenance_mut(addr),
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // The heap starts zero and is only reused by the most recent allocation, which may
        // have been written: clear what is handed out (untouched pages cost nothing).
        // SAFETY: the caller's layout, passed on.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: just reserved, `layout.size()` bytes.
            unsafe { core::ptr::write_bytes(ptr, 0, layout.size()) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr.expose_provenance();
        if addr + layout.size() == self.next.load(Relaxed) {
            self.next.store(addr, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let addr = ptr.expose_provenance();
        if addr + layout.size() == self.next.load(Relaxed) {
            let Some(top) = addr.checked_add(new_size) else { return core::ptr::null_mut() };
            if top > self.end.load(Relaxed) {
                REFUSED.store(true, Relaxed);
                return core::ptr::null_mut();
            }
            self.next.store(top, Relaxed);
            return ptr;
        }
        // SAFETY: the alignment is the old layout's, valid; the size is the caller's.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh allocation of `new_layout`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are live allocations of at least the copied length.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
