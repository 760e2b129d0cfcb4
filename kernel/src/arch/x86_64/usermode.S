/*
 * Pulled into usermode.rs by global_asm!(include_str!("usermode.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.section .text.usermode, "ax"
.global pappus_enter_user
pappus_enter_user:
/* rdi = &mut UserRegs. Save what the SysV ABI asks us to keep, then the flags (interrupt
   state) and the regs pointer; the exit paths find all of it at gs:[USER_KERNEL_RSP]. */
push rbp
push rbx
push r12
push r13
push r14
push r15
pushfq
push rdi
mov gs:[{krsp}], rsp
cli
push {user_ss}
push qword ptr [rdi + {rsp_off}]
push qword ptr [rdi + {rflags_off}] /* sanitised by `enter_user`: IF on, no IOPL */
push {user_cs}
push qword ptr [rdi + {rip_off}]
mov rax, [rdi + {rax_off}]
mov rbx, [rdi + {rbx_off}]
mov rcx, [rdi + {rcx_off}]
mov rdx, [rdi + {rdx_off}]
mov rsi, [rdi + {rsi_off}]
mov rbp, [rdi + {rbp_off}]
mov r8, [rdi + {r8_off}]
mov r9, [rdi + {r9_off}]
mov r10, [rdi + {r10_off}]
mov r11, [rdi + {r11_off}]
mov r12, [rdi + {r12_off}]
mov r13, [rdi + {r13_off}]
mov r14, [rdi + {r14_off}]
mov r15, [rdi + {r15_off}]
mov rdi, [rdi + {rdi_off}]
swapgs
iretq

/* `syscall` from ring 3: rcx = user rip, r11 = user rflags, FMASK cleared IF/AC/DF/TF. */
.global pappus_syscall_entry
pappus_syscall_entry:
swapgs
mov rsp, gs:[{krsp}]
mov r8, [rsp]
mov [r8 + {out_rax}], rax
mov [r8 + {out_rdi}], rdi
mov [r8 + {out_rsi}], rsi
mov [r8 + {out_rdx}], rdx
mov [r8 + {out_rip}], rcx
mov eax, {exit_syscall}
jmp pappus_user_return

/* From a trap handler on the ring-3 trap stack (kernel GS already swapped in): drop that
   stack and return from `pappus_enter_user` with rdi as the result. */
.global pappus_end_sandbox
pappus_end_sandbox:
mov rsp, gs:[{krsp}]
mov rax, rdi
pappus_user_return:
add rsp, 8                  /* the regs pointer */
popfq
pop r15
pop r14
pop r13
pop r12
pop rbx
pop rbp
xor ecx, ecx
xor edx, edx
xor esi, esi
xor edi, edi
xor r8d, r8d
xor r9d, r9d
xor r10d, r10d
xor r11d, r11d
ret
