//! `cargo xtask soak --invocations N`: a long mixed load against one node, then a check that
//! what the node holds came back to where it was.
//!
//! The node (x86_64 q35, `-cpu max` so the `mpk` engine exists, two CPUs: one I/O core, one
//! compute core) has two tenants. Each registers the same names: the template function as wasm
//! (`upper_w`) and as an MPK native image (`upper_m`), hostile functions that trap (`trap_w`,
//! `trap_m`) or loop until their 20 ms budget (`loop_w`, `loop_m`), a fan-out composition
//! (`fan`), and one function only it has. Worker threads, two per tenant, each on a keep-alive
//! connection (replaced every few hundred requests), run a deterministic pseudo-random mix:
//! raw invocations of 1 B to 1 MiB through both engines and the builtins, JSON fan-outs, bad
//! bodies, unknown names, the other tenant's names, traps, timeouts, `fail`, and
//! register-invoke-delete cycles (the wasm image new bytes each time unless `--reuse-images`).
//! Every answer is checked: status, error code, and for successes the bytes.
//!
//! Before the load (after one warm-up round of every kind, which creates the metric rows and
//! cache entries that stay by design) and after it (once every connection has closed) it reads
//! `/metrics` with the operator token: heap in use, free frames, network sockets, front-door
//! sockets not listening, MPK keys live and invocations held. Every figure must come back to its
//! baseline (the heap within [`HEAP_SLACK`] bytes); the comparison is printed either way.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pappus_qemu::Arch;
use pappus_tests::node::Response;
use pappus_tests::protocol::READY_PREFIX;
use pappus_tests::{Boot, Marker};

use crate::args::{Args, Spec};
use crate::keepalive::Client;
use crate::util::{self, Failure, Result, say};

pub const SPEC: Spec =
    Spec { values: &["invocations", "workers", "only"], switches: &["no-build", "reuse-images"], max_positionals: 0 };

const TENANTS: [(&str, &str); 2] = [("alice", "soak-alice-0123456789abcdef"), ("bob", "soak-bob-0123456789abcdef00")];
const OPERATOR: &str = "soak-operator-0123456789abcdef";
/// Heap bytes the end may differ from the baseline by (allocator rounding of the few buffers a
/// metrics request itself holds); anything more is a leak.
const HEAP_SLACK: u64 = 16 * 1024;
/// How long a soak request may wait for its answer.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Sandboxes' page-table frames may grow by this much: the MPK engine keeps each slot's tables
/// for good (a stale paging-structure cache entry on another CPU can then only reach a table of
/// the same slot, whose pages carry that slot's key), so they grow with the most slots ever used
/// at once, up to 15 slots of a few tables each. Free frames are compared with these added back,
/// exactly.
const TABLE_FRAMES_SLACK: u64 = 15 * 16;
/// Free frames may also fall by this much: the native engines keep three pages mapped per MPK
/// slot (16) and per pooled paging space (8) between runs (system data, stack top, heap start;
/// zeroed when written), so they grow with the most slots and spaces ever used at once. A gauge
/// of those frames would let the comparison be exact again; until then, this bound.
const KEPT_FRAMES_SLACK: u64 = 3 * (16 + 8);
/// The largest body a soak sends.
const MAX_BODY: usize = 1 << 20;
/// Requests on one connection before a worker replaces it.
const REQUESTS_PER_CONNECTION: u64 = 300;

pub fn main(args: &Args) -> Result {
    let invocations: u64 = args.parsed("invocations")?.unwrap_or(10_000);
    let workers: u64 = args.parsed("workers")?.unwrap_or(4);
    let kernel = if args.switch("no-build") {
        pappus_tests::kernel_image(Arch::X86_64)?
    } else {
        util::build_kernels(&[Arch::X86_64])?.remove(0).1
    };
    let only = match args.value("only") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|name| {
                Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                    Failure(format!("--only: no kind {name:?}; there are {}", names.join(", ")))
                })
            })
            .collect::<Result<Vec<Kind>>>()?,
    };
    run_with(&kernel, Options { invocations, workers, reuse_images: args.switch("reuse-images"), only })
}

