//! `cargo xtask fleet up|status|kill|boot|down`: a fleet of QEMU nodes on this machine, run by
//! the infrastructure operators already run (docs/fleet.md):
//!
//! - a network namespace (`pappus-fleet`) holding a bridge (10.77.0.1/24) and one TAP per node;
//! - dnsmasq on the bridge: DHCP with a fixed lease per node MAC, TFTP from the root `image
//!   --pxe` makes; each node's firmware (SeaBIOS and the NIC's iPXE ROM) network-boots
//!   `boot.ipxe`, which loads the kernel and the boot configuration (`etcd`, `blobs`, tenants);
//! - etcd (10.77.0.1:2379) with the desired state, and the blob server (10.77.0.1:8081);
//! - HAProxy and Prometheus on this machine's 127.0.0.1, reaching the nodes through a veth pair
//!   whose far end is a port of the bridge (10.77.0.2 on this side);
//! - N QEMU nodes (TCG, icount off, one CPU, small memory).
//!
//! Everything it starts is recorded in `target/fleet/state.json` (pids, ports, tokens); `fleet
//! down` ends those processes by pid and deletes the namespace (the bridge, the TAPs and the
//! veth pair go with it).

use std::fmt::Write as _;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pappus::http::{self, Endpoint, Request};
use serde::{Deserialize, Serialize};

use crate::args::{Args, Spec};
use crate::util::{self, Failure, Result, say};

pub const SPEC: Spec = Spec { values: &["nodes", "port", "prometheus-port"], switches: &[], max_positionals: 2 };

pub const NAMESPACE: &str = "pappus-fleet";
const BRIDGE: &str = "pfbr0";
/// The bridge's address: dnsmasq, etcd and the blob server listen here.
pub const SERVICES_IP: &str = "10.77.0.1";
/// This machine's end of the veth pair, on the bridge's network.
const HOST_IP: &str = "10.77.0.2";
const VETH_HOST: &str = "pfv0";
const VETH_FLEET: &str = "pfv1";
pub const ETCD_PORT: u16 = 2379;
pub const BLOBS_PORT: u16 = 8081;
/// The most nodes `up` makes (addresses 10.77.0.11 ..).
const MAX_NODES: usize = 20;
/// Each node's memory: the kernel's heap is a quarter of what is free.
const NODE_MEMORY: &str = "192M";

/// How long `up` waits for every node to serve and HAProxy to see it up.
const READY_LIMIT: Duration = Duration::from_secs(300);

pub fn dir() -> PathBuf {
    pappus_tests::target_dir().join("fleet")
}

fn state_path() -> PathBuf {
    dir().join("state.json")
}

/// What `up` made, for the other commands.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub nodes: usize,
    pub port: u16,
    pub prometheus_port: u16,
    pub token: String,
    pub operator: String,
    /// Services by name (dnsmasq, etcd, blobs, haproxy, prometheus): their pids.
    pub services: Vec<(String, u32)>,
    /// Each node's QEMU pid, or 0 when it is powered off.
    pub node_pids: Vec<u32>,
}

impl State {
    pub fn load() -> Result<State> {
        let text = fs::read_to_string(state_path()).map_err(|_| {
            Failure(format!("no fleet ({} missing): `cargo xtask fleet up` first", state_path().display()))
        })?;
        serde_json::from_str(&text).map_err(|e| Failure(format!("{}: {e}", state_path().display())))
    }

    fn save(&self) -> Result {
        let text = serde_json::to_string_pretty(self).map_err(|e| Failure(e.to_string()))?;
        fs::write(state_path(), text)?;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn etcd_url() -> String {
        format!("http://{SERVICES_IP}:{ETCD_PORT}")
    }
}

/// Node `k`'s (from 1) MAC, address and TAP.
pub fn node_mac(k: usize) -> String {
    format!("52:54:00:77:00:{k:02x}")
}

pub fn node_ip(k: usize) -> String {
    format!("10.77.0.{}", 10 + k)
}

fn node_tap(k: usize) -> String {
    format!("pft{k}")
}

pub fn main(args: &Args) -> Result {
    let sub = args.positionals.first().map(String::as_str).unwrap_or_default();
    let node = || -> Result<usize> {
        let k: usize = args
            .positionals
            .get(1)
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| Failure(format!("`fleet {sub}` needs a node number (1..N)")))?;
        Ok(k)
    };
    match sub {
        "up" => {
            let nodes: usize = args.parsed("nodes")?.unwrap_or(3);
            let port: u16 = args.parsed("port")?.unwrap_or(8090);
            let prometheus_port: u16 = args.parsed("prometheus-port")?.unwrap_or(port.wrapping_add(1));
            up(nodes, port, prometheus_port).map(drop)
        }
        "status" => status(),
        "kill" => kill_node(node()?),
        "boot" => boot_node(node()?),
        "down" => down(),
        "etcd" => etcd_command(args.positionals.get(1).map(String::as_str)),
        other => Err(Failure(format!("unknown fleet command {other:?} (up, status, kill, boot, etcd, down)"))),
    }
}

