//! `Execution::single` (a direct invocation's one instance, without a program or a plan) against
//! the planned execution it stands for: a composition of one application that binds every input
//! `optional all`. The same instance, items and outputs, the same failures, the same checks on
//! completions, with or without bounded steps.

mod common;

use common::*;
use dsl::ast::Program;
use model::Set;
use planner::{Completion, Execution, FailureCause, InstanceId, PlanError, PlanLimits, Status};

/// `f (p0, …) => (q0, …)` applied once to every input whole, even an empty one.
fn direct(inputs: usize, outputs: usize) -> Program {
    let names =
        |n: usize, f: &dyn Fn(usize) -> String| -> Vec<&'static str> { (0..n).map(|i| &*String::leak(f(i))).collect() };
    let params = names(inputs, &|i| format!("p{i}"));
    let results = names(outputs, &|i| format!("q{i}"));
    let ins = names(inputs, &|i| format!("i{i}"));
    let outs = names(outputs, &|i| format!("o{i}"));
    let args = names(inputs, &|i| format!("p{i} = optional all i{i}"));
    let bindings = names(outputs, &|i| format!("o{i} = q{i}"));
    ProgramBuilder::new()
        .function("f", &params, &results)
        .composition("c", &ins, &outs, vec![app("f", &args, &bindings)])
        .build()
}

fn inputs(n: usize) -> Vec<Set> {
    // The second input is empty: `optional all` still gives the instance an (empty) set.
    (0..n).map(|i| if i == 1 { set("b", &[]) } else { set(&format!("s{i}"), &["x", "y", "z"][..=i % 3]) }).collect()
}

fn item_names(sets: &[Set]) -> Vec<Vec<String>> {
    sets.iter().map(names).collect()
}

/// Runs `execution` to the end with `f` (bounded or not), returns the one instance and the outputs.
fn run_one(
    mut execution: Execution,
    f: impl Fn(&planner::Instance) -> Result<Vec<Set>, String>,
) -> (Vec<planner::Instance>, Execution) {
    let ran = run(&mut execution, f);
    (ran, execution)
}

#[test]
fn one_instance_with_every_input_whole_and_its_outputs_as_returned() {
    for (n_in, n_out) in [(0, 0), (0, 1), (1, 1), (2, 1), (3, 2), (4, 4)] {
        let planned = Execution::start(&direct(n_in, n_out), "c", inputs(n_in), PlanLimits::default()).unwrap();
        let single = Execution::single("f", inputs(n_in), n_out, PlanLimits::default()).unwrap();
        assert_eq!(single.instances_planned(), 1);
        let (p_ran, mut planned) = run_one(planned, echo);
        let (s_ran, mut single) = run_one(single, echo);
        assert_eq!((p_ran.len(), s_ran.len()), (1, 1), "{n_in} -> {n_out}");
        let (p, s) = (&p_ran[0], &s_ran[0]);
        assert_eq!((p.id, &p.function, p.output_count), (s.id, &s.function, s.output_count));
        assert_eq!(item_names(&p.inputs), item_names(&s.inputs), "{n_in} -> {n_out}: inputs");
        // The instance's sets keep the caller's names (the planner names them by parameter).
        let given: Vec<String> = inputs(n_in).into_iter().map(|s| s.name.to_string()).collect();
        assert_eq!(s.inputs.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), given);
        assert!(s.origin.is_empty());
        let (p_out, s_out) = (planned.take_outputs().unwrap(), single.take_outputs().unwrap());
        assert_eq!(item_names(&p_out), item_names(&s_out), "{n_in} -> {n_out}: outputs");
        assert_eq!(s_out.len(), n_out);
        assert_eq!(single.live_sets(), 0);
        assert!(single.next_ready().is_none() && !single.has_work());
    }
}

