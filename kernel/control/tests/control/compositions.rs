//! `/v1/compositions`: register, replace, read, list, delete, and the program's errors.

use crate::common::*;

const CHAIN: &str = "\
// identity then concat, all builtins (declared like any function)
function identity (in) => (out);
function concat (a, b) => (out);
composition chain (a, b) => (out) {
    identity (in = all a) => (x = out);
    concat (a = all x, b = all b) => (out = out);
}
";

fn put(h: &mut Harness, name: &str, source: &[u8]) -> pappus_http::Response {
    h.call(request("PUT", &format!("/v1/compositions/{name}"), Some(ALICE), &[], source))
}

#[test]
fn put_get_list_replace_delete() {
    let mut h = Harness::new();
    let r = h.put_composition(ALICE, "chain", CHAIN);
    assert_eq!(r.status, 201);
    assert_eq!(
        text(&r),
        r#"{"name":"chain","inputs":["a","b"],"outputs":["out"],"compositions":[{"name":"chain","inputs":["a","b"],"outputs":["out"]}],"warnings":[]}"#
    );
    assert_eq!(r.header_value("location"), Some("/v1/compositions/chain"));

    let got = h.get(ALICE, "/v1/compositions/chain");
    assert_eq!((got.status, text(&got)), (200, CHAIN));
    assert_eq!(got.header_value("content-type"), Some("text/plain; charset=utf-8"));

    h.put_composition(ALICE, "again", "composition again (x) => (x) { }");
    let list = h.get(ALICE, "/v1/compositions");
    assert_eq!(
        text(&list),
        r#"{"compositions":[{"name":"again","inputs":["x"],"outputs":["x"]},{"name":"chain","inputs":["a","b"],"outputs":["out"]}]}"#
    );
    assert_eq!(h.plane.counters().compositions, 2);

    let replacement =
        "function identity (in) => (out); composition chain (a) => (out) { identity (in = all a) => (out = out); }";
    let r = h.put_composition(ALICE, "chain", replacement);
    assert_eq!(r.status, 200);
    assert_eq!(text(&h.get(ALICE, "/v1/compositions/chain")), replacement);

    let r = h.delete(ALICE, "/v1/compositions/chain");
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_error(&h.get(ALICE, "/v1/compositions/chain"), 404, "not_found", "no composition named 'chain'");
    assert_error(&h.delete(ALICE, "/v1/compositions/chain"), 404, "not_found", "no composition named 'chain'");
    assert_eq!(h.plane.counters().compositions, 1);
}

