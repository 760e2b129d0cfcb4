//! Instances the runtime runs elsewhere (other cores, the network): the plane starts them, goes on
//! answering, takes their results in any order, drops what it no longer needs; a full run queue
//! holds back the instances of invocations under way and refuses new invocations with 503 and
//! `Retry-After`.

use crate::common::*;
use control::{Reply, Ticket};
use model::Set;

const SHOUT: &str = "function up (line) => (loud);
function identity (in) => (out);
composition shout (lines) => (result) {
    up (line = each lines) => (loud = loud);
    identity (in = all loud) => (result = out);
}";

fn invoke(h: &mut Harness, name: &str, sets: &[Set]) -> Reply {
    let body = json_sets(sets);
    h.send(request(
        "POST",
        &format!("/v1/invoke/{name}"),
        Some(ALICE),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    ))
}

fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i}")).collect()
}

#[test]
fn results_in_any_order_keep_the_item_order() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_composition(ALICE, "shout", SHOUT);
    h.runtime.deferred = true;
    let words = words(64);
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let Reply::Pending(id) = invoke(&mut h, "shout", &[set("lines", &refs)]) else { panic!("answered at once") };
    // All 64 instances were handed to the runtime in one step; nothing is answered before they end.
    assert_eq!(h.runtime.queued.len(), 64);
    assert!(!h.poll_at(1_001), "nothing can move before the runtime reports");
    assert!(h.plane.take_response(id).is_none());
    h.runtime.finish_all(true);
    assert!(h.poll_at(1_002));
    let r = h.plane.take_response(id).expect("answered once every instance reported");
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    let upper_refs: Vec<&str> = upper.iter().map(String::as_str).collect();
    assert_eq!(decode_json(&r), [set("result", &upper_refs)]);
    assert!(h.runtime.cancelled.is_empty(), "nothing was left to cancel");
    assert_eq!(h.plane.live_invocations(), 0);
}

#[test]
fn a_failed_instance_cancels_the_others() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_function(ALICE, "boom", "engine=wasm&inputs=text&outputs=shout", "fault");
    let program = SHOUT.replace("up (line", "boom (line").replace("function up", "function boom");
    h.put_composition(ALICE, "mixed", &program.replace("shout", "mixed"));
    h.runtime.deferred = true;
    let Reply::Pending(id) = invoke(&mut h, "mixed", &[set("lines", &["a", "b", "c"])]) else { panic!() };
    // Only the first instance's result arrives: the invocation fails at once and the runtime is
    // told to drop the two still queued.
    let first = h.runtime.queued.remove(0);
    h.runtime.queued.truncate(0);
    h.runtime.queued.push(first);
    h.runtime.finish_all(false);
    h.poll_at(1_001);
    let r = h.plane.take_response(id).expect("failed at the first error");
    assert_eq!(r.status, 500, "{}", text(&r));
    assert_eq!(h.runtime.cancelled, [id.get()]);
    // A late result for it is ignored.
    h.runtime.completed.push_back((Ticket { invocation: id.get(), instance: 2 }, Ok(vec![set("o", &["late"])])));
    assert!(!h.poll_at(1_002));
    assert_eq!(h.plane.live_invocations(), 0);
}

#[test]
fn a_client_that_goes_away_cancels_its_instances() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.runtime.deferred = true;
    let Reply::Pending(id) = invoke(&mut h, "up", &[set("text", &["x"])]) else { panic!() };
    h.plane.cancel(id, &mut h.runtime);
    assert_eq!(h.runtime.cancelled, [id.get()]);
    assert!(h.runtime.queued.is_empty());
    assert_eq!(h.plane.counters().invocations_cancelled, 1);
}

