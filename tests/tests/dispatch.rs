//! The dispatcher under load: more concurrent invocations than the node holds get either their
//! own correct result or a 503 with `Retry-After` — none lost, none mixed up — and the node
//! serves normally afterwards with its memory back at the baseline.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_tests::node::{Node, Tenant, boot_arch, read_response};
use pappus_tests::sets::{decode, texts};
use pappus_tests::{Arch, functions};
use serde_json::{Value, json};

const TENANT: Tenant = Tenant { name: "load", token: "dispatch-token-0123456789ab" };
/// The control plane's `max_live_invocations` (kernel/control/src/limits.rs).
const LIVE_INVOCATIONS: usize = 64;

fn deploy_wordcount(node: &Node) {
    let auth = format!("Bearer {}", TENANT.token);
    let r = node.request(
        "PUT",
        "/v1/functions/wordcount?engine=wasm&inputs=texts&outputs=counts&timeout_ms=30000",
        &[("Authorization", &auth)],
        &functions::wasm("wordcount"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// A word count request whose answer only this request can have: `tag` `times` times.
fn wordcount_request(tag: &str, times: usize) -> Vec<u8> {
    let text = vec![tag; times].join(" ");
    let body = serde_json::to_vec(&json!({"sets": {"texts": [{"name": "t", "data": B64.encode(text)}]}})).unwrap();
    let mut out = format!(
        "POST /v1/invoke/wordcount HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        TENANT.token,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The counts of a word count answer.
fn counts(body: &[u8]) -> Vec<(String, String)> {
    texts(&decode(body), "counts")
}

fn overload_gets_each_its_own_answer_or_503_on(test: &str, arch: Arch) {
    let Some(node) = boot_arch(test, arch, &[TENANT]) else { return };
    deploy_wordcount(&node);
    // The baseline is a node that has run an invocation: its first one allocates tables that
    // stay (the control plane's maps, the metrics' rows), which is not a leak.
    let mut s = node.connect();
    s.write_all(&wordcount_request("warm", 1)).unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    let baseline = node.baseline();
    // 100 connections, opened one after the other (QEMU's forwarded port has a backlog of one,
    // see tests/network.rs), each then pipelining 7 invocations at once: 700 invocations, more
    // than 10x the 64 the node holds live.
    const CONNECTIONS: usize = 100;
    const PER_CONNECTION: usize = 7;
    const { assert!(CONNECTIONS * PER_CONNECTION >= 10 * LIVE_INVOCATIONS) };
    let mut open = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut s = node.connect();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
        open.push((s, reader));
    }
    let handles: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(c, (mut s, mut reader)): (usize, (TcpStream, _))| {
            thread::spawn(move || {
                let mut batch = Vec::new();
                for k in 0..PER_CONNECTION {
                    batch.extend(wordcount_request(&format!("c{c}r{k}"), k + 1));
                }
                s.write_all(&batch).map_err(|e| format!("connection {c}: {e}"))?;
                let (mut ok, mut busy) = (0, 0);
                for k in 0..PER_CONNECTION {
                    let r = read_response(&mut reader).map_err(|e| format!("connection {c} answer {k}: {e}"))?;
                    match r.status {
                        200 => {
                            let want = vec![(format!("c{c}r{k}"), (k + 1).to_string())];
                            if counts(&r.body) != want {
                                return Err(format!("connection {c} answer {k}: {:?}, want {want:?}", r.text()));
                            }
                            ok += 1;
                        }
                        503 if r.header("retry-after").is_some() => busy += 1,
                        other => return Err(format!("connection {c} answer {k}: {other} {}", r.text())),
                    }
                }
                Ok::<_, String>((ok, busy))
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for h in handles {
        let (o, b) = h.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}", node.qemu.tail(20)));
        ok += o;
        busy += b;
    }
    assert_eq!(ok + busy, CONNECTIONS * PER_CONNECTION, "every invocation answered");
    assert!(ok > 0 && busy > 0, "{ok} answered, {busy} refused: the node was not overloaded");
    eprintln!("overload: {ok} answered, {busy} refused with 503");
    node.assert_healthy(baseline, "an overload");
    // The operator sees the same split, by target (the warm-up call is one more `ok`).
    let target = |outcome: &str| {
        node.metric(&format!(
            "pappus_invocations_by_target_total{{tenant=\"load\",target=\"wordcount\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!((target("ok"), target("rejected")), (ok as u64 + 1, busy as u64));
    assert!(node.metric("pappus_invocation_latency_ms_count") > ok as u64, "every answer has a latency");
    // And it still runs functions.
    let mut s = node.connect();
    s.write_all(&wordcount_request("after", 2)).unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!((r.status, counts(&r.body)), (200, vec![("after".into(), "2".into())]));
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

fn single_core_mode_serves_while_a_function_computes_on(test: &str, arch: Arch) {
    let Some(node) = boot_arch(test, arch, &[TENANT]) else { return };
    let auth = format!("Bearer {}", TENANT.token);
    let spin =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run") (loop $l (br $l))))"#).unwrap();
    let r = node.request(
        "PUT",
        "/v1/functions/spin?engine=wasm&inputs=in&outputs=out&memory=64KiB&timeout_ms=20000",
        &[("Authorization", &auth)],
        &spin,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // One CPU (the default test node): the I/O core runs the loop itself, for up to 20 s.
    let mut busy = node.connect();
    let head =
        format!("POST /v1/invoke/spin HTTP/1.1\r\nHost: p\r\nAuthorization: {auth}\r\nContent-Length: 1\r\n\r\nx");
    busy.write_all(head.as_bytes()).unwrap();
    thread::sleep(std::time::Duration::from_millis(300)); // let the run start
    // The front door answers meanwhile: it is served between the run's turns.
    for _ in 0..3 {
        let r = node.call("GET", "/healthz", b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    busy.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let still_running = matches!(busy.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(still_running, "the health checks were answered only after the run ended");
    // It ran in turns: parked in the queue between them while the loop served the network.
    assert!(node.metric("pappus_preemptions_total") > 0, "the wasm run was never parked between turns");
    // The client goes away (a reset: a FIN alone may be a half-close that still wants the
    // answer): the invocation is cancelled and the parked run is dropped from the queue, long
    // before its budget; it never finished on the core.
    reset(busy);
    let cancelled = "pappus_invocations_total{outcome=\"cancelled\"}";
    for _ in 0..200 {
        if node.call("GET", "/metrics", b"").text().contains(&format!("{cancelled} 1")) {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(node.metric(cancelled), 1);
    let metrics = node.call("GET", "/metrics", b"").text();
    assert!(
        !metrics.lines().any(|l| l.starts_with("pappus_run_queue_depth{") && !l.ends_with(" 0")),
        "the cancelled run is still queued:\n{metrics}"
    );
    assert_eq!(node.metric("pappus_core_runs_total{cpu=\"0\",role=\"io+compute\"}"), 0, "the spin ended by itself");
}

fn compositions_agree_on_1_2_and_4_cpus_and_fan_out_across_cores_on(test: &str, arch: Arch) {
    functions::compositions_agree_across_cores(test, arch);
}

/// `concat (a = anyEach s, b = all marks)` over seven items on a node with `smp` CPUs: each
/// instance's part of `s` followed by the mark, so the answer shows where the node cut.
fn adaptive_cut(test: &str, arch: Arch, smp: u32) -> Option<(Vec<String>, String)> {
    let node = pappus_tests::node::boot_with(test, arch, &[TENANT], Some(smp))?;
    let auth = format!("Bearer {}", TENANT.token);
    let source = "function concat (a, b) => (out);\n\
                  composition cut (s, marks) => (out) { concat (a = anyEach s, b = all marks) => (out = out); }";
    let r = node.request("PUT", "/v1/compositions/cut", &[("Authorization", &auth)], source.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let item = |d: &str| json!({"name": d, "data": B64.encode(d)});
    let s: Vec<Value> = ["1", "2", "3", "4", "5", "6", "7"].into_iter().map(item).collect();
    let body = serde_json::to_vec(&json!({"sets": {"s": s, "marks": [item("|")]}})).unwrap();
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let r = node.request("POST", "/v1/invoke/cut", &headers, &body);
    assert_eq!(r.status, 200, "-smp {smp}: {}", r.text());
    let out = texts(&decode(&r.body), "out").into_iter().map(|(_, t)| t).collect();
    Some((out, node.qemu.lines().join("\n")))
}

fn adaptive_inputs_aim_at_the_compute_cores_on(test: &str, arch: Arch) {
    // Single-core mode: one instance, the whole set (like `all`).
    let Some((one, log)) = adaptive_cut(test, arch, 1) else { return };
    assert!(log.contains("aim at 1 instance(s)"), "{log}");
    assert_eq!(one, ["1", "2", "3", "4", "5", "6", "7", "|"]);
    // Three compute cores: three even runs of consecutive items, 3 + 2 + 2.
    let (four, log) = adaptive_cut(test, arch, 4).unwrap();
    assert!(log.contains("aim at 3 instance(s)"), "{log}");
    assert_eq!(four, ["1", "2", "3", "|", "4", "5", "|", "6", "7", "|"]);
}

fn the_boot_configuration_sets_address_roles_and_limits_on(test: &str, arch: Arch) {
    let config = format!(
        "tenant {} {}\nip 10.0.2.15/24\ngateway 10.0.2.2\ncompute 0\nlimit invocations 1\n",
        TENANT.name, TENANT.token
    );
    let Some(node) = pappus_tests::node::boot_with_config(test, arch, &config, Some(2)) else {
        return;
    };
    let log = node.qemu.lines().join("\n");
    assert!(log.contains("static address"), "no DHCP with `ip` configured:\n{log}");
    assert!(log.contains("single-core mode"), "`compute 0` keeps functions on the I/O core:\n{log}");
    assert!(log.contains("config: limit invocations 1"), "{log}");
    // One live invocation at most: a second while a `sleep` holds the first is 503.
    let auth = format!("Bearer {}", TENANT.token);
    let mut first = node.connect();
    let head =
        format!("POST /v1/invoke/sleep HTTP/1.1\r\nHost: p\r\nAuthorization: {auth}\r\nContent-Length: 4\r\n\r\n2000");
    first.write_all(head.as_bytes()).unwrap();
    thread::sleep(std::time::Duration::from_millis(300));
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", &auth)], b"x");
    assert_eq!(r.status, 503, "{}", r.text());
    let r = read_response(&mut BufReader::new(first)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", &auth)], b"x");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A wasm module whose `run` counts to `n` and pushes the count (little-endian u32) as item `n`
/// of its first output set.
/// Registers [`counting_wasm`]`(n)` as TENANT's wasm function `count` (input `in`, output
/// `out`) with `timeout_ms`; returns TENANT's `Authorization` value.
fn register_count(node: &Node, n: u32, timeout_ms: u64) -> String {
    let auth = format!("Bearer {}", TENANT.token);
    let path = format!("/v1/functions/count?engine=wasm&inputs=in&outputs=out&timeout_ms={timeout_ms}");
    let r = node.request("PUT", &path, &[("Authorization", &auth)], &counting_wasm(n));
    assert_eq!(r.status, 201, "{}", r.text());
    auth
}

fn counting_wasm(n: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "pappus" "output_push" (func $output_push (param i32 i32 i32 i32 i64 i32 i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "n")
             (func (export "run") (local $i i32)
               (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
               (i32.store (i32.const 16) (local.get $i))
               (call $output_push (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i64.const 0) (i32.const 16) (i32.const 4))))"#
    ))
    .unwrap()
}

/// Two tenants on two CPUs (one compute core): tenant `load` runs a wasm loop of seconds; it is
/// parked between turns and queued behind tenant `other`'s invocations, which are answered while
/// it runs; then it gives its exact answer.
fn a_long_wasm_run_shares_the_compute_core_with_another_tenant_on(test: &str, arch: Arch) {
    const OTHER: Tenant = Tenant { name: "other", token: "other-dispatch-token-0123456789" };
    let Some(node) = pappus_tests::node::boot_with(test, arch, &[TENANT, OTHER], Some(2)) else {
        return;
    };
    let n = 50_000_000u32;
    let auth = register_count(&node, n, 240_000);
    let other = format!("Bearer {}", OTHER.token);
    let wc = "/v1/functions/wordcount?engine=wasm&inputs=texts&outputs=counts&timeout_ms=30000";
    let r = node.request("PUT", wc, &[("Authorization", &other)], &functions::wasm("wordcount"));
    assert_eq!(r.status, 201, "{}", r.text());

    let started = std::time::Instant::now();
    let mut long = node.connect();
    long.set_read_timeout(Some(std::time::Duration::from_secs(300))).unwrap();
    let head =
        format!("POST /v1/invoke/count HTTP/1.1\r\nHost: p\r\nAuthorization: {auth}\r\nContent-Length: 1\r\n\r\nx");
    long.write_all(head.as_bytes()).unwrap();
    thread::sleep(std::time::Duration::from_millis(500));
    let text = pappus_tests::sets::item("t", b"the cat and the hat");
    let body = serde_json::to_vec(&json!({"sets": {"texts": [text]}})).unwrap();
    for round in 0..3 {
        let r = node.request(
            "POST",
            "/v1/invoke/wordcount",
            &[("Authorization", &other), ("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert_eq!(counts(&r.body).len(), 4, "round {round}");
    }
    long.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let still_running = matches!(long.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    long.set_nonblocking(false).unwrap();
    let parked = node.metric("pappus_preemptions_total");
    eprintln!(
        "{test}: 3 invocations of the other tenant served {:?} after the loop started; still running: {still_running}; parked {parked} times",
        started.elapsed()
    );
    assert!(still_running, "the other tenant was served only after the long run ended");
    assert!(parked > 0, "the wasm run was never parked");
    let r = read_response(&mut BufReader::new(long)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(decode(&r.body)["out"], vec![("n".to_string(), n.to_le_bytes().to_vec())]);
    eprintln!(
        "{test}: the loop answered after {:?}, parked {} times in all",
        started.elapsed(),
        node.metric("pappus_preemptions_total")
    );
    // Between its turns the run went back in the queue, sometimes taken by the helping I/O
    // core; whoever queued it must have woken the idle compute core, which otherwise found it
    // only at its 100 ms backstop.
    assert_eq!(node.metric("pappus_run_queue_stalls_total"), 0, "queued work waited for a backstop");
}

/// Runs of several turns, one after another, on an I/O core and one compute core: each is
/// queued for the compute core (woken for it), goes back in the queue after each turn, and is
/// sometimes taken by the helping I/O core. Whoever queues it must see that an idle compute
/// core hears of it: none may wait for the core's 100 ms backstop. (Measured before the fix:
/// eight of ten 64×64 matmuls on `-smp 2` waited for it, at half the single-core rate.)
fn multi_turn_runs_never_wait_for_a_backstop_on(test: &str, arch: Arch) {
    let Some(node) = pappus_tests::node::boot_with(test, arch, &[TENANT], Some(2)) else {
        return;
    };
    let n = 1_500_000u32;
    let auth = register_count(&node, n, 60_000);
    let parked_before = node.metric("pappus_preemptions_total");
    for i in 0..8 {
        let r = node.request("POST", "/v1/invoke/count", &[("Authorization", &auth)], b"x");
        assert_eq!(r.status, 200, "run {i}: {}", r.text());
        assert_eq!(decode(&r.body)["out"], vec![("n".to_string(), n.to_le_bytes().to_vec())], "run {i}");
    }
    let parked = node.metric("pappus_preemptions_total") - parked_before;
    let stalls = node.metric("pappus_run_queue_stalls_total");
    eprintln!("{test}: 8 runs parked {parked} times between turns; {stalls} waited for a backstop");
    assert!(parked >= 8, "the runs took a single turn each ({parked} parked): too short to test turns");
    assert_eq!(stalls, 0, "queued work waited for a compute core's backstop");
}

// Every test above, on both architectures: `name` boots x86_64 (q35), `aarch64::name` the
// aarch64 `virt` board (`-cpu max`, GICv3, secondaries through PSCI `CPU_ON`, the run queue's
// wake-ups as SGIs, the CNTV timer parking a wasm run between turns). No test here is
// x86_64-only: the dispatcher, the run queue and the core roles are shared code.
pappus_tests::on_both_arches! {
    overload_gets_each_its_own_answer_or_503 => overload_gets_each_its_own_answer_or_503_on,
    single_core_mode_serves_while_a_function_computes => single_core_mode_serves_while_a_function_computes_on,
    compositions_agree_on_1_2_and_4_cpus_and_fan_out_across_cores => compositions_agree_on_1_2_and_4_cpus_and_fan_out_across_cores_on,
    adaptive_inputs_aim_at_the_compute_cores => adaptive_inputs_aim_at_the_compute_cores_on,
    the_boot_configuration_sets_address_roles_and_limits => the_boot_configuration_sets_address_roles_and_limits_on,
    a_long_wasm_run_shares_the_compute_core_with_another_tenant => a_long_wasm_run_shares_the_compute_core_with_another_tenant_on,
    multi_turn_runs_never_wait_for_a_backstop => multi_turn_runs_never_wait_for_a_backstop_on,
}
