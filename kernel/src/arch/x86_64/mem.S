/*
 * memcpy, memmove and memset for the kernel (kernel/src/arch/x86_64/mem.rs): general-purpose
 * registers only, so they are safe anywhere, trap handlers included. Up to 32 bytes they take
 * no loop: every load first, then overlapping 8-, 4- or 1-byte stores; above, `rep movsq` /
 * `rep stosq` for the whole quadwords and one overlapping quadword for the rest. DF is clear in
 * all kernel code (the ABI; the trap entry clears it, FMASK clears it on `syscall`).
 */
    .text

    .globl memcpy
    .type memcpy, @function
    .p2align 4
memcpy:
    mov rax, rdi
    cmp rdx, 16
    ja 20f
    cmp rdx, 8
    jb 10f
    mov rcx, [rsi]                  /* 8..16 */
    mov r8, [rsi + rdx - 8]
    mov [rdi], rcx
    mov [rdi + rdx - 8], r8
    ret
10: cmp rdx, 4
    jb 11f
    mov ecx, [rsi]                  /* 4..7 */
    mov r8d, [rsi + rdx - 4]
    mov [rdi], ecx
    mov [rdi + rdx - 4], r8d
    ret
11: test rdx, rdx
    jz 12f
    mov r9, rdx                     /* 1..3: the first, the middle and the last byte */
    shr r9, 1
    movzx ecx, byte ptr [rsi]
    movzx r8d, byte ptr [rsi + r9]
    movzx r10d, byte ptr [rsi + rdx - 1]
    mov [rdi], cl
    mov [rdi + r9], r8b
    mov [rdi + rdx - 1], r10b
12: ret
20: cmp rdx, 32
    ja 30f
    mov rcx, [rsi]                  /* 17..32: the first 16 and the last 16 */
    mov r8, [rsi + 8]
    mov r9, [rsi + rdx - 16]
    mov r10, [rsi + rdx - 8]
    mov [rdi], rcx
    mov [rdi + 8], r8
    mov [rdi + rdx - 16], r9
    mov [rdi + rdx - 8], r10
    ret
30: mov r8, [rsi + rdx - 8]         /* above 32: the last quadword, then the whole ones */
    lea r9, [rdi + rdx - 8]
    mov rcx, rdx
    shr rcx, 3
    rep movsq
    mov [r9], r8
    ret
    .size memcpy, . - memcpy

    .globl memmove
    .type memmove, @function
    .p2align 4
memmove:
    /* Up to 32 bytes memcpy loads everything before it stores: overlap is harmless. Above,
       forwards unless the destination starts inside the source. */
    cmp rdx, 32
    jbe memcpy
    mov rcx, rdi
    sub rcx, rsi
    cmp rcx, rdx
    jae memcpy                      /* dest < src, or dest at or past src + n: forwards */
    mov rax, rdi                    /* backwards: the first quadword saved, the whole ones from the end */
    mov r8, [rsi]
    mov rcx, rdx
    shr rcx, 3
    lea rsi, [rsi + rdx - 8]
    lea rdi, [rdi + rdx - 8]
    std
    rep movsq
    cld
    mov [rax], r8
    ret
    .size memmove, . - memmove

    .globl memset
    .type memset, @function
    .p2align 4
memset:
    movzx eax, sil
    mov rcx, 0x0101010101010101
    imul rcx, rax                   /* the byte in every lane */
    mov rax, rdi
    cmp rdx, 16
    ja 20f
    cmp rdx, 8
    jb 10f
    mov [rdi], rcx                  /* 8..16 */
    mov [rdi + rdx - 8], rcx
    ret
10: cmp rdx, 4
    jb 11f
    mov [rdi], ecx                  /* 4..7 */
    mov [rdi + rdx - 4], ecx
    ret
11: test rdx, rdx
    jz 12f
    mov r9, rdx                     /* 1..3 */
    shr r9, 1
    mov [rdi], cl
    mov [rdi + r9], cl
    mov [rdi + rdx - 1], cl
12: ret
20: cmp rdx, 32
    ja 30f
    mov [rdi], rcx                  /* 17..32 */
    mov [rdi + 8], rcx
    mov [rdi + rdx - 16], rcx
    mov [rdi + rdx - 8], rcx
    ret
30: mov [rdi + rdx - 8], rcx        /* above 32: the last quadword, then the whole ones */
    mov r8, rdi
    mov rax, rcx
    mov rcx, rdx
    shr rcx, 3
    rep stosq
    mov rax, r8
    ret
    .size memset, . - memset
