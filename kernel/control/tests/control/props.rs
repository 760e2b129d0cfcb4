//! Property tests: nothing a client sends makes the control plane panic, and what it answers is
//! always well-formed.

use crate::CASES;
use crate::common::*;
use control::{ControlLimits, Reply};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("PUT".to_string()),
        Just("POST".to_string()),
        Just("DELETE".to_string()),
        "[A-Za-z]{0,8}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("/v1/functions"),
        Just("/v1/functions/"),
        Just("/v1/compositions"),
        Just("/v1/compositions/"),
        Just("/v1/invoke/"),
        Just(""),
    ];
    let name = prop_oneof![
        Just("f".to_string()),
        Just("c".to_string()),
        Just("identity".to_string()),
        Just("sleep".to_string()),
        Just("fail".to_string()),
        Just("concat".to_string()),
        any::<String>(),
        "[a-z./%-]{0,70}",
    ];
    (prefix, name).prop_map(|(p, n)| format!("{p}{n}"))
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("engine=wasm&inputs=i&outputs=o".to_string())),
        Just(Some("engine=wasm&outputs=a,b&memory=64KiB&timeout_ms=1".to_string())),
        any::<String>().prop_map(Some),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let auth = prop_oneof![
        Just(format!("Bearer {ALICE}")),
        Just(format!("Bearer {BOB}")),
        any::<String>(),
        Just("Bearer".to_string()),
    ];
    let content_type = prop_oneof![
        Just("application/json".to_string()),
        Just("application/x-pappus-sets".to_string()),
        Just("text/plain".to_string()),
        any::<String>(),
    ];
    let accept = prop_oneof![
        Just("application/octet-stream".to_string()),
        Just("application/x-pappus-sets".to_string()),
        Just("*/*".to_string()),
        any::<String>(),
    ];
    (
        proptest::option::of(auth),
        proptest::option::of(content_type),
        proptest::option::of(accept),
        proptest::collection::vec(("[a-zA-Z-]{1,16}", any::<String>()), 0..3),
    )
        .prop_map(|(auth, ct, accept, extra)| {
            let mut out = Vec::new();
            out.extend(auth.map(|v| ("Authorization".to_string(), v)));
            out.extend(ct.map(|v| ("Content-Type".to_string(), v)));
            out.extend(accept.map(|v| ("Accept".to_string(), v)));
            out.extend(extra);
            out
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        Just(b"FAKE:echo".to_vec()),
        Just(b"FAKE:fault".to_vec()),
        Just(b"FAKE:extra".to_vec()),
        Just(b"function sleep (in) => (out); composition c (i) => (o) { sleep (in = each i) => (o = out); }".to_vec()),
        Just(b"function fail (in) => (out); composition f (x) => (y) { fail (in = all x) => (y = out); }".to_vec()),
        Just(br#"{"sets":{"in":[{"data":"NQ=="}],"i":[{"data":"MTA="},{"data":""}]}}"#.to_vec()),
        Just(br#"{"sets":{"in":[{"data":"!"}]}}"#.to_vec()),
        Just(b"PSET\x01\0\x01\0\0\0\x02in\x01\0\0\0\0\0\x01\0\0\0\0\0\0\0x".to_vec()),
        "[ -~]{0,200}".prop_map(String::into_bytes),
    ]
}

/// A plane with something registered, so requests reach every route's deeper paths.
fn populated() -> Harness {
    let limits = ControlLimits {
        max_live_invocations: 4,
        max_functions_per_tenant: 4,
        max_compositions_per_tenant: 4,
        ..Default::default()
    };
    let mut h = Harness::with_limits(limits);
    h.put_function(ALICE, "f", "engine=wasm&inputs=i&outputs=o", "echo");
    h.put_composition(
        ALICE,
        "c",
        "function sleep (in) => (out); composition c (i) => (o) { sleep (in = each i) => (o = out); }",
    );
    h
}

fn well_formed(response: &pappus_http::Response) -> Result<(), TestCaseError> {
    prop_assert!((200..=599).contains(&response.status));
    if response.status >= 400 {
        prop_assert_eq!(response.header_value("content-type"), Some("application/json"));
        let body = text(response);
        prop_assert!(body.starts_with("{\"error\":{\"code\":\""), "{}", body);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn handle_never_panics(
        requests in proptest::collection::vec((method(), path(), query(), headers(), body()), 1..4),
        steps in proptest::collection::vec(0u64..20_000, 0..4),
    ) {
        let mut h = populated();
        let mut pending = Vec::new();
        for (method, path, query, headers, body) in requests {
            let mut request = request(&method, &path, None, &[], &body);
            request.query = query;
            for (name, value) in &headers {
                request.headers.push(name.clone(), value.clone());
            }
            if let Some(response) = h.plane.check_head(&request) {
                well_formed(&response)?;
            }
            match h.send(request) {
                Reply::Now(response) => well_formed(&response)?,
                Reply::Pending(id) => pending.push(id),
            }
        }
        for step in steps {
            let now = h.now + step;
            h.poll_at(now);
        }
        h.poll_at(h.now + 20_000);
        for id in pending {
            let response = h.plane.take_response(id);
            prop_assert!(response.is_some(), "every sleep is over after 20 s");
            if let Some(response) = response {
                well_formed(&response)?;
            }
        }
        prop_assert_eq!(h.plane.live_invocations(), 0);
    }
}