/// Runs `ip …` (and friends) quietly; an error with its stderr when it fails.
fn sh(program: &str, args: &[&str]) -> Result {
    let out = Command::new(program).args(args).output().map_err(|e| Failure(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn in_namespace(args: &[&str]) -> Result {
    let mut all = vec!["netns", "exec", NAMESPACE];
    all.extend_from_slice(args);
    sh("ip", &all)
}

fn namespace_exists() -> bool {
    Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout).lines().any(|l| l.split_whitespace().next() == Some(NAMESPACE))
    })
}

/// Starts `command` detached (its own process group, output to `log`), inside the namespace
/// when `namespaced`; its pid.
fn spawn(name: &str, program: &str, args: &[String], namespaced: bool) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = fs::File::create(dir().join(format!("{name}.log")))?;
    let mut command = if namespaced {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", NAMESPACE, program]);
        c
    } else {
        Command::new(program)
    };
    command.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    let child = command.spawn().map_err(|e| Failure(format!("cannot start {name} ({program}): {e}")))?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    pid != 0 && pappus_tests::process_alive(pid)
}

/// SIGTERM, a moment, then SIGKILL.
fn stop(pid: u32) {
    if !alive(pid) {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).output();
    for _ in 0..30 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).output();
}

/// Reaps nothing (our children are detached) but waits until `pid` is gone or 3 s passed.
fn wait_gone(pid: u32) {
    for _ in 0..30 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The nodes' boot configuration: one tenant `dev`, the operator (Prometheus scrapes with its
/// token), and where the fleet's state is.
fn boot_config(token: &str, operator: &str) -> String {
    format!(
        "# Made by `cargo xtask fleet up`: every node of the fleet boots this (TFTP pappus.conf).\n\
         tenant dev {token}\n\
         operator {operator}\n\
         etcd http://{SERVICES_IP}:{ETCD_PORT}\n\
         blobs http://{SERVICES_IP}:{BLOBS_PORT}/blobs\n"
    )
}

fn dnsmasq_config(nodes: usize, tftp: &Path) -> String {
    let mut c = format!(
        "# Made by `cargo xtask fleet up`. DHCP and TFTP on the fleet's bridge only.\n\
         interface={BRIDGE}\n\
         bind-interfaces\n\
         port=0\n\
         user=root\n\
         dhcp-range={SERVICES_IP},static,255.255.255.0,1h\n\
         dhcp-option=option:router,{SERVICES_IP}\n\
         enable-tftp\n\
         tftp-root={}\n\
         # iPXE (the NIC's option ROM) says so with option 175: give it the script.\n\
         dhcp-match=set:ipxe,175\n\
         dhcp-boot=tag:ipxe,boot.ipxe\n\
         dhcp-leasefile={}\n\
         log-dhcp\n",
        tftp.display(),
        dir().join("dnsmasq.leases").display()
    );
    for k in 1..=nodes {
        let _ = writeln!(c, "dhcp-host={},{},node{k}", node_mac(k), node_ip(k));
    }
    c
}

fn haproxy_config(nodes: usize, port: u16) -> String {
    let mut c = format!(
        "# Made by `cargo xtask fleet up`.\n\
         global\n\
         \x20   maxconn 2000\n\
         \x20   stats socket {} mode 600 level admin\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   # A request whose connection failed before any response goes to another node.\n\
         \x20   retries 3\n\
         \x20   retry-on conn-failure\n\
         \x20   option redispatch\n\
         frontend pappus\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend nodes\n\
         backend nodes\n\
         \x20   balance leastconn\n\
         \x20   option httpchk GET /healthz\n\
         \x20   http-check expect status 200\n\
         \x20   # A node that fails its checks has its open requests cut at once (the client sees a\n\
         \x20   # closed connection, retriable), rather than waiting out `timeout server`.\n\
         \x20   default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions\n",
        dir().join("haproxy.sock").display()
    );
    for k in 1..=nodes {
        let _ = writeln!(c, "    server node{k} {}:8080 check", node_ip(k));
    }
    c
}

fn prometheus_config(nodes: usize, operator: &str) -> String {
    let targets: Vec<String> = (1..=nodes).map(|k| format!("'{}:8080'", node_ip(k))).collect();
    format!(
        "# Made by `cargo xtask fleet up`.\n\
         global:\n\
         \x20 scrape_interval: 2s\n\
         \x20 scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: pappus\n\
         \x20   authorization:\n\
         \x20     credentials: '{operator}'\n\
         \x20   static_configs:\n\
         \x20     - targets: [{}]\n",
        targets.join(", ")
    )
}

fn node_args(k: usize) -> Vec<String> {
    let words = [
        "-M",
        "q35,graphics=off",
        "-cpu",
        "max",
        "-accel",
        "tcg",
        "-m",
        NODE_MEMORY,
        "-smp",
        "1",
        "-display",
        "none",
        "-monitor",
        "none",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-boot",
        "n",
    ];
    let mut args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    args.push("-serial".into());
    args.push(format!("file:{}", dir().join(format!("node{k}.serial")).display()));
    args.push("-netdev".into());
    args.push(format!("tap,id=n0,ifname={},script=no,downscript=no", node_tap(k)));
    args.push("-device".into());
    args.push(format!("virtio-net-pci,netdev=n0,mac={}", node_mac(k)));
    args
}

/// etcd in the namespace, its data in `target/fleet/etcd` (kept across a stop and start).
fn start_etcd() -> Result<u32> {
    let etcd_url = State::etcd_url();
    spawn(
        "etcd",
        "etcd",
        &[
            "--name".into(),
            "fleet".into(),
            "--data-dir".into(),
            dir().join("etcd").display().to_string(),
            "--listen-client-urls".into(),
            etcd_url.clone(),
            "--advertise-client-urls".into(),
            etcd_url,
            "--listen-peer-urls".into(),
            "http://127.0.0.1:2380".into(),
            "--initial-advertise-peer-urls".into(),
            "http://127.0.0.1:2380".into(),
            "--initial-cluster".into(),
            "fleet=http://127.0.0.1:2380".into(),
        ],
        true,
    )
}

/// `fleet etcd stop|start`: an etcd outage and its end, for drills and the tests.
fn etcd_command(what: Option<&str>) -> Result {
    let mut state = State::load()?;
    let slot = state
        .services
        .iter_mut()
        .find(|(name, _)| name == "etcd")
        .ok_or_else(|| Failure("the fleet's state has no etcd".into()))?;
    match what {
        Some("stop") => {
            stop(slot.1);
            wait_gone(slot.1);
            println!("fleet: etcd stopped");
        }
        Some("start") => {
            if alive(slot.1) {
                return Err(Failure(format!("etcd runs (pid {})", slot.1)));
            }
            slot.1 = start_etcd()?;
            state.save()?;
            let url = format!("{}/health", State::etcd_url());
            wait_for("etcd", Duration::from_secs(30), || get(&url, None).is_some_and(|r| r.0 == 200))?;
            println!("fleet: etcd started");
        }
        _ => return Err(Failure("`fleet etcd stop` or `fleet etcd start`".into())),
    }
    Ok(())
}

fn start_node(k: usize) -> Result<u32> {
    spawn(&format!("node{k}"), "qemu-system-x86_64", &node_args(k), true)
}

/// GET `url` with a short timeout: the status and body.
pub fn get(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut endpoint = Endpoint::parse(url).ok()?;
    // Requests' paths are appended to the endpoint's prefix.
    let path = std::mem::take(&mut endpoint.prefix);
    let mut request = Request::new("GET", if path.is_empty() { "/".to_string() } else { path });
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = http::send(&endpoint, &request, Duration::from_secs(2)).ok()?;
    Some((response.status, String::from_utf8_lossy(&response.body).into_owned()))
}

/// HAProxy's view of the nodes (its stats socket, `show stat`): per node, status and the
/// current and total sessions.
pub fn haproxy_servers() -> Vec<(String, String, u64, u64)> {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::os::unix::net::UnixStream::connect(dir().join("haproxy.sock")) else { return vec![] };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
    if socket.write_all(b"show stat\n").is_err() {
        return vec![];
    }
    let mut text = String::new();
    let _ = socket.read_to_string(&mut text);
    let mut header: Vec<&str> = Vec::new();
    let mut servers = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            header = h.split(',').collect();
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let field = |name: &str| header.iter().position(|h| *h == name).and_then(|i| fields.get(i)).copied();
        if field("pxname") == Some("nodes") && field("svname").is_some_and(|s| s.starts_with("node")) {
            let number = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
            servers.push((
                field("svname").unwrap_or_default().to_string(),
                field("status").unwrap_or_default().to_string(),
                number("scur"),
                number("stot"),
            ));
        }
    }
    servers
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Failure(format!("{what}: not ready after {} s", limit.as_secs())))
}

