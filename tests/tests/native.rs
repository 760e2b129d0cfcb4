//! Native functions (x86_64 static PIE built with the SDK's native transport) over HTTP: the
//! same answers as their wasm builds, on a CPU with PKU (`-cpu max`) and without (`-cpu
//! qemu64`); hostile native functions each end with the right error class while the node
//! keeps serving.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_tests::node::{Node, Response, Tenant, boot_cpu, boot_cpu_smp};
use pappus_tests::sets::{Answer, decode, item, matmul_case};
use pappus_tests::{functions, workspace_root};
use serde_json::{Value, json};

const TENANT: Tenant = Tenant { name: "nat", token: "native-token-0123456789abcd" };

fn send(node: &Node, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let auth = format!("Bearer {}", TENANT.token);
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    node.request(method, path, &all, body)
}

fn register(node: &Node, name: &str, engine: &str, query: &str, image: &[u8]) {
    let r = send(node, "PUT", &format!("/v1/functions/{name}?engine={engine}&{query}"), &[], image);
    assert!(r.status == 201 || r.status == 200, "{name} ({engine}): {} {}", r.status, r.text());
}

fn invoke_raw(node: &Node, name: &str, sets: &Value) -> Response {
    let body = serde_json::to_vec(&json!({ "sets": sets })).unwrap();
    send(node, "POST", &format!("/v1/invoke/{name}"), &[("Content-Type", "application/json")], &body)
}

fn invoke(node: &Node, name: &str, sets: &Value) -> Answer {
    let r = invoke_raw(node, name, sets);
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    decode(&r.body)
}

/// Registers matmul and wordcount for wasm and for `engine`.
fn register_examples(node: &Node, engine: &str) {
    let matmul_q = "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=5000";
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=5000";
    register(node, "matmul_wasm", "wasm", matmul_q, &functions::wasm("matmul"));
    register(node, "matmul_native", engine, matmul_q, &functions::native("matmul"));
    register(node, "wordcount_wasm", "wasm", wc_q, &functions::wasm("wordcount"));
    register(node, "wordcount_native", engine, wc_q, &functions::native("wordcount"));
}

/// Checks that the native and wasm builds agree on real inputs (and with the host, for matmul).
fn same_answers(node: &Node, engine: &str) {
    let (sets, product) = matmul_case();
    let native = invoke(node, "matmul_native", &sets);
    let wasm = invoke(node, "matmul_wasm", &sets);
    assert_eq!(native, wasm, "matmul: native and wasm differ ({engine})");
    assert_eq!(native["product"], vec![("c".to_string(), product)], "matmul differs from the host");

    let files = ["README.md", "docs/ARCHITECTURE.md", "docs/api.md", "functions/README.md"];
    let items: Vec<Value> = files.iter().map(|f| item(f, &std::fs::read(workspace_root().join(f)).unwrap())).collect();
    let sets = json!({"texts": items});
    let native = invoke(node, "wordcount_native", &sets);
    let wasm = invoke(node, "wordcount_wasm", &sets);
    assert!(native["counts"].len() > 100, "few words counted: {}", native["counts"].len());
    assert_eq!(native, wasm, "wordcount: native and wasm differ ({engine})");

    // A failing native function reports its message like a wasm one.
    let r = invoke_raw(node, "matmul_native", &json!({"matrices": [item("a", b"short")]}));
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("function_aborted"), "{}", r.text());
}

#[test]
fn native_matches_wasm_on_cpu_max() {
    let Some(node) = boot_cpu("native_matches_wasm_on_cpu_max", "max", &[TENANT]) else { return };
    register_examples(&node, "native");
    // Once before the baseline: the first runs add metrics series (per target and outcome).
    same_answers(&node, "native");
    let baseline = node.baseline();
    same_answers(&node, "native");
    same_answers_again(&node);
    node.assert_healthy(baseline, "native functions on -cpu max");
}

#[test]
fn native_matches_wasm_on_cpu_max_under_both_engines() {
    let Some(node) = boot_cpu("native_matches_wasm_on_cpu_max_under_both_engines", "max", &[TENANT]) else {
        return;
    };
    assert!(node.qemu.lines().iter().any(|l| l.contains("PKU true")), "-cpu max should have PKU");
    for engine in ["mpk", "paging"] {
        register_examples(&node, engine);
        same_answers(&node, engine);
    }
}

