//! `cargo xtask profile SCENARIO`: where the kernel's instructions go.
//!
//! Boots the x86_64 kernel under `-icount shift=0` with its sampling profiler on
//! (`profile=N` on the command line: a sample every N guest instructions, see
//! `kernel/src/profile.rs`), drives the scenario, drains `GET /v1/profile`, symbolizes the
//! samples against the kernel ELF (`pappus_tests::profile`: DWARF, inlined frames named) and
//! writes `target/bench/profile-<scenario>.folded` and `.svg` (a flame graph drawn by
//! `inferno`), then prints the top functions by self samples.
//!
//! Scenarios: `echo64` (64-byte `POST /v1/echo` on one keep-alive connection, as
//! `bench net`), `matmul3-native` and `matmul3-wasm` (a 3×3 f64 matmul registered on the `mpk`
//! or `wasm` engine, invoked with JSON sets, single-core mode), `boot` (kernel entry to ready:
//! the samples from the heap's start to `PAPPUS READY`; the calibration before is not sampled).
//! The samples of warm-up requests are dropped (`DELETE /v1/profile`); the I/O loop drops
//! those of passes that found no work, so echo64's profile is what
//! `net.echo64.instructions_per_request` counts.
//!
//! `--wall` boots without icount (TCG, one CPU) with `profile=wall:N`: a sample every
//! `--interval` TSC ticks, which then follow the host's clock, the I/O loop's idle turns kept: a profile of where the guest's *time* goes, device exits, QEMU's
//! software-TLB refills and waits for the big lock included, which instruction counts do not
//! show (README, "Wall-clock figures"). Its output is `profile-<scenario>-wall.folded` and `.svg`.
//!
//! `--allocations` boots with `profile=alloc` instead: every heap allocation (and reallocation)
//! is a sample of its stack, no timer samples are taken, and the output is
//! `profile-<scenario>-alloc.folded` and `.svg`, with the allocations per request printed: where
//! a request's allocations are (`pappus_heap_allocations_total` counts them, `bench e2e` prints
//! them per request).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pappus_qemu::{Arch, DEFAULT_X86_64};
use pappus_tests::profile::{self as prof, Dump, Elf, Folded};
use pappus_tests::protocol::READY_PREFIX;
use pappus_tests::{Boot, Marker, Qemu};

use crate::args::{Args, Spec};
use crate::keepalive::Client;
use crate::util::{Failure, Result, relative, say};
use crate::{prereq, util};

pub const SPEC: Spec =
    Spec { values: &["interval", "requests"], switches: &["no-build", "allocations", "wall"], max_positionals: 1 };

pub const SCENARIOS: &[&str] = &["echo64", "matmul3-native", "matmul3-wasm", "boot"];

const TOKEN: &str = "profile-token-0123456789abcdef";
const OPERATOR: &str = "profile-operator-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(300);
/// Frames that mark the profiler's own work (its dump), left out of the profile.
const EXCLUDE: &[&str] = &["pappus_kernel::profile::drain"];

pub fn main(args: &Args) -> Result {
    let scenario = args
        .positionals
        .first()
        .map(String::as_str)
        .ok_or_else(|| Failure(format!("which scenario? one of {}", SCENARIOS.join(", "))))?;
    if !SCENARIOS.contains(&scenario) {
        return Err(Failure(format!("unknown scenario {scenario:?}; scenarios: {}", SCENARIOS.join(", "))));
    }
    // A prime, so the samples do not beat with a loop of the same period.
    let wall = args.switch("wall");
    // In wall mode about 20 µs of a 2.6 GHz TSC: a sample costs the guest an interrupt.
    let default_interval = match (wall, scenario) {
        (true, _) => 52_009,
        (false, "boot") => 1009,
        (false, _) => 10_007,
    };
    let interval: u64 = args.parsed("interval")?.unwrap_or(default_interval);
    if !(1_000..=10_000_000_000).contains(&interval) {
        return Err(Failure(format!("--interval must be 1000..=10000000000 instructions, not {interval}")));
    }
    let requests: u64 = args.parsed("requests")?.unwrap_or(if scenario == "echo64" { 2000 } else { 300 });
    if requests == 0 {
        return Err(Failure("--requests must be at least 1".into()));
    }
    prereq::rust()?;
    prereq::qemu(&[Arch::X86_64])?;
    let kernel = if args.switch("no-build") {
        pappus_tests::kernel_image(Arch::X86_64).map_err(Failure)?
    } else {
        util::build_kernels(&[Arch::X86_64])?.remove(0).1
    };

    let allocations = args.switch("allocations");
    if allocations && scenario == "boot" {
        return Err(Failure("--allocations profiles requests: not the boot scenario".into()));
    }
    if allocations && wall {
        return Err(Failure("--allocations and --wall are two kinds of profile: pick one".into()));
    }
    let mode = match (allocations, wall) {
        (true, _) => "alloc".to_string(),
        (false, true) => format!("wall:{interval}"),
        (false, false) => interval.to_string(),
    };
    let mut node = Node::boot(&kernel, scenario, &mode, wall)?;
    match scenario {
        "echo64" => {
            let body = vec![b'x'; 64];
            node.warm_then_reset(|c| c.expect("POST", "/v1/echo", &[], &body, 200))?;
            for _ in 0..requests {
                node.client.expect("POST", "/v1/echo", &[], &body, 200)?;
            }
        }
        "matmul3-native" | "matmul3-wasm" => {
            let (engine, image) = if scenario == "matmul3-native" {
                ("mpk", pappus_tests::functions::native("matmul"))
            } else {
                ("wasm", pappus_tests::functions::wasm("matmul"))
            };
            let auth = format!("Bearer {TOKEN}");
            // Registered as the example deployments register it (64 MiB of memory).
            let query = pappus_tests::functions::EXAMPLES.iter().find(|(n, _)| *n == "matmul").map(|(_, q)| *q);
            let query = query.ok_or_else(|| Failure("no matmul among the example functions".into()))?;
            let path = format!("/v1/functions/matmul?engine={engine}&{query}");
            node.client.expect("PUT", &path, &[("Authorization", &auth)], &image, 201)?;
            let body = matmul3_json()?;
            let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
            node.warm_then_reset(|c| c.expect("POST", "/v1/invoke/matmul", &headers, &body, 200))?;
            for _ in 0..requests {
                node.client.expect("POST", "/v1/invoke/matmul", &headers, &body, 200)?;
            }
        }
        _ => {} // boot: the samples up to ready are in the rings already
    }
    let dump = node.drain()?;
    drop(node);
    let kind = match (allocations, wall) {
        (true, _) => Kind::Allocations { requests },
        (false, true) => Kind::Wall,
        (false, false) => Kind::Instructions,
    };
    report(&kernel, scenario, &dump, kind)
}

