//! What a composition means: fan-out, cross products, joins, empty sets, nesting, output order.

mod common;

use common::*;
use dsl::ast::Program;
use model::Set;
use planner::{Execution, PlanLimits, Status};

/// `composition c (S) => (T) { f (x = KEYWORD S) => (T = y); }` with `function f (x) => (y);`.
fn one_app(keyword: &str) -> Program {
    ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .composition("c", &["S"], &["T"], vec![app("f", &[&format!("x = {keyword} S")], &["T = y"])])
        .build()
}

fn shapes(instances: &[planner::Instance]) -> Vec<String> {
    instances.iter().map(shape).collect()
}

#[test]
fn each_fans_out_1000_items_and_concatenates_in_instance_order() {
    let items: Vec<String> = (0..1000).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let mut ex = Execution::start(&one_app("each"), "c", vec![set("S", &refs)], PlanLimits::default()).unwrap();
    let all: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(all.len(), 1000);
    assert!(matches!(ex.status(), Status::Running { ready: 0, running: 1000 }));
    for (k, instance) in all.iter().enumerate() {
        assert_eq!(instance.function, "f");
        assert_eq!(instance.output_count, 1);
        assert_eq!(instance.inputs.len(), 1);
        assert_eq!(instance.inputs[0].name, "x", "inputs carry the declared input name");
        assert_eq!(names(&instance.inputs[0]), [items[k].clone()]);
        assert_eq!(instance.origin, format!("c: app #1 'f' instance {k}"));
    }
    // Complete in reverse: the output still follows instance order.
    for instance in all.iter().rev() {
        ex.complete(instance.id, Ok(instance.inputs.clone())).unwrap();
    }
    let Status::Done(outputs) = ex.status() else { panic!("not done: {:?}", ex.status()) };
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].name, "T");
    assert_eq!(names(&outputs[0]), items);
    assert_eq!(ex.instances_planned(), 1000);
}

#[test]
fn items_are_shared_not_copied() {
    let input = set("S", &["a", "b"]);
    let payloads: Vec<*const u8> = input.items.iter().map(|i| i.data.as_ptr()).collect();
    let mut ex = Execution::start(&one_app("all"), "c", vec![input], PlanLimits::default()).unwrap();
    let instance = ex.next_ready().unwrap();
    let got: Vec<*const u8> = instance.inputs[0].items.iter().map(|i| i.data.as_ptr()).collect();
    assert_eq!(got, payloads, "the instance sees the caller's buffers");
    assert!(ex.next_ready().is_none(), "`all` makes one instance");
}

#[test]
fn each_times_each_is_a_cross_product_first_input_slowest() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition("c", &["A", "B"], &["T"], vec![app("f", &["x = each A", "y = each B"], &["T = o"])])
        .build();
    let (ran, out) = run_echo(&p, "c", vec![set("A", &["a1", "a2"]), set("B", &["b1", "b2", "b3"])]);
    assert_eq!(shapes(&ran), ["a1|b1", "a1|b2", "a1|b3", "a2|b1", "a2|b2", "a2|b3"]);
    assert_eq!(names(&out[0]), ["a1", "b1", "a1", "b2", "a1", "b3", "a2", "b1", "a2", "b2", "a2", "b3"]);
}

#[test]
fn keyed_times_all_gives_every_key_group_the_whole_set() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition("c", &["A", "B"], &["T"], vec![app("f", &["x = keyed A", "y = all B"], &["T = o"])])
        .build();
    let a = keyed("A", &[("p", Some(2)), ("q", None), ("r", Some(2)), ("s", Some(1))]);
    let (ran, _) = run_echo(&p, "c", vec![a, set("B", &["b1", "b2"])]);
    // Key groups in ascending key order, the keyless group first; items keep set order.
    assert_eq!(shapes(&ran), ["q|b1,b2", "s|b1,b2", "p,r|b1,b2"]);
}

#[test]
fn keyed_items_without_a_key_form_one_group() {
    let (ran, _) = run_echo(&one_app("keyed"), "c", vec![keyed("S", &[("a", None), ("b", Some(7)), ("c", None)])]);
    assert_eq!(shapes(&ran), ["a,c", "b"]);
}

fn join_program(clause: Option<&str>, extra: Option<&str>) -> Program {
    let mut args = vec!["x = keyed A", "y = keyed B", "z = keyed C"];
    if let Some(extra) = extra {
        args.push(extra);
    }
    let application = app("f", &args, &["T = o"]);
    let application = match clause {
        Some(clause) => by(application, clause),
        None => application,
    };
    ProgramBuilder::new()
        .function("f", &["x", "y", "z", "w"], &["o"])
        .composition("c", &["A", "B", "C", "D"], &["T"], vec![application])
        .build()
}