#[test]
fn bounded_steps_give_the_same_instance_and_outputs() {
    let limits = PlanLimits { max_work_per_step: 1, ..PlanLimits::default() };
    let mut single = Execution::single("f", inputs(3), 2, limits).unwrap();
    single.refuel();
    let instance = single.next_ready().expect("ready at once");
    assert!(single.next_ready().is_none());
    assert!(matches!(single.status(), Status::Running { ready: 0, running: 1 }));
    assert_eq!(single.complete(instance.id, echo(&instance)), Ok(Completion::Recorded));
    single.refuel();
    single.advance();
    let Status::Done(outputs) = single.status() else { panic!("not done: {:?}", single.status()) };
    assert_eq!(outputs.len(), 2);
    assert_eq!(single.work_done(), 1, "one unit: applying the completion");
}

#[test]
fn failures_and_bad_completions_are_those_of_the_planned_execution() {
    // A failing instance.
    let mut single = Execution::single("f", inputs(1), 1, PlanLimits::default()).unwrap();
    let instance = single.next_ready().unwrap();
    assert_eq!(single.complete(instance.id, Err("boom".into())), Ok(Completion::Recorded));
    let Status::Failed(failure) = single.status() else { panic!("not failed") };
    assert_eq!(
        failure.cause,
        FailureCause::Instance { id: instance.id, function: "f".into(), origin: String::new(), cause: "boom".into() }
    );
    assert!(failure.cancel.is_empty());
    assert!(single.take_outputs().is_none());
    assert_eq!(single.complete(instance.id, Ok(vec![])), Ok(Completion::Ignored));

    // The wrong number of output sets fails it, as it fails a planned one.
    for program in [None, Some(direct(1, 2))] {
        let mut ex = match &program {
            None => Execution::single("f", inputs(1), 2, PlanLimits::default()).unwrap(),
            Some(p) => Execution::start(p, "c", inputs(1), PlanLimits::default()).unwrap(),
        };
        let instance = ex.next_ready().unwrap();
        ex.complete(instance.id, Ok(vec![set("only", &[])])).unwrap();
        let Status::Failed(failure) = ex.status() else { panic!("not failed") };
        let FailureCause::Instance { cause, .. } = &failure.cause else { panic!("{failure:?}") };
        assert_eq!(cause, "returned 1 output set(s), its declaration has 2");
    }

    // Ids never handed out, completions before the hand-out and repeats are refused.
    let mut single = Execution::single("f", inputs(1), 1, PlanLimits::default()).unwrap();
    assert_eq!(single.complete(InstanceId(0), Ok(vec![])), Err(PlanError::NotRunning(InstanceId(0))));
    assert_eq!(single.complete(InstanceId(1), Ok(vec![])), Err(PlanError::UnknownInstance(InstanceId(1))));
    let instance = single.next_ready().unwrap();
    assert_eq!(single.complete(instance.id, echo(&instance)), Ok(Completion::Recorded));
    assert_eq!(single.complete(instance.id, echo(&instance)), Err(PlanError::NotRunning(instance.id)));
    assert!(matches!(single.status(), Status::Done(_)));
}

#[test]
fn limits_that_allow_no_instance_refuse_it_as_the_planner_does() {
    let none_per_app = PlanLimits { max_instances_per_application: 0, ..PlanLimits::default() };
    assert!(matches!(
        Execution::single("f", inputs(1), 1, none_per_app),
        Err(PlanError::TooManyInstances { limit: 0, .. })
    ));
    assert!(matches!(
        Execution::start(&direct(1, 1), "c", inputs(1), none_per_app),
        Err(PlanError::TooManyInstances { limit: 0, .. })
    ));
    let none_at_all = PlanLimits { max_total_instances: 0, ..PlanLimits::default() };
    assert!(matches!(
        Execution::single("f", inputs(1), 1, none_at_all),
        Err(PlanError::TotalInstancesExceeded { limit: 0, .. })
    ));
    assert!(Execution::start(&direct(1, 1), "c", inputs(1), none_at_all).is_err());
}
