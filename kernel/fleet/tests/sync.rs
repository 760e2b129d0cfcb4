//! The sync state machine against a scripted etcd and blob server.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_fleet::{Action, EtcdState, FunctionValue, Key, Kind, Sync, SyncConfig};

const ETCD: &str = "http://10.77.0.1:2379";
const BLOBS: &str = "http://10.77.0.1:8081/blobs";

/// A fake etcd (key -> (mod_revision, value)) and blob server (digest -> bytes).
#[derive(Default)]
struct World {
    revision: u64,
    kvs: BTreeMap<String, (u64, Vec<u8>)>,
    blobs: BTreeMap<String, Vec<u8>>,
    etcd_down: bool,
}

impl World {
    fn put(&mut self, key: &Key, value: &[u8]) {
        self.revision += 1;
        self.kvs.insert(key.path(), (self.revision, value.to_vec()));
    }
    fn put_function(&mut self, tenant: &str, name: &str, query: &str, image: &[u8]) -> Key {
        let key = Key::new(tenant, Kind::Function, name);
        let value = FunctionValue::for_image(query, image);
        self.blobs.insert(value.digest.clone(), image.to_vec());
        self.put(&key, value.to_json().as_bytes());
        key
    }
    fn delete(&mut self, key: &Key) {
        self.revision += 1;
        self.kvs.remove(&key.path());
    }
    fn range_json(&self) -> String {
        let kvs: Vec<String> = self
            .kvs
            .iter()
            .map(|(k, (rev, v))| {
                format!(
                    r#"{{"key":"{}","create_revision":"1","mod_revision":"{rev}","version":"1","value":"{}"}}"#,
                    B64.encode(k),
                    B64.encode(v)
                )
            })
            .collect();
        format!(
            r#"{{"header":{{"cluster_id":"1","member_id":"2","revision":"{}","raft_term":"2"}},"kvs":[{}],"count":"{}"}}"#,
            self.revision,
            kvs.join(","),
            self.kvs.len()
        )
    }
    /// Answers one request item as the servers would.
    fn answer(&self, item: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let text = String::from_utf8_lossy(item);
        let first = text.lines().next().unwrap();
        if first == format!("POST {ETCD}/v3/kv/range") {
            assert!(text.contains(r#""key":"L3BhcHB1cy92MS8=""#), "{text}"); // "/pappus/v1/"
            if self.etcd_down {
                return Err("connection refused".into());
            }
            return Ok((200, self.range_json().into_bytes()));
        }
        let digest = first.strip_prefix(&format!("GET {BLOBS}/")).expect(first);
        match self.blobs.get(digest) {
            Some(b) => Ok((200, b.clone())),
            None => Ok((404, b"not found".to_vec())),
        }
    }
}

/// Runs the sync until it is idle again, answering every request; returns the actions.
fn round(sync: &mut Sync, world: &World, now: &mut u64) -> Vec<Action> {
    *now = sync.next_wakeup_ms().expect("idle").max(*now);
    assert!(sync.poll(*now));
    let mut actions = Vec::new();
    for _ in 0..100 {
        while let Some(a) = sync.take_action() {
            actions.push(a);
        }
        let Some((ticket, item)) = sync.take_request() else { break };
        *now += 1;
        match world.answer(&item) {
            Ok((status, body)) => sync.on_response(ticket, Ok((status, &body)), *now),
            Err(e) => sync.on_response(ticket, Err(&e), *now),
        }
    }
    while let Some(a) = sync.take_action() {
        actions.push(a);
    }
    assert!(sync.next_wakeup_ms().is_some(), "the round ended");
    for a in &actions {
        sync.applied(a.key(), Ok(()));
    }
    actions
}

fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::PutFunction { key, query, image } => format!("put {} {query} {}B", key.path(), image.len()),
            Action::PutComposition { key, source } => {
                format!("compose {} {}", key.path(), String::from_utf8_lossy(source))
            }
            Action::Delete { key } => format!("delete {}", key.path()),
        })
        .collect()
}

fn new_sync() -> Sync {
    Sync::new(SyncConfig::new(ETCD, &format!("{BLOBS}/")))
}

