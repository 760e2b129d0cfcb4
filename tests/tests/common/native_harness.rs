//! What the native suites (tests/tests/native.rs) and the `cheri` suite (tests/tests/cheri.rs)
//! share: the tenant, requests, and the hostile harness (a neighbour, the hostile case twice,
//! the node's memory after).

use pappus_tests::Arch;
use pappus_tests::functions;
use pappus_tests::node::{self, Node, Response, Tenant, boot_arch, boot_cpu};
use pappus_tests::sets::{Answer, decode, item};
use serde_json::{Value, json};

pub const TENANT: Tenant = Tenant { name: "nat", token: "native-token-0123456789abcd" };

pub fn send(node: &Node, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let auth = format!("Bearer {}", TENANT.token);
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    node.request(method, path, &all, body)
}

pub fn register(node: &Node, name: &str, engine: &str, query: &str, image: &[u8]) {
    let r = send(node, "PUT", &format!("/v1/functions/{name}?engine={engine}&{query}"), &[], image);
    assert!(r.status == 201 || r.status == 200, "{name} ({engine}): {} {}", r.status, r.text());
}

pub fn invoke_raw(node: &Node, name: &str, sets: &Value) -> Response {
    let body = serde_json::to_vec(&json!({ "sets": sets })).unwrap();
    send(node, "POST", &format!("/v1/invoke/{name}"), &[("Content-Type", "application/json")], &body)
}

pub fn invoke(node: &Node, name: &str, sets: &Value) -> Answer {
    let r = invoke_raw(node, name, sets);
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    decode(&r.body)
}

/// Kernel addresses the hostile cases use on `arch` (tests/native-hostile/hostile.rs), none of
/// which may reach a message: x86_64's upper half, aarch64's identity-mapped RAM.
pub fn leaks_kernel_address(arch: Arch, message: &str) -> bool {
    match arch {
        Arch::X86_64 => message.to_lowercase().contains("0xffff"),
        Arch::Aarch64 => ["0x40100000", "0x40100001", "0x40200000"].iter().any(|a| message.contains(a)),
    }
}

/// Boots a node, registers a well-behaved neighbour and the hostile `case` for `engine`, and
/// checks the hostile run ends with `status` and `code` (and `cause` in the message), twice,
/// while the neighbour keeps its answers and the node its memory. `cpu` is the x86_64 CPU
/// model; on aarch64 `morello` boots the `aarch64-morello` profile, anything else `-cpu max`.
#[allow(clippy::too_many_arguments)]
pub fn hostile_on(test: &str, arch: Arch, cpu: &str, engine: &str, case: &str, status: u16, code: &str, cause: &str) {
    let node = match arch {
        Arch::X86_64 => boot_cpu(test, cpu, &[TENANT]),
        // Arm Morello (the `cheri` engine's CPU) under CTSRD-CHERI's emulator.
        Arch::Aarch64 if cpu == "morello" => node::boot_profile(test, pappus_qemu::MORELLO_AARCH64, &[TENANT], None),
        Arch::Aarch64 => boot_arch(test, arch, &[TENANT]),
    };
    let Some(node) = node else { return };
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=5000";
    register(&node, "neighbour", engine, wc_q, &functions::native_for("wordcount", arch));
    let image = functions::hostile_native_for(case, arch);
    // 200 ms for the case that must time out (its message names the budget); the others get
    // room for a loaded machine (touching all 4 MiB takes ~1,000 page faults under emulation:
    // seen over 200 ms on Morello once, with other builds running).
    let timeout_ms = if case == "infinite_loop" { 200 } else { 5000 };
    let query = format!("inputs=in&outputs=out&memory=4MiB&timeout_ms={timeout_ms}");
    let neighbour = |node: &Node| {
        let out = invoke(node, "neighbour", &json!({"texts": [item("t", b"the cat and the hat")]}));
        let words: Vec<&str> = out["counts"].iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["and", "cat", "hat", "the"], "the neighbour's answer changed after {case}");
    };
    neighbour(&node);
    let r = send(&node, "PUT", &format!("/v1/functions/hostile?engine={engine}&{query}"), &[], &image);
    if status == 400 {
        // Refused at registration.
        assert_eq!(r.status, 400, "{case}: {}", r.text());
        assert!(r.text().contains(code) && r.text().contains(cause), "{case}: {}", r.text());
        neighbour(&node);
        return;
    }
    assert_eq!(r.status, 201, "{case}: {}", r.text());
    let check = |node: &Node| {
        let r = invoke_raw(node, "hostile", &json!({"in": [item("x", b"x")]}));
        assert_eq!(r.status, status, "{case}: {}", r.text());
        if status != 200 {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["error"]["code"], code, "{case}: {}", r.text());
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(cause), "{case}: {message:?} lacks {cause:?}");
            // No kernel address reaches the caller (faults at or on kernel addresses say so).
            assert!(!leaks_kernel_address(arch, message), "{case}: a kernel address in {message:?}");
        }
    };
    check(&node);
    let baseline = node.baseline();
    check(&node);
    neighbour(&node);
    node.assert_healthy(baseline, case);
}

