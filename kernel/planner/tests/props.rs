//! Properties: completion order never changes the outputs, joins agree with a set-theoretic model,
//! and no program or completion sequence makes the planner panic.

mod common;

use std::collections::BTreeSet;

use common::*;
use dsl::ast::{Application, Program};
use model::Set;
use planner::{Execution, FailureCause, PlanError, PlanLimits, Status};
use proptest::prelude::*;

fn keyed_set(name: &str, keys: &[Option<u8>]) -> Set {
    let items: Vec<(String, Option<u64>)> =
        keys.iter().enumerate().map(|(i, k)| (format!("{name}{i}"), k.map(u64::from))).collect();
    let refs: Vec<(&str, Option<u64>)> = items.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    keyed(name, &refs)
}

fn keys_strategy() -> impl Strategy<Value = Vec<Option<u8>>> {
    prop::collection::vec(prop::option::weighted(0.8, 0u8..5), 0..7)
}

/// A program with a cross product, a keyed fan-out and an aggregation, so completions of several
/// applications interleave.
fn pipeline() -> Program {
    ProgramBuilder::new()
        .function("pair", &["x", "y"], &["o"])
        .function("group", &["x"], &["o"])
        .function("sum", &["x", "y"], &["o", "p"])
        .composition(
            "c",
            &["A", "B"],
            &["R", "Q"],
            vec![
                app("pair", &["x = each A", "y = each B"], &["P = o"]),
                app("group", &["x = keyed A"], &["G = o"]),
                app("sum", &["x = all P", "y = each G"], &["R = o", "Q = p"]),
            ],
        )
        .build()
}

/// Runs to the end, completing a ready-or-running instance picked by `picks` each step.
fn run_in_order(program: &Program, inputs: Vec<Set>, picks: &[usize]) -> Vec<Set> {
    let mut ex = Execution::start(program, "c", inputs, PlanLimits::default()).unwrap();
    let mut pool = Vec::new();
    let mut step = 0;
    loop {
        pool.extend(std::iter::from_fn(|| ex.next_ready()));
        if pool.is_empty() {
            break;
        }
        let pick = picks.get(step).copied().unwrap_or(0) % pool.len();
        step += 1;
        let instance = pool.swap_remove(pick);
        ex.complete(instance.id, echo(&instance)).unwrap();
    }
    assert!(matches!(ex.status(), Status::Done(_)), "{:?}", ex.status());
    assert_eq!(ex.live_sets(), 0);
    ex.take_outputs().unwrap()
}

/// The expected instance shapes of `f (x = keyed A, y = keyed B) by A kind B`, computed from key
/// sets rather than by running join steps.
fn model_join(a: &Set, b: &Set, kind: &str) -> Vec<String> {
    if a.items.is_empty() || b.items.is_empty() {
        return Vec::new(); // Without `optional`, an empty input skips the function.
    }
    let keys = |s: &Set| s.items.iter().map(|i| i.key).collect::<BTreeSet<_>>();
    let group = |s: &Set, k: Option<u64>| {
        s.items.iter().filter(|i| i.key == k).map(|i| i.name.clone()).collect::<Vec<_>>().join(",")
    };
    let (ka, kb) = (keys(a), keys(b));
    if kind == "cross" {
        return ka
            .iter()
            .flat_map(|&x| kb.iter().map(move |&y| (x, y)))
            .map(|(x, y)| format!("{}|{}", group(a, x), group(b, y)))
            .collect();
    }
    let chosen: BTreeSet<Option<u64>> = match kind {
        "inner" => ka.intersection(&kb).copied().collect(),
        "left" => ka,
        "right" => kb,
        _ => ka.union(&kb).copied().collect(),
    };
    chosen.into_iter().map(|k| format!("{}|{}", group(a, k), group(b, k))).collect()
}

/// A generated application, as raw numbers interpreted by [`interpret`]: callee, arguments
/// (param, optional, keyword, set read), output params bound, and a `by` chain (kind, argument).
type RawApp = (u8, Vec<(u8, bool, u8, u8)>, Vec<u8>, Vec<(u8, u8)>);

