//! The example functions and compositions (functions/) built for wasm32 and natively, registered
//! over HTTP and invoked with known answers: matrix multiply against a host computation, word
//! count against a host count of real text files, and the compositions over them. The same
//! checks run on x86_64 and aarch64 nodes (native images built for the node's architecture).

use std::collections::BTreeMap;

use pappus_tests::node::{Node, Response, Tenant, boot, boot_arch};
use pappus_tests::sets::{Answer, decode, host_counts, item, matmul_case, matrix};
use pappus_tests::{Arch, functions, workspace_root};
use serde_json::{Value, json};

const TENANT: Tenant = Tenant { name: "fn", token: "functions-token-0123456789ab" };

fn send(node: &Node, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let auth = format!("Bearer {}", TENANT.token);
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    node.request(method, path, &all, body)
}

/// Registers the example functions on `engine` (wasm modules, or native images for `arch`) and
/// the compositions over them.
fn deploy(node: &Node, arch: Arch, engine: &str) {
    functions::deploy_examples_for(node, arch, TENANT.token, engine);
}

fn invoke(node: &Node, name: &str, sets: Value) -> Answer {
    let body = serde_json::to_vec(&json!({ "sets": sets })).unwrap();
    let r = send(node, "POST", &format!("/v1/invoke/{name}"), &[("Content-Type", "application/json")], &body);
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    decode(&r.body)
}

fn as_counts(items: &[(String, Vec<u8>)]) -> BTreeMap<String, u64> {
    items.iter().map(|(w, n)| (w.clone(), String::from_utf8_lossy(n).parse().unwrap())).collect()
}

#[test]
fn example_functions_give_known_answers() {
    let Some(node) = boot("example_functions_give_known_answers", &[TENANT]) else { return };
    known_answers(&node, Arch::X86_64, "wasm");
}

/// The same functions built natively, on the engine `native` picks (`mpk` on `-cpu max`).
#[test]
fn native_example_functions_give_known_answers() {
    let Some(node) = boot("native_example_functions_give_known_answers", &[TENANT]) else { return };
    known_answers(&node, Arch::X86_64, "native");
}

#[test]
fn aarch64_example_functions_give_known_answers() {
    let Some(node) = boot_arch("aarch64_example_functions_give_known_answers", Arch::Aarch64, &[TENANT]) else {
        return;
    };
    known_answers(&node, Arch::Aarch64, "wasm");
}

/// Native aarch64 builds on an aarch64 node: the `paging` engine at EL0 (`native` picks it).
#[test]
fn aarch64_native_example_functions_give_known_answers() {
    let test = "aarch64_native_example_functions_give_known_answers";
    let Some(node) = boot_arch(test, Arch::Aarch64, &[TENANT]) else { return };
    let health = node.call("GET", "/healthz", b"").text();
    assert!(health.contains("\"arch\":\"aarch64\""), "{health}");
    known_answers(&node, Arch::Aarch64, "native");
    // They ran as EL0 sandboxes, not on the interpreter.
    let metrics = node.metrics().text();
    let runs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pappus_native_runs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pappus_native_runs_total in\n{metrics}"));
    assert!(runs >= 6, "only {runs} native runs");
    // `mpk` does not exist here: a clear refusal.
    let r = send(&node, "PUT", "/v1/functions/m?engine=mpk&inputs=a&outputs=b", &[], &functions::wasm("matmul"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("engine_unavailable"), "{}", r.text());
}

fn known_answers(node: &Node, arch: Arch, engine: &str) {
    deploy(node, arch, engine);

    // Matrix multiply: 24×40 · 40×16 of awkward values, against the same sum order on the host.
    let (input, product) = matmul_case();
    let out = invoke(node, "matmul", input);
    assert_eq!(out["product"], vec![("c".to_string(), product)], "matmul differs from the host");

    // Word count of real text files, directly and map-reduce over `each`.
    let files = ["README.md", "docs/ARCHITECTURE.md", "docs/api.md", "functions/README.md"];
    let texts: Vec<String> = files.iter().map(|f| std::fs::read_to_string(workspace_root().join(f)).unwrap()).collect();
    let expected = host_counts(&texts);
    let items: Vec<Value> = files.iter().zip(&texts).map(|(f, t)| item(f, t.as_bytes())).collect();
    let direct = invoke(node, "wordcount", json!({"texts": items.clone()}));
    assert_eq!(as_counts(&direct["counts"]), expected, "wordcount differs from the host count");
    let reduced = invoke(node, "wordcount_mapreduce", json!({"texts": items.clone()}));
    assert_eq!(as_counts(&reduced["counts"]), expected, "map-reduce word count differs");

    // Top 5 words: largest counts, ties by word.
    let mut ranked: Vec<(&String, &u64)> = expected.iter().collect();
    ranked.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
    let top = invoke(node, "top_words", json!({"texts": items.clone(), "k": [item("k", b"5")]}));
    let got: Vec<(String, u64)> =
        top["top"].iter().map(|(w, n)| (w.clone(), String::from_utf8_lossy(n).parse().unwrap())).collect();
    let want: Vec<(String, u64)> = ranked.iter().take(5).map(|(w, n)| ((*w).clone(), **n)).collect();
    assert_eq!(got, want);

    // grep then count: the words of the lines that mention "pappus".
    let lines: Vec<String> =
        texts.iter().flat_map(|t| t.lines()).filter(|l| l.contains("pappus")).map(str::to_string).collect();
    let out = invoke(node, "grep_count", json!({"pattern": [item("p", b"pappus")], "texts": items}));
    assert_eq!(as_counts(&out["counts"]), host_counts(&lines), "grep_count differs");

    // The same over a large text (some 200 KiB, 8,100 matching lines).
    let big: String = (0..9000)
        .map(|i| if i % 10 == 9 { format!("other line {i}\n") } else { format!("pappus alpha {i} beta\n") })
        .collect();
    let big_lines: Vec<String> = big.lines().filter(|l| l.contains("pappus")).map(str::to_string).collect();
    let out =
        invoke(node, "grep_count", json!({"pattern": [item("p", b"pappus")], "texts": [item("big", big.as_bytes())]}));
    assert_eq!(as_counts(&out["counts"]), host_counts(&big_lines), "grep_count over a large text differs");

    // A CSV column summed per table.
    let tables = ["name,qty,price\na,1,2.5\nb,2,4\n", "qty,name\n10,x\n-3,y\n0.5,z\n"];
    let out = invoke(
        node,
        "csv_total",
        json!({"column": [item("c", b"qty")], "tables": [item("t1", tables[0].as_bytes()), item("t2", tables[1].as_bytes())]}),
    );
    let sums: Vec<(String, f64)> =
        out["sums"].iter().map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).trim().parse().unwrap())).collect();
    assert_eq!(sums, vec![("t1".to_string(), 3.0), ("t2".to_string(), 7.5)]);

    // Bad input to a real function: a clear error naming the cause, and the node serves on.
    let body = serde_json::to_vec(&json!({"sets": {"matrices": [item("a", &matrix(2, 3, &[0.0; 6]))]}})).unwrap();
    let r = send(node, "POST", "/v1/invoke/matmul", &[("Content-Type", "application/json")], &body);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("b"), "{}", r.text());
    assert_eq!(node.call("GET", "/healthz", b"").status, 200);
}
