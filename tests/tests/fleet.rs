//! A three-node fleet (docs/fleet.md), made by `cargo xtask fleet up`: nodes network-boot
//! through SeaBIOS and iPXE from dnsmasq, sync their state from etcd, and serve through HAProxy;
//! Prometheus scrapes them. One test walks the issue's acceptance points in order, since the
//! fleet takes a while to make:
//!
//! 1. a function deployed with `--fleet` answers through HAProxy from every node (each node's
//!    `/metrics` counts invocations of it), and Prometheus's sum of the fleet's invocation
//!    counter equals the requests sent, with every target up;
//! 2. a replace and a delete reach every node through its etcd watch (no range read counted in
//!    between; the time each took is printed; a limit of 10 s only catches a sync that stopped);
//! 3. load through HAProxy while a node is killed: every answer is right or a clean retriable
//!    error, none hangs; the node boots again, resyncs, and HAProxy routes to it again;
//! 4. a node booted while etcd is down serves, and gets the state once etcd is back, without a
//!    reboot.
//!
//! Needs root (a network namespace, a bridge, TAPs) and dnsmasq, etcd, HAProxy and Prometheus
//! (`cargo xtask test` installs them). `fleet down` runs however the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pappus_tests::{qemu_tests_enabled, target_dir, workspace_root};

const NODES: usize = 3;
const ETCD: &str = "http://10.77.0.1:2379";
/// A limit that only a stopped sync reaches (the target, 2 s, is measured and printed).
const SYNC_LIMIT: Duration = Duration::from_secs(10);

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn xtask(args: &[&str]) -> String {
    let out = cargo().arg("xtask").args(args).stderr(Stdio::inherit()).output().expect("cannot run cargo xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "cargo xtask {} failed:\n{stdout}", args.join(" "));
    stdout
}

/// Takes the fleet down when the test ends, passed or not.
struct Fleet {
    port: u16,
    token: String,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = cargo().args(["xtask", "fleet", "down"]).status();
    }
}

fn node_ip(k: usize) -> String {
    format!("10.77.0.{}", 10 + k)
}

/// One HTTP/1.1 exchange (Connection: close): status and body, or the I/O error.
fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.set_nodelay(true).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

fn node_get(k: usize, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    http(&format!("{}:8080", node_ip(k)), "GET", path, token, b"").ok()
}

/// Node `k`'s `/healthz` `"fleet"` object.
fn fleet_health(k: usize) -> Option<serde_json::Value> {
    let (_, body) = node_get(k, "/healthz", None)?;
    serde_json::from_str::<serde_json::Value>(&body).ok().map(|v| v["fleet"].clone())
}

/// Node `k`'s value of the unlabelled metric `name`, from its `/metrics`.
fn node_metric(k: usize, name: &str, operator: &str) -> Option<u64> {
    let (_, text) = node_get(k, "/metrics", Some(operator)).filter(|(status, _)| *status == 200)?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `ready` holds; how long it took.
fn wait(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {} s", limit.as_secs());
}

/// The operator's token, from the fleet's state.
fn operator() -> String {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(target_dir().join("fleet/state.json")).unwrap()).unwrap();
    state["operator"].as_str().unwrap().to_string()
}

/// Node `k`'s count of ok invocations of `target`, from its `/metrics`.
fn node_invocations(k: usize, target: &str, operator: &str) -> u64 {
    let Some((200, text)) = node_get(k, "/metrics", Some(operator)) else { return 0 };
    let needle = format!("target=\"{target}\",outcome=\"ok\"}} ");
    text.lines().find_map(|l| l.split_once(&needle).and_then(|(_, v)| v.trim().parse().ok())).unwrap_or(0)
}

fn invoke(fleet: &Fleet, name: &str, body: &[u8]) -> Result<(u16, String), String> {
    invoke_at(fleet.port, &fleet.token, name, body)
}

fn invoke_at(port: u16, token: &str, name: &str, body: &[u8]) -> Result<(u16, String), String> {
    http(&format!("127.0.0.1:{port}"), "POST", &format!("/v1/invoke/{name}"), Some(token), body)
}

/// The template function (uppercases its input) as a file to deploy.
fn template_wasm() -> PathBuf {
    let path = target_dir().join("tmp").join("fleet-template.wasm");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, pappus_tests::functions::wasm("template")).unwrap();
    path
}

fn deploy(wasm: &std::path::Path, outputs: &str) {
    let wasm = wasm.to_str().unwrap();
    xtask(&["fn", "deploy", wasm, "--name", "upper", "--inputs", "lines", "--outputs", outputs, "--fleet", ETCD]);
}

