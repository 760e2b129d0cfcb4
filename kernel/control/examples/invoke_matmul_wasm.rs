//! A 3×3 f64 matmul invoked through the whole control plane and run by the real wasm engine:
//! the host half of `e2e.matmul3.wasm.*` (`cargo xtask bench e2e`), without HTTP, the network
//! and the dispatcher's queue. Decoding the invoke body (JSON or binary sets, or a raw body),
//! planning, starting the instance (a fresh wasmi store and instance per run, fuel in slices
//! under a deadline as the kernel runs it), collecting the outputs and encoding the answer.
//! Callgrind over it shows where a request's instructions go on the host side:
//!
//! ```text
//! cargo build --release -p pappus-control --example invoke_matmul_wasm
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/invoke_matmul_wasm MATMUL.wasm 100 json
//! callgrind_annotate --inclusive=yes /tmp/cg.out | head -60
//! ```
//!
//! `MATMUL.wasm` is functions/matmul built for wasm32-unknown-unknown (`cargo xtask bench e2e`
//! builds it under functions/target/). It runs with the kernel's allocator (`talc`), checks every
//! answer against the product computed here, and prints the request count; with `SHOW_FUEL`
//! set it prints each run's fuel (wasm instructions and host-call charges: 7,887 for matmul).

use std::collections::VecDeque;
use std::sync::Arc;

use control::{ControlLimits, ControlPlane, Prepared, Reply, RunError, Runtime, Started, StoredFunction, Ticket};
use engine::{Deadline, Engine, Invocation, Limits, TimeBudget};
use model::wire::{WireLimits, binary, json};
use model::{Bytes, FunctionSpec, Item, Set, TenantId, TokenTable};
use pappus_http::{Headers, Request, Version};
use wasm::{WasmConfig, WasmEngine, WasmImage, WasmStep};

const TOKEN: &str = "bench-token-0123456789ab";
const QUERY: &str = "engine=wasm&inputs=matrices&outputs=product&memory=16MiB&timeout_ms=10000";

/// The kernel's runtime, reduced to the wasm engine on this thread: a run starts when the
/// plane starts it, and its result is taken on the plane's next poll, as the dispatcher's are.
struct WasmHost {
    engine: WasmEngine,
    done: VecDeque<(Ticket, Result<Vec<Set>, RunError>)>,
}

/// A deadline that never comes (the kernel's is on the wall clock; under icount it never fires
/// for a 3×3 matmul either).
struct Never;

impl Deadline for Never {
    fn expired(&self) -> bool {
        false
    }
}

impl Runtime for WasmHost {
    fn prepare(&mut self, _: &FunctionSpec, image: &Bytes, _room: u64) -> Result<Prepared, RunError> {
        let prepared =
            self.engine.prepare(image).map_err(|e| RunError::new(e.http_status(), e.code(), e.to_string()))?;
        Ok(Prepared::new(prepared, image.len() as u64))
    }

    fn start(&mut self, ticket: Ticket, _: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started {
        let Some(image) = function.prepared().get::<WasmImage>() else {
            return Started::Done(Err(RunError::new(500, "internal", "not a wasm image")));
        };
        let spec = function.spec();
        let outputs: Vec<String> = spec.outputs().to_vec();
        let limits = Limits::new(spec.memory_bytes(), TimeBudget::from_millis(spec.timeout_ms()));
        let invocation = Invocation { inputs, outputs: &outputs, limits, deadline: Some(&Never) };
        let mut step = self.engine.start(image, invocation);
        let result = loop {
            match step {
                WasmStep::Done(result) => break result,
                WasmStep::Paused(run) => step = run.resume(Some(&Never)),
            }
        };
        if std::env::var_os("SHOW_FUEL").is_some()
            && let Ok(c) = &result
        {
            eprintln!("fuel used: {:?}", c.instructions);
        }
        let result = result.map(|c| c.outputs).map_err(|e| RunError::new(e.http_status(), e.code(), e.to_string()));
        self.done.push_back((ticket, result));
        Started::Running
    }

    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, RunError>)> {
        self.done.pop_front()
    }
}

fn request(method: &str, path: &str, content_type: &str, accept: &str, body: Vec<u8>) -> Request {
    let mut headers = Headers::new();
    headers.push("Authorization", format!("Bearer {TOKEN}"));
    headers.push("Content-Type", content_type);
    headers.push("Accept", accept);
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path.to_string(), None),
    };
    Request { method: method.into(), path: path.into(), query, version: Version::Http11, headers, body }
}

