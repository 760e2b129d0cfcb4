//! Driving an execution: failures and cancellation, bad completions, freeing sets, limits, and
//! programs the checker should have refused.

mod common;

use common::*;
use dsl::ast::Program;
use planner::{Completion, Execution, FailureCause, InstanceId, PlanError, PlanLimits, Status};

fn each_program() -> Program {
    ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .composition("c", &["S"], &["T"], vec![app("f", &["x = each S"], &["T = y"])])
        .build()
}

fn five() -> model::Set {
    set("S", &["a", "b", "c", "d", "e"])
}

#[test]
fn a_failing_instance_fails_the_execution_and_lists_siblings_to_cancel() {
    let mut ex = Execution::start(&each_program(), "c", vec![five()], PlanLimits::default()).unwrap();
    let all: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(ex.complete(all[0].id, echo(&all[0])), Ok(Completion::Recorded));
    assert_eq!(ex.complete(all[1].id, Err("out of memory".into())), Ok(Completion::Recorded));
    let Status::Failed(failure) = ex.status() else { panic!("not failed: {:?}", ex.status()) };
    assert_eq!(
        failure.cause,
        FailureCause::Instance {
            id: all[1].id,
            function: "f".into(),
            origin: "c: app #1 'f' instance 1".into(),
            cause: "out of memory".into()
        }
    );
    assert_eq!(failure.cancel, [all[2].id, all[3].id, all[4].id]);
    assert!(failure.to_string().contains("out of memory"), "{failure}");
    // Cancelled instances finishing anyway, and repeats, are ignored.
    assert_eq!(ex.complete(all[2].id, echo(&all[2])), Ok(Completion::Ignored));
    assert_eq!(ex.complete(all[3].id, Err("cancelled".into())), Ok(Completion::Ignored));
    assert_eq!(ex.complete(all[0].id, echo(&all[0])), Ok(Completion::Ignored));
    assert_eq!(ex.complete(InstanceId(99), Ok(vec![])), Err(PlanError::UnknownInstance(InstanceId(99))));
    assert!(ex.next_ready().is_none());
    assert!(ex.take_outputs().is_none());
    assert_eq!(ex.live_sets(), 0, "a failed execution holds nothing");
    // The first failure stays the cause.
    let Status::Failed(failure) = ex.status() else { panic!() };
    assert!(matches!(&failure.cause, FailureCause::Instance { id, .. } if *id == all[1].id));
}

#[test]
fn only_handed_out_instances_are_to_cancel() {
    let mut ex = Execution::start(&each_program(), "c", vec![five()], PlanLimits::default()).unwrap();
    let first = ex.next_ready().unwrap();
    let second = ex.next_ready().unwrap();
    ex.complete(first.id, Err("boom".into())).unwrap();
    let Status::Failed(failure) = ex.status() else { panic!() };
    assert_eq!(failure.cancel, [second.id]);
    assert!(ex.next_ready().is_none(), "ready instances are dropped");
    assert_eq!(ex.complete(InstanceId(3), Ok(vec![])), Ok(Completion::Ignored));
}

#[test]
fn a_wrong_output_count_fails_that_instance() {
    let mut ex = Execution::start(&each_program(), "c", vec![set("S", &["a", "b"])], PlanLimits::default()).unwrap();
    let first = ex.next_ready().unwrap();
    let second = ex.next_ready().unwrap();
    ex.complete(first.id, Ok(vec![set("y", &["1"]), set("z", &["2"])])).unwrap();
    let Status::Failed(failure) = ex.status() else { panic!() };
    let FailureCause::Instance { cause, origin, .. } = &failure.cause else { panic!("{failure:?}") };
    assert_eq!(cause, "returned 2 output set(s), its declaration has 1");
    assert_eq!(origin, "c: app #1 'f' instance 0");
    assert_eq!(failure.cancel, [second.id]);
}

