//! A kept store (src/reuse.rs): runs of an image that exports all its changeable state reuse
//! one store, and every run still starts from the state instantiation gives: memory zero but
//! for the data segments, globals and tables at their initial values, the initial size.

mod common;

use common::{IMPORTS, engine, item, limits, names, set};
use engine::{Deadline, Engine, EngineError, Invocation};
use wasm::{WasmEngine, WasmImage, WasmStep};

/// A module whose `run` traps (`unreachable`) unless memory, its exported global, its exported
/// table and the memory's size are as instantiated; then it changes all of them. With an input
/// set, it traps after the changes (a failed run). `extra` goes into the module.
fn checker(extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {IMPORTS}
          (memory (export "memory") 1)
          (global $g (export "g") (mut i32) (i32.const 7))
          (table $t (export "t") 2 funcref)
          (elem (table $t) (i32.const 0) func $one $two)
          (data (i32.const 16) "abc")
          (type $ret (func (result i32)))
          (func $one (result i32) (i32.const 1))
          (func $two (result i32) (i32.const 2))
          (func $spin (local $i i32)
            (loop $l
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 300000)))))
          (func (export "run")
            (if (i32.ne (global.get $g) (i32.const 7)) (then unreachable))
            (if (i32.ne (i32.load (i32.const 0)) (i32.const 0)) (then unreachable))
            (if (i32.ne (i32.load8_u (i32.const 16)) (i32.const 97)) (then unreachable))
            (if (i32.ne (i32.load (i32.const 65532)) (i32.const 0)) (then unreachable))
            (if (i32.ne (memory.size) (i32.const 1)) (then unreachable))
            (if (i32.ne (call_indirect (type $ret) (i32.const 0)) (i32.const 1)) (then unreachable))
            (global.set $g (i32.const 8))
            (i32.store (i32.const 0) (i32.const 99))
            (i32.store8 (i32.const 16) (i32.const 122))
            (i32.store (i32.const 65532) (i32.const -1))
            (table.set $t (i32.const 0) (ref.func $two))
            {extra}
            (if (i32.gt_s (call $input_set_count) (i32.const 0)) (then unreachable)))
          (elem declare func $two))"#
    ))
    .expect("test WAT parses")
}

fn run(engine: &WasmEngine, image: &WasmImage, inputs: usize) -> Result<engine::Completion, EngineError> {
    let outputs = names(&["out"]);
    let inputs = (0..inputs).map(|i| set(&format!("in{i}"), vec![item("x", None, b"secret")])).collect();
    engine.run(image, Invocation { inputs, outputs: &outputs, limits: limits(), deadline: None })
}

#[test]
fn a_kept_store_starts_every_run_as_instantiated() {
    let engine = engine();
    let image = engine.prepare(&checker("")).unwrap();
    assert_eq!(image.kept_store_runs(), Some(0), "the module exports all it can change");
    let first = run(&engine, &image, 0).unwrap();
    for _ in 0..4 {
        let again = run(&engine, &image, 0).unwrap();
        // Instantiation's fuel is charged to a reused store too.
        assert_eq!(again.instructions, first.instructions);
    }
    assert_eq!(image.kept_store_runs(), Some(5), "every run reused the store");
}

#[test]
fn a_failed_run_does_not_give_its_store_back() {
    let engine = engine();
    let image = engine.prepare(&checker("")).unwrap();
    // Changes everything, then traps: its store is dropped and a new instance is kept instead,
    // which the next runs take, as instantiated (the checker traps otherwise).
    assert!(matches!(run(&engine, &image, 1), Err(EngineError::Trap(_))));
    run(&engine, &image, 0).unwrap();
    run(&engine, &image, 0).unwrap();
    assert_eq!(image.kept_store_runs(), Some(3));
}

#[test]
fn a_store_whose_memory_grew_is_not_kept() {
    let engine = engine();
    let image = engine
        .prepare(&checker("(drop (memory.grow (i32.const 1))) (i32.store (i32.const 65536) (i32.const 5))"))
        .unwrap();
    // Every run grows memory; the next one still finds one page (the checker traps otherwise):
    // a grown store is replaced by a new instance.
    for _ in 0..3 {
        run(&engine, &image, 0).unwrap();
    }
    assert_eq!(image.kept_store_runs(), Some(3));
}

