//! Real functions, written in Rust with the SDK and compiled to wasm32, run through the engine.
//!
//! The test builds the `functions/` workspace itself (`cargo build --release --target
//! wasm32-unknown-unknown`, into this test's own target folder), so what runs is what authors
//! get. Without the wasm32 target installed it says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{engine, item, run_with, set};
use engine::{Engine, EngineError, Limits, TimeBudget, TrapKind};
use model::Set;

/// The folder holding the built `.wasm` files, or `None` when the wasm32 target is missing.
fn built() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(build_functions).as_deref()
}

fn build_functions() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-unknown-unknown"])
        .output()
        .expect("run rustc");
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_string();
    if libdir.is_empty() || !Path::new(&libdir).exists() {
        eprintln!(
            "SKIPPED: the wasm32-unknown-unknown target is not installed \
             (rustup target add wasm32-unknown-unknown); Rust functions were not built or run"
        );
        return None;
    }
    // Run in functions/ so that its .cargo/config.toml (the wasm stack size) applies.
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("functions");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .current_dir(&functions)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("run cargo");
    assert!(output.status.success(), "building functions/ failed:\n{}", String::from_utf8_lossy(&output.stderr));
    Some(target_dir.join("wasm32-unknown-unknown/release"))
}

fn function(name: &str) -> Option<Vec<u8>> {
    let path = built()?.join(format!("{name}.wasm"));
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Limits for Rust functions: room for what the probe allocates (up to 300,000 bytes) beyond its
/// initial page (functions/.cargo/config.toml: a 32 KiB stack, static data, the heap's start).
fn rust_limits() -> Limits {
    Limits::new(4 << 20, TimeBudget::from_millis(20))
}

fn probe(commands: Vec<model::Item>, limits: Limits) -> Option<Result<engine::Completion, EngineError>> {
    let wasm = function("sdk_probe")?;
    Some(run_with(&wasm, vec![set("cmd", commands), set("other", vec![])], &["out", "side"], limits))
}

#[test]
fn the_template_uppercases_its_inputs() {
    let Some(wasm) = function("template") else { return };
    let inputs = vec![
        set("lines", vec![item("a.txt", None, b"hello, world"), item("b.txt", Some(42), b"MiXeD 123")]),
        set("more", vec![item("c", None, b"")]),
    ];
    let done = run_with(&wasm, inputs, &["upper"], rust_limits()).unwrap();
    let expected =
        vec![item("a.txt", None, b"HELLO, WORLD"), item("b.txt", Some(42), b"MIXED 123"), item("c", None, b"")];
    assert_eq!(done.outputs, vec![set("upper", expected)]);
}

#[test]
fn the_template_fits_in_one_mebibyte() {
    // functions/.cargo/config.toml sets a 32 KiB stack; Rust's default 1 MiB would not fit.
    let Some(wasm) = function("template") else { return };
    let limits = Limits::new(1 << 20, TimeBudget::from_millis(10));
    let done = run_with(&wasm, vec![set("in", vec![item("a", None, b"x")])], &["out"], limits).unwrap();
    assert_eq!(&*done.outputs[0].items[0].data, b"X");
}

#[test]
fn the_template_without_an_output_set_aborts_with_its_message() {
    let Some(wasm) = function("template") else { return };
    let err = run_with(&wasm, vec![], &[], rust_limits()).unwrap_err();
    assert_eq!(err, EngineError::Aborted { message: "the template needs one output set".into() });
}

#[test]
fn the_template_handles_a_large_item() {
    let Some(wasm) = function("template") else { return };
    // Larger than the initial memory: the SDK's allocator grows it. (Small enough for a debug
    // build of the interpreter to be quick.)
    let data = vec![b'x'; 300_000];
    let limits = Limits::new(4 << 20, TimeBudget::from_millis(100));
    let done = run_with(&wasm, vec![set("in", vec![item("big", None, &data)])], &["out"], limits).unwrap();
    assert_eq!(&*done.outputs[0].items[0].data, &vec![b'X'; 300_000][..]);
}

#[test]
fn a_rust_panic_aborts_with_its_message_and_location() {
    let Some(result) = probe(vec![item("panic", None, b"the probe panicked")], rust_limits()) else { return };
    let EngineError::Aborted { message } = result.unwrap_err() else { panic!("not an abort") };
    assert!(message.contains("the probe panicked"), "{message}");
    assert!(message.contains("src/lib.rs"), "{message}");
}

#[test]
fn a_returned_error_aborts_with_its_message() {
    let Some(result) = probe(vec![item("fail", None, b"bad input")], rust_limits()) else { return };
    assert_eq!(result.unwrap_err(), EngineError::Aborted { message: "bad input".into() });
}

#[test]
fn allocation_within_the_limit_succeeds_and_beyond_it_is_out_of_memory() {
    let Some(result) = probe(vec![item("alloc", None, b"300000")], rust_limits()) else { return };
    assert_eq!(&*result.unwrap().outputs[0].items[0].data, b"allocated 300000");

    let Some(result) = probe(vec![item("alloc", None, b"20000000")], rust_limits()) else { return };
    let err = result.unwrap_err();
    let EngineError::OutOfMemory { limit_bytes, detail } = &err else { panic!("{err}") };
    assert_eq!(*limit_bytes, 4 << 20);
    assert!(detail.contains("was refused"), "{detail}");
    assert!(detail.contains("memory allocation of 20000000 bytes failed"), "{detail}");
}

#[test]
fn output_sets_can_be_addressed_by_declared_name() {
    let Some(result) = probe(vec![item("named", None, b"side")], rust_limits()) else { return };
    let outputs = result.unwrap().outputs;
    assert_eq!(outputs[0], Set::new("out"));
    assert_eq!(outputs[1], set("side", vec![item("named", None, b"")]));
}

#[test]
fn items_can_be_read_in_chunks_and_set_names_listed() {
    let commands = vec![item("chunks", Some(9), b"0123456789abcdef"), item("sets", None, b""), item("x", None, b"y")];
    let Some(result) = probe(commands, rust_limits()) else { return };
    let items = &result.unwrap().outputs[0].items;
    assert_eq!(
        items,
        &vec![
            item("chunks", Some(9), b"0123456789abcdef"),
            item("sets", None, b"cmd,other,out,side"),
            item("x", None, b"y")
        ]
    );
}

#[test]
fn rust_functions_import_only_the_abi() {
    let Some(wasm) = function("template") else { return };
    // Preparing checks every import against the ABI; a mismatch between the SDK and the engine
    // would be refused here, naming the import.
    engine().prepare(&wasm).unwrap();
    let Some(wasm) = function("sdk_probe") else { return };
    engine().prepare(&wasm).unwrap();
}

#[test]
fn rust_recursion_within_the_stack_works_and_beyond_it_traps() {
    let Some(result) = probe(vec![item("recurse", None, b"20")], rust_limits()) else { return };
    assert_eq!(&*result.unwrap().outputs[0].items[0].data, b"210", "1 + 2 + … + 20");
    // 512-byte frames overflow the 32 KiB shadow stack long before wasmi's call depth limit:
    // the stack pointer runs below address 0 and the next store traps. Nothing else is touched.
    let Some(result) = probe(vec![item("recurse", None, b"1000000")], rust_limits()) else { return };
    let err = result.unwrap_err();
    assert!(
        matches!(&err, EngineError::Trap(t) if t.kind == TrapKind::MemoryOutOfBounds || t.kind == TrapKind::StackOverflow),
        "{err}"
    );
}

#[test]
fn rust_functions_keep_their_store_and_every_run_starts_afresh() {
    // functions/.cargo/config.toml exports the stack pointer and the table, so the engine can
    // put everything back: runs reuse one store and each sees only its own inputs.
    let Some(wasm) = function("template") else { return };
    let engine = common::engine();
    let image = engine.prepare(&wasm).unwrap();
    assert_eq!(image.kept_store_runs(), Some(0));
    let outputs = common::names(&["upper"]);
    for (i, text) in ["first secret", "2nd", "the third, longest input of all"].iter().enumerate() {
        let inputs = vec![set("in", vec![item(&format!("t{i}"), None, text.as_bytes())])];
        let done = engine
            .run(&image, engine::Invocation { inputs, outputs: &outputs, limits: rust_limits(), deadline: None })
            .unwrap();
        let expected = vec![item(&format!("t{i}"), None, text.to_ascii_uppercase().as_bytes())];
        assert_eq!(done.outputs, vec![set("upper", expected)]);
    }
    assert_eq!(image.kept_store_runs(), Some(3));
}