#[test]
fn completions_of_ids_not_running_are_refused_without_effect() {
    let mut ex = Execution::start(&each_program(), "c", vec![set("S", &["a", "b"])], PlanLimits::default()).unwrap();
    // Planned but not handed out yet.
    assert_eq!(ex.complete(InstanceId(0), Ok(vec![set("y", &[])])), Err(PlanError::NotRunning(InstanceId(0))));
    assert_eq!(ex.complete(InstanceId(2), Ok(vec![])), Err(PlanError::UnknownInstance(InstanceId(2))));
    let first = ex.next_ready().unwrap();
    ex.complete(first.id, echo(&first)).unwrap();
    assert_eq!(ex.complete(first.id, echo(&first)), Err(PlanError::NotRunning(first.id)), "twice");
    let second = ex.next_ready().unwrap();
    ex.complete(second.id, echo(&second)).unwrap();
    assert!(matches!(ex.status(), Status::Done(_)));
    assert_eq!(ex.complete(second.id, echo(&second)), Err(PlanError::NotRunning(second.id)), "after done");
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["a", "b"]);
    assert!(matches!(ex.status(), Status::Done(out) if out.is_empty()), "outputs taken");
}

#[test]
fn a_set_is_freed_once_its_last_reader_is_instantiated() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("g", &["a", "b"], &["y"])
        .composition(
            "c",
            &["S"],
            &["R"],
            vec![app("f", &["x = each S"], &["T = y"]), app("g", &["a = all S", "b = each T"], &["R = y"])],
        )
        .build();
    let mut ex = Execution::start(&p, "c", vec![set("S", &["s1", "s2"])], PlanLimits::default()).unwrap();
    assert_eq!(ex.live_set_names(), ["c.S"], "g still has to read S");
    let fs: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    ex.complete(fs[0].id, echo(&fs[0])).unwrap();
    assert_eq!(ex.live_set_names(), ["c.S"], "T does not exist until every f instance is done");
    ex.complete(fs[1].id, echo(&fs[1])).unwrap();
    // g is instantiated: S and T have no reader left and go, while g runs.
    assert_eq!(ex.live_sets(), 0);
    let gs: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(gs.iter().map(shape).collect::<Vec<_>>(), ["s1,s2|s1", "s1,s2|s2"]);
    ex.complete(gs[0].id, Ok(vec![set("y", &["r1"])])).unwrap();
    ex.complete(gs[1].id, Ok(vec![set("y", &["r2"])])).unwrap();
    assert_eq!(ex.live_sets(), 0);
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["r1", "r2"]);
}

#[test]
fn composition_outputs_outlive_their_readers_and_unread_sets_are_never_held() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y", "z"])
        .function("g", &["x"], &["y"])
        .composition(
            "c",
            &["S", "Unused"],
            &["T", "R"],
            vec![app("f", &["x = each S"], &["T = y", "Dropped = z"]), app("g", &["x = all T"], &["R = y"])],
        )
        .build();
    let mut ex =
        Execution::start(&p, "c", vec![set("S", &["s"]), set("Unused", &["u"])], PlanLimits::default()).unwrap();
    assert_eq!(ex.live_sets(), 0, "S went when f was instantiated; Unused has no reader");
    let f = ex.next_ready().unwrap();
    ex.complete(f.id, Ok(vec![set("y", &["t"]), set("z", &["never held"])])).unwrap();
    assert_eq!(ex.live_set_names(), ["c.T"], "T is an output: kept after g is instantiated");
    let g = ex.next_ready().unwrap();
    ex.complete(g.id, echo(&g)).unwrap();
    let out = ex.take_outputs().unwrap();
    assert_eq!((names(&out[0]), names(&out[1])), (vec!["t".to_string()], vec!["t".to_string()]));
}

#[test]
fn sets_of_nested_compositions_are_counted_and_freed_too() {
    let p = ProgramBuilder::new()
        .function("f", &["a"], &["b"])
        .function("g", &["a"], &["b"])
        .composition(
            "inner",
            &["x"],
            &["y"],
            vec![app("f", &["a = all x"], &["m = b"]), app("g", &["a = all m"], &["y = b"])],
        )
        .composition("outer", &["S"], &["R"], vec![app("inner", &["x = each S"], &["R = y"])])
        .build();
    let mut ex = Execution::start(&p, "outer", vec![set("S", &["s1", "s2"])], PlanLimits::default()).unwrap();
    assert_eq!(ex.live_sets(), 0, "x is read once, by f, in each inner frame");
    let fs: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(fs.len(), 2);
    for f in &fs {
        ex.complete(f.id, echo(f)).unwrap();
    }
    assert_eq!(ex.live_sets(), 0, "m went when g was instantiated");
    let gs: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    ex.complete(gs[0].id, echo(&gs[0])).unwrap();
    assert_eq!(ex.live_set_names(), Vec::<String>::new(), "the finished inner frame handed y up");
    ex.complete(gs[1].id, echo(&gs[1])).unwrap();
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["s1", "s2"]);
}

