//! Suites `net`, `model` and `wasm`: figures from a booted node over HTTP.
//!
//! Instruction figures come from a boot under `-icount shift=0`, where the guest TSC counts guest
//! instructions: the kernel's `pappus_io_work_ticks_total` counter (ticks spent in I/O-loop passes
//! that moved something; spinning and sleeping excluded) is read before and after N sequential
//! requests on one keep-alive connection, and the difference divided by N. The one `/metrics`
//! request in between is included, spread over N. Wall-clock figures come from a second boot
//! without icount in the same run, as rates from a host client.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pappus_qemu::DEFAULT_X86_64;
use pappus_tests::protocol::READY_PREFIX;
use pappus_tests::{Boot, Marker, Qemu};

pub use crate::keepalive::Client;
use crate::util::{Failure, Result, say};

const TOKEN: &str = "bench-token-0123456789abcdef";
/// Opens `/metrics` (`operator <token>` in the boot configuration).
const OPERATOR: &str = "bench-operator-0123456789abcdef";
const ECHO_64: usize = 64;

/// A booted node and one keep-alive connection to it.
pub struct Node {
    _qemu: Qemu,
    port: u16,
    /// The counter's rate from the ready line (aarch64: CNTVCT; x86_64: the TSC's calibration).
    tick_hz: f64,
    client: Client,
}

impl std::ops::Deref for Node {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Node {
    pub fn boot(kernel: &Path, icount: bool, name: &str) -> Result<Self> {
        Self::spawn(kernel, DEFAULT_X86_64, icount, 1, name)
    }

    /// An aarch64 node (`virt`, `-cpu max`).
    pub fn boot_aarch64(kernel: &Path, icount: bool, name: &str) -> Result<Self> {
        Self::spawn(kernel, pappus_qemu::DEFAULT_AARCH64, icount, 1, name)
    }

    /// An aarch64 node on Arm Morello (the `aarch64-morello` profile), one CPU.
    pub fn boot_morello(kernel: &Path, icount: bool, name: &str) -> Result<Self> {
        Self::spawn(kernel, pappus_qemu::MORELLO_AARCH64, icount, 1, name)
    }

    /// A node with `smp` CPUs under MTTCG (no icount, which would serialize them).
    pub fn boot_smp(kernel: &Path, smp: u32, name: &str) -> Result<Self> {
        Self::spawn(kernel, DEFAULT_X86_64, false, smp, name)
    }

    fn spawn(kernel: &Path, profile: &str, icount: bool, smp: u32, name: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = pappus_tests::target_dir().join("bench");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("bench.conf");
        std::fs::write(&config, format!("tenant bench {TOKEN}\noperator {OPERATOR}\n"))?;
        let mut qemu = Boot::profile(profile)
            .kernel(kernel)
            .icount(icount)
            .smp(smp)
            .host_port(port)
            .config(config)
            .log_name(&format!("bench-{name}"))
            .time_limit(Duration::from_secs(1200))
            .spawn()?;
        let line = qemu.wait_for(Marker::starts_with(READY_PREFIX), Duration::from_secs(300))?;
        let tick_hz = pappus_tests::protocol::Ready::parse(&line).map_or(0.0, |r| r.tick_hz);
        Ok(Self { _qemu: qemu, port, tick_hz, client: Client::connect(port, TIMEOUT)? })
    }

    /// Another keep-alive connection.
    pub fn connect(&self) -> Result<Client> {
        Client::connect(self.port, TIMEOUT)
    }

    /// Function instances each compute core ran: `(cpu, runs)` from `/metrics`.
    pub fn core_runs(&mut self) -> Result<Vec<(u32, u64)>> {
        let r = self.request("GET", "/metrics", &[("Authorization", &format!("Bearer {OPERATOR}"))], b"")?;
        Ok(r.text()
            .lines()
            .filter_map(|l| l.strip_prefix("pappus_core_runs_total{cpu=\""))
            .filter_map(|rest| {
                let (cpu, rest) = rest.split_once('"')?;
                Some((cpu.parse().ok()?, rest.rsplit(' ').next()?.trim().parse().ok()?))
            })
            .collect())
    }
}

/// How long a benchmark request may wait for its answer.
const TIMEOUT: Duration = Duration::from_secs(300);

impl Client {
    pub fn expect(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], status: u16) -> Result {
        let r = self.request(method, path, headers, body)?;
        if r.status != status {
            return Err(Failure(format!("{method} {path}: {} {}", r.status, r.text())));
        }
        Ok(())
    }

