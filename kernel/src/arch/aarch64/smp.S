/*
 * Pulled into smp.rs by global_asm!(include_str!("smp.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.section .text.ap_entry, "ax"
.global ap_entry
ap_entry:
mov x19, x0                 /* this CPU's index (PSCI's context id) */
bl drop_to_el1
msr daifset, #0xf
mov x1, #(3 << 20)          /* CPACR_EL1.FPEN: no FP/SIMD traps */
msr cpacr_el1, x1
isb

/* The kernel's tables with the boot CPU's settings (LAUNCH, read uncached). */
adrp x20, {launch}
add x20, x20, :lo12:{launch}
ldr x1, ={mair}
msr mair_el1, x1
ldr x1, [x20, #8]           /* tcr */
msr tcr_el1, x1
ldr x1, [x20]               /* ttbr0 */
msr ttbr0_el1, x1
isb
tlbi vmalle1
dsb nsh
isb
ldr x1, [x20, #16]          /* sctlr */
msr sctlr_el1, x1
isb
ic iallu
dsb nsh
isb

adrp x1, {vectors}
add x1, x1, :lo12:{vectors}
msr vbar_el1, x1
bl morello_cpu_init         /* Morello: capabilities on, CVBAR as a capability */
ldr x1, [x20, #24]          /* stack_top */
mov sp, x1
mov x29, xzr
mov x30, xzr
mov x0, x19
bl {main}
2:  wfi
b 2b
.ltorg
