/*
 * Pulled into boot.rs by global_asm!(include_str!("boot.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
/* From EL2, if entered there, to EL1h with DAIF masked, returning to the caller (x30) at
   EL1; at EL1 already, a plain return. Clobbers x9. Every CPU's entry calls it first. */
.section .text.boot, "ax"
.global drop_to_el1
drop_to_el1:
mrs x9, CurrentEL
ubfx x9, x9, #2, #2
cmp x9, #2
b.ne 1f
mov x9, #(1 << 31)          /* HCR_EL2.RW: EL1 is AArch64 */
msr hcr_el2, x9
mov x9, #3                  /* CNTHCTL_EL2: EL1 may read the counters and timers */
msr cnthctl_el2, x9
msr cntvoff_el2, xzr
mov x9, #0x33ff             /* CPTR_EL2: no FP/SIMD traps */
msr cptr_el2, x9
msr hstr_el2, xzr
mov x9, #0x3c5              /* SPSR_EL2: EL1h, DAIF masked */
msr spsr_el2, x9
msr elr_el2, x30
eret
1:  ret

.global _start
_start:
mrs x19, cntvct_el0         /* the boot benchmark's zero, before anything else */
mov x20, x0                 /* the device tree, if the loader passed one */

/* Only the boot CPU (affinity 0.0.0.0) goes on; any other waits here for good. */
mrs x1, mpidr_el1
ldr x2, =0xff00ffffff       /* Aff3, Aff2, Aff1, Aff0 */
and x1, x1, x2
cbnz x1, 9f

/* From EL2 (QEMU's virtualization=on, some firmware): run the kernel at EL1. */
bl drop_to_el1
msr daifset, #0xf
mov x1, #(3 << 20)          /* CPACR_EL1.FPEN: no FP/SIMD traps at EL1 or EL0 */
msr cpacr_el1, x1
isb

/* The MMU, over the early identity map. */
ldr x1, ={mair}
msr mair_el1, x1
mrs x2, id_aa64mmfr0_el1
and x2, x2, #7              /* PARange -> TCR_EL1.IPS */
ldr x1, ={tcr}
bfi x1, x2, #32, #3
msr tcr_el1, x1
adrp x1, boot_l1
msr ttbr0_el1, x1
isb
tlbi vmalle1
dsb nsh
isb
mrs x1, sctlr_el1
ldr x2, ={sctlr_set}
orr x1, x1, x2
ldr x2, ={sctlr_clear}
bic x1, x1, x2
msr sctlr_el1, x1
isb
ic iallu
dsb nsh
isb

adrp x1, {vectors}
add x1, x1, :lo12:{vectors}
msr vbar_el1, x1
bl morello_cpu_init         /* Morello: capabilities on, CVBAR as a capability (x1 kept) */

ldr x1, ={stacks} + {stack_size}
mov sp, x1

adrp x1, __bss_start
add x1, x1, :lo12:__bss_start
adrp x2, __bss_end
add x2, x2, :lo12:__bss_end
2:  cmp x1, x2
b.hs 3f
stp xzr, xzr, [x1], #16
b 2b

3:  isb
mov x29, xzr
mov x30, xzr
mov x0, x20
mov x1, x19
bl {entry}

9:  wfe
b 9b
.ltorg

.section .rodata.boot_l1, "a"
.p2align 12
boot_l1:
.quad {device}                      /* 0 - 1 GiB: MMIO */
.quad (1 << 30) | {normal}          /* 1 - 4 GiB: RAM (QEMU virt puts RAM at 1 GiB) */
.quad (2 << 30) | {normal}
.quad (3 << 30) | {normal}
.fill 508, 8, 0