#[test]
fn native_matches_wasm_without_pku() {
    let Some(node) = boot_cpu("native_matches_wasm_without_pku", "qemu64", &[TENANT]) else { return };
    assert!(node.qemu.lines().iter().any(|l| l.contains("PKU false")), "qemu64 should have no PKU");
    let r = send(&node, "PUT", "/v1/functions/m?engine=mpk&inputs=a&outputs=b", &[], &functions::native("matmul"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("engine_unavailable") && r.text().contains("PKU"), "{}", r.text());
    register_examples(&node, "paging");
    same_answers(&node, "paging");
    let baseline = node.baseline();
    same_answers(&node, "paging");
    node.assert_healthy(baseline, "native functions on -cpu qemu64");
}

/// Runs the native functions a few more times: sandboxes are torn down and rebuilt each time.
fn same_answers_again(node: &Node) {
    for _ in 0..3 {
        let sets = json!({"texts": [item("t", b"the cat and the hat")]});
        let out = invoke(node, "wordcount_native", &sets);
        let words: Vec<&str> = out["counts"].iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["and", "cat", "hat", "the"]);
    }
}

/// Boots a node (`cpu`), registers a well-behaved neighbour and the hostile `case` for
/// `engine`, and checks the hostile run ends with `status` and `code` (and `cause` in the
/// message), twice, while the neighbour keeps its answers and the node its memory.
fn hostile(test: &str, cpu: &str, engine: &str, case: &str, status: u16, code: &str, cause: &str) {
    let Some(node) = boot_cpu(test, cpu, &[TENANT]) else { return };
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=5000";
    register(&node, "neighbour", engine, wc_q, &functions::native("wordcount"));
    let image = functions::hostile_native(case);
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=200";
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
        }
    };
    check(&node);
    let baseline = node.baseline();
    check(&node);
    neighbour(&node);
    node.assert_healthy(baseline, case);
}

macro_rules! hostile_tests {
    ($($name:ident: $case:literal => $status:literal, $code:literal, $cause:literal;)*) => {
        /// Under the engine `native` picks on `-cpu max` (a CPU with PKU).
        mod cpu_max {
            use super::hostile;
            $(#[test]
            fn $name() {
                hostile(concat!("native_hostile_max_", stringify!($name)), "max", "native", $case, $status, $code, $cause);
            })*
        }
        /// Under the paging engine on a CPU without PKU.
        mod paging {
            use super::hostile;
            $(#[test]
            fn $name() {
                hostile(concat!("native_hostile_paging_", stringify!($name)), "qemu64", "paging", $case, $status, $code, $cause);
            })*
        }
    };
}

