//! Prepared images give their memory back: registering and deleting functions over and over (a
//! tenant's ordinary API calls) must not grow the engine. Counted with this test binary's own
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use engine::Engine;
use wasm::{WasmConfig, WasmEngine};

struct Counting;

static NET: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator, counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        NET.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A module with `funcs` functions and a custom section making its bytes unique.
fn module(seed: u32, funcs: usize) -> Vec<u8> {
    let bodies: String =
        (0..funcs).map(|i| format!("(func $f{i} (result i32) i32.const {i} i32.const {seed} i32.add)")).collect();
    let mut bytes =
        wat::parse_str(format!(r#"(module (memory (export "memory") 1) {bodies} (func (export "run")))"#)).unwrap();
    // A custom section: name "seed", payload the seed.
    let payload = seed.to_le_bytes();
    bytes.extend_from_slice(&[0, 1 + 4 + payload.len() as u8, 4]);
    bytes.extend_from_slice(b"seed");
    bytes.extend_from_slice(&payload);
    bytes
}

#[test]
fn preparing_and_dropping_images_keeps_nothing() {
    let engine = WasmEngine::new(WasmConfig::default()).unwrap();
    // Warm up: whatever the engine keeps once (interned types) is kept by now.
    for seed in 0..4 {
        drop(engine.prepare(&module(seed, 50)).unwrap());
    }
    let before = NET.load(Ordering::Relaxed);
    for seed in 4..104 {
        let image = engine.prepare(&module(seed, 50)).unwrap();
        drop(image);
    }
    let grown = NET.load(Ordering::Relaxed) - before;
    assert!(grown < 4096, "100 prepared-and-dropped images left {grown} bytes behind");
}
