/*
 * Pulled into boot.rs by global_asm!(include_str!("boot.S")), whose operands the
 * placeholders in braces name (`const` values and `sym` addresses).
 */
.section .note.Xen, "a"
.p2align 2
.long 4                     /* name size: "Xen\0" */
.long 8                     /* descriptor size: a 64-bit entry address */
.long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
.asciz "Xen"
.p2align 2
.quad pvh_start32
.p2align 2

.section .boot.text, "awx"
.code32
.global pvh_start32
pvh_start32:
cli
cld
mov esi, ebx                /* keep the start-info pointer out of rdtsc's way */
rdtsc
mov [boot_entry_tsc], eax
mov [boot_entry_tsc + 4], edx
mov [boot_start_info], esi

/* From here on shared with multiboot_start32. A stack of our own for the far return below:
   neither protocol promises one. */
boot_start32_common:
mov esp, offset boot_stack32_top
/* PAE + PGE, then the early PML4, then EFER.LME|NXE, then paging with WP. */
mov eax, cr4
or eax, (1 << 5) | (1 << 7)
mov cr4, eax
mov eax, offset boot_pml4
mov cr3, eax
mov ecx, 0xC0000080
rdmsr
or eax, (1 << 8) | (1 << 11)
wrmsr
mov eax, cr0
or eax, (1 << 31) | (1 << 16) | 1
mov cr0, eax

lgdt [boot_gdt_ptr]
mov eax, offset boot_long_mode
push 0x08
push eax
retf

.code64
boot_long_mode:
mov ax, 0x10
mov ds, ax
mov es, ax
mov ss, ax
xor eax, eax
mov fs, ax
mov gs, ax
movabs rsp, offset {boot_stack} + {boot_stack_size}
xor ebp, ebp
mov edi, [boot_start_info]  /* zero-extends: the upper half is undefined after the switch */
mov rsi, [boot_entry_tsc]
movabs rax, offset {entry}
cmp byte ptr [boot_via_multiboot], 0
je 5f
mov edx, [boot_multiboot_magic]
movabs rax, offset {multiboot_entry}
5:  call rax
2:  hlt
jmp 2b

.section .boot.data, "aw"
.p2align 12
boot_pml4:
.quad boot_pdpt_low + 0x3           /* 0: identity, for the code above */
.fill 255, 8, 0
.quad boot_pdpt_low + 0x3           /* 256: the direct map at PHYS_OFFSET */
.fill 254, 8, 0
.quad boot_pdpt_high + 0x3          /* 511: the kernel window */
boot_pdpt_low:
.quad boot_pd + 0x0000 + 0x3
.quad boot_pd + 0x1000 + 0x3
.quad boot_pd + 0x2000 + 0x3
.quad boot_pd + 0x3000 + 0x3
.fill 508, 8, 0
boot_pdpt_high:
.fill 510, 8, 0
.quad boot_pd + 0x3                 /* -2 GiB -> physical 0 */
.quad 0
boot_pd:                                /* 2048 x 2 MiB pages = 4 GiB, present|writable|huge */
.set boot_page, 0
.rept 2048
.quad (boot_page << 21) | 0x83
.set boot_page, boot_page + 1
.endr

.p2align 3
boot_gdt:
.quad 0
.quad 0x00209A0000000000            /* 64-bit code */
.quad 0x0000920000000000            /* data */
boot_gdt_ptr:
.word boot_gdt_ptr - boot_gdt - 1
.long boot_gdt
boot_entry_tsc:
.quad 0
boot_start_info:
.long 0
boot_multiboot_magic:
.long 0
boot_via_multiboot:
.byte 0
.p2align 4
boot_stack32:
.fill 64, 1, 0
boot_stack32_top:

/* The 32-bit multiboot1 entry (bootinfo::NOTE_MULTIBOOT32), named by the header of
   pappus-kernel.mb (made by `cargo xtask image`), never by this ELF. */
.section .note.pappus, "a"
.p2align 2
.long 7                     /* name size: "Pappus\0" */
.long 8                     /* descriptor size: a 64-bit entry address */
.long {note_multiboot32}
.asciz "Pappus"
.p2align 2
.quad multiboot_start32
.p2align 2