/// Builds and starts everything; the state. Prints the ready line.
pub fn up(nodes: usize, port: u16, prometheus_port: u16) -> Result<State> {
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(Failure(format!("--nodes {nodes}: 1..={MAX_NODES}")));
    }
    if !util::is_root() {
        return Err(Failure("a fleet needs root (network namespace, bridge, TAPs)".into()));
    }
    if namespace_exists() || state_path().is_file() {
        return Err(Failure(format!("a fleet is up already (namespace {NAMESPACE}): `cargo xtask fleet down` first")));
    }
    for p in [port, prometheus_port] {
        if taken(&format!("127.0.0.1:{p}")) {
            return Err(Failure(format!("127.0.0.1:{p} is taken: choose another --port / --prometheus-port")));
        }
    }
    crate::prereq::fleet()?;
    let started = Instant::now();
    let dir = dir();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let mut state = State {
        nodes,
        port,
        prometheus_port,
        token: format!("pappus-fleet-{}", random_hex(16)?),
        operator: format!("ops-fleet-{}", random_hex(16)?),
        ..State::default()
    };
    // The state first: whatever happens next, `down` finds what was made.
    state.save()?;
    let result = bring_up(&mut state, started);
    if let Err(e) = result {
        let _ = state.save();
        say(format!("fleet up failed: {}; taking down what was made", e.0));
        let _ = down();
        return Err(e);
    }
    Ok(state)
}