    /// The whole `/metrics` text.
    pub fn metrics_text(&mut self) -> Result<String> {
        let r = self.request("GET", "/metrics", &[("Authorization", &format!("Bearer {OPERATOR}"))], b"")?;
        if r.status != 200 {
            return Err(Failure(format!("GET /metrics: {} {}", r.status, r.text())));
        }
        Ok(r.text())
    }

    fn metric(&mut self, name: &str) -> Result<u64> {
        let r = self.request("GET", "/metrics", &[("Authorization", &format!("Bearer {OPERATOR}"))], b"")?;
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Failure(format!("no {name} in /metrics")))
    }

    /// Guest instructions inside the engine per run (icount boots only), over `n` requests.
    fn engine_instructions_per(&mut self, n: u64, mut request: impl FnMut(&mut Self) -> Result) -> Result<u64> {
        for _ in 0..3 {
            request(self)?;
        }
        let (runs, ticks) = (self.metric("pappus_engine_runs_total")?, self.metric("pappus_engine_run_ticks_total")?);
        for _ in 0..n {
            request(self)?;
        }
        let runs = self.metric("pappus_engine_runs_total")? - runs;
        let ticks = self.metric("pappus_engine_run_ticks_total")? - ticks;
        if runs == 0 {
            return Err(Failure("no engine runs counted".into()));
        }
        Ok(ticks / runs)
    }

    /// Guest instructions per request (icount boots only): `n` times `request`, averaged.
    pub fn instructions_per(&mut self, n: u64, request: impl FnMut(&mut Self) -> Result) -> Result<u64> {
        Ok(self.per_request(n, request)?.instructions)
    }

    /// [`instructions_per`](Self::instructions_per) with the NIC's frames per request beside it
    /// (a client that splits a request into several segments costs the node a pass per segment).
    pub fn per_request(&mut self, n: u64, mut request: impl FnMut(&mut Self) -> Result) -> Result<PerRequest> {
        for _ in 0..5 {
            request(self)?; // warm: first-use allocations, caches
        }
        // The counters are read by two `/metrics` requests, and part of each is work the window
        // counts: what the first does after it sampled the counters (rendering the rest, sending)
        // and what the second does before it samples them (receiving, parsing, rendering up to
        // them). Two reads with nothing between them measure exactly that part, which is then
        // taken out: it is no request's. (It is ~200 K instructions, the size of the `/metrics`
        // page; over the 40 requests of `bench e2e` it had added ~5 K to every figure.)
        let first = self.counters()?;
        let before = self.counters()?;
        for _ in 0..n {
            request(self)?;
        }
        let after = self.counters()?;
        let per = |i: usize| (after[i] - before[i]).saturating_sub(before[i] - first[i]) as f64 / n as f64;
        let instructions = (after[0] - before[0]).saturating_sub(before[0] - first[0]) / n;
        Ok(PerRequest { instructions, rx_frames: per(1), tx_frames: per(2) })
    }

    /// I/O work ticks, frames received, frames sent: from one `/metrics` read.
    fn counters(&mut self) -> Result<[u64; 3]> {
        let text = self.metrics_text()?;
        let mut out = [0; 3];
        for (slot, name) in out.iter_mut().zip(WORK_AND_FRAMES) {
            *slot = text
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Failure(format!("no {name} in /metrics")))?;
        }
        Ok(out)
    }
}

/// What one request cost the node, averaged over many.
pub struct PerRequest {
    /// Guest instructions of I/O work (icount boots).
    pub instructions: u64,
    pub rx_frames: f64,
    pub tx_frames: f64,
}

const WORK_AND_FRAMES: [&str; 3] =
    ["pappus_io_work_ticks_total", "pappus_nic_rx_packets_total", "pappus_nic_tx_packets_total"];

pub fn auth() -> String {
    format!("Bearer {TOKEN}")
}

fn echo(node: &mut Client, body: &[u8]) -> Result {
    node.expect("POST", "/v1/echo", &[], body, 200)
}

