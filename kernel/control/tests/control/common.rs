//! A fake engine runtime, two tenants, and request helpers shared by the tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;

use control::{
    Comm, ControlLimits, ControlPlane, InvocationId, Prepared, Reply, RunError, Runtime, Started, StoredFunction,
    Ticket,
};
use model::wire::{WireLimits, binary, json};
use model::{Bytes, FunctionSpec, Item, Set, TenantId, TokenTable};
use pappus_http::{Headers, Request, Response, Version};

pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789abcd";

pub fn tokens() -> TokenTable {
    TokenTable::parse(format!("tenant alice {ALICE}\ntenant bob {BOB}\n").as_bytes()).unwrap()
}

/// One call to [`FakeRuntime::run`], as the runtime saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub tenant: TenantId,
    pub function: String,
    /// `set=item,item` per input set (item data as UTF-8).
    pub inputs: Vec<String>,
}

/// An engine that understands images `FAKE:<behaviour>`:
/// - `echo`: outputs are the inputs when the counts match, else every output gets all input items;
/// - `upper`: like `echo`, with data upper-cased;
/// - `const:<text>`: every output gets one item with data `<text>`;
/// - `fault`, `timeout`: fail with 500 `function_failed` / 504 `timeout`;
/// - `extra`: returns one output set too many;
/// - `badname`: returns an item whose name is 300 bytes long.
///
/// `prepare` refuses anything not starting with `FAKE:`, like an engine refusing a bad module.
///
/// Runs finish at once by default. With `deferred` set, `start` only queues them (like a runtime
/// whose other cores run them) and [`FakeRuntime::finish_all`] runs them, in start order or the
/// reverse; `http` instances answer per request item `ok:<text>` (a 200 response with that body,
/// named and keyed like the request) or `err:<text>`.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    pub runs: Vec<Run>,
    pub prepared: Vec<String>,
    pub deferred: bool,
    /// Started and not yet run: (ticket, tenant, function, inputs).
    pub queued: Vec<(Ticket, TenantId, Arc<StoredFunction>, Vec<Set>)>,
    pub completed: VecDeque<(Ticket, Result<Vec<Set>, RunError>)>,
    /// Invocation ids the plane cancelled, in order.
    pub cancelled: Vec<u64>,
    /// When set, the runtime says it is saturated, and `start` hands every instance back.
    pub full: bool,
    /// Deferred instances queued at most: `start` hands the rest back (a bounded run queue).
    pub capacity: Option<usize>,
}

impl FakeRuntime {
    /// Runs every queued instance (latest first when `reverse`), making its result available.
    pub fn finish_all(&mut self, reverse: bool) {
        let mut queued = std::mem::take(&mut self.queued);
        if reverse {
            queued.reverse();
        }
        for (ticket, tenant, function, inputs) in queued {
            let result = self.run(tenant, &function, inputs);
            self.completed.push_back((ticket, result));
        }
    }
}

impl Runtime for FakeRuntime {
    /// The prepared form is the image itself, and holds as many bytes as it has.
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes, _room: u64) -> Result<Prepared, RunError> {
        if !image.starts_with(b"FAKE:") {
            return Err(RunError::bad_image("not a fake module: magic bytes missing"));
        }
        self.prepared.push(spec.name().to_string());
        Ok(Prepared::new(image.clone(), image.len() as u64))
    }

    fn start(&mut self, ticket: Ticket, tenant: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started {
        if self.full || self.capacity.is_some_and(|c| self.queued.len() >= c) {
            return Started::Busy(inputs);
        }
        if self.deferred {
            self.queued.push((ticket, tenant, Arc::clone(function), inputs));
            return Started::Running;
        }
        Started::Done(self.run(tenant, function, inputs))
    }

    fn start_comm(&mut self, ticket: Ticket, comm: Comm, inputs: Vec<Set>) -> Started {
        assert_eq!(comm, Comm::Http);
        let (mut responses, mut bodies, mut errors) = (Set::new("responses"), Set::new("bodies"), Set::new("errors"));
        for request in inputs.into_iter().flat_map(|s| s.items) {
            let text = String::from_utf8_lossy(&request.data).into_owned();
            let (kind, rest) = text.split_once(':').unwrap_or(("err", &text));
            let answer = Item { name: request.name.clone(), key: request.key, data: Bytes::from(rest.as_bytes()) };
            if kind == "ok" {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", rest.len());
                responses.items.push(Item { data: Bytes::from(head.as_bytes()), ..answer.clone() });
                bodies.items.push(answer);
            } else {
                errors.items.push(answer);
            }
        }
        let outputs = vec![responses, bodies, errors];
        if self.deferred {
            self.completed.push_back((ticket, Ok(outputs)));
            return Started::Running;
        }
        Started::Done(Ok(outputs))
    }

    fn saturated(&self, _tenant: TenantId) -> bool {
        self.full
    }

    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, RunError>)> {
        self.completed.pop_front()
    }

    fn cancel(&mut self, invocation: u64) {
        self.cancelled.push(invocation);
        self.queued.retain(|(t, ..)| t.invocation != invocation);
        self.completed.retain(|(t, _)| t.invocation != invocation);
    }
}

