//! `ControlPlane::apply_fleet`: changes from a fleet's desired state, by tenant name, through
//! the same checks as the `/v1` requests.

use control::FleetChange;

use crate::common::*;

const SPEC: &str = "engine=wasm&inputs=A&outputs=C";

#[test]
fn registers_replaces_and_deletes_for_the_named_tenant_only() {
    let mut h = Harness::new();
    let put = |h: &mut Harness, behaviour: &str| {
        let image = format!("FAKE:{behaviour}").into_bytes();
        h.plane.apply_fleet("alice", "f", FleetChange::PutFunction { query: SPEC, image }, &mut h.runtime)
    };
    assert_eq!(put(&mut h, "echo"), Ok(()));
    assert_eq!(h.get(ALICE, "/v1/functions/f").status, 200);
    assert_eq!(h.get(BOB, "/v1/functions/f").status, 404, "bob sees nothing of alice's");
    assert_eq!(put(&mut h, "upper"), Ok(()));
    assert!(text(&h.get(ALICE, "/v1/functions/f")).contains(&model::ImageDigest::of(b"FAKE:upper").to_string()));
    assert_eq!(h.plane.counters().functions, 1);

    let source = b"function f (A) => (C);\ncomposition c (x) => (y) { f (A = all x) => (y = C); }".to_vec();
    let r = h.plane.apply_fleet("alice", "c", FleetChange::PutComposition { source }, &mut h.runtime);
    assert_eq!(r, Ok(()));
    assert_eq!(h.get(ALICE, "/v1/compositions/c").status, 200);

    for (name, change) in [("c", FleetChange::DeleteComposition), ("f", FleetChange::DeleteFunction)] {
        assert_eq!(h.plane.apply_fleet("alice", name, change, &mut h.runtime), Ok(()));
    }
    assert_eq!(h.get(ALICE, "/v1/functions/f").status, 404);
    assert_eq!(h.get(ALICE, "/v1/compositions/c").status, 404);
    // Deleting what is not there is no error: the state says it should not be there.
    assert_eq!(h.plane.apply_fleet("alice", "f", FleetChange::DeleteFunction, &mut h.runtime), Ok(()));
}

#[test]
fn refusals_say_why() {
    let mut h = Harness::new();
    let mut apply = |tenant: &str, name: &str, change| h.plane.apply_fleet(tenant, name, change, &mut h.runtime);
    let image = || b"FAKE:echo".to_vec();
    let e = apply("mallory", "f", FleetChange::PutFunction { query: SPEC, image: image() }).unwrap_err();
    assert!(e.contains("no tenant 'mallory'"), "{e}");
    let e = apply("alice", "bad name!", FleetChange::PutFunction { query: SPEC, image: image() }).unwrap_err();
    assert!(e.contains("bad name"), "{e}");
    let e = apply("alice", "f", FleetChange::PutFunction { query: "engine=warp", image: image() }).unwrap_err();
    assert!(e.starts_with("400 bad_spec"), "{e}");
    let e = apply("alice", "f", FleetChange::PutFunction { query: SPEC, image: Vec::new() }).unwrap_err();
    assert!(e.starts_with("400 bad_image"), "{e}");
    let e = apply("alice", "http", FleetChange::PutFunction { query: SPEC, image: image() }).unwrap_err();
    assert!(e.starts_with("409 reserved"), "{e}");
    let e = apply("alice", "c", FleetChange::PutComposition { source: b"composition (".to_vec() }).unwrap_err();
    assert!(e.starts_with("400"), "{e}");
    assert_eq!(h.plane.counters().functions, 0);
}