fn join_inputs() -> Vec<model::Set> {
    vec![
        keyed("A", &[("a1", Some(1)), ("a2", Some(2)), ("a2b", Some(2)), ("a3", Some(3))]),
        keyed("B", &[("b3", Some(3)), ("b2", Some(2)), ("b4", Some(4))]),
        keyed("C", &[("c5", Some(5)), ("c3", Some(3)), ("c1", Some(1))]),
        set("D", &["d1", "d2"]),
    ]
}

/// Runs `f` joined by `clause` and returns the instance shapes without the unused 4th input.
fn joined(clause: &str) -> Vec<String> {
    let (ran, _) = run_echo(&join_program(Some(clause), None), "c", join_inputs());
    ran.iter().map(|i| shape(i).strip_suffix('|').expect("w is empty").to_string()).collect()
}

#[test]
fn two_way_joins_match_hand_computed_rows() {
    let rows = |clause: &str| -> Vec<String> {
        // C is crossed in after the joined rows (3 groups); keep only the first C group's rows.
        joined(clause)
            .into_iter()
            .filter(|s| s.ends_with("|c1"))
            .map(|s| s.trim_end_matches("|c1").to_string())
            .collect()
    };
    assert_eq!(rows("A inner B"), ["a2,a2b|b2", "a3|b3"]);
    assert_eq!(rows("A left B"), ["a1|", "a2,a2b|b2", "a3|b3"]);
    assert_eq!(rows("A right B"), ["a2,a2b|b2", "a3|b3", "|b4"]);
    assert_eq!(rows("A outer B"), ["a1|", "a2,a2b|b2", "a3|b3", "|b4"]);
    assert_eq!(rows("A full B"), rows("A outer B"));
    let cross = ["a1|b2", "a1|b3", "a1|b4", "a2,a2b|b2", "a2,a2b|b3", "a2,a2b|b4", "a3|b2", "a3|b3", "a3|b4"];
    assert_eq!(rows("A cross B"), cross);
    // `by` names may be the function's input names too.
    assert_eq!(rows("x inner y"), rows("A inner B"));
    // The other keyed input multiplies the joined rows, varying faster.
    assert_eq!(
        joined("A inner B"),
        ["a2,a2b|b2|c1", "a2,a2b|b2|c3", "a2,a2b|b2|c5", "a3|b3|c1", "a3|b3|c3", "a3|b3|c5"]
    );
}

#[test]
fn default_without_by_is_the_cross_product_of_key_groups() {
    let (ran, _) = run_echo(&join_program(None, None), "c", join_inputs());
    assert_eq!(ran.len(), 3 * 3 * 3);
    assert_eq!(shape(&ran[0]), "a1|b2|c1|");
    assert_eq!(shape(&ran[1]), "a1|b2|c3|");
    assert_eq!(shape(&ran[26]), "a3|b4|c5|");
}

#[test]
fn chained_joins_go_left_to_right() {
    assert_eq!(joined("A inner B left C"), ["a2,a2b|b2|", "a3|b3|c3"]);
    assert_eq!(joined("A outer B inner C"), ["a1||c1", "a3|b3|c3"]);
    assert_eq!(joined("A inner B right C"), ["||c1", "a3|b3|c3", "||c5"]);
    // After `cross`, later joins match the key of the right side (as in Dandelion).
    assert_eq!(joined("A cross B inner C"), ["a1|b3|c3", "a2,a2b|b3|c3", "a3|b3|c3"]);
    assert_eq!(joined("C left A outer B"), ["c1|a1|", "||b2", "c3|a3|b3", "||b4", "c5||"].map(reorder_cab));
}

/// `joined` prints shapes in declaration order (A|B|C); the test above lists `C left A outer B`
/// rows as C|A|B for readability.
fn reorder_cab(s: &str) -> String {
    let p: Vec<&str> = s.split('|').collect();
    format!("{}|{}|{}", p[1], p[2], p[0])
}

#[test]
fn joins_combine_with_each_inputs_outside_the_chain() {
    let (ran, _) = run_echo(&join_program(Some("A inner B inner C"), Some("w = each D")), "c", join_inputs());
    assert_eq!(shapes(&ran), ["a3|b3|c3|d1", "a3|b3|c3|d2"]);
}

