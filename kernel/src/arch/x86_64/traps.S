/*
 * Pulled into traps.rs by global_asm!(include_str!("traps.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.section .text.traps, "ax"
.p2align 4
.global trap_stubs
trap_stubs:
.set vec, 0
.rept 256
.p2align 4
/* The CPU pushes an error code for 8, 10-14, 17, 21, 29, 30 (SDM Vol. 3, table 6-1). */
.if !((vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30))
push 0
.endif
push vec
jmp trap_common
.set vec, vec + 1
.endr

trap_common:
/* From user mode, switch to the kernel's GS (the per-CPU block). */
test byte ptr [rsp + 24], 3
jz 1f
swapgs
1:  push rax
push rbx
push rcx
push rdx
push rsi
push rdi
push rbp
push r8
push r9
push r10
push r11
push r12
push r13
push r14
push r15
push 2                      /* clear AC (ring 3 may set it: SMAP), DF; IF is already off */
popfq
mov rdi, rsp
mov rbx, rsp                /* callee-saved: the frame, for after the call */
and rsp, -16
call {dispatch}
mov rsp, rbx
pop r15
pop r14
pop r13
pop r12
pop r11
pop r10
pop r9
pop r8
pop rbp
pop rdi
pop rsi
pop rdx
pop rcx
pop rbx
pop rax
test byte ptr [rsp + 24], 3
jz 2f
swapgs
2:  add rsp, 16                 /* vector and error code */
iretq

/* The halt the kernel waits in: `sti; hlt` atomically, so no wake-up is lost. An interrupt
   that finds `rip` at `pappus_halt_resume` interrupted a halted CPU (the profiler counts it
   as idle). */
.global pappus_halt, pappus_halt_insn, pappus_halt_resume
pappus_halt:
sti
pappus_halt_insn:
hlt
pappus_halt_resume:
ret

/* Probes for the self-tests: each has one instruction that may fault and a resume point. */
.global probe_read, probe_read_insn, probe_read_resume
probe_read:
xor eax, eax
probe_read_insn:
mov rax, [rdi]
probe_read_resume:
ret
.global probe_write, probe_write_insn, probe_write_resume
probe_write:
probe_write_insn:
mov [rdi], rsi
probe_write_resume:
ret
.global probe_ud, probe_ud_insn, probe_ud_resume
probe_ud:
probe_ud_insn:
ud2
probe_ud_resume:
ret