/// What a sample stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Every `interval` guest instructions (under icount).
    Instructions,
    /// Every `interval` TSC ticks of the host's clock (no icount).
    Wall,
    /// One heap allocation, over `requests` requests.
    Allocations { requests: u64 },
}

impl Kind {
    /// The file name's suffix after the scenario.
    fn suffix(self) -> &'static str {
        match self {
            Kind::Instructions => "",
            Kind::Wall => "-wall",
            Kind::Allocations { .. } => "-alloc",
        }
    }

    /// What one sample is, for the flame graph's subtitle and the summary.
    fn unit(self, interval: u64) -> String {
        match self {
            Kind::Instructions => format!("one sample per {interval} guest instructions (-icount shift=0)"),
            Kind::Wall => format!("one sample per {interval} TSC ticks of wall-clock time (no icount)"),
            Kind::Allocations { .. } => "one sample per heap allocation (profile=alloc)".to_string(),
        }
    }
}

/// A booted node with the profiler on and one keep-alive connection.
struct Node {
    _qemu: Qemu,
    client: Client,
}

impl Node {
    /// `mode`: what `profile=` says (an interval, or `alloc`); `wall`: without icount.
    fn boot(kernel: &Path, scenario: &str, mode: &str, wall: bool) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = pappus_tests::target_dir().join("bench");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("profile.conf");
        std::fs::write(&config, format!("tenant profile {TOKEN}\noperator {OPERATOR}\n"))?;
        let clock = if wall { "without icount" } else { "under -icount shift=0" };
        say(format!("booting with profile={mode} {clock} ({scenario})"));
        let mut qemu = Boot::profile(DEFAULT_X86_64)
            .kernel(kernel)
            .icount(!wall)
            .smp(1)
            .host_port(port)
            .config(config)
            .cmdline(&format!("profile={mode}"))
            .log_name(&format!("profile-{scenario}"))
            .time_limit(Duration::from_secs(1800))
            .spawn()?;
        qemu.wait_for(Marker::starts_with(READY_PREFIX), TIMEOUT)?;
        Ok(Self { _qemu: qemu, client: Client::connect(port, TIMEOUT)? })
    }

    /// A few requests to warm caches and first-use allocations, then the samples so far dropped.
    fn warm_then_reset(&mut self, mut request: impl FnMut(&mut Client) -> Result) -> Result {
        for _ in 0..5 {
            request(&mut self.client)?;
        }
        let op = format!("Bearer {OPERATOR}");
        self.client.expect("DELETE", "/v1/profile", &[("Authorization", &op)], b"", 204)
    }

    /// Every sample the kernel holds, over as many replies as it takes.
    fn drain(&mut self) -> Result<Dump> {
        let op = format!("Bearer {OPERATOR}");
        let mut all = Dump::default();
        for _ in 0..10_000 {
            let r = self.client.request("GET", "/v1/profile", &[("Authorization", &op)], b"")?;
            if r.status != 200 {
                return Err(Failure(format!("GET /v1/profile: {} {}", r.status, r.text())));
            }
            let part = prof::parse(&r.text()).map_err(Failure)?;
            all.interval = part.interval;
            all.cpus = part.cpus;
            all.samples.extend(part.samples);
            if !part.more {
                return Ok(all);
            }
        }
        Err(Failure("the profile did not end after 10,000 replies".into()))
    }
}

