//! A booted node with its front door forwarded to a host port, and a plain `std::net` HTTP
//! client for the integration suites that talk to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use crate::protocol::Ready;
use crate::{Arch, Boot, Marker, Qemu, kernel_image, qemu_tests_enabled, target_dir};

/// How long a boot may take to reach ready.
pub const STEP: Duration = Duration::from_secs(120);
/// Socket read and write timeouts.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Node {
    pub qemu: Qemu,
    pub port: u16,
}

/// The operator token every test node's boot configuration carries (`operator <token>`):
/// `/metrics` answers only to it.
pub const OPERATOR_TOKEN: &str = "test-operator-0123456789abcdef";

/// The `Authorization` header that opens `/metrics` on a test node.
pub fn operator_header() -> (&'static str, String) {
    ("Authorization", format!("Bearer {OPERATOR_TOKEN}"))
}

/// One tenant of a test node's boot configuration.
pub struct Tenant<'a> {
    pub name: &'a str,
    pub token: &'a str,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Boots the x86_64 q35 profile with a NIC and the given tenants, waits until it serves, or
/// returns `None` when the QEMU suites are off.
pub fn boot(test: &str, tenants: &[Tenant<'_>]) -> Option<Node> {
    boot_arch(test, Arch::X86_64, tenants)
}

/// As [`boot`], for `arch`'s NIC profile: x86_64 q35 or aarch64 virt (virtio-net on PCIe).
pub fn boot_arch(test: &str, arch: Arch, tenants: &[Tenant<'_>]) -> Option<Node> {
    boot_with(test, arch, tenants, None)
}

/// As [`boot_arch`], with `smp` CPUs instead of the profile's (the ready line must count them).
pub fn boot_with(test: &str, arch: Arch, tenants: &[Tenant<'_>], smp: Option<u32>) -> Option<Node> {
    boot_node(test, arch.default_profile(), &tenant_lines(tenants), smp, None, None)
}

/// As [`boot_with`], under QEMU profile `profile` (e.g. `aarch64-morello`).
pub fn boot_profile(test: &str, profile: &str, tenants: &[Tenant<'_>], smp: Option<u32>) -> Option<Node> {
    boot_node(test, profile, &tenant_lines(tenants), smp, None, None)
}

/// As [`boot_with`], with the whole boot configuration's text; the operator line
/// ([`OPERATOR_TOKEN`]) is added unless the text has one.
pub fn boot_with_config(test: &str, arch: Arch, config: &str, smp: Option<u32>) -> Option<Node> {
    boot_node(test, arch.default_profile(), config, smp, None, None)
}

/// As [`boot`], with QEMU CPU model `cpu` (`max` has PKU under TCG, `qemu64` has not).
pub fn boot_cpu(test: &str, cpu: &str, tenants: &[Tenant<'_>]) -> Option<Node> {
    boot_node(test, Arch::X86_64.default_profile(), &tenant_lines(tenants), None, Some(cpu), None)
}

/// As [`boot_cpu`], with `smp` CPUs (MTTCG).
pub fn boot_cpu_smp(test: &str, cpu: &str, tenants: &[Tenant<'_>], smp: u32) -> Option<Node> {
    boot_node(test, Arch::X86_64.default_profile(), &tenant_lines(tenants), Some(smp), Some(cpu), None)
}

/// The boot configuration's `tenant` lines.
fn tenant_lines(tenants: &[Tenant<'_>]) -> String {
    tenants.iter().map(|t| format!("tenant {} {}\n", t.name, t.token)).collect()
}

/// As [`boot`], with words added to the kernel command line (e.g. `netfault=drop:3`).
pub fn boot_cmdline(test: &str, tenants: &[Tenant<'_>], cmdline: &str) -> Option<Node> {
    boot_node(test, Arch::X86_64.default_profile(), &tenant_lines(tenants), None, None, Some(cmdline))
}

fn boot_node(
    test: &str,
    profile: &str,
    config: &str,
    smp: Option<u32>,
    cpu: Option<&str>,
    cmdline: Option<&str>,
) -> Option<Node> {
    if !qemu_tests_enabled(test) {
        return None;
    }
    let arch = pappus_qemu::profile(profile).unwrap_or_else(|e| panic!("{e}")).arch;
    let kernel = kernel_image(arch).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut boot =
        Boot::profile(profile).kernel(kernel).host_port(port).log_name(test).time_limit(Duration::from_secs(900));
    if let Some(cpus) = smp {
        boot = boot.smp(cpus);
    }
    if let Some(cpu) = cpu {
        boot = boot.cpu(cpu);
    }
    if let Some(words) = cmdline {
        boot = boot.cmdline(words);
    }
    let has_operator = config.lines().any(|l| l.split_whitespace().next() == Some("operator"));
    let config = if has_operator { config.to_string() } else { format!("{config}\noperator {OPERATOR_TOKEN}\n") };
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(format!("{test}.conf"));
    std::fs::write(&path, config).unwrap();
    boot = boot.config(path);
    let mut qemu = boot.spawn().unwrap_or_else(|e| panic!("{e}"));
    let line = qemu.wait_for(Marker::starts_with("PAPPUS READY"), STEP).unwrap_or_else(|e| panic!("{e}"));
    let ready = Ready::parse(&line).unwrap_or_else(|| panic!("bad ready line {line:?}"));
    assert_eq!(ready.fields.get("ip").map(String::as_str), Some("10.0.2.15/24"), "DHCP address: {line}");
    assert_eq!(ready.fields.get("port").map(String::as_str), Some("8080"), "{line}");
    if let Some(cpus) = smp {
        assert_eq!(ready.cpus(), Some(u64::from(cpus)), "CPUs online: {line}");
    }
    Some(Node { qemu, port })
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (status line, headers, Content-Length body) from the stream.
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').ok_or_else(|| std::io::Error::other(format!("bad header {l:?}")))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Response { status, headers, body })
}

/// The status code of a raw response.
pub fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `len` bytes of a pattern that is not periodic in any small power of two.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

impl Node {
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// One request with extra header lines on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut s = self.connect();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: pappus\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in headers {
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        read_response(&mut BufReader::new(s)).unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.qemu.tail(20)))
    }

    /// One request on a fresh connection.
    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request(method, path, &[], body)
    }

    /// Raw bytes in, whatever comes back until the server closes (or the timeout).
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// `/metrics`, with the operator's token.
    pub fn metrics(&self) -> Response {
        let (name, value) = operator_header();
        let r = self.request("GET", "/metrics", &[(name, &value)], b"");
        assert_eq!(r.status, 200, "/metrics with the operator token: {}", r.text());
        r
    }

    pub fn metric(&self, name: &str) -> u64 {
        metric_in(&self.metrics().text(), name)
    }

    /// Frames free (with those of native images kept mapped between runs added back: a slot
    /// keeps the writable pages of the last function it ran, and which function that is depends
    /// on the order runs took, not on a leak) and heap used, once every connection but the
    /// asking one has closed.
    pub fn baseline(&self) -> (u64, u64) {
        for _ in 0..200 {
            if self.metric("pappus_http_connections_active") <= 1 {
                let text = self.metrics().text();
                let frames =
                    metric_in(&text, "pappus_frames_free") + metric_in(&text, "pappus_native_kept_image_frames");
                return (frames, metric_in(&text, "pappus_heap_bytes_used"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("connections never drained:\n{}", self.metrics().text());
    }

    /// The kernel still serves, and memory is back where it was.
    pub fn assert_healthy(&self, baseline: (u64, u64), after: &str) {
        let r = self.call("GET", "/healthz", b"");
        assert_eq!(r.status, 200, "healthz after {after}: {}", r.text());
        let (frames, heap) = self.baseline();
        assert_eq!(frames, baseline.0, "frames free after {after}");
        // The metrics table may grow by a status code or two; anything more is a leak.
        assert!(heap <= baseline.1 + 4096, "heap used {heap} after {after}, baseline {}", baseline.1);
    }
}

/// The value of the unlabelled series `name` in a `/metrics` text.
fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
}
