//! The `cheri` engine on Arm Morello (the `aarch64-morello` profile, CTSRD-CHERI's emulator):
//! the aarch64 hostile suite (the same cases as the `paging` engine's, tests/native-hostile)
//! registered with `engine=cheri`. Every sandbox lives in one shared address space, so what
//! stops a case there is its capabilities: an access or a jump outside its DDC or PCC is a
//! capability bounds fault before translation. Each case is followed by a neighbour's run and a
//! check that the node's memory is as it was.

#[path = "common/native_harness.rs"]
mod native_harness;

macro_rules! hostile_tests_cheri {
    ($($name:ident: $case:literal => $status:literal, $code:literal, $cause:literal;)*) => {
        $(#[test]
        fn $name() {
            native_harness::hostile_on(concat!("cheri_hostile_", stringify!($name)), pappus_tests::Arch::Aarch64, "morello", "cheri", $case, $status, $code, $cause);
        })*
    };
}

hostile_tests_cheri! {
    read_another_sandbox: "read_other" => 500, "function_trap", "capability bounds fault, read";
    write_another_sandbox: "write_other" => 500, "function_trap", "capability bounds fault, write";
    read_kernel_memory: "read_kernel" => 500, "function_trap", "address kernel address: capability bounds fault, read";
    write_kernel_memory: "write_kernel" => 500, "function_trap", "capability bounds fault, write";
    unaligned_read_of_kernel_memory: "unaligned_kernel" => 500, "function_trap", "address kernel address: capability bounds fault, read";
    // A jump out of PCC's bounds to a page EL0 may not execute: the emulator reports the page's
    // permission fault (seen: ESR 0x8200000f) ahead of the bounds; the self-test `cheri.bounds`
    // jumps past PCC onto an EL0-executable page, which only the bounds stop.
    jump_into_kernel_text: "jump_kernel" => 500, "function_trap", "permission fault at level 3, instruction fetch";
    forged_code_in_data_is_not_executable: "forged_code" => 500, "function_trap", "permission fault at level 3, instruction fetch";
    writing_its_own_code: "write_own_code" => 500, "function_trap", "permission fault at level 3, write";
    svc_with_another_number: "syscall_other" => 500, "function_trap", "syscall number 1";
    svc_with_another_immediate: "svc_other_immediate" => 500, "function_trap", "invalid_instruction";
    brk: "brk" => 500, "function_trap", "BRK instruction";
    mrs_of_an_el1_register: "mrs_sctlr" => 500, "function_trap", "undefined instruction";
    msr_ttbr0: "msr_ttbr0" => 500, "function_trap", "undefined instruction";
    msr_vbar: "msr_vbar" => 500, "function_trap", "undefined instruction";
    msr_daif: "msr_daif" => 500, "function_trap", "ESR class 0x";
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
    widening_its_bounds_clears_the_tag: "cheri_widen_bounds" => 500, "function_trap", "capability tag fault, read";
    an_integer_is_no_capability: "cheri_forge_from_integer" => 500, "function_trap", "capability tag fault, read";
    msr_cvbar_from_el0: "cheri_msr_cvbar" => 500, "function_trap", "undefined instruction";
    ddc_rewritten_with_an_integer: "cheri_msr_ddc_integer" => 500, "function_trap", "capability tag fault, read";
    a_sealed_capability_is_no_data_pointer: "cheri_seal_sentry" => 500, "function_trap", "capability seal fault, read";
}

/// A neighbour's inputs while it runs on the other compute core (`-smp 3`: the I/O core and two
/// compute cores): `spinner` loops with a secret as its input, and `thief`, started meanwhile,
/// reads the system data block in the slot next to its own (the spinner's: two live sandboxes,
/// slots 1 and 2). The shared tables map it at EL0; the thief's DDC ends at its own slot, so the
/// read is a capability bounds fault, the node serves, and the spinner is still running then
/// (it ends later by its own budget).
#[test]
fn reading_a_live_neighbour_on_the_other_core() {
    use native_harness::{TENANT, invoke_raw, register};
    use pappus_tests::sets::item;
    let test = "cheri_live_neighbour";
    let Some(node) = pappus_tests::node::boot_profile(test, pappus_qemu::MORELLO_AARCH64, &[TENANT], Some(3)) else {
        return;
    };
    let arch = pappus_tests::Arch::Aarch64;
    let spin = pappus_tests::functions::hostile_native_for("infinite_loop", arch);
    let thief = pappus_tests::functions::hostile_native_for("read_live_neighbour", arch);
    register(&node, "spinner", "cheri", "inputs=in&outputs=out&memory=4MiB&timeout_ms=8000", &spin);
    register(&node, "thief", "cheri", "inputs=in&outputs=out&memory=4MiB&timeout_ms=5000", &thief);
    std::thread::scope(|scope| {
        let spinner = scope.spawn(|| {
            invoke_raw(&node, "spinner", &serde_json::json!({"in": [item("secret", b"the neighbour's secret")]}))
        });
        // Until the spinner runs: its first 10 ms turn ends and it is queued again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while node.metric("pappus_preemptions_total") == 0 {
            assert!(std::time::Instant::now() < deadline, "the spinner never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let r = invoke_raw(&node, "thief", &serde_json::json!({"in": []}));
        assert_eq!(r.status, 500, "{}", r.text());
        assert!(
            r.text().contains("function_trap") && r.text().contains("capability bounds fault, read"),
            "{}",
            r.text()
        );
        assert!(!spinner.is_finished(), "the spinner was to be running while the thief read");
        let r = spinner.join().expect("the spinner's client");
        assert_eq!(r.status, 504, "the spinner ends by its budget: {}", r.text());
    });
    assert!(node.call("GET", "/healthz", b"").status == 200);
}

/// A 96 KiB output handed to the next function of a composition: its pages mapped into the
/// reader's slot (inside its DDC, read-only by the tables), as under `paging` and `mpk`.
#[test]
fn mapped_inputs_under_cheri() {
    let test = "cheri_mapped_inputs";
    let tenants = [native_harness::TENANT];
    let Some(node) = pappus_tests::node::boot_profile(test, pappus_qemu::MORELLO_AARCH64, &tenants, None) else {
        return;
    };
    native_harness::mapped_inputs(&node, pappus_tests::Arch::Aarch64, "cheri");
}
