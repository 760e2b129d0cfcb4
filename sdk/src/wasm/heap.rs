//! A bump allocator over wasm memory growth, for functions that use `alloc`.
//!
//! A run is short and its instance is thrown away afterwards, so freeing hardly matters: the
//! allocator hands out memory upwards from the linker's `__heap_base` (the end of static data,
//! inside the module's initial memory) and grows memory only once that runs out. Starting at the
//! end of memory instead made every run that allocated at all grow memory, which the engine pays
//! for with a copy of the whole initial memory and a zeroed page (`cargo xtask bench e2e`).
//! Freeing or resizing the most recent allocation is done in place, which covers the common
//! pattern of a growing `Vec` or `String`. When the platform refuses to grow memory (the
//! function's memory limit), allocation fails, the default handler panics, and the run ends as
//! `out_of_memory`.
#![cfg(feature = "allocator")]
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, memory_size};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const PAGE: usize = 65536;

#[global_allocator]
static HEAP: Bump = Bump { next: AtomicUsize::new(0), end: AtomicUsize::new(0) };

unsafe extern "C" {
    /// The first address past the stack and static data, defined by the linker (wasm-ld).
    static __heap_base: u8;
}

/// `next` is the first free address (0 until the first allocation), `end` the end of memory.
/// Atomics only for `Sync`: wasm32 functions run on one thread.
struct Bump {
    next: AtomicUsize,
    end: AtomicUsize,
}

impl Bump {
    /// Starts the heap at `__heap_base` (above the stack and static data), or at the end of
    /// memory where that lies lower (it does not, in a module wasm-ld linked).
    fn start(&self) {
        if self.next.load(Relaxed) == 0 {
            let end = memory_size(0) * PAGE;
            let base = (&raw const __heap_base).expose_provenance();
            let start = if base == 0 || base > end { end } else { base };
            self.next.store(start, Relaxed);
            self.end.store(end, Relaxed);
        }
    }

    /// Makes sure memory reaches `top`, growing it if needed.
    fn ensure(&self, top: usize) -> bool {
        let end = self.end.load(Relaxed);
        if top <= end {
            return true;
        }
        let pages = (top - end).div_ceil(PAGE);
        if memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.store(end + pages * PAGE, Relaxed);
        true
    }

    /// Reserves `layout` and returns its address.
    fn reserve(&self, layout: Layout) -> Option<usize> {
        self.start();
        let next = self.next.load(Relaxed);
        let start = next.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let top = start.checked_add(layout.size())?;
        if !self.ensure(top) {
            return None;
        }
        self.next.store(top, Relaxed);
        Some(start)
    }
}

// SAFETY: `reserve` returns fresh, aligned, in-bounds ranges that no other allocation overlaps
// (the bump pointer only moves back over the most recent allocation, when it is freed or resized).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.reserve(layout) {
            Some(addr) => core::ptr::with_exposed_provenance_mut(addr),
            None => core::ptr::null_mut(),
        }
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
            // The most recent allocation: grow or shrink it in place.
            let Some(top) = addr.checked_add(new_size) else { return core::ptr::null_mut() };
            if !self.ensure(top) {
                return core::ptr::null_mut();
            }
            self.next.store(top, Relaxed);
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, fits `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (GlobalAlloc::realloc's contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for the copied length and do not overlap (`new` is fresh).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
