//! Per-tenant memory budgets: what each request makes the node hold is charged to its tenant,
//! over the budget is 507 `memory_budget` for that tenant alone, and everything comes back.

use crate::common::*;
use control::{ControlLimits, Reply};
use model::{MemoryBudgets, Pool, Set, TenantId};

const ALICE_ID: TenantId = TenantId::new(0);
const BOB_ID: TenantId = TenantId::new(1);

fn harness(heap: u64, frames: u64) -> Harness {
    Harness::with_limits(ControlLimits { memory: MemoryBudgets { heap, frames }, ..Default::default() })
}

fn used(h: &Harness, tenant: TenantId, pool: Pool) -> u64 {
    h.plane.memory().account(tenant, pool).used()
}

fn put_image(h: &mut Harness, token: &str, name: &str, image: &[u8]) -> pappus_http::Response {
    // Native sandboxes take frames, so invoking them leaves the heap budget to the images.
    let target = format!("/v1/functions/{name}?engine=paging&inputs=in&outputs=out");
    h.call(request("PUT", &target, Some(token), &[], image))
}

fn image(bytes: usize) -> Vec<u8> {
    let mut image = b"FAKE:echo".to_vec();
    image.resize(bytes, b' ');
    image
}

#[test]
fn registrations_fill_one_tenants_budget_and_deletes_give_it_back() {
    let mut h = harness(10_000, 1 << 30);
    // The fake runtime's prepared form holds as many bytes as the image.
    for i in 0..3 {
        let r = put_image(&mut h, ALICE, &format!("f{i}"), &image(3_000));
        assert_eq!(r.status, 201, "{}", text(&r));
    }
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 9_000);
    let r = put_image(&mut h, ALICE, "f3", &image(3_000));
    assert_error_contains(&r, 507, "memory_budget", "budget is 10000 bytes, 9000 are in use, and 3000 more");
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 9_000, "nothing half-registered");
    assert_eq!(h.get(ALICE, "/v1/functions/f3").status, 404);
    // Bob is untouched: his own budget, his own functions, his invocations.
    assert_eq!(put_image(&mut h, BOB, "g", &image(9_000)).status, 201);
    let r = h.call(request("POST", "/v1/invoke/g", Some(BOB), &[], b"hello"));
    assert_eq!((r.status, text(&r)), (200, r#"{"sets":{"out":[{"name":"","data":"aGVsbG8="}]}}"#), "{}", text(&r));
    // Alice's deletes give everything back.
    for i in 0..3 {
        assert_eq!(h.delete(ALICE, &format!("/v1/functions/f{i}")).status, 204);
    }
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0);
    assert_eq!(put_image(&mut h, ALICE, "f3", &image(3_000)).status, 201);
    assert_eq!(used(&h, BOB_ID, Pool::Heap), 9_000, "bob's charge is his own");
}

#[test]
fn replacing_a_function_charges_the_new_one_and_frees_the_old() {
    let mut h = harness(10_000, 1 << 30);
    assert_eq!(put_image(&mut h, ALICE, "f", &image(4_000)).status, 201);
    assert_eq!(put_image(&mut h, ALICE, "f", &image(5_000)).status, 200);
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 5_000);
    // Both versions must fit while the new one is prepared.
    assert_eq!(put_image(&mut h, ALICE, "f", &image(5_001)).status, 507);
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 5_000, "the old one stays, charged as before");
}

#[test]
fn a_function_kept_by_a_running_invocation_stays_charged_until_it_ends() {
    let mut h = harness(1 << 20, 1 << 30);
    assert_eq!(put_image(&mut h, ALICE, "f", &image(4_000)).status, 201);
    h.runtime.deferred = true;
    let id = h.pending(request("POST", "/v1/invoke/f", Some(ALICE), &[], b"x"));
    assert_eq!(h.delete(ALICE, "/v1/functions/f").status, 204);
    assert!(used(&h, ALICE_ID, Pool::Heap) >= 4_000, "the invocation still runs it");
    h.runtime.finish_all(false);
    h.poll_at(1_001);
    assert_eq!(h.plane.take_response(id).map(|r| r.status), Some(200));
    // The runtime's queue held the last reference.
    h.runtime.queued.clear();
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0);
}

