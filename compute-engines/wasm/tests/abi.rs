//! The ABI as a function sees it: inputs in, outputs out, through the `pappus` imports.

mod common;

use common::*;
use engine::{DynEngine, Engine, EngineError, Invocation, Limits, TimeBudget};
use model::Set;

/// Copies every input item (name, key, data) to output set 0, through every input query.
/// Memory: 0..24 item info, 64..320 name, 1024.. data.
const ECHO: &str = r#"
  (func (export "run")
    (local $s i32) (local $i i32) (local $n i32) (local $len i32) (local $nl i32)
    (block $sets_done
      (loop $sets
        (br_if $sets_done (i32.ge_u (local.get $s) (call $input_set_count)))
        (local.set $n (call $input_item_count (local.get $s)))
        (local.set $i (i32.const 0))
        (block $items_done
          (loop $items
            (br_if $items_done (i32.ge_u (local.get $i) (local.get $n)))
            (if (call $input_item_info (local.get $s) (local.get $i) (i32.const 0)) (then unreachable))
            (local.set $nl (call $input_item_name (local.get $s) (local.get $i) (i32.const 64) (i32.const 256)))
            (local.set $len (call $input_item_read (local.get $s) (local.get $i) (i64.const 0) (i32.const 1024) (i32.const 60000)))
            (if (i64.ne (i64.extend_i32_u (local.get $len)) (i64.load (i32.const 16))) (then unreachable))
            (call $output_push (i32.const 0) (i32.const 64) (local.get $nl) (i32.load (i32.const 4))
                  (i64.load (i32.const 8)) (i32.const 1024) (local.get $len))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $items)))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (br $sets))))
"#;

#[test]
fn echo_copies_every_item_with_name_key_and_data() {
    let inputs = vec![
        set("left", vec![item("a", Some(7), b"alpha"), item("b", None, b"")]),
        set("right", vec![item("c", Some(u64::MAX), &[0, 1, 2, 255])]),
    ];
    let done = run_with(&module(ECHO), inputs, &["all", "unused"], limits()).unwrap();
    let expected = vec![item("a", Some(7), b"alpha"), item("b", None, b""), item("c", Some(u64::MAX), &[0, 1, 2, 255])];
    assert_eq!(done.outputs, vec![set("all", expected), Set::new("unused")]);
    assert!(done.instructions.unwrap() > 0);
}

#[test]
fn echo_with_no_inputs_writes_empty_declared_sets() {
    let done = run_with(&module(ECHO), vec![], &["x", "y"], limits()).unwrap();
    assert_eq!(done.outputs, vec![Set::new("x"), Set::new("y")]);
}

#[test]
fn queries_for_missing_sets_and_items_return_not_found() {
    let code = r#"
        (if (i32.ne (call $input_item_count (i32.const 1)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $input_item_count (i32.const -1)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $input_item_info (i32.const 0) (i32.const 1) (i32.const 0)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $input_item_name (i32.const 0) (i32.const 9) (i32.const 0) (i32.const 0)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $input_item_read (i32.const 2) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $input_set_name (i32.const 5) (i32.const 0) (i32.const 0)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $output_set_name (i32.const 1) (i32.const 0) (i32.const 0)) (i32.const -1)) (then unreachable))
    "#;
    let inputs = vec![set("in", vec![item("only", None, b"x")])];
    run_with(&entry(code), inputs, &["out"], limits()).unwrap();
}

