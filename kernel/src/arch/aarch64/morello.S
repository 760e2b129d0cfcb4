/*
 * Pulled into morello.rs by global_asm!(include_str!("morello.S")), whose operands the
 * placeholders in braces name (the Morello instruction words of `cheri::insn`, emitted with
 * `.inst`: the toolchain does not assemble them).
 */
.section .text.morello, "ax"

/* x1 = the exception vector table. Clobbers x2 (and c2). On a Morello CPU: capabilities on
   at EL1 and EL0, and the vector base installed as a capability derived from the root. */
.global morello_cpu_init
morello_cpu_init:
mrs x2, id_aa64pfr1_el1
ubfx x2, x2, #20, #4
cbz x2, 1f
mrs x2, cpacr_el1
orr x2, x2, #(3 << 18)
msr cpacr_el1, x2
isb
.inst {mrs_c2_ddc}
.inst {scvalue_c2_c2_x1}
.inst {msr_cvbar_el1_c2}
isb
mov x2, xzr
1:  ret

/* x1 = the address an exception returns to. Clobbers x2 (and c2). A 64-bit write to ELR_EL1
   makes CELR_EL1 an untagged, null-derived capability, and `eret` would then fetch through
   an untagged PCC (a tag fault). On a Morello CPU the return capability is the one
   exception entry saved (the interrupted PCC) with its value moved to x1; elsewhere a
   plain ELR_EL1. Called by the trap return path (traps.rs). */
.global morello_set_elr
morello_set_elr:
mrs x2, id_aa64pfr1_el1
ubfx x2, x2, #20, #4
cbz x2, 1f
.inst {mrs_c2_celr_el1}
.inst {scvalue_c2_c2_x1}
.inst {msr_celr_el1_c2}
mov x2, xzr
ret
1:  msr elr_el1, x1
ret

/* x1 = the EL0 address an `eret` to a sandbox goes to. Clobbers x2 (and c2). On a Morello
   CPU CELR_EL1 becomes the kernel's root capability (DDC_EL1) with its value moved to x1:
   CELR_EL1 may hold anything when no exception came before (and a 64-bit ELR_EL1 write
   would leave it untagged: the sandbox's first fetch would tag-fault). The `paging` engine
   confines a sandbox by its translation tables, which every EL0 access still goes through
   (EL1-only kernel pages, its own ASID), not by the PCC's bounds. Elsewhere a plain
   ELR_EL1. Called by the EL0 entry (usermode.rs). */
.global morello_set_user_elr
morello_set_user_elr:
mrs x2, id_aa64pfr1_el1
ubfx x2, x2, #20, #4
cbz x2, 1f
.inst {mrs_c2_ddc}
.inst {scvalue_c2_c2_x1}
.inst {msr_celr_el1_c2}
mov x2, xzr
ret
1:  msr elr_el1, x1
ret

/* x0 = &UserRegs, x1 = the EL0 address an `eret` to a sandbox goes to. Clobbers x2..x6
   (and c2). When the UserRegs' `cheri` block is on (the `cheri` engine): CELR_EL1 = the
   sandbox's PCC (derived from the root: exact bounds = its text, every permission but
   Load, Execute and Global cleared, so no Executive: EL0 runs in Restricted mode), value
   x1; RDDC_EL0 = its DDC (bounds = its data region, Load, Store and Global only); RCSP_EL0
   = the same data capability with the value of its stack pointer; RTPIDR_EL0 (what
   Restricted mode reads as TPIDR_EL0) = the saved TPIDR_EL0. Bounds that are not
   exactly representable leave an untagged capability: the first fetch or access is then a
   tag fault, never a wider reach (the engine checks representability before). Otherwise
   (the `paging` engine, or no Morello) the Restricted bank is nulled and `morello_set_user_elr`
   runs (the root PCC; translation tables confine). */
