//! A bump allocator over the heap the system data block announces (zero, mapped on first
//! touch, counted against the function's memory limit). Memory is reused only by the most
//! recent allocation, as on wasm32.
//!
//! Its state lives in the first [`HEADER`] bytes of the heap, found through the thread pointer
//! (which holds the system data block at entry: docs/function-abi.md), not in a static: a
//! static's `.bss` page, written by every run that allocates, is a private page of the image
//! that the platform must fill again after each run (~370 instructions a run of a 3×3 matmul,
//! `cargo xtask profile matmul3-native`), while the heap's first page is zeroed after every run
//! anyway. The heap is zero at entry, so a zero header means "not started".
#![cfg(feature = "allocator")]

use core::alloc::{GlobalAlloc, Layout};

#[global_allocator]
static HEAP: Bump = Bump;

/// The bytes at the heap's start the allocator keeps for its [`State`].
const HEADER: usize = 64;

/// The allocator's state, at the heap's start.
#[repr(C)]
struct State {
    /// The first free address (0 until the first allocation).
    next: usize,
    /// The end of the heap.
    end: usize,
    /// Non-zero once the heap refused an allocation: a failure after it is `out_of_memory`.
    refused: usize,
}

/// Word `offset` of the system data block, read through the thread pointer.
fn sys_word(offset: usize) -> usize {
    let value: usize;
    // SAFETY: at entry the FS base holds the system data block, mapped read-only for the whole
    // run; the SDK never changes the FS base, and `offset` is one of the block's header words.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("mov {v}, qword ptr fs:[{o}]", v = out(reg) value, o = in(reg) offset,
            options(nostack, readonly, preserves_flags))
    };
    // SAFETY: TPIDRRO_EL0 holds the system data block (EL0 cannot change it), mapped read-only
    // for the whole run; `offset` is one of its header words.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        let block: usize;
        core::arch::asm!("mrs {}, tpidrro_el0", out(reg) block, options(nomem, nostack, preserves_flags));
        value = (block as *const usize).byte_add(offset).read();
    }
    value
}

/// The state at the heap's start, or `None` when the heap cannot hold it.
fn state() -> Option<*mut State> {
    let (start, len) = (sys_word(48), sys_word(56));
    (len >= HEADER).then_some(core::ptr::with_exposed_provenance_mut::<State>(start))
}

/// Whether the heap has refused an allocation in this run (or has no room for anything).
pub(super) fn refused() -> bool {
    // SAFETY: `state` points at the heap's first bytes, ours alone.
    state().is_none_or(|s| unsafe { (*s).refused != 0 })
}

/// Single-threaded: one function, one thread, so the state needs no synchronisation.
struct Bump;

impl Bump {
    /// Reserves `layout` and returns its address, or `None` (recorded as refused when the heap
    /// has no room for it).
    fn reserve(layout: Layout) -> Option<usize> {
        let state = state()?;
        // SAFETY: the heap's first bytes, ours alone; zero at entry (every run's heap is).
        let s = unsafe { &mut *state };
        if s.next == 0 {
            s.next = state.addr() + HEADER;
            s.end = state.addr() + sys_word(56);
        }
        let start = s.next.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let top = start.checked_add(layout.size())?;
        if top > s.end {
            s.refused = 1;
            return None;
        }
        s.next = top;
        Some(start)
    }
}

// SAFETY: hands out disjoint ranges of the heap past its header (single-threaded).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::reserve(layout) {
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
        let Some(state) = state() else { return };
        // SAFETY: as in `reserve`.
        let s = unsafe { &mut *state };
        let addr = ptr.expose_provenance();
        if addr + layout.size() == s.next {
            s.next = addr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(state) = state() else { return core::ptr::null_mut() };
        // SAFETY: as in `reserve`.
        let s = unsafe { &mut *state };
        let addr = ptr.expose_provenance();
        if addr + layout.size() == s.next {
            let Some(top) = addr.checked_add(new_size) else { return core::ptr::null_mut() };
            if top > s.end {
                s.refused = 1;
                return core::ptr::null_mut();
            }
            s.next = top;
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
