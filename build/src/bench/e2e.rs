//! Suite `e2e`: the real work, end to end. A 3×3 f64 matmul registered twice, as a native
//! function (the `mpk` engine) and as wasm, invoked over HTTP in the three wire formats: JSON
//! sets (`json`), the binary set format (`binary`, docs/wire-formats.md) and a raw body in and
//! out (`raw`: one unnamed item holding `a` then `b`, which matmul accepts).
//!
//! - **Instructions per request**, whole request (HTTP in, invocation, sandbox, HTTP out): a
//!   single-core boot under `-icount shift=0`, `pappus_io_work_ticks_total` read before and after
//!   N requests on one keep-alive connection, as suite `net` does (`bench/io.rs`): under icount
//!   the TSC counts guest instructions, and in single-core mode the I/O core runs the instance,
//!   so the I/O loop's working passes hold the whole request.
//! - **What costs wall-clock time but not instructions**, per request, over the JSON requests of
//!   the same boot: CR3 writes, single-page TLB invalidations (INVLPG), PKRU writes, page faults
//!   in ring 3 and in ring 0, timer writes and wake-up IPIs (the kernel's per-CPU `/metrics`
//!   counters, summed over CPUs). Under TCG each of the first three flushes QEMU's software TLB;
//!   each of the last two is a device exit that takes QEMU's big lock. The timer writes and
//!   IPIs are printed for the `-smp 2` boot's one-client runs too (`smp2.*`): what handing a
//!   run to the compute core and back costs in them. Beside them the heap allocations
//!   served per request (`pappus_heap_allocations_total`; the two `/metrics` reads around the
//!   requests add about one per request).
//! - **A handoff of 96 KiB** between two native functions of a composition, in the same boot:
//!   instructions per request for the whole composition, and the input pages mapped into the
//!   second function instead of copied (`e2e.handoff96k.native.*`).
//! - **Requests per second**, from a second boot with `-smp 2` under MTTCG (no icount: it would
//!   serialize the CPUs), native and wasm in the same boot, binary sets: one keep-alive client,
//!   then four at once, for [`WALL_SECONDS`] each; and native over wasm. Beside them the same
//!   boot's 64-byte echo (`e2e.echo64.requests_per_s`): the floor of HTTP and QEMU's user-mode
//!   network that every invocation pays too, which bounds what the ratio can show with one client.
//!   Last, the same echo sent 5 ms after the previous answer (`e2e.echo64.after_idle_5ms.*`):
//!   the I/O loop has stopped spinning and sleeps, and the NIC's receive interrupt wakes it
//!   (the median round trip, and device interrupts per request).
//!
//! Every answer is checked against the product computed on the host.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use model::wire::{WireLimits, binary, json};
use model::{Bytes, Item, Set};

use super::io::{Client, Node, auth, print};
use crate::util::{Failure, Result, say};

/// Requests per instruction figure (after the warm-up `instructions_per` does).
const REQUESTS: u64 = 40;
/// Seconds of requests per wall-clock figure.
const WALL_SECONDS: f64 = 4.0;
const CLIENTS: [usize; 2] = [1, 4];
const ENGINES: [(&str, &str); 2] = [("native", "mpk"), ("wasm", "wasm")];
const QUERY: &str = "inputs=matrices&outputs=product&memory=16MiB&timeout_ms=10000";
const SETS: &str = "application/x-pappus-sets";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Binary,
    Raw,
}

impl Format {
    const ALL: [Format; 3] = [Format::Json, Format::Binary, Format::Raw];

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Binary => "binary",
            Format::Raw => "raw",
        }
    }
}

/// The request bodies and the product every answer must carry.
#[derive(Clone)]
struct Case {
    a: Vec<u8>,
    b: Vec<u8>,
    product: Vec<u8>,
}

