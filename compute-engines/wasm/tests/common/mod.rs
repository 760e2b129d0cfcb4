//! Shared helpers for the wasm engine's tests: WAT modules with the ABI imports, runs with
//! small limits.
#![allow(dead_code)] // each test binary uses a different subset

use engine::{Completion, Deadline, Engine, EngineError, Invocation, Limits, TimeBudget};
use model::{Bytes, Item, Set};
use wasm::{WasmConfig, WasmEngine, WasmImage};

/// The ABI imports, to paste into WAT modules.
pub const IMPORTS: &str = r#"
    (import "pappus" "input_set_count" (func $input_set_count (result i32)))
    (import "pappus" "input_set_name" (func $input_set_name (param i32 i32 i32) (result i32)))
    (import "pappus" "input_item_count" (func $input_item_count (param i32) (result i32)))
    (import "pappus" "input_item_info" (func $input_item_info (param i32 i32 i32) (result i32)))
    (import "pappus" "input_item_name" (func $input_item_name (param i32 i32 i32 i32) (result i32)))
    (import "pappus" "input_item_read" (func $input_item_read (param i32 i32 i64 i32 i32) (result i32)))
    (import "pappus" "output_set_count" (func $output_set_count (result i32)))
    (import "pappus" "output_set_name" (func $output_set_name (param i32 i32 i32) (result i32)))
    (import "pappus" "output_push" (func $output_push (param i32 i32 i32 i32 i64 i32 i32)))
    (import "pappus" "abort" (func $abort (param i32 i32)))
"#;

/// A module with all ABI imports, one page of memory, and `body` as the rest of the module.
pub fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {IMPORTS} (memory (export \"memory\") 1) {body})")).expect("test WAT parses")
}

/// A module whose `run` has `code` as its body.
pub fn entry(code: &str) -> Vec<u8> {
    module(&format!("(func (export \"run\") {code})"))
}

pub fn engine() -> WasmEngine {
    WasmEngine::new(WasmConfig::default()).expect("engine")
}

/// Limits for tests: 1 MiB memory, 5 M instructions (5 ms at the platform's rate).
pub fn limits() -> Limits {
    Limits::new(1 << 20, TimeBudget::from_millis(5))
}

pub fn item(name: &str, key: Option<u64>, data: &[u8]) -> Item {
    Item { name: name.into(), key, data: Bytes::from(data) }
}

pub fn set(name: &str, items: Vec<Item>) -> Set {
    Set { name: name.into(), items }
}

pub fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn prepare(wasm: &[u8]) -> WasmImage {
    engine().prepare(wasm).unwrap_or_else(|e| panic!("prepare failed: {e}"))
}

/// Prepares and runs `wasm` with `inputs` and output sets `outputs`.
pub fn run_with(wasm: &[u8], inputs: Vec<Set>, outputs: &[&str], limits: Limits) -> Result<Completion, EngineError> {
    let engine = engine();
    let image = engine.prepare(wasm).unwrap_or_else(|e| panic!("prepare failed: {e}"));
    let outputs = names(outputs);
    engine.run(&image, Invocation { inputs, outputs: &outputs, limits, deadline: None })
}

/// Runs `wasm` with no inputs, one output set `out`, and the test limits.
pub fn run(wasm: &[u8]) -> Result<Completion, EngineError> {
    run_with(wasm, Vec::new(), &["out"], limits())
}

/// A deadline that is already over (or never is).
pub struct Fixed(pub bool);

impl Deadline for Fixed {
    fn expired(&self) -> bool {
        self.0
    }
}