fn invoke_raw(node: &mut Client, name: &str, body: &[u8]) -> Result {
    let auth = auth();
    let headers = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    node.expect("POST", &format!("/v1/invoke/{name}"), &headers, body, 200)
}

/// One `BENCH` line on stdout, kept for the report (`bench/report.rs`).
pub fn print(name: &str, value: impl std::fmt::Display, unit: &str) {
    super::report::record(name, value, unit);
}

pub fn net(kernel: &Path) -> Result {
    let mut node = Node::boot(kernel, true, "net-icount")?;
    let body = vec![b'x'; ECHO_64];
    let per = node.per_request(2000, |n| echo(n, &body))?;
    print("net.echo64.instructions_per_request", per.instructions, "instructions");
    print("net.echo64.rx_frames_per_request", format!("{:.2}", per.rx_frames), "frames");
    print("net.echo64.tx_frames_per_request", format!("{:.2}", per.tx_frames), "frames");
    drop(node);

    let mut node = Node::boot(kernel, false, "net-wall")?;
    for _ in 0..20 {
        echo(&mut node, &body)?;
    }
    let n = 500;
    let start = Instant::now();
    for _ in 0..n {
        echo(&mut node, &body)?;
    }
    print("net.echo64.keepalive_requests_per_s", format!("{:.0}", n as f64 / start.elapsed().as_secs_f64()), "req/s");
    let mib = vec![0x5a; 1 << 20];
    echo(&mut node, &mib)?;
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        echo(&mut node, &mib)?;
    }
    // Each request moves 1 MiB in and 1 MiB out.
    let mb = 2.0 * n as f64 * (1 << 20) as f64 / 1e6;
    print("net.echo1MiB.throughput", format!("{:.1}", mb / start.elapsed().as_secs_f64()), "MB/s");
    Ok(())
}

pub fn model(kernel: &Path) -> Result {
    planner_on_host()?;
    let mut node = Node::boot(kernel, true, "model-icount")?;
    let body = vec![b'x'; ECHO_64];
    let echo_cost = node.instructions_per(100, |n| echo(n, &body))?;
    let identity = node.instructions_per(100, |n| invoke_raw(n, "identity", &body))?;
    print("model.identity.instructions_per_invocation", identity, "instructions");
    print("model.identity.overhead_over_echo", identity.saturating_sub(echo_cost), "instructions");
    Ok(())
}

/// Instructions the host program `exe` runs with the one argument `arg`, counted by callgrind
/// (deterministic; these machines have no hardware counters).
fn callgrind(exe: &Path, arg: u64) -> Result<u64> {
    callgrind_args(exe, &[&arg.to_string()])
}

/// Like [`callgrind`], with any arguments.
fn callgrind_args(exe: &Path, args: &[&str]) -> Result<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Failure(format!("no instruction count from callgrind:\n{text}")))
}

