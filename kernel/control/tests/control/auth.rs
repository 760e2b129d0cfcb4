//! Authentication on every route, and `check_head` for `Expect: 100-continue`.

use crate::common::*;
use control::ControlPlane;

const CHALLENGE: &str = "Bearer realm=\"pappus\"";
const INVALID: &str = "Bearer realm=\"pappus\", error=\"invalid_token\"";

#[test]
fn every_route_needs_a_bearer_token() {
    let mut h = Harness::new();
    let routes = [
        ("GET", "/v1/functions"),
        ("GET", "/v1/functions/f"),
        ("PUT", "/v1/functions/f?engine=wasm&outputs=o"),
        ("DELETE", "/v1/functions/f"),
        ("GET", "/v1/compositions"),
        ("PUT", "/v1/compositions/c"),
        ("POST", "/v1/invoke/identity"),
        // Before 404, 405 and 400: nothing is revealed to an unauthenticated client.
        ("GET", "/v1/functions/a/b"),
        ("PATCH", "/v1/functions/f"),
        ("GET", "/v1/functions/.bad"),
    ];
    for (method, target) in routes {
        let r = h.call(request(method, target, None, &[], b"FAKE:echo"));
        assert_error(
            &r,
            401,
            "unauthorized",
            "missing Authorization header (expected `Authorization: Bearer <token>`)",
        );
        assert_eq!(r.header_value("www-authenticate"), Some(CHALLENGE), "{method} {target}");
    }
    assert!(h.runtime.prepared.is_empty() && h.runtime.runs.is_empty());
    assert_eq!(h.plane.counters().invocations_rejected, 0, "unauthenticated requests are not invocations");
}

#[test]
fn wrong_scheme_malformed_and_unknown_tokens_are_401() {
    let mut h = Harness::new();
    let cases = [
        ("Basic YWxpY2U6cHc=", "the Authorization header must use the Bearer scheme", CHALLENGE),
        ("Bearer", "malformed bearer token", INVALID),
        ("Bearer not a token", "malformed bearer token", INVALID),
        ("Bearer wrong-token-0123456789", "unknown token", INVALID),
        ("", "malformed bearer token", INVALID),
    ];
    for (value, message, challenge) in cases {
        let r = h.call(request("GET", "/v1/functions", None, &[("Authorization", value)], b""));
        assert_error(&r, 401, "unauthorized", message);
        assert_eq!(r.header_value("www-authenticate"), Some(challenge), "{value}");
    }
    // Scheme case does not matter; the token does.
    let r = h.call(request("GET", "/v1/functions", None, &[("authorization", &format!("bearer {ALICE}"))], b""));
    assert_eq!(r.status, 200);
    let upper = ALICE.to_uppercase();
    let r = h.call(request("GET", "/v1/functions", Some(&upper), &[], b""));
    assert_eq!(r.status, 401);
}

#[test]
fn owns_the_v1_api_paths() {
    for path in ["/v1/functions", "/v1/functions/f", "/v1/compositions/c", "/v1/compositions", "/v1/invoke/x"] {
        assert!(ControlPlane::owns(path), "{path}");
    }
    for path in ["/healthz", "/metrics", "/v1/echo", "/v1/functionsx", "/", "/v2/functions"] {
        assert!(!ControlPlane::owns(path), "{path}");
    }
}

fn head(method: &str, target: &str, token: Option<&str>, length: usize) -> pappus_http::Request {
    let length = length.to_string();
    request(method, target, token, &[("Content-Length", &length), ("Expect", "100-continue")], b"")
}

#[test]
fn check_head_refuses_before_the_body_is_sent() {
    let limits = control::ControlLimits { max_image_bytes: 1000, ..Default::default() };
    let mut h = Harness::with_limits(limits);
    let p = &h.plane;
    let status = |r: Option<pappus_http::Response>| r.map(|r| r.status);
    // Acceptable heads: send 100 Continue.
    assert_eq!(status(p.check_head(&head("PUT", "/v1/functions/f?engine=wasm&outputs=o", Some(ALICE), 1000))), None);
    assert_eq!(status(p.check_head(&head("PUT", "/v1/compositions/c", Some(ALICE), 1 << 20))), None);
    assert_eq!(status(p.check_head(&head("POST", "/v1/invoke/identity", Some(ALICE), 10 << 20))), None);
    // Refused heads.
    assert_eq!(status(p.check_head(&head("PUT", "/v1/functions/f?engine=wasm&outputs=o", None, 10))), Some(401));
    assert_eq!(
        status(p.check_head(&head("PUT", "/v1/functions/f?engine=wasm&outputs=o", Some(ALICE), 1001))),
        Some(413)
    );
    assert_eq!(status(p.check_head(&head("PUT", "/v1/functions/f?outputs=o", Some(ALICE), 10))), Some(400));
    assert_eq!(
        status(p.check_head(&head("PUT", "/v1/functions/sleep?engine=wasm&outputs=o", Some(ALICE), 10))),
        Some(409)
    );
    assert_eq!(status(p.check_head(&head("PUT", "/v1/compositions/c", Some(ALICE), (1 << 20) + 1))), Some(413));
    assert_eq!(status(p.check_head(&head("POST", "/v1/invoke/nothing", Some(ALICE), 10))), Some(404));
    assert_eq!(status(p.check_head(&head("POST", "/v1/functions", Some(ALICE), 10))), Some(405));
    assert_eq!(status(p.check_head(&head("PUT", "/v1/functions/a%", Some(ALICE), 10))), Some(400));
    let r = p.check_head(&head("PUT", "/v1/functions/f?engine=wasm&outputs=o", Some(ALICE), 5000)).unwrap();
    assert_error(&r, 413, "payload_too_large", "the function image is 5000 bytes, at most 1000 are allowed");

    // Another tenant's function is as unknown as a missing one.
    h.put_function(BOB, "bobs", "engine=wasm&inputs=in&outputs=out", "echo");
    let p = &h.plane;
    assert_eq!(status(p.check_head(&head("POST", "/v1/invoke/bobs", Some(ALICE), 10))), Some(404));
    assert_eq!(status(p.check_head(&head("POST", "/v1/invoke/bobs", Some(BOB), 10))), None);
}
