//! Modules that try to escape their limits: each ends with the precise error, never a host
//! panic or hang.

mod common;

use common::*;
use engine::{BadOutput, Engine, EngineError, ImageError, Invocation, Limits, TimeBudget, TrapKind};

#[test]
fn infinite_loop_times_out_deterministically() {
    let err = run(&entry("(loop $l (br $l))")).unwrap_err();
    assert_eq!(err, EngineError::Timeout { budget: limits().time, wall_clock: false });
    assert_eq!(err.http_status(), 504);
}

#[test]
fn infinite_loop_of_host_calls_times_out() {
    // Host calls charge fuel too, so a loop that only calls the host still runs out.
    let err = run(&entry("(loop $l (drop (call $input_set_count)) (br $l))")).unwrap_err();
    assert!(matches!(err, EngineError::Timeout { wall_clock: false, .. }), "{err}");
}

#[test]
fn expired_wall_clock_deadline_ends_a_loop() {
    let engine = engine();
    let image = engine.prepare(&entry("(loop $l (br $l))")).unwrap();
    let outputs = names(&["out"]);
    // A budget of an hour: only the deadline can end it.
    let limits = Limits::new(1 << 20, TimeBudget::from_millis(3_600_000));
    let deadline = Fixed(true);
    let invocation = Invocation { inputs: vec![], outputs: &outputs, limits, deadline: Some(&deadline) };
    let err = engine.run(&image, invocation).unwrap_err();
    assert_eq!(err, EngineError::Timeout { budget: limits.time, wall_clock: true });
}

#[test]
fn memory_growth_past_the_limit_then_trap_is_out_of_memory() {
    // 1 MiB limit = 16 pages; ask for 100 more; trap when refused, as allocators do.
    let wasm = entry("(if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))");
    let err = run(&wasm).unwrap_err();
    let EngineError::OutOfMemory { limit_bytes, detail } = &err else { panic!("{err}") };
    assert_eq!(*limit_bytes, 1 << 20);
    assert!(detail.contains("from 65536 to 6619136 bytes was refused"), "{detail}");
    assert!(detail.contains("unreachable"), "{detail}");
    assert_eq!(err.code(), "out_of_memory");
}

#[test]
fn memory_growth_refused_then_abort_is_out_of_memory_with_the_message() {
    let wasm = module(
        r#"(data (i32.const 16) "memory allocation of 6 MiB failed")
           (func (export "run")
             (drop (memory.grow (i32.const 100)))
             (call $abort (i32.const 16) (i32.const 33)))"#,
    );
    let err = run(&wasm).unwrap_err();
    let EngineError::OutOfMemory { detail, .. } = &err else { panic!("{err}") };
    assert!(detail.contains("then aborted: memory allocation of 6 MiB failed"), "{detail}");
}

#[test]
fn memory_growth_refused_but_coped_with_is_fine() {
    // memory.grow returns -1 as the spec says; a function that copes completes normally.
    let wasm = entry("(drop (memory.grow (i32.const 100)))");
    assert!(run(&wasm).is_ok());
}

#[test]
fn memory_growth_within_the_limit_succeeds() {
    let wasm = entry("(if (i32.eq (memory.grow (i32.const 15)) (i32.const -1)) (then unreachable))");
    assert!(run(&wasm).is_ok());
}

#[test]
fn initial_memory_above_the_limit_is_out_of_memory() {
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 17) (func (export "run")))"#).unwrap();
    let err = run(&wasm).unwrap_err();
    let EngineError::OutOfMemory { detail, .. } = &err else { panic!("{err}") };
    assert!(detail.contains("from 0 to 1114112 bytes was refused; so the instance could not be created"), "{detail}");
}