/// What a soak runs.
struct Options {
    invocations: u64,
    workers: u64,
    /// Register-delete cycles register the same bytes every time (see [`run`]).
    reuse_images: bool,
    /// Only these kinds of request (all when empty): to narrow down a failure.
    only: Vec<Kind>,
}

/// The images a soak registers.
struct Images {
    upper_wasm: Vec<u8>,
    upper_native: Vec<u8>,
    trap_wasm: Vec<u8>,
    loop_wasm: Vec<u8>,
    trap_native: Vec<u8>,
    loop_native: Vec<u8>,
}

fn wat_entry(code: &str) -> Result<Vec<u8>> {
    Ok(wat::parse_str(format!(
        r#"(module
            (import "pappus" "output_push" (func $output_push (param i32 i32 i32 i32 i64 i32 i32)))
            (memory (export "memory") 1)
            (func (export "run") {code}))"#
    ))?)
}

impl Images {
    fn build() -> Result<Self> {
        let built = std::panic::catch_unwind(|| {
            (
                pappus_tests::functions::wasm("template"),
                pappus_tests::functions::native("template"),
                pappus_tests::functions::hostile_native("divide_by_zero"),
                pappus_tests::functions::hostile_native("infinite_loop"),
            )
        })
        .map_err(|_| Failure("building the soak's functions failed (see above)".into()))?;
        Ok(Self {
            upper_wasm: built.0,
            upper_native: built.1,
            trap_native: built.2,
            loop_native: built.3,
            trap_wasm: wat_entry("unreachable")?,
            loop_wasm: wat_entry("(loop $l (br $l))")?,
        })
    }
}

/// Boots a node, registers, warms up, takes the baseline, runs `invocations` over `workers`
/// connections, and compares.
/// With `reuse_images`, register-delete cycles register the same bytes every time (a
/// prepared-image cache keyed by content then never grows), else new bytes each cycle.
pub fn run(kernel: &Path, invocations: u64, workers: u64, reuse_images: bool) -> Result {
    run_with(kernel, Options { invocations, workers, reuse_images, only: Vec::new() })
}

fn run_with(kernel: &Path, options: Options) -> Result {
    let Options { invocations, workers, reuse_images, only } = options;
    let workers = workers.clamp(1, 32);
    say("soak: building the functions it registers");
    let images = Arc::new(Images::build()?);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = pappus_tests::target_dir().join("soak");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("soak.conf");
    let mut text: String = TENANTS.iter().map(|(n, t)| format!("tenant {n} {t}\n")).collect();
    text += &format!("operator {OPERATOR}\n");
    std::fs::write(&config, text)?;
    let mut qemu = Boot::profile("x86_64-q35")
        .kernel(kernel)
        .cpu("max")
        .smp(2)
        .host_port(port)
        .config(&config)
        .log_name("soak")
        .time_limit(Duration::from_secs(24 * 3600))
        .spawn()?;
    qemu.wait_for(Marker::starts_with(READY_PREFIX), Duration::from_secs(300))?;
    let result = soak(port, &images, invocations, workers, reuse_images, &only);
    if result.is_err() {
        say(format!("soak: the node's last log lines:\n{}", qemu.tail(30)));
        say(format!("soak: the node's state now:\n{}", diagnose(port)));
    }
    qemu.kill();
    result
}

