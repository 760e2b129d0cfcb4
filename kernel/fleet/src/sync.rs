//! The node's sync with etcd as a state machine: told the time, what each HTTP request
//! returned and what the watch stream sent, it says which requests to send, which watch to
//! keep open, and which changes to apply.
//!
//! 1. **Range read** of the whole prefix (`POST /v3/kv/range` on etcd's JSON gateway) at start
//!    and after anything goes wrong with the watch: its keys' `mod_revision`s compared with what
//!    this node holds; for each function that is new or changed, its blob fetched
//!    (`GET <blobs>/<digest>`) and its SHA-256 checked; then the actions, in order: deletions,
//!    functions, compositions (a composition may apply a function registered with it).
//! 2. **Watch** of the prefix from the range's revision + 1 (`POST /v3/watch`, a streaming
//!    response that sends one JSON object per line per event batch): each event is applied in
//!    order as it comes (put = register/replace, delete = delete); while a function's blob is
//!    on the way, the events after it wait, so the node never applies them out of order.
//! 3. A compaction or cancel message, an `error` message, a malformed or oversized message, a
//!    broken or ended stream, or a blob the blob server did not answer for: the watch is
//!    dropped and a range read follows (from whatever revision etcd is at; nothing is lost,
//!    since the range read compares every key). etcd unreachable (the range read fails) leaves
//!    everything applied as it is and tries again after a backoff ([`SyncConfig::retry_ms`],
//!    doubling to [`SyncConfig::max_retry_ms`]).
//!
//! A change that cannot be applied (bad value, bad digest, the node refusing the function) is
//! counted and not tried again until its key changes.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_http::MemoryGate;

use crate::layout::{FunctionValue, Key, Kind, PREFIX, range_end, sha256_hex};

/// Where the state and the blobs are, and how to retry.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// etcd's client URL, `http://A.B.C.D:2379` (no trailing slash).
    pub etcd: String,
    /// The blob server's URL; a blob is `<blobs>/<digest>`.
    pub blobs: String,
    /// The first wait before a range read again after a failure (etcd unreachable, the watch
    /// broken); it doubles with each failure in a row.
    pub retry_ms: u64,
    /// The longest wait between tries.
    pub max_retry_ms: u64,
    /// The longest watch message (one line of the stream); a longer one drops the watch.
    pub max_message_bytes: usize,
    /// Asked before a range result is parsed (with a generous multiple of its size): a no
    /// ends the round as an error, and the node keeps what it has.
    pub memory: MemoryGate,
}

impl SyncConfig {
    pub fn new(etcd: &str, blobs: &str) -> Self {
        Self {
            etcd: etcd.trim_end_matches('/').to_string(),
            blobs: blobs.trim_end_matches('/').to_string(),
            retry_ms: 200,
            max_retry_ms: 2_000,
            max_message_bytes: 4 << 20,
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

/// How etcd looked at the last range read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdState {
    /// No range read has ended yet.
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
    /// Range reads started.
    pub rounds: u64,
    /// Range reads that got no 200 answer.
    pub etcd_failures: u64,
    /// Watches opened.
    pub watches: u64,
    /// Watch events received (puts and deletes under the prefix).
    pub watch_events: u64,
    /// Watches dropped for a range read: broken or ended streams, compactions, cancels, bad
    /// messages, blobs that did not come.
    pub resyncs: u64,
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
    /// A range read is due at `at` (ms), once no blob is on the way.
    Idle { at: u64 },
    /// The range read is out.
    Ranging,
    /// In sync: the watch is open (or being opened).
    Watching,
}

/// One event of a watch message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Put { key: Key, mod_revision: u64, value: Vec<u8> },
    Delete { key: Key },
}

pub struct Sync {
    config: SyncConfig,
    phase: Phase,
    etcd: EtcdState,
    /// The store revision this node is in sync with: the last good range read's, then each
    /// watch message's.
    revision: u64,
    /// What this node holds from the fleet's state (applied or tried: see the module's docs),
    /// by key: the `mod_revision` it was at.
    held: BTreeMap<Key, u64>,
    /// Requests to send, with their tickets.
    outgoing: VecDeque<(u64, Vec<u8>)>,
    in_flight: BTreeMap<u64, Purpose>,
    next_ticket: u64,
    actions: VecDeque<Action>,
    /// Composition puts with their keys' revisions, held until the blobs on the way are in.
    compositions: Vec<(Action, u64)>,
    /// The watch this sync wants open (its ticket), and the request to open it while not
    /// taken yet.
    watch: Option<u64>,
    watch_request: Option<Vec<u8>>,
    /// The watch stream's bytes since its last complete line.
    partial: Vec<u8>,
    /// Watch events waiting for the blobs on the way.
    pending: VecDeque<Event>,
    /// A blob did not come (transport error): a range read follows once the others are in.
    resync_after_blobs: bool,
    /// Failures in a row (range reads, watches), for the backoff.
    failures: u32,
    stats: SyncStats,
    last_error: Option<String>,
}

impl Sync {
    /// A sync that starts with a range read at the first [`poll`](Self::poll).
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
            watch: None,
            watch_request: None,
            partial: Vec::new(),
            pending: VecDeque::new(),
            resync_after_blobs: false,
            failures: 0,
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