#[test]
fn modules_that_hide_changeable_state_instantiate_every_run() {
    let engine = engine();
    // An unexported mutable global.
    let hidden = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1) (global (mut i32) (i32.const 0)) (func (export "run")))"#
    ))
    .unwrap();
    assert_eq!(engine.prepare(&hidden).unwrap().kept_store_runs(), None);
    // An unexported table that an instruction can change.
    let set = "(table.set 0 (i32.const 0) (ref.null func))";
    let table = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1) (table 1 funcref) (func (export "run") {set}))"#
    ))
    .unwrap();
    assert_eq!(engine.prepare(&table).unwrap().kept_store_runs(), None);
    // A passive data segment (its dropped state could not be put back).
    let passive = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1) (data "x") (func (export "run") (data.drop 0)))"#
    ))
    .unwrap();
    assert_eq!(engine.prepare(&passive).unwrap().kept_store_runs(), None);
    // More table elements than a kept store puts back.
    let big_table = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1) (table (export "t") 5000 funcref) (func (export "run") {set}))"#
    ))
    .unwrap();
    assert_eq!(engine.prepare(&big_table).unwrap().kept_store_runs(), None);
    let small_table = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1) (table (export "t") 50 100 funcref) (func (export "run")))"#
    ))
    .unwrap();
    assert_eq!(engine.prepare(&small_table).unwrap().kept_store_runs(), Some(0));
    // Tables no instruction can change stay as instantiated: nothing to put back, so neither
    // hiding one nor its size rules reuse out.
    for (export, size) in [("", 1), ("(export \"t\")", 5000)] {
        let fixed = wat::parse_str(format!(
            r#"(module {IMPORTS} (memory (export "memory") 1) (table {export} {size} funcref) (func (export "run")))"#
        ))
        .unwrap();
        assert_eq!(engine.prepare(&fixed).unwrap().kept_store_runs(), Some(0), "table {export} {size}");
    }
    // Each instruction that changes a table makes the engine put the table back (or refuse).
    for op in [
        "(nop)", // the control: the same module without one is reused
        "(table.set 0 (i32.const 0) (ref.null func))",
        "(drop (table.grow 0 (ref.null func) (i32.const 1)))",
        "(table.fill 0 (i32.const 0) (ref.null func) (i32.const 1))",
        "(table.copy (i32.const 0) (i32.const 1) (i32.const 1))",
        "(table.init 0 (i32.const 0) (i32.const 0) (i32.const 0))",
    ] {
        let changing = wat::parse_str(format!(
            r#"(module {IMPORTS} (memory (export "memory") 1) (table 2 funcref) (elem (i32.const 0) func 0) (func (export "run") {op}))"#
        ))
        .unwrap();
        let want = if op == "(nop)" { Some(0) } else { None };
        assert_eq!(engine.prepare(&changing).unwrap().kept_store_runs(), want, "{op}");
    }
    // More mutable globals than a kept store puts back.
    let globals: String = (0..300).map(|i| format!(r#"(global (export "g{i}") (mut i32) (i32.const {i}))"#)).collect();
    let many =
        wat::parse_str(format!(r#"(module {IMPORTS} (memory (export "memory") 1) {globals} (func (export "run")))"#))
            .unwrap();
    assert_eq!(engine.prepare(&many).unwrap().kept_store_runs(), None);
    // An initial memory larger than a kept store may hold.
    let large =
        wat::parse_str(format!(r#"(module {IMPORTS} (memory (export "memory") 17) (func (export "run")))"#)).unwrap();
    assert_eq!(engine.prepare(&large).unwrap().kept_store_runs(), None);
}

#[test]
fn a_memory_limit_below_the_initial_memory_fails_as_instantiation_does() {
    let engine = engine();
    let image = engine.prepare(&checker("")).unwrap();
    let outputs = names(&["out"]);
    let small = engine::Limits::new(32 << 10, engine::TimeBudget::from_millis(5));
    let err = engine.run(&image, Invocation { inputs: vec![], outputs: &outputs, limits: small, deadline: None });
    assert!(matches!(err, Err(EngineError::OutOfMemory { .. })), "{err:?}");
    assert_eq!(image.kept_store_runs(), Some(0), "the kept store was not used");
    run(&engine, &image, 0).unwrap();
    assert_eq!(image.kept_store_runs(), Some(1));
}

/// A deadline whose turns are always over: every fuel slice ends a turn.
struct EveryTurn;

impl Deadline for EveryTurn {
    fn expired(&self) -> bool {
        false
    }

    fn turn_over(&self) -> bool {
        true
    }
}

#[test]
fn a_run_started_while_another_holds_the_store_instantiates_its_own() {
    // A long first run (slices of fuel) holds the kept store while parked; a second run starts,
    // instantiates its own and, the slot being empty, leaves it there; the first run's store,
    // coming back to a full slot, is dropped. Both start as instantiated.
    let spin = "(call $spin)";
    let engine = wasm::WasmEngine::new(wasm::WasmConfig { fuel_slice: 100_000, ..Default::default() }).unwrap();
    let image = engine.prepare(&checker(spin)).unwrap();
    let outputs = names(&["out"]);
    let parked = match engine
        .start(&image, Invocation { inputs: vec![], outputs: &outputs, limits: limits(), deadline: Some(&EveryTurn) })
    {
        WasmStep::Paused(run) => run,
        WasmStep::Done(result) => panic!("expected a parked run, got {result:?}"),
    };
    assert_eq!(image.kept_store_runs(), Some(1));
    let fresh = run(&engine, &image, 0).unwrap();
    assert_eq!(image.kept_store_runs(), Some(1), "the second run instantiated its own store");
    let mut step = WasmStep::Paused(parked);
    let result = loop {
        match step {
            WasmStep::Done(result) => break result,
            WasmStep::Paused(run) => step = run.resume(Some(&EveryTurn)),
        }
    };
    result.unwrap();
    let kept = run(&engine, &image, 0).unwrap();
    assert_eq!(image.kept_store_runs(), Some(2));
    // A run on a kept store is charged what one that instantiates is.
    assert_eq!(kept.instructions, fresh.instructions);
}