#[test]
fn names_are_copied_up_to_the_capacity_and_report_their_full_length() {
    // Set names: "inputs" (6) into a 3-byte buffer -> "inp", returns 6. Output name likewise.
    let code = r#"
        (if (i32.ne (call $input_set_count) (i32.const 1)) (then unreachable))
        (if (i32.ne (call $output_set_count) (i32.const 2)) (then unreachable))
        (if (i32.ne (call $input_set_name (i32.const 0) (i32.const 100) (i32.const 3)) (i32.const 6)) (then unreachable))
        (if (i32.ne (call $output_set_name (i32.const 1) (i32.const 200) (i32.const 64)) (i32.const 6)) (then unreachable))
        (call $output_push (i32.const 0) (i32.const 100) (i32.const 6) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))
        (call $output_push (i32.const 1) (i32.const 200) (i32.const 6) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))
    "#;
    let inputs = vec![set("inputs", vec![])];
    let done = run_with(&entry(code), inputs, &["first", "second"], limits()).unwrap();
    assert_eq!(done.outputs[0].items[0].name, "inp\0\0\0");
    assert_eq!(done.outputs[1].items[0].name, "second");
}

#[test]
fn item_data_can_be_read_in_chunks_from_an_offset() {
    // Read bytes 3.. of "0123456789" in chunks of 4 to address 100, then push what was read.
    let code = r#"
        (if (i32.ne (call $input_item_read (i32.const 0) (i32.const 0) (i64.const 3) (i32.const 100) (i32.const 4)) (i32.const 4)) (then unreachable))
        (if (i32.ne (call $input_item_read (i32.const 0) (i32.const 0) (i64.const 7) (i32.const 104) (i32.const 4)) (i32.const 3)) (then unreachable))
        (if (i32.ne (call $input_item_read (i32.const 0) (i32.const 0) (i64.const 10) (i32.const 107) (i32.const 4)) (i32.const 0)) (then unreachable))
        (if (i32.ne (call $input_item_read (i32.const 0) (i32.const 0) (i64.const -1) (i32.const 107) (i32.const 4)) (i32.const 0)) (then unreachable))
        (call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1) (i64.const 42) (i32.const 100) (i32.const 7))
    "#;
    let inputs = vec![set("in", vec![item("digits", None, b"0123456789")])];
    let done = run_with(&entry(code), inputs, &["out"], limits()).unwrap();
    assert_eq!(done.outputs[0].items, vec![item("", Some(42), b"3456789")]);
}

#[test]
fn abort_ends_the_run_with_the_functions_message() {
    let wasm = module(
        r#"(data (i32.const 0) "no input given") (func (export "run") (call $abort (i32.const 0) (i32.const 14)) (unreachable))"#,
    );
    let err = run(&wasm).unwrap_err();
    assert_eq!(err, EngineError::Aborted { message: "no input given".into() });
    assert_eq!((err.code(), err.http_status()), ("function_aborted", 500));
}

#[test]
fn output_written_before_a_failure_is_discarded() {
    let wasm = entry(
        "(call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 1)) unreachable",
    );
    assert!(matches!(run(&wasm), Err(EngineError::Trap(_))));
}