#[test]
fn a_syntax_error_is_400_with_its_position() {
    let mut h = Harness::new();
    let source =
        "function identity (in) => (out);\ncomposition c (x) => (y) {\n    identity (in = all x) => (y = out)\n}\n";
    let r = put(&mut h, "c", source.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(
        text(&r),
        r#"{"error":{"code":"bad_composition","message":"4:1: expected 'by' or ';', found '}'","diagnostics":[{"severity":"error","line":4,"column":1,"message":"expected 'by' or ';', found '}'"}]}}"#
    );
    let r = put(
        &mut h,
        "c",
        b"function identity (in) => (out);\ncomposition c (x) => (y) {\n    identity (in = all x) (y = out);\n}\n",
    );
    assert_eq!(r.status, 400);
    assert!(
        text(&r).starts_with(r#"{"error":{"code":"bad_composition","message":"3:27: expected '=>', found '('""#),
        "{}",
        text(&r)
    );
    assert_error(&h.get(ALICE, "/v1/compositions/c"), 404, "not_found", "no composition named 'c'");
}

#[test]
fn every_diagnostic_is_listed() {
    let mut h = Harness::new();
    let source = "function identity (in) => (out);\ncomposition c (x) => (y) {\n  nothing (in = all x) => (y = out);\n  identity (in = all q) => (z = out);\n}";
    let r = put(&mut h, "c", source.as_bytes());
    assert_eq!(
        text(&r),
        concat!(
            r#"{"error":{"code":"bad_composition","message":"3:3: `nothing` is neither a declared function nor an earlier composition","diagnostics":["#,
            r#"{"severity":"error","line":3,"column":3,"message":"`nothing` is neither a declared function nor an earlier composition"},"#,
            r#"{"severity":"error","line":4,"column":22,"message":"set `q` is never defined"}]}}"#
        )
    );
}

#[test]
fn a_cyclic_composition_is_400() {
    let mut h = Harness::new();
    let source = "function identity (in) => (out);\ncomposition c (x) => (y) {\n  identity (in = all z) => (y = out);\n  identity (in = all y) => (z = out);\n}";
    let r = put(&mut h, "c", source.as_bytes());
    assert_error_contains(&r, 400, "bad_composition", "dataflow cycle through sets: ");
    let recursive = "composition c (x) => (y) { c (x = all x) => (y = y); }";
    assert_error_contains(
        &put(&mut h, "c", recursive.as_bytes()),
        400,
        "bad_composition",
        "recursive composition: c -> c",
    );
}

#[test]
fn declarations_must_match_the_registered_set_counts() {
    let mut h = Harness::new();
    let source = "function concat (one) => (out);\ncomposition c (x) => (y) { concat (one = all x) => (y = out); }";
    let r = put(&mut h, "c", source.as_bytes());
    assert_error_contains(
        &r,
        400,
        "bad_composition",
        "1:10: `concat` is declared with 1 input set(s), but the registered function has 2",
    );
    h.put_function(ALICE, "two", "engine=wasm&inputs=a,b&outputs=c", "echo");
    let source = "function two (a) => (c);\ncomposition c (x) => (y) { two (a = all x) => (y = c); }";
    assert_error_contains(
        &put(&mut h, "c", source.as_bytes()),
        400,
        "bad_composition",
        "`two` is declared with 1 input",
    );
}

#[test]
fn the_named_composition_must_be_in_the_program() {
    let mut h = Harness::new();
    let r = put(&mut h, "main", b"composition a (x) => (x) { }\ncomposition b (x) => (x) { }");
    assert_error(
        &r,
        400,
        "bad_composition",
        "the program defines no composition named 'main' (it defines: a, b); PUT it under one of those names",
    );
    // Nothing of a refused program is registered.
    assert_eq!(h.get(ALICE, "/v1/compositions/a").status, 404);
}

#[test]
fn a_program_of_declarations_only_is_checked_and_registers_nothing() {
    let mut h = Harness::new();
    // Dandelion accepts a source that only declares functions; so does a PUT here.
    let r = put(&mut h, "main", b"function identity (in) => (out);\nfunction HTTP (requests) => (headers, bodies);");
    assert_eq!((r.status, text(&r)), (200, r#"{"compositions":[],"warnings":[]}"#));
    assert_eq!(h.get(ALICE, "/v1/compositions/main").status, 404);
    assert_eq!(text(&h.get(ALICE, "/v1/compositions")), r#"{"compositions":[]}"#);
    // Its declarations are still checked against what is registered.
    let r = put(&mut h, "main", b"function HTTP (requests) => (responses, bodies, errors);");
    assert_eq!(r.status, 400);
    let r = put(&mut h, "main", b"function later (x) => (y);");
    assert_eq!(r.status, 200);
    assert!(
        text(&r).starts_with(r#"{"compositions":[],"warnings":[{"severity":"warning","line":1,"column":10,"#),
        "{}",
        text(&r)
    );
    // An empty source (or one of comments only) has nothing to check or register: refused.
    for empty in [&b""[..], b"  \n", b"// nothing here\n"] {
        let r = put(&mut h, "main", empty);
        assert_eq!(r.status, 400, "{:?}: {}", String::from_utf8_lossy(empty), text(&r));
        assert!(text(&r).contains("the program is empty"), "{}", text(&r));
    }
}

#[test]
fn a_program_with_several_compositions_registers_each() {
    let mut h = Harness::new();
    let source = "function identity (in) => (out);\n\
                  composition inner (x) => (y) { identity (in = each x) => (y = out); }\n\
                  composition outer (x) => (z) { inner (x = all x) => (z = y); }";
    let r = put(&mut h, "outer", source.as_bytes());
    assert_eq!(r.status, 201);
    assert_eq!(
        text(&r),
        concat!(
            r#"{"name":"outer","inputs":["x"],"outputs":["z"],"compositions":["#,
            r#"{"name":"inner","inputs":["x"],"outputs":["y"]},{"name":"outer","inputs":["x"],"outputs":["z"]}],"warnings":[]}"#
        )
    );
    assert_eq!(h.plane.counters().compositions, 2);
    assert_eq!(
        text(&h.get(ALICE, "/v1/compositions")),
        r#"{"compositions":[{"name":"inner","inputs":["x"],"outputs":["y"]},{"name":"outer","inputs":["x"],"outputs":["z"]}]}"#
    );
    // Each is stored with the whole program, and each runs under its own name.
    assert_eq!(text(&h.get(ALICE, "/v1/compositions/inner")), source);
    let r = h.invoke_json(ALICE, "inner", &[set("x", &["a", "b"])]);
    assert_eq!(text(&r), json_sets(&[set("y", &["a", "b"])]));
    let r = h.invoke_json(ALICE, "outer", &[set("x", &["a", "b"])]);
    assert_eq!(text(&r), json_sets(&[set("z", &["a", "b"])]));
    // Deleting one leaves the other.
    assert_eq!(h.delete(ALICE, "/v1/compositions/inner").status, 204);
    let r = h.invoke_json(ALICE, "outer", &[set("x", &["c"])]);
    assert_eq!(text(&r), json_sets(&[set("z", &["c"])]));
    // A name in the program that is reserved or taken refuses the whole program.
    let r = put(&mut h, "p", b"composition p (x) => (x) { }\ncomposition concat (x) => (x) { }");
    assert_error(&r, 409, "reserved", "'concat' is reserved for a platform function");
    assert_eq!(h.get(ALICE, "/v1/compositions/p").status, 404);
}

#[test]
fn warnings_come_back_in_the_success_body() {
    let mut h = Harness::new();
    let source = "function later (x) => (y);\ncomposition c (x, unused) => (y) { later (x = all x) => (y = y); }";
    let r = put(&mut h, "c", source.as_bytes());
    assert_eq!(r.status, 201);
    assert_eq!(
        text(&r),
        concat!(
            r#"{"name":"c","inputs":["x","unused"],"outputs":["y"],"compositions":[{"name":"c","inputs":["x","unused"],"outputs":["y"]}],"warnings":["#,
            r#"{"severity":"warning","line":1,"column":10,"message":"`later` is neither a registered function nor a builtin; invocations that apply it fail until it is registered"},"#,
            r#"{"severity":"warning","line":2,"column":19,"message":"input `unused` of `c` is never used"}]}"#
        )
    );
}

#[test]
fn programs_over_the_limit_are_413() {
    let mut h = Harness::new();
    let big = vec![b' '; 10 << 20];
    assert_error(
        &put(&mut h, "c", &big),
        413,
        "payload_too_large",
        "the program is 10485760 bytes, at most 1048576 are allowed",
    );
    let just_over = vec![b' '; (1 << 20) + 1];
    assert_eq!(put(&mut h, "c", &just_over).status, 413);
}

#[test]
fn programs_must_be_utf8() {
    let mut h = Harness::new();
    let r = put(&mut h, "c", b"composition c (x) => (x) { } \xff");
    assert_error(&r, 400, "bad_composition", "the program is not UTF-8 (invalid byte at offset 29)");
}

#[test]
fn the_registry_limit_is_409() {
    let limits =
        control::ControlLimits { max_compositions_per_tenant: 2, max_functions_per_tenant: 1, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    h.put_composition(ALICE, "a", "composition a (x) => (x) { }");
    h.put_composition(ALICE, "b", "composition b (x) => (x) { }");
    let r = put(&mut h, "c", b"composition c (x) => (x) { }");
    assert_error(&r, 409, "registry_full", "this tenant already has the maximum of 2 compositions; delete one first");
    // Replacing is always allowed, and other tenants have their own room.
    assert_eq!(h.put_composition(ALICE, "b", "composition b (y) => (y) { }").status, 200);
    assert_eq!(h.put_composition(BOB, "c", "composition c (x) => (x) { }").status, 201);
    h.put_function(ALICE, "f", "engine=wasm&outputs=o", "echo");
    let r = h.call(request("PUT", "/v1/functions/g?engine=wasm&outputs=o", Some(ALICE), &[], b"FAKE:echo"));
    assert_error(&r, 409, "registry_full", "this tenant already has the maximum of 1 functions; delete one first");
    assert_eq!(h.put_function(ALICE, "f", "engine=wasm&outputs=o", "upper").status, 200);
}