#[test]
fn a_bounded_run_queue_holds_a_fan_out_back_without_failing_it() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_composition(ALICE, "shout", SHOUT);
    h.runtime.deferred = true;
    h.runtime.capacity = Some(3);
    let words = words(10);
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let Reply::Pending(id) = invoke(&mut h, "shout", &[set("lines", &refs)]) else { panic!() };
    let mut rounds = 0;
    let response = loop {
        assert!(h.runtime.queued.len() <= 3, "the runtime never holds more than it has room for");
        h.runtime.finish_all(rounds % 2 == 1);
        rounds += 1;
        h.poll_at(1_000 + rounds);
        if let Some(r) = h.plane.take_response(id) {
            break r;
        }
        assert!(rounds < 10, "stuck");
    };
    assert_eq!(rounds, 4, "10 instances through room for 3: four rounds");
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    let upper_refs: Vec<&str> = upper.iter().map(String::as_str).collect();
    assert_eq!(decode_json(&response), [set("result", &upper_refs)]);
}

#[test]
fn a_saturated_host_refuses_new_invocations_with_503_and_retry_after() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.runtime.full = true;
    let Reply::Now(r) = invoke(&mut h, "up", &[set("text", &["x"])]) else { panic!() };
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(r.header_value("retry-after"), Some("1"));
    assert!(text(&r).contains("\"saturated\""), "{}", text(&r));
    assert_eq!(h.plane.counters().invocations_rejected, 1);
}

#[test]
fn a_host_result_with_the_wrong_shape_is_bad_output() {
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.runtime.deferred = true;
    let Reply::Pending(id) = invoke(&mut h, "up", &[set("text", &["x"])]) else { panic!() };
    let (ticket, ..) = h.runtime.queued.pop().unwrap();
    h.runtime.completed.push_back((ticket, Ok(vec![])));
    h.poll_at(1_001);
    let r = h.plane.take_response(id).unwrap();
    assert_eq!(r.status, 502, "{}", text(&r));
}

#[test]
fn http_runs_on_the_host_and_reports_per_item_errors() {
    let mut h = Harness::new();
    h.put_composition(
        ALICE,
        "fetch",
        "function http (requests) => (responses, bodies, errors);
         composition fetch (urls) => (bodies, errors) {
             http (requests = all urls) => (bodies = bodies, errors = errors);
         }",
    );
    for deferred in [false, true] {
        h.runtime.deferred = deferred;
        let mut urls = set("urls", &["ok:hello", "err:refused: 10.0.2.2:9"]);
        urls.items[0].name = "a".into();
        urls.items[1].name = "b".into();
        let r = match invoke(&mut h, "fetch", &[urls]) {
            Reply::Now(r) => r,
            Reply::Pending(id) => {
                h.poll_at(1_001);
                h.plane.take_response(id).expect("the runtime reported")
            }
        };
        assert_eq!(r.status, 200, "{}", text(&r));
        let sets = decode_json(&r);
        assert_eq!((sets[0].items[0].name.as_str(), item_texts(&sets[0])), ("a", vec!["hello".to_string()]));
        assert_eq!(
            (sets[1].items[0].name.as_str(), item_texts(&sets[1])),
            ("b", vec!["refused: 10.0.2.2:9".to_string()])
        );
    }
}

#[test]
fn dandelions_http_function_runs_unchanged_with_its_set_layout() {
    let mut h = Harness::new();
    // Dandelion's own declaration and set names.
    h.put_composition(
        ALICE,
        "fetch",
        "function HTTP (requests) => (headers, bodies);
         composition fetch (requests) => (headers, bodies) {
             HTTP (requests = each requests) => (headers = headers, bodies = bodies);
         }",
    );
    for deferred in [false, true] {
        h.runtime.deferred = deferred;
        let mut requests = set("requests", &["ok:hello", "ok:world"]);
        requests.items[0].name = "a".into();
        requests.items[0].key = Some(4);
        requests.items[1].name = "b".into();
        let r = match invoke(&mut h, "fetch", &[requests.clone()]) {
            Reply::Now(r) => r,
            Reply::Pending(id) => {
                h.poll_at(1_001);
                h.plane.take_response(id).expect("the runtime reported")
            }
        };
        assert_eq!(r.status, 200, "{}", text(&r));
        let sets = decode_json(&r);
        assert_eq!((sets[0].name.as_str(), sets[1].name.as_str()), ("headers", "bodies"));
        assert_eq!(
            item_texts(&sets[0]),
            ["HTTP/1.1 200 OK\ncontent-length:5\n", "HTTP/1.1 200 OK\ncontent-length:5\n"]
        );
        assert_eq!(item_texts(&sets[1]), ["hello", "world"]);
        assert_eq!((sets[1].items[0].name.as_str(), sets[1].items[0].key), ("a", Some(4)));
        assert_eq!((sets[0].items[1].name.as_str(), sets[0].items[1].key), ("b", None));

        // One failed request fails the function, as in Dandelion.
        let mut failing = requests;
        failing.items[1].data = "err:refused: 10.0.2.2:9".as_bytes().into();
        let r = match invoke(&mut h, "fetch", &[failing]) {
            Reply::Now(r) => r,
            Reply::Pending(id) => {
                h.poll_at(1_002);
                h.plane.take_response(id).expect("the runtime reported")
            }
        };
        assert_error_contains(&r, 500, "function_failed", "HTTP: refused: 10.0.2.2:9");
    }
}