fn bring_up(state: &mut State, started: Instant) -> Result {
    let dir = dir();
    let nodes = state.nodes;
    // The TFTP root: the kernel and the boot configuration every node gets.
    let config = dir.join("pappus.conf");
    fs::write(&config, boot_config(&state.token, &state.operator))?;
    model::BootConfig::parse(&fs::read(&config)?).map_err(|e| Failure(format!("fleet boot configuration: {e}")))?;
    let kernel = util::build_kernels(&[pappus_qemu::Arch::X86_64])?.remove(0).1;
    let loader = crate::image::build_loader()?;
    let stripped = dir.join("pappus-kernel");
    crate::image::strip(&kernel, &stripped)?;
    let tftp = dir.join("tftp");
    crate::image::pxe_root(&tftp, &loader, &stripped, &config)?;

    // The network: namespace, bridge, TAPs, and the veth pair to this side.
    sh("ip", &["netns", "add", NAMESPACE])?;
    in_namespace(&["ip", "link", "set", "lo", "up"])?;
    in_namespace(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
    in_namespace(&["ip", "addr", "add", &format!("{SERVICES_IP}/24"), "dev", BRIDGE])?;
    in_namespace(&["ip", "link", "set", BRIDGE, "up"])?;
    for k in 1..=nodes {
        let tap = node_tap(k);
        in_namespace(&["ip", "tuntap", "add", &tap, "mode", "tap"])?;
        in_namespace(&["ip", "link", "set", &tap, "master", BRIDGE, "up"])?;
    }
    sh("ip", &["link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_FLEET])?;
    sh("ip", &["link", "set", VETH_FLEET, "netns", NAMESPACE])?;
    in_namespace(&["ip", "link", "set", VETH_FLEET, "master", BRIDGE, "up"])?;
    sh("ip", &["addr", "add", &format!("{HOST_IP}/24"), "dev", VETH_HOST])?;
    sh("ip", &["link", "set", VETH_HOST, "up"])?;

    // Services in the namespace.
    let dnsmasq_conf = dir.join("dnsmasq.conf");
    fs::write(&dnsmasq_conf, dnsmasq_config(nodes, &tftp))?;
    let pid = spawn(
        "dnsmasq",
        "dnsmasq",
        &["--keep-in-foreground".into(), "--log-facility=-".into(), format!("--conf-file={}", dnsmasq_conf.display())],
        true,
    )?;
    state.services.push(("dnsmasq".into(), pid));
    let etcd_url = State::etcd_url();
    let pid = start_etcd()?;
    state.services.push(("etcd".into(), pid));
    let xtask = std::env::current_exe()?;
    let pid = spawn(
        "blobs",
        &xtask.display().to_string(),
        &[
            "fleet-blob-server".into(),
            "--dir".into(),
            dir.join("blobs").display().to_string(),
            "--listen".into(),
            format!("{SERVICES_IP}:{BLOBS_PORT}"),
        ],
        true,
    )?;
    state.services.push(("blobs".into(), pid));
    state.save()?;
    wait_for("etcd", Duration::from_secs(30), || get(&format!("{etcd_url}/health"), None).is_some_and(|r| r.0 == 200))?;
    let fleet = pappus::fleet::Fleet::new(&etcd_url, "dev").map_err(|e| Failure(e.0))?;
    fleet
        .put(pappus::fleet::BLOBS_KEY, format!("http://{SERVICES_IP}:{BLOBS_PORT}/blobs").as_bytes())
        .map_err(|e| Failure(e.0))?;

    // HAProxy and Prometheus on this side's 127.0.0.1.
    let haproxy_conf = dir.join("haproxy.cfg");
    fs::write(&haproxy_conf, haproxy_config(nodes, state.port))?;
    sh("haproxy", &["-c", "-q", "-f", &haproxy_conf.display().to_string()])?;
    let pid = spawn("haproxy", "haproxy", &["-db".into(), "-f".into(), haproxy_conf.display().to_string()], false)?;
    state.services.push(("haproxy".into(), pid));
    let prometheus_conf = dir.join("prometheus.yml");
    fs::write(&prometheus_conf, prometheus_config(nodes, &state.operator))?;
    let pid = spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prometheus_conf.display()),
            format!("--storage.tsdb.path={}", dir.join("prometheus").display()),
            format!("--web.listen-address=127.0.0.1:{}", state.prometheus_port),
        ],
        false,
    )?;
    state.services.push(("prometheus".into(), pid));
    state.save()?;

    // The nodes.
    for k in 1..=nodes {
        let pid = start_node(k)?;
        state.node_pids.push(pid);
    }
    state.save()?;
    say(format!("fleet: {nodes} node(s) network-booting (serial logs in {})", util::relative(&dir)));
    for k in 1..=nodes {
        let url = format!("http://{}:8080/healthz", node_ip(k));
        wait_for(&format!("node {k} ({})", node_ip(k)), READY_LIMIT, || {
            get(&url, None).is_some_and(|(status, body)| status == 200 && body.contains("\"etcd\":\"up\""))
        })?;
        say(format!("fleet: node {k} serves and syncs ({:.1} s since up began)", started.elapsed().as_secs_f64()));
    }
    wait_for("HAProxy sees every node up", Duration::from_secs(30), || {
        let servers = haproxy_servers();
        servers.len() == nodes && servers.iter().all(|s| s.1 == "UP")
    })?;
    say(format!("fleet: up in {:.1} s", started.elapsed().as_secs_f64()));
    println!(
        "pappus fleet ready: {} nodes={nodes} token={} etcd={} prometheus=http://127.0.0.1:{}",
        state.url(),
        state.token,
        State::etcd_url(),
        state.prometheus_port
    );
    Ok(())
}