/// Builds a mostly consistent composition body from raw numbers: arguments read sets that exist,
/// outputs define fresh sets. What can still be wrong (a `by` naming a non-keyed argument, a
/// composition applying itself) is what the planner must refuse or bound gracefully.
fn interpret(raw: &[RawApp], comp: &str, inputs: &[&str], d_output: &str, pick: u8) -> (Vec<Application>, String) {
    let mut defined: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    let mut body = Vec::new();
    for (i, (callee, args, outs, join)) in raw.iter().enumerate() {
        let (function, params, outputs): (&str, &[&str], Vec<&str>) = match callee % 3 {
            0 => ("f", &["x", "y"], vec!["o", "p"]),
            1 => ("g", &["x", "y", "z"], vec!["o", "p", "q"]),
            _ => ("d", &["A"], vec![d_output]),
        };
        let mut bound: Vec<(&str, String)> = Vec::new();
        for (p, optional, keyword, set) in args {
            let param = params[*p as usize % params.len()];
            if bound.iter().any(|(b, _)| *b == param) {
                continue;
            }
            let set = &defined[*set as usize % defined.len()];
            let keyword = ["all", "each", "keyed"][*keyword as usize % 3];
            bound.push((param, format!("{param} = {}{keyword} {set}", if *optional { "optional " } else { "" })));
        }
        let mut outs_bound: Vec<String> = Vec::new();
        let mut new_sets = Vec::new();
        for o in outs {
            let param = outputs[*o as usize % outputs.len()];
            let set = format!("{comp}{i}_{param}");
            if !new_sets.contains(&set) {
                outs_bound.push(format!("{set} = {param}"));
                new_sets.push(set);
            }
        }
        let args: Vec<&str> = bound.iter().map(|(_, a)| a.as_str()).collect();
        let outs: Vec<&str> = outs_bound.iter().map(String::as_str).collect();
        let mut application = app(function, &args, &outs);
        if !join.is_empty() && !bound.is_empty() {
            let kinds = ["inner", "left", "right", "outer", "cross"];
            let mut names: Vec<&str> = Vec::new();
            let mut clause = String::new();
            for (kind, arg) in join {
                let name = bound[*arg as usize % bound.len()].0;
                if names.contains(&name) {
                    continue;
                }
                if !names.is_empty() {
                    clause.push_str(&format!(" {} ", kinds[*kind as usize % kinds.len()]));
                }
                clause.push_str(name);
                names.push(name);
            }
            application = by(application, &clause);
        }
        body.push(application);
        defined.extend(new_sets);
    }
    let output = defined[pick as usize % defined.len()].clone();
    (body, output)
}

fn raw_app() -> impl Strategy<Value = RawApp> {
    (
        any::<u8>(),
        prop::collection::vec((any::<u8>(), prop::bool::weighted(0.3), any::<u8>(), any::<u8>()), 0..4),
        prop::collection::vec(any::<u8>(), 0..3),
        prop::collection::vec((any::<u8>(), any::<u8>()), 0..3),
    )
}