    /// Whether a watch is wanted open (the node is in sync and following changes).
    pub fn watching(&self) -> bool {
        self.watch.is_some()
    }

    /// The last thing that went wrong, for the log.
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// Starts a range read when one is due; whether anything moved.
    pub fn poll(&mut self, now_ms: u64) -> bool {
        match self.phase {
            Phase::Idle { at } if now_ms >= at && self.in_flight.is_empty() => {
                self.stats.rounds += 1;
                self.pending.clear();
                self.resync_after_blobs = false;
                let item = self.range_request();
                self.send(item, Purpose::Range);
                self.phase = Phase::Ranging;
                true
            }
            _ => false,
        }
    }

    /// When a range read is due, while waiting for one (ms).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::Idle { at } if self.in_flight.is_empty() => Some(at),
            _ => None,
        }
    }

    /// The next request to send: its ticket (to hand back to [`on_response`](Self::on_response))
    /// and the `http` function's request item (docs/wire-formats.md).
    pub fn take_request(&mut self) -> Option<(u64, Vec<u8>)> {
        self.outgoing.pop_front()
    }

    /// A watch to open, as a streaming request: its ticket (for
    /// [`on_watch_data`](Self::on_watch_data) and [`on_watch_end`](Self::on_watch_end)) and
    /// the request item.
    pub fn take_watch_request(&mut self) -> Option<(u64, Vec<u8>)> {
        let item = self.watch_request.take()?;
        Some((self.watch?, item))
    }

    /// The watch this sync wants open: a stream with any other ticket is to be closed.
    pub fn watch_ticket(&self) -> Option<u64> {
        self.watch
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
                self.after_blobs(now_ms);
            }
        }
    }

    /// The watch `ticket`'s body bytes (the 200 response's, chunked framing removed), in any
    /// pieces.
    pub fn on_watch_data(&mut self, ticket: u64, data: &[u8], now_ms: u64) {
        if self.watch != Some(ticket) || data.is_empty() {
            return;
        }
        let mut rest = data;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(at);
            rest = &after[1..];
            if self.partial.len().saturating_add(line.len()) > self.config.max_message_bytes {
                self.watch_failed(format!("a watch message over {} bytes", self.config.max_message_bytes), now_ms);
                return;
            }
            let message = if self.partial.is_empty() {
                line.to_vec()
            } else {
                let mut whole = core::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                whole
            };
            if !self.on_message(&message, now_ms) {
                return;
            }
        }
        if self.partial.len().saturating_add(rest.len()) > self.config.max_message_bytes {
            self.watch_failed(format!("a watch message over {} bytes", self.config.max_message_bytes), now_ms);
            return;
        }
        if self.partial.try_reserve(rest.len()).is_err() {
            self.watch_failed("no memory for a watch message".into(), now_ms);
            return;
        }
        self.partial.extend_from_slice(rest);
    }

    /// The watch `ticket` ended: `Ok` when etcd ended the response, the client's error (a
    /// broken stream, a refused connection, a non-200 answer) otherwise. A range read follows.
    pub fn on_watch_end(&mut self, ticket: u64, outcome: Result<(), &str>, now_ms: u64) {
        if self.watch != Some(ticket) {
            return;
        }
        let why = match outcome {
            Ok(()) => "etcd ended the watch".to_string(),
            Err(e) => format!("the watch broke: {e}"),
        };
        self.watch_failed(why, now_ms);
    }

    fn send(&mut self, item: Vec<u8>, purpose: Purpose) {
        let ticket = self.take_ticket();
        self.in_flight.insert(ticket, purpose);
        self.outgoing.push_back((ticket, item));
    }

    fn take_ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        ticket
    }

    fn prefix_json(&self) -> String {
        format!(
            r#""key":"{}","range_end":"{}""#,
            B64.encode(PREFIX.as_bytes()),
            B64.encode(range_end(PREFIX.as_bytes()))
        )
    }

    fn range_request(&self) -> Vec<u8> {
        let body = format!("{{{}}}", self.prefix_json());
        format!("POST {}/v3/kv/range\r\nContent-Type: application/json\r\n\r\n{body}", self.config.etcd).into_bytes()
    }

    fn open_watch(&mut self) {
        let body = format!(
            r#"{{"create_request":{{{},"start_revision":"{}"}}}}"#,
            self.prefix_json(),
            self.revision.saturating_add(1)
        );
        let item =
            format!("POST {}/v3/watch\r\nContent-Type: application/json\r\n\r\n{body}", self.config.etcd).into_bytes();
        self.watch = Some(self.take_ticket());
        self.watch_request = Some(item);
        self.partial = Vec::new();
        self.stats.watches += 1;
    }

    fn error(&mut self, message: String) {
        self.stats.errors += 1;
        self.last_error = Some(message);
    }

    /// The backoff before the next try, after one more failure in a row.
    fn backoff(&mut self) -> u64 {
        let delay = self.config.retry_ms.saturating_mul(1 << self.failures.min(16)).min(self.config.max_retry_ms);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Drops the watch (and the events waiting) for a range read after the backoff.
    fn watch_failed(&mut self, why: String, now_ms: u64) {
        self.stats.resyncs += 1;
        self.last_error = Some(why);
        self.resync(now_ms);
    }

    fn resync(&mut self, now_ms: u64) {
        self.watch = None;
        self.watch_request = None;
        self.partial = Vec::new();
        self.pending.clear();
        let delay = self.backoff();
        self.phase = Phase::Idle { at: now_ms.saturating_add(delay) };
    }

    /// One watch message (a line); false when it ended the watch.
    fn on_message(&mut self, message: &[u8], now_ms: u64) -> bool {
        if message.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        if !self.config.memory.allows(message.len().saturating_mul(4)) {
            self.watch_failed(format!("no memory to read a {}-byte watch message", message.len()), now_ms);
            return false;
        }
        match parse_watch_message(message) {
            Err(e) => {
                self.error(format!("etcd watch message: {e}"));
                self.watch_failed(format!("etcd watch message: {e}"), now_ms);
                false
            }
            Ok(WatchMessage::Ended(why)) => {
                self.watch_failed(why, now_ms);
                false
            }
            Ok(WatchMessage::Events { revision, events, errors }) => {
                // A good message: the watch works, and failures in a row are over.
                self.failures = 0;
                self.etcd = EtcdState::Up;
                if let Some(revision) = revision {
                    self.revision = self.revision.max(revision);
                }
                for e in errors {
                    self.error(e);
                }
                self.stats.watch_events += events.len() as u64;
                self.pending.extend(events);
                self.apply_pending();
                true
            }
        }
    }

    /// Applies waiting events in order while no blob is on the way.
    fn apply_pending(&mut self) {
        while self.in_flight.is_empty() {
            let Some(event) = self.pending.pop_front() else { break };
            match event {
                Event::Delete { key } => {
                    if self.held.remove(&key).is_some() {
                        self.actions.push_back(Action::Delete { key });
                    }
                }
                Event::Put { key, mod_revision, value } => self.desire(key, mod_revision, value),
            }
            if self.in_flight.is_empty() {
                self.flush_compositions();
            }
        }
    }

    fn flush_compositions(&mut self) {
        for (action, mod_revision) in self.compositions.drain(..) {
            self.held.insert(action.key().clone(), mod_revision);
            self.actions.push_back(action);
        }
    }

    /// A blob came back (or did not): once none is on the way, compositions go out, the
    /// waiting events follow, or a range read if a blob did not come.
    fn after_blobs(&mut self, now_ms: u64) {
        if !self.in_flight.is_empty() {
            return;
        }
        self.flush_compositions();
        if self.resync_after_blobs {
            self.resync_after_blobs = false;
            self.stats.resyncs += 1;
            self.resync(now_ms);
            return;
        }
        if self.phase == Phase::Watching {
            self.apply_pending();
        }
    }

    /// The key should be at `mod_revision` with `value`: a composition waits for the blobs on
    /// the way, a function's blob is fetched.
    fn desire(&mut self, key: Key, mod_revision: u64, value: Vec<u8>) {
        if self.held.get(&key) == Some(&mod_revision) {
            return;
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
            self.resync(now_ms);
            return;
        }
        let desired = match parse_range(body) {
            Ok(desired) => desired,
            Err(e) => {
                self.error(format!("etcd range result: {e}"));
                self.resync(now_ms);
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
            self.desire(key, mod_revision, value);
        }
        for e in desired.errors {
            self.error(e);
        }
        // In sync as of `revision`: follow the changes from there on. Events that arrive
        // while blobs are on the way wait for them.
        self.phase = Phase::Watching;
        self.open_watch();
        self.after_blobs(now_ms);
    }

    fn unreachable(&mut self, message: String, now_ms: u64) {
        self.etcd = EtcdState::Unreachable;
        self.stats.etcd_failures += 1;
        self.last_error = Some(message);
        self.resync(now_ms);
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
                // The blob server may be down for a moment: not held, and a range read (once
                // the other blobs are in) tries again.
                self.error(format!("{}: blob {}: {e}", key.path(), value.digest));
                self.resync_after_blobs = true;
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
            self.error(format!("{}: no memory for a {}-byte image; trying again", key.path(), image.len()));
            self.resync_after_blobs = true;
            return;
        }
        copy.extend_from_slice(image);
        self.held.insert(key.clone(), mod_revision);
        self.actions.push_back(Action::PutFunction { key, query: value.query.clone(), image: copy });
    }
}