fn limits(per_app: usize, total: usize, depth: usize) -> PlanLimits {
    PlanLimits {
        max_instances_per_application: per_app,
        max_total_instances: total,
        max_nesting_depth: depth,
        ..PlanLimits::default()
    }
}

#[test]
fn too_many_instances_for_one_application_is_refused_naming_it() {
    let items: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let err = Execution::start(&each_program(), "c", vec![set("S", &refs)], limits(10, 100, 4)).unwrap_err();
    assert_eq!(err, PlanError::TooManyInstances { application: "c: app #1 'f'".into(), count: 11, limit: 10 });
    assert!(Execution::start(&each_program(), "c", vec![set("S", &refs[..10])], limits(10, 100, 4)).is_ok());
}

#[test]
fn a_huge_cross_product_is_refused_before_it_exists() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y", "z"], &["o"])
        .composition("c", &["A"], &["T"], vec![app("f", &["x = each A", "y = each A", "z = each A"], &["T = o"])])
        .build();
    let items: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let err = Execution::start(&p, "c", vec![set("A", &refs)], PlanLimits::default()).unwrap_err();
    assert!(matches!(err, PlanError::TooManyInstances { count: 1_000_000_000, .. }), "{err}");
}

#[test]
fn exceeding_the_total_mid_run_fails_and_lists_running_instances() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .composition(
            "c",
            &["S"],
            &["T", "U"],
            vec![
                app("f", &["x = each S"], &["M = y"]),
                app("f", &["x = each M"], &["T = y"]),
                app("f", &["x = each S"], &["U = y"]),
            ],
        )
        .build();
    let mut ex = Execution::start(&p, "c", vec![set("S", &["a", "b", "c"])], limits(10, 8, 4)).unwrap();
    let all: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(all.len(), 6);
    for i in &all[..3] {
        ex.complete(i.id, echo(i)).unwrap();
    }
    let Status::Failed(failure) = ex.status() else { panic!("{:?}", ex.status()) };
    assert_eq!(
        failure.cause,
        FailureCause::Plan(PlanError::TotalInstancesExceeded { application: "c: app #2 'f'".into(), limit: 8 })
    );
    assert_eq!(failure.cancel, [all[3].id, all[4].id, all[5].id]);
}

#[test]
fn recursion_stops_at_the_nesting_limit() {
    let p =
        ProgramBuilder::new().composition("rec", &["x"], &["y"], vec![app("rec", &["x = all x"], &["y = y"])]).build();
    let err = Execution::start(&p, "rec", vec![set("x", &["a"])], limits(10, 100, 3)).unwrap_err();
    let PlanError::NestingTooDeep { application, limit: 3 } = err else { panic!("{err:?}") };
    assert_eq!(application.matches(" > ").count(), 3, "{application}");
    // With no nesting allowed, applying a composition at all is refused.
    let err = Execution::start(&p, "rec", vec![set("x", &["a"])], limits(10, 100, 0)).unwrap_err();
    assert_eq!(err, PlanError::NestingTooDeep { application: "rec: app #1 'rec'".into(), limit: 0 });
}

#[test]
fn recursion_that_meets_an_empty_set_ends() {
    // The nested application is skipped on an empty input, so the recursion bottoms out.
    let p =
        ProgramBuilder::new().composition("rec", &["x"], &["y"], vec![app("rec", &["x = each x"], &["y = y"])]).build();
    let ex = Execution::start(&p, "rec", vec![set("x", &[])], limits(10, 100, 3)).unwrap();
    assert!(matches!(ex.status(), Status::Done(out) if out[0].items.is_empty()));
}

