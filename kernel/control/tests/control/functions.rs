//! `/v1/functions`: register, replace, describe, list, delete, and every refusal.

use crate::common::*;
use model::ImageDigest;

const SPEC: &str = "engine=wasm&inputs=A,B&outputs=C&memory=1MiB&timeout_ms=500";

fn decl(name: &str, image: &str) -> String {
    format!(
        r#"{{"name":"{name}","engine":"wasm","digest":"{}","inputs":["A","B"],"outputs":["C"],"memory":1048576,"timeout_ms":500}}"#,
        ImageDigest::of(image.as_bytes())
    )
}

#[test]
fn put_creates_then_replaces() {
    let mut h = Harness::new();
    let created = h.put_function(ALICE, "f", SPEC, "echo");
    assert_eq!(created.status, 201);
    assert_eq!(text(&created), decl("f", "FAKE:echo"));
    assert_eq!(created.header_value("location"), Some("/v1/functions/f"));
    assert_eq!(created.header_value("content-type"), Some("application/json"));
    assert_eq!(h.runtime.prepared, ["f"]);

    let replaced = h.put_function(ALICE, "f", SPEC, "upper");
    assert_eq!(replaced.status, 200);
    assert_eq!(text(&replaced), decl("f", "FAKE:upper"));
    assert_eq!(replaced.header_value("location"), None);

    let got = h.get(ALICE, "/v1/functions/f");
    assert_eq!((got.status, text(&got)), (200, decl("f", "FAKE:upper").as_str()));
    assert_eq!(h.plane.counters().functions, 1);
}

#[test]
fn defaults_apply_when_the_query_leaves_them_out() {
    let mut h = Harness::new();
    let r = h.put_function(ALICE, "g", "engine=native&outputs=out", "echo");
    assert_eq!(
        text(&r),
        format!(
            r#"{{"name":"g","engine":"native","digest":"{}","inputs":[],"outputs":["out"],"memory":16777216,"timeout_ms":1000}}"#,
            ImageDigest::of(b"FAKE:echo")
        )
    );
}

