//! `ControlLimits`: saturation, sizes, the per-step budget and planner limits; and the counters.

use crate::common::*;
use control::{ControlLimits, Counters};
use model::wire::WireLimits;
use planner::PlanLimits;

fn post(name: &str, headers: &[(&str, &str)], body: &[u8]) -> pappus_http::Request {
    request("POST", &format!("/v1/invoke/{name}"), Some(ALICE), headers, body)
}

#[test]
fn too_many_live_invocations_is_503_with_retry_after() {
    // Four slots for two tenants: two each.
    let limits = ControlLimits { max_live_invocations: 4, retry_after_s: 3, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    assert_eq!(h.plane.tenant_invocation_share(), 2);
    let bob = |name: &str, body: &[u8]| request("POST", &format!("/v1/invoke/{name}"), Some(BOB), &[], body);
    let first = h.pending(post("sleep", &[], b"100"));
    let second = h.pending(post("sleep", &[], b"100"));
    // Alice holds her share: 429 for her, while Bob still gets his.
    let r = h.call(post("identity", &[], b"x"));
    assert_error(
        &r,
        429,
        "too_many_invocations",
        "this tenant has 2 invocations under way, its share of the 4 this server holds; retry later",
    );
    assert_eq!(r.header_value("retry-after"), Some("3"));
    let bobs = [h.pending(bob("sleep", b"100")), h.pending(bob("sleep", b"100"))];
    // All four slots held: 503 for anyone.
    let r = h.call(bob("identity", b"x"));
    assert_error(&r, 503, "saturated", "4 invocations are under way, the most this server holds; retry later");
    assert_eq!(r.header_value("retry-after"), Some("3"));
    let head = request("POST", "/v1/invoke/identity", Some(ALICE), &[("Expect", "100-continue")], b"");
    assert_eq!(h.plane.check_head(&head).map(|r| r.status), Some(503));
    // Finished but untaken responses still count; taking one frees room.
    h.poll_at(2_000);
    assert_eq!(h.call(post("identity", &[], b"x")).status, 503);
    assert!(h.plane.take_response(first).is_some());
    assert_eq!(h.call(post("identity", &[], b"x")).status, 200);
    h.plane.cancel(second, &mut h.runtime);
    for id in bobs {
        h.plane.cancel(id, &mut h.runtime);
    }
    assert_eq!(h.plane.live_invocations(), 0);
}

#[test]
fn images_over_the_limit_are_413() {
    let limits = ControlLimits { max_image_bytes: 16, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    let r = h.call(request("PUT", "/v1/functions/f?engine=wasm&outputs=o", Some(ALICE), &[], b"FAKE:echo_but_longer"));
    assert_error(&r, 413, "payload_too_large", "the function image is 20 bytes, at most 16 are allowed");
    assert_eq!(h.put_function(ALICE, "f", "engine=wasm&outputs=o", "echo").status, 201);
}

#[test]
fn invoke_bodies_over_the_wire_limits_are_413() {
    let wire = WireLimits { max_items: 3, max_total_bytes: 8, ..WireLimits::DEFAULT };
    let limits = ControlLimits { wire, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    let r = h.invoke_json(ALICE, "identity", &[set("in", &["1", "2", "3", "4"])]);
    assert_error(&r, 413, "payload_too_large", "the input is too large: sets.in[3]: more than 3 items in all");
    let r = h.call(post("identity", &[], b"123456789"));
    assert_error(
        &r,
        413,
        "payload_too_large",
        "the input is too large: sets.in[0].data: more than 8 bytes of item data in all",
    );
    // The same limits bound what one function instance may return.
    h.put_function(ALICE, "big", "engine=wasm&inputs=i&outputs=o", "const:0123456789");
    let r = h.call(post("big", &[], b""));
    assert_error(
        &r,
        502,
        "bad_output",
        "function 'big' failed: invalid outputs: sets.o[0].data: more than 8 bytes of item data in all",
    );
}

#[test]
fn a_large_fan_out_runs_in_steps() {
    let limits = ControlLimits { max_instances_per_step: 10, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    h.put_composition(
        ALICE,
        "fan",
        "function identity (in) => (out); composition fan (xs) => (ys) { identity (in = each xs) => (ys = out); }",
    );
    let items: Vec<String> = (0..25).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let body = json_sets(&[set("xs", &refs)]);
    let id = h.pending(post("fan", &[("Content-Type", "application/json")], body.as_bytes()));
    assert_eq!(h.plane.next_poll_ms(), Some(0), "ready instances: poll at once");
    assert!(h.poll_at(1_000));
    assert!(h.plane.take_response(id).is_none());
    assert!(h.poll_at(1_000));
    let r = h.plane.take_response(id).expect("25 instances in three steps");
    assert_eq!(text(&r), json_sets(&[set("ys", &refs)]));
    assert!(!h.poll_at(1_000), "nothing left to move");
}

#[test]
fn planner_limits_are_422() {
    let plan = PlanLimits { max_instances_per_application: 10, ..PlanLimits::default() };
    let limits = ControlLimits { plan, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    h.put_composition(
        ALICE,
        "fan",
        "function identity (in) => (out); composition fan (xs) => (ys) { identity (in = each xs) => (ys = out); }",
    );
    let items: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let r = h.invoke_json(ALICE, "fan", &[set("xs", &refs)]);
    assert_error(&r, 422, "plan_limit", "fan: app #1 'identity': would start 11 instances, the limit is 10");
}

#[test]
fn counters_follow_registrations_and_outcomes() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", "engine=wasm&inputs=i&outputs=o", "echo");
    h.put_function(BOB, "f", "engine=wasm&inputs=i&outputs=o", "fault");
    h.put_composition(BOB, "c", "composition c (x) => (x) { }");
    assert_eq!(h.call(post("f", &[], b"")).status, 200);
    assert_eq!(h.call(request("POST", "/v1/invoke/f", Some(BOB), &[], b"")).status, 500);
    assert_eq!(h.call(post("missing", &[], b"")).status, 404);
    let pending = h.pending(post("sleep", &[], b"10"));
    assert_eq!(
        h.plane.counters(),
        Counters {
            invocations_ok: 1,
            invocations_rejected: 1,
            invocations_failed: 1,
            invocations_timed_out: 0,
            invocations_cancelled: 0,
            invocations_live: 1,
            functions: 2,
            compositions: 1,
        }
    );
    h.plane.cancel(pending, &mut h.runtime);
    assert_eq!(h.plane.counters().invocations_cancelled, 1);
    assert_eq!(h.plane.counters().invocations_live, 0);
}