fn soak(port: u16, images: &Arc<Images>, invocations: u64, workers: u64, reuse_images: bool, only: &[Kind]) -> Result {
    let mut admin = Client::connect(port, TIMEOUT)?;
    for (tenant, token) in TENANTS {
        register(&mut admin, tenant, token, images)?;
    }
    // One of every kind per worker: metric rows (per tenant, target, outcome), prepared images
    // and wasmi's reusable stacks exist from here on, by design.
    // The sized kinds run at the largest size, so that memory kept at a high-water mark (page
    // tables of a sandbox slot, buffers) is in the baseline too.
    for w in 0..workers {
        let mut worker = Worker::new(port, w, Arc::clone(images), reuse_images)?;
        worker.largest = true;
        for kind in Kind::ALL {
            worker.one(kind)?;
        }
    }
    drop(admin);
    let baseline = Gauges::settled(port, None)?;
    say(format!("soak: baseline after boot, registration and warm-up: {}", baseline.line()));

    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let counts: Arc<[AtomicU64; Kind::ALL.len()]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (done, stop, failures, counts, images) =
                (done.clone(), stop.clone(), failures.clone(), counts.clone(), images.clone());
            let share = invocations / workers + u64::from(w < invocations % workers);
            let only = only.to_vec();
            std::thread::spawn(move || {
                let result = (|| -> Result {
                    let mut worker = Worker::new(port, w, images, reuse_images)?;
                    let mut n = 0;
                    while n < share && !stop.load(Ordering::Relaxed) {
                        let kind = worker.pick();
                        if !only.is_empty() && !only.contains(&kind) {
                            continue;
                        }
                        let made = worker.one(kind)?;
                        n += made;
                        counts[kind as usize].fetch_add(1, Ordering::Relaxed);
                        done.fetch_add(made, Ordering::Relaxed);
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    stop.store(true, Ordering::Relaxed);
                    failures.lock().unwrap().push(format!("worker {w}: {}", e.0));
                }
            })
        })
        .collect();
    let mut last_report = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let n = done.load(Ordering::Relaxed);
            say(format!("soak: {n} of {invocations} invocations, {:.0} s", started.elapsed().as_secs_f64()));
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let mix: Vec<String> =
        Kind::ALL.iter().map(|k| format!("{} {}", k.name(), counts[*k as usize].load(Ordering::Relaxed))).collect();
    say(format!(
        "soak: {n} invocations in {seconds:.1} s ({:.0}/s); requests by kind: {}",
        n as f64 / seconds,
        mix.join(", ")
    ));
    let failures = failures.lock().unwrap().clone();
    if !failures.is_empty() {
        return Err(Failure(format!("soak: {} worker(s) failed:\n{}", failures.len(), failures.join("\n"))));
    }

    let end = Gauges::settled(port, Some(&baseline))?;
    let report = baseline.compare(&end);
    for line in &report.lines {
        println!("SOAK {line}");
    }
    println!("SOAK invocations {n} seconds {seconds:.1}");
    if report.ok {
        say(format!("soak: ok: {n} invocations, every answer as expected, every figure back at its baseline"));
        Ok(())
    } else {
        Err(Failure("soak: the node did not come back to its baseline (SOAK lines above)".into()))
    }
}

/// What the node says about itself after a failure: `/healthz`, and the `/metrics` lines about
/// queues, cores, keys and invocations (each request with a short timeout: the node may hang).
fn diagnose(port: u16) -> String {
    let ask = |path: &str, auth: Option<String>| -> std::result::Result<Response, String> {
        let mut client = Client::connect(port, Duration::from_secs(10)).map_err(|e| e.0)?;
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        client.request("GET", path, &headers, b"").map_err(|e| e.0)
    };
    let mut out = match ask("/healthz", None) {
        Ok(r) => format!("/healthz: {} {}\n", r.status, r.text()),
        Err(e) => format!("/healthz: no answer ({e})\n"),
    };
    match ask("/metrics", Some(format!("Bearer {OPERATOR}"))) {
        Ok(r) => {
            let wanted = [
                "pappus_invocations_live",
                "pappus_mpk_keys_live",
                "pappus_mpk_key_waits_total",
                "pappus_run_queue_depth",
                "pappus_core_runs_total",
                "pappus_core_busy_ticks_total",
                "pappus_http_connections_active",
                "pappus_heap_bytes_used",
                "pappus_frames_free",
                "pappus_native_kept_image_frames",
                "pappus_user_table_frames",
                "pappus_engine_runs_total",
                "pappus_native_runs_total",
            ];
            let saved = pappus_tests::target_dir().join("soak/metrics-at-failure.txt");
            let _ = std::fs::write(&saved, &r.body);
            out += &format!("/metrics: {} ({} bytes, kept in {})\n", r.status, r.body.len(), saved.display());
            for line in r.text().lines().filter(|l| wanted.iter().any(|w| l.starts_with(w))) {
                out += line;
                out.push('\n');
            }
        }
        Err(e) => out += &format!("/metrics: no answer ({e})\n"),
    }
    out
}