#[test]
fn an_invocation_past_its_deadline_is_504_and_its_instances_are_dropped() {
    let mut h = Harness::with_limits(control::ControlLimits { max_invocation_ms: 50, ..Default::default() });
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_composition(ALICE, "shout", SHOUT);
    h.runtime.deferred = true;
    let Reply::Pending(id) = invoke(&mut h, "shout", &[set("lines", &["a", "b"])]) else { panic!() };
    assert_eq!(h.plane.next_poll_ms(), Some(1_050), "the kernel must wake for the deadline");
    assert!(!h.poll_at(1_049));
    assert!(h.poll_at(1_050));
    let r = h.plane.take_response(id).expect("answered at the deadline");
    assert_eq!(r.status, 504, "{}", text(&r));
    assert!(text(&r).contains("deadline of 50 ms"), "{}", text(&r));
    assert_eq!(h.runtime.cancelled, [id.get()]);
    assert_eq!(h.plane.counters().invocations_timed_out, 1);
}

#[test]
fn invocations_are_counted_by_target_and_outcome() {
    use control::Outcome;
    let mut h = Harness::new();
    h.put_function(ALICE, "up", "engine=wasm&inputs=text&outputs=shout", "upper");
    h.put_function(ALICE, "boom", "engine=wasm&inputs=text&outputs=shout", "fault");
    for name in ["up", "up", "boom"] {
        let Reply::Now(_) = invoke(&mut h, name, &[set("text", &["x"])]) else { panic!() };
    }
    h.runtime.deferred = true;
    let Reply::Pending(id) = invoke(&mut h, "up", &[set("text", &["x"])]) else { panic!() };
    h.plane.cancel(id, &mut h.runtime);
    let stats = h.plane.invocation_stats();
    let counts: Vec<(&str, Outcome, u64)> = stats.counts().map(|(_, name, o, n)| (name, o, n)).collect();
    assert_eq!(counts, [("boom", Outcome::Failed, 1), ("up", Outcome::Ok, 2), ("up", Outcome::Cancelled, 1)]);
    assert_eq!(stats.latency_ms().count(), 3, "answered invocations have a latency; cancelled ones do not");
    // Refused before it started: counted against a name the tenant has, not against unknown ones.
    h.runtime.full = true;
    let Reply::Now(r) = invoke(&mut h, "up", &[set("text", &["x"])]) else { panic!() };
    assert_eq!(r.status, 503);
    let Reply::Now(r) = invoke(&mut h, "nobody", &[set("text", &["x"])]) else { panic!() };
    assert_eq!(r.status, 503);
    let counts: Vec<(&str, Outcome, u64)> =
        h.plane.invocation_stats().counts().map(|(_, name, o, n)| (name, o, n)).collect();
    assert!(counts.contains(&("up", Outcome::Rejected, 1)), "{counts:?}");
    assert!(!counts.iter().any(|c| c.0 == "nobody"), "{counts:?}");
}