#[test]
fn loads_replaces_and_deletes() {
    let mut world = World::default();
    let echo = world.put_function("acme", "echo", "engine=wasm&inputs=in&outputs=out", b"\0asm-echo");
    let pipe = Key::new("acme", Kind::Composition, "pipe");
    world.put(&pipe, b"function echo (in) => (out);");
    world.put(&Key::new("acme", Kind::Function, "x"), b"{}"); // bad value: an error, no action
    let mut sync = new_sync();
    let mut now = 0;
    assert_eq!(sync.etcd(), EtcdState::Unknown);
    let got = round(&mut sync, &world, &mut now);
    assert_eq!(
        summary(&got),
        [
            "put /pappus/v1/tenants/acme/functions/echo engine=wasm&inputs=in&outputs=out 9B",
            "compose /pappus/v1/tenants/acme/compositions/pipe function echo (in) => (out);",
        ]
    );
    assert_eq!(sync.etcd(), EtcdState::Up);
    assert_eq!(sync.revision(), 3);
    assert_eq!(sync.stats().errors, 1);
    assert!(sync.take_error().unwrap().contains("functions/x"));
    assert_eq!(sync.held(), 3);

    // Nothing changed: nothing to do, and the round starts poll_ms after the last one.
    let before = now;
    assert!(round(&mut sync, &world, &mut now).is_empty());
    assert!(now >= before + 400);

    // Replace the function, delete the composition.
    world.put_function("acme", "echo", "engine=wasm&inputs=in&outputs=out", b"\0asm-echo-2");
    world.delete(&pipe);
    let got = round(&mut sync, &world, &mut now);
    assert_eq!(
        summary(&got),
        [
            "delete /pappus/v1/tenants/acme/compositions/pipe",
            "put /pappus/v1/tenants/acme/functions/echo engine=wasm&inputs=in&outputs=out 11B",
        ]
    );
    world.delete(&echo);
    assert_eq!(summary(&round(&mut sync, &world, &mut now)), ["delete /pappus/v1/tenants/acme/functions/echo"]);
    assert_eq!(sync.stats().applied, 5);
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_the_node_keeps_serving() {
    let mut world = World::default();
    let key = world.put_function("acme", "echo", "engine=wasm", b"good image");
    let digest = FunctionValue::for_image("", b"good image").digest;
    world.blobs.insert(digest, b"evil image".to_vec());
    let mut sync = new_sync();
    let mut now = 0;
    assert!(round(&mut sync, &world, &mut now).is_empty());
    assert_eq!((sync.stats().errors, sync.stats().digest_mismatches), (1, 1));
    assert!(sync.take_error().unwrap().contains("refused"));
    // Not fetched again until the key changes.
    assert!(round(&mut sync, &world, &mut now).is_empty());
    assert_eq!(sync.stats().errors, 1);
    // A fixed deploy goes through.
    world.put_function("acme", "echo", "engine=wasm", b"fixed");
    let got = round(&mut sync, &world, &mut now);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key(), &key);
    // A missing blob is an error too.
    world
        .put(&Key::new("acme", Kind::Function, "gone"), FunctionValue::for_image("q", b"nowhere").to_json().as_bytes());
    assert!(round(&mut sync, &world, &mut now).is_empty());
    assert!(sync.take_error().unwrap().contains("answered 404"));
}

#[test]
fn etcd_down_keeps_what_was_applied_and_catches_up_later() {
    let mut world = World::default();
    world.put_function("acme", "echo", "q", b"image");
    let mut sync = new_sync();
    let mut now = 0;
    assert_eq!(round(&mut sync, &world, &mut now).len(), 1);
    world.etcd_down = true;
    world.put_function("acme", "two", "q", b"image 2");
    assert!(round(&mut sync, &world, &mut now).is_empty(), "no deletions while etcd is unreachable");
    assert_eq!(sync.etcd(), EtcdState::Unreachable);
    assert_eq!(sync.stats().etcd_failures, 1);
    assert_eq!(sync.held(), 1);
    world.etcd_down = false;
    let got = round(&mut sync, &world, &mut now);
    assert_eq!(summary(&got), ["put /pappus/v1/tenants/acme/functions/two q 7B"]);
    assert_eq!(sync.etcd(), EtcdState::Up);
}