fn status() -> Result {
    let state = State::load()?;
    let servers = haproxy_servers();
    println!(
        "fleet: {} node(s), {} (etcd {}), prometheus http://127.0.0.1:{}",
        state.nodes,
        state.url(),
        State::etcd_url(),
        state.prometheus_port
    );
    for (name, pid) in &state.services {
        println!("  {name:<10} pid {pid:<8} {}", if alive(*pid) { "running" } else { "NOT RUNNING" });
    }
    println!("  node   address      power    haproxy   conns  served   sync");
    for k in 1..=state.nodes {
        let pid = state.node_pids.get(k - 1).copied().unwrap_or(0);
        let power = if alive(pid) { "on" } else { "off" };
        let server = servers.iter().find(|s| s.0 == format!("node{k}"));
        let health = get(&format!("http://{}:8080/healthz", node_ip(k)), None)
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .map(|v| v["fleet"].to_string())
            .unwrap_or_else(|| "no answer".into());
        println!(
            "  {k:<6} {:<12} {power:<8} {:<9} {:<6} {:<8} {health}",
            node_ip(k),
            server.map_or("?", |s| s.1.as_str()),
            server.map_or(0, |s| s.2),
            server.map_or(0, |s| s.3),
        );
    }
    Ok(())
}

fn kill_node(k: usize) -> Result {
    let mut state = State::load()?;
    let pid = *state.node_pids.get(k.wrapping_sub(1)).ok_or_else(|| Failure(format!("no node {k}")))?;
    if alive(pid) {
        // Power off: no shutdown, as a pulled plug.
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).output();
        wait_gone(pid);
    }
    state.node_pids[k - 1] = 0;
    state.save()?;
    println!("fleet: node {k} powered off");
    Ok(())
}