impl Case {
    fn new() -> Self {
        let a: Vec<f64> = (0..9).map(|i| (i * 37 % 101) as f64 / 7.0 - 5.0).collect();
        let b: Vec<f64> = (0..9).map(|i| (i * 53 % 97) as f64 / 3.0 + 0.1).collect();
        // matmul's own order: each row of c accumulated over k ascending, plain multiply and add.
        let mut c = [0.0f64; 9];
        for i in 0..3 {
            for k in 0..3 {
                for j in 0..3 {
                    c[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
                }
            }
        }
        let m = pappus_tests::sets::matrix;
        Self { a: m(3, 3, &a), b: m(3, 3, &b), product: m(3, 3, &c) }
    }

    fn sets(&self) -> Vec<Set> {
        let item = |name: &str, data: &[u8]| Item { name: name.into(), key: None, data: Bytes::from(data.to_vec()) };
        vec![Set { name: "matrices".into(), items: vec![item("a", &self.a), item("b", &self.b)] }]
    }

    fn body(&self, format: Format) -> Result<Vec<u8>> {
        let encoded = match format {
            Format::Json => json::encode(&self.sets()).map(String::into_bytes),
            Format::Binary => binary::encode(&self.sets()),
            Format::Raw => return Ok([self.a.as_slice(), &self.b].concat()),
        };
        encoded.map_err(|e| Failure(format!("encoding the matrices: {e}")))
    }
}

/// One invocation of `matmul_<engine>` in `format`, its answer checked.
fn invoke(client: &mut Client, engine: &str, format: Format, body: &[u8], case: &Case) -> Result {
    let auth = auth();
    let (kind, accept) = match format {
        Format::Json => ("application/json", "application/json"),
        Format::Binary => (SETS, SETS),
        Format::Raw => ("application/octet-stream", "application/octet-stream"),
    };
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", accept)];
    let path = format!("/v1/invoke/matmul_{engine}");
    let r = client.request("POST", &path, &headers, body)?;
    if r.status != 200 {
        return Err(Failure(format!("POST {path} ({}): {} {}", format.name(), r.status, r.text())));
    }
    let product = match format {
        Format::Raw => r.body,
        Format::Json => only_item(json::decode(&r.body, &WireLimits::default())),
        Format::Binary => only_item(binary::decode(&Bytes::from(r.body), &WireLimits::default())),
    };
    if product != case.product {
        return Err(Failure(format!("POST {path} ({}): the product differs from the host's", format.name())));
    }
    Ok(())
}

/// The data of the one item `c` of the one set `product` (empty when the answer is otherwise).
fn only_item<E>(sets: std::result::Result<Vec<Set>, E>) -> Vec<u8> {
    match sets.as_deref() {
        Ok([set]) if set.name == "product" && set.items.len() == 1 && set.items[0].name == "c" => {
            set.items[0].data.to_vec()
        }
        _ => Vec::new(),
    }
}

fn register(node: &mut Node, native: &[u8], wasm: &[u8]) -> Result {
    let auth = auth();
    for ((name, engine), image) in ENGINES.iter().zip([native, wasm]) {
        let path = format!("/v1/functions/matmul_{name}?engine={engine}&{QUERY}");
        node.expect("PUT", &path, &[("Authorization", auth.as_str())], image, 201)?;
    }
    Ok(())
}

/// The per-CPU event counters, summed over CPUs (and for faults, by ring).
const EVENTS: [(&str, &str, &str); 9] = [
    ("io_work_passes", "pappus_io_work_passes_total", ""),
    ("cr3_writes", "pappus_cr3_writes_total", ""),
    ("tlb_invalidations", "pappus_tlb_invalidations_total", ""),
    ("pkru_writes", "pappus_pkru_writes_total", ""),
    ("user_page_faults", "pappus_page_faults_total", "ring=\"user\""),
    ("kernel_page_faults", "pappus_page_faults_total", "ring=\"kernel\""),
    ("heap_allocations", "pappus_heap_allocations_total", ""),
    ("timer_writes", "pappus_timer_writes_total", ""),
    ("wake_ipis", "pappus_wake_ipis_total", ""),
];
/// The events the `-smp 2` boot prints per request too (a hand-off's device exits).
const HANDOFF_EVENTS: [&str; 2] = ["timer_writes", "wake_ipis"];

/// The sum of family `name`'s samples whose labels contain `filter`, in a `/metrics` text.
pub fn sum_samples(text: &str, name: &str, filter: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some(pair) => pair,
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue, // a longer name
            },
        };
        if labels.contains(filter) {
            let value: u64 = value.trim().parse().ok()?;
            found = Some(found.unwrap_or(0) + value);
        }
    }
    found
}

