//! The node's sync with etcd as a state machine: told the time and what each HTTP request
//! returned, it says which requests to send and which changes to apply.
//!
//! One round: a range read of the whole prefix (`POST /v3/kv/range` on etcd's JSON gateway);
//! its keys' `mod_revision`s compared with what this node applied; for each function that is
//! new or changed, its blob fetched (`GET <blobs>/<digest>`) and its SHA-256 checked; then the
//! actions, in order: deletions, functions, compositions (a composition may apply a function
//! registered in the same round). A round starts [`SyncConfig::poll_ms`] after the last one
//! ended, so a change reaches the node within about that plus one round's time. Why polling and
//! not `/v3/watch`: see docs/fleet.md ("Keeping in sync").
//!
//! A change that cannot be applied (bad value, bad digest, the node refusing the function) is
//! counted and not tried again until its key changes; etcd unreachable leaves everything
//! applied as it is, and the next round tries again.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_http::MemoryGate;

use crate::layout::{FunctionValue, Key, Kind, PREFIX, range_end, sha256_hex};

/// Where the state and the blobs are, and how often to look.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// etcd's client URL, `http://A.B.C.D:2379` (no trailing slash).
    pub etcd: String,
    /// The blob server's URL; a blob is `<blobs>/<digest>`.
    pub blobs: String,
    /// From the end of one round to the start of the next.
    pub poll_ms: u64,
    /// Asked before a range result is parsed (with a generous multiple of its size): a no
    /// ends the round as an error, and the node keeps what it has.
    pub memory: MemoryGate,
}

impl SyncConfig {
    pub fn new(etcd: &str, blobs: &str) -> Self {
        Self {
            etcd: etcd.trim_end_matches('/').to_string(),
            blobs: blobs.trim_end_matches('/').to_string(),
            poll_ms: 400,
            memory: MemoryGate::ALWAYS,
        }
    }
}

/// What the node should do to match the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Register or replace a function: the registration query and the verified image.
    PutFunction { key: Key, query: String, image: Vec<u8> },
    /// Register or replace a composition: its source.
    PutComposition { key: Key, source: Vec<u8> },
    /// Delete a function or a composition.
    Delete { key: Key },
}

impl Action {
    pub fn key(&self) -> &Key {
        match self {
            Self::PutFunction { key, .. } | Self::PutComposition { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// How etcd looked at the last round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdState {
    /// No round has ended yet.
    Unknown,
    Up,
    /// The last range read got no answer (connection refused, timeout) or not a 200.
    Unreachable,
}

impl EtcdState {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Unreachable => "unreachable",
        }
    }
}

/// What one HTTP request came back with: a status and a body, or the client's error.
pub type Fetched<'a> = Result<(u16, &'a [u8]), &'a str>;

/// Counters for `/metrics` and `/healthz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Rounds started.
    pub rounds: u64,
    /// Range reads that got no 200 answer.
    pub etcd_failures: u64,
    /// Changes applied (register, replace, delete), as the node reported.
    pub applied: u64,
    /// Everything that went wrong: bad range results, bad values, blobs missing or with the
    /// wrong digest, changes the node refused.
    pub errors: u64,
    /// Of `errors`, blobs whose SHA-256 was not their key's digest.
    pub digest_mismatches: u64,
}

/// A request in flight: what its answer is for.
#[derive(Clone, Debug)]
enum Purpose {
    Range,
    Blob { key: Key, mod_revision: u64, value: FunctionValue },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next round, which starts at `at` (ms).
    Idle { at: u64 },
    /// The range read is out.
    Ranging,
    /// Blob fetches are out; `compositions` wait for them.
    Fetching,
}

pub struct Sync {
    config: SyncConfig,
    phase: Phase,
    etcd: EtcdState,
    /// The store revision of the last good range read.
    revision: u64,
    /// What this node holds from the fleet's state (applied or tried: see the module's docs),
    /// by key: the `mod_revision` it was at.
    held: BTreeMap<Key, u64>,
    /// Requests to send, with their tickets.
    outgoing: VecDeque<(u64, Vec<u8>)>,
    in_flight: BTreeMap<u64, Purpose>,
    next_ticket: u64,
    actions: VecDeque<Action>,
    /// Composition puts of this round with their keys' revisions, held until its blobs are in.
    compositions: Vec<(Action, u64)>,
    stats: SyncStats,
    last_error: Option<String>,
}