/// The figures a soak compares, from `/metrics`.
#[derive(Clone, Debug, PartialEq)]
struct Gauges {
    heap_used: u64,
    frames_free: u64,
    table_frames: u64,
    net_sockets: u64,
    door_sockets_busy: u64,
    mpk_keys_live: u64,
    invocations_live: u64,
    connections_active: u64,
}

struct Report {
    lines: Vec<String>,
    ok: bool,
}

impl Gauges {
    fn read(port: u16) -> Result<Self> {
        let mut client = Client::connect(port, TIMEOUT)?;
        let r = client.request("GET", "/metrics", &[("Authorization", &format!("Bearer {OPERATOR}"))], b"")?;
        if r.status != 200 {
            return Err(Failure(format!("/metrics: {} {}", r.status, r.text())));
        }
        Self::parse(&r.text())
    }

    fn parse(text: &str) -> Result<Self> {
        let value = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Failure(format!("/metrics lacks {name}")))
        };
        // Front-door sockets in any state but listening: open or closing connections.
        let busy = text
            .lines()
            .filter_map(|l| l.strip_prefix("pappus_tcp_sockets{state=\""))
            .filter(|rest| !rest.starts_with("listen\""))
            .filter_map(|rest| rest.rsplit(' ').next()?.trim().parse::<u64>().ok())
            .sum();
        Ok(Self {
            heap_used: value("pappus_heap_bytes_used")?,
            // Frames of native images kept mapped between runs of the same function count as
            // free: which images the slots hold depends on the order runs took. (A kernel
            // without the gauge keeps none.)
            frames_free: value("pappus_frames_free")? + value("pappus_native_kept_image_frames").unwrap_or(0),
            table_frames: value("pappus_user_table_frames")?,
            net_sockets: value("pappus_net_sockets")?,
            door_sockets_busy: busy,
            mpk_keys_live: value("pappus_mpk_keys_live")?,
            invocations_live: value("pappus_invocations_live")?,
            connections_active: value("pappus_http_connections_active")?,
        })
    }

    /// Figures once only the asking connection is open (closed ones linger up to 10 s), and,
    /// given a baseline, once they match it or 30 s have passed.
    fn settled(port: u16, baseline: Option<&Gauges>) -> Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let g = Self::read(port)?;
            let quiet = g.connections_active <= 1 && g.invocations_live == 0 && g.door_sockets_busy <= 1;
            let back = baseline.is_none_or(|b| b.compare(&g).ok);
            if (quiet && back) || Instant::now() > deadline {
                return Ok(g);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn line(&self) -> String {
        format!(
            "heap used {} B, frames free {}, sockets {}, front-door sockets not listening {}, MPK keys live {}, invocations live {}",
            self.heap_used,
            self.frames_free,
            self.net_sockets,
            self.door_sockets_busy,
            self.mpk_keys_live,
            self.invocations_live
        )
    }

    fn compare(&self, end: &Gauges) -> Report {
        let rows = [
            ("heap_used_bytes", self.heap_used, end.heap_used, HEAP_SLACK),
            (
                "frames_free_beside_page_tables",
                self.frames_free + self.table_frames,
                end.frames_free + end.table_frames,
                KEPT_FRAMES_SLACK,
            ),
            ("user_table_frames", self.table_frames, end.table_frames, TABLE_FRAMES_SLACK),
            ("net_sockets", self.net_sockets, end.net_sockets, 0),
            ("frontdoor_sockets_not_listening", self.door_sockets_busy, end.door_sockets_busy, 0),
            ("mpk_keys_live", self.mpk_keys_live, end.mpk_keys_live, 0),
            ("invocations_live", self.invocations_live, end.invocations_live, 0),
        ];
        let mut ok = true;
        let lines = rows
            .iter()
            .map(|&(name, before, after, slack)| {
                let good = after.abs_diff(before) <= slack;
                ok &= good;
                let delta = after as i128 - before as i128;
                format!("{name} baseline {before} end {after} delta {delta:+} {}", if good { "ok" } else { "FAILED" })
            })
            .collect();
        Report { lines, ok }
    }
}