/// What one watch message says.
enum WatchMessage {
    /// Events (possibly none: the `created` message, a progress notification), with the
    /// header's revision and what was wrong with events that could not be read.
    Events { revision: Option<u64>, events: Vec<Event>, errors: Vec<String> },
    /// The watch is over (compacted, cancelled, an error): why.
    Ended(String),
}

fn parse_watch_message(message: &[u8]) -> Result<WatchMessage, String> {
    let value: serde_json::Value = serde_json::from_slice(message).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(error) = value.get("error") {
        let text = error.get("message").and_then(serde_json::Value::as_str).unwrap_or("no message");
        return Ok(WatchMessage::Ended(format!("etcd ended the watch with an error: {text}")));
    }
    let result = value.get("result").ok_or("neither \"result\" nor \"error\"")?;
    if let Some(compacted) = int_field(result, "compact_revision").filter(|&r| r > 0) {
        return Ok(WatchMessage::Ended(format!("etcd compacted the history to revision {compacted}")));
    }
    if result.get("canceled").and_then(serde_json::Value::as_bool) == Some(true) {
        let reason = result.get("cancel_reason").and_then(serde_json::Value::as_str).unwrap_or("no reason");
        return Ok(WatchMessage::Ended(format!("etcd cancelled the watch: {reason}")));
    }
    let revision = result.get("header").and_then(|h| int_field(h, "revision"));
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let list = match result.get("events") {
        None => return Ok(WatchMessage::Events { revision, events, errors }),
        Some(serde_json::Value::Array(list)) => list,
        Some(_) => return Err("\"events\" is not a list".to_string()),
    };
    for event in list {
        let delete = match event.get("type") {
            None => false,
            Some(serde_json::Value::String(t)) if t == "PUT" => false,
            Some(serde_json::Value::String(t)) if t == "DELETE" => true,
            Some(other) => {
                errors.push(format!("a watch event of type {other}"));
                continue;
            }
        };
        let Some(kv) = event.get("kv") else {
            errors.push("a watch event without \"kv\"".to_string());
            continue;
        };
        match parse_kv(kv) {
            Ok((key, mod_revision, value)) => {
                let Some(key) = Key::parse(&key) else { continue };
                events.push(if delete { Event::Delete { key } } else { Event::Put { key, mod_revision, value } });
            }
            Err(e) => errors.push(e),
        }
    }
    Ok(WatchMessage::Events { revision, events, errors })
}

/// A key-value of etcd's JSON: its key, `mod_revision` and value (base64 decoded).
fn parse_kv(kv: &serde_json::Value) -> Result<(String, u64, Vec<u8>), String> {
    let decode = |name: &str| -> Result<Vec<u8>, String> {
        match kv.get(name) {
            // etcd leaves out empty fields: an empty value has no "value".
            None => Ok(Vec::new()),
            Some(serde_json::Value::String(s)) => B64.decode(s).map_err(|e| format!("{name} is not base64: {e}")),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    let key = decode("key")?;
    let key = String::from_utf8(key).map_err(|_| "a key is not UTF-8".to_string())?;
    let mod_revision = int_field(kv, "mod_revision").ok_or_else(|| format!("{key}: no mod_revision"))?;
    Ok((key, mod_revision, decode("value")?))
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
        match parse_kv(kv) {
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