#[test]
fn every_run_gets_a_fresh_instance() {
    // A global counter and a memory cell, bumped each run: both start from scratch every time.
    let wasm = module(
        r#"(global $g (mut i32) (i32.const 0))
           (func (export "run")
             (global.set $g (i32.add (global.get $g) (i32.const 1)))
             (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
             (if (i32.ne (global.get $g) (i32.const 1)) (then unreachable))
             (if (i32.ne (i32.load (i32.const 0)) (i32.const 1)) (then unreachable)))"#,
    );
    let engine = engine();
    let image = engine.prepare(&wasm).unwrap();
    let outputs = names(&["out"]);
    for _ in 0..3 {
        let invocation = Invocation { inputs: vec![], outputs: &outputs, limits: limits(), deadline: None };
        engine.run(&image, invocation).unwrap();
    }
}

/// Runs ECHO on a fixed input with or without a (never expiring) deadline, returning the count.
fn echo_instructions(deadline: bool) -> u64 {
    let engine = engine();
    let image = engine.prepare(&module(ECHO)).unwrap();
    let outputs = names(&["out"]);
    let inputs = vec![set("in", (0..50).map(|i| item(&format!("i{i}"), Some(i), &[i as u8; 100])).collect())];
    let never = Fixed(false);
    let invocation = Invocation {
        inputs,
        outputs: &outputs,
        limits: limits(),
        deadline: if deadline { Some(&never) } else { None },
    };
    engine.run(&image, invocation).unwrap().instructions.unwrap()
}

#[test]
fn instruction_counts_are_deterministic_with_or_without_slicing() {
    let plain = echo_instructions(false);
    assert_eq!(plain, echo_instructions(false));
    assert_eq!(plain, echo_instructions(true));
}

#[test]
fn a_budget_just_below_the_need_times_out_and_just_enough_completes() {
    let need = echo_instructions(false);
    let engine = engine();
    let image = engine.prepare(&module(ECHO)).unwrap();
    let outputs = names(&["out"]);
    let inputs = || vec![set("in", (0..50).map(|i| item(&format!("i{i}"), Some(i), &[i as u8; 100])).collect())];
    let with_budget = |instructions: u64| {
        let limits = Limits::new(1 << 20, TimeBudget { millis: 1, instructions });
        engine.run(&image, Invocation { inputs: inputs(), outputs: &outputs, limits, deadline: None })
    };
    assert!(with_budget(need).is_ok());
    assert!(matches!(with_budget(need - 1), Err(EngineError::Timeout { wall_clock: false, .. })));
}

#[test]
fn the_engine_works_through_the_dynamic_view() {
    let engines: Vec<Box<dyn DynEngine>> = vec![Box::new(engine())];
    let image = engines[0].prepare_image(&module(ECHO)).unwrap();
    assert_eq!(image.engine(), "wasm");
    let outputs = names(&["out"]);
    let inputs = vec![set("in", vec![item("x", None, b"y")])];
    let done = engines[0].run_image(&image, Invocation { inputs, outputs: &outputs, limits: limits(), deadline: None });
    assert_eq!(done.unwrap().outputs[0].items, vec![item("x", None, b"y")]);
}

#[test]
fn images_and_the_engine_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<wasm::WasmImage>();
    shareable::<wasm::WasmEngine>();

    let engine = std::sync::Arc::new(engine());
    let image = engine.prepare(&module(ECHO)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (engine, image) = (engine.clone(), image.clone());
            std::thread::spawn(move || {
                let outputs = names(&["out"]);
                let inputs = vec![set("in", vec![item("t", Some(t), b"data")])];
                let invocation = Invocation { inputs, outputs: &outputs, limits: limits(), deadline: None };
                engine.run(&image, invocation).unwrap().outputs[0].items[0].key
            })
        })
        .collect();
    let keys: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(keys, vec![Some(0), Some(1), Some(2), Some(3)]);
}

/// An image carries its own compiled code (so that dropping it frees it) and its resolved imports: one
/// prepared by another engine instance runs the same, where wasmi would have panicked on a
/// module of a foreign wasmi engine.
#[test]
fn an_image_from_another_engine_instance_runs() {
    let image = engine().prepare(&module(ECHO)).unwrap();
    let outputs = names(&["out"]);
    let done = engine().run(&image, Invocation { inputs: vec![], outputs: &outputs, limits: limits(), deadline: None });
    assert_eq!(done.map(|c| c.outputs.len()).ok(), Some(1));
}

#[test]
fn a_large_output_is_kept_in_pages_of_its_own() {
    // The whole 64 KiB memory as one output item (model::PAGED_MIN), then one byte less.
    let code = r#"
        (i32.store8 (i32.const 65535) (i32.const 7))
        (call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 65536))
        (call $output_push (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 65535))
    "#;
    let done = run_with(&entry(code), vec![], &["out"], limits()).unwrap();
    let [large, small] = &done.outputs[0].items[..] else { panic!("{:?}", done.outputs) };
    assert_eq!(model::PAGED_MIN, 65536);
    assert!(large.data.pages().is_some_and(|p| p.len() == 16), "a 64 KiB output is in pages of its own");
    assert_eq!((large.data.len(), large.data[65535]), (65536, 7));
    assert!(small.data.pages().is_none(), "a smaller one stays on the heap");
    assert_eq!(small.data.len(), 65535);
}