/// A native function's large output (96 KiB, so kept in pages of its own) handed on to
/// another native function: its pages are mapped into the reader read-only, counted on
/// `/metrics`, instead of copied into its system data block. The reader sees every byte, at a
/// page-aligned address, and zeros after them to the page's end; a function that writes to
/// them faults, and the node serves on.
pub fn mapped_inputs(node: &Node, arch: Arch, engine: &str) {
    let query = "inputs=in&outputs=out&memory=4MiB";
    for (name, case) in [("big", "big_output"), ("reader", "mapped_input"), ("writer", "write_input")] {
        register(node, name, engine, query, &functions::hostile_native_for(case, arch));
    }
    let readers = functions::hostile_native_for("mapped_input", arch);
    register(node, "readers", engine, "inputs=in,k&outputs=out&memory=4MiB", &readers);
    let source = "function big (in) => (out);\nfunction reader (in) => (out);\nfunction writer (in) => (out);\n\
        function readers (in, k) => (out);\n\
        composition read_big (in) => (out) { big (in = all in) => (b = out); reader (in = all b) => (out = out); }\n\
        composition write_big (in) => (out) { big (in = all in) => (b = out); writer (in = all b) => (out = out); }\n\
        composition fan_big (in, k) => (out) { big (in = all in) => (b = out); readers (in = all b, k = each k) => (out = out); }\n";
    let r = send(node, "PUT", "/v1/compositions/read_big", &[], source.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let sets = json!({"in": [item("x", b"go")]});
    let len = 96u64 << 10;
    let sum = (0..len).fold(0u64, |s, i| s.wrapping_mul(31).wrapping_add(i % 251));
    for round in 0..2 {
        let before = node.metric("pappus_native_input_pages_mapped_total");
        let answer = invoke(node, "read_big", &sets);
        let out = &answer["out"];
        assert_eq!(out.len(), 1, "{out:?}");
        let words: Vec<u64> = out[0].1.chunks(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
        let [at, seen_sum, tail_zero, seen_len] = words[..] else { panic!("{words:?}") };
        assert_eq!((seen_len, seen_sum), (len, sum), "round {round}: the reader saw other bytes");
        assert_eq!(at % 4096, 0, "round {round}: not at a page's start ({at:#x}): copied, not mapped");
        assert_eq!(tail_zero, 1, "round {round}: the item's last page holds other bytes after it");
        let mapped = node.metric("pappus_native_input_pages_mapped_total") - before;
        assert_eq!(mapped, len / 4096, "round {round}: pages mapped");
    }
    // One item to six instances at once: the same pages mapped into each reader's memory.
    let before = node.metric("pappus_native_input_pages_mapped_total");
    let ks: Vec<Value> = (0..6).map(|i| item(&format!("k{i}"), b"k")).collect();
    let answer = invoke(node, "fan_big", &json!({"in": [item("x", b"go")], "k": ks}));
    let out = &answer["out"];
    assert_eq!(out.len(), 6, "{out:?}");
    for (_, data) in out {
        let words: Vec<u64> = data.chunks(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
        let [at, seen_sum, tail_zero, seen_len] = words[..] else { panic!("{words:?}") };
        assert_eq!((seen_len, seen_sum, at % 4096, tail_zero), (len, sum, 0, 1), "a reader of the fan-out");
    }
    assert_eq!(node.metric("pappus_native_input_pages_mapped_total") - before, 6 * len / 4096, "pages mapped");
    let r = invoke_raw(node, "write_big", &sets);
    assert_eq!(r.status, 500, "writing a mapped input: {}", r.text());
    assert!(r.text().contains("function_trap"), "{}", r.text());
    assert!(!leaks_kernel_address(arch, &r.text()), "{}", r.text());
    assert_eq!(invoke(node, "read_big", &sets)["out"].len(), 1, "the node serves on");
}