fn events(node: &mut Node) -> Result<[u64; EVENTS.len()]> {
    let text = node.metrics_text()?;
    let mut out = [0; EVENTS.len()];
    for (slot, (_, family, filter)) in out.iter_mut().zip(EVENTS) {
        *slot = sum_samples(&text, family, filter).ok_or_else(|| Failure(format!("no {family} in /metrics")))?;
    }
    Ok(out)
}

pub fn e2e(kernel: &Path) -> Result {
    let native = pappus_tests::functions::native("matmul");
    let wasm = pappus_tests::functions::wasm("matmul");
    let case = Case::new();
    let bodies: Vec<(Format, Vec<u8>)> = Format::ALL.iter().map(|&f| Ok((f, case.body(f)?))).collect::<Result<_>>()?;

    let mut node = Node::boot(kernel, true, "e2e-icount")?;
    register(&mut node, &native, &wasm)?;
    for (engine, _) in ENGINES {
        for (format, body) in &bodies {
            let per = node.instructions_per(REQUESTS, |n| invoke(n, engine, *format, body, &case))?;
            print(&format!("e2e.matmul3.{engine}.{}.instructions_per_request", format.name()), per, "instructions");
        }
        let json = &bodies[0].1;
        // As `instructions_per` does: what the two `/metrics` reads add is measured by two reads
        // with nothing between them, and taken out.
        let first = events(&mut node)?;
        let before = events(&mut node)?;
        for _ in 0..REQUESTS {
            invoke(&mut node, engine, Format::Json, json, &case)?;
        }
        let after = events(&mut node)?;
        for (((what, _, _), (a, b)), f) in EVENTS.iter().zip(after.iter().zip(before)).zip(first) {
            let per = (a - b).saturating_sub(b - f) as f64 / REQUESTS as f64;
            print(&format!("e2e.matmul3.{engine}.{what}_per_request"), format!("{per:.2}"), "events");
        }
    }
    handoff(&mut node)?;
    drop(node);

    let mut node = Node::boot_smp(kernel, 2, "e2e-smp2")?;
    register(&mut node, &native, &wasm)?;
    let binary = &bodies[1].1;
    for clients in CLIENTS {
        // The floor under every invocation: HTTP and the network, no function (a 64-byte echo).
        let echo: Arc<dyn Fn(&mut Client) -> Result + Send + Sync> =
            Arc::new(|conn: &mut Client| conn.expect("POST", "/v1/echo", &[], &[b'e'; 64], 200).map(drop));
        let (floor, _) = rate(&node, clients, echo)?;
        print(&format!("e2e.echo64.requests_per_s.{clients}_clients"), format!("{floor:.1}"), "req/s");
        let mut rates = Vec::new();
        for (engine, _) in ENGINES {
            let (body, case) = (binary.clone(), case.clone());
            let send = Arc::new(move |conn: &mut Client| invoke(conn, engine, Format::Binary, &body, &case));
            // With one client, what the hand-off to the compute core costs in device exits
            // (the warm-up's requests and one /metrics read are in the window: a few hundredths).
            let before = if clients == 1 { Some(events(&mut node)?) } else { None };
            let (rate, requests) = rate(&node, clients, send)?;
            print(&format!("e2e.matmul3.{engine}.requests_per_s.{clients}_clients"), format!("{rate:.1}"), "req/s");
            if let Some(before) = before {
                let after = events(&mut node)?;
                for (((what, _, _), a), b) in EVENTS.iter().zip(after).zip(before) {
                    if HANDOFF_EVENTS.contains(what) {
                        let per = (a - b) as f64 / requests as f64;
                        print(&format!("e2e.matmul3.{engine}.smp2.{what}_per_request"), format!("{per:.2}"), "events");
                    }
                }
            }
            rates.push(rate);
        }
        print(&format!("e2e.matmul3.native_over_wasm.{clients}_clients"), format!("{:.2}", rates[0] / rates[1]), "x");
    }
    after_idle(&mut node)?;
    let runs = node.core_runs()?;
    say(format!("-smp 2: instances per core {runs:?}"));
    Ok(())
}