impl Sync {
    /// A sync that starts its first round at the first [`poll`](Self::poll).
    pub fn new(config: SyncConfig) -> Self {
        Self {
            config,
            phase: Phase::Idle { at: 0 },
            etcd: EtcdState::Unknown,
            revision: 0,
            held: BTreeMap::new(),
            outgoing: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_ticket: 0,
            actions: VecDeque::new(),
            compositions: Vec::new(),
            stats: SyncStats::default(),
            last_error: None,
        }
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub fn etcd(&self) -> EtcdState {
        self.etcd
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Keys this node holds from the fleet's state.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The last thing that went wrong, for the log.
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// Starts a round when one is due; whether anything moved.
    pub fn poll(&mut self, now_ms: u64) -> bool {
        match self.phase {
            Phase::Idle { at } if now_ms >= at => {
                self.stats.rounds += 1;
                let item = self.range_request();
                self.send(item, Purpose::Range);
                self.phase = Phase::Ranging;
                true
            }
            _ => false,
        }
    }

    /// When the next round is due, while waiting for one (ms).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::Idle { at } => Some(at),
            _ => None,
        }
    }

    /// The next request to send: its ticket (to hand back to [`on_response`](Self::on_response))
    /// and the `http` function's request item (docs/wire-formats.md).
    pub fn take_request(&mut self) -> Option<(u64, Vec<u8>)> {
        self.outgoing.pop_front()
    }

    /// The next change to apply. The node reports how it went with [`applied`](Self::applied).
    pub fn take_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// How an action went: counted; a refusal is an error that names the key.
    pub fn applied(&mut self, key: &Key, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.stats.applied += 1,
            Err(e) => self.error(format!("{}: {e}", key.path())),
        }
    }

    /// What request `ticket` came back with.
    pub fn on_response(&mut self, ticket: u64, fetched: Fetched<'_>, now_ms: u64) {
        let Some(purpose) = self.in_flight.remove(&ticket) else { return };
        match purpose {
            Purpose::Range => self.on_range(fetched, now_ms),
            Purpose::Blob { key, mod_revision, value } => {
                self.on_blob(key, mod_revision, &value, fetched);
                if self.in_flight.is_empty() {
                    self.end_round(now_ms);
                }
            }
        }
    }

    fn send(&mut self, item: Vec<u8>, purpose: Purpose) {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.in_flight.insert(ticket, purpose);
        self.outgoing.push_back((ticket, item));
    }

    fn range_request(&self) -> Vec<u8> {
        let body = format!(
            r#"{{"key":"{}","range_end":"{}"}}"#,
            B64.encode(PREFIX.as_bytes()),
            B64.encode(range_end(PREFIX.as_bytes()))
        );
        format!("POST {}/v3/kv/range\r\nContent-Type: application/json\r\n\r\n{body}", self.config.etcd).into_bytes()
    }

    fn error(&mut self, message: String) {
        self.stats.errors += 1;
        self.last_error = Some(message);
    }

    fn end_round(&mut self, now_ms: u64) {
        for (action, mod_revision) in self.compositions.drain(..) {
            self.held.insert(action.key().clone(), mod_revision);
            self.actions.push_back(action);
        }
        self.phase = Phase::Idle { at: now_ms.saturating_add(self.config.poll_ms) };
    }

    fn on_range(&mut self, fetched: Fetched<'_>, now_ms: u64) {
        let body = match fetched {
            Ok((200, body)) => body,
            Ok((status, _)) => {
                self.unreachable(format!("etcd answered {status} to the range read"), now_ms);
                return;
            }
            Err(e) => {
                self.unreachable(format!("etcd: {e}"), now_ms);
                return;
            }
        };
        self.etcd = EtcdState::Up;
        if !self.config.memory.allows(body.len().saturating_mul(4)) {
            self.error(format!("no memory to read a {}-byte range result", body.len()));
            self.end_round(now_ms);
            return;
        }
        let desired = match parse_range(body) {
            Ok(desired) => desired,
            Err(e) => {
                self.error(format!("etcd range result: {e}"));
                self.end_round(now_ms);
                return;
            }
        };
        self.revision = desired.revision;
        // Deletions: held keys no longer in etcd.
        let gone: Vec<Key> = self.held.keys().filter(|k| !desired.kvs.contains_key(*k)).cloned().collect();
        for key in gone {
            self.held.remove(&key);
            self.actions.push_back(Action::Delete { key });
        }
        for (key, (mod_revision, value)) in desired.kvs {
            if self.held.get(&key) == Some(&mod_revision) {
                continue;
            }
            // A key is held at a revision from the moment its action is handed over (the node
            // applies it in the same pass), or its value is found bad: applied or refused, it
            // is not tried again until it changes. A function waits for its blob first.
            match key.kind {
                Kind::Composition => {
                    self.compositions.push((Action::PutComposition { key, source: value }, mod_revision));
                }
                Kind::Function => match FunctionValue::parse(&value) {
                    Ok(value) => {
                        let item = format!("GET {}/{}\r\n\r\n", self.config.blobs, value.digest).into_bytes();
                        self.send(item, Purpose::Blob { key, mod_revision, value });
                    }
                    Err(e) => {
                        self.error(format!("{}: {e}", key.path()));
                        self.held.insert(key, mod_revision);
                    }
                },
            }
        }
        for e in desired.errors {
            self.error(e);
        }
        if self.in_flight.is_empty() {
            self.end_round(now_ms);
        } else {
            self.phase = Phase::Fetching;
        }
    }

    fn unreachable(&mut self, message: String, now_ms: u64) {
        self.etcd = EtcdState::Unreachable;
        self.stats.etcd_failures += 1;
        self.last_error = Some(message);
        self.end_round(now_ms);
    }

    fn on_blob(&mut self, key: Key, mod_revision: u64, value: &FunctionValue, fetched: Fetched<'_>) {
        let image = match fetched {
            Ok((200, body)) => body,
            Ok((status, _)) => {
                self.held.insert(key.clone(), mod_revision);
                self.error(format!("{}: blob {} answered {status}", key.path(), value.digest));
                return;
            }
            Err(e) => {
                // The blob server may be down for a moment: not held, so the next round tries
                // again.
                self.error(format!("{}: blob {}: {e}", key.path(), value.digest));
                return;
            }
        };
        let digest = sha256_hex(image);
        if digest != value.digest || image.len() as u64 != value.size {
            self.stats.digest_mismatches += 1;
            self.held.insert(key.clone(), mod_revision);
            self.error(format!(
                "{}: blob {} has SHA-256 {digest} and {} bytes (expected {} bytes): refused",
                key.path(),
                value.digest,
                image.len(),
                value.size
            ));
            return;
        }
        let mut copy = Vec::new();
        if copy.try_reserve_exact(image.len()).is_err() {
            self.error(format!("{}: no memory for a {}-byte image; next round", key.path(), image.len()));
            return;
        }
        copy.extend_from_slice(image);
        self.held.insert(key.clone(), mod_revision);
        self.actions.push_back(Action::PutFunction { key, query: value.query.clone(), image: copy });
    }
}