/// The planner alone, on the host: callgrind over `examples/fanout` with 1,000 and 10 items; the
/// difference over 990 is the cost of one more instance (process start-up cancels out).
fn planner_on_host() -> Result {
    if !pappus_tests::on_path("valgrind") {
        say("valgrind not found: skipping model.planner figures (apt-get install valgrind)");
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-q", "-p", "pappus-planner", "--example", "fanout"])
        .status()?;
    if !status.success() {
        return Err(Failure("building the planner's fanout example failed".into()));
    }
    let exe = pappus_tests::target_dir().join("release/examples/fanout");
    let (big, small) = (callgrind(&exe, 1000)?, callgrind(&exe, 10)?);
    print("model.planner.instructions_per_instance", (big - small) / 990, "instructions");
    print("model.planner.fanout1000_total", big, "instructions");
    control_on_host()
}

/// A whole `each` fan-out of the `identity` builtin through the control plane on the host, with
/// the kernel's allocator and the kernel's step bounds: decoding the body, planning, running,
/// collecting and encoding (`kernel/control/examples/invoke_fanout.rs`). Per item: the difference over
/// a 16-item run, divided by the extra items, at 1,024, 8,192 and 65,536 items, so a cost that
/// grows faster than the item count shows as a growing figure. Then `keyed`, one group per item.
fn control_on_host() -> Result {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-q", "-p", "pappus-control", "--example", "invoke_fanout"])
        .status()?;
    if !status.success() {
        return Err(Failure("building the control plane's fanout example failed".into()));
    }
    let exe = pappus_tests::target_dir().join("release/examples/invoke_fanout");
    for format in ["binary", "json"] {
        let base = callgrind_args(&exe, &["16", format])?;
        for items in [1024u64, 8192, 65_536] {
            let total = callgrind_args(&exe, &[&items.to_string(), format])?;
            let suffix = if format == "json" { "_json" } else { "" };
            let name = format!("model.plan_each_{items}{suffix}.instructions_per_item");
            print(&name, total.saturating_sub(base) / (items - 16), "instructions");
        }
    }
    // `keyed`, every item its own key: grouping sorts them, the one step not cut to the budget.
    let base = callgrind_args(&exe, &["16", "binary", "keyed"])?;
    for items in [1024u64, 65_536] {
        let total = callgrind_args(&exe, &[&items.to_string(), "binary", "keyed"])?;
        let name = format!("model.plan_keyed_{items}.instructions_per_item");
        print(&name, total.saturating_sub(base) / (items - 16), "instructions");
    }
    Ok(())
}

/// The smallest module the engine accepts: exports `memory` (one page) and an empty `run`.
const NOOP_WASM: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: [] -> []
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x05, 0x03, 0x01, 0x00, 0x01, // memories: one, at least one page
    0x07, 0x10, 0x02, // exports: two
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, // "memory" = memory 0
    0x03, b'r', b'u', b'n', 0x00, 0x00, // "run" = function 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: no locals, end
];