/// Requests [`IDLE_GAP`] apart on one keep-alive connection.
const IDLE_REQUESTS: usize = 40;
/// Longer than the I/O loop's 2 ms spin after its last work (`kernel/src/serve.rs`): each
/// request finds the loop asleep.
const IDLE_GAP: Duration = Duration::from_millis(5);

/// A 64-byte echo that finds the node asleep: the median wall-clock round trip, and the device
/// interrupts (the NIC's receive queue) per request, which say what ended the sleep. Without
/// them a request waits for the sleep's end.
fn after_idle(node: &mut Node) -> Result {
    let mut conn = node.connect()?;
    let echo = |conn: &mut Client| conn.expect("POST", "/v1/echo", &[], &[b'e'; 64], 200);
    for _ in 0..5 {
        echo(&mut conn)?;
    }
    let interrupts = |node: &mut Node| -> Result<u64> {
        sum_samples(&node.metrics_text()?, "pappus_device_interrupts_total", "")
            .ok_or_else(|| Failure("no pappus_device_interrupts_total in /metrics".into()))
    };
    let before = interrupts(node)?;
    let mut round_trips = Vec::with_capacity(IDLE_REQUESTS);
    for _ in 0..IDLE_REQUESTS {
        thread::sleep(IDLE_GAP);
        let start = Instant::now();
        echo(&mut conn)?;
        round_trips.push(start.elapsed());
    }
    let per = (interrupts(node)? - before) as f64 / IDLE_REQUESTS as f64;
    round_trips.sort();
    let median = round_trips[IDLE_REQUESTS / 2].as_secs_f64() * 1e6;
    print("e2e.echo64.after_idle_5ms.round_trip_us", format!("{median:.0}"), "µs");
    print("e2e.echo64.after_idle_5ms.device_interrupts_per_request", format!("{per:.2}"), "events");
    Ok(())
}

/// A native function's 96 KiB output handed to the next native function (a composition of two
/// functions of `tests/native-hostile`: `big_output`, then `mapped_input`, which checks what it
/// was given): instructions per request for the whole composition, and the input pages mapped
/// into the second function rather than copied (docs/function-abi.md, mapped input items).
fn handoff(node: &mut Node) -> Result {
    let auth = auth();
    let query = "engine=mpk&inputs=in&outputs=out&memory=4MiB&timeout_ms=10000";
    for (name, case) in [("big", "big_output"), ("reader", "mapped_input")] {
        let image = pappus_tests::functions::hostile_native(case);
        node.expect("PUT", &format!("/v1/functions/{name}?{query}"), &[("Authorization", auth.as_str())], &image, 201)?;
    }
    let source = "function big (in) => (out);\nfunction reader (in) => (out);\n\
        composition handoff (in) => (out) { big (in = all in) => (b = out); reader (in = all b) => (out = out); }\n";
    node.expect("PUT", "/v1/compositions/handoff", &[("Authorization", auth.as_str())], source.as_bytes(), 201)?;
    let len = 96u64 << 10;
    let sum = (0..len).fold(0u64, |s, i| s.wrapping_mul(31).wrapping_add(i % 251));
    let send = |client: &mut Client| -> Result {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/octet-stream"),
            ("Accept", "application/octet-stream"),
        ];
        let r = client.request("POST", "/v1/invoke/handoff", &headers, b"go")?;
        let words: Vec<u64> = r.body.chunks(8).filter_map(|w| w.try_into().ok().map(u64::from_le_bytes)).collect();
        match words[..] {
            [_, s, 1, l] if r.status == 200 && (s, l) == (sum, len) => Ok(()),
            _ => Err(Failure(format!("POST /v1/invoke/handoff: {} {:?}", r.status, words))),
        }
    };
    let pages = |node: &mut Node| -> Result<u64> {
        sum_samples(&node.metrics_text()?, "pappus_native_input_pages_mapped_total", "")
            .ok_or_else(|| Failure("no pappus_native_input_pages_mapped_total in /metrics".into()))
    };
    let per = node.instructions_per(REQUESTS, |n| send(n))?;
    print("e2e.handoff96k.native.instructions_per_request", per, "instructions");
    let before = pages(node)?;
    for _ in 0..REQUESTS {
        send(node)?;
    }
    let mapped = (pages(node)? - before) as f64 / REQUESTS as f64;
    print("e2e.handoff96k.native.mapped_input_pages_per_request", format!("{mapped:.2}"), "pages");
    Ok(())
}