#[test]
fn keyless_groups_join_only_keyless_groups() {
    let inputs = vec![
        keyed("A", &[("a0", None), ("a1", Some(1))]),
        keyed("B", &[("b0", None), ("b2", Some(2))]),
        keyed("C", &[("c", None)]),
        set("D", &[]),
    ];
    let (ran, _) = run_echo(&join_program(Some("A inner B inner C"), None), "c", inputs);
    assert_eq!(shapes(&ran), ["a0|b0|c|"]);
}

#[test]
fn join_with_no_common_key_runs_nothing_and_outputs_empty_sets() {
    let inputs = vec![
        keyed("A", &[("a", Some(1))]),
        keyed("B", &[("b", Some(2))]),
        keyed("C", &[("c", Some(3))]),
        set("D", &[]),
    ];
    let (ran, out) = run_echo(&join_program(Some("A inner B"), None), "c", inputs);
    assert!(ran.is_empty());
    assert!(out[0].items.is_empty());
}

#[test]
fn empty_input_without_optional_skips_the_function_and_everything_downstream() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("g", &["x"], &["y"])
        .composition(
            "c",
            &["S"],
            &["R"],
            vec![app("f", &["x = all S"], &["T = y"]), app("g", &["x = all T"], &["R = y"])],
        )
        .build();
    let ex = Execution::start(&p, "c", vec![set("S", &[])], PlanLimits::default()).unwrap();
    let Status::Done(outputs) = ex.status() else { panic!("should be done at once: {:?}", ex.status()) };
    assert_eq!(outputs[0].name, "R");
    assert!(outputs[0].items.is_empty());
    assert_eq!(ex.instances_planned(), 0);
}

#[test]
fn empty_output_of_a_function_also_skips_its_readers() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("g", &["x"], &["y"])
        .composition(
            "c",
            &["S"],
            &["R"],
            vec![app("f", &["x = each S"], &["T = y"]), app("g", &["x = all T"], &["R = y"])],
        )
        .build();
    let mut ex = Execution::start(&p, "c", vec![set("S", &["a", "b"])], PlanLimits::default()).unwrap();
    let ran = run(&mut ex, |i| Ok(vec![model::Set::new(i.function.clone())]));
    assert_eq!(ran.len(), 2, "g never runs");
    assert!(matches!(ex.status(), Status::Done(out) if out[0].items.is_empty()));
}

#[test]
fn optional_empty_input_runs_once_for_that_input() {
    let (ran, out) = run_echo(&one_app("optional all"), "c", vec![set("S", &[])]);
    assert_eq!(shapes(&ran), [""]);
    assert_eq!(ran[0].inputs[0].name, "x");
    assert!(out[0].items.is_empty());
    let (ran, _) = run_echo(&one_app("optional each"), "c", vec![set("S", &[])]);
    assert_eq!(ran.len(), 1);
    let (ran, _) = run_echo(&one_app("optional keyed"), "c", vec![set("S", &[])]);
    assert_eq!(ran.len(), 1);
}

#[test]
fn optional_empty_input_does_not_multiply_other_inputs() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition("c", &["A", "B"], &["T"], vec![app("f", &["x = optional each A", "y = each B"], &["T = o"])])
        .build();
    let (ran, _) = run_echo(&p, "c", vec![set("A", &[]), set("B", &["b1", "b2", "b3"])]);
    assert_eq!(shapes(&ran), ["|b1", "|b2", "|b3"]);
}

#[test]
fn optional_empty_input_drops_out_of_a_join() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition(
            "c",
            &["A", "B"],
            &["T"],
            vec![by(app("f", &["x = keyed A", "y = optional keyed B"], &["T = o"]), "A inner B")],
        )
        .build();
    let (ran, _) = run_echo(&p, "c", vec![keyed("A", &[("a1", Some(1)), ("a2", Some(2))]), set("B", &[])]);
    assert_eq!(shapes(&ran), ["a1|", "a2|"]);
}

#[test]
fn non_optional_empty_input_skips_even_an_outer_join() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition(
            "c",
            &["A", "B"],
            &["T"],
            vec![by(app("f", &["x = keyed A", "y = keyed B"], &["T = o"]), "A outer B")],
        )
        .build();
    let (ran, _) = run_echo(&p, "c", vec![keyed("A", &[("a1", Some(1))]), set("B", &[])]);
    assert!(ran.is_empty());
}