.section .boot.text, "awx"
.code32
.global multiboot_start32
multiboot_start32:
cli
cld
mov esi, ebx                /* the multiboot information (physical) */
mov edi, eax                /* the loader's magic, checked in multiboot_entry */
rdtsc
mov ebp, eax                /* kept in registers: the check below sums .boot.data too */
mov esp, edx

/* The image check `cargo xtask image` put after the multiboot header, in the page below the
   kernel (bootinfo::multiboot::CHECK_OFFSET): a loader handed a file cut short may copy
   whatever followed it and jump here. The sum covers every word after the header page, so
   nothing in the image may be written before it. */
mov ebx, offset __kernel_phys_start - 4096 + {check_offset}
cmp dword ptr [ebx], {check_magic_lo}
jne 7f
cmp dword ptr [ebx + 4], {check_magic_hi}
jne 7f
mov ecx, [ebx + 8]          /* words, a multiple of 8: summed 8 at a time */
test ecx, 7
jnz 7f
shr ecx, 3
jz 7f
mov edx, offset __kernel_phys_start
xor eax, eax
6:  add eax, [edx]
add eax, [edx + 4]
add eax, [edx + 8]
add eax, [edx + 12]
add eax, [edx + 16]
add eax, [edx + 20]
add eax, [edx + 24]
add eax, [edx + 28]
add edx, 32
dec ecx
jnz 6b
cmp eax, [ebx + 12]
jne 7f

mov [boot_entry_tsc], ebp
mov [boot_entry_tsc + 4], esp
mov [boot_start_info], esi
mov [boot_multiboot_magic], edi
mov byte ptr [boot_via_multiboot], 1
jmp boot_start32_common

/* Report on COM1 (polling the line status; no UART reads 0xff, which lets the bytes go)
   and stop: the loader is gone and the image cannot be trusted to run. */
7:  mov esi, offset boot_multiboot_damaged
8:  lodsb
test al, al
jz 10f
mov ah, al
mov dx, 0x3fd
9:  in al, dx
test al, 0x20
jz 9b
mov al, ah
mov dx, 0x3f8
out dx, al
jmp 8b
10: cli
hlt
jmp 10b

.section .boot.data, "aw"
boot_multiboot_damaged:
.ascii "\r\npappus: pappus-kernel.mb is damaged or cut short (its image check fails); "
.asciz "not starting it. Make it again with `cargo xtask image --pxe` and copy the whole folder.\r\n"

/* The 64-bit entry from the Pappus UEFI loader (bootinfo::NOTE_ENTRY64). */
.section .note.pappus, "a"
.p2align 2
.long 7                     /* name size: "Pappus\0" */
.long 8                     /* descriptor size: a 64-bit entry address */
.long {note_entry64}
.asciz "Pappus"
.p2align 2
.quad uefi_start64
.p2align 2

.section .boot.text, "awx"
.code64
.global uefi_start64
uefi_start64:
cli
cld
mov r12, rdi                /* the boot block (physical) */
rdtsc
shl rdx, 32
or rax, rdx
mov r13, rax                /* the entry TSC */

/* PAE + PGE, EFER.NXE (LME is on: we are in long mode), CR0.WP, then the early PML4, which
   identity-maps this code like the firmware's tables do. */
mov rax, cr4
or rax, (1 << 5) | (1 << 7)
mov cr4, rax
mov ecx, 0xC0000080
rdmsr
or eax, (1 << 11)
wrmsr
mov rax, cr0
or rax, (1 << 16)
mov cr0, rax
lea rax, [rip + boot_pml4]
mov cr3, rax

movabs rsp, offset {boot_stack} + {boot_stack_size}
lgdt [rip + uefi_gdt_ptr]
lea rax, [rip + 3f]
push 0x08
push rax
retfq
3:  mov ax, 0x10
mov ds, ax
mov es, ax
mov ss, ax
xor eax, eax
mov fs, ax
mov gs, ax
xor ebp, ebp
mov rdi, r12
mov rsi, r13
movabs rax, offset {uefi_entry}
call rax
4:  hlt
jmp 4b

.section .boot.data, "aw"
.p2align 3
uefi_gdt_ptr:                           /* lgdt in long mode reads a 64-bit base */
.word boot_gdt_ptr - boot_gdt - 1
.quad boot_gdt
