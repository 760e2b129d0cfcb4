//! A 65,536-item fan-out in bounded steps: no `poll` starts more than `max_instances_per_step`
//! instances, planning, collecting and encoding are spread over many polls, another tenant is
//! answered in between, and the answer is byte for byte the one an unbounded plane gives.

use crate::common::*;
use control::{ControlLimits, Reply};
use model::wire::binary;
use model::{Bytes, Item, Set};
use planner::PlanLimits;

const ITEMS: usize = 65_536;
const SOURCE: &str = "function work (in) => (out); composition fan (xs) => (ys) { work (in = each xs) => (ys = out); }";
const BINARY: &str = "application/x-pappus-sets";

fn input() -> Set {
    Set {
        name: "xs".into(),
        items: (0..ITEMS)
            .map(|i| Item {
                name: format!("i{i}").into(),
                key: None,
                data: Bytes::from(format!("{i:05}").into_bytes()),
            })
            .collect(),
    }
}

fn setup(limits: ControlLimits) -> Harness {
    let mut h = Harness::with_limits(limits);
    h.put_function(ALICE, "work", "engine=wasm&inputs=in&outputs=out", "echo");
    h.put_composition(ALICE, "fan", SOURCE);
    h
}

fn invoke_fan(body: &[u8]) -> pappus_http::Request {
    request("POST", "/v1/invoke/fan", Some(ALICE), &[("Content-Type", BINARY), ("Accept", BINARY)], body)
}

#[test]
fn a_65536_item_fan_out_runs_in_bounded_polls_while_another_tenant_is_served() {
    let limits = ControlLimits::default();
    let per_step = limits.max_instances_per_step;
    let work = limits.plan.max_work_per_step;
    assert!(per_step <= 1024 && work <= 1024, "the defaults bound a step");
    let body = binary::encode(&[input()]).unwrap();
    let mut h = setup(limits);
    let id = h.pending(invoke_fan(&body));
    assert!(h.runtime.runs.is_empty(), "the request itself only starts planning");

    let (mut polls, mut first_run_poll, mut last_run_poll, mut bob_answers) = (0usize, 0usize, 0usize, 0usize);
    let response = loop {
        let before = h.runtime.runs.len();
        h.poll_at(h.now + 1);
        polls += 1;
        let started = h.runtime.runs.len() - before;
        assert!(started <= per_step, "poll {polls} started {started} instances");
        if started > 0 {
            if first_run_poll == 0 {
                first_run_poll = polls;
            }
            last_run_poll = polls;
        }
        if let Some(response) = h.plane.take_response(id) {
            break response;
        }
        // Between two polls another tenant's invocation is answered at once, in full.
        if polls % 16 == 0 {
            let r = h.call(request("POST", "/v1/invoke/identity", Some(BOB), &[], b"bob"));
            assert_eq!((r.status, text(&r)), (200, json_sets(&[set("out", &["bob"])]).as_str()));
            bob_answers += 1;
        }
        assert!(polls < 10_000, "never answered");
    };
    assert_eq!(response.status, 200, "{}", text(&response));
    assert_eq!(h.runtime.runs.len(), ITEMS);
    // Planning 65,536 instances before the first starts (the request and its first step plan
    // two steps' worth), running them 1,024 a poll, then collecting (two units a result) and
    // encoding: each spread over polls.
    eprintln!(
        "polls: {polls}, instances ran in polls {first_run_poll}..={last_run_poll}, bob answered {bob_answers} times"
    );
    assert!(first_run_poll >= ITEMS / work - 2, "the first instance ran in poll {first_run_poll}");
    assert!(last_run_poll - first_run_poll + 1 >= ITEMS / per_step);
    assert!(polls - last_run_poll >= 2 * ITEMS / work, "{} polls after the last instance", polls - last_run_poll);
    assert!(bob_answers >= polls / 16 - 1);

    let outputs = decode_binary(&response);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].name, "ys");
    assert_eq!(outputs[0].items.len(), ITEMS);
    for (i, item) in outputs[0].items.iter().enumerate() {
        assert_eq!((item.name.as_str(), &item.data[..]), (format!("i{i}").as_str(), format!("{i:05}").as_bytes()));
    }

    // The same request to a plane whose steps are unbounded: answered in its own call, same bytes.
    let unbounded = ControlLimits {
        max_instances_per_step: usize::MAX,
        plan: PlanLimits { max_work_per_step: usize::MAX, ..limits.plan },
        ..limits
    };
    let mut whole = setup(unbounded);
    let Reply::Now(at_once) = whole.send(invoke_fan(&body)) else { panic!("an unbounded plane answers at once") };
    assert_eq!(at_once.body, response.body);
}