fn register(client: &mut Client, tenant: &str, token: &str, images: &Images) -> Result {
    let auth = format!("Bearer {token}");
    let functions: [(&str, &str, &[u8]); 7] = [
        ("upper_w", "engine=wasm&inputs=lines&outputs=upper&timeout_ms=30000", &images.upper_wasm),
        ("upper_m", "engine=mpk&inputs=lines&outputs=upper&timeout_ms=30000", &images.upper_native),
        ("trap_w", "engine=wasm&inputs=a&outputs=b&timeout_ms=30000", &images.trap_wasm),
        ("trap_m", "engine=mpk&inputs=a&outputs=b&timeout_ms=30000", &images.trap_native),
        ("loop_w", "engine=wasm&inputs=a&outputs=b&timeout_ms=20", &images.loop_wasm),
        ("loop_m", "engine=mpk&inputs=a&outputs=b&timeout_ms=20", &images.loop_native),
        ("mine", "engine=wasm&inputs=lines&outputs=upper&timeout_ms=30000", &images.upper_wasm),
    ];
    for (name, query, image) in functions {
        let name = if name == "mine" { format!("only_{tenant}") } else { name.to_string() };
        let r = client.request("PUT", &format!("/v1/functions/{name}?{query}"), &[("Authorization", &auth)], image)?;
        if r.status != 201 {
            return Err(Failure(format!("{tenant}: registering {name}: {} {}", r.status, r.text())));
        }
    }
    let fan =
        "function identity (in) => (out);\ncomposition fan (A) => (B) {\n    identity (in = each A) => (B = out);\n}\n";
    let r = client.request("PUT", "/v1/compositions/fan", &[("Authorization", &auth)], fan.as_bytes())?;
    if r.status != 201 {
        return Err(Failure(format!("{tenant}: registering fan: {} {}", r.status, r.text())));
    }
    Ok(())
}

/// The kinds of request in the mix, with their weights (per 1,000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    UpperWasm,
    UpperMpk,
    Identity,
    Fan,
    Sleep,
    BadBody,
    UnknownName,
    OtherTenant,
    TrapWasm,
    TrapMpk,
    Fail,
    TimeoutWasm,
    TimeoutMpk,
    Cycle,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::UpperWasm,
        Kind::UpperMpk,
        Kind::Identity,
        Kind::Fan,
        Kind::Sleep,
        Kind::BadBody,
        Kind::UnknownName,
        Kind::OtherTenant,
        Kind::TrapWasm,
        Kind::TrapMpk,
        Kind::Fail,
        Kind::TimeoutWasm,
        Kind::TimeoutMpk,
        Kind::Cycle,
    ];

    fn weight(self) -> u64 {
        match self {
            Kind::UpperWasm => 300,
            Kind::UpperMpk => 250,
            Kind::Identity => 100,
            Kind::Fan => 100,
            Kind::Sleep => 20,
            Kind::BadBody => 50,
            Kind::UnknownName => 40,
            Kind::OtherTenant => 40,
            Kind::TrapWasm => 30,
            Kind::TrapMpk => 30,
            Kind::Fail => 20,
            Kind::TimeoutWasm => 5,
            Kind::TimeoutMpk => 5,
            Kind::Cycle => 10,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::UpperWasm => "upper_wasm",
            Kind::UpperMpk => "upper_mpk",
            Kind::Identity => "identity",
            Kind::Fan => "fan",
            Kind::Sleep => "sleep",
            Kind::BadBody => "bad_body",
            Kind::UnknownName => "unknown_name",
            Kind::OtherTenant => "other_tenant",
            Kind::TrapWasm => "trap_wasm",
            Kind::TrapMpk => "trap_mpk",
            Kind::Fail => "fail",
            Kind::TimeoutWasm => "timeout_wasm",
            Kind::TimeoutMpk => "timeout_mpk",
            Kind::Cycle => "register_delete",
        }
    }
}