#[test]
fn compositions_are_charged_for_their_text_and_tree() {
    let mut h = harness(2_000, 1 << 30);
    let source = "function identity (in) => (out);\ncomposition c (a) => (b) { identity (in = all a) => (b = out); }";
    h.put_composition(ALICE, "c", source);
    let one = used(&h, ALICE_ID, Pool::Heap);
    assert!(one >= source.len() as u64, "{one}");
    // A program too large for what is left: 507, and nothing stored.
    let padded = format!("{source}\n# {}", "x".repeat(2_000 - one as usize));
    let r = h.call(request("PUT", "/v1/compositions/d", Some(ALICE), &[], padded.replace(" c ", " d ").as_bytes()));
    assert_error_contains(&r, 507, "memory_budget", "budget is 2000 bytes");
    assert_eq!(h.get(ALICE, "/v1/compositions/d").status, 404);
    assert_eq!(h.delete(ALICE, "/v1/compositions/c").status, 204);
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0);
}

#[test]
fn invocation_data_over_the_budget_is_507_and_given_back() {
    let mut h = harness(1_000, 1 << 30);
    let r = h.call(request("POST", "/v1/invoke/identity", Some(ALICE), &[], &[b'x'; 2_000]));
    assert_error_contains(&r, 507, "memory_budget", "budget is 1000 bytes");
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0);
    // Small inputs fit; the identity's output is charged too, and all of it comes back.
    let r = h.call(request("POST", "/v1/invoke/identity", Some(ALICE), &[], &[b'x'; 300]));
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = h.call(request("POST", "/v1/invoke/identity", Some(ALICE), &[], &[b'x'; 600]));
    assert_error_contains(&r, 507, "memory_budget", "its outputs do not fit");
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0);
    assert_eq!(h.call(request("POST", "/v1/invoke/identity", Some(BOB), &[], &[b'x'; 300])).status, 200);
}

const FAN: &str = "function up (line) => (loud);
function identity (in) => (out);
composition fan (lines) => (result) {
    up (line = each lines) => (loud = loud);
    identity (in = all loud) => (result = out);
}";

#[test]
fn sandboxes_wait_for_their_tenants_memory_and_never_exceed_it() {
    // Native sandboxes take frames: room for two 16 MiB instances at once.
    let mut h = harness(1 << 20, 32 << 20);
    h.put_function(ALICE, "up", "engine=paging&inputs=text&outputs=shout&memory=16MiB", "upper");
    h.put_composition(ALICE, "fan", FAN);
    h.runtime.deferred = true;
    let body = json_sets(&[set("lines", &["a", "b", "c", "d", "e"])]);
    let headers = [("Content-Type", "application/json")];
    let Reply::Pending(id) = h.send(request("POST", "/v1/invoke/fan", Some(ALICE), &headers, body.as_bytes())) else {
        panic!("answered at once")
    };
    let mut rounds = 0;
    while h.plane.live_invocations() > 0 && h.plane.take_response(id).is_none() {
        assert!(h.runtime.queued.len() <= 2, "{} sandboxes at once on a budget of two", h.runtime.queued.len());
        assert!(used(&h, ALICE_ID, Pool::Frames) <= 32 << 20);
        h.runtime.finish_all(false);
        h.poll_at(1_001 + rounds);
        rounds += 1;
        assert!(rounds < 10, "the fan-out did not finish");
        if let Some(r) = h.plane.take_response(id) {
            assert_eq!(decode_json(&r), [set("result", &["A", "B", "C", "D", "E"])]);
            break;
        }
    }
    assert_eq!(rounds, 3, "five instances, two at a time");
    assert_eq!(used(&h, ALICE_ID, Pool::Frames), 0);
    // Bob's sandboxes never waited on Alice's budget.
    assert_eq!(used(&h, BOB_ID, Pool::Frames), 0);
}

#[test]
fn a_sandbox_larger_than_the_budget_is_507_not_a_wait() {
    let mut h = harness(1 << 20, 8 << 20);
    h.put_function(ALICE, "big", "engine=mpk&inputs=i&outputs=o&memory=16MiB", "echo");
    let r = h.call(request("POST", "/v1/invoke/big", Some(ALICE), &[], b"x"));
    assert_error_contains(&r, 507, "memory_budget", "sandbox memory budget is 8388608 bytes");
    // wasm instances take heap, not frames.
    h.put_function(ALICE, "small", "engine=wasm&inputs=i&outputs=o&memory=1MiB", "echo");
    let r = h.call(request("POST", "/v1/invoke/small", Some(ALICE), &[], b"x"));
    assert_error_contains(&r, 507, "memory_budget", "memory budget is 1048576 bytes");
    assert_eq!((used(&h, ALICE_ID, Pool::Frames), used(&h, ALICE_ID, Pool::Heap) > 0), (0, true));
}

