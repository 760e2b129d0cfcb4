/*
 * Pulled into usermode.rs by global_asm!(include_str!("usermode.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.section .text.usermode, "ax"
.global pappus_enter_user
pappus_enter_user:
/* x0 = &mut UserRegs. Keep what the AAPCS64 asks, then the stack pointer and the regs
   pointer in the per-CPU block, where the exception path finds them. */
sub sp, sp, #{keep}
stp x19, x20, [sp, #0]
stp x21, x22, [sp, #16]
stp x23, x24, [sp, #32]
stp x25, x26, [sp, #48]
stp x27, x28, [sp, #64]
stp x29, x30, [sp, #80]
stp d8, d9, [sp, #96]
stp d10, d11, [sp, #112]
stp d12, d13, [sp, #128]
stp d14, d15, [sp, #144]
mrs x1, tpidr_el1
mov x2, sp
str x2, [x1, #{ksp}]
str x0, [x1, #{uregs}]
pappus_user_eret:
/* x0 = &UserRegs; sp = the kernel's, as saved. IRQs are masked until the eret. */
ldp q0, q1, [x0, #({v} + 0)]
ldp q2, q3, [x0, #({v} + 32)]
ldp q4, q5, [x0, #({v} + 64)]
ldp q6, q7, [x0, #({v} + 96)]
ldp q8, q9, [x0, #({v} + 128)]
ldp q10, q11, [x0, #({v} + 160)]
ldp q12, q13, [x0, #({v} + 192)]
ldp q14, q15, [x0, #({v} + 224)]
ldp q16, q17, [x0, #({v} + 256)]
ldp q18, q19, [x0, #({v} + 288)]
ldp q20, q21, [x0, #({v} + 320)]
ldp q22, q23, [x0, #({v} + 352)]
ldp q24, q25, [x0, #({v} + 384)]
ldp q26, q27, [x0, #({v} + 416)]
ldp q28, q29, [x0, #({v} + 448)]
ldp q30, q31, [x0, #({v} + 480)]
ldp x1, x2, [x0, #{fpcr}]
msr fpcr, x1
msr fpsr, x2
ldp x1, x2, [x0, #{tpidr}]
msr tpidr_el0, x1
msr tpidrro_el0, x2
ldr x1, [x0, #{sp_off}]
msr sp_el0, x1
ldr x1, [x0, #{pc}]
bl morello_set_user_caps    /* ELR_EL1 = x1 (on Morello a tagged CELR_EL1: the root, or a
                               `cheri` sandbox's PCC, with its DDC); clobbers x2-x6, x30 */
ldr x2, [x0, #({pc} + 8)]
and x2, x2, #0xf0000000     /* NZCV only: EL0t, DAIF clear (IRQs on), nothing else */
msr spsr_el1, x2
ldp x2, x3, [x0, #16]
ldp x4, x5, [x0, #32]
ldp x6, x7, [x0, #48]
ldp x8, x9, [x0, #64]
ldp x10, x11, [x0, #80]
ldp x12, x13, [x0, #96]
ldp x14, x15, [x0, #112]
ldp x16, x17, [x0, #128]
ldp x18, x19, [x0, #144]
ldp x20, x21, [x0, #160]
ldp x22, x23, [x0, #176]
ldp x24, x25, [x0, #192]
ldp x26, x27, [x0, #208]
ldp x28, x29, [x0, #224]
ldr x30, [x0, #240]
ldp x0, x1, [x0, #0]
eret

/* From an EL0 vector (kind in x0; the sandbox's x0/x1 pushed on SP_EL1, which is the
   kernel's saved sp less 16): save the whole EL0 context into UserRegs, then ask Rust. */
.global pappus_trap_user
pappus_trap_user:
mrs x1, tpidr_el1
ldr x1, [x1, #{uregs}]
stp x2, x3, [x1, #16]
stp x4, x5, [x1, #32]
stp x6, x7, [x1, #48]
stp x8, x9, [x1, #64]
stp x10, x11, [x1, #80]
stp x12, x13, [x1, #96]
stp x14, x15, [x1, #112]
stp x16, x17, [x1, #128]
stp x18, x19, [x1, #144]
stp x20, x21, [x1, #160]
stp x22, x23, [x1, #176]
stp x24, x25, [x1, #192]
stp x26, x27, [x1, #208]
stp x28, x29, [x1, #224]
str x30, [x1, #240]
ldp x2, x3, [sp], #16
stp x2, x3, [x1, #0]
mrs x2, sp_el0
ldr x3, [x1, #({cheri} + 32)]
cbz x3, 1f
mrs x2, s3_7_c4_c1_3        /* a `cheri` sandbox runs on RCSP_EL0 (Restricted): its value */
1:  str x2, [x1, #{sp_off}]
mrs x2, elr_el1
mrs x3, spsr_el1
stp x2, x3, [x1, #{pc}]
mrs x2, tpidr_el0
ldr x3, [x1, #({cheri} + 32)]
cbz x3, 2f
mrs x2, s3_3_c13_c0_4       /* a `cheri` sandbox's TPIDR_EL0 is RTPIDR_EL0 (Restricted) */
2:  mrs x3, tpidrro_el0
stp x2, x3, [x1, #{tpidr}]
mrs x2, fpcr
mrs x3, fpsr
stp x2, x3, [x1, #{fpcr}]
stp q0, q1, [x1, #({v} + 0)]
stp q2, q3, [x1, #({v} + 32)]
stp q4, q5, [x1, #({v} + 64)]
stp q6, q7, [x1, #({v} + 96)]
stp q8, q9, [x1, #({v} + 128)]
stp q10, q11, [x1, #({v} + 160)]
stp q12, q13, [x1, #({v} + 192)]
stp q14, q15, [x1, #({v} + 224)]
stp q16, q17, [x1, #({v} + 256)]
stp q18, q19, [x1, #({v} + 288)]
stp q20, q21, [x1, #({v} + 320)]
stp q22, q23, [x1, #({v} + 352)]
stp q24, q25, [x1, #({v} + 384)]
stp q26, q27, [x1, #({v} + 416)]
stp q28, q29, [x1, #({v} + 448)]
stp q30, q31, [x1, #({v} + 480)]
msr fpcr, xzr               /* the kernel's own FP environment */
mrs x1, esr_el1
mrs x2, far_el1
bl {user_trap}
mrs x1, tpidr_el1
ldr x2, [x1, #{ksp}]
mov sp, x2
cbnz x0, pappus_user_leave
ldr x0, [x1, #{uregs}]
b pappus_user_eret

pappus_user_leave:
/* x0 = how it ended. Nothing of the sandbox stays in a register. */
bl morello_clear_user_caps  /* clobbers x2, x30 (both restored or zeroed below) */
msr tpidr_el0, xzr
msr tpidrro_el0, xzr
msr sp_el0, xzr
msr fpcr, xzr
msr fpsr, xzr
movi v0.2d, #0
movi v1.2d, #0
movi v2.2d, #0
movi v3.2d, #0
movi v4.2d, #0
movi v5.2d, #0
movi v6.2d, #0
movi v7.2d, #0
movi v8.2d, #0
movi v9.2d, #0
movi v10.2d, #0
movi v11.2d, #0
movi v12.2d, #0
movi v13.2d, #0
movi v14.2d, #0
movi v15.2d, #0
movi v16.2d, #0
movi v17.2d, #0
movi v18.2d, #0
movi v19.2d, #0
movi v20.2d, #0
movi v21.2d, #0
movi v22.2d, #0
movi v23.2d, #0
movi v24.2d, #0
movi v25.2d, #0
movi v26.2d, #0
movi v27.2d, #0
movi v28.2d, #0
movi v29.2d, #0
movi v30.2d, #0
movi v31.2d, #0
mov x1, xzr
mov x2, xzr
mov x3, xzr
mov x4, xzr
mov x5, xzr
mov x6, xzr
mov x7, xzr
mov x8, xzr
mov x9, xzr
mov x10, xzr
mov x11, xzr
mov x12, xzr
mov x13, xzr
mov x14, xzr
mov x15, xzr
mov x16, xzr
mov x17, xzr
mov x18, xzr
ldp x19, x20, [sp, #0]
ldp x21, x22, [sp, #16]
ldp x23, x24, [sp, #32]
ldp x25, x26, [sp, #48]
ldp x27, x28, [sp, #64]
ldp x29, x30, [sp, #80]
ldp d8, d9, [sp, #96]
ldp d10, d11, [sp, #112]
ldp d12, d13, [sp, #128]
ldp d14, d15, [sp, #144]
add sp, sp, #{keep}
ret
