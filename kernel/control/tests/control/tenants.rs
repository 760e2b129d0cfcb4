//! Two tenants with the same names: each sees, invokes and deletes only its own.

use crate::common::*;
use model::{ImageDigest, TenantId};

const SPEC: &str = "engine=wasm&inputs=i&outputs=o";

#[test]
fn same_named_functions_stay_apart() {
    let mut h = Harness::new();
    assert_eq!(h.put_function(ALICE, "greet", SPEC, "const:from alice").status, 201);
    assert_eq!(h.put_function(BOB, "greet", SPEC, "const:from bob").status, 201, "created, not replaced");
    h.put_function(ALICE, "only-alice", SPEC, "echo");

    let digest = |r: &pappus_http::Response| text(r).split("\"digest\":\"").nth(1).unwrap()[..64].to_string();
    assert_eq!(digest(&h.get(ALICE, "/v1/functions/greet")), ImageDigest::of(b"FAKE:const:from alice").to_string());
    assert_eq!(digest(&h.get(BOB, "/v1/functions/greet")), ImageDigest::of(b"FAKE:const:from bob").to_string());

    let names = |r: &pappus_http::Response| -> Vec<String> {
        text(r).split("\"name\":\"").skip(1).map(|s| s[..s.find('"').unwrap()].to_string()).collect()
    };
    assert_eq!(names(&h.get(ALICE, "/v1/functions")), ["greet", "only-alice"]);
    assert_eq!(names(&h.get(BOB, "/v1/functions")), ["greet"]);

    let r = h.call(request("POST", "/v1/invoke/greet", Some(ALICE), &[("Accept", "application/octet-stream")], b""));
    assert_eq!(r.body, b"from alice");
    let r = h.call(request("POST", "/v1/invoke/greet", Some(BOB), &[("Accept", "application/octet-stream")], b""));
    assert_eq!(r.body, b"from bob");
    assert_eq!(h.runtime.runs.iter().map(|r| r.tenant).collect::<Vec<_>>(), [TenantId::new(0), TenantId::new(1)]);

    // Bob cannot see, invoke or delete Alice's function: the answers are those for a name
    // nobody registered.
    assert_error(&h.get(BOB, "/v1/functions/only-alice"), 404, "not_found", "no function named 'only-alice'");
    assert_error(&h.delete(BOB, "/v1/functions/only-alice"), 404, "not_found", "no function named 'only-alice'");
    let r = h.call(request("POST", "/v1/invoke/only-alice", Some(BOB), &[], b""));
    assert_error(&r, 404, "not_found", "no function or composition named 'only-alice'");
    let r = h.call(request("POST", "/v1/invoke/never-registered", Some(BOB), &[], b""));
    assert_error(&r, 404, "not_found", "no function or composition named 'never-registered'");

    // Deleting Bob's leaves Alice's.
    assert_eq!(h.delete(BOB, "/v1/functions/greet").status, 204);
    assert_eq!(h.get(ALICE, "/v1/functions/greet").status, 200);
    assert_eq!(h.get(BOB, "/v1/functions/greet").status, 404);
    assert_eq!(h.plane.counters().functions, 2);
}

#[test]
fn compositions_stay_apart_and_resolve_in_their_own_tenant() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", SPEC, "const:alice's f");
    let source = "function f (i) => (o);\ncomposition c (x) => (y) { f (i = all x) => (y = o); }";
    let r = h.put_composition(ALICE, "c", source);
    assert_eq!(
        text(&r),
        r#"{"name":"c","inputs":["x"],"outputs":["y"],"compositions":[{"name":"c","inputs":["x"],"outputs":["y"]}],"warnings":[]}"#
    );

    assert_error(&h.get(BOB, "/v1/compositions/c"), 404, "not_found", "no composition named 'c'");
    assert_eq!(text(&h.get(BOB, "/v1/compositions")), r#"{"compositions":[]}"#);
    assert_error(&h.delete(BOB, "/v1/compositions/c"), 404, "not_found", "no composition named 'c'");
    let r = h.invoke_json(BOB, "c", &[]);
    assert_error(&r, 404, "not_found", "no function or composition named 'c'");

    // Bob's own `c`, with the same program, cannot reach Alice's `f`: it warns on upload and
    // does not resolve when invoked.
    let r = h.put_composition(BOB, "c", source);
    assert_eq!(r.status, 201, "Bob's own, not a replacement of Alice's");
    assert!(text(&r).contains("`f` is neither a registered function nor a builtin"), "{}", text(&r));
    let r = h.invoke_json(BOB, "c", &[set("x", &["1"])]);
    assert_error(
        &r,
        409,
        "function_not_registered",
        "composition 'c' applies 'f', which is neither a registered function nor a builtin",
    );

    // Alice's still runs her own function.
    let r = h.invoke_json(ALICE, "c", &[set("x", &["1"])]);
    assert_eq!(text(&r), json_sets(&[set("y", &["alice's f"])]));
    assert_eq!(h.get(ALICE, "/v1/compositions/c").status, 200);
}