// Where the fault differs by CPU model the cause is only `vector `: `xsetbv` is #GP with XSAVE
// and #UD without it (qemu64); a forged `iretq` to ring 0 is #GP, except that QEMU's TCG pops the
// frame with supervisor accesses, which SMAP (on with `-cpu max`) turns into a #PF.
hostile_tests! {
    read_another_sandbox: "read_other" => 500, "function_trap", "memory_out_of_bounds";
    write_another_sandbox: "write_other" => 500, "function_trap", "page not present, write";
    read_kernel_memory: "read_kernel" => 500, "function_trap", "protection violation, read";
    write_kernel_memory: "write_kernel" => 500, "function_trap", "protection violation, write";
    jump_into_kernel_text: "jump_kernel" => 500, "function_trap", "instruction fetch";
    wrpkru_in_image_is_refused: "wrpkru_in_image" => 400, "invalid_image", "WRPKRU";
    xrstor_in_image_is_refused: "xrstor_in_image" => 400, "invalid_image", "XRSTOR";
    forged_wrpkru_in_data_is_not_executable: "forged_wrpkru" => 500, "function_trap", "instruction fetch";
    writing_its_own_code: "write_own_code" => 500, "function_trap", "protection violation, write";
    syscall_with_another_number: "syscall_other" => 500, "function_trap", "syscall number 1";
    int_0x80: "int80" => 500, "function_trap", "general protection";
    int3: "int3" => 500, "function_trap", "general protection";
    trap_flag_at_the_exit_call_is_harmless: "trap_flag_then_exit" => 200, "", "";
    single_step_trap: "single_step" => 500, "function_trap", "debug (#DB)";
    icebp: "icebp" => 500, "function_trap", "vector ";
    hlt: "hlt" => 500, "function_trap", "general protection";
    cli: "cli" => 500, "function_trap", "general protection";
    port_out: "port_out" => 500, "function_trap", "general protection";
    port_in: "port_in" => 500, "function_trap", "general protection";
    rdmsr: "rdmsr" => 500, "function_trap", "general protection";
    wrmsr: "wrmsr" => 500, "function_trap", "general protection";
    mov_to_cr3: "mov_cr3" => 500, "function_trap", "general protection";
    sysenter: "sysenter" => 500, "function_trap", "vector ";
    swapgs: "swapgs" => 500, "function_trap", "general protection";
    wrgsbase: "wrgsbase" => 500, "function_trap", "invalid opcode";
    xsetbv_with_pkru: "xsetbv" => 500, "function_trap", "vector ";
    iretq_to_ring_0: "iretq_to_ring0" => 500, "function_trap", "vector ";
    infinite_loop_times_out: "infinite_loop" => 504, "timeout", "200 ms";
    stack_overflow_hits_the_guard: "stack_overflow" => 500, "function_trap", "stack_overflow";
    divide_by_zero: "divide_by_zero" => 500, "function_trap", "integer_division_by_zero";
    touching_all_its_memory_is_allowed: "touch_all_memory" => 200, "", "";
    output_to_an_undeclared_set: "output_undeclared_set" => 500, "bad_output", "output set index 3";
    output_with_reserved_flags: "output_reserved_flags" => 500, "bad_output", "reserved bits";
    output_data_in_kernel_memory: "output_data_in_kernel" => 500, "function_trap", "item data at 0xffff800000100000";
    output_name_not_utf8: "output_name_not_utf8" => 500, "bad_output", "not UTF-8";
    output_table_outside_the_sandbox: "output_table_elsewhere" => 500, "function_trap", "output table";
    output_count_over_the_limit: "output_count_huge" => 500, "bad_output", "more than 65536 output items";
    output_data_over_the_limit: "output_data_huge" => 500, "bad_output", "the limit is 67108864 bytes";
    output_with_a_key_is_allowed: "output_keyed" => 200, "", "";
    abort_with_a_message: "abort_with_message" => 500, "function_aborted", "boom: the function failed";
    abort_message_in_kernel_memory: "abort_message_in_kernel" => 500, "function_aborted", "message unreadable";
    image_larger_than_its_memory: "huge_bss" => 500, "out_of_memory", "the image needs";
    exit_with_an_unknown_status: "exit_unknown_status" => 500, "function_trap", "unknown status 7";
}