fn invalid(program: &Program, composition: &str, inputs: usize) -> PlanError {
    let inputs = (0..inputs).map(|i| set(&format!("in{i}"), &["a"])).collect();
    Execution::start(program, composition, inputs, PlanLimits::default()).unwrap_err()
}

fn reason(err: PlanError) -> String {
    match err {
        PlanError::InvalidProgram { at, reason } => format!("{at}: {reason}"),
        other => panic!("expected an invalid program, got {other:?}"),
    }
}

#[test]
fn inconsistent_programs_are_errors_not_panics() {
    let f = || ProgramBuilder::new().function("f", &["x"], &["y"]);
    assert_eq!(invalid(&f().build(), "c", 0), PlanError::UnknownComposition("c".into()));
    assert_eq!(invalid(&f().build(), "f", 0), PlanError::UnknownComposition("f".into()));
    let ok = f().composition("c", &["S"], &["T"], vec![app("f", &["x = all S"], &["T = y"])]).build();
    assert_eq!(invalid(&ok, "c", 2), PlanError::InputCount { composition: "c".into(), expected: 1, got: 2 });

    let one = |application| f().composition("c", &["S"], &["T"], vec![application]).build();
    let r = reason(invalid(&one(app("g", &["x = all S"], &["T = y"])), "c", 1));
    assert_eq!(r, "composition 'c' app #1 'g': 'g' is not declared");
    let r = reason(invalid(&one(app("f", &["x = all Nope"], &["T = y"])), "c", 1));
    assert!(r.ends_with("reads set 'Nope', which is never defined"), "{r}");
    let r = reason(invalid(&one(app("f", &["z = all S"], &["T = y"])), "c", 1));
    assert!(r.ends_with("'f' declares no input 'z'"), "{r}");
    let r = reason(invalid(&one(app("f", &["x = all S", "x = each S"], &["T = y"])), "c", 1));
    assert!(r.ends_with("input 'x' is bound twice"), "{r}");
    let r = reason(invalid(&one(app("f", &["x = all S"], &["T = nope"])), "c", 1));
    assert!(r.ends_with("'f' declares no output 'nope'"), "{r}");
    let r = reason(invalid(&one(app("f", &["x = all S"], &["S = y"])), "c", 1));
    assert!(r.ends_with("set 'S' is an input of the composition"), "{r}");
    let r = reason(invalid(&one(app("f", &["x = all S"], &["U = y"])), "c", 1));
    assert_eq!(r, "composition 'c': output set 'T' is never defined");
    let r = reason(invalid(&one(by(app("f", &["x = each S"], &["T = y"]), "S inner S")), "c", 1));
    assert!(r.ends_with("joins 'S', which is not distributed `keyed` or `anyKeyed`"), "{r}");
    let r = reason(invalid(&one(by(app("f", &["x = keyed S"], &["T = y"]), "S inner Q")), "c", 1));
    assert!(r.ends_with("joins 'Q', which is not an input of this application"), "{r}");
    let r = reason(invalid(&one(by(app("f", &["x = keyed S"], &["T = y"]), "S inner x")), "c", 1));
    assert!(r.ends_with("joins 'x' twice"), "{r}");

    let two = |a, b| f().composition("c", &["S"], &["T"], vec![a, b]).build();
    let r = reason(invalid(&two(app("f", &["x = all S"], &["T = y"]), app("f", &["x = all S"], &["T = y"])), "c", 1));
    assert!(r.ends_with("set 'T' is also defined by app #1"), "{r}");
    let cycle = two(app("f", &["x = all U"], &["T = y"]), app("f", &["x = all T"], &["U = y"]));
    assert_eq!(reason(invalid(&cycle, "c", 1)), "composition 'c': applications #1, #2 depend on each other in a cycle");

    let dup =
        f().function("f", &["x"], &["y"]).composition("c", &["S"], &["T"], vec![app("f", &["x = all S"], &["T = y"])]);
    assert!(reason(invalid(&dup.build(), "c", 1)).ends_with("'f' is declared more than once"));
    let twice = f().composition("c", &["S", "S"], &["T"], vec![]).build();
    assert_eq!(reason(invalid(&twice, "c", 2)), "composition 'c': input set 'S' is declared twice");
}