/// A range result: the store's revision, the layout's keys with their `mod_revision` and
/// value, and what was wrong with the others.
#[derive(Debug, Default)]
struct Desired {
    revision: u64,
    kvs: BTreeMap<Key, (u64, Vec<u8>)>,
    errors: Vec<String>,
}

/// etcd's JSON gateway writes 64-bit integers as strings.
fn int_field(value: &serde_json::Value, name: &str) -> Option<u64> {
    match value.get(name)? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn parse_range(body: &[u8]) -> Result<Desired, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let header = value.get("header").ok_or("no \"header\"")?;
    let revision = int_field(header, "revision").ok_or("no header revision")?;
    let mut desired = Desired { revision, ..Desired::default() };
    let kvs = match value.get("kvs") {
        None => return Ok(desired),
        Some(serde_json::Value::Array(kvs)) => kvs,
        Some(_) => return Err("\"kvs\" is not a list".to_string()),
    };
    for kv in kvs {
        let decode = |name: &str| -> Result<Vec<u8>, String> {
            match kv.get(name) {
                // etcd leaves out empty fields: an empty value has no "value".
                None => Ok(Vec::new()),
                Some(serde_json::Value::String(s)) => B64.decode(s).map_err(|e| format!("{name} is not base64: {e}")),
                Some(_) => Err(format!("{name} is not a string")),
            }
        };
        let entry = decode("key").and_then(|key| {
            let key = String::from_utf8(key).map_err(|_| "a key is not UTF-8".to_string())?;
            let mod_revision = int_field(kv, "mod_revision").ok_or_else(|| format!("{key}: no mod_revision"))?;
            Ok((key, mod_revision, decode("value")?))
        });
        match entry {
            Ok((key, mod_revision, value)) => {
                if let Some(parsed) = Key::parse(&key) {
                    desired.kvs.insert(parsed, (mod_revision, value));
                }
            }
            Err(e) => desired.errors.push(e),
        }
    }
    Ok(desired)
}
