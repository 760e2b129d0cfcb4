/*
 * Pulled into traps.rs by global_asm!(include_str!("traps.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.macro VPLAIN kind
.p2align 7
sub sp, sp, #{frame}
stp x0, x1, [sp]
mov x0, #\kind
b trap_common
.endm

/* From EL0: SP_EL1 is the kernel's stack as `pappus_enter_user` left it (usermode.rs). */
.macro VUSER kind
.p2align 7
stp x0, x1, [sp, #-16]!
mov x0, #\kind
b pappus_trap_user
.endm

.macro VCHECKED kind
.p2align 7
msr sp_el0, x0
mov x0, sp
sub x0, x0, #{frame}
tbz x0, #{stack_bit}, trap_overflow
mrs x0, sp_el0
sub sp, sp, #{frame}
stp x0, x1, [sp]
mov x0, #\kind
b trap_common
.endm

.section .text.traps, "ax"
.p2align 11
.global exception_vectors
exception_vectors:
VPLAIN 0
VPLAIN 1
VPLAIN 2
VPLAIN 3
VCHECKED 4
VCHECKED 5
VCHECKED 6
VCHECKED 7
VUSER 8
VUSER 9
VUSER 10
VUSER 11
VPLAIN 12
VPLAIN 13
VPLAIN 14
VPLAIN 15

trap_overflow:
mov x0, sp
msr sp_el0, x0              /* the overflowed sp, for the report (x0 itself is lost) */
and x0, x0, #{block_mask}
add x0, x0, #({emergency_top} >> 12), lsl #12
mov sp, x0
sub sp, sp, #{frame}
stp xzr, x1, [sp]
mov x0, #{kind_overflow}

trap_common:
stp x2, x3, [sp, #16]
stp x4, x5, [sp, #32]
stp x6, x7, [sp, #48]
stp x8, x9, [sp, #64]
stp x10, x11, [sp, #80]
stp x12, x13, [sp, #96]
stp x14, x15, [sp, #112]
stp x16, x17, [sp, #128]
stp x18, x19, [sp, #144]
stp x20, x21, [sp, #160]
stp x22, x23, [sp, #176]
stp x24, x25, [sp, #192]
stp x26, x27, [sp, #208]
stp x28, x29, [sp, #224]
add x1, sp, #{frame}
stp x30, x1, [sp, #240]
mrs x1, elr_el1
mrs x2, spsr_el1
stp x1, x2, [sp, #256]
mrs x1, esr_el1
mrs x2, far_el1
stp x1, x2, [sp, #272]
str x0, [sp, #288]
mov x0, sp
bl {dispatch}
ldp x1, x2, [sp, #256]
msr spsr_el1, x2
bl morello_set_elr          /* ELR_EL1 = x1; on Morello through CELR_EL1, kept tagged */
ldp x0, x1, [sp]
ldp x2, x3, [sp, #16]
ldp x4, x5, [sp, #32]
ldp x6, x7, [sp, #48]
ldp x8, x9, [sp, #64]
ldp x10, x11, [sp, #80]
ldp x12, x13, [sp, #96]
ldp x14, x15, [sp, #112]
ldp x16, x17, [sp, #128]
ldp x18, x19, [sp, #144]
ldp x20, x21, [sp, #160]
ldp x22, x23, [sp, #176]
ldp x24, x25, [sp, #192]
ldp x26, x27, [sp, #208]
ldp x28, x29, [sp, #224]
ldr x30, [sp, #240]
add sp, sp, #{frame}
eret

/* Probes for the self-tests: each has one instruction that may fault and a resume point. */
.global probe_read, probe_read_insn, probe_read_resume
probe_read:
probe_read_insn:
ldr x0, [x0]
probe_read_resume:
ret
.global probe_write, probe_write_insn, probe_write_resume
probe_write:
probe_write_insn:
str x1, [x0]
probe_write_resume:
ret
.global probe_udf, probe_udf_insn, probe_udf_resume
probe_udf:
probe_udf_insn:
udf #0
probe_udf_resume:
ret