#[test]
fn unbound_inputs_are_empty_sets_and_unbound_outputs_are_dropped() {
    let p = ProgramBuilder::new()
        .function("f", &["x", "unused"], &["y", "ignored"])
        .composition("c", &["S"], &["T"], vec![app("f", &["x = each S"], &["T = y"])])
        .build();
    let mut ex = Execution::start(&p, "c", vec![set("S", &["a"])], PlanLimits::default()).unwrap();
    let instance = ex.next_ready().unwrap();
    assert_eq!(instance.inputs.len(), 2);
    assert_eq!(instance.inputs[1].name, "unused");
    assert!(instance.inputs[1].items.is_empty());
    assert_eq!(instance.output_count, 2);
    ex.complete(instance.id, Ok(vec![set("y", &["kept"]), set("ignored", &["dropped"])])).unwrap();
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["kept"]);
}

#[test]
fn inputs_bind_by_declared_position_not_argument_order() {
    let p = ProgramBuilder::new()
        .function("f", &["first", "second"], &["o"])
        .composition("c", &["A", "B"], &["T"], vec![app("f", &["second = all B", "first = all A"], &["T = o"])])
        .build();
    let (ran, _) = run_echo(&p, "c", vec![set("A", &["a"]), set("B", &["b"])]);
    assert_eq!(shapes(&ran), ["a|b"]);
    assert_eq!(ran[0].inputs[0].name, "first");
}

#[test]
fn independent_applications_start_together_and_dependents_wait() {
    let p = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .function("g", &["a", "b"], &["y"])
        .composition(
            "c",
            &["S"],
            &["R"],
            vec![
                app("g", &["a = all T", "b = all U"], &["R = y"]),
                app("f", &["x = each S"], &["T = y"]),
                app("f", &["x = all S"], &["U = y"]),
            ],
        )
        .build();
    let mut ex = Execution::start(&p, "c", vec![set("S", &["s1", "s2"])], PlanLimits::default()).unwrap();
    let first: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(
        first.iter().map(|i| i.origin.as_str()).collect::<Vec<_>>(),
        ["c: app #2 'f' instance 0", "c: app #2 'f' instance 1", "c: app #3 'f' instance 0"]
    );
    for i in &first {
        ex.complete(i.id, echo(i)).unwrap();
    }
    let g = ex.next_ready().unwrap();
    assert_eq!(shape(&g), "s1,s2|s1,s2");
    ex.complete(g.id, echo(&g)).unwrap();
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["s1", "s2", "s1", "s2"]);
}

fn nested_program(keyword: &str) -> Program {
    ProgramBuilder::new()
        .function("f", &["a"], &["b"])
        .composition("inner", &["x"], &["y"], vec![app("f", &["a = each x"], &["y = b"])])
        .composition("outer", &["S"], &["R"], vec![app("inner", &[&format!("x = {keyword} S")], &["R = y"])])
        .build()
}

#[test]
fn a_nested_composition_is_expanded_by_the_planner() {
    let (ran, out) = run_echo(&nested_program("all"), "outer", vec![set("S", &["s1", "s2", "s3"])]);
    assert!(ran.iter().all(|i| i.function == "f"), "no instance for the composition itself");
    assert_eq!(shapes(&ran), ["s1", "s2", "s3"]);
    assert_eq!(ran[2].origin, "outer: app #1 'inner' instance 0 > inner: app #1 'f' instance 2");
    assert_eq!(out[0].name, "R");
    assert_eq!(names(&out[0]), ["s1", "s2", "s3"]);
}

#[test]
fn a_nested_composition_under_each_keeps_outer_instance_order() {
    let p = nested_program("each");
    let mut ex = Execution::start(&p, "outer", vec![set("S", &["s1", "s2", "s3"])], PlanLimits::default()).unwrap();
    let all: Vec<_> = std::iter::from_fn(|| ex.next_ready()).collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].origin, "outer: app #1 'inner' instance 1 > inner: app #1 'f' instance 0");
    assert_eq!(ex.instances_planned(), 6, "3 expansions of `inner` + 3 instances of `f`");
    for i in all.iter().rev() {
        ex.complete(i.id, Ok(vec![set("b", &[&format!("out-{}", names(&i.inputs[0])[0])])])).unwrap();
    }
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["out-s1", "out-s2", "out-s3"]);
}

