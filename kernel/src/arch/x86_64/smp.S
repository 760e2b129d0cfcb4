/*
 * Pulled into smp.rs by global_asm!(include_str!("smp.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
/* The AP trampoline: copied to TRAMPOLINE and run there, so every address in it is
   TRAMPOLINE + (label - ap_trampoline_start). It sits in .rodata: it is never run in place.
   AT&T syntax for the mode switches' sake; far jumps are spelled as bytes. */
.section .rodata.ap_trampoline, "a"
.p2align 4                  /* so the copy's fields keep their alignment */
.global ap_trampoline_start, ap_trampoline_end
.global ap_tramp_stage, ap_tramp_cr3, ap_tramp_kernel_cr3, ap_tramp_stack

.code16
ap_trampoline_start:
cli
cld
movw %cs, %ax               /* 0x0800: addresses below are offsets into the page */
movw %ax, %ds
movl $1, ap_tramp_stage - ap_trampoline_start
lgdtl ap_tramp_gdtr - ap_trampoline_start
movl %cr0, %eax
orl $1, %eax                /* PE */
movl %eax, %cr0
.byte 0x66, 0xea            /* ljmpl $0x08, $ap_tramp_32 */
.long {tramp} + ap_tramp_32 - ap_trampoline_start
.word 0x08

.code32
ap_tramp_32:
movw $0x10, %ax
movw %ax, %ds
movw %ax, %es
movw %ax, %ss
movl %cr4, %eax
orl $((1 << 5) | (1 << 7)), %eax        /* PAE, PGE */
movl %eax, %cr4
movl {tramp} + ap_tramp_cr3 - ap_trampoline_start, %eax
movl %eax, %cr3
movl $0xc0000080, %ecx                  /* EFER */
rdmsr
orl $((1 << 8) | (1 << 11)), %eax       /* LME, NXE */
wrmsr
movl %cr0, %eax
orl $((1 << 31) | (1 << 16)), %eax      /* PG, WP */
movl %eax, %cr0
.byte 0xea                  /* ljmp $0x18, $ap_tramp_64 */
.long {tramp} + ap_tramp_64 - ap_trampoline_start
.word 0x18

.code64
ap_tramp_64:
movl $2, {tramp} + ap_tramp_stage - ap_trampoline_start
movq {tramp} + ap_tramp_stack - ap_trampoline_start, %rsp
movq {tramp} + ap_tramp_kernel_cr3 - ap_trampoline_start, %rax
movabsq ${long_entry}, %rcx
jmpq *%rcx

.p2align 3
ap_tramp_gdt:
.quad 0
.quad 0x00cf9a000000ffff    /* 0x08: 32-bit code, flat */
.quad 0x00cf92000000ffff    /* 0x10: data, flat */
.quad 0x00af9a000000ffff    /* 0x18: 64-bit code */
ap_tramp_gdtr:
.word ap_tramp_gdtr - ap_tramp_gdt - 1
.long {tramp} + ap_tramp_gdt - ap_trampoline_start
.p2align 3
ap_tramp_stage:                 /* the AP's progress: 1 real mode, 2 long mode (for the log) */
.long 0
ap_tramp_cr3:                   /* TEMP_PML4 */
.long 0
ap_tramp_kernel_cr3:
.quad 0
ap_tramp_stack:                 /* top of this AP's kernel stack */
.quad 0
ap_trampoline_end:
.code64
