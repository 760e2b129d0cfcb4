//! Bounded steps: with [`PlanLimits::max_work_per_step`], no step plans, applies or collects more
//! than its budget, and the run ends exactly as an unbounded one does.

mod common;

use common::*;
use dsl::ast::Program;
use model::Set;
use planner::{Execution, PlanLimits, Status};

fn limits(budget: usize) -> PlanLimits {
    PlanLimits { max_work_per_step: budget, ..PlanLimits::default() }
}

fn each_program() -> Program {
    ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .composition("c", &["S"], &["T"], vec![app("f", &["x = each S"], &["T = y"])])
        .build()
}

fn items(n: usize) -> (Vec<String>, Set) {
    let names: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let set = set("S", &refs);
    (names, set)
}

#[test]
fn start_plans_no_more_than_one_step() {
    let (_, input) = items(10_000);
    let mut ex = Execution::start(&each_program(), "c", vec![input], limits(64)).unwrap();
    assert!(ex.work_done() <= 64, "start spent {}", ex.work_done());
    assert!(ex.has_work(), "most of the fan-out is still to cut");
    let Status::Running { ready, running: 0 } = ex.status() else { panic!("{:?}", ex.status()) };
    assert!(ready < 64, "{ready} instances cut by start");
    assert!(ex.next_ready().is_none(), "nothing is handed out while planning work is queued");
    assert!(!ex.advance(), "no fuel left in this step");
}

#[test]
fn a_10000_item_fan_out_is_cut_64_units_a_step_and_ends_as_an_unbounded_run() {
    let (names, input) = items(10_000);
    let mut ex = Execution::start(&each_program(), "c", vec![input.clone()], limits(64)).unwrap();
    let mut steps = 0;
    let mut taken = Vec::new();
    // Planning: every step cuts at most 64 instances.
    while taken.is_empty() {
        ex.refuel();
        let before = (ex.work_done(), ready_of(&ex));
        ex.advance();
        assert!(ex.work_done() - before.0 <= 64);
        assert!(ready_of(&ex) - before.1 <= 64, "one step cut {} instances", ready_of(&ex) - before.1);
        steps += 1;
        taken.extend(std::iter::from_fn(|| ex.next_ready()));
    }
    assert_eq!(taken.len(), 10_000);
    assert!(steps >= 10_000 / 64, "{steps} steps");
    // Completions with no fuel left are recorded, not applied.
    for instance in &taken {
        ex.complete(instance.id, echo(instance)).unwrap();
    }
    assert!(matches!(ex.status(), Status::Running { ready: 0, running: 0 }), "{:?}", ex.status());
    assert!(ex.has_work());
    // Applying them and collecting 10,000 results: at most 64 units a step.
    let mut steps = 0;
    while ex.has_work() {
        ex.refuel();
        let before = ex.work_done();
        assert!(ex.advance());
        assert!(ex.work_done() - before <= 64, "a step spent {}", ex.work_done() - before);
        steps += 1;
    }
    // 10,000 completions, then 10,000 results of one item each (two units apiece).
    assert!(steps >= 30_000 / 64, "{steps} steps");
    let Status::Done(outputs) = ex.status() else { panic!("{:?}", ex.status()) };
    assert_eq!(names_of(outputs), names);
    let (_, whole) = run_echo(&each_program(), "c", vec![input]);
    assert_eq!(outputs, &whole[..]);
}

#[test]
fn nested_compositions_and_cross_products_are_bounded_too() {
    // `c` fans out over a composition that fans out again, and crosses two sets.
    let program = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("g", &["x", "y"], &["o"])
        .composition("d", &["A"], &["B"], vec![app("f", &["x = each A"], &["B = y"])])
        .composition(
            "c",
            &["S", "U"],
            &["T", "P"],
            vec![app("d", &["A = each S"], &["T = B"]), app("g", &["x = each S", "y = each U"], &["P = o"])],
        )
        .build();
    let (_, s) = items(300);
    let u = set("U", &["u0", "u1", "u2"]);
    for budget in [1, 3, 7, 64] {
        let (log, most) = trace(&program, vec![s.clone(), u.clone()], limits(budget), &[]);
        let (whole, _) = trace(&program, vec![s.clone(), u.clone()], PlanLimits::default(), &[]);
        // One result moves whole: `g`'s are 3 units (the instance and its two items).
        assert!(most <= budget.max(3) as u64, "budget {budget}: a step spent {most}");
        assert_eq!(log, whole, "budget {budget}");
        assert!(log.iter().filter(|l| l.starts_with("start")).count() == 300 + 900);
    }
}

#[test]
fn a_failure_recorded_while_planning_is_applied_in_order() {
    let (_, input) = items(500);
    let program = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("h", &["x"], &["y"])
        .composition(
            "c",
            &["S"],
            &["T", "U"],
            vec![app("f", &["x = each S"], &["T = y"]), app("h", &["x = all S"], &["U = y"])],
        )
        .build();
    // The third completion fails; everything else echoes.
    let outcomes = [2, 2, 0];
    let (whole, _) = trace(&program, vec![input.clone()], PlanLimits::default(), &outcomes);
    let (stepped, most) = trace(&program, vec![input], limits(5), &outcomes);
    assert_eq!(whole, stepped);
    assert!(most <= 5);
    assert!(stepped.last().is_some_and(|l| l.starts_with("planned")));
    assert!(stepped.iter().any(|l| l.starts_with("failed function 'f' failed")), "{stepped:?}");
}

fn ready_of(ex: &Execution) -> usize {
    match ex.status() {
        Status::Running { ready, .. } => ready,
        _ => 0,
    }
}

fn names_of(sets: &[Set]) -> Vec<String> {
    sets.iter().flat_map(names).collect()
}
