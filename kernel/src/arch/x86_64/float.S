/*
 * The soft-float ABI's arithmetic helpers, done by SSE2 (kernel/src/arch/x86_64/float.rs).
 * Arguments and results travel in integer registers (f64 in rdi, rsi -> rax; f32 in edi,
 * esi -> eax); XMM0 and XMM1 are scratch. Each is correctly rounded under MXCSR's
 * round-to-nearest, as compiler-builtins' software routines are.
 */
    .text

    .macro binary64 name, op
    .globl \name
    .type \name, @function
    .p2align 4
\name:
    movq xmm0, rdi
    movq xmm1, rsi
    \op xmm0, xmm1
    movq rax, xmm0
    ret
    .size \name, . - \name
    .endm

    .macro binary32 name, op
    .globl \name
    .type \name, @function
    .p2align 4
\name:
    movd xmm0, edi
    movd xmm1, esi
    \op xmm0, xmm1
    movd eax, xmm0
    ret
    .size \name, . - \name
    .endm

    binary64 __adddf3, addsd
    binary64 __subdf3, subsd
    binary64 __muldf3, mulsd
    binary64 __divdf3, divsd
    binary32 __addsf3, addss
    binary32 __subsf3, subss
    binary32 __mulsf3, mulss
    binary32 __divsf3, divss
