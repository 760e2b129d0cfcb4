//! Suite `fleet`: wall-clock invocations per second through HAProxy for fleets of 1, 2 and 3
//! nodes (`cargo xtask fleet up`, docs/fleet.md), and what making each fleet took.
//!
//! For each size: the fleet is made, the `template` function (wasm, uppercases its input) is
//! deployed with the fleet's etcd (the time until every node holds it is a figure too), then
//! [`CLIENTS`] client threads send invocations through HAProxy for [`SECONDS`] seconds, one
//! connection per request, every answer checked; then the fleet is taken down.
//!
//! What a 2-core host can show: every node is a QEMU process under TCG (one host thread per
//! vCPU, plus QEMU's I/O thread), and HAProxy, etcd and the clients share the same two cores.
//! A second node can add throughput only while a core is idle; a third node cannot add a core
//! that is not there, so on this machine the figures measure the fleet's overhead and the
//! balancing, not scale-out. On a rack each node has its own CPUs and the sum grows with nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pappus::http::{self, Endpoint, Request};

use super::report::{note, record};
use crate::fleet;
use crate::util::{Failure, Result, say};

/// Concurrent clients through HAProxy.
const CLIENTS: usize = 4;
/// How long each size is loaded.
const SECONDS: u64 = 15;
const PORT: u16 = 18290;

pub fn run() -> Result {
    let wasm = pappus_tests::functions::wasm("template");
    let mut table = String::from(
        "| nodes | fleet up (s) | deploy to every node (ms) | invocations/s | errors |\n|---|---|---|---|---|\n",
    );
    for nodes in 1..=3 {
        let _ = fleet::down();
        let started = Instant::now();
        let state = fleet::up(nodes, PORT, PORT + 1)?;
        let up_s = started.elapsed().as_secs_f64();
        let result = measure(&state, nodes, &wasm);
        let _ = fleet::down();
        let (deploy_ms, rate, errors) = result?;
        record(&format!("fleet.up_s_{nodes}"), format!("{up_s:.1}"), "s");
        record(&format!("fleet.deploy_to_all_ms_{nodes}"), deploy_ms, "ms");
        record(&format!("fleet.invocations_per_s_{nodes}"), format!("{rate:.1}"), "invocations/s");
        let _ = std::fmt::Write::write_fmt(
            &mut table,
            format_args!("| {nodes} | {up_s:.1} | {deploy_ms} | {rate:.1} | {errors} |\n"),
        );
    }
    note(&format!(
        "{table}\n{CLIENTS} clients, {SECONDS} s per size, through HAProxy (leastconn). On a 2-core host \
         every node's TCG vCPU, HAProxy, etcd and the clients share two cores: more nodes cannot add \
         cores, so these figures show the fleet's overhead and balancing, not scale-out.\n"
    ));
    Ok(())
}

fn invoke(port: u16, token: &str, body: &[u8]) -> std::result::Result<(u16, Vec<u8>), String> {
    let endpoint = Endpoint { host: "127.0.0.1".into(), port, prefix: String::new() };
    let request = Request::new("POST", "/v1/invoke/upper")
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/octet-stream")
        .body(body);
    http::send(&endpoint, &request, Duration::from_secs(30)).map(|r| (r.status, r.body)).map_err(|e| e.to_string())
}

/// Deploys, waits for every node, loads: the deploy's time to every node (ms), invocations/s,
/// and the errors seen.
fn measure(state: &fleet::State, nodes: usize, wasm: &[u8]) -> Result<(u128, f64, u64)> {
    let target = pappus::fleet::Fleet::new(&fleet::State::etcd_url(), "dev").map_err(|e| Failure(e.0))?;
    let deployed = Instant::now();
    target.put_function("upper", "engine=wasm&inputs=lines&outputs=upper", wasm).map_err(|e| Failure(e.0))?;
    loop {
        let held = (1..=nodes).all(|k| {
            fleet::get(&format!("http://{}:8080/v1/functions/upper", fleet::node_ip(k)), Some(&state.token))
                .is_some_and(|(status, _)| status == 200)
        });
        if held {
            break;
        }
        if deployed.elapsed() > Duration::from_secs(30) {
            return Err(Failure("the function did not reach every node within 30 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let deploy_ms = deployed.elapsed().as_millis();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (stop, done, errors, token, port) =
                (stop.clone(), done.clone(), errors.clone(), state.token.clone(), state.port);
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("client {c} request {i}");
                    match invoke(port, &token, body.as_bytes()) {
                        Ok((200, answer)) if answer == body.to_uppercase().as_bytes() => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(SECONDS));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = done.load(Ordering::Relaxed) as f64 / seconds;
    let errors = errors.load(Ordering::Relaxed);
    say(format!("fleet of {nodes}: {} invocations in {seconds:.1} s, {errors} errors", done.load(Ordering::Relaxed)));
    Ok((deploy_ms, rate, errors))
}