/// One load thread: a tenant, a connection, a deterministic random stream.
struct Worker {
    port: u16,
    id: u64,
    tenant: &'static str,
    other: &'static str,
    auth: String,
    client: Client,
    on_connection: u64,
    rng: u64,
    images: Arc<Images>,
    /// Register-delete cycles so far.
    cycles: u64,
    /// Whether cycles register the same wasm bytes every time.
    reuse_images: bool,
    /// Whether bodies have the largest size (the warm-up).
    largest: bool,
}

impl Worker {
    fn new(port: u16, id: u64, images: Arc<Images>, reuse_images: bool) -> Result<Self> {
        let (tenant, token) = TENANTS[(id % 2) as usize];
        let other = TENANTS[((id + 1) % 2) as usize].0;
        Ok(Self {
            port,
            id,
            tenant,
            other,
            auth: format!("Bearer {token}"),
            client: Client::connect(port, TIMEOUT)?,
            on_connection: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
            images,
            cycles: 0,
            reuse_images,
            largest: false,
        })
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self) -> Kind {
        let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
        let mut x = self.next() % total;
        for kind in Kind::ALL {
            if x < kind.weight() {
                return kind;
            }
            x -= kind.weight();
        }
        Kind::UpperWasm
    }

    /// A body size: mostly small, some tens of KiB, a few up to 1 MiB.
    fn size(&mut self) -> usize {
        if self.largest {
            return MAX_BODY;
        }
        let r = self.next();
        match r % 100 {
            0..=79 => 1 + (r >> 8) as usize % 4096,
            80..=97 => 4096 + (r >> 8) as usize % (64 << 10),
            _ => (256 << 10) + (r >> 8) as usize % (MAX_BODY - (256 << 10) + 1),
        }
    }

    /// Lower-case letters, digits and spaces, so uppercasing changes most bytes.
    fn text(&mut self, len: usize) -> Vec<u8> {
        let seed = self.next();
        (0..len as u64).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 "[((seed ^ (i * 31)) % 37) as usize]).collect()
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
        if self.on_connection >= REQUESTS_PER_CONNECTION {
            self.client = Client::connect(self.port, TIMEOUT)?;
            self.on_connection = 0;
        }
        self.on_connection += 1;
        let mut all = vec![("Authorization", self.auth.as_str())];
        all.extend_from_slice(headers);
        self.client
            .request(method, path, &all, body)
            .map_err(|e| Failure(format!("{} {method} {path}: {}", self.tenant, e.0)))
    }

    fn raw(&mut self, name: &str, body: &[u8]) -> Result<Response> {
        let headers = [("Content-Type", "application/octet-stream"), ("Accept", "application/octet-stream")];
        self.send("POST", &format!("/v1/invoke/{name}"), &headers, body)
    }