impl FakeRuntime {
    fn run(&mut self, tenant: TenantId, function: &StoredFunction, inputs: Vec<Set>) -> Result<Vec<Set>, RunError> {
        self.runs.push(Run {
            tenant,
            function: function.name().to_string(),
            inputs: inputs.iter().map(|s| format!("{}={}", s.name, item_texts(s).join(","))).collect(),
        });
        let image = function.prepared().get::<Bytes>().expect("the fake prepared it");
        // Trailing spaces pad images to a size (memory tests).
        let behaviour = std::str::from_utf8(&image[5..]).unwrap().trim_end().to_string();
        let outputs = function.spec().outputs().len();
        let echo = |inputs: Vec<Set>| -> Vec<Set> {
            if inputs.len() == outputs {
                return inputs;
            }
            let all: Vec<Item> = inputs.iter().flat_map(|s| s.items.clone()).collect();
            (0..outputs).map(|_| Set { name: "whatever".into(), items: all.clone() }).collect()
        };
        match behaviour.as_str() {
            "echo" => Ok(echo(inputs)),
            "upper" => Ok(echo(inputs)
                .into_iter()
                .map(|mut s| {
                    for item in &mut s.items {
                        item.data = Bytes::from(item.data.to_ascii_uppercase());
                    }
                    s
                })
                .collect()),
            "fault" => Err(RunError::failed("page fault at 0x0 (rip 0x4010a2)")),
            "timeout" => Err(RunError::timeout("ran past its budget of 1000 ms")),
            "extra" => Ok((0..=outputs).map(|_| Set::new("x")).collect()),
            "badname" => Ok(vec![Set { name: "o".into(), items: vec![item(&"n".repeat(300), "x")] }; outputs]),
            other => match other.strip_prefix("const:") {
                Some(text) => Ok((0..outputs).map(|_| Set { name: "o".into(), items: vec![item("", text)] }).collect()),
                None => Err(RunError::failed(format!("unknown fake behaviour {other}"))),
            },
        }
    }
}

pub fn item(name: &str, data: &str) -> Item {
    Item { name: name.into(), key: None, data: Bytes::from(data.as_bytes()) }
}

pub fn set(name: &str, data: &[&str]) -> Set {
    Set { name: name.into(), items: data.iter().map(|d| item("", d)).collect() }
}

pub fn item_texts(set: &Set) -> Vec<String> {
    set.items.iter().map(|i| String::from_utf8_lossy(&i.data).into_owned()).collect()
}