/// Every node's GET of the function says `outputs` (or, for `None`, that there is none).
fn every_node_has(token: &str, outputs: Option<&str>) -> bool {
    (1..=NODES).all(|k| match (node_get(k, "/v1/functions/upper", Some(token)), outputs) {
        (Some((200, body)), Some(out)) => body.contains(&format!("\"outputs\":[\"{out}\"]")),
        (Some((404, _)), None) => true,
        _ => false,
    })
}

fn prometheus_query(port: u16, query: &str) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}", query.replace(' ', "%20").replace('"', "%22"));
    let (_, body) = http(&format!("127.0.0.1:{port}"), "GET", &path, None, b"").unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn three_node_fleet() {
    if !qemu_tests_enabled("three_node_fleet") {
        return;
    }
    let suite = Instant::now();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let prometheus = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // A fleet left over by an earlier run that was killed.
    let _ = cargo().args(["xtask", "fleet", "down"]).output();
    let up = Instant::now();
    let mut child = cargo()
        .args(["xtask", "fleet", "up", "--nodes", &NODES.to_string(), "--port", &port.to_string()])
        .args(["--prometheus-port", &prometheus.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let status = child.wait().unwrap();
    let token = ready.split_whitespace().find_map(|w| w.strip_prefix("token=")).map(str::to_string);
    let fleet = Fleet { port, token: token.clone().unwrap_or_default() };
    assert!(status.success() && ready.starts_with("pappus fleet ready: "), "fleet up failed: {ready:?}");
    assert!(ready.contains(&format!("http://127.0.0.1:{port} nodes={NODES} token=")), "{ready}");
    eprintln!("fleet: up with {NODES} nodes in {:.1} s", up.elapsed().as_secs_f64());
    let token = fleet.token.clone();
    let operator = operator();

    // 1. Deploy to the fleet; every node loads it and answers through HAProxy.
    let wasm = template_wasm();
    let deployed = Instant::now();
    deploy(&wasm, "upper");
    let took = wait("every node registers the function", SYNC_LIMIT, || every_node_has(&token, Some("upper")));
    eprintln!("fleet: deploy reached every node {:.2} s after the command returned", took.as_secs_f64());
    let _ = deployed;
    const REQUESTS: usize = 30;
    for i in 0..REQUESTS {
        let (status, body) = invoke(&fleet, "upper", format!("hello {i}").as_bytes()).unwrap();
        assert_eq!(status, 200, "{body}");
        let want = base64_of(format!("HELLO {i}").as_bytes());
        assert!(body.contains(&want), "request {i}: {body}");
    }
    let per_node: Vec<u64> = (1..=NODES).map(|k| node_invocations(k, "upper", &operator)).collect();
    eprintln!("fleet: {REQUESTS} requests through HAProxy, per node {per_node:?}");
    assert!(per_node.iter().all(|&n| n > 0), "every node serves: {per_node:?}");
    assert_eq!(per_node.iter().sum::<u64>(), REQUESTS as u64);

    // Prometheus: every target up, and the fleet's counter sums to the requests sent.
    let query = r#"sum(pappus_invocations_by_target_total{target="upper",outcome="ok"})"#;
    wait("Prometheus sees every node up and every request", Duration::from_secs(30), || {
        let up = prometheus_query(prometheus, "up");
        let targets = up["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
        let all_up = up["data"]["result"].as_array().is_some_and(|r| r.iter().all(|s| s["value"][1] == "1"));
        let sum = prometheus_query(prometheus, query);
        let total = sum["data"]["result"][0]["value"][1].as_str().unwrap_or("0").to_string();
        targets == NODES && all_up && total == REQUESTS.to_string()
    });
    let (_, targets) = http(&format!("127.0.0.1:{prometheus}"), "GET", "/api/v1/targets", None, b"").unwrap();
    assert_eq!(targets.matches("\"health\":\"up\"").count(), NODES, "{targets}");
    eprintln!("fleet: Prometheus: {NODES} targets up, {query} = {REQUESTS}");

    // 2. Replace (new output name), then delete: through each node's watch, not new range reads.
    let ranges = |k| node_metric(k, "pappus_fleet_rounds_total", &operator).expect("pappus_fleet_rounds_total");
    let before: Vec<u64> = (1..=NODES).map(ranges).collect();
    deploy(&wasm, "shout");
    let took = wait("the replace reaches every node", SYNC_LIMIT, || every_node_has(&token, Some("shout")));
    eprintln!("fleet: replace reached every node in {:.2} s (target 2 s)", took.as_secs_f64());
    let (status, body) = invoke(&fleet, "upper", b"x").unwrap();
    assert!(status == 200 && body.contains("\"shout\""), "{status} {body}");
    xtask(&["fn", "rm", "upper", "--fleet", ETCD]);
    let took = wait("the delete reaches every node", SYNC_LIMIT, || every_node_has(&token, None));
    eprintln!("fleet: delete reached every node in {:.2} s (target 2 s)", took.as_secs_f64());
    assert_eq!(invoke(&fleet, "upper", b"x").unwrap().0, 404);
    for k in 1..=NODES {
        let health = fleet_health(k).unwrap();
        assert_eq!(health["watching"], true, "node {k}: {health}");
        assert_eq!(ranges(k), before[k - 1], "node {k}: the replace and delete came without a range read");
        let events = node_metric(k, "pappus_fleet_watch_events_total", &operator).unwrap();
        assert!(events >= 2, "node {k}: {events} watch events");
    }

    // 3. Load while node 2 is killed; it boots again, resyncs, and is routed to again.
    deploy(&wasm, "upper");
    wait("every node registers the function again", SYNC_LIMIT, || every_node_has(&token, Some("upper")));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, token) = (stop.clone(), token.clone());
        std::thread::spawn(move || {
            let (mut ok, mut retriable, mut i) = (0, 0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                match invoke_at(port, &token, "upper", format!("load {i}").as_bytes()) {
                    Ok((200, body)) => {
                        assert!(body.contains(&base64_of(format!("LOAD {i}").as_bytes())), "wrong answer {i}: {body}");
                        ok += 1;
                    }
                    Ok((502..=504, _)) => retriable += 1,
                    Ok((status, body)) => panic!("request {i}: {status} {body}"),
                    // A connection HAProxy closed: the client sees it at once and may retry.
                    Err(e) => {
                        assert!(started.elapsed() < Duration::from_secs(30), "request {i} hung: {e}");
                        retriable += 1;
                    }
                }
                i += 1;
            }
            (ok, retriable)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    xtask(&["fleet", "kill", "2"]);
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, retriable) = load.join().expect("every answer was right or retriable");
    eprintln!("fleet: load during the kill: {ok} right answers, {retriable} retriable errors, none wrong or hung");
    assert!(ok > 0);
    let before = node_invocations(2, "upper", &operator);
    assert_eq!(before, 0, "node 2 is off");
    let booted = Instant::now();
    xtask(&["fleet", "boot", "2"]);
    wait("node 2 boots and resyncs", Duration::from_secs(300), || {
        fleet_health(2).is_some_and(|f| f["held"] == 1 && f["etcd"] == "up")
    });
    eprintln!("fleet: node 2 booted and resynced in {:.1} s", booted.elapsed().as_secs_f64());
    wait("HAProxy routes to node 2 again", Duration::from_secs(60), || {
        let _ = invoke(&fleet, "upper", b"again");
        node_invocations(2, "upper", &operator) > 0
    });

    // 4. Node 3 boots while etcd is down, serves, and syncs once etcd is back.
    xtask(&["fleet", "etcd", "stop"]);
    xtask(&["fleet", "kill", "3"]);
    xtask(&["fleet", "boot", "3"]);
    wait("node 3 serves with etcd down", Duration::from_secs(300), || {
        fleet_health(3).is_some_and(|f| f["etcd"] == "unreachable" && f["held"] == 0)
    });
    let (status, _) = node_get(3, "/v1/functions/upper", Some(&token)).unwrap();
    assert_eq!(status, 404, "nothing synced yet");
    // The others keep serving what they have.
    assert_eq!(invoke(&fleet, "upper", b"still").unwrap().0, 200);
    xtask(&["fleet", "etcd", "start"]);
    let took = wait("node 3 syncs once etcd is back", SYNC_LIMIT, || {
        fleet_health(3).is_some_and(|f| f["held"] == 1 && f["etcd"] == "up")
    });
    eprintln!("fleet: node 3 synced {:.2} s after etcd came back, without a reboot", took.as_secs_f64());
    let (status, body) = node_get(3, "/v1/functions/upper", Some(&token)).unwrap();
    assert_eq!(status, 200, "{body}");
    eprintln!("fleet: suite took {:.1} s", suite.elapsed().as_secs_f64());
    drop(fleet);
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