/// 64 instances of a native function that computes for a while, fanned out by a composition
/// (`each`): every instance's output is its own input's, nothing mixed; more instances than
/// protection keys wait for keys (on one core they also queue).
fn sixty_four_instances(test: &str, cpu: &str, engine: &str, smp: Option<u32>) -> Option<Node> {
    let node = match smp {
        None => boot_cpu(test, cpu, &[TENANT])?,
        Some(smp) => boot_cpu_smp(test, cpu, &[TENANT], smp)?,
    };
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=20000";
    register(&node, "wordcount", engine, wc_q, &functions::native("wordcount"));
    let source = "function wordcount (texts) => (counts);\n\
                  composition fan (texts) => (counts) { wordcount (texts = each texts) => (counts = counts); }\n";
    let r = send(&node, "PUT", "/v1/compositions/fan", &[], source.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    // Text i: the word `w<i>` i+1 times among 4,000 words of filler that every text shares.
    let filler: String = (0..4000).map(|j| format!("filler{} ", j % 97)).collect();
    let texts: Vec<Value> = (0..64)
        .map(|i| {
            let mut text = filler.clone();
            for _ in 0..=i {
                text.push_str(&format!(" w{i}"));
            }
            item(&format!("t{i}"), text.as_bytes())
        })
        .collect();
    let out = invoke(&node, "fan", &json!({"texts": texts}));
    let mut own: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (word, n) in &out["counts"] {
        own.entry(word.clone()).or_default().push(String::from_utf8_lossy(n).parse().unwrap());
    }
    for i in 0..64u64 {
        assert_eq!(own.get(&format!("w{i}")), Some(&vec![i + 1]), "instance {i}'s own word");
    }
    for j in 0..97 {
        let counts = &own[&format!("filler{j}")];
        assert_eq!(counts.len(), 64, "filler{j} once per instance");
        let expected = (0..4000).filter(|x| x % 97 == j).count() as u64;
        assert!(counts.iter().all(|&n| n == expected), "filler{j}: {counts:?}");
    }
    assert_eq!(own.len(), 64 + 97);
    Some(node)
}

#[test]
fn sixty_four_mpk_instances_complete_unmixed() {
    sixty_four_instances("sixty_four_mpk_instances_complete_unmixed", "max", "mpk", None);
}

#[test]
fn sixty_four_paging_instances_complete_unmixed() {
    sixty_four_instances("sixty_four_paging_instances_complete_unmixed", "qemu64", "paging", None);
}

/// Compute cores run sandboxes at the same time: per core, its own session, trap stack,
/// `syscall` MSRs and PKRU; under MPK, live sandboxes on different cores hold different keys.
fn on_four_cpus(test: &str, cpu: &str, engine: &str) {
    let Some(node) = sixty_four_instances(test, cpu, engine, Some(4)) else { return };
    let metrics = node.metrics().text();
    let busy = (1..4)
        .filter(|cpu| {
            let key = format!("pappus_core_runs_total{{cpu=\"{cpu}\",role=\"compute\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(&key)).is_some_and(|n| n.trim() != "0")
        })
        .count();
    assert!(busy >= 2, "the sandboxes ran on {busy} compute core(s):\n{metrics}");
}

/// More compute cores than protection keys (19 against 15): sandboxes beyond the 15th wait for
/// a key, and every output is still its own instance's.
#[test]
fn more_live_mpk_sandboxes_than_keys() {
    let test = "more_live_mpk_sandboxes_than_keys";
    let Some(node) = sixty_four_instances(test, "max", "mpk", Some(20)) else { return };
    let waits = node.metric("pappus_mpk_key_waits_total");
    eprintln!("{test}: {waits} wait(s) for a protection key");
    // 64 instances burst onto 19 cores: more than 15 are live at once (seen: 9 to 16 waits).
    assert!(waits > 0, "no sandbox ever waited for a key: the test did not exhaust them");
}

#[test]
fn sixty_four_mpk_instances_on_four_cpus() {
    on_four_cpus("sixty_four_mpk_instances_on_four_cpus", "max", "mpk");
}

#[test]
fn sixty_four_paging_instances_on_four_cpus() {
    on_four_cpus("sixty_four_paging_instances_on_four_cpus", "qemu64", "paging");
}

/// The SDK end to end on the native transport (functions/sdk-probe): panics and errors with
/// their messages, allocation within and beyond the heap, chunked reads, set names, deep
/// recursion into the stack guard, keys kept.
fn sdk_probe(test: &str, cpu: &str, engine: &str) {
    let Some(node) = boot_cpu(test, cpu, &[TENANT]) else { return };
    register(
        &node,
        "probe",
        engine,
        "inputs=cmds&outputs=out,extra&memory=4MiB&timeout_ms=5000",
        &functions::native("sdk_probe"),
    );
    let run = |name: &str, data: &[u8]| invoke_raw(&node, "probe", &json!({"cmds": [item(name, data)]}));
    let fails = |name: &str, data: &[u8], code: &str, cause: &str| {
        let r = run(name, data);
        assert_eq!(r.status, 500, "{name}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], code, "{name}: {}", r.text());
        assert!(v["error"]["message"].as_str().unwrap().contains(cause), "{name}: {}", r.text());
    };
    let output = |name: &str, data: &[u8]| -> Vec<(String, Vec<u8>)> {
        let r = run(name, data);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["sets"]["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap().to_string(), B64.decode(i["data"].as_str().unwrap()).unwrap()))
            .collect()
    };
    fails("panic", b"the sky fell", "function_aborted", "the sky fell");
    fails("panic", b"x", "function_aborted", "src/lib.rs");
    fails("fail", b"no thanks", "function_aborted", "no thanks");
    fails("alloc", b"100000000", "out_of_memory", "refused an allocation");
    fails("recurse", b"100000", "function_trap", "stack_overflow");
    assert_eq!(output("alloc", b"1000000"), [("alloc".to_string(), b"allocated 1000000".to_vec())]);
    assert_eq!(output("sets", b""), [("sets".to_string(), b"cmds,out,extra".to_vec())]);
    let text: Vec<u8> = (0..10_000u32).flat_map(|i| format!("{i} ").into_bytes()).collect();
    assert_eq!(output("chunks", &text), [("chunks".to_string(), text.clone())]);
    assert_eq!(output("recurse", b"100").len(), 1);
    let r = invoke_raw(&node, "probe", &json!({"cmds": [{"name": "copy", "key": 77, "data": B64.encode(b"kept")}]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["sets"]["out"][0]["key"], 77, "{}", r.text());
    let r = run("named", b"extra");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["sets"]["extra"][0]["name"], "named", "{}", r.text());
}

#[test]
fn sdk_probe_under_mpk() {
    sdk_probe("sdk_probe_under_mpk", "max", "mpk");
}

#[test]
fn sdk_probe_under_paging() {
    sdk_probe("sdk_probe_under_paging", "qemu64", "paging");
}

/// 64 clients at once, each invoking a native word count over its own text (a word only it has,
/// a few thousand times, among shared filler): every answer is the client's own. The node holds
/// 64 invocations live; a 503 (saturated) is retried after its Retry-After.
fn sixty_four_clients(test: &str, cpu: &str, engine: &str) {
    use std::io::{BufReader, Write};
    let Some(node) = boot_cpu(test, cpu, &[TENANT]) else { return };
    register(
        &node,
        "wordcount",
        engine,
        "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=20000",
        &functions::native("wordcount"),
    );
    let request = |tag: &str, times: usize| -> Vec<u8> {
        let mut text = "shared filler words ".repeat(500);
        text.push_str(&vec![tag; times].join(" "));
        let body = serde_json::to_vec(&json!({"sets": {"texts": [item("t", text.as_bytes())]}})).unwrap();
        let mut out = format!(
            "POST /v1/invoke/wordcount HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            TENANT.token,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    };
    // Opened one after the other (QEMU's forwarded port has a backlog of one), then all at once.
    let mut open = Vec::new();
    for _ in 0..64 {
        let mut s = node.connect();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n").unwrap();
        assert_eq!(pappus_tests::node::read_response(&mut reader).unwrap().status, 200);
        open.push((s, reader));
    }
    let handles: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(c, (mut s, mut reader))| {
            let bytes = request(&format!("client{c}"), 1000 + c);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    s.write_all(&bytes).map_err(|e| format!("client {c}: {e}"))?;
                    let r = pappus_tests::node::read_response(&mut reader).map_err(|e| format!("client {c}: {e}"))?;
                    if r.status == 503 {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        continue;
                    }
                    if r.status != 200 {
                        return Err(format!("client {c}: {} {}", r.status, r.text()));
                    }
                    let v: Value = serde_json::from_slice(&r.body).unwrap();
                    let own = v["sets"]["counts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|i| i["name"] == format!("client{c}"))
                        .map(|i| String::from_utf8(B64.decode(i["data"].as_str().unwrap()).unwrap()).unwrap());
                    let words = v["sets"]["counts"].as_array().unwrap().len();
                    return if own == Some((1000 + c).to_string()) && words == 4 {
                        Ok(())
                    } else {
                        Err(format!("client {c}: {own:?} of {words} words"))
                    };
                }
                Err(format!("client {c}: still saturated after 50 tries"))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}", node.qemu.tail(20)));
    }
}

#[test]
fn sixty_four_mpk_clients_get_their_own_answers() {
    sixty_four_clients("sixty_four_mpk_clients_get_their_own_answers", "max", "mpk");
}

#[test]
fn sixty_four_paging_clients_get_their_own_answers() {
    sixty_four_clients("sixty_four_paging_clients_get_their_own_answers", "qemu64", "paging");
}