/// Random small programs: `c (A, B) => (…)` applying `f`, `g` and the composition `d (A) => (…)`,
/// which may apply itself.
fn program_strategy() -> impl Strategy<Value = Program> {
    let body = || prop::collection::vec(raw_app(), 0..5);
    (body(), body(), any::<u8>(), any::<u8>()).prop_map(|(c_raw, d_raw, c_pick, d_pick)| {
        // `d` applies itself under the name of its own (not yet known) output: resolve it first
        // with a placeholder, then again with the real name.
        let (_, d_output) = interpret(&d_raw, "d", &["A"], "B", d_pick);
        let (d_body, d_output) = interpret(&d_raw, "d", &["A"], &d_output, d_pick);
        let (c_body, c_output) = interpret(&c_raw, "c", &["A", "B"], &d_output, c_pick);
        ProgramBuilder::new()
            .function("f", &["x", "y"], &["o", "p"])
            .function("g", &["x", "y", "z"], &["o", "p", "q"])
            .composition("d", &["A"], &[&d_output], d_body)
            .composition("c", &["A", "B"], &[&c_output], c_body)
            .build()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn completion_order_never_changes_the_outputs(
        a in keys_strategy(),
        b in keys_strategy(),
        picks in prop::collection::vec(any::<usize>(), 0..200),
    ) {
        let inputs = || vec![keyed_set("a", &a), keyed_set("b", &b)];
        let in_order = run_in_order(&pipeline(), inputs(), &[]);
        let shuffled = run_in_order(&pipeline(), inputs(), &picks);
        prop_assert_eq!(in_order, shuffled);
    }

    #[test]
    fn two_way_joins_agree_with_the_key_set_model(
        a in keys_strategy(),
        b in keys_strategy(),
        kind in prop::sample::select(vec!["inner", "left", "right", "outer", "cross"]),
    ) {
        let (sa, sb) = (keyed_set("a", &a), keyed_set("b", &b));
        let expected = model_join(&sa, &sb, kind);
        let program = ProgramBuilder::new()
            .function("f", &["x", "y"], &["o"])
            .composition("c", &["A", "B"], &["T"], vec![by(app("f", &["x = keyed A", "y = keyed B"], &["T = o"]), &format!("A {kind} B"))])
            .build();
        let (ran, out) = run_echo(&program, "c", vec![sa, sb]);
        prop_assert_eq!(ran.iter().map(shape).collect::<Vec<_>>(), expected);
        prop_assert_eq!(out[0].items.len(), ran.iter().map(|i| i.inputs[0].items.len() + i.inputs[1].items.len()).sum::<usize>());
    }

    #[test]
    fn no_program_or_completion_sequence_panics(
        program in program_strategy(),
        a in keys_strategy(),
        b in keys_strategy(),
        outcomes in prop::collection::vec(0..8u8, 0..64),
    ) {
        let limits = PlanLimits { max_instances_per_application: 64, max_total_instances: 256, max_nesting_depth: 3, ..PlanLimits::default() };
        let Ok(mut ex) = Execution::start(&program, "c", vec![keyed_set("a", &a), keyed_set("b", &b)], limits) else {
            return Ok(());
        };
        let mut running = Vec::new();
        let mut checked_failure = false;
        for &outcome in &outcomes {
            running.extend(std::iter::from_fn(|| ex.next_ready()));
            let Some(instance) = running.pop() else { break };
            let result = match outcome {
                0 => Err("failed".to_string()),
                1 => Ok(Vec::new()),
                _ => echo(&instance),
            };
            // Completing a handed-out instance is never refused, whatever the state.
            prop_assert!(ex.complete(instance.id, result).is_ok());
            if let Status::Failed(failure) = ex.status() {
                if !checked_failure {
                    // Exactly the handed-out, uncompleted instances are to cancel.
                    let mut outstanding: Vec<_> = running.iter().map(|i| i.id).collect();
                    outstanding.sort();
                    prop_assert_eq!(&failure.cancel, &outstanding);
                    checked_failure = true;
                }
            } else if outcome >= 2 {
                prop_assert!(ex.complete(instance.id, Ok(Vec::new())).is_err(), "a second completion is refused");
            }
        }
        if let Status::Done(_) = ex.status() {
            prop_assert_eq!(ex.live_sets(), 0);
            prop_assert!(running.is_empty());
        }
    }

    #[test]
    fn started_programs_always_finish_or_fail_on_a_limit(
        program in program_strategy(),
        a in keys_strategy(),
        b in keys_strategy(),
    ) {
        let limits = PlanLimits { max_instances_per_application: 64, max_total_instances: 512, max_nesting_depth: 3, ..PlanLimits::default() };
        let Ok(mut ex) = Execution::start(&program, "c", vec![keyed_set("a", &a), keyed_set("b", &b)], limits) else {
            return Ok(());
        };
        run(&mut ex, echo);
        match ex.status() {
            Status::Done(outputs) => prop_assert_eq!(outputs.len(), 1),
            Status::Failed(failure) => prop_assert!(
                matches!(
                    &failure.cause,
                    FailureCause::Plan(
                        PlanError::TooManyInstances { .. }
                            | PlanError::TotalInstancesExceeded { .. }
                            | PlanError::NestingTooDeep { .. }
                    )
                ),
                "{}",
                failure
            ),
            Status::Running { .. } => prop_assert!(false, "stalled while running"),
        }
        prop_assert_eq!(ex.live_sets(), 0);
    }

    #[test]
    fn bounded_steps_plan_exactly_what_an_unbounded_run_plans(
        program in program_strategy(),
        a in keys_strategy(),
        b in keys_strategy(),
        outcomes in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]), 0..64),
        budget in 1usize..9,
    ) {
        let limits = PlanLimits { max_instances_per_application: 64, max_total_instances: 512, max_nesting_depth: 3, ..PlanLimits::default() };
        let inputs = || vec![keyed_set("a", &a), keyed_set("b", &b)];
        let (whole, _) = trace(&program, inputs(), limits, &outcomes);
        let bounded = PlanLimits { max_work_per_step: budget, ..limits };
        let (stepped, most) = trace(&program, inputs(), bounded, &outcomes);
        prop_assert_eq!(&whole, &stepped);
        // Grouping a keyed input and joining are charged whole (at most 12 items, 36 rows here),
        // and one instance's result moves whole; everything else is cut to the budget.
        prop_assert!(most <= budget as u64 + 64, "a step spent {} units, the budget is {}", most, budget);
    }
}