/// A request: `target` is the path with an optional `?query`.
pub fn request(method: &str, target: &str, token: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut fields = Headers::new();
    if let Some(token) = token {
        fields.push("Authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        fields.push(*name, *value);
    }
    Request {
        method: method.into(),
        path: path.into(),
        query,
        version: Version::Http11,
        headers: fields,
        body: body.to_vec(),
    }
}

pub fn text(response: &Response) -> &str {
    std::str::from_utf8(&response.body).expect("UTF-8 body")
}

/// The control plane, a fake runtime and a clock.
pub struct Harness {
    pub plane: ControlPlane,
    pub runtime: FakeRuntime,
    pub now: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_limits(ControlLimits::default())
    }

    pub fn with_limits(limits: ControlLimits) -> Self {
        Self { plane: ControlPlane::new(tokens(), limits), runtime: FakeRuntime::default(), now: 1_000 }
    }

    pub fn send(&mut self, request: Request) -> Reply {
        self.plane.handle(request, self.now, &mut self.runtime)
    }

    /// A request that must be answered at once.
    pub fn call(&mut self, request: Request) -> Response {
        match self.send(request) {
            Reply::Now(response) => response,
            Reply::Pending(id) => panic!("{id} is pending"),
        }
    }

    /// A request that must stay pending.
    pub fn pending(&mut self, request: Request) -> InvocationId {
        match self.send(request) {
            Reply::Now(response) => panic!("answered at once: {} {}", response.status, text(&response)),
            Reply::Pending(id) => id,
        }
    }

    /// Advances the clock to `now` and polls.
    pub fn poll_at(&mut self, now: u64) -> bool {
        self.now = now;
        self.plane.poll(now, &mut self.runtime)
    }

    pub fn get(&mut self, token: &str, target: &str) -> Response {
        self.call(request("GET", target, Some(token), &[], b""))
    }

    pub fn delete(&mut self, token: &str, target: &str) -> Response {
        self.call(request("DELETE", target, Some(token), &[], b""))
    }

    /// Registers function `name` with the fake image `FAKE:<behaviour>`; asserts 201 or 200.
    pub fn put_function(&mut self, token: &str, name: &str, query: &str, behaviour: &str) -> Response {
        let target = format!("/v1/functions/{name}?{query}");
        let response = self.call(request("PUT", &target, Some(token), &[], format!("FAKE:{behaviour}").as_bytes()));
        assert!(matches!(response.status, 200 | 201), "{} {}", response.status, text(&response));
        response
    }

    /// Registers a composition; asserts 201 or 200.
    pub fn put_composition(&mut self, token: &str, name: &str, source: &str) -> Response {
        let response =
            self.call(request("PUT", &format!("/v1/compositions/{name}"), Some(token), &[], source.as_bytes()));
        assert!(matches!(response.status, 200 | 201), "{} {}", response.status, text(&response));
        response
    }

    /// Invokes with a JSON body, answered at once.
    pub fn invoke_json(&mut self, token: &str, name: &str, sets: &[Set]) -> Response {
        let body = json::encode(sets).unwrap();
        self.call(request(
            "POST",
            &format!("/v1/invoke/{name}"),
            Some(token),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ))
    }
}

/// The JSON body of sets.
pub fn json_sets(sets: &[Set]) -> String {
    json::encode(sets).unwrap()
}

/// Decodes a JSON response body into sets.
pub fn decode_json(response: &Response) -> Vec<Set> {
    json::decode(&response.body, &WireLimits::MODEL).unwrap_or_else(|e| panic!("{e}: {}", text(response)))
}

pub fn decode_binary(response: &Response) -> Vec<Set> {
    binary::decode(&Bytes::from(response.body.clone()), &WireLimits::MODEL).unwrap()
}

/// The `{"error":…}` body the API answers with.
pub fn error_json(code: &str, message: &str) -> String {
    String::from_utf8(Response::error(400, code, message).body).unwrap()
}

/// Asserts an error response's status, code and exact message.
#[track_caller]
pub fn assert_error(response: &Response, status: u16, code: &str, message: &str) {
    assert_eq!((response.status, text(response)), (status, error_json(code, message).as_str()));
    assert_eq!(response.header_value("content-type"), Some("application/json"));
}

/// Asserts an error response's status and code, and that the message contains `part`.
#[track_caller]
pub fn assert_error_contains(response: &Response, status: u16, code: &str, part: &str) {
    let body = text(response);
    assert_eq!(response.status, status, "{body}");
    assert!(body.starts_with(&format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"")), "{body}");
    assert!(body.contains(part), "{body} lacks {part}");
}