fn fail(what: &str) -> ! {
    eprintln!("invoke_matmul_wasm: {what}");
    std::process::exit(1);
}

#[path = "common/kernel_heap.rs"]
mod kernel_heap;

const ARENA: usize = 256 << 20;

fn claim_arena() {
    kernel_heap::claim_arena(ARENA).unwrap_or_else(|e| fail(e));
}

/// A matrix in matmul's encoding: rows, cols (u32 LE), then the f64s row-major.
fn matrix(rows: u32, cols: u32, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + values.len() * 8);
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&cols.to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn main() {
    claim_arena();
    let mut args = std::env::args().skip(1);
    let module = args.next().unwrap_or_else(|| fail("usage: invoke_matmul_wasm MATMUL.wasm [N] [json|binary|raw]"));
    let requests: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let format = args.next().unwrap_or_else(|| "json".into());
    let image = std::fs::read(&module).unwrap_or_else(|e| fail(&format!("{module}: {e}")));

    let tokens = TokenTable::parse(format!("tenant bench {TOKEN}\n").as_bytes()).unwrap_or_else(|_| fail("tokens"));
    let mut plane = ControlPlane::new(tokens, ControlLimits::DEFAULT);
    let engine = WasmEngine::new(WasmConfig::default()).unwrap_or_else(|e| fail(&e.to_string()));
    let mut runtime = WasmHost { engine, done: VecDeque::new() };
    let put = request("PUT", &format!("/v1/functions/matmul?{QUERY}"), "application/wasm", "application/json", image);
    match plane.handle(put, 0, &mut runtime) {
        Reply::Now(r) if r.status < 300 => {}
        Reply::Now(r) => fail(&format!("register: {} {}", r.status, String::from_utf8_lossy(&r.body))),
        Reply::Pending(_) => fail("register: pending"),
    }

    // The operands and product of `cargo xtask bench e2e`.
    let a: Vec<f64> = (0..9).map(|i| (i * 37 % 101) as f64 / 7.0 - 5.0).collect();
    let b: Vec<f64> = (0..9).map(|i| (i * 53 % 97) as f64 / 3.0 + 0.1).collect();
    let mut c = [0.0f64; 9];
    for i in 0..3 {
        for k in 0..3 {
            for j in 0..3 {
                c[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
            }
        }
    }
    let (a, b, product) = (matrix(3, 3, &a), matrix(3, 3, &b), matrix(3, 3, &c));
    let item = |name: &str, data: &[u8]| Item { name: name.into(), key: None, data: Bytes::from(data.to_vec()) };
    let sets = vec![Set { name: "matrices".into(), items: vec![item("a", &a), item("b", &b)] }];
    let (media, body) = match format.as_str() {
        "json" => ("application/json", json::encode(&sets).unwrap_or_else(|e| fail(&e.to_string())).into_bytes()),
        "binary" => ("application/x-pappus-sets", binary::encode(&sets).unwrap_or_else(|e| fail(&e.to_string()))),
        "raw" => ("application/octet-stream", [a.as_slice(), &b].concat()),
        other => fail(&format!("unknown format {other}")),
    };

    let mut now = 0u64;
    for _ in 0..requests {
        now += 1;
        let invoke = request("POST", "/v1/invoke/matmul", media, media, body.clone());
        let response = match plane.handle(invoke, now, &mut runtime) {
            Reply::Now(r) => r,
            Reply::Pending(id) => {
                let mut polls = 0;
                loop {
                    plane.poll(now, &mut runtime);
                    if let Some(r) = plane.take_response(id) {
                        break r;
                    }
                    polls += 1;
                    if polls > 1000 {
                        fail("never finished");
                    }
                }
            }
        };
        if response.status != 200 {
            fail(&format!("status {}: {}", response.status, String::from_utf8_lossy(&response.body)));
        }
        let got = match format.as_str() {
            "json" => json::decode(&response.body, &WireLimits::DEFAULT).ok().and_then(|s| s.into_iter().next()),
            "binary" => binary::decode(&Bytes::from(response.body), &WireLimits::DEFAULT)
                .ok()
                .and_then(|s| s.into_iter().next()),
            _ => Some(Set { name: "product".into(), items: vec![item("c", &response.body)] }),
        };
        match got.as_ref().map(|s| s.items.as_slice()) {
            Some([only]) if only.data.as_ref() == product.as_slice() => {}
            _ => fail("the product differs from the host's"),
        }
    }
    println!("requests: {requests}");
}