#[test]
fn compositions_nest_several_levels_and_pass_sets_through() {
    let p = ProgramBuilder::new()
        .function("f", &["a"], &["b"])
        .composition("pass", &["x"], &["x"], vec![])
        .composition("inner", &["x"], &["y"], vec![app("f", &["a = each x"], &["y = b"])])
        .composition(
            "middle",
            &["m"],
            &["n"],
            vec![app("pass", &["x = all m"], &["p = x"]), app("inner", &["x = keyed p"], &["n = y"])],
        )
        .composition("top", &["S"], &["R"], vec![app("middle", &["m = each S"], &["R = n"])])
        .build();
    let (ran, out) = run_echo(&p, "top", vec![keyed("S", &[("s1", Some(1)), ("s2", Some(2))])]);
    assert_eq!(shapes(&ran), ["s1", "s2"]);
    assert_eq!(
        ran[0].origin,
        "top: app #1 'middle' instance 0 > middle: app #2 'inner' instance 0 > inner: app #1 'f' instance 0"
    );
    assert_eq!(names(&out[0]), ["s1", "s2"]);
}

#[test]
fn a_composition_of_only_pass_through_is_done_at_start() {
    let p = ProgramBuilder::new().composition("id", &["S", "U"], &["U", "S"], vec![]).build();
    let mut ex =
        Execution::start(&p, "id", vec![set("in1", &["a"]), set("in2", &["b"])], PlanLimits::default()).unwrap();
    let out = ex.take_outputs().unwrap();
    assert_eq!((out[0].name.as_str(), names(&out[0])), ("U", vec!["b".to_string()]));
    assert_eq!((out[1].name.as_str(), names(&out[1])), ("S", vec!["a".to_string()]));
}

#[test]
fn the_design_example_parses_and_runs() {
    let src = "function grep (lines) => (matches);
        function topk (counts) => (top);
        function HTTP (requests) => (responses);
        composition top_errors (urls) => (report) {
            HTTP (requests = each urls) => (pages = responses);
            grep (lines = each pages) => (hits = matches);
            topk (counts = all hits) => (report = top);
        }";
    let program = dsl::parse(src).expect("parses");
    let (ran, out) = run_echo(&program, "top_errors", vec![set("urls", &["u1", "u2", "u3"])]);
    let functions: Vec<&str> = ran.iter().map(|i| i.function.as_str()).collect();
    assert_eq!(functions, ["HTTP", "HTTP", "HTTP", "grep", "grep", "grep", "topk"]);
    assert_eq!(ran[6].origin, "top_errors: app #3 'topk' instance 0");
    assert_eq!(names(&out[0]), ["u1", "u2", "u3"]);
}

#[test]
fn dandelions_readme_example_joins_by_set_names() {
    let src = "function classify (pics) => (tagged_pics, archives);
        function compress (pics, archives) => (put_requests);
        function HTTP(requests) => (responses);
        composition image_process (images) => (status) {
            classify (pics = all images) => (classified = tagged_pics, fetch_requests = archives);
            HTTP (requests = each fetch_requests) => (fetched_archives = responses);
            compress (pics = keyed classified, archives = keyed fetched_archives) => (store_requests = put_requests)
                by classified left fetched_archives;
            HTTP (requests = each store_requests) => (status = responses);
        }";
    let program = dsl::parse(src).expect("parses");
    let mut ex =
        Execution::start(&program, "image_process", vec![set("images", &["i1", "i2", "i3"])], PlanLimits::default())
            .unwrap();
    let ran = run(&mut ex, |i| match i.function.as_str() {
        "classify" => Ok(vec![
            keyed("tagged", &[("p1", Some(1)), ("p2", Some(2)), ("p3", Some(1))]),
            keyed("archives", &[("get1", Some(1)), ("get3", Some(3))]),
        ]),
        "compress" => {
            let key = i.inputs[0].items[0].key;
            Ok(vec![Set { name: "put".into(), items: vec![item(&format!("put-{}", shape(i)), key)] }])
        }
        _ => echo(i),
    });
    let compress: Vec<String> = ran.iter().filter(|i| i.function == "compress").map(shape).collect();
    assert_eq!(compress, ["p1,p3|get1", "p2|"], "every classified key, with its archive if fetched");
    assert_eq!(names(&ex.take_outputs().unwrap()[0]), ["put-p1,p3|get1", "put-p2|"]);
}

