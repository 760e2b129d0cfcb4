//! The kernel's allocator (`talc`, as in kernel/src/mm/heap.rs) over an arena, for the examples
//! that count host instructions with callgrind: the counts then include what the kernel's heap
//! costs per allocation and free. Shared by `invoke_fanout` and `invoke_matmul_wasm` through
//! `#[path]`.

use std::alloc::{GlobalAlloc, Layout, System};

use talc::{ErrOnOom, Span, Talc, Talck};

static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

static ARENA_RANGE: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

fn in_arena(ptr: *mut u8) -> bool {
    ARENA_RANGE.get().is_some_and(|&(base, end)| (base..end).contains(&(ptr as usize)))
}

/// Routes everything to [`HEAP`] once it has its arena (before `main`, the runtime's own few
/// allocations go to the system allocator and are freed there).
struct KernelHeap;

// SAFETY: forwards to `talc` (inside the arena) or the system allocator (outside), each of
// which upholds the `GlobalAlloc` contract for the pointers it handed out.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARENA_RANGE.get().is_some() {
            // SAFETY: forwarded contract.
            unsafe { HEAP.alloc(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_arena(ptr) {
            // SAFETY: forwarded contract; `ptr` came from `HEAP`.
            unsafe { HEAP.dealloc(ptr, layout) }
        } else {
            // SAFETY: forwarded contract; `ptr` came from `System`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static GLOBAL: KernelHeap = KernelHeap;

/// Gives the kernel's allocator an arena of `bytes` from the system allocator; from now on
/// every allocation is the kernel allocator's.
pub fn claim_arena(bytes: usize) -> Result<(), &'static str> {
    let layout = Layout::from_size_align(bytes, 4096).map_err(|_| "arena layout")?;
    // SAFETY: a non-zero size; the block is never freed.
    let base = unsafe { System.alloc(layout) };
    if base.is_null() {
        return Err("no memory for the arena");
    }
    // SAFETY: the block is ours alone, for the life of the process.
    if unsafe { HEAP.lock().claim(Span::from_base_size(base, bytes)) }.is_err() {
        return Err("talc refused the arena");
    }
    let _ = ARENA_RANGE.set((base as usize, base as usize + bytes));
    Ok(())
}