/// Runs `f (x = KEYWORD S)` under `any_partitions` and returns each instance's item names.
fn adaptive_parts(keyword: &str, s: Set, any_partitions: usize) -> Vec<Vec<String>> {
    let program = ProgramBuilder::new()
        .function("f", &["x"], &["y"])
        .composition("c", &["S"], &["T"], vec![app("f", &[&format!("x = {keyword} S")], &["T = y"])])
        .build();
    let limits = PlanLimits { any_partitions, ..PlanLimits::default() };
    let mut ex = Execution::start(&program, "c", vec![s], limits).unwrap();
    let ran = run(&mut ex, echo);
    assert!(matches!(ex.status(), Status::Done(_)), "{:?}", ex.status());
    ran.iter().map(|i| names(&i.inputs[0])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// `anyEach`: min(target, items) parts (all items with no target), sizes differing by at
    /// most one, covering the set in order.
    #[test]
    fn any_each_parts_are_even_ordered_and_cover_the_set(n in 1usize..40, target in 0usize..12) {
        let names_: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
        let refs: Vec<&str> = names_.iter().map(String::as_str).collect();
        let parts = adaptive_parts("anyEach", set("S", &refs), target);
        let want = if target == 0 { n } else { target.min(n) };
        prop_assert_eq!(parts.len(), want);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{:?}", sizes);
        prop_assert_eq!(parts.concat(), names_);
    }

    /// `anyKeyed`: min(target, keys) parts, each holding whole key groups, covering the set.
    #[test]
    fn any_keyed_parts_hold_whole_key_groups(keys in prop::collection::vec(prop::option::weighted(0.8, 0u8..6), 1..20), target in 0usize..8) {
        let s = keyed_set("S", &keys);
        let distinct: BTreeSet<Option<u8>> = keys.iter().copied().collect();
        let parts = adaptive_parts("anyKeyed", s.clone(), target);
        let want = if target == 0 { distinct.len() } else { target.min(distinct.len()) };
        prop_assert_eq!(parts.len(), want);
        let key_of = |name: &str| s.items.iter().find(|i| i.name == name).unwrap().key;
        let mut seen: BTreeSet<Option<u64>> = BTreeSet::new();
        let mut all: Vec<String> = Vec::new();
        for part in &parts {
            let part_keys: BTreeSet<Option<u64>> = part.iter().map(|n| key_of(n)).collect();
            // No key is split between two parts.
            prop_assert!(seen.is_disjoint(&part_keys), "{:?}", parts);
            seen.extend(part_keys);
            all.extend(part.iter().cloned());
        }
        let mut expected: Vec<String> = s.items.iter().map(|i| i.name.to_string()).collect();
        expected.sort();
        all.sort();
        prop_assert_eq!(all, expected);
    }
}