#[test]
fn unreachable_traps_with_its_name() {
    let err = run(&entry("unreachable")).unwrap_err();
    let EngineError::Trap(trap) = &err else { panic!("{err}") };
    assert_eq!(trap.kind, TrapKind::Unreachable);
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_eq!((err.code(), err.http_status()), ("function_trap", 500));
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    let wasm = module(r#"(func $f (call $f)) (func (export "run") (call $f))"#);
    let err = run(&wasm).unwrap_err();
    assert!(matches!(&err, EngineError::Trap(t) if t.kind == TrapKind::StackOverflow), "{err}");
}

#[test]
fn recursion_with_large_frames_is_a_stack_overflow_trap() {
    // Many locals per frame: the value stack limit, not the depth limit, is hit first.
    let locals = "(local i64) ".repeat(2000);
    let wasm = module(&format!(r#"(func $f {locals} (call $f)) (func (export "run") (call $f))"#));
    let err = run(&wasm).unwrap_err();
    assert!(matches!(&err, EngineError::Trap(t) if t.kind == TrapKind::StackOverflow), "{err}");
}

#[test]
fn integer_division_by_zero_traps_with_its_name() {
    let err = run(&entry("(drop (i32.div_u (i32.const 1) (i32.const 0)))")).unwrap_err();
    assert!(matches!(&err, EngineError::Trap(t) if t.kind == TrapKind::IntegerDivisionByZero), "{err}");
}

#[test]
fn out_of_bounds_load_traps() {
    let err = run(&entry("(drop (i32.load (i32.const 65534)))")).unwrap_err();
    assert!(matches!(&err, EngineError::Trap(t) if t.kind == TrapKind::MemoryOutOfBounds), "{err}");
}

#[test]
fn import_outside_the_sdk_is_refused_at_prepare_naming_it() {
    for (module, name) in [("env", "foo"), ("wasi_snapshot_preview1", "fd_write")] {
        let wasm = wat::parse_str(format!(
            r#"(module (import "{module}" "{name}" (func (param i32))) (memory (export "memory") 1) (func (export "run")))"#
        ))
        .unwrap();
        let err = engine().prepare(&wasm).unwrap_err();
        let EngineError::Image(ImageError::ForbiddenImport { module: m, name: n, .. }) = &err else { panic!("{err}") };
        assert_eq!((m.as_str(), n.as_str()), (module, name));
        assert!(err.to_string().contains(&format!("`{module}`.`{name}`")), "{err}");
        assert_eq!((err.code(), err.http_status()), ("forbidden_import", 400));
    }
}

#[test]
fn unknown_pappus_import_is_refused() {
    let wasm = wat::parse_str(r#"(module (import "pappus" "syscall" (func)) (func (export "run")))"#).unwrap();
    let err = engine().prepare(&wasm).unwrap_err();
    assert!(err.to_string().contains("`pappus`.`syscall`"), "{err}");
    assert!(err.to_string().contains("no such function"), "{err}");
}

#[test]
fn pappus_import_with_the_wrong_signature_is_refused() {
    let wasm =
        wat::parse_str(r#"(module (import "pappus" "abort" (func (param i64))) (func (export "run")))"#).unwrap();
    let err = engine().prepare(&wasm).unwrap_err();
    assert!(err.to_string().contains("signature is [i64] -> [], the ABI's is [i32 i32] -> []"), "{err}");
}

#[test]
fn pappus_import_of_a_memory_is_refused() {
    let wasm = wat::parse_str(r#"(module (import "pappus" "abort" (memory 1)) (func (export "run")))"#).unwrap();
    let err = engine().prepare(&wasm).unwrap_err();
    assert!(matches!(err, EngineError::Image(ImageError::ForbiddenImport { .. })), "{err}");
}

#[test]
fn malformed_bytes_are_an_invalid_image() {
    for bytes in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0\xff", b"not wasm at all", &[0xff; 100]] {
        let err = engine().prepare(bytes).unwrap_err();
        assert!(matches!(err, EngineError::Image(ImageError::Malformed { .. })), "{err}");
        assert_eq!((err.code(), err.http_status()), ("invalid_image", 400));
    }
}

#[test]
fn invalid_code_is_refused_by_validation() {
    // Well-formed binary, but the body leaves an i32 on the stack of a [] -> [] function.
    let wasm = wat::parse_str(r#"(module (func (export "run") (i32.const 1)))"#);
    // wat itself does not type-check, so the invalid module reaches the engine.
    let err = engine().prepare(&wasm.unwrap()).unwrap_err();
    assert!(matches!(err, EngineError::Image(ImageError::Malformed { .. })), "{err}");
}

/// A valid module with a custom section that makes it `size` bytes or a little more.
fn padded_module(size: usize) -> Vec<u8> {
    let mut wasm = entry("");
    let payload = size.saturating_sub(wasm.len());
    let name = b"padding";
    let mut section_len = Vec::new();
    leb128(&mut section_len, (1 + name.len() + payload) as u64);
    wasm.push(0); // custom section
    wasm.extend_from_slice(&section_len);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.resize(wasm.len() + payload, 0);
    wasm
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn fifty_mib_module_is_refused_by_size() {
    let wasm = padded_module(50 << 20);
    let err = engine().prepare(&wasm).unwrap_err();
    assert_eq!(err, EngineError::Image(ImageError::TooLarge { size: wasm.len(), limit: 32 << 20 }));
    assert_eq!((err.code(), err.http_status()), ("image_too_large", 413));
}

#[test]
fn module_size_limit_is_configurable() {
    let wasm = padded_module(1 << 20);
    let small = wasm::WasmEngine::new(wasm::WasmConfig { max_module_bytes: 1 << 19, ..Default::default() }).unwrap();
    assert!(matches!(small.prepare(&wasm), Err(EngineError::Image(ImageError::TooLarge { .. }))));
    // The same module is fine under the default limit: it is the size that refused it.
    assert!(engine().prepare(&wasm).is_ok());
}

#[test]
fn output_to_an_undeclared_set_is_bad_output() {
    let wasm = entry(
        "(call $output_push (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
    );
    let err = run(&wasm).unwrap_err();
    assert_eq!(err, EngineError::BadOutput(BadOutput::UndeclaredSet { index: 1, declared: 1 }));
    let negative = entry(
        "(call $output_push (i32.const -1) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
    );
    let err = run(&negative).unwrap_err();
    assert_eq!(err, EngineError::BadOutput(BadOutput::UndeclaredSet { index: 0xffff_ffff, declared: 1 }));
}

#[test]
fn too_many_output_items_is_bad_output() {
    let wasm = entry(
        "(loop $l (call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0)) (br $l))",
    );
    let limits = Limits { max_output_items: 10, ..limits() };
    let err = run_with(&wasm, vec![], &["out"], limits).unwrap_err();
    assert_eq!(err, EngineError::BadOutput(BadOutput::TooManyItems { limit: 10 }));
}

#[test]
fn too_many_output_bytes_is_bad_output() {
    let push = "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 600))";
    let wasm = entry(&format!("{push} {push}"));
    let limits = Limits { max_output_bytes: 1000, ..limits() };
    let err = run_with(&wasm, vec![], &["out"], limits).unwrap_err();
    assert_eq!(err, EngineError::BadOutput(BadOutput::TooLarge { attempted: 1200, limit: 1000 }));
}

#[test]
fn non_utf8_or_long_item_names_are_bad_output() {
    let wasm = module(
        r#"(data (i32.const 0) "\ff\fe")
           (func (export "run")
             (call $output_push (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))"#,
    );
    assert!(matches!(run(&wasm), Err(EngineError::BadOutput(BadOutput::InvalidName { .. }))));
    let long = entry(
        "(call $output_push (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
    );
    assert!(matches!(run(&long), Err(EngineError::BadOutput(BadOutput::InvalidName { .. }))));
}

#[test]
fn reserved_item_flags_are_bad_output() {
    let wasm = entry(
        "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 2) (i64.const 0) (i32.const 0) (i32.const 0))",
    );
    assert_eq!(run(&wasm).unwrap_err(), EngineError::BadOutput(BadOutput::ReservedFlags { flags: 2 }));
}

/// Runs `code` with one input item so that input queries find something.
fn run_with_input(code: &str) -> Result<engine::Completion, EngineError> {
    let inputs = vec![set("in", vec![item("a", None, b"0123456789")])];
    run_with(&entry(code), inputs, &["out"], limits())
}

fn assert_bad_pointer(result: Result<engine::Completion, EngineError>, call: &str) {
    let err = result.unwrap_err();
    let EngineError::Trap(trap) = &err else { panic!("{call}: {err}") };
    assert_eq!(trap.kind, TrapKind::MemoryOutOfBounds, "{call}: {err}");
    assert!(trap.message.contains(&format!("pappus.{call}")), "{err}");
    assert!(trap.message.contains("outside linear memory (65536 bytes)"), "{err}");
}

#[test]
fn host_pointers_out_of_bounds_trap_and_never_panic() {
    let cases = [
        (
            "output_push",
            "(call $output_push (i32.const 0) (i32.const 65530) (i32.const 10) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))",
        ),
        (
            "output_push",
            "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const -1) (i32.const 1))",
        ),
        (
            "output_push",
            "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 1) (i32.const 65536))",
        ),
        (
            "input_item_read",
            "(drop (call $input_item_read (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 65530) (i32.const 10)))",
        ),
        (
            "input_item_read",
            "(drop (call $input_item_read (i32.const 0) (i32.const 0) (i64.const 0) (i32.const -4) (i32.const -1)))",
        ),
        ("input_item_info", "(drop (call $input_item_info (i32.const 0) (i32.const 0) (i32.const 65520)))"),
        (
            "input_item_name",
            "(drop (call $input_item_name (i32.const 0) (i32.const 0) (i32.const 65536) (i32.const 1)))",
        ),
        ("input_set_name", "(drop (call $input_set_name (i32.const 0) (i32.const 2147483647) (i32.const 100)))"),
        ("output_set_name", "(drop (call $output_set_name (i32.const 0) (i32.const 65535) (i32.const 100)))"),
    ];
    for (call, code) in cases {
        assert_bad_pointer(run_with_input(code), call);
    }
    // A length of -1 is 4 GiB: over the output limit before the pointer is even looked at.
    let huge = "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 1) (i32.const -1))";
    let err = run_with_input(huge).unwrap_err();
    assert!(matches!(err, EngineError::BadOutput(BadOutput::TooLarge { attempted: 0xffff_ffff, .. })), "{err}");
}

#[test]
fn abort_with_a_bad_pointer_still_aborts() {
    let err = run(&entry("(call $abort (i32.const 65530) (i32.const 100))")).unwrap_err();
    let EngineError::Aborted { message } = &err else { panic!("{err}") };
    assert!(message.contains("message unreadable"), "{message}");
}

#[test]
fn missing_or_wrong_entry_is_refused() {
    let no_entry = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let err = engine().prepare(&no_entry).unwrap_err();
    assert!(matches!(err, EngineError::Image(ImageError::BadEntry { .. })), "{err}");
    assert!(err.to_string().contains("no function `run`"), "{err}");

    let wrong = wat::parse_str(r#"(module (func (export "run") (param i32)))"#).unwrap();
    let err = engine().prepare(&wrong).unwrap_err();
    assert!(err.to_string().contains("type [i32] -> []"), "{err}");

    let not_func = wat::parse_str(r#"(module (global (export "run") i32 (i32.const 0)))"#).unwrap();
    assert!(matches!(engine().prepare(&not_func), Err(EngineError::Image(ImageError::BadEntry { .. }))));
}

#[test]
fn pointer_imports_without_a_memory_export_are_refused() {
    let wasm =
        wat::parse_str(r#"(module (import "pappus" "abort" (func (param i32 i32))) (func (export "run")))"#).unwrap();
    let err = engine().prepare(&wasm).unwrap_err();
    assert!(err.to_string().contains("exports no `memory`"), "{err}");
}

#[test]
fn start_functions_are_refused() {
    let wasm = wat::parse_str(r#"(module (func $s (loop $l (br $l))) (start $s) (func (export "run")))"#).unwrap();
    let err = engine().prepare(&wasm).unwrap_err();
    assert_eq!(err.code(), "invalid_image", "{err}");
    assert!(err.to_string().contains("start"), "{err}");
}

#[test]
fn deep_wasm_recursion_does_not_use_the_host_stack() {
    // wasm-to-wasm calls live on wasmi's own stacks: a small host stack still ends in a trap.
    let wasm = module(r#"(func $f (call $f)) (func (export "run") (call $f))"#);
    let engine = engine();
    let image = engine.prepare(&wasm).unwrap();
    let result = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let outputs = names(&["out"]);
            engine.run(&image, Invocation { inputs: vec![], outputs: &outputs, limits: limits(), deadline: None })
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(matches!(result, Err(EngineError::Trap(t)) if t.kind == TrapKind::StackOverflow));
}

#[test]
fn tables_beyond_the_element_cap_are_out_of_memory() {
    // Two tables of 60 000 elements: each alone fits the 100 000 cap, together they do not.
    let wasm = wat::parse_str(r#"(module (table 60000 funcref) (table 60000 funcref) (func (export "run")))"#).unwrap();
    let err = run(&wasm).unwrap_err();
    let EngineError::OutOfMemory { detail, .. } = &err else { panic!("{err}") };
    assert!(detail.contains("table growth from 0 to 60000 elements was refused"), "{detail}");

    let grow = wat::parse_str(
        r#"(module (table 10 funcref)
             (func (export "run")
               (if (i32.eq (table.grow (ref.null func) (i32.const 200000)) (i32.const -1)) (then unreachable))))"#,
    )
    .unwrap();
    assert!(matches!(run(&grow), Err(EngineError::OutOfMemory { .. })));
}

#[test]
fn a_second_memory_is_refused_at_prepare() {
    let wasm = wat::parse_str(r#"(module (memory 1) (memory 1) (func (export "run")))"#).unwrap();
    assert!(matches!(engine().prepare(&wasm), Err(EngineError::Image(ImageError::Malformed { .. }))));
}

#[test]
fn large_data_segments_instantiate_under_a_deadline() {
    // Instantiation is not resumable, so it runs on the whole budget even when fuel is sliced.
    let data = "\\00".repeat(60_000);
    let wasm = wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) (data (i32.const 0) "{data}") (func (export "run")))"#
    ))
    .unwrap();
    let engine = engine();
    let image = engine.prepare(&wasm).unwrap();
    let outputs = names(&["out"]);
    let never = Fixed(false);
    let invocation = Invocation { inputs: vec![], outputs: &outputs, limits: limits(), deadline: Some(&never) };
    assert!(engine.run(&image, invocation).is_ok());
}