#[test]
fn a_node_that_boots_while_etcd_is_down_syncs_when_it_returns() {
    let mut world = World { etcd_down: true, ..World::default() };
    world.put_function("acme", "echo", "q", b"image");
    let mut sync = new_sync();
    let mut now = 0;
    for _ in 0..3 {
        assert!(round(&mut sync, &world, &mut now).is_empty());
        assert_eq!(sync.etcd(), EtcdState::Unreachable);
    }
    world.etcd_down = false;
    assert_eq!(round(&mut sync, &world, &mut now).len(), 1);
}

#[test]
fn bad_range_results_are_errors_not_panics() {
    let mut sync = new_sync();
    let mut now = 0;
    for body in [
        &b"not json"[..],
        b"{}",
        br#"{"header":{"revision":"x"}}"#,
        br#"{"header":{"revision":"5"},"kvs":7}"#,
        br#"{"header":{"revision":"5"},"kvs":[{"key":"!!!","mod_revision":"1"}]}"#,
        br#"{"header":{"revision":"5"},"kvs":[{"key":"L3BhcHB1cy92MS90ZW5hbnRzL2EvZnVuY3Rpb25zL2I="}]}"#,
    ] {
        now = sync.next_wakeup_ms().unwrap().max(now);
        assert!(sync.poll(now));
        let (ticket, _) = sync.take_request().unwrap();
        let errors = sync.stats().errors;
        sync.on_response(ticket, Ok((200, body)), now);
        assert_eq!(sync.stats().errors, errors + 1, "{}", String::from_utf8_lossy(body));
        assert!(sync.take_action().is_none());
    }
    // A 500 from etcd: unreachable, not a parse error.
    now = sync.next_wakeup_ms().unwrap();
    sync.poll(now);
    let (ticket, _) = sync.take_request().unwrap();
    sync.on_response(ticket, Ok((500, b"oops")), now);
    assert_eq!(sync.etcd(), EtcdState::Unreachable);
    // Unknown tickets are ignored.
    sync.on_response(12345, Ok((200, b"{}")), now);
}

#[test]
fn a_refused_change_is_counted() {
    let mut sync = new_sync();
    sync.applied(&Key::new("ghost", Kind::Function, "f"), Err("no tenant 'ghost' on this node".into()));
    assert_eq!(sync.stats().errors, 1);
    assert!(sync.take_error().unwrap().contains("ghost"));
}

proptest::proptest! {
    /// Any bytes from etcd or the blob server: no panic, and the sync ends its round.
    #[test]
    fn any_answer_ends_the_round(range in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                 status in 100u16..600) {
        let mut sync = new_sync();
        sync.poll(0);
        let (ticket, _) = sync.take_request().unwrap();
        sync.on_response(ticket, Ok((status, &range)), 1);
        while let Some((t, _)) = sync.take_request() {
            sync.on_response(t, Ok((status, &range)), 2);
        }
        proptest::prop_assert!(sync.next_wakeup_ms().is_some());
    }
}

#[test]
fn a_function_is_held_only_once_its_image_is_in_and_a_lost_blob_is_fetched_again() {
    let mut world = World::default();
    world.put_function("acme", "echo", "q", b"image");
    let mut sync = new_sync();
    assert!(sync.poll(0));
    let (ticket, item) = sync.take_request().unwrap();
    let (status, body) = world.answer(&item).unwrap();
    sync.on_response(ticket, Ok((status, &body)), 1);
    let (blob, _) = sync.take_request().expect("the blob is asked for");
    assert_eq!(sync.held(), 0, "not held while its image is on the way (healthz would say so too early)");
    assert!(sync.take_action().is_none());
    // The blob server did not answer: not held, and the next round asks again.
    sync.on_response(blob, Err("refused"), 2);
    assert_eq!((sync.held(), sync.stats().errors), (0, 1));
    let mut now = 2;
    let got = round(&mut sync, &world, &mut now);
    assert_eq!(summary(&got), ["put /pappus/v1/tenants/acme/functions/echo q 5B"]);
    assert_eq!(sync.held(), 1);
}