/// An N×N matrix in matmul's encoding, with the values examples/native.rs uses.
fn matrix(n: u32, seed: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    for i in 0..(n as usize * n as usize) {
        let v = ((i * 37 + seed) % 101) as f64 / 7.0 - 5.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// matmul's input: one set `matrices` with two N×N matrices, in the binary wire format.
pub fn matmul_sets(n: u32) -> Result<Vec<u8>> {
    model::wire::binary::encode(&[model::Set {
        name: "matrices".into(),
        items: vec![
            model::Item { name: "a".into(), key: None, data: model::Bytes::from(matrix(n, 1)) },
            model::Item { name: "b".into(), key: None, data: model::Bytes::from(matrix(n, 2)) },
        ],
    }])
    .map_err(|e| Failure(format!("encoding the matrices: {e}")))
}

/// The matmul function compiled for the host, counted by callgrind at N and at 0 (start-up).
fn native_matmul_instructions(n: u32) -> Result<Option<u64>> {
    if !pappus_tests::on_path("valgrind") {
        say("valgrind not found: skipping the native matmul figure (apt-get install valgrind)");
        return Ok(None);
    }
    let functions = pappus_tests::workspace_root().join("functions");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-q", "-p", "matmul", "--example", "native"])
        .current_dir(&functions)
        .env_remove("CARGO_TARGET_DIR")
        .status()?;
    if !status.success() {
        return Err(Failure("building functions/matmul/examples/native.rs failed".into()));
    }
    let exe = functions.join("target/release/examples/native");
    Ok(Some(callgrind(&exe, u64::from(n))?.saturating_sub(callgrind(&exe, 0)?)))
}

pub fn wasm(kernel: &Path) -> Result {
    const N: u32 = 64;
    let native = native_matmul_instructions(N)?;
    let template = pappus_tests::functions::wasm("template");
    let matmul = pappus_tests::functions::wasm("matmul");
    let mut node = Node::boot(kernel, true, "wasm-icount")?;
    let auth = auth();
    let register = |node: &mut Node, name: &str, query: &str, image: &[u8]| {
        let path = format!("/v1/functions/{name}?engine=wasm&{query}");
        node.expect("PUT", &path, &[("Authorization", auth.as_str())], image, 201)
    };
    register(&mut node, "noop", "inputs=in&outputs=out&memory=64KiB", NOOP_WASM)?;
    register(&mut node, "upper", "inputs=lines&outputs=upper&memory=1MiB", &template)?;
    register(&mut node, "matmul", "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=60000", &matmul)?;

    let noop = node.engine_instructions_per(50, |n| {
        // JSON: a no-op writes no item, so there is no raw answer to give.
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        n.expect("POST", "/v1/invoke/noop", &headers, br#"{"sets":{}}"#, 200)
    })?;
    print("wasm.noop.engine_instructions", noop, "instructions");

    let body = vec![b'x'; ECHO_64];
    let identity = node.instructions_per(50, |n| invoke_raw(n, "identity", &body))?;
    let upper = node.instructions_per(50, |n| invoke_raw(n, "upper", &body))?;
    print("wasm.template.instructions_per_invocation", upper, "instructions");
    print("wasm.template.over_identity_builtin", upper.saturating_sub(identity), "instructions");

    let sets = matmul_sets(N)?;
    let kind = "application/x-pappus-sets";
    let matmul_engine = node.engine_instructions_per(5, |n| {
        let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
        n.expect("POST", "/v1/invoke/matmul", &headers, &sets, 200)
    })?;
    print("wasm.matmul64.engine_instructions", matmul_engine, "instructions");
    if let Some(native) = native {
        print("wasm.matmul64.native_instructions", native, "instructions");
        print("wasm.matmul64.interpretation_overhead", format!("{:.1}", matmul_engine as f64 / native as f64), "x");
    }
    Ok(())
}

/// Suite `native` (under `-icount shift=0`, `-cpu max` so both native engines exist): per
/// engine, a no-op sandbox's create / enter+run+exit / collect / destroy in guest instructions;
/// the 128×128 f64 matmul's engine instructions against the function's own (the same Rust
/// compiled for the host, counted by callgrind) and against the wasm engine.
/// Suite `native --arch aarch64` (under `-icount shift=0`): the `paging` engine at EL0, as
/// [`native`] measures it on x86_64: a no-op sandbox's phases, and the 128×128 matmul against
/// the wasm engine on the same node. The engine's figures are CNTVCT ticks, and under icount
/// the generic counter counts virtual time, not instructions: one instruction is one virtual
/// nanosecond, so a tick is `1e9 / tick_hz` instructions (16 at QEMU virt's 62.5 MHz). Figures
/// are ticks times that, averaged over many runs (each reading is exact to one tick).
pub fn native_aarch64(kernel: &Path) -> Result {
    const N: u32 = 128;
    let noop = pappus_tests::functions::hostile_native_for("noop", pappus_tests::Arch::Aarch64);
    let matmul_native = pappus_tests::functions::native_for("matmul", pappus_tests::Arch::Aarch64);
    let matmul_wasm = pappus_tests::functions::wasm("matmul");
    let mut node = Node::boot_aarch64(kernel, true, "native-aarch64-icount")?;
    let auth = auth();
    if node.tick_hz <= 0.0 {
        return Err(Failure("the aarch64 ready line has no tick_hz".into()));
    }
    let per_tick = 1e9 / node.tick_hz;
    let register = |node: &mut Node, name: &str, query: &str, image: &[u8]| {
        node.expect("PUT", &format!("/v1/functions/{name}?{query}"), &[("Authorization", auth.as_str())], image, 201)
    };
    let matmul_q = "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=300000";
    register(&mut node, "noop_paging", "engine=paging&inputs=in&outputs=out&memory=1MiB", &noop)?;
    register(&mut node, "matmul_paging", &format!("engine=paging&{matmul_q}"), &matmul_native)?;
    register(&mut node, "matmul_wasm", &format!("engine=wasm&{matmul_q}"), &matmul_wasm)?;
    let json = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let phases = ["create", "run", "collect", "destroy"];
    let instructions = |ticks: u64| (ticks as f64 * per_tick).round() as u64;
    let path = "/v1/invoke/noop_paging";
    for _ in 0..3 {
        node.expect("POST", path, &json, br#"{"sets":{}}"#, 200)?;
    }
    let read = |node: &mut Node| -> Result<Vec<u64>> {
        let mut v = vec![node.metric("pappus_native_runs_total")?];
        for p in phases {
            v.push(node.metric(&format!("pappus_native_{p}_ticks_total"))?);
        }
        Ok(v)
    };
    const NOOP_RUNS: u64 = 50;
    let before = read(&mut node)?;
    let total = node.engine_instructions_per(NOOP_RUNS, |n| n.expect("POST", path, &json, br#"{"sets":{}}"#, 200))?;
    let after = read(&mut node)?;
    let runs = (after[0] - before[0]).max(1);
    for (i, p) in phases.iter().enumerate() {
        let name = if *p == "run" { "enter_run_exit" } else { p };
        let ticks = (after[i + 1] - before[i + 1]) as f64 / runs as f64;
        print(
            &format!("native.aarch64.paging.noop.{name}_instructions"),
            (ticks * per_tick).round() as u64,
            "instructions",
        );
    }
    print("native.aarch64.paging.noop.engine_instructions", instructions(total), "instructions");
    let sets = matmul_sets(N)?;
    let kind = "application/x-pappus-sets";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
    let mut figures = Vec::new();
    for engine in ["paging", "wasm"] {
        let path = format!("/v1/invoke/matmul_{engine}");
        let runs = if engine == "wasm" { 1 } else { 3 };
        let per = instructions(node.engine_instructions_per(runs, |n| n.expect("POST", &path, &headers, &sets, 200))?);
        print(&format!("native.aarch64.{engine}.matmul128.engine_instructions"), per, "instructions");
        figures.push(per);
    }
    print(
        "native.aarch64.paging.matmul128.speedup_over_wasm",
        format!("{:.1}", figures[1] as f64 / figures[0] as f64),
        "x",
    );
    Ok(())
}

/// Suite `native --arch aarch64`, on Arm Morello (under `-icount shift=0`, one CPU): the no-op
/// sandbox's phases and the 128×128 matmul (the same aarch64 image) under `cheri` (capabilities
/// in one shared address space) and under `paging` (a translation table and ASID per sandbox),
/// on the same node, in instructions as [`native_aarch64`] computes them. The phase counters are
/// shared by the native engines, so each engine's runs are measured apart.
pub fn native_morello(kernel: &Path) -> Result {
    const N: u32 = 128;
    const ENGINES: [&str; 2] = ["cheri", "paging"];
    let noop = pappus_tests::functions::hostile_native_for("noop", pappus_tests::Arch::Aarch64);
    let matmul_native = pappus_tests::functions::native_for("matmul", pappus_tests::Arch::Aarch64);
    let mut node = Node::boot_morello(kernel, true, "native-morello-icount")?;
    let auth = auth();
    if node.tick_hz <= 0.0 {
        return Err(Failure("the Morello ready line has no tick_hz".into()));
    }
    let per_tick = 1e9 / node.tick_hz;
    let instructions = |ticks: u64| (ticks as f64 * per_tick).round() as u64;
    let matmul_q = "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=300000";
    for engine in ENGINES {
        let headers = [("Authorization", auth.as_str())];
        let q = format!("engine={engine}&inputs=in&outputs=out&memory=1MiB");
        node.expect("PUT", &format!("/v1/functions/noop_{engine}?{q}"), &headers, &noop, 201)?;
        let q = format!("engine={engine}&{matmul_q}");
        node.expect("PUT", &format!("/v1/functions/matmul_{engine}?{q}"), &headers, &matmul_native, 201)?;
    }
    let json = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let phases = ["create", "run", "collect", "destroy"];
    let read = |node: &mut Node| -> Result<Vec<u64>> {
        let mut v = vec![node.metric("pappus_native_runs_total")?];
        for p in phases {
            v.push(node.metric(&format!("pappus_native_{p}_ticks_total"))?);
        }
        Ok(v)
    };
    const NOOP_RUNS: u64 = 50;
    for engine in ENGINES {
        let path = format!("/v1/invoke/noop_{engine}");
        for _ in 0..3 {
            node.expect("POST", &path, &json, br#"{"sets":{}}"#, 200)?;
        }
        let before = read(&mut node)?;
        let total =
            node.engine_instructions_per(NOOP_RUNS, |n| n.expect("POST", &path, &json, br#"{"sets":{}}"#, 200))?;
        let after = read(&mut node)?;
        let runs = (after[0] - before[0]).max(1);
        for (i, p) in phases.iter().enumerate() {
            let name = if *p == "run" { "enter_run_exit" } else { p };
            let ticks = (after[i + 1] - before[i + 1]) as f64 / runs as f64;
            print(
                &format!("native.morello.{engine}.noop.{name}_instructions"),
                (ticks * per_tick).round() as u64,
                "instructions",
            );
        }
        print(&format!("native.morello.{engine}.noop.engine_instructions"), instructions(total), "instructions");
    }
    let sets = matmul_sets(N)?;
    let kind = "application/x-pappus-sets";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
    for engine in ENGINES {
        let path = format!("/v1/invoke/matmul_{engine}");
        let per = instructions(node.engine_instructions_per(3, |n| n.expect("POST", &path, &headers, &sets, 200))?);
        print(&format!("native.morello.{engine}.matmul128.engine_instructions"), per, "instructions");
    }
    Ok(())
}

pub fn native(kernel: &Path) -> Result {
    const N: u32 = 128;
    let own = native_matmul_instructions(N)?;
    let noop = pappus_tests::functions::hostile_native("noop");
    let matmul_native = pappus_tests::functions::native("matmul");
    let matmul_wasm = pappus_tests::functions::wasm("matmul");
    let mut node = Node::boot(kernel, true, "native-icount")?;
    let auth = auth();
    let register = |node: &mut Node, name: &str, query: &str, image: &[u8]| {
        node.expect("PUT", &format!("/v1/functions/{name}?{query}"), &[("Authorization", auth.as_str())], image, 201)
    };
    let matmul_q = "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=300000";
    for engine in ["mpk", "paging"] {
        register(
            &mut node,
            &format!("noop_{engine}"),
            &format!("engine={engine}&inputs=in&outputs=out&memory=1MiB"),
            &noop,
        )?;
        register(&mut node, &format!("matmul_{engine}"), &format!("engine={engine}&{matmul_q}"), &matmul_native)?;
    }
    register(&mut node, "matmul_wasm", &format!("engine=wasm&{matmul_q}"), &matmul_wasm)?;
    let json = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let phases = ["create", "run", "collect", "destroy"];
    for engine in ["mpk", "paging"] {
        let path = format!("/v1/invoke/noop_{engine}");
        for _ in 0..3 {
            node.expect("POST", &path, &json, br#"{"sets":{}}"#, 200)?;
        }
        let read = |node: &mut Node| -> Result<Vec<u64>> {
            let mut v = vec![node.metric("pappus_native_runs_total")?];
            for p in phases {
                v.push(node.metric(&format!("pappus_native_{p}_ticks_total"))?);
            }
            Ok(v)
        };
        let before = read(&mut node)?;
        let total = node.engine_instructions_per(50, |n| n.expect("POST", &path, &json, br#"{"sets":{}}"#, 200))?;
        let after = read(&mut node)?;
        let runs = (after[0] - before[0]).max(1);
        for (i, p) in phases.iter().enumerate() {
            let name = if *p == "run" { "enter_run_exit" } else { p };
            print(
                &format!("native.{engine}.noop.{name}_instructions"),
                (after[i + 1] - before[i + 1]) / runs,
                "instructions",
            );
        }
        print(&format!("native.{engine}.noop.engine_instructions"), total, "instructions");
    }
    let sets = matmul_sets(N)?;
    let kind = "application/x-pappus-sets";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
    let mut engine_figures = Vec::new();
    for engine in ["mpk", "paging", "wasm"] {
        let path = format!("/v1/invoke/matmul_{engine}");
        let runs = if engine == "wasm" { 1 } else { 3 };
        let per = node.engine_instructions_per(runs, |n| n.expect("POST", &path, &headers, &sets, 200))?;
        print(&format!("native.{engine}.matmul128.engine_instructions"), per, "instructions");
        engine_figures.push((engine, per));
    }
    if let Some(own) = own {
        print("native.matmul128.function_instructions", own, "instructions");
        for (engine, per) in &engine_figures {
            print(
                &format!("native.{engine}.matmul128.overhead_ratio"),
                format!("{:.3}", *per as f64 / own as f64),
                "x",
            );
        }
    }
    let wasm = engine_figures[2].1 as f64;
    for (engine, per) in &engine_figures[..2] {
        print(&format!("native.{engine}.matmul128.speedup_over_wasm"), format!("{:.1}", wasm / *per as f64), "x");
    }
    Ok(())
}