/// Two 3×3 matrices in matmul's encoding, as JSON sets.
fn matmul3_json() -> Result<Vec<u8>> {
    let matrix = |seed: usize| {
        let mut out = Vec::new();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        for i in 0..9 {
            out.extend_from_slice(&(((i * 37 + seed) % 101) as f64 / 7.0 - 5.0).to_le_bytes());
        }
        model::Bytes::from(out)
    };
    let sets = [model::Set {
        name: "matrices".into(),
        items: vec![
            model::Item { name: "a".into(), key: None, data: matrix(1) },
            model::Item { name: "b".into(), key: None, data: matrix(2) },
        ],
    }];
    Ok(model::wire::json::encode(&sets).map_err(|e| Failure(format!("encoding the matrices: {e}")))?.into_bytes())
}

/// Symbolizes, writes the folded stacks and the flame graph, prints the top functions. With
/// `allocations` (the requests driven), the samples are allocations.
fn report(kernel: &Path, scenario: &str, dump: &Dump, kind: Kind) -> Result {
    let name = format!("{scenario}{}", kind.suffix());
    let scenario = name.as_str();
    let mut elf = Elf::open(kernel).map_err(Failure)?;
    let folded = prof::fold(&dump.samples, &mut elf, EXCLUDE);
    let dir = pappus_tests::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let folded_path = dir.join(format!("profile-{scenario}.folded"));
    let lines = folded.lines();
    std::fs::write(&folded_path, lines.join("\n") + "\n")?;
    let svg_path = dir.join(format!("profile-{scenario}.svg"));
    flame_graph(&lines, scenario, &kind.unit(dump.interval), kind, &svg_path)?;

    for c in &dump.cpus {
        let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say(format!("cpu {}: {}", c.cpu, counts.join(" ")));
    }
    let total = folded.total();
    match kind {
        Kind::Allocations { requests } => say(format!(
            "{total} allocations, {:.2} per request ({requests} requests); {} of the profiler's own dump left out",
            total as f64 / requests as f64,
            folded.excluded
        )),
        Kind::Instructions => say(format!(
            "{total} samples, one per {} guest instructions (about {} instructions in all); {} of the profiler's own dump left out",
            dump.interval,
            total * dump.interval,
            folded.excluded
        )),
        Kind::Wall => say(format!(
            "{total} samples, one per {} TSC ticks (about {} ticks of busy guest time); {} of the profiler's own dump left out",
            dump.interval,
            total * dump.interval,
            folded.excluded
        )),
    }
    say(format!("folded stacks: {}", relative(&folded_path)));
    say(format!("flame graph:   {}", relative(&svg_path)));
    if total == 0 {
        return Err(Failure("no samples: is the interval longer than the scenario?".into()));
    }
    print_top(&folded, total);
    Ok(())
}

fn print_top(folded: &Folded, total: u64) {
    let table = |title: &str, rows: Vec<(String, u64)>| {
        println!("{title} (of {total} samples):");
        println!("{:>8} {:>6}  function", "samples", "%");
        for (name, n) in rows {
            println!("{n:>8} {:>5.1}%  {name}", 100.0 * n as f64 / total as f64);
        }
    };
    table("top 20 functions by self samples, inlined code in its caller", folded.top_self(20));
    table("top 20 innermost frames (inlined functions apart)", folded.top_self_inlined(20));
    table("top 20 functions by total samples (on the stack)", folded.top_total(20));
}

fn flame_graph(lines: &[String], scenario: &str, unit: &str, kind: Kind, path: &PathBuf) -> Result {
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("pappus: {scenario}");
    options.subtitle = Some(unit.to_string());
    options.count_name = if matches!(kind, Kind::Allocations { .. }) { "allocations" } else { "samples" }.into();
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), file)
        .map_err(|e| Failure(format!("drawing the flame graph: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_sets_are_json_with_two_3x3_matrices() {
        let body = matmul3_json().unwrap();
        let sets = model::wire::json::decode(&body, &model::wire::WireLimits::default()).unwrap();
        assert_eq!(sets[0].name, "matrices");
        assert_eq!(sets[0].items.len(), 2);
        assert_eq!(sets[0].items[0].data.len(), 8 + 9 * 8);
    }

    #[test]
    fn flame_graph_is_an_svg_with_the_frames() {
        let dir = pappus_tests::target_dir().join("xtask-unit");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile-test.svg");
        let lines = ["main;serve;poll 3".to_string(), "main;serve;parse 1".to_string()];
        let kind = Kind::Wall;
        flame_graph(&lines, "unit", &kind.unit(52_009), kind, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg") && svg.contains("poll") && svg.contains("parse"), "{svg}");
        assert!(svg.contains("52009 TSC ticks of wall-clock time"), "the subtitle says what a sample is");
    }

    #[test]
    fn each_kind_of_profile_has_its_own_files() {
        let kinds = [Kind::Instructions, Kind::Wall, Kind::Allocations { requests: 1 }];
        let suffixes: Vec<&str> = kinds.iter().map(|k| k.suffix()).collect();
        assert_eq!(suffixes, ["", "-wall", "-alloc"]);
        assert!(Kind::Instructions.unit(10_007).contains("10007 guest instructions"));
    }
}