#[test]
fn a_json_answer_is_encoded_in_pieces_with_the_same_bytes() {
    let plan = PlanLimits { max_work_per_step: 10, ..PlanLimits::default() };
    let limits = ControlLimits { plan, ..ControlLimits::default() };
    let mut h = Harness::with_limits(limits);
    let items: Vec<String> = (0..95).map(|i| format!("item {i}")).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let body = json_sets(&[set("in", &refs)]);
    let id = h.pending(request(
        "POST",
        "/v1/invoke/identity",
        Some(ALICE),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    ));
    let mut polls = 0;
    let response = loop {
        assert_eq!(h.plane.next_poll_ms(), Some(0), "an answer being encoded is polled at once");
        h.poll_at(h.now);
        polls += 1;
        if let Some(r) = h.plane.take_response(id) {
            break r;
        }
    };
    // The direct invocation's one instance, then 95 items collected and encoded 10 a poll.
    assert!(polls >= 95 / 10, "{polls} polls");
    assert_eq!(text(&response), json_sets(&[set("out", &refs)]));
    assert_eq!(response.header_value("content-type"), Some("application/json"));
}

/// `concat (a = ADAPTIVE s, b = all marks)`: each instance's output is its part of `s` and then
/// the mark, so the answer shows where the platform cut.
fn adaptive(keyword: &str, any_partitions: usize, s: Set) -> Vec<String> {
    let plan = PlanLimits { any_partitions, ..ControlLimits::default().plan };
    let mut h = Harness::with_limits(ControlLimits { plan, ..Default::default() });
    let source = format!(
        "function concat (a, b) => (out);
         composition cut (s, marks) => (out) {{ concat (a = {keyword} s, b = all marks) => (out = out); }}"
    );
    assert_eq!(h.put_composition(ALICE, "cut", &source).status, 201);
    let r = h.invoke_json(ALICE, "cut", &[s, set("marks", &["|"])]);
    assert_eq!(r.status, 200, "{}", text(&r));
    item_texts(&decode_json(&r)[0])
}

#[test]
fn any_each_and_any_keyed_cut_where_the_platform_target_says() {
    let s = || set("s", &["1", "2", "3", "4", "5"]);
    assert_eq!(adaptive("anyEach", 2, s()), ["1", "2", "3", "|", "4", "5", "|"]);
    assert_eq!(adaptive("anyEach", 1, s()), ["1", "2", "3", "4", "5", "|"]);
    assert_eq!(adaptive("anyEach", 0, s()), ["1", "|", "2", "|", "3", "|", "4", "|", "5", "|"]);
    let mut k = set("s", &["a1", "b2", "c1", "d3"]);
    for (item, key) in k.items.iter_mut().zip([1, 2, 1, 3]) {
        item.key = Some(key);
    }
    // Key groups 1: [a1 c1], 2: [b2], 3: [d3]; over 2 parts: {1, 2} and {3}.
    assert_eq!(adaptive("anyKeyed", 2, k.clone()), ["a1", "c1", "b2", "|", "d3", "|"]);
    assert_eq!(adaptive("anyKeyed", 3, k), ["a1", "c1", "|", "b2", "|", "d3", "|"]);
}
