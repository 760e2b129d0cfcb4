//! `POST /v1/invoke/{name}`: formats, compositions of builtins and functions, fan-out, nesting,
//! pending invocations, failures and refusals.

use crate::common::*;
use model::wire::binary;
use model::{Bytes, Item, Set};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const BINARY: (&str, &str) = ("Content-Type", "application/x-pappus-sets");

fn post(token: &str, name: &str, headers: &[(&str, &str)], body: &[u8]) -> pappus_http::Request {
    request("POST", &format!("/v1/invoke/{name}"), Some(token), headers, body)
}

const CHAIN: &str = "function identity (in) => (out);
function concat (a, b) => (out);
composition chain (a, b) => (out) {
    identity (in = all a) => (x = out);
    concat (a = all x, b = all b) => (out = out);
}";

#[test]
fn a_builtin_invoked_directly_with_json() {
    let mut h = Harness::new();
    let r = h.call(post(
        ALICE,
        "identity",
        &[JSON],
        br#"{"sets":{"in":[{"name":"x","key":7,"data":"aGk="},{"data":""}]}}"#,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), r#"{"sets":{"out":[{"name":"x","key":7,"data":"aGk="},{"name":"","data":""}]}}"#);
    assert_eq!(r.header_value("content-type"), Some("application/json"));
    assert_eq!(h.plane.counters().invocations_ok, 1);
}

#[test]
fn raw_in_raw_out_is_byte_exact() {
    let mut h = Harness::new();
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let r = h.call(post(
        ALICE,
        "identity",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/octet-stream")],
        &data,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.header_value("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, data);
    // Without Content-Type the body is raw too; the answer defaults to JSON.
    let r = h.call(post(ALICE, "identity", &[], b"hi"));
    assert_eq!(text(&r), r#"{"sets":{"out":[{"name":"","data":"aGk="}]}}"#);
}

#[test]
fn binary_in_binary_out_is_byte_exact() {
    let mut h = Harness::new();
    h.put_composition(ALICE, "chain", CHAIN);
    let mut a = set("a", &["1", "2"]);
    a.items[1].key = Some(0x102);
    a.items[1].name = "second".into();
    let input = binary::encode(&[set("b", &["3"]), a]).unwrap();
    let r = h.call(post(ALICE, "chain", &[BINARY, ("Accept", "application/x-pappus-sets")], &input));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header_value("content-type"), Some("application/x-pappus-sets"));
    let mut expected = set("out", &["1", "2", "3"]);
    expected.items[1].key = Some(0x102);
    expected.items[1].name = "second".into();
    assert_eq!(r.body, binary::encode(&[expected]).unwrap());
}

#[test]
fn a_chain_of_builtins_with_json() {
    let mut h = Harness::new();
    h.put_composition(ALICE, "chain", CHAIN);
    let r = h.invoke_json(ALICE, "chain", &[set("a", &["a1", "a2"]), set("b", &["b1"])]);
    assert_eq!((r.status, text(&r)), (200, json_sets(&[set("out", &["a1", "a2", "b1"])]).as_str()));
    // Raw: the body is the one item of the first input; `b` is empty, which skips `concat`.
    let r = h.call(post(ALICE, "chain", &[("Accept", "application/octet-stream")], b"raw"));
    assert_eq!((r.status, r.body.as_slice()), (406, &br#"{"error":{"code":"not_acceptable","message":"a raw response needs exactly one output set with exactly one item, but there are 1 sets and 0 items; ask for JSON instead"}}"#[..]));
    let r = h.call(post(ALICE, "chain", &[], b"raw"));
    assert_eq!(text(&r), json_sets(&[set("out", &[])]));
}

#[test]
fn each_fans_out_over_100_items_in_order() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_composition(
        ALICE,
        "shout",
        "function up (line) => (loud);
         function identity (in) => (out);
         composition shout (lines) => (result) {
             up (line = each lines) => (loud = loud);
             identity (in = all loud) => (result = out);
         }",
    );
    let words: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let r = h.invoke_json(ALICE, "shout", &[set("lines", &refs)]);
    assert_eq!(r.status, 200, "{}", text(&r));
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    let upper_refs: Vec<&str> = upper.iter().map(String::as_str).collect();
    assert_eq!(decode_json(&r), [set("result", &upper_refs)]);
    assert_eq!(h.runtime.runs.len(), 100);
    // Each instance saw one item in a set named as the function declares it, not as the program does.
    assert_eq!(h.runtime.runs[7].inputs, ["text=word7"]);
    assert!(h.runtime.runs.iter().all(|run| run.function == "up" && run.tenant == model::TenantId::new(0)));
    // The same through the binary format.
    let input = binary::encode(&[set("lines", &refs)]).unwrap();
    let r = h.call(post(ALICE, "shout", &[BINARY, ("Accept", "application/x-pappus-sets")], &input));
    assert_eq!(decode_binary(&r), [set("result", &upper_refs)]);
}

#[test]
fn nested_compositions_run_inside_one_program() {
    let mut h = Harness::new();
    h.put_composition(
        ALICE,
        "outer",
        "function concat (a, b) => (out);
         composition pair (x, y) => (both) { concat (a = all x, b = all y) => (both = out); }
         composition outer (xs, y) => (r) {
             pair (x = each xs, y = all y) => (r = both);
         }",
    );
    let r = h.invoke_json(ALICE, "outer", &[set("xs", &["1", "2", "3"]), set("y", &["-"])]);
    assert_eq!(text(&r), json_sets(&[set("r", &["1", "-", "2", "-", "3", "-"])]));
    // The inner composition is registered too (as Dandelion registers every composition of a
    // source), and runs on its own.
    assert_eq!(h.get(ALICE, "/v1/compositions/pair").status, 200);
    let r = h.invoke_json(ALICE, "pair", &[set("x", &["1"]), set("y", &["-"])]);
    assert_eq!(text(&r), json_sets(&[set("both", &["1", "-"])]));
}

#[test]
fn functions_bind_sets_by_position() {
    let mut h = Harness::new();
    h.put_function(ALICE, "swap", "engine=wasm&inputs=first,second&outputs=left,right", "echo");
    h.put_composition(
        ALICE,
        "c",
        "function swap (p, q) => (r, s);
         composition c (a, b) => (x, y) { swap (p = all a, q = all b) => (x = s, y = r); }",
    );
    let r = h.invoke_json(ALICE, "c", &[set("a", &["A"]), set("b", &["B"])]);
    assert_eq!(text(&r), json_sets(&[set("x", &["B"]), set("y", &["A"])]));
    assert_eq!(h.runtime.runs[0].inputs, ["first=A", "second=B"]);
}

/// Direct invocations reuse their compiled plan; one replaced by a function of other set counts
/// must not run on the old plan, and many names (over the per-tenant cache) all still run.
#[test]
fn direct_invocations_follow_a_replaced_signature() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", "engine=wasm&inputs=A&outputs=C", "echo");
    for _ in 0..2 {
        let r = h.invoke_json(ALICE, "f", &[set("A", &["1"])]);
        assert_eq!(text(&r), json_sets(&[set("C", &["1"])]));
    }
    h.put_function(ALICE, "f", "engine=wasm&inputs=A,B&outputs=C,D", "echo");
    let r = h.invoke_json(ALICE, "f", &[set("A", &["1"]), set("B", &["2"])]);
    assert_eq!(text(&r), json_sets(&[set("C", &["1"]), set("D", &["2"])]));
    // Bob's function of the same name has its own signature and plan.
    h.put_function(BOB, "f", "engine=wasm&inputs=X&outputs=Y", "echo");
    let r = h.invoke_json(BOB, "f", &[set("X", &["3"])]);
    assert_eq!(text(&r), json_sets(&[set("Y", &["3"])]));
    for i in 0..70 {
        let name = format!("g{i}");
        h.put_function(ALICE, &name, "engine=wasm&inputs=A&outputs=C", "echo");
        let r = h.invoke_json(ALICE, &name, &[set("A", &["x"])]);
        assert_eq!(text(&r), json_sets(&[set("C", &["x"])]), "{name}");
    }
    let r = h.invoke_json(ALICE, "f", &[set("A", &["1"]), set("B", &["2"])]);
    assert_eq!(text(&r), json_sets(&[set("C", &["1"]), set("D", &["2"])]));
}

#[test]
fn a_function_invoked_directly_gets_every_input_whole() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", "engine=wasm&inputs=A,B&outputs=C,D", "echo");
    // B left out: an empty set, and the function still runs (inputs are `optional all`).
    let r = h.invoke_json(ALICE, "f", &[set("A", &["1", "2"])]);
    assert_eq!(text(&r), json_sets(&[set("C", &["1", "2"]), set("D", &[])]));
    assert_eq!(h.runtime.runs[0].inputs, ["A=1,2", "B="]);
    let r = h.invoke_json(ALICE, "f", &[]);
    assert_eq!(text(&r), json_sets(&[set("C", &[]), set("D", &[])]));
    // A function without inputs takes an empty raw body, and refuses a non-empty one.
    h.put_function(ALICE, "gen", "engine=wasm&outputs=o", "const:made");
    let r = h.call(post(ALICE, "gen", &[("Accept", "application/octet-stream")], b""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"made"[..]));
    let r = h.call(post(ALICE, "gen", &[], b"x"));
    assert_error(&r, 400, "unknown_set", "'gen' takes no input sets, so a raw body has nowhere to go");
}

#[test]
fn sleep_stays_pending_until_now_passes_its_deadline() {
    let mut h = Harness::new();
    h.put_composition(
        ALICE,
        "nap",
        "function sleep (in) => (out);
         function identity (in) => (out);
         composition nap (ms) => (out) {
             sleep (in = each ms) => (slept = out);
             identity (in = all slept) => (out = out);
         }",
    );
    let id = h.pending(post(ALICE, "nap", &[JSON], json_sets(&[set("ms", &["50", "20"])]).as_bytes()));
    assert_eq!(h.plane.live_invocations(), 1);
    assert_eq!(h.plane.next_poll_ms(), Some(1_020));
    assert!(h.plane.take_response(id).is_none());
    assert!(!h.poll_at(1_019), "nothing is due yet");
    assert!(h.poll_at(1_020), "the 20 ms sleep ends");
    assert!(h.plane.take_response(id).is_none(), "the 50 ms sleep has not");
    assert_eq!(h.plane.next_poll_ms(), Some(1_050));
    assert!(h.poll_at(1_060));
    assert_eq!(h.plane.next_poll_ms(), None);
    assert_eq!(h.plane.live_invocations(), 1, "finished, not yet taken");
    let r = h.plane.take_response(id).expect("finished");
    assert_eq!(text(&r), json_sets(&[set("out", &["50", "20"])]));
    assert!(h.plane.take_response(id).is_none(), "only once");
    assert_eq!(h.plane.live_invocations(), 0);
    assert_eq!(h.plane.counters().invocations_ok, 1);
}

#[test]
fn sleep_invoked_directly_and_zero_ms() {
    let mut h = Harness::new();
    let id = h.pending(post(ALICE, "sleep", &[("Accept", "application/octet-stream")], b"10000"));
    assert_eq!(h.plane.next_poll_ms(), Some(11_000));
    h.poll_at(11_000);
    assert_eq!(h.plane.take_response(id).unwrap().body, b"10000");
    let r = h.call(post(ALICE, "sleep", &[("Accept", "application/octet-stream")], b"0"));
    assert_eq!(r.body, b"0");
    let r = h.call(post(ALICE, "sleep", &[], b"10001"));
    assert_error(
        &r,
        500,
        "function_failed",
        "function 'sleep' failed: sleep: \"10001\" is not a whole number of milliseconds in 0..=10000",
    );
}

#[test]
fn cancel_drops_the_invocation_and_its_sets() {
    let mut h = Harness::new();
    let id = h.pending(post(ALICE, "sleep", &[], b"100"));
    let other = h.pending(post(ALICE, "sleep", &[], b"100"));
    assert_ne!(id, other);
    assert_eq!(h.plane.live_invocations(), 2);
    h.plane.cancel(id, &mut h.runtime);
    assert_eq!(h.plane.live_invocations(), 1);
    h.poll_at(5_000);
    assert!(h.plane.take_response(id).is_none(), "a cancelled invocation never answers");
    // A finished but untaken response is dropped by cancel too.
    h.plane.cancel(other, &mut h.runtime);
    assert_eq!(h.plane.live_invocations(), 0);
    assert!(h.plane.take_response(other).is_none());
    h.plane.cancel(id, &mut h.runtime); // unknown now: ignored
    let c = h.plane.counters();
    assert_eq!((c.invocations_cancelled, c.invocations_ok, c.invocations_live), (1, 1, 0));
}

#[test]
fn a_failing_instance_names_itself() {
    let mut h = Harness::new();
    h.put_composition(
        ALICE,
        "pipeline",
        "function identity (in) => (out);
         function fail (in) => (out);
         composition pipeline (in) => (out) {
             identity (in = all in) => (mid = out);
             fail (in = each mid) => (out = out);
         }",
    );
    let r = h.invoke_json(ALICE, "pipeline", &[set("in", &["boom", "bang"])]);
    assert_error(&r, 500, "function_failed", "pipeline: app #2 'fail' instance 0: boom");
    let r = h.call(post(ALICE, "fail", &[JSON], br#"{"sets":{}}"#));
    assert_error(&r, 500, "function_failed", "function 'fail' failed: fail called");
    assert_eq!(h.plane.counters().invocations_failed, 2);
}

#[test]
fn host_errors_keep_their_status_and_code() {
    let mut h = Harness::new();
    h.put_function(ALICE, "crash", "engine=mpk&inputs=i&outputs=o", "fault");
    h.put_function(ALICE, "slow", "engine=mpk&inputs=i&outputs=o", "timeout");
    h.put_function(ALICE, "extra", "engine=mpk&inputs=i&outputs=o", "extra");
    h.put_function(ALICE, "badname", "engine=mpk&inputs=i&outputs=o", "badname");
    assert_error(
        &h.call(post(ALICE, "crash", &[], b"")),
        500,
        "function_failed",
        "function 'crash' failed: page fault at 0x0 (rip 0x4010a2)",
    );
    assert_error(
        &h.call(post(ALICE, "slow", &[], b"")),
        504,
        "timeout",
        "function 'slow' failed: ran past its budget of 1000 ms",
    );
    assert_error(
        &h.call(post(ALICE, "extra", &[], b"")),
        502,
        "bad_output",
        "function 'extra' failed: returned 2 output set(s), its declaration has 1",
    );
    assert_error(
        &h.call(post(ALICE, "badname", &[], b"")),
        502,
        "bad_output",
        "function 'badname' failed: invalid outputs: sets.o[0].name: the name is 300 bytes long, at most 255 are allowed",
    );
    h.put_composition(
        ALICE,
        "c",
        "function slow (i) => (o); composition c (x) => (y) { slow (i = each x) => (y = o); }",
    );
    let r = h.invoke_json(ALICE, "c", &[set("x", &["1", "2"])]);
    assert_error(&r, 504, "timeout", "c: app #1 'slow' instance 0: ran past its budget of 1000 ms");
    assert_eq!(h.runtime.runs.len(), 5, "the second instance never ran");
    let c = h.plane.counters();
    assert_eq!((c.invocations_failed, c.invocations_timed_out), (3, 2));
}

#[test]
fn malformed_inputs_are_400_naming_the_place() {
    let mut h = Harness::new();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = h.call(post(ALICE, "identity", &[JSON], format!(r#"{{"sets":{{"in":{deep}}}}}"#).as_bytes()));
    assert_error_contains(&r, 400, "bad_input", "invalid input: sets.in");
    let r = h.call(post(ALICE, "identity", &[JSON], deep.as_bytes()));
    assert_error_contains(&r, 400, "bad_input", "invalid input: ");
    let r = h.call(post(ALICE, "identity", &[JSON], br#"{"sets":{"in":[{"data":"aGk=#"}]}}"#));
    assert_error(
        &r,
        400,
        "bad_input",
        "invalid input: sets.in[0].data: invalid base64 at byte 4: not a base64 character (standard alphabet, no line breaks)",
    );
    let r = h.call(post(ALICE, "identity", &[BINARY], b"PSET\x02\0\0\0\0\0"));
    assert_error(&r, 400, "bad_input", "invalid input: header: unsupported version 2 (this build reads version 1)");
    let r = h.call(post(ALICE, "identity", &[JSON], b"not json"));
    assert_error_contains(&r, 400, "bad_input", "expected");
}

#[test]
fn sets_must_match_the_declaration() {
    let mut h = Harness::new();
    h.put_composition(ALICE, "chain", CHAIN);
    let r = h.invoke_json(ALICE, "chain", &[set("a", &[]), set("c", &[]), set("zz", &[])]);
    assert_error(&r, 400, "unknown_set", "'chain' has no input set named 'c', 'zz' (its inputs: a, b)");
    let r = h.invoke_json(ALICE, "concat", &[set("in", &["x"])]);
    assert_error(&r, 400, "unknown_set", "'concat' has no input set named 'in' (its inputs: a, b)");
    // A missing set is empty: concat of `a` alone.
    let r = h.invoke_json(ALICE, "concat", &[set("b", &["only b"])]);
    assert_eq!(text(&r), json_sets(&[set("out", &["only b"])]));
}

#[test]
fn raw_output_needs_exactly_one_item() {
    let mut h = Harness::new();
    h.put_function(ALICE, "two", "engine=wasm&inputs=i&outputs=x,y", "echo");
    let r = h.call(post(ALICE, "two", &[("Accept", "application/octet-stream")], b"data"));
    assert_error(
        &r,
        406,
        "not_acceptable",
        "'two' has 2 output sets; application/octet-stream needs exactly one output item (ask for JSON instead)",
    );
    assert!(h.runtime.runs.is_empty(), "refused before running");
    let r = h.call(post(
        ALICE,
        "identity",
        &[JSON, ("Accept", "application/octet-stream")],
        json_sets(&[set("in", &["a", "b"])]).as_bytes(),
    ));
    assert_error(
        &r,
        406,
        "not_acceptable",
        "a raw response needs exactly one output set with exactly one item, but there are 1 sets and 2 items; ask for JSON instead",
    );
    // The first of our types in Accept wins; others are ignored.
    let r = h.call(post(
        ALICE,
        "identity",
        &[("Accept", "text/html, application/octet-stream;q=0.1, application/json")],
        b"z",
    ));
    assert_eq!(r.body, b"z");
}

#[test]
fn unknown_names_are_404() {
    let mut h = Harness::new();
    let r = h.call(post(ALICE, "nothing", &[], b""));
    assert_error(&r, 404, "not_found", "no function or composition named 'nothing'");
    assert_eq!(h.plane.counters().invocations_rejected, 1);
}

#[test]
fn compositions_resolve_their_functions_when_invoked() {
    let mut h = Harness::new();
    let source = "function later (x) => (y);\ncomposition c (x) => (y) { later (x = all x) => (y = y); }";
    h.put_composition(ALICE, "c", source);
    let r = h.invoke_json(ALICE, "c", &[set("x", &["1"])]);
    assert_error(
        &r,
        409,
        "function_not_registered",
        "composition 'c' applies 'later', which is neither a registered function nor a builtin",
    );
    h.put_function(ALICE, "later", "engine=wasm&inputs=i&outputs=o", "upper");
    let r = h.invoke_json(ALICE, "c", &[set("x", &["abc"])]);
    assert_eq!(text(&r), json_sets(&[set("y", &["ABC"])]));
    // Re-registered with another shape, the composition no longer fits.
    h.put_function(ALICE, "later", "engine=wasm&inputs=i,j&outputs=o", "upper");
    let r = h.invoke_json(ALICE, "c", &[set("x", &["abc"])]);
    assert_error(
        &r,
        409,
        "signature_mismatch",
        "'later' is declared with 1 input(s) and 1 output(s), but the registered function has 2 and 1",
    );
    // Deleted: not registered any more.
    h.delete(ALICE, "/v1/functions/later");
    assert_eq!(h.invoke_json(ALICE, "c", &[set("x", &["abc"])]).status, 409);
}

#[test]
fn a_replaced_function_does_not_change_a_running_invocation() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", "engine=wasm&inputs=i&outputs=o", "upper");
    h.put_composition(
        ALICE,
        "c",
        "function f (i) => (o);
         function sleep (in) => (out);
         composition c (ms) => (y) { sleep (in = all ms) => (slept = out); f (i = all slept) => (y = o); }",
    );
    let id = h.pending(post(ALICE, "c", &[], b"5"));
    h.put_function(ALICE, "f", "engine=wasm&inputs=i&outputs=o", "const:new");
    h.poll_at(2_000);
    let r = h.plane.take_response(id).unwrap();
    assert_eq!(text(&r), json_sets(&[set("y", &["5"])]), "upper-casing \"5\" is \"5\": the old image ran");
    assert_eq!(h.invoke_json(ALICE, "f", &[set("i", &["x"])]).body, json_sets(&[set("o", &["new"])]).into_bytes());
}

#[test]
fn keyed_items_and_names_survive_the_round_trip() {
    let mut h = Harness::new();
    let input = Set {
        name: "in".into(),
        items: vec![
            Item { name: "k1".into(), key: Some(1), data: Bytes::from(&b"\x00\xff"[..]) },
            Item { name: "é".into(), key: Some(u64::MAX), data: Bytes::empty() },
        ],
    };
    let r = h.invoke_json(ALICE, "identity", std::slice::from_ref(&input));
    let out = decode_json(&r);
    assert_eq!(out[0].items, input.items);
    assert_eq!(out[0].name, "out");
}
