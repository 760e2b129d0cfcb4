//! An `each` fan-out of the `identity` builtin over N items, through the whole control plane:
//! decoding the invoke body (binary or JSON sets), planning, starting instances, collecting their
//! results, assembling the output set and encoding the answer. Pure runtime work, so callgrind
//! over it measures the control plane and the planner alone (`cargo xtask bench model` does).
//!
//! ```text
//! cargo run --release -p pappus-control --example invoke_fanout [ITEMS] [json|binary] [each|keyed]
//! ```
//!
//! It runs with the kernel's allocator and `ControlLimits::DEFAULT` (bounded steps), and prints
//! the number of `poll` calls the answer took after the request's own step.

use control::{ControlLimits, ControlPlane, Prepared, Reply, Runtime, Started, StoredFunction, Ticket};
use model::wire::{WireLimits, binary, json};
use model::{Bytes, FunctionSpec, Item, Set, TenantId, TokenTable};
use pappus_http::{Headers, Request, Version};
use std::sync::Arc;

const TOKEN: &str = "bench-token-0123456789ab";
const PROGRAM: &str = "function identity (in) => (out);\n\
composition fan (xs) => (ys) {\n    identity (in = each xs) => (ys = out);\n}\n";
const KEYED: &str = "function identity (in) => (out);\n\
composition groups (xs) => (ys) {\n    identity (in = keyed xs) => (ys = out);\n}\n";

/// Builtins only: nothing reaches the runtime.
struct NoHost;

impl Runtime for NoHost {
    fn prepare(&mut self, _: &FunctionSpec, image: &Bytes, _room: u64) -> Result<Prepared, control::RunError> {
        Ok(Prepared::new(image.clone(), image.len() as u64))
    }

    fn start(&mut self, _: Ticket, _: TenantId, _: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started {
        Started::Busy(inputs)
    }
}

fn request(method: &str, path: &str, content_type: &str, accept: &str, body: Vec<u8>) -> Request {
    let mut headers = Headers::new();
    headers.push("Authorization", format!("Bearer {TOKEN}"));
    headers.push("Content-Type", content_type);
    headers.push("Accept", accept);
    Request { method: method.into(), path: path.into(), query: None, version: Version::Http11, headers, body }
}

fn fail(what: &str) -> ! {
    eprintln!("fanout: {what}");
    std::process::exit(1);
}

#[path = "common/kernel_heap.rs"]
mod kernel_heap;

const ARENA: usize = 1 << 30;

fn claim_arena() {
    kernel_heap::claim_arena(ARENA).unwrap_or_else(|e| fail(e));
}

fn main() {
    claim_arena();
    let mut args = std::env::args().skip(1);
    let items: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let format = args.next().unwrap_or_else(|| "binary".into());
    // `keyed`: every item its own key, in descending order, so grouping sorts them all.
    let keyed = args.next().is_some_and(|a| a == "keyed");
    let tokens = TokenTable::parse(format!("tenant bench {TOKEN}\n").as_bytes()).unwrap_or_else(|_| fail("tokens"));
    let mut plane = ControlPlane::new(tokens, ControlLimits::DEFAULT);
    let mut runtime = NoHost;

    for (name, source) in [("fan", PROGRAM), ("groups", KEYED)] {
        let path = format!("/v1/compositions/{name}");
        let put = request("PUT", &path, "text/plain", "application/json", source.as_bytes().to_vec());
        match plane.handle(put, 0, &mut runtime) {
            Reply::Now(r) if r.status < 300 => {}
            other => fail(&format!("composition upload: {other:?}")),
        }
    }

    let input = Set {
        name: "xs".into(),
        items: (0..items)
            .map(|i| Item {
                name: format!("i{i}").into(),
                key: keyed.then_some((items - i) as u64),
                data: Bytes::from(format!("{i:08}").into_bytes()),
            })
            .collect(),
    };
    let (media, body) = match format.as_str() {
        "json" => ("application/json", json::encode(&[input]).unwrap_or_else(|e| fail(&e.to_string())).into_bytes()),
        _ => ("application/x-pappus-sets", binary::encode(&[input]).unwrap_or_else(|e| fail(&e.to_string()))),
    };
    let path = if keyed { "/v1/invoke/groups" } else { "/v1/invoke/fan" };
    let invoke = request("POST", path, media, media, body);
    let (mut polls, mut now) = (0u64, 0u64);
    let response = match plane.handle(invoke, now, &mut runtime) {
        Reply::Now(r) => r,
        Reply::Pending(id) => loop {
            now += 1;
            polls += 1;
            plane.poll(now, &mut runtime);
            if let Some(r) = plane.take_response(id) {
                break r;
            }
            if polls > 1 << 24 {
                fail("never finished");
            }
        },
    };
    if response.status != 200 {
        fail(&format!("status {}: {}", response.status, String::from_utf8_lossy(&response.body)));
    }
    let sets = match format.as_str() {
        "json" => json::decode(&response.body, &WireLimits::DEFAULT).unwrap_or_else(|e| fail(&e.to_string())),
        _ => binary::decode(&Bytes::from(response.body), &WireLimits::DEFAULT).unwrap_or_else(|e| fail(&e.to_string())),
    };
    let out = sets.first().map_or(0, |s| s.items.len());
    if out != items {
        fail(&format!("{out} output items for {items} inputs"));
    }
    println!("items: {items}");
    println!("polls: {polls}");
}