#[test]
fn two_tenants_sets_are_charged_separately() {
    let mut h = harness(100_000, 1 << 30);
    let sets: Vec<Set> = vec![set("in", &["x"; 10])];
    let r = h.invoke_json(ALICE, "identity", &sets);
    assert_eq!(r.status, 200);
    assert!(h.plane.memory().account(ALICE_ID, Pool::Heap).stats().peak > 0);
    assert_eq!(h.plane.memory().account(BOB_ID, Pool::Heap).stats().peak, 0);
}

/// A JSON body is decoded into new buffers (a 53 MB body with one 40 MB item once took a
/// node down with an allocation failure): the node must have room for the decoding (503
/// otherwise), and the tenant's budget for the decoded items (507 otherwise); both are
/// answers, and nothing stays charged.
#[test]
fn decoding_a_json_body_needs_room_on_the_node_and_in_the_budget() {
    let item = |n: usize| set("in", &[&"x".repeat(n)]);
    let limits = ControlLimits { heap_room: pappus_http::MemoryGate(|bytes| bytes < 10_000), ..Default::default() };
    let mut h = Harness::with_limits(limits);
    let r = h.invoke_json(ALICE, "identity", &[item(1_000)]);
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = h.invoke_json(ALICE, "identity", &[item(6_000)]);
    assert_error_contains(&r, 503, "out_of_memory", "no memory to decode a");
    assert_eq!(r.header_value("retry-after"), Some("1"));
    assert!(text(&r).contains("application/x-pappus-sets"), "{}", text(&r));
    assert_eq!(h.plane.live_invocations(), 0);

    let mut h = harness(20_000, 1 << 30);
    let r = h.invoke_json(ALICE, "identity", &[item(30_000)]);
    assert_eq!(r.status, 507, "{}", text(&r));
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), 0, "the refused decoding left a charge");
    let r = h.invoke_json(ALICE, "identity", &[item(1_000)]);
    assert_eq!(r.status, 200, "{}", text(&r));
}

#[test]
fn an_answer_the_node_has_no_room_for_is_503_not_a_crash() {
    let limits = ControlLimits { heap_room: pappus_http::MemoryGate(|bytes| bytes < 1000), ..Default::default() };
    let mut h = Harness::with_limits(limits);
    let r = h.call(request("POST", "/v1/invoke/identity", Some(ALICE), &[], &[b'x'; 100]));
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = h.call(request("POST", "/v1/invoke/identity", Some(ALICE), &[], &[b'x'; 2000]));
    assert_error_contains(&r, 503, "out_of_memory", "no memory for a");
    assert_eq!(r.header_value("retry-after"), Some("1"));
    assert_eq!(h.plane.live_invocations(), 0);
}

#[test]
fn a_direct_invocation_keeps_nothing_charged_once_it_answers() {
    // A direct invocation runs one instance without a compiled plan (`Execution::single`):
    // nothing of it stays charged to the tenant once it has answered, however often it runs.
    let mut h = harness(1 << 30, 1 << 30);
    let before = used(&h, ALICE_ID, Pool::Heap);
    let r = put_image(&mut h, ALICE, "f", &image(100));
    assert_eq!(r.status, 201, "{}", text(&r));
    let with_function = used(&h, ALICE_ID, Pool::Heap);
    assert!(with_function > before, "the function is not charged: {with_function}, {before} before");
    for _ in 0..3 {
        let r = h.invoke_json(ALICE, "f", &[set("in", &["x"])]);
        assert_eq!(r.status, 200, "{}", text(&r));
        assert_eq!(used(&h, ALICE_ID, Pool::Heap), with_function, "an invocation left a charge behind");
    }
    assert_eq!(used(&h, BOB_ID, Pool::Heap), 0);
    assert_eq!(h.delete(ALICE, "/v1/functions/f").status, 204);
    assert_eq!(used(&h, ALICE_ID, Pool::Heap), before, "something outlived the function");
}