.global morello_set_user_caps
morello_set_user_caps:
mrs x2, id_aa64pfr1_el1
ubfx x2, x2, #20, #4
cbz x2, morello_set_user_elr
ldr x2, [x0, #({cheri} + 32)]
cbnz x2, 1f
mov x2, xzr
.inst {msr_rddc_el0_c2}
.inst {msr_rsp_el0_c2}
msr s3_3_c13_c0_4, xzr      /* RTPIDR_EL0 */
b morello_set_user_elr
1:  ldr x3, [x0, #{cheri}]
ldr x4, [x0, #({cheri} + 8)]
mov x5, #{code_clear_lo}
movk x5, #{code_clear_hi}, lsl #16
.inst {mrs_c2_ddc}
.inst {scvalue_c2_c2_x3}
.inst {scbndse_c2_c2_x4}
.inst {clrperm_c2_c2_x5}
.inst {scvalue_c2_c2_x1}
.inst {msr_celr_el1_c2}
ldr x3, [x0, #({cheri} + 16)]
ldr x4, [x0, #({cheri} + 24)]
mov x5, #{data_clear_lo}
movk x5, #{data_clear_hi}, lsl #16
.inst {mrs_c2_ddc}
.inst {scvalue_c2_c2_x3}
.inst {scbndse_c2_c2_x4}
.inst {clrperm_c2_c2_x5}
.inst {msr_rddc_el0_c2}
ldr x6, [x0, #{sp_off}]
.inst {scvalue_c2_c2_x6}
.inst {msr_rsp_el0_c2}
ldr x6, [x0, #{tpidr}]
msr s3_3_c13_c0_4, x6       /* RTPIDR_EL0: Restricted mode's TPIDR_EL0, an integer */
mov x2, xzr
ret

/* Nulls the Restricted bank's DDC, SP and thread pointer (what a `cheri` sandbox ran with) on the way out of
   every EL0 run, so no capability of it is left in a register. Clobbers x2 (and c2). */
.global morello_clear_user_caps
morello_clear_user_caps:
mrs x2, id_aa64pfr1_el1
ubfx x2, x2, #20, #4
cbz x2, 1f
mov x2, xzr
.inst {msr_rddc_el0_c2}
.inst {msr_rsp_el0_c2}
msr s3_3_c13_c0_4, xzr      /* RTPIDR_EL0 */
1:  ret

/* Capability probes for the self-tests. x0 = base, x1 = length, x2 = permissions to clear,
   x3 = offset of the access from base, x4 = bit 0: clear the tag, bit 1: seal (sentry).
   Derives c9 from DDC (value base, exact bounds [base, base + length), the permissions
   cleared), moves its value to base + offset, then makes one byte access through c9. A
   load returns the byte read; the access is the only instruction that may fault. */
.macro CAP_PROBE name, word
.global \name, \name\()_insn, \name\()_resume
\name:
.inst {mrs_c9_ddc}
.inst {scvalue_c9_c9_x0}
.inst {scbndse_c9_c9_x1}
.inst {clrperm_c9_c9_x2}
add x0, x0, x3
.inst {scvalue_c9_c9_x0}
tbz x4, #0, 1f
.inst {clrtag_c9_c9}
1:  tbz x4, #1, 2f
.inst {seal_c9_c9_rb}
2:  mov x0, #0x5a
\name\()_insn:
.inst \word
\name\()_resume:
mov x9, xzr
ret
.endm

CAP_PROBE morello_probe_load, {ldrb_w0_c9}
CAP_PROBE morello_probe_store, {strb_w0_c9}

/* A capability instruction alone, for the check that a CPU without Morello refuses them. */
.global morello_probe_mrs, morello_probe_mrs_insn, morello_probe_mrs_resume
morello_probe_mrs:
morello_probe_mrs_insn:
.inst {mrs_c9_ddc}
morello_probe_mrs_resume:
mov x9, xzr
ret

/* x0 = whether to clear. Fills c2..c30 with tagged copies of DDC, clears every capability
   register if x0 != 0, then returns in x0 a mask with bit n set when c<n> is still tagged
   (n = 2..30; c0 and c1 carry the probe's own results). Saves and restores x19..x30. */
.global morello_clear_probe
morello_clear_probe:
stp x29, x30, [sp, #-112]!
stp x19, x20, [sp, #16]
stp x21, x22, [sp, #32]
stp x23, x24, [sp, #48]
stp x25, x26, [sp, #64]
stp x27, x28, [sp, #80]
str x0, [sp, #96]
.inst {mrs_c2_ddc}
.irp n, 3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
.inst ({cpy_c0_c2} | \n)
.endr
ldr x0, [sp, #96]
cbz x0, 1f
/* Clear every capability register: writing an X register clears the tag (and the upper
   half) of its capability view, so this leaves no capability in c0..c30. */
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mov x\n, xzr
.endr
1:  mov x0, xzr
.irp n, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
.inst ({gctag_x1_c0} | (\n << 5))
lsl x1, x1, #\n
orr x0, x0, x1
.endr
ldp x19, x20, [sp, #16]
ldp x21, x22, [sp, #32]
ldp x23, x24, [sp, #48]
ldp x25, x26, [sp, #64]
ldp x27, x28, [sp, #80]
ldp x29, x30, [sp], #112
mov x2, xzr
mov x3, xzr
ret
