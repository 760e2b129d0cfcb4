//! Native functions (x86_64 and aarch64 static PIE built with the SDK's native transport) over
//! HTTP: the same answers as their wasm builds, on a CPU with PKU (`-cpu max`) and without
//! (`-cpu qemu64`), and on aarch64 (`paging` at EL0); hostile native functions each end with the right error class while the node
//! keeps serving.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_tests::node::{Node, Response, Tenant, boot_arch, boot_cpu, boot_cpu_smp};
use pappus_tests::sets::{decode, item, matmul_case};
use pappus_tests::{Arch, functions, workspace_root};
use serde_json::{Value, json};

#[path = "common/native_harness.rs"]
mod native_harness;
use native_harness::*;

/// Registers matmul and wordcount for wasm and for `engine` (x86_64 images).
fn register_examples(node: &Node, engine: &str) {
    register_examples_for(node, Arch::X86_64, engine)
}

/// Registers matmul and wordcount for wasm and for `engine`, native images built for `arch`.
fn register_examples_for(node: &Node, arch: Arch, engine: &str) {
    let matmul_q = "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=5000";
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=5000";
    register(node, "matmul_wasm", "wasm", matmul_q, &functions::wasm("matmul"));
    register(node, "matmul_native", engine, matmul_q, &functions::native_for("matmul", arch));
    register(node, "wordcount_wasm", "wasm", wc_q, &functions::wasm("wordcount"));
    register(node, "wordcount_native", engine, wc_q, &functions::native_for("wordcount", arch));
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

/// aarch64: native images on the `paging` engine (EL0, a translation table and ASID per
/// sandbox) agree with their wasm builds, run after run, and leave the node as it was.
#[test]
fn native_matches_wasm_on_aarch64() {
    let Some(node) = boot_arch("native_matches_wasm_on_aarch64", Arch::Aarch64, &[TENANT]) else { return };
    // `-cpu max` is no Morello CPU: `cheri` is refused with its reason.
    let r = send(
        &node,
        "PUT",
        "/v1/functions/m?engine=cheri&inputs=a&outputs=b",
        &[],
        &functions::native_for("matmul", Arch::Aarch64),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("engine_unavailable") && r.text().contains("Morello"), "{}", r.text());
    for engine in ["native", "paging"] {
        register_examples_for(&node, Arch::Aarch64, engine);
        same_answers(&node, engine);
    }
    let baseline = node.baseline();
    same_answers(&node, "paging");
    same_answers_again(&node);
    node.assert_healthy(baseline, "native functions on aarch64");
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
    hostile_on(test, Arch::X86_64, cpu, engine, case, status, code, cause)
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
    jump_into_kernel_text: "jump_kernel" => 500, "function_trap", "rip=kernel address, address kernel address";
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
    output_data_in_kernel_memory: "output_data_in_kernel" => 500, "function_trap", "item data at kernel address";
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

/// The hostile suite on aarch64 (`paging` at EL0): the same harness, the aarch64 cases and the
/// exception classes they end with.
macro_rules! hostile_tests_aarch64 {
    ($($name:ident: $case:literal => $status:literal, $code:literal, $cause:literal;)*) => {
        mod aarch64 {
            use super::{Arch, hostile_on};
            $(#[test]
            fn $name() {
                hostile_on(concat!("native_hostile_aarch64_", stringify!($name)), Arch::Aarch64, "max", "native", $case, $status, $code, $cause);
            })*
        }
    };
}

hostile_tests_aarch64! {
    read_another_sandbox: "read_other" => 500, "function_trap", "memory_out_of_bounds";
    write_another_sandbox: "write_other" => 500, "function_trap", "translation fault at level 1, write";
    read_kernel_memory: "read_kernel" => 500, "function_trap", "address kernel address: permission fault";
    write_kernel_memory: "write_kernel" => 500, "function_trap", "write";
    unaligned_read_of_kernel_memory: "unaligned_kernel" => 500, "function_trap", "address kernel address: permission fault";
    jump_into_kernel_text: "jump_kernel" => 500, "function_trap", "instruction abort (ESR";
    forged_code_in_data_is_not_executable: "forged_code" => 500, "function_trap", "instruction fetch";
    writing_its_own_code: "write_own_code" => 500, "function_trap", "permission fault at level 3, write";
    svc_with_another_number: "syscall_other" => 500, "function_trap", "syscall number 1";
    svc_with_another_immediate: "svc_other_immediate" => 500, "function_trap", "invalid_instruction";
    brk: "brk" => 500, "function_trap", "BRK instruction";
    mrs_of_an_el1_register: "mrs_sctlr" => 500, "function_trap", "undefined instruction";
    msr_ttbr0: "msr_ttbr0" => 500, "function_trap", "undefined instruction";
    msr_vbar: "msr_vbar" => 500, "function_trap", "undefined instruction";
    msr_daif: "msr_daif" => 500, "function_trap", "trapped MSR/MRS/system instruction";
    mrs_of_the_counter: "mrs_counter" => 500, "function_trap", "trapped MSR/MRS/system instruction";
    msr_of_the_timer: "msr_timer" => 500, "function_trap", "trapped MSR/MRS/system instruction";
    eret: "eret" => 500, "function_trap", "undefined instruction";
    forged_exception_return: "forged_eret" => 500, "function_trap", "undefined instruction";
    hvc: "hvc" => 500, "function_trap", "undefined instruction";
    smc: "smc" => 500, "function_trap", "undefined instruction";
    dc_civac: "dc_civac" => 500, "function_trap", "trapped MSR/MRS/system instruction";
    dc_zva_on_kernel_memory: "dc_zva_kernel" => 500, "function_trap", "trapped MSR/MRS/system instruction";
    ic_iallu: "ic_iallu" => 500, "function_trap", "undefined instruction";
    tlbi: "tlbi" => 500, "function_trap", "undefined instruction";
    wfi: "wfi" => 500, "function_trap", "trapped WFI/WFE";
    unaligned_exclusive_load: "unaligned_exclusive" => 500, "function_trap", "alignment fault";
    unaligned_pc: "unaligned_pc" => 500, "function_trap", "not 4-byte aligned";
    infinite_loop_times_out: "infinite_loop" => 504, "timeout", "200 ms";
    stack_overflow_hits_the_guard: "stack_overflow" => 500, "function_trap", "stack_overflow";
    touching_all_its_memory_is_allowed: "touch_all_memory" => 200, "", "";
    output_to_an_undeclared_set: "output_undeclared_set" => 500, "bad_output", "output set index 3";
    output_with_reserved_flags: "output_reserved_flags" => 500, "bad_output", "reserved bits";
    output_data_in_kernel_memory: "output_data_in_kernel" => 500, "function_trap", "item data at kernel address";
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

/// A native function may use 256-bit AVX where the CPU has it (docs/writing-functions.md): the
/// kernel enables it for ring 3 (XCR0). It once did not on any CPU with PKU (the XSAVE size check
/// read every supported component's size), and this run failed with an invalid opcode.
#[test]
fn avx_runs_in_a_native_sandbox() {
    let Some(node) = boot_cpu("avx_runs_in_a_native_sandbox", "max", &[TENANT]) else { return };
    assert!(node.qemu.lines().iter().any(|l| l.contains("XCR0 0x7")), "AVX not enabled for ring 3 under -cpu max");
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=10000";
    register(&node, "avx", "mpk", query, &functions::hostile_native("avx"));
    let out = invoke(&node, "avx", &json!({"in": [item("x", b"x")]}));
    let want: Vec<u8> = [3.0f64, 5.0, -6.0, 2e10].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(out["out"][0].1, want, "the doubled lanes");
}

/// aarch64: TPIDR_EL0, TPIDRRO_EL0, FPCR, FPSR, NZCV and the vector registers as one run left
/// them are not what the next run finds (all zero but TPIDRRO_EL0, the system data block), and a long run's general and vector
/// registers survive its preemptions (its answer is the host's).
#[test]
fn registers_reset_between_runs_on_aarch64() {
    let test = "registers_reset_between_runs_on_aarch64";
    let Some(node) = boot_arch(test, Arch::Aarch64, &[TENANT]) else { return };
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=120000";
    for case in ["leave_state", "read_state", "long_loop"] {
        register(&node, case, "native", query, &functions::hostile_native_for(case, Arch::Aarch64));
    }
    let state = |node: &Node| -> Vec<u64> {
        let out = invoke(node, "read_state", &json!({"in": [item("x", b"x")]}));
        out["out"][0].1.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    };
    // TPIDRRO_EL0 holds the system data block at entry (docs/function-abi.md), all else zero.
    let fresh = [0, 0x101_0000_0000, 0, 0, 0, 0];
    assert_eq!(state(&node), fresh, "a fresh node");
    let r = invoke_raw(&node, "leave_state", &json!({"in": [item("x", b"x")]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(state(&node), fresh, "TPIDR_EL0, TPIDRRO_EL0, FPCR, FPSR, NZCV, v0-v31 after a run that set them");
    let before = node.metric("pappus_preemptions_total");
    let out = invoke(&node, "long_loop", &json!({"in": [item("x", b"x")]}));
    assert_eq!(out["out"][0].1, long_loop_answer(), "the long loop's registers after its preemptions");
    let preempted = node.metric("pappus_preemptions_total") - before;
    eprintln!("{test}: the long loop was preempted {preempted} times");
    assert!(preempted > 0, "the long loop was never preempted");
    assert_eq!(state(&node), fresh, "after a preempted run");
}

/// Nothing of one run is left for the next in the pages a slot or pooled space keeps between
/// runs (its stack's top page and heap's first page, which each run of `residue` dirties, and
/// its system data page, which items of 3,000 bytes (one page) and 5,000 bytes (two) fill,
/// and the image's writable pages, kept mapped from one run of a function to the next: a word
/// of `.data` and a page of `.bss`, which each run changes):
/// every run counts the nonzero words it finds there, and finds none; and the pages kept are
/// no leak.
fn nothing_is_left_for_the_next_run(test: &str, cpu: &str, engine: &str) {
    nothing_is_left_for_the_next_run_on(test, Arch::X86_64, cpu, engine)
}

/// A node of `arch` (`cpu`: the x86_64 CPU model; aarch64 boots `-cpu max`), with `smp` CPUs.
fn boot_on(test: &str, arch: Arch, cpu: &str, smp: Option<u32>) -> Option<Node> {
    match (arch, smp) {
        (Arch::X86_64, None) => boot_cpu(test, cpu, &[TENANT]),
        (Arch::X86_64, Some(smp)) => boot_cpu_smp(test, cpu, &[TENANT], smp),
        (Arch::Aarch64, smp) => pappus_tests::node::boot_with(test, arch, &[TENANT], smp),
    }
}

fn nothing_is_left_for_the_next_run_on(test: &str, arch: Arch, cpu: &str, engine: &str) {
    let Some(node) = boot_on(test, arch, cpu, None) else { return };
    let residue = functions::hostile_native_for("residue", arch);
    register(&node, "residue", engine, "inputs=in&outputs=out&memory=4MiB", &residue);
    let found = |sets: &Value, what: &str| -> u64 {
        let answer = invoke(&node, "residue", sets);
        let out = &answer["out"];
        assert_eq!(out.len(), 1, "{what}: {out:?}");
        u64::from_le_bytes(out[0].1[..8].try_into().unwrap())
    };
    assert_eq!(found(&json!({}), "the first run"), 0);
    let baseline = node.baseline();
    // The image stays mapped in the slot (or pooled space) between its runs: its writable
    // pages are the frames counted here (and `baseline` reads frames free with them).
    assert!(node.metric("pappus_native_kept_image_frames") > 0, "the image is kept between runs");
    for (round, size) in [3000usize, 5000, 100].into_iter().enumerate() {
        let data = vec![b'A' + round as u8; size];
        assert_eq!(found(&json!({"in": [item("big", &data)]}), "a run with an item"), 0, "{size}-byte item");
        assert_eq!(found(&json!({}), "an empty run"), 0, "an empty run after a {size}-byte item");
    }
    node.assert_healthy(baseline, test);
    // A deleted function's image is not kept for runs that will never come: its private
    // frames go back at once (and its shared frames and template with it).
    let kept = node.metric("pappus_native_kept_image_frames");
    let free = node.metric("pappus_frames_free");
    let r = send(&node, "DELETE", "/v1/functions/residue", &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(node.metric("pappus_native_kept_image_frames"), 0, "kept frames after the delete");
    assert!(node.metric("pappus_frames_free") >= free + kept, "the kept image's frames came back");
}

#[test]
fn nothing_is_left_for_the_next_run_mpk() {
    nothing_is_left_for_the_next_run("native_nothing_left_mpk", "max", "native");
}

#[test]
fn nothing_is_left_for_the_next_run_paging() {
    nothing_is_left_for_the_next_run("native_nothing_left_paging", "qemu64", "paging");
}

#[test]
fn nothing_is_left_for_the_next_run_on_aarch64() {
    nothing_is_left_for_the_next_run_on("native_nothing_left_aarch64", Arch::Aarch64, "max", "native");
}

/// 64 instances of a native function that computes for a while, fanned out by a composition
/// (`each`): every instance's output is its own input's, nothing mixed; more instances than
/// protection keys wait for keys (on one core they also queue).
#[test]
fn mapped_inputs_under_mpk() {
    let Some(node) = boot_on("native_mapped_inputs_mpk", Arch::X86_64, "max", None) else { return };
    mapped_inputs(&node, Arch::X86_64, "native");
}

/// The same with two compute cores: the fan-out's readers run at once, the item's pages mapped
/// into two slots under two keys.
#[test]
fn mapped_inputs_under_mpk_on_three_cpus() {
    let Some(node) = boot_on("native_mapped_inputs_mpk_smp3", Arch::X86_64, "max", Some(3)) else { return };
    mapped_inputs(&node, Arch::X86_64, "native");
}

#[test]
fn mapped_inputs_under_paging() {
    let Some(node) = boot_on("native_mapped_inputs_paging", Arch::X86_64, "qemu64", None) else { return };
    mapped_inputs(&node, Arch::X86_64, "paging");
}

#[test]
fn mapped_inputs_on_aarch64() {
    let Some(node) = boot_on("native_mapped_inputs_aarch64", Arch::Aarch64, "max", None) else { return };
    mapped_inputs(&node, Arch::Aarch64, "native");
}

fn sixty_four_instances(test: &str, cpu: &str, engine: &str, smp: Option<u32>) -> Option<Node> {
    sixty_four_instances_on(test, Arch::X86_64, cpu, engine, smp)
}

fn sixty_four_instances_on(test: &str, arch: Arch, cpu: &str, engine: &str, smp: Option<u32>) -> Option<Node> {
    let node = boot_on(test, arch, cpu, smp)?;
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=20000";
    register(&node, "wordcount", engine, wc_q, &functions::native_for("wordcount", arch));
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
    on_four_cpus_of(test, Arch::X86_64, cpu, engine)
}

fn on_four_cpus_of(test: &str, arch: Arch, cpu: &str, engine: &str) {
    let Some(node) = sixty_four_instances_on(test, arch, cpu, engine, Some(4)) else { return };
    let metrics = node.metrics().text();
    let busy = (1..4)
        .filter(|cpu| {
            let key = format!("pappus_core_runs_total{{cpu=\"{cpu}\",role=\"compute\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(&key)).is_some_and(|n| n.trim() != "0")
        })
        .count();
    assert!(busy >= 2, "the sandboxes ran on {busy} compute core(s):\n{metrics}");
}

#[test]
fn sixty_four_instances_complete_unmixed_on_aarch64() {
    sixty_four_instances_on("sixty_four_instances_complete_unmixed_on_aarch64", Arch::Aarch64, "max", "native", None);
}

/// aarch64 compute cores run EL0 sandboxes at the same time (each its own ASID; teardown's
/// TLB invalidation is broadcast).
#[test]
fn sixty_four_instances_on_four_aarch64_cpus() {
    on_four_cpus_of("sixty_four_instances_on_four_aarch64_cpus", Arch::Aarch64, "max", "native");
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
    sdk_probe_on(test, Arch::X86_64, cpu, engine)
}

fn sdk_probe_on(test: &str, arch: Arch, cpu: &str, engine: &str) {
    let Some(node) = boot_on(test, arch, cpu, None) else { return };
    register(
        &node,
        "probe",
        engine,
        "inputs=cmds&outputs=out,extra&memory=4MiB&timeout_ms=5000",
        &functions::native_for("sdk_probe", arch),
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
    // The SDK's memcpy, memmove and memset (words, then the bytes left), at every length and offset.
    assert_eq!(output("memory", b""), [("memory".to_string(), format!("memory ok {}", 41 * 8 * 4).into_bytes())]);
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

#[test]
fn sdk_probe_on_aarch64() {
    sdk_probe_on("sdk_probe_on_aarch64", Arch::Aarch64, "max", "native");
}

/// 64 clients at once, each invoking a native word count over its own text (a word only it has,
/// a few thousand times, among shared filler): every answer is the client's own. The node holds
/// 64 invocations live; a 503 (saturated) is retried after its Retry-After.
fn sixty_four_clients(test: &str, cpu: &str, engine: &str) {
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

// ---- Time isolation: native runs are preempted at their slice and requeued ----

const OTHER: Tenant = Tenant { name: "other", token: "other-tenant-token-0123456789" };

/// What the `long_loop` hostile case computes (its general and SSE registers), done here.
fn long_loop_answer() -> Vec<u8> {
    let (mut r8, mut r9, mut r10, mut r11, mut x0, mut x1) = (0u64, 0u64, 0u64, 0u64, 0u64, 1u64);
    for _ in 0..1u64 << 30 {
        r8 = r8.wrapping_add(1);
        r9 = r9.wrapping_add(r8);
        r10 = (r10 ^ r9).rotate_left(7);
        r11 = r11.wrapping_add(r10);
        x0 = x0.wrapping_add(x1);
        x1 = x1.wrapping_add(x0);
    }
    [r11.to_le_bytes(), x1.to_le_bytes()].concat()
}

/// Sends an invocation of `name` for `tenant` (one raw input byte) on a connection of its own
/// and returns the connection, without waiting for the answer.
fn start_invocation(node: &Node, tenant: &Tenant, name: &str) -> TcpStream {
    let mut s = node.connect();
    s.set_read_timeout(Some(std::time::Duration::from_secs(300))).unwrap();
    let head = format!(
        "POST /v1/invoke/{name} HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\n\r\nx",
        tenant.token
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Whether nothing has come back on `s` yet (the invocation is still running).
fn no_answer_yet(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let waiting = matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    waiting
}

fn other_send(node: &Node, method: &str, path: &str, body: &[u8]) -> Response {
    let auth = format!("Bearer {}", OTHER.token);
    node.request(method, path, &[("Authorization", auth.as_str()), ("Content-Type", "application/json")], body)
}

/// Two tenants on two CPUs (one compute core): tenant `nat` starts a native loop of several
/// seconds; while it runs, tenant `other`'s native and wasm invocations are answered, several in
/// a row; the loop is preempted (and resumed) many times and still computes its exact answer.
fn long_run_shares_the_compute_core(test: &str, cpu: &str, engine: &str) {
    let Some(node) = boot_cpu_smp(test, cpu, &[TENANT, OTHER], 2) else { return };
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=240000";
    register(&node, "long", engine, query, &functions::hostile_native("long_loop"));
    let wc_q = "inputs=texts&outputs=counts&memory=16MiB&timeout_ms=5000";
    for (name, image) in [("wc_native", functions::native("wordcount")), ("wc_wasm", functions::wasm("wordcount"))] {
        let e = if name == "wc_wasm" { "wasm" } else { engine };
        let r = other_send(&node, "PUT", &format!("/v1/functions/{name}?engine={e}&{wc_q}"), &image);
        assert!(r.status == 201 || r.status == 200, "{name}: {} {}", r.status, r.text());
    }
    let expected = long_loop_answer();
    let started = std::time::Instant::now();
    let long = start_invocation(&node, &TENANT, "long");
    thread::sleep(std::time::Duration::from_millis(500)); // let the loop take the compute core
    let body = serde_json::to_vec(&json!({"sets": {"texts": [item("t", b"the cat and the hat")]}})).unwrap();
    let mut served = 0;
    for round in 0..3 {
        for name in ["wc_native", "wc_wasm"] {
            let r = other_send(&node, "POST", &format!("/v1/invoke/{name}"), &body);
            assert_eq!(r.status, 200, "{name} round {round}: {}", r.text());
            let words: Vec<String> = decode(&r.body)["counts"].iter().map(|(w, _)| w.clone()).collect();
            assert_eq!(words, ["and", "cat", "hat", "the"], "{name} round {round}");
            served += 1;
        }
    }
    let while_running = no_answer_yet(&long);
    let preemptions = node.metric("pappus_preemptions_total");
    eprintln!(
        "{test}: {served} invocations of the other tenant served {:?} after the long run started; \
         still running: {while_running}; preemptions so far: {preemptions}",
        started.elapsed()
    );
    if !while_running {
        let answer = pappus_tests::node::read_response(&mut BufReader::new(long));
        panic!("the other tenant was served only after the long run ended: {answer:?}\n{}", node.qemu.tail(20));
    }
    assert!(preemptions > 0, "the long run was never preempted");
    let r = pappus_tests::node::read_response(&mut BufReader::new(long)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(decode(&r.body)["out"], vec![("item".to_string(), expected)], "the preempted loop's answer");
    let total = node.metric("pappus_preemptions_total");
    eprintln!("{test}: the long run answered after {:?}, {total} preemptions in all", started.elapsed());
    // Each slice is 10 ms: a run of seconds is preempted many times.
    assert!(total >= 10, "only {total} preemptions");
}

#[test]
fn a_long_mpk_run_shares_the_compute_core_with_another_tenant() {
    long_run_shares_the_compute_core("a_long_mpk_run_shares_the_compute_core_with_another_tenant", "max", "mpk");
}

#[test]
fn a_long_paging_run_shares_the_compute_core_with_another_tenant() {
    long_run_shares_the_compute_core(
        "a_long_paging_run_shares_the_compute_core_with_another_tenant",
        "qemu64",
        "paging",
    );
}

/// One CPU (single-core mode): the I/O core serves `/healthz` between the native loop's
/// slices, in its own loop (not from the timer interrupt); the client going away cancels the
/// parked run, whose sandbox is freed.
#[test]
fn single_core_serves_while_a_native_loop_runs_and_cancels_it() {
    let test = "single_core_serves_while_a_native_loop_runs_and_cancels_it";
    let Some(node) = boot_cpu(test, "max", &[TENANT]) else { return };
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=240000";
    register(&node, "long", "native", query, &functions::hostile_native("long_loop"));
    // Once to its end, preempted all along with nobody else waiting: the right answer (and the
    // MPK slot's page tables, which stay, exist before the baseline).
    let r = invoke_raw(&node, "long", &json!({"in": [item("x", b"x")]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(decode(&r.body)["out"], vec![("item".to_string(), long_loop_answer())]);
    let baseline = node.baseline();
    let long = start_invocation(&node, &TENANT, "long");
    thread::sleep(std::time::Duration::from_millis(500));
    for _ in 0..3 {
        let r = node.call("GET", "/healthz", b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    if !no_answer_yet(&long) {
        let r = pappus_tests::node::read_response(&mut BufReader::new(long)).unwrap();
        panic!("the health checks were answered only after the loop ended: {} {}", r.status, r.text());
    }
    assert!(node.metric("pappus_preemptions_total") > 0, "the loop was never preempted");
    reset(long);
    for _ in 0..200 {
        if node.metric("pappus_invocations_total{outcome=\"cancelled\"}") == 1 {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(node.metric("pappus_invocations_total{outcome=\"cancelled\"}"), 1);
    // The cancelled sandbox's memory is back.
    node.assert_healthy(baseline, "a cancelled native loop");
}

/// Closes `stream` with a reset (SO_LINGER 0): the client is gone, its invocation cancelled.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

// ---- State that must not cross from one run to the next ----

/// Reads the `OUT` words of a hostile case that reports four of them.
fn four_words(node: &Node, name: &str) -> Vec<u64> {
    let out = invoke(node, name, &json!({"in": [item("x", b"x")]}));
    let data = &out["out"][0].1;
    data.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// DS/ES/FS/GS as a run left them are not what the next run finds (null selectors), and a run's
/// own selectors survive its preemptions.
fn segments_reset_between_runs(test: &str, cpu: &str, engine: &str) {
    let Some(node) = boot_cpu(test, cpu, &[TENANT]) else { return };
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=60000";
    for case in ["set_segments", "read_segments", "segments_survive_preemption"] {
        register(&node, case, engine, query, &functions::hostile_native(case));
    }
    assert_eq!(four_words(&node, "read_segments"), [0, 0, 0, 0], "a fresh node");
    let r = invoke_raw(&node, "set_segments", &json!({"in": [item("x", b"x")]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(four_words(&node, "read_segments"), [0, 0, 0, 0], "DS/ES/FS/GS after a run that set them");
    let before = node.metric("pappus_preemptions_total");
    assert_eq!(four_words(&node, "segments_survive_preemption"), [0x2b; 4], "its own selectors after preemptions");
    let preempted = node.metric("pappus_preemptions_total") - before;
    eprintln!("{test}: the selector run was preempted {preempted} times");
    assert!(preempted > 0, "the selector run was never preempted");
    assert_eq!(four_words(&node, "read_segments"), [0, 0, 0, 0], "DS/ES/FS/GS after a preempted run");
}

#[test]
fn segments_reset_between_runs_under_mpk() {
    segments_reset_between_runs("segments_reset_between_runs_under_mpk", "max", "mpk");
}

#[test]
fn segments_reset_between_runs_under_paging() {
    segments_reset_between_runs("segments_reset_between_runs_under_paging", "qemu64", "paging");
}

/// SGDT, SIDT and SMSW from ring 3: a #GP where the CPU has UMIP (the kernel turns CR4.UMIP
/// on), else they run (and the log says the CPU has no UMIP).
fn descriptor_tables_hidden(test: &str, cpu: &str, engine: &str) {
    let Some(node) = boot_cpu(test, cpu, &[TENANT]) else { return };
    let umip = node.qemu.lines().iter().any(|l| l.contains("UMIP true"));
    assert!(umip || node.qemu.lines().iter().any(|l| l.contains("UMIP false")), "no UMIP in the log");
    eprintln!("{test}: -cpu {cpu} has UMIP: {umip}");
    let query = "inputs=in&outputs=out&memory=4MiB&timeout_ms=2000";
    for case in ["sgdt", "sidt", "smsw"] {
        register(&node, case, engine, query, &functions::hostile_native(case));
        let r = invoke_raw(&node, case, &json!({"in": [item("x", b"x")]}));
        if umip {
            assert_eq!(r.status, 500, "{case}: {}", r.text());
            assert!(r.text().contains("general protection"), "{case}: {}", r.text());
        } else {
            assert_eq!(r.status, 200, "{case} without UMIP: {}", r.text());
        }
    }
}

#[test]
fn descriptor_tables_are_hidden_with_umip_on_cpu_max() {
    descriptor_tables_hidden("descriptor_tables_are_hidden_with_umip_on_cpu_max", "max", "native");
}

#[test]
fn descriptor_tables_without_umip_on_qemu64() {
    descriptor_tables_hidden("descriptor_tables_without_umip_on_qemu64", "qemu64", "paging");
}

/// The sum over CPUs of family `name`'s samples whose labels contain `filter`.
fn mmu_count(metrics: &str, name: &str, filter: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter(|rest| rest.contains(filter))
        .map(|rest| rest.rsplit(' ').next().unwrap().trim().parse::<u64>().unwrap())
        .sum()
}

/// CR3 writes, PKRU writes, ring-3 page faults, ring-0 page faults, all CPUs.
fn mmu_counts(node: &Node) -> [u64; 4] {
    let m = node.metrics().text();
    assert!(m.contains("pappus_cr3_writes_total{cpu=\"0\"}"), "no per-CPU CR3 counter:\n{m}");
    assert!(m.contains("pappus_tlb_invalidations_total{cpu=\"0\"}"), "no per-CPU INVLPG counter:\n{m}");
    [
        mmu_count(&m, "pappus_cr3_writes_total", ""),
        mmu_count(&m, "pappus_pkru_writes_total", ""),
        mmu_count(&m, "pappus_page_faults_total", "ring=\"user\""),
        mmu_count(&m, "pappus_page_faults_total", "ring=\"kernel\""),
    ]
}

/// The per-CPU counts of what flushes TLBs: a wasm run (in the kernel) switches nothing; each
/// paging run enters its address space and leaves it (two CR3 writes); an MPK run enters the
/// shared space only when the CPU does not have it loaded or a user page was unmapped since its
/// last CR3 write (the space stays loaded after a run); PKRU is written when the run needs
/// another value than the CPU holds (CR4.PKE being on under both engines); and a run takes no page fault when all it touches is
/// its stack's top page and its heap's first page (mapped before it runs), but one per further
/// page it touches (`touch_all_memory`: all of its heap and stack); the kernel takes none.
/// Also matmul's raw form: `a` then `b` in one body.
#[test]
fn tlb_events_are_counted_per_native_run() {
    let Some(node) = boot_cpu("tlb_events_are_counted_per_native_run", "max", &[TENANT]) else { return };
    let q = "inputs=matrices&outputs=product&memory=16MiB&timeout_ms=5000";
    let matmul = [("wasm", functions::wasm("matmul")), ("mpk", functions::native("matmul"))];
    for (engine, image) in &matmul {
        register(&node, &format!("matmul_{engine}"), engine, q, image);
    }
    register(&node, "matmul_paging", "paging", q, &matmul[1].1);
    let touch = functions::hostile_native("touch_all_memory");
    for engine in ["mpk", "paging"] {
        register(&node, &format!("touch_{engine}"), engine, "inputs=in&outputs=out&memory=4MiB", &touch);
    }
    let m = pappus_tests::sets::matrix;
    let body = [m(2, 2, &[1.0, 2.0, 3.0, 4.0]), m(2, 2, &[5.0, 6.0, 7.0, 8.0])].concat();
    let raw = |name: &str| {
        let headers = [("Accept", "application/octet-stream")];
        let r = send(&node, "POST", &format!("/v1/invoke/matmul_{name}"), &headers, &body);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.body, m(2, 2, &[19.0, 22.0, 43.0, 50.0]), "{name}: raw matmul");
    };
    for engine in ["wasm", "mpk", "paging"] {
        raw(engine);
    }
    let start = mmu_counts(&node);
    for _ in 0..3 {
        raw("wasm");
    }
    let after_wasm = mmu_counts(&node);
    assert_eq!(after_wasm[..3], start[..3], "wasm runs switched address spaces or PKRU, or faulted");
    for engine in ["mpk", "paging"] {
        let before = mmu_counts(&node);
        for _ in 0..3 {
            raw(engine);
        }
        let after = mmu_counts(&node);
        // One CPU. A paging run enters its space and leaves it: two CR3 writes. An MPK run
        // leaves the shared space loaded (resident), and the next one writes CR3 only if a user
        // page was unmapped since (here only the first, after the paging runs: the function's
        // image stays mapped in its slot, and it touches no page but the two kept ones). PKRU
        // is written only when it changes: once, for the first run of the three.
        let cr3_writes = if engine == "mpk" { 1 } else { 6 };
        assert_eq!(after[0] - before[0], cr3_writes, "{engine}: CR3 writes {before:?} -> {after:?}");
        assert_eq!(after[1] - before[1], 1, "{engine}: PKRU writes {before:?} -> {after:?}");
        assert_eq!(after[2], before[2], "{engine}: ring-3 page faults {before:?} -> {after:?}");
        let r = send(&node, "POST", &format!("/v1/invoke/touch_{engine}"), &[], b"x");
        assert_eq!(r.status, 200, "touch_{engine}: {}", r.text());
        let touched = mmu_counts(&node);
        // Its heap (4 MiB less its image and the 1 MiB stack) and most of its stack: hundreds
        // of pages, each a fault but the two mapped before the run.
        assert!(touched[2] - after[2] >= 500, "{engine}: ring-3 page faults {after:?} -> {touched:?}");
        // Those pages were unmapped after it: the next MPK run writes CR3 again (stale TLB
        // entries for them must go before ring 3 runs), a paging run as always.
        raw(engine);
        let next = mmu_counts(&node);
        let cr3_writes = if engine == "mpk" { 1 } else { 2 };
        assert_eq!(next[0] - touched[0], cr3_writes, "{engine}: CR3 writes after unmapping {touched:?} -> {next:?}");
    }
    assert_eq!(mmu_counts(&node)[3], 0, "the kernel took page faults");
}