#[test]
fn list_is_sorted_by_name_and_shows_only_the_tenants_functions() {
    let mut h = Harness::new();
    let empty = h.get(ALICE, "/v1/functions");
    assert_eq!((empty.status, text(&empty)), (200, r#"{"functions":[]}"#));
    for name in ["zeta", "alpha", "Mid"] {
        h.put_function(ALICE, name, SPEC, "echo");
    }
    let list = h.get(ALICE, "/v1/functions");
    assert_eq!(
        text(&list),
        format!(
            r#"{{"functions":[{},{},{}]}}"#,
            decl("Mid", "FAKE:echo"),
            decl("alpha", "FAKE:echo"),
            decl("zeta", "FAKE:echo")
        )
    );
}

#[test]
fn delete_answers_204_then_404() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", SPEC, "echo");
    let deleted = h.delete(ALICE, "/v1/functions/f");
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    assert_eq!(h.plane.counters().functions, 0);
    assert_error(&h.get(ALICE, "/v1/functions/f"), 404, "not_found", "no function named 'f'");
    assert_error(&h.delete(ALICE, "/v1/functions/f"), 404, "not_found", "no function named 'f'");
    assert_error(&h.get(ALICE, "/v1/functions/never"), 404, "not_found", "no function named 'never'");
}

#[test]
fn bad_specs_are_400_naming_the_parameter() {
    let mut h = Harness::new();
    let cases = [
        ("outputs=C", "engine: missing (one of wasm, mpk, paging, native)"),
        ("engine=wasm", "outputs: missing (a function needs at least one output set)"),
        ("engine=builtin&outputs=C", "engine: builtin functions are part of the platform and cannot be uploaded"),
        ("engine=jvm&outputs=C", "engine: unknown engine \"jvm\" (one of wasm, mpk, paging, native)"),
        (
            "engine=wasm&outputs=C&memory=lots",
            "memory: \"lots\" is not a size (write bytes, or a number with B, KiB, MiB or GiB)",
        ),
        (
            "engine=wasm&outputs=C&colour=red",
            "unknown parameter \"colour\" (known: engine, inputs, outputs, memory, timeout_ms)",
        ),
    ];
    for (query, message) in cases {
        let r = h.call(request("PUT", &format!("/v1/functions/f?{query}"), Some(ALICE), &[], b"FAKE:echo"));
        assert_error(&r, 400, "bad_spec", message);
    }
    let r = h.call(request("PUT", "/v1/functions/f", Some(ALICE), &[], b"FAKE:echo"));
    assert_error(&r, 400, "bad_spec", "engine: missing (one of wasm, mpk, paging, native)");
    assert!(h.runtime.prepared.is_empty(), "the engine never sees a refused spec");
    assert_eq!(h.plane.counters().functions, 0);
}

#[test]
fn the_engine_refusing_the_image_is_400_with_its_message() {
    let mut h = Harness::new();
    let r = h.call(request("PUT", &format!("/v1/functions/f?{SPEC}"), Some(ALICE), &[], b"\0asm garbage"));
    assert_error(&r, 400, "bad_image", "not a fake module: magic bytes missing");
    let r = h.call(request("PUT", &format!("/v1/functions/f?{SPEC}"), Some(ALICE), &[], b""));
    assert_error(&r, 400, "bad_image", "the function image (the request body) is empty");
    assert_error(&h.get(ALICE, "/v1/functions/f"), 404, "not_found", "no function named 'f'");
}

#[test]
fn builtin_names_are_reserved_but_described() {
    let mut h = Harness::new();
    for name in ["identity", "concat", "fail", "sleep"] {
        let r = h.call(request("PUT", &format!("/v1/functions/{name}?{SPEC}"), Some(ALICE), &[], b"FAKE:echo"));
        assert_error(&r, 409, "reserved", &format!("'{name}' is reserved for a platform function"));
        let r = h.call(request("PUT", &format!("/v1/compositions/{name}"), Some(ALICE), &[], b""));
        assert_error(&r, 409, "reserved", &format!("'{name}' is reserved for a platform function"));
        let r = h.delete(ALICE, &format!("/v1/functions/{name}"));
        assert_error(&r, 409, "reserved", &format!("'{name}' is a platform function and cannot be deleted"));
    }
    let r = h.get(BOB, "/v1/functions/concat");
    assert_eq!(
        (r.status, text(&r)),
        (200, r#"{"name":"concat","engine":"builtin","inputs":["a","b"],"outputs":["out"]}"#)
    );
    let r = h.get(BOB, "/v1/functions");
    assert_eq!(text(&r), r#"{"functions":[]}"#, "listings show the tenant's own functions only");
}

#[test]
fn functions_and_compositions_share_a_namespace() {
    let mut h = Harness::new();
    h.put_function(ALICE, "f", SPEC, "echo");
    let r = h.call(request(
        "PUT",
        "/v1/compositions/f",
        Some(ALICE),
        &[],
        b"function identity (in) => (out); composition f (x) => (y) { identity (in = all x) => (y = out); }",
    ));
    assert_error(&r, 409, "name_taken", "a function is named 'f'; functions and compositions share one namespace");
    h.put_composition(
        ALICE,
        "c",
        "function identity (in) => (out); composition c (x) => (y) { identity (in = all x) => (y = out); }",
    );
    let r = h.call(request("PUT", &format!("/v1/functions/c?{SPEC}"), Some(ALICE), &[], b"FAKE:echo"));
    assert_error(&r, 409, "name_taken", "a composition is named 'c'; functions and compositions share one namespace");
    // Another tenant's names are no obstacle.
    assert_eq!(h.put_function(BOB, "c", SPEC, "echo").status, 201);
}

#[test]
fn invalid_names_are_400() {
    let mut h = Harness::new();
    let cases = [
        (
            "/v1/functions/.hidden",
            "invalid name '.hidden': the name starts with '.'; it must start with a letter or digit",
        ),
        ("/v1/functions/a%20b", "invalid name 'a%20b': the name has '%' at byte 1, which is not allowed"),
        ("/v1/compositions/-x", "invalid name '-x': the name starts with '-'; it must start with a letter or digit"),
    ];
    for (path, message) in cases {
        assert_error(&h.get(ALICE, path), 400, "bad_name", message);
    }
    let long = format!("/v1/invoke/{}", "a".repeat(65));
    assert_error(
        &h.call(request("POST", &long, Some(ALICE), &[], b"")),
        400,
        "bad_name",
        &format!("invalid name '{}…': the name is 65 bytes long, at most 64 are allowed", "a".repeat(64)),
    );
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let mut h = Harness::new();
    let cases = [
        ("POST", "/v1/functions/f", "GET, PUT, DELETE"),
        ("PUT", "/v1/functions", "GET"),
        ("DELETE", "/v1/compositions", "GET"),
        ("GET", "/v1/invoke/f", "POST"),
        ("get", "/v1/functions", "GET"),
        ("PATCH", "/v1/compositions/c", "GET, PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        let r = h.call(request(method, path, Some(ALICE), &[], b""));
        assert_error(&r, 405, "method_not_allowed", &format!("{method} is not allowed on {path} (allowed: {allow})"));
        assert_eq!(r.header_value("allow"), Some(allow));
    }
}

#[test]
fn unknown_routes_are_404() {
    let mut h = Harness::new();
    for path in ["/v1/functions/a/b", "/v1/functions/", "/v1/invoke", "/v1/invoke/", "/healthz", "/v1/other"] {
        assert_error(&h.get(ALICE, path), 404, "not_found", &format!("no route for GET {path}"));
    }
}
