//! Runs in turns: a run whose deadline says its turn is over at every fuel slice is parked and
//! resumed, and ends with exactly what an uninterrupted run gives (outputs, instructions);
//! budgets, traps and cancellation hold across turns.

mod common;

use common::*;
use engine::{Deadline, Engine, EngineError, Invocation, Limits, TimeBudget};
use std::cell::Cell;
use wasm::WasmStep;

/// Every check: the turn is over; `expired` after `cancel_after` checks (never if `None`).
struct EveryTurn {
    checks: Cell<u32>,
    cancel_after: Option<u32>,
}

impl Deadline for EveryTurn {
    fn expired(&self) -> bool {
        self.checks.set(self.checks.get() + 1);
        self.cancel_after.is_some_and(|n| self.checks.get() > n)
    }
    fn turn_over(&self) -> bool {
        true
    }
}

/// A loop of `n` iterations that then pushes its counter (little-endian) as one output item.
fn counting_loop(n: u32) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 0) "n")
           (func (export "run") (local $i i32)
             (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
             (i32.store (i32.const 16) (local.get $i))
             (call $output_push (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i64.const 0) (i32.const 16) (i32.const 4)))"#
    ))
}

/// Runs in turns until the end: the result and the number of turns it was parked.
fn in_turns(wasm: &[u8], limits: Limits, deadline: &EveryTurn) -> (Result<engine::Completion, EngineError>, u32) {
    let engine = engine();
    let image = engine.prepare(wasm).unwrap();
    let outputs = names(&["out"]);
    let mut step =
        engine.start(&image, Invocation { inputs: Vec::new(), outputs: &outputs, limits, deadline: Some(deadline) });
    let mut parked = 0;
    loop {
        match step {
            WasmStep::Done(result) => return (result, parked),
            WasmStep::Paused(run) => {
                parked += 1;
                step = run.resume(Some(deadline));
            }
        }
    }
}

#[test]
fn a_run_in_turns_ends_as_an_uninterrupted_run() {
    let wasm = counting_loop(3_000_000);
    let limits = Limits::new(1 << 20, TimeBudget::from_millis(1000));
    let whole = run_with(&wasm, Vec::new(), &["out"], limits).unwrap();
    let (turns, parked) = in_turns(&wasm, limits, &EveryTurn { checks: Cell::new(0), cancel_after: None });
    let turns = turns.unwrap();
    assert!(parked >= 5, "parked only {parked} times");
    assert_eq!(turns.outputs, whole.outputs);
    assert_eq!(turns.outputs[0].items[0].data.as_ref(), &3_000_000u32.to_le_bytes());
    assert_eq!(turns.instructions, whole.instructions, "the same fuel, in turns or not");
}

#[test]
fn the_budget_holds_across_turns() {
    let (result, parked) =
        in_turns(&entry("(loop $l (br $l))"), limits(), &EveryTurn { checks: Cell::new(0), cancel_after: None });
    assert!(matches!(result, Err(EngineError::Timeout { wall_clock: false, .. })), "{result:?}");
    assert!(parked >= 3, "parked {parked} times");
}

#[test]
fn cancellation_ends_a_run_between_turns() {
    let limits = Limits::new(1 << 20, TimeBudget::from_millis(1000));
    let deadline = EveryTurn { checks: Cell::new(0), cancel_after: Some(3) };
    let (result, parked) = in_turns(&entry("(loop $l (br $l))"), limits, &deadline);
    assert!(matches!(result, Err(EngineError::Timeout { wall_clock: true, .. })), "{result:?}");
    assert_eq!(parked, 3);
}

#[test]
fn without_a_deadline_a_run_is_never_parked() {
    let engine = engine();
    let image = engine.prepare(&counting_loop(2_000_000)).unwrap();
    let outputs = names(&["out"]);
    let limits = Limits::new(1 << 20, TimeBudget::from_millis(1000));
    let step = engine.start(&image, Invocation { inputs: Vec::new(), outputs: &outputs, limits, deadline: None });
    assert!(matches!(step, WasmStep::Done(Ok(_))));
}