fn boot_node(k: usize) -> Result {
    let mut state = State::load()?;
    let pid = *state.node_pids.get(k.wrapping_sub(1)).ok_or_else(|| Failure(format!("no node {k}")))?;
    if alive(pid) {
        return Err(Failure(format!("node {k} is on (pid {pid}): `fleet kill {k}` first")));
    }
    state.node_pids[k - 1] = start_node(k)?;
    state.save()?;
    println!("fleet: node {k} powered on (network boot)");
    Ok(())
}

/// Ends every process `up` started (by pid) and deletes the namespace.
pub fn down() -> Result {
    let state = State::load().unwrap_or_default();
    for pid in state.node_pids.iter().chain(state.services.iter().map(|(_, p)| p)) {
        stop(*pid);
    }
    if namespace_exists() {
        sh("ip", &["netns", "delete", NAMESPACE])?;
    }
    // The veth's far end went with the namespace, and this end with it; in case it did not:
    let _ = sh("ip", &["link", "delete", VETH_HOST]);
    let _ = fs::remove_file(state_path());
    println!("fleet: down");
    Ok(())
}

/// Whether something already listens at `address` (a port `up` would take).
pub fn taken(address: &str) -> bool {
    TcpStream::connect_timeout(&address.parse().expect("an address"), Duration::from_millis(200)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_name_every_node() {
        let dnsmasq = dnsmasq_config(3, Path::new("/srv/tftp"));
        for k in 1..=3 {
            assert!(dnsmasq.contains(&format!("dhcp-host=52:54:00:77:00:0{k},10.77.0.1{k},node{k}\n")), "{dnsmasq}");
        }
        assert!(dnsmasq.contains("tftp-root=/srv/tftp\n") && dnsmasq.contains("dhcp-boot=tag:ipxe,boot.ipxe\n"));
        let haproxy = haproxy_config(2, 8090);
        assert!(haproxy.contains("bind 127.0.0.1:8090\n") && haproxy.contains("balance leastconn\n"));
        assert!(haproxy.contains("retry-on conn-failure\n") && haproxy.contains("option httpchk GET /healthz\n"));
        assert!(haproxy.contains("on-marked-down shutdown-sessions\n"), "a dead node's requests must not hang");
        assert!(haproxy.contains("server node2 10.77.0.12:8080 check\n") && !haproxy.contains("node3"));
        let prometheus = prometheus_config(2, "ops-token-0123456789");
        assert!(prometheus.contains("targets: ['10.77.0.11:8080', '10.77.0.12:8080']"), "{prometheus}");
        assert!(prometheus.contains("credentials: 'ops-token-0123456789'"));
        // The nodes' configuration is one the kernel's parser takes, with the fleet's URLs.
        let config = model::BootConfig::parse(
            boot_config("pappus-fleet-0123456789abcdef", "ops-fleet-0123456789abcdef").as_bytes(),
        )
        .unwrap();
        assert_eq!(config.node.etcd.as_deref(), Some("http://10.77.0.1:2379"));
        assert_eq!(config.node.blobs.as_deref(), Some("http://10.77.0.1:8081/blobs"));
        assert_eq!(config.tenants.len(), 1);
    }

    #[test]
    fn haproxy_accepts_its_configuration() {
        if !pappus_tests::on_path("haproxy") {
            eprintln!("SKIP: no haproxy on PATH");
            return;
        }
        let file = pappus_tests::target_dir().join("tmp").join(format!("haproxy-test-{}.cfg", std::process::id()));
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, haproxy_config(3, 8090)).unwrap();
        let out = Command::new("haproxy").args(["-c", "-f"]).arg(&file).output().unwrap();
        let _ = fs::remove_file(&file);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