/// Runs `program` with [`echo`] under `any_partitions`; the instances' input shapes and the output.
fn run_any(program: &Program, inputs: Vec<Set>, any_partitions: usize) -> (Vec<String>, Vec<String>) {
    let limits = PlanLimits { any_partitions, ..PlanLimits::default() };
    let mut ex = Execution::start(program, "c", inputs, limits).unwrap();
    let ran = run(&mut ex, echo);
    assert!(matches!(ex.status(), Status::Done(_)), "not done: {:?}", ex.status());
    let out = ex.take_outputs().unwrap();
    (shapes(&ran), names(&out[0]))
}

#[test]
fn any_each_bundles_consecutive_items_into_as_many_parts_as_the_target() {
    let s = || set("S", &["a", "b", "c", "d", "e"]);
    // 5 items over 2 instances: 3 + 2, in item order; the output is all items, in order.
    let (shapes, out) = run_any(&one_app("anyEach"), vec![s()], 2);
    assert_eq!(shapes, ["a,b,c", "d,e"]);
    assert_eq!(out, ["a", "b", "c", "d", "e"]);
    assert_eq!(run_any(&one_app("anyEach"), vec![s()], 3).0, ["a,b", "c,d", "e"]);
    // A target above the item count: one item each, like `each`.
    assert_eq!(run_any(&one_app("anyEach"), vec![s()], 16).0, ["a", "b", "c", "d", "e"]);
    // Target 1: the whole set to one instance, like `all`.
    assert_eq!(run_any(&one_app("anyEach"), vec![s()], 1).0, ["a,b,c,d,e"]);
    // No target: Dandelion's maximum sharding, one per item.
    assert_eq!(run_any(&one_app("anyEach"), vec![s()], 0).0, ["a", "b", "c", "d", "e"]);
}

#[test]
fn any_keyed_never_splits_a_key_group() {
    let s = || keyed("S", &[("p3", Some(3)), ("q1", Some(1)), ("r3", Some(3)), ("s2", Some(2)), ("t", None)]);
    // Key groups in key order (keyless first): [t] [q1] [s2] [p3 r3]; 4 groups over 3 parts: 2+1+1.
    assert_eq!(run_any(&one_app("anyKeyed"), vec![s()], 3).0, ["t,q1", "s2", "p3,r3"]);
    assert_eq!(run_any(&one_app("anyKeyed"), vec![s()], 2).0, ["t,q1", "s2,p3,r3"]);
    assert_eq!(run_any(&one_app("anyKeyed"), vec![s()], 0).0, ["t", "q1", "s2", "p3,r3"]);
    assert_eq!(run_any(&one_app("anyKeyed"), vec![s()], 1).0, ["t,q1,s2,p3,r3"]);
}

#[test]
fn fixed_fan_out_that_reaches_the_target_hands_any_sets_over_whole() {
    let program = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition("c", &["A", "B"], &["T"], vec![app("f", &["x = each A", "y = anyEach B"], &["T = o"])])
        .build();
    let inputs = || vec![set("A", &["a1", "a2"]), set("B", &["b1", "b2", "b3", "b4"])];
    // 2 `each` instances already meet a target of 2: B goes whole to both.
    assert_eq!(run_any(&program, inputs(), 2).0, ["a1|b1,b2,b3,b4", "a2|b1,b2,b3,b4"]);
    // Target 4: 4 / 2 = 2 parts of B for each item of A.
    assert_eq!(run_any(&program, inputs(), 4).0, ["a1|b1,b2", "a1|b3,b4", "a2|b1,b2", "a2|b3,b4"]);
}

#[test]
fn joined_any_keyed_inputs_bundle_whole_joined_keys() {
    let program = ProgramBuilder::new()
        .function("f", &["x", "y"], &["o"])
        .composition(
            "c",
            &["A", "B"],
            &["T"],
            vec![by(app("f", &["x = anyKeyed A", "y = anyKeyed B"], &["T = o"]), "x inner y")],
        )
        .build();
    let inputs = || {
        vec![
            keyed("A", &[("a1", Some(1)), ("a2", Some(2)), ("a3", Some(3)), ("a2b", Some(2))]),
            keyed("B", &[("b3", Some(3)), ("b2", Some(2)), ("b4", Some(4))]),
        ]
    };
    // Inner join rows: key 2 (a2,a2b | b2), key 3 (a3 | b3); target 1 bundles both.
    assert_eq!(run_any(&program, inputs(), 1).0, ["a2,a2b,a3|b2,b3"]);
    assert_eq!(run_any(&program, inputs(), 2).0, ["a2,a2b|b2", "a3|b3"]);
    assert_eq!(run_any(&program, inputs(), 0).0, ["a2,a2b|b2", "a3|b3"]);
}