    /// Runs one request of `kind` (a register-delete cycle is four) and checks its answer;
    /// returns how many invocations it made.
    fn one(&mut self, kind: Kind) -> Result<u64> {
        let what = format!("{} worker {} {}", self.tenant, self.id, kind.name());
        let expect = |r: &Response, status: u16, code: Option<&str>| -> Result {
            let code_ok = code.is_none_or(|c| r.text().contains(&format!("\"code\":\"{c}\"")));
            if r.status != status || !code_ok {
                let text = r.text();
                let shown = &text[..text.len().min(300)];
                return Err(Failure(format!("{what}: expected {status} {code:?}, got {} {shown}", r.status)));
            }
            Ok(())
        };
        match kind {
            Kind::UpperWasm | Kind::UpperMpk | Kind::Identity => {
                let name = match kind {
                    Kind::UpperWasm => "upper_w",
                    Kind::UpperMpk => "upper_m",
                    _ => "identity",
                };
                let len = self.size();
                let body = self.text(len);
                let r = self.raw(name, &body)?;
                expect(&r, 200, None)?;
                let want = if kind == Kind::Identity { body.clone() } else { body.to_ascii_uppercase() };
                if r.body != want {
                    return Err(Failure(format!("{what}: {len} bytes came back different ({} bytes)", r.body.len())));
                }
            }
            Kind::Fan => {
                let items: Vec<Vec<u8>> = (0..1 + self.next() % 8).map(|i| self.text(1 + i as usize * 97)).collect();
                let sets = items
                    .iter()
                    .enumerate()
                    .map(|(i, d)| format!(r#"{{"name":"i{i}","data":"{}"}}"#, base64(d)))
                    .collect::<Vec<_>>()
                    .join(",");
                let body = format!(r#"{{"sets":{{"A":[{sets}]}}}}"#);
                let r =
                    self.send("POST", "/v1/invoke/fan", &[("Content-Type", "application/json")], body.as_bytes())?;
                expect(&r, 200, None)?;
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                let mut got: Vec<String> = v["sets"]["B"]
                    .as_array()
                    .ok_or_else(|| Failure(format!("{what}: no set B in {v}")))?
                    .iter()
                    .map(|i| i["data"].as_str().unwrap_or_default().to_string())
                    .collect();
                let mut want: Vec<String> = items.iter().map(|d| base64(d)).collect();
                got.sort();
                want.sort();
                if got != want {
                    return Err(Failure(format!("{what}: fan-out outputs differ from its inputs")));
                }
            }
            Kind::Sleep => {
                let r = self.raw("sleep", b"1")?;
                expect(&r, 200, None)?;
            }
            Kind::BadBody => {
                let r = self.send("POST", "/v1/invoke/fan", &[("Content-Type", "application/json")], b"{\"sets\":")?;
                expect(&r, 400, None)?;
            }
            Kind::UnknownName => {
                let r = self.raw("no_such_function", b"x")?;
                expect(&r, 404, Some("not_found"))?;
            }
            Kind::OtherTenant => {
                let name = format!("only_{}", self.other);
                let r = self.raw(&name, b"x")?;
                expect(&r, 404, Some("not_found"))?;
                let mine = format!("only_{}", self.tenant);
                let r = self.raw(&mine, b"mine")?;
                expect(&r, 200, None)?;
                if r.body != b"MINE" {
                    return Err(Failure(format!("{what}: {mine} answered {:?}", r.text())));
                }
                return Ok(2);
            }
            Kind::TrapWasm | Kind::TrapMpk => {
                let r = self.raw(if kind == Kind::TrapWasm { "trap_w" } else { "trap_m" }, b"x")?;
                expect(&r, 500, Some("function_trap"))?;
            }
            Kind::Fail => {
                let r = self.raw("fail", b"on purpose")?;
                expect(&r, 500, Some("function_failed"))?;
            }
            Kind::TimeoutWasm | Kind::TimeoutMpk => {
                let r = self.raw(if kind == Kind::TimeoutWasm { "loop_w" } else { "loop_m" }, b"x")?;
                expect(&r, 504, Some("timeout"))?;
            }
            Kind::Cycle => {
                // Register, invoke, delete, invoke again: alternately wasm and MPK.
                let native = self.next().is_multiple_of(2);
                // The wasm image is new bytes every time (a custom section naming the cycle): a
                // prepared module nobody references any more must not stay behind.
                self.cycles += 1;
                let (engine, image) = if native {
                    ("mpk", self.images.upper_native.clone())
                } else if self.reuse_images {
                    ("wasm", self.images.upper_wasm.clone())
                } else {
                    ("wasm", with_custom_section(&self.images.upper_wasm, &format!("{}-{}", self.id, self.cycles)))
                };
                let name = format!("tmp_{}", self.id);
                let query = format!("engine={engine}&inputs=lines&outputs=upper&timeout_ms=30000");
                let r = self.send("PUT", &format!("/v1/functions/{name}?{query}"), &[], &image)?;
                expect(&r, 201, None)?;
                let r = self.raw(&name, b"cycle")?;
                expect(&r, 200, None)?;
                if r.body != b"CYCLE" {
                    return Err(Failure(format!("{what}: {name} answered {:?}", r.text())));
                }
                let r = self.send("DELETE", &format!("/v1/functions/{name}"), &[], b"")?;
                expect(&r, 204, None)?;
                let r = self.raw(&name, b"cycle")?;
                expect(&r, 404, Some("not_found"))?;
                return Ok(2);
            }
        }
        Ok(1)
    }
}

/// A wasm module with a custom section `pappus-soak` holding `tag` appended: the same code,
/// other bytes (and so another image digest).
fn with_custom_section(module: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let name = b"pappus-soak";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = module.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn custom_sections_keep_the_module_valid() {
        let module = wat::parse_str("(module (func (export \"run\")))").unwrap();
        let tagged = with_custom_section(&module, &"x".repeat(200));
        assert_ne!(tagged, module);
        let parsed = wat::parse_bytes(&tagged).expect("still a module");
        assert_eq!(parsed.len(), tagged.len());
        assert_eq!(&tagged[..module.len()], &module[..]);
        // Section id 0, a two-byte LEB size (11 + 1 + 200 = 212 bytes of payload).
        assert_eq!(&tagged[module.len()..module.len() + 3], &[0, 0xd4, 0x01]);
    }

    #[test]
    fn gauges_parse_and_compare() {
        let text = "pappus_heap_bytes_used 1000\npappus_frames_free 46\npappus_native_kept_image_frames 4\npappus_user_table_frames 7\npappus_net_sockets 140\n\
                    pappus_tcp_sockets{state=\"listen\"} 135\npappus_tcp_sockets{state=\"established\"} 1\n\
                    pappus_tcp_sockets{state=\"fin_wait1\"} 2\npappus_mpk_keys_live 0\npappus_invocations_live 0\n\
                    pappus_http_connections_active 1\n";
        let g = Gauges::parse(text).unwrap();
        assert_eq!((g.heap_used, g.frames_free, g.net_sockets, g.door_sockets_busy), (1000, 50, 140, 3));
        assert!(g.compare(&g).ok);
        // (Free frames 50 and table frames 7 in `text`: 57 beside page tables.)
        let roomy = Gauges { frames_free: 500, ..g.clone() };
        let kept = Gauges { frames_free: 500 - KEPT_FRAMES_SLACK, ..g.clone() };
        assert!(roomy.compare(&kept).ok, "frames kept by the native engines' slots, within their bound");
        let leaked = Gauges { frames_free: 499 - KEPT_FRAMES_SLACK, ..g.clone() };
        let report = roomy.compare(&leaked);
        assert!(!report.ok);
        let line = format!(
            "frames_free_beside_page_tables baseline 507 end {} delta -{} FAILED",
            506 - KEPT_FRAMES_SLACK,
            KEPT_FRAMES_SLACK + 1
        );
        assert!(report.lines.contains(&line), "{:?}", report.lines);
        let tables = Gauges { frames_free: 40, table_frames: 17, ..g.clone() };
        assert!(g.compare(&tables).ok, "frames gone to page tables, within their high-water bound");
        let slack = Gauges { heap_used: 1000 + HEAP_SLACK, ..g.clone() };
        assert!(g.compare(&slack).ok, "within the heap slack");
        let over = Gauges { heap_used: 1001 + HEAP_SLACK, ..g.clone() };
        assert!(!g.compare(&over).ok);
        assert!(Gauges::parse("pappus_frames_free 1\n").is_err(), "a missing gauge is an error");
    }

    #[test]
    fn the_mix_is_deterministic_and_covers_every_kind() {
        let images = Arc::new(Images {
            upper_wasm: vec![],
            upper_native: vec![],
            trap_wasm: vec![],
            loop_wasm: vec![],
            trap_native: vec![],
            loop_native: vec![],
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut a = Worker::new(port, 0, images.clone(), false).unwrap();
        let mut b = Worker::new(port, 0, images, false).unwrap();
        let picks: Vec<Kind> = (0..20_000).map(|_| a.pick()).collect();
        assert_eq!(picks, (0..20_000).map(|_| b.pick()).collect::<Vec<_>>());
        for kind in Kind::ALL {
            assert!(picks.contains(&kind), "{kind:?} never picked");
        }
        let sizes: Vec<usize> = (0..10_000).map(|_| a.size()).collect();
        assert!(sizes.iter().all(|&s| (1..=1 << 20).contains(&s)));
        assert!(sizes.iter().any(|&s| s > 256 << 10), "some large bodies");
    }
}
