//! The sync state machine against a scripted etcd (range reads and a watch stream that replays
//! its history from a start revision) and blob server.

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
    /// Every change, as the watch reports it: (revision, the event's JSON).
    history: Vec<(u64, String)>,
    /// History before this revision is compacted away.
    compacted: u64,
}

impl World {
    fn put(&mut self, key: &Key, value: &[u8]) {
        self.revision += 1;
        self.kvs.insert(key.path(), (self.revision, value.to_vec()));
        let rev = self.revision;
        self.history.push((
            rev,
            format!(
                r#"{{"kv":{{"key":"{}","create_revision":"1","mod_revision":"{rev}","version":"1","value":"{}"}}}}"#,
                B64.encode(key.path()),
                B64.encode(value)
            ),
        ));
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
        let rev = self.revision;
        self.history.push((
            rev,
            format!(r#"{{"type":"DELETE","kv":{{"key":"{}","mod_revision":"{rev}"}}}}"#, B64.encode(key.path())),
        ));
    }
    fn header(&self) -> String {
        format!(r#"{{"cluster_id":"1","member_id":"2","revision":"{}","raft_term":"2"}}"#, self.revision)
    }
    /// The watch messages for changes from revision `from` on, one per change, as etcd's
    /// gateway writes them (a JSON object and a newline each).
    fn watch_messages(&self, from: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (rev, event) in self.history.iter().filter(|(rev, _)| *rev >= from) {
            let header = format!(r#"{{"cluster_id":"1","member_id":"2","revision":"{rev}","raft_term":"2"}}"#);
            out.extend(format!(r#"{{"result":{{"header":{header},"events":[{event}]}}}}"#).bytes());
            out.push(b'\n');
        }
        out
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

/// A node: the sync, its clock, the watch stream etcd holds open for it, and what it applied.
struct Node {
    sync: Sync,
    now: u64,
    /// The open watch: its ticket and the next revision etcd will send.
    watch: Option<(u64, u64)>,
    /// Watch bytes are delivered in pieces of this many bytes (a stream cut anywhere).
    piece: usize,
}

impl Node {
    fn new() -> Self {
        Self { sync: new_sync(), now: 0, watch: None, piece: usize::MAX }
    }

    /// Runs until nothing moves at the current time: range reads due, requests answered, the
    /// watch opened and fed what etcd has. Returns the actions (reported applied).
    fn settle(&mut self, world: &World) -> Vec<Action> {
        let mut actions = Vec::new();
        for _ in 0..1000 {
            let mut moved = self.sync.poll(self.now);
            while let Some(a) = self.sync.take_action() {
                actions.push(a);
            }
            if let Some((ticket, item)) = self.sync.take_request() {
                self.now += 1;
                match world.answer(&item) {
                    Ok((status, body)) => self.sync.on_response(ticket, Ok((status, &body)), self.now),
                    Err(e) => self.sync.on_response(ticket, Err(&e), self.now),
                }
                moved = true;
            }
            if let Some((ticket, item)) = self.sync.take_watch_request() {
                moved = true;
                let text = String::from_utf8(item).unwrap();
                assert!(text.starts_with(&format!("POST {ETCD}/v3/watch\r\n")), "{text}");
                assert!(text.contains(r#""key":"L3BhcHB1cy92MS8=","range_end":"L3BhcHB1cy92MTA=""#), "{text}");
                let from: u64 =
                    text.split(r#""start_revision":""#).nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                if world.etcd_down {
                    self.sync.on_watch_end(ticket, Err("refused: 10.77.0.1:2379 refused the connection"), self.now);
                } else if from < world.compacted {
                    let m = format!(
                        r#"{{"result":{{"header":{},"canceled":true,"compact_revision":"{}"}}}}"#,
                        world.header(),
                        world.compacted
                    );
                    self.deliver(ticket, format!("{m}\n").as_bytes());
                } else {
                    self.watch = Some((ticket, from));
                    let created = format!(r#"{{"result":{{"header":{},"created":true}}}}"#, world.header());
                    self.deliver(ticket, format!("{created}\n").as_bytes());
                }
            }
            if let Some((ticket, from)) = self.watch {
                if self.sync.watch_ticket() != Some(ticket) {
                    self.watch = None; // the node closed it
                } else if world.revision >= from {
                    self.watch = Some((ticket, world.revision + 1));
                    self.deliver(ticket, &world.watch_messages(from));
                    moved = true;
                }
            }
            while let Some(a) = self.sync.take_action() {
                actions.push(a);
            }
            if !moved {
                break;
            }
        }
        for a in &actions {
            self.sync.applied(a.key(), Ok(()));
        }
        actions
    }

    fn deliver(&mut self, ticket: u64, bytes: &[u8]) {
        self.now += 1;
        for piece in bytes.chunks(self.piece.min(bytes.len().max(1))) {
            self.sync.on_watch_data(ticket, piece, self.now);
        }
    }

    /// The time moves on to when the sync wants to try again; then [`settle`](Self::settle).
    fn retry(&mut self, world: &World) -> Vec<Action> {
        self.now = self.sync.next_wakeup_ms().expect("a range read is due").max(self.now);
        self.settle(world)
    }

    /// etcd goes away: the stream ends with the client's error.
    fn cut(&mut self, why: &str) {
        let (ticket, _) = self.watch.take().expect("a watch is open");
        self.now += 1;
        self.sync.on_watch_end(ticket, Err(why), self.now);
    }
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

const ECHO: &str = "/pappus/v1/tenants/acme/functions/echo";
const PIPE: &str = "/pappus/v1/tenants/acme/compositions/pipe";

#[test]
fn loads_with_a_range_read_then_follows_the_watch() {
    let mut world = World::default();
    let echo = world.put_function("acme", "echo", "engine=wasm&inputs=in&outputs=out", b"\0asm-echo");
    let pipe = Key::new("acme", Kind::Composition, "pipe");
    world.put(&pipe, b"function echo (in) => (out);");
    world.put(&Key::new("acme", Kind::Function, "x"), b"{}"); // bad value: an error, no action
    let mut node = Node::new();
    assert_eq!(node.sync.etcd(), EtcdState::Unknown);
    let got = node.settle(&world);
    assert_eq!(
        summary(&got),
        [
            format!("put {ECHO} engine=wasm&inputs=in&outputs=out 9B"),
            format!("compose {PIPE} function echo (in) => (out);"),
        ]
    );
    assert_eq!(node.sync.etcd(), EtcdState::Up);
    assert_eq!(node.sync.revision(), 3);
    assert_eq!(node.sync.stats().errors, 1);
    assert!(node.sync.take_error().unwrap().contains("functions/x"));
    assert_eq!(node.sync.held(), 3);
    assert!(node.sync.watching());
    assert_eq!(node.watch.map(|w| w.1), Some(4), "the watch starts after the range's revision");
    assert_eq!(node.sync.next_wakeup_ms(), None, "no polling while the watch is open");

    // Nothing changed: nothing to do, however long.
    node.now += 60_000;
    assert!(node.settle(&world).is_empty());

    // Replace the function, delete the composition: both come through the watch, in order.
    world.put_function("acme", "echo", "engine=wasm&inputs=in&outputs=out", b"\0asm-echo-2");
    world.delete(&pipe);
    let got = node.settle(&world);
    assert_eq!(summary(&got), [format!("put {ECHO} engine=wasm&inputs=in&outputs=out 11B"), format!("delete {PIPE}")]);
    world.delete(&echo);
    assert_eq!(summary(&node.settle(&world)), [format!("delete {ECHO}")]);
    let stats = node.sync.stats();
    assert_eq!((stats.applied, stats.rounds, stats.watches, stats.watch_events, stats.resyncs), (5, 1, 1, 3, 0));
    assert_eq!((node.sync.revision(), node.sync.held()), (6, 1));
}

#[test]
fn events_apply_in_order_even_while_a_blob_is_on_the_way() {
    let mut world = World::default();
    let mut node = Node::new();
    assert!(node.settle(&world).is_empty());
    assert!(node.sync.watching());
    // One message with: put echo (a blob to fetch), a composition using it, delete echo,
    // put echo again.
    let echo = world.put_function("acme", "echo", "q", b"one");
    world.put(&Key::new("acme", Kind::Composition, "pipe"), b"function echo (in) => (out);");
    world.delete(&echo);
    world.put_function("acme", "echo", "q", b"three");
    let (ticket, from) = node.watch.unwrap();
    let events: Vec<&str> = world.history.iter().filter(|(r, _)| *r >= from).map(|(_, e)| e.as_str()).collect();
    let message = format!(r#"{{"result":{{"header":{},"events":[{}]}}}}"#, world.header(), events.join(","));
    node.sync.on_watch_data(ticket, format!("{message}\n").as_bytes(), 10);
    node.watch = Some((ticket, world.revision + 1));
    let (blob, item) = node.sync.take_request().expect("the first blob");
    assert!(node.sync.take_request().is_none(), "the later events wait for it");
    assert!(node.sync.take_action().is_none());
    let (status, body) = world.answer(&item).unwrap();
    assert_eq!(body, b"one");
    node.sync.on_response(blob, Ok((status, &body)), 11);
    let got = node.settle(&world);
    assert_eq!(
        summary(&got),
        [
            format!("put {ECHO} q 3B"),
            format!("compose {PIPE} function echo (in) => (out);"),
            format!("delete {ECHO}"),
            format!("put {ECHO} q 5B")
        ]
    );
}

#[test]
fn a_stream_cut_anywhere_mid_object_gives_the_same_changes() {
    for piece in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 1000] {
        let mut world = World::default();
        let mut node = Node { piece, ..Node::new() };
        node.settle(&world);
        world.put_function("acme", "echo", "q", b"image");
        let pipe = Key::new("acme", Kind::Composition, "pipe");
        world.put(&pipe, b"function echo (in) => (out);");
        world.delete(&pipe);
        let got = node.settle(&world);
        assert_eq!(
            summary(&got),
            [
                format!("put {ECHO} q 5B"),
                format!("compose {PIPE} function echo (in) => (out);"),
                format!("delete {PIPE}")
            ],
            "pieces of {piece} bytes"
        );
        assert_eq!(node.sync.stats().resyncs, 0);
    }
}

#[test]
fn a_broken_stream_means_a_range_read_and_a_new_watch_and_nothing_is_lost() {
    let mut world = World::default();
    let echo = world.put_function("acme", "echo", "q", b"image");
    let mut node = Node::new();
    assert_eq!(node.settle(&world).len(), 1);
    // Half a message, then the connection drops.
    let (ticket, _) = node.watch.unwrap();
    node.sync.on_watch_data(ticket, br#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"ke"#, 5);
    node.cut("bad_response: the stream broke: the connection closed before the body ended (60 body bytes)");
    assert!(!node.sync.watching());
    assert!(node.sync.take_error().unwrap().contains("the stream broke"));
    assert_eq!(node.sync.stats().resyncs, 1);
    // Meanwhile: a delete and a new function, which the old watch never sent.
    world.delete(&echo);
    world.put_function("acme", "two", "q", b"image 2");
    let retry_at = node.sync.next_wakeup_ms().unwrap();
    assert_eq!(retry_at, node.now + 200, "the first retry comes soon");
    assert!(node.settle(&world).is_empty(), "not before the backoff");
    let got = node.retry(&world);
    assert_eq!(summary(&got), [format!("delete {ECHO}"), "put /pappus/v1/tenants/acme/functions/two q 7B".to_string()]);
    assert!(node.sync.watching());
    assert_eq!(node.sync.stats().rounds, 2);
    // A stale stream's bytes and end are ignored.
    node.sync.on_watch_data(ticket, b"garbage\n", node.now);
    node.sync.on_watch_end(ticket, Ok(()), node.now);
    assert!(node.sync.watching());
    // etcd ending the response itself is a resync too.
    let (current, _) = node.watch.unwrap();
    node.sync.on_watch_end(current, Ok(()), node.now);
    assert!(node.sync.take_error().unwrap().contains("etcd ended the watch"));
    assert!(node.retry(&world).is_empty());
    assert!(node.sync.watching());
}

#[test]
fn compaction_and_cancel_mean_a_range_read_again() {
    let mut world = World::default();
    world.put_function("acme", "echo", "q", b"image");
    let mut node = Node::new();
    node.settle(&world);
    // The node's watch is cancelled because its start was compacted away (say after a cut).
    node.cut("refused");
    world.put_function("acme", "echo", "q", b"image 2");
    world.put_function("acme", "echo", "q", b"image 3");
    world.compacted = world.revision;
    // Its range read sees revision 3; the world compacts again to 5 before the watch opens.
    let got = node.retry(&world);
    assert_eq!(summary(&got), [format!("put {ECHO} q 7B")]);
    let (ticket, _) = node.watch.unwrap();
    let cancel = r#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5"}}"#;
    node.sync.on_watch_data(ticket, format!("{cancel}\n").as_bytes(), node.now);
    assert!(!node.sync.watching());
    assert!(node.sync.take_error().unwrap().contains("compacted the history to revision 5"));
    node.retry(&world);
    assert!(node.sync.watching());
    let (ticket, _) = node.watch.unwrap();
    let cancel = r#"{"result":{"header":{"revision":"9"},"canceled":true,"cancel_reason":"leader changed"}}"#;
    node.sync.on_watch_data(ticket, format!("{cancel}\n").as_bytes(), node.now);
    assert!(node.sync.take_error().unwrap().contains("cancelled the watch: leader changed"));
    let (_, rounds) = (node.retry(&world), node.sync.stats().rounds);
    assert_eq!(rounds, 4);
    assert!(node.sync.watching());
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_the_node_keeps_serving() {
    let mut world = World::default();
    let key = world.put_function("acme", "echo", "engine=wasm", b"good image");
    let digest = FunctionValue::for_image("", b"good image").digest;
    world.blobs.insert(digest, b"evil image".to_vec());
    let mut node = Node::new();
    assert!(node.settle(&world).is_empty());
    assert_eq!((node.sync.stats().errors, node.sync.stats().digest_mismatches), (1, 1));
    assert!(node.sync.take_error().unwrap().contains("refused"));
    // Not fetched again until the key changes.
    node.now += 10_000;
    assert!(node.settle(&world).is_empty());
    assert_eq!(node.sync.stats().errors, 1);
    // A fixed deploy goes through (through the watch).
    world.put_function("acme", "echo", "engine=wasm", b"fixed");
    let got = node.settle(&world);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key(), &key);
    // A missing blob is an error too.
    world
        .put(&Key::new("acme", Kind::Function, "gone"), FunctionValue::for_image("q", b"nowhere").to_json().as_bytes());
    assert!(node.settle(&world).is_empty());
    assert!(node.sync.take_error().unwrap().contains("answered 404"));
    assert_eq!(node.sync.stats().resyncs, 0);
}

#[test]
fn etcd_down_keeps_what_was_applied_retries_with_backoff_and_catches_up() {
    let mut world = World::default();
    world.put_function("acme", "echo", "q", b"image");
    let mut node = Node::new();
    assert_eq!(node.settle(&world).len(), 1);
    world.etcd_down = true;
    node.cut("bad_response: the stream broke: the connection closed before the body ended (0 body bytes)");
    world.put_function("acme", "two", "q", b"image 2");
    let mut waits = Vec::new();
    for _ in 0..6 {
        let before = node.now;
        assert!(node.retry(&world).is_empty(), "no deletions while etcd is unreachable");
        waits.push(node.now - before - 1);
        assert_eq!(node.sync.etcd(), EtcdState::Unreachable);
    }
    assert_eq!(waits, [200, 400, 800, 1600, 2000, 2000], "backoff doubling to max_retry_ms");
    assert_eq!(node.sync.stats().etcd_failures, 6);
    assert_eq!(node.sync.held(), 1);
    world.etcd_down = false;
    let got = node.retry(&world);
    assert_eq!(summary(&got), ["put /pappus/v1/tenants/acme/functions/two q 7B"]);
    assert_eq!(node.sync.etcd(), EtcdState::Up);
    assert!(node.sync.watching());
    // A good watch message ends the failures in a row: the next cut is retried soon again.
    node.cut("refused");
    assert_eq!(node.sync.next_wakeup_ms(), Some(node.now + 200));
}

#[test]
fn a_node_that_boots_while_etcd_is_down_syncs_when_it_returns() {
    let mut world = World { etcd_down: true, ..World::default() };
    world.put_function("acme", "echo", "q", b"image");
    let mut node = Node::new();
    assert!(node.settle(&world).is_empty());
    for _ in 0..3 {
        assert_eq!(node.sync.etcd(), EtcdState::Unreachable);
        assert!(node.retry(&world).is_empty());
    }
    world.etcd_down = false;
    assert_eq!(node.retry(&world).len(), 1);
    assert!(node.sync.watching());
}

#[test]
fn a_watch_that_cannot_open_is_retried_with_backoff() {
    // etcd answers range reads but the watch fails (say a proxy that does not stream):
    // the node keeps in sync by range reads, each after a longer wait.
    let mut world = World::default();
    world.put_function("acme", "echo", "q", b"image");
    let mut node = Node::new();
    node.sync.poll(0);
    let (ticket, item) = node.sync.take_request().unwrap();
    let (status, body) = world.answer(&item).unwrap();
    node.sync.on_response(ticket, Ok((status, &body)), 1);
    let (blob, item) = node.sync.take_request().unwrap();
    let (status, body) = world.answer(&item).unwrap();
    let (watch, _) = node.sync.take_watch_request().unwrap();
    node.sync.on_watch_end(watch, Err("bad_response: etcd answered 404 to the watch"), 2);
    assert!(!node.sync.watching());
    assert_eq!(node.sync.next_wakeup_ms(), None, "not while a blob is on the way");
    node.sync.on_response(blob, Ok((status, &body)), 3);
    assert_eq!(summary(&[node.sync.take_action().unwrap()]), [format!("put {ECHO} q 5B")]);
    assert_eq!(node.sync.next_wakeup_ms(), Some(202));
}

#[test]
fn bad_watch_messages_are_errors_then_a_range_read() {
    for message in [
        &b"not json"[..],
        b"{}",
        br#"{"result":{"events":7}}"#,
        br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#,
    ] {
        let world = World::default();
        let mut node = Node::new();
        node.settle(&world);
        let (ticket, _) = node.watch.unwrap();
        node.sync.on_watch_data(ticket, message, 5);
        assert!(node.sync.watching(), "not a whole message yet");
        node.sync.on_watch_data(ticket, b"\n", 5);
        assert!(!node.sync.watching(), "{}", String::from_utf8_lossy(message));
        assert!(node.sync.take_error().is_some());
        assert!(node.retry(&world).is_empty());
        assert!(node.sync.watching());
    }
    // Events that cannot be read are counted; the others apply, and the watch goes on.
    let mut world = World::default();
    let mut node = Node::new();
    node.settle(&world);
    let (ticket, _) = node.watch.unwrap();
    world.put_function("acme", "echo", "q", b"image");
    let good = world.history.last().unwrap().1.clone();
    let message = format!(
        r#"{{"result":{{"header":{{"revision":"1"}},"events":[{{"type":"EXPIRE","kv":{{}}}},{{"kv":{{"key":7}}}},{{}},{{"kv":{{"key":"L290aGVy","mod_revision":"1"}}}},{good}]}}}}"#
    );
    node.sync.on_watch_data(ticket, format!("{message}\n\n").as_bytes(), 5);
    node.watch = Some((ticket, 2));
    assert_eq!(node.sync.stats().errors, 3, "{:?}", node.sync.take_error());
    assert!(node.sync.watching());
    assert_eq!(summary(&node.settle(&world)), [format!("put {ECHO} q 5B")]);
    // A message over the limit ends the watch, however it is split.
    let mut node =
        Node { sync: Sync::new(SyncConfig { max_message_bytes: 200, ..SyncConfig::new(ETCD, BLOBS) }), ..Node::new() };
    node.settle(&World::default());
    let (ticket, _) = node.watch.unwrap();
    assert!(node.sync.watching());
    node.sync.on_watch_data(ticket, &[b' '; 120], 5);
    assert!(node.sync.watching());
    node.sync.on_watch_data(ticket, &[b' '; 120], 5);
    assert!(!node.sync.watching());
    assert!(node.sync.take_error().unwrap().contains("over 200 bytes"));
}

#[test]
fn a_blob_that_does_not_come_is_fetched_again_after_a_range_read() {
    let mut world = World::default();
    let mut node = Node::new();
    node.settle(&world);
    world.put_function("acme", "echo", "q", b"image");
    let (ticket, from) = node.watch.unwrap();
    node.sync.on_watch_data(ticket, &world.watch_messages(from), 5);
    let (blob, _) = node.sync.take_request().expect("the blob is asked for");
    assert_eq!(node.sync.held(), 0, "not held while its image is on the way (healthz would say so too early)");
    node.sync.on_response(blob, Err("refused: 10.77.0.1:8081 refused the connection"), 6);
    assert_eq!((node.sync.held(), node.sync.stats().errors), (0, 1));
    assert!(!node.sync.watching(), "the watch would not send this key again");
    node.watch = None;
    let got = node.retry(&world);
    assert_eq!(summary(&got), [format!("put {ECHO} q 5B")]);
    assert_eq!(node.sync.held(), 1);
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
        if sync.watching() {
            // The result could be read in part (bad entries skipped): in sync, watching.
            let (watch, _) = sync.take_watch_request().unwrap();
            sync.on_watch_end(watch, Err("refused"), now);
        }
    }
    // A 500 from etcd: unreachable, not a parse error.
    now = sync.next_wakeup_ms().unwrap();
    sync.poll(now);
    let (ticket, _) = sync.take_request().unwrap();
    sync.on_response(ticket, Ok((500, b"oops")), now);
    assert_eq!(sync.etcd(), EtcdState::Unreachable);
    // Unknown tickets are ignored.
    sync.on_response(12345, Ok((200, b"{}")), now);
    sync.on_watch_data(12345, b"{}\n", now);
    sync.on_watch_end(12345, Ok(()), now);
}

#[test]
fn a_refused_change_is_counted() {
    let mut sync = new_sync();
    sync.applied(&Key::new("ghost", Kind::Function, "f"), Err("no tenant 'ghost' on this node".into()));
    assert_eq!(sync.stats().errors, 1);
    assert!(sync.take_error().unwrap().contains("ghost"));
}

proptest::proptest! {
    /// Any bytes from etcd or the blob server: no panic, and the sync either follows a watch
    /// or has a range read due.
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
        proptest::prop_assert!(sync.next_wakeup_ms().is_some() || sync.watching());
    }

    /// Any bytes on the watch, in any pieces: no panic, and the sync either still follows the
    /// watch or has a range read due.
    #[test]
    fn any_watch_bytes_are_survived(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                                    cut in 1usize..50) {
        let mut node = Node::new();
        node.settle(&World::default());
        let (ticket, _) = node.watch.unwrap();
        for piece in data.chunks(cut) {
            node.sync.on_watch_data(ticket, piece, 5);
        }
        while let Some((t, _)) = node.sync.take_request() {
            node.sync.on_response(t, Err("refused"), 6);
        }
        proptest::prop_assert!(node.sync.next_wakeup_ms().is_some() || node.sync.watching());
    }
}