/// Requests per second from `clients` keep-alive connections at once, each sending for
/// [`WALL_SECONDS`] after a short warm-up, and the requests sent (the warm-up's included).
fn rate(node: &Node, clients: usize, send: Arc<dyn Fn(&mut Client) -> Result + Send + Sync>) -> Result<(f64, u64)> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        // One after another: QEMU's hostfwd has a backlog of one.
        let mut conn = node.connect()?;
        for _ in 0..5 {
            send(&mut conn)?;
        }
        conns.push(conn);
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(WALL_SECONDS);
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let send = Arc::clone(&send);
            thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < until {
                    send(&mut conn)?;
                    done += 1;
                }
                Ok::<u64, Failure>(done)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().map_err(|_| Failure("a bench client panicked".into()))??;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    Ok((rate, total + 5 * clients as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_by_family_and_label() {
        let text = "# HELP pappus_page_faults_total x\n\
                    pappus_page_faults_total{cpu=\"0\",ring=\"user\"} 7\n\
                    pappus_page_faults_total{cpu=\"0\",ring=\"kernel\"} 1\n\
                    pappus_page_faults_total{cpu=\"1\",ring=\"user\"} 5\n\
                    pappus_page_faults_total_extra 100\n\
                    pappus_cr3_writes_total 4\n";
        assert_eq!(sum_samples(text, "pappus_page_faults_total", "ring=\"user\""), Some(12));
        assert_eq!(sum_samples(text, "pappus_page_faults_total", ""), Some(13));
        assert_eq!(sum_samples(text, "pappus_cr3_writes_total", ""), Some(4));
        assert_eq!(sum_samples(text, "pappus_pkru_writes_total", ""), None);
    }

    #[test]
    fn bodies_carry_the_matrices() {
        let case = Case::new();
        assert_eq!(case.a.len(), 8 + 9 * 8);
        let raw = case.body(Format::Raw).unwrap();
        assert_eq!(raw, [case.a.clone(), case.b.clone()].concat());
        let sets = binary::decode(&Bytes::from(case.body(Format::Binary).unwrap()), &WireLimits::default()).unwrap();
        assert_eq!(sets, case.sets());
        let sets = json::decode(&case.body(Format::Json).unwrap(), &WireLimits::default()).unwrap();
        assert_eq!(sets, case.sets());
        // The expected product: element (1, 2) is row 1 of a times column 2 of b.
        let f = |m: &[u8], i: usize| f64::from_le_bytes(m[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        let c12: f64 = (0..3).map(|k| f(&case.a, 3 + k) * f(&case.b, k * 3 + 2)).sum();
        assert_eq!(&case.product[..8], &[3, 0, 0, 0, 3, 0, 0, 0]);
        assert!((f(&case.product, 5) - c12).abs() < 1e-9);
        // An answer is read only in its one expected shape.
        let answer = |set: &str, item: &str| {
            let data = Bytes::from(case.product.clone());
            Ok::<_, ()>(vec![Set { name: set.into(), items: vec![Item { name: item.into(), key: None, data }] }])
        };
        assert_eq!(only_item(answer("product", "c")), case.product);
        assert!(only_item(answer("product", "d")).is_empty());
        assert!(only_item(answer("other", "c")).is_empty());
        assert!(only_item::<()>(Ok(vec![])).is_empty());
    }
}
