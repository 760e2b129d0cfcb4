//! Hostile native functions, one per `--cfg case="…"`, built by `tests/tests/native.rs` as
//! static PIE (the same flags as a real function) for x86_64 or aarch64, and registered with
//! `engine=native` or `engine=paging`. Each does one forbidden thing, then would exit cleanly
//! through the one exit call, so a run that "succeeds" means the platform let the forbidden
//! thing through. The exit call, the addresses and the cases that are instructions are each
//! architecture's own; the cases that are about memory and the exit call's arguments are one
//! source for both.
#![no_std]
#![no_main]
#![allow(unexpected_cfgs, dead_code, unused_unsafe, unreachable_code)]

use core::arch::asm;

/// The exit call: done, no outputs.
fn exit_done() -> ! {
    exit(0, 0, 0)
}

/// The exit call with any status and arguments.
#[cfg(target_arch = "x86_64")]
fn exit(status: u64, rsi: u64, rdx: u64) -> ! {
    // SAFETY: the exit call; never returns.
    unsafe { asm!("syscall", in("rax") 0, in("rdi") status, in("rsi") rsi, in("rdx") rdx, options(noreturn, nostack)) }
}

/// The exit call with any status and arguments: `svc #0`, x8 = 0.
#[cfg(target_arch = "aarch64")]
fn exit(status: u64, pointer: u64, len: u64) -> ! {
    // SAFETY: the exit call; never returns.
    unsafe { asm!("svc #0", in("x8") 0, in("x0") status, in("x1") pointer, in("x2") len, options(noreturn, nostack)) }
}

/// Exits done with one output descriptor (docs/function-abi.md: set | flags << 32, key, name,
/// name length, data, data length).
fn exit_with(desc: [u64; 6]) -> ! {
    exit(0, desc.as_ptr() as u64, 1)
}

static NAME: [u8; 4] = *b"item";

/// 8 MiB of bss: more than the 4 MiB the tests give a hostile function.
#[cfg(case = "huge_bss")]
static mut BIG: [u8; 8 << 20] = [0; 8 << 20];
static BAD_NAME: [u8; 2] = [0xff, 0xfe];

/// An address in no sandbox's layout (where another sandbox's memory would be with MPK).
#[cfg(target_arch = "x86_64")]
const ELSEWHERE: u64 = 0x10_0000_0000;
/// Kernel memory: the direct map of physical memory, and the kernel's text.
#[cfg(target_arch = "x86_64")]
const KERNEL_DATA: u64 = 0xffff_8000_0010_0000;
#[cfg(target_arch = "x86_64")]
const KERNEL_TEXT: u64 = 0xffff_ffff_8020_0000;
/// aarch64: 64 GiB past the sandbox's base (1 TiB), in no region of its layout.
#[cfg(target_arch = "aarch64")]
const ELSEWHERE: u64 = 0x110_0000_0000;
/// aarch64: the kernel's identity map of RAM (QEMU virt: RAM at 1 GiB, the kernel image at
/// 0x4020_0000, its text first).
#[cfg(target_arch = "aarch64")]
const KERNEL_DATA: u64 = 0x4010_0000;
#[cfg(target_arch = "aarch64")]
const KERNEL_TEXT: u64 = 0x4020_0000;

/// `big_output`: one output item this long, byte `i` = `i % 251` (a native function given it
/// next gets its pages mapped rather than copied: over 64 KiB).
const BIG_OUTPUT: usize = 96 << 10;
#[cfg(case = "big_output")]
static mut BIG_OUT: [u8; BIG_OUTPUT] = [0; BIG_OUTPUT];

/// The first input item's descriptor (its data pointer is word 4, its length word 2).
unsafe fn first_input_item(sys: *const u64) -> *const u64 {
    // SAFETY: the system data block's header and descriptors, as the platform wrote them.
    unsafe {
        let sets = sys.add(3).read() as *const u64;
        sets.add(3).read() as *const u64
    }
}

/// Iterations of the `long_loop` case (tests/tests/native.rs computes the same on the host).
const LONG_LOOP_ITERATIONS: u64 = 1 << 30;

/// What `long_loop` and `read_segments` hand back as their one output item.
static mut OUT: [u64; 4] = [0; 4];

/// `residue`: writable statics, as a fresh load leaves them (a slot or pooled space keeps the
/// image mapped between runs of the same function and must put back what a run wrote): words
/// of `.data` that are not zero, and a page of `.bss`.
#[cfg(case = "residue")]
static mut LOADED: [u64; 8] = [0x1122_3344_5566_7788; 8];
#[cfg(case = "residue")]
static mut ZEROED: [u64; 512] = [0; 512];

/// `residue`: the words of [`LOADED`] and [`ZEROED`] this run finds other than loaded; then it
/// changes every one of them for whoever runs next.
#[cfg(case = "residue")]
unsafe fn image_residue() -> u64 {
    let mut found = 0u64;
    // SAFETY: this run's own statics, read and written through raw pointers.
    unsafe {
        for i in 0..8 {
            let at = (&raw mut LOADED).cast::<u64>().add(i);
            found += u64::from(core::ptr::read_volatile(at) != 0x1122_3344_5566_7788);
            core::ptr::write_volatile(at, 0xdead_beef);
        }
        for i in 0..512 {
            let at = (&raw mut ZEROED).cast::<u64>().add(i);
            found += u64::from(core::ptr::read_volatile(at) != 0);
            core::ptr::write_volatile(at, 0x5a5a_5a5a);
        }
    }
    found
}

#[unsafe(no_mangle)]
pub extern "C" fn _start(sys: *const u64) -> ! {
    // SAFETY: each case is meant to fault (or be refused); the platform must contain it.
    unsafe {
        let _ = sys;
        #[cfg(case = "read_other")]
        core::ptr::read_volatile(ELSEWHERE as *const u64);
        #[cfg(case = "write_other")]
        core::ptr::write_volatile(ELSEWHERE as *mut u64, 0x5a5a);
        #[cfg(case = "read_kernel")]
        core::ptr::read_volatile(KERNEL_DATA as *const u64);
        #[cfg(case = "write_kernel")]
        core::ptr::write_volatile(KERNEL_DATA as *mut u64, 0x5a5a);
        #[cfg(all(case = "jump_kernel", target_arch = "x86_64"))]
        asm!("jmp {}", in(reg) KERNEL_TEXT);
        #[cfg(all(case = "jump_kernel", target_arch = "aarch64"))]
        asm!("br {}", in(reg) KERNEL_TEXT);
        #[cfg(case = "wrpkru_in_image")]
        asm!("xor ecx, ecx", "xor edx, edx", "xor eax, eax", ".byte 0x0f, 0x01, 0xef");
        #[cfg(case = "xrstor_in_image")]
        asm!(".byte 0x0f, 0xae, 0x2f"); // xrstor [rdi]
        #[cfg(case = "forged_wrpkru")]
        {
            // WRPKRU; RET written to the heap (from the system data block), then jumped to.
            let heap = sys.add(6).read() as *mut u8;
            for (i, b) in [0x31u8, 0xc9, 0x31, 0xd2, 0x31, 0xc0, 0x0f, 0x01, 0xef, 0xc3].iter().enumerate() {
                core::ptr::write_volatile(heap.add(i), *b);
            }
            asm!("call {}", in(reg) heap);
        }
        #[cfg(case = "write_own_code")]
        core::ptr::write_volatile(_start as *const () as *mut u8, 0xc3);
        #[cfg(target_arch = "aarch64")]
        aarch64_cases(sys);
        #[cfg(all(case = "syscall_other", target_arch = "x86_64"))]
        asm!("syscall", in("rax") 1, in("rdi") 0, in("rsi") 0, in("rdx") 0, out("rcx") _, out("r11") _);
        #[cfg(case = "int80")]
        asm!("int 0x80");
        // TF set just before the exit call: `syscall` masks TF (FMASK), so no single-step trap
        // reaches the kernel entry on the user stack; the run simply ends.
        #[cfg(case = "trap_flag_then_exit")]
        asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "syscall",
            in("rax") 0, in("rdi") 0, in("rsi") 0, in("rdx") 0, options(noreturn));
        #[cfg(case = "single_step")]
        asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop");
        #[cfg(case = "icebp")]
        asm!(".byte 0xf1");
        #[cfg(case = "int3")]
        asm!("int3");
        #[cfg(case = "hlt")]
        asm!("hlt");
        #[cfg(case = "cli")]
        asm!("cli");
        #[cfg(case = "port_out")]
        asm!("out dx, al", in("dx") 0xf4u16, in("al") 0x10u8);
        #[cfg(case = "port_in")]
        asm!("in al, dx", in("dx") 0x3f8u16, out("al") _);
        #[cfg(case = "rdmsr")]
        asm!("rdmsr", in("ecx") 0xc000_0082u32, out("eax") _, out("edx") _);
        #[cfg(case = "wrmsr")]
        asm!("wrmsr", in("ecx") 0xc000_0082u32, in("eax") 0, in("edx") 0);
        #[cfg(case = "mov_cr3")]
        asm!("mov cr3, {}", in(reg) 0u64);
        #[cfg(case = "sysenter")]
        asm!("sysenter");
        #[cfg(case = "swapgs")]
        asm!("swapgs");
        #[cfg(case = "wrgsbase")]
        asm!("wrgsbase {}", in(reg) KERNEL_DATA);
        #[cfg(case = "xsetbv")]
        asm!("xsetbv", in("ecx") 0, in("eax") 0x207u32, in("edx") 0);
        #[cfg(case = "iretq_to_ring0")]
        {
            // A forged interrupt frame returning to kernel code at CPL 0.
            asm!("push 0x10", "push rsp", "pushfq", "push 0x08", "push {}", "iretq", in(reg) KERNEL_TEXT);
        }
        #[cfg(all(case = "infinite_loop", target_arch = "x86_64"))]
        asm!("2: jmp 2b");
        #[cfg(all(case = "stack_overflow", target_arch = "x86_64"))]
        asm!("2: push rax", "jmp 2b");
        #[cfg(case = "divide_by_zero")]
        asm!("div rcx", in("rcx") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
        #[cfg(case = "output_undeclared_set")]
        exit_with([3, 0, NAME.as_ptr() as u64, 4, NAME.as_ptr() as u64, 4]);
        #[cfg(case = "output_reserved_flags")]
        exit_with([4 << 32, 0, NAME.as_ptr() as u64, 4, NAME.as_ptr() as u64, 4]);
        #[cfg(case = "output_data_in_kernel")]
        exit_with([0, 0, NAME.as_ptr() as u64, 4, KERNEL_DATA, 8]);
        #[cfg(case = "output_name_not_utf8")]
        exit_with([0, 0, BAD_NAME.as_ptr() as u64, 2, NAME.as_ptr() as u64, 4]);
        #[cfg(case = "output_table_elsewhere")]
        exit(0, ELSEWHERE, 1);
        #[cfg(case = "output_count_huge")]
        exit(0, NAME.as_ptr() as u64, 1 << 40);
        #[cfg(case = "output_data_huge")]
        exit_with([0, 0, NAME.as_ptr() as u64, 4, NAME.as_ptr() as u64, 1 << 40]);
        #[cfg(case = "output_keyed")]
        exit_with([1 << 32, 0x0102_0304, NAME.as_ptr() as u64, 4, NAME.as_ptr() as u64, 4]);
        #[cfg(case = "abort_with_message")]
        exit(1, b"boom: the function failed".as_ptr() as u64, 25);
        #[cfg(case = "abort_message_in_kernel")]
        exit(1, KERNEL_DATA, 16);
        #[cfg(case = "huge_bss")]
        core::ptr::write_volatile(&raw mut BIG[12345], 1);
        #[cfg(case = "exit_unknown_status")]
        exit(7, 0, 0);
        #[cfg(all(case = "long_loop", target_arch = "x86_64"))]
        {
            // A long computation in general registers and SSE registers: it is preempted many
            // times, and its answer is right only if every register came back each time.
            let (r11, xmm): (u64, u64);
            asm!(
                "pxor xmm0, xmm0",
                "movq xmm1, {one}",
                "2:",
                "add r8, 1",
                "add r9, r8",
                "xor r10, r9",
                "rol r10, 7",
                "add r11, r10",
                "paddq xmm0, xmm1",
                "paddq xmm1, xmm0",
                "dec rcx",
                "jnz 2b",
                "movq {xmm}, xmm1",
                one = in(reg) 1u64,
                xmm = out(reg) xmm,
                inout("rcx") LONG_LOOP_ITERATIONS => _,
                inout("r8") 0u64 => _,
                inout("r9") 0u64 => _,
                inout("r10") 0u64 => _,
                inout("r11") 0u64 => r11,
                out("xmm0") _,
                out("xmm1") _,
            );
            OUT[0] = r11;
            OUT[1] = xmm;
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 16]);
        }
        #[cfg(all(case = "avx", target_arch = "x86_64"))]
        {
            // 256-bit AVX: the kernel enables it for ring 3 where the CPU has it (XCR0), or
            // this faults (#UD) and the run fails.
            let lanes: [f64; 4] = [1.5, 2.5, -3.0, 1e10];
            asm!(
                "vmovupd ymm0, [{lanes}]",
                "vaddpd ymm1, ymm0, ymm0",
                "vmovupd [{out}], ymm1",
                "vzeroupper",
                lanes = in(reg) lanes.as_ptr(),
                out = in(reg) (&raw mut OUT).cast::<u64>(),
                out("xmm0") _,
                out("xmm1") _,
            );
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 32]);
        }
        #[cfg(case = "big_output")]
        {
            for i in 0..BIG_OUTPUT {
                (&raw mut BIG_OUT).cast::<u8>().add(i).write_volatile((i % 251) as u8);
            }
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const BIG_OUT) as u64, BIG_OUTPUT as u64]);
        }
        #[cfg(case = "mapped_input")]
        {
            // The first input item as this run sees it: where its data lies, a checksum of it,
            // whether the rest of its last page reads zero, and its length.
            let item = first_input_item(sys);
            let (len, data) = (item.add(2).read(), item.add(4).read() as *const u8);
            let mut sum = 0u64;
            for i in 0..len as usize {
                sum = sum.wrapping_mul(31).wrapping_add(u64::from(data.add(i).read_volatile()));
            }
            let mut tail_zero = 1u64;
            let mut at = data as u64 + len;
            while at % 4096 != 0 {
                tail_zero &= u64::from((at as *const u8).read_volatile() == 0);
                at += 1;
            }
            OUT = [data as u64, sum, tail_zero, len];
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 32]);
        }
        #[cfg(case = "write_input")]
        {
            // Inputs are read-only, copied or mapped.
            let item = first_input_item(sys);
            (item.add(4).read() as *mut u8).write_volatile(0x5a);
        }
        #[cfg(case = "set_segments")]
        {
            // Leaves its own data selector in DS, ES, FS and GS for whoever runs next.
            asm!("mov ds, {0:x}", "mov es, {0:x}", "mov fs, {0:x}", "mov gs, {0:x}", in(reg) 0x2bu16);
        }
        #[cfg(case = "read_segments")]
        {
            // The data segment selectors as this run finds them, one 8-byte word each.
            let (ds, es, fs, gs): (u16, u16, u16, u16);
            asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs", out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs);
            OUT = [u64::from(ds), u64::from(es), u64::from(fs), u64::from(gs)];
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 32]);
        }
        #[cfg(case = "segments_survive_preemption")]
        {
            // Its own selectors, then long enough to be preempted many times: they come back.
            asm!("mov ds, {0:x}", "mov es, {0:x}", "mov fs, {0:x}", "mov gs, {0:x}", in(reg) 0x2bu16);
            asm!("2:", "dec rcx", "jnz 2b", inout("rcx") 1u64 << 27 => _);
            let (ds, es, fs, gs): (u16, u16, u16, u16);
            asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs", out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs);
            OUT = [u64::from(ds), u64::from(es), u64::from(fs), u64::from(gs)];
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 32]);
        }
        #[cfg(case = "sgdt")]
        {
            // Where the GDT is: with CR4.UMIP a #GP instead.
            let mut gdtr = [0u8; 10];
            asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr());
            core::hint::black_box(gdtr);
        }
        #[cfg(case = "sidt")]
        {
            let mut idtr = [0u8; 10];
            asm!("sidt [{}]", in(reg) idtr.as_mut_ptr());
            core::hint::black_box(idtr);
        }
        #[cfg(case = "smsw")]
        {
            let msw: u64;
            asm!("smsw {}", out(reg) msw);
            core::hint::black_box(msw);
        }
        #[cfg(all(case = "residue", target_arch = "x86_64"))]
        {
            // What this run finds of earlier runs in the pages a slot keeps between them: the
            // nonzero words of its stack's top page below its own frame, of its heap's first
            // page and, when its input set is empty (its block then ends within 512 bytes), of
            // its system data page past 512 bytes. Then it fills that part of the stack and the
            // heap's first page for whoever runs next.
            let mut found = 0u64;
            let sp: u64;
            asm!("mov {}, rsp", out(reg) sp);
            let page = sp & !0xfff;
            let end = sp - 256;
            let mut at = page;
            while at < end {
                found += u64::from(core::ptr::read_volatile(at as *const u64) != 0);
                at += 8;
            }
            let sets = sys.add(2).read();
            let descs = sys.add(3).read() as *const u64;
            if sets == 0 || descs.add(2).read() == 0 {
                for i in (512..4096).step_by(8) {
                    found += u64::from(core::ptr::read_volatile((sys as *const u8).add(i).cast::<u64>()) != 0);
                }
            }
            let heap = sys.add(6).read();
            for i in (0..4096).step_by(8) {
                found += u64::from(core::ptr::read_volatile((heap + i) as *const u64) != 0);
            }
            asm!("rep stosb", inout("rdi") page => _, inout("rcx") end - page => _, in("al") 0x5au8);
            asm!("rep stosb", inout("rdi") heap => _, inout("rcx") 4096 => _, in("al") 0xa5u8);
            found += image_residue();
            OUT[0] = found;
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 8]);
        }
        #[cfg(all(case = "touch_all_memory", target_arch = "x86_64"))]
        {
            // Every byte of the heap, written, then every byte of the stack below us.
            let heap = sys.add(6).read() as *mut u8;
            let len = sys.add(7).read() as usize;
            asm!("rep stosb", inout("rdi") heap => _, inout("rcx") len => _, in("al") 0xa5u8);
            let sp: u64;
            asm!("mov {}, rsp", out(reg) sp);
            let bottom = (sp & !0xf_ffff) as *mut u8; // the 1 MiB stack's lowest byte
            let n = (sp - 256) as usize - bottom as usize;
            asm!("rep stosb", inout("rdi") bottom => _, inout("rcx") n => _, in("al") 0x5au8);
            // And read every byte of the system data block's first page and our own code.
            let mut sum = 0u8;
            for i in 0..4096usize {
                sum = sum.wrapping_add(core::ptr::read_volatile((sys as *const u8).add(i)));
            }
            core::hint::black_box(sum);
        }
    }
    exit_done()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The aarch64 cases: instructions EL0 may not execute, alignment, stack, time, and what a run
/// leaves in the registers for the next one.
#[cfg(target_arch = "aarch64")]
unsafe fn aarch64_cases(sys: *const u64) {
    // SAFETY: each case is meant to trap (or be contained); the platform must contain it.
    unsafe {
        let _ = sys;
        #[cfg(case = "syscall_other")]
        asm!("svc #0", in("x8") 1, in("x0") 0, in("x1") 0, in("x2") 0);
        #[cfg(case = "svc_other_immediate")]
        asm!("svc #1", in("x8") 0, in("x0") 0, in("x1") 0, in("x2") 0);
        #[cfg(case = "brk")]
        asm!("brk #1");
        // Morello capability instructions (the words of `cheri::insn`, checked against the
        // emulator's disassembler), for the `cheri` engine: a capability may only narrow.
        // MRS_C0_DDC, x1 = 2^40, SCBNDS_C0_C0_X1 (bounds wider than DDC's: the tag is cleared),
        // LDRB_W2_C0: a tag fault.
        #[cfg(case = "cheri_widen_bounds")]
        asm!(".inst 0xc29b4120", ".inst 0xc2c10000", ".inst 0x82600402", in("x1") 1u64 << 40, out("x0") _, out("x2") _);
        // An integer used as a capability (LDRB_W2_C1, x1 = kernel memory): never tagged.
        #[cfg(case = "cheri_forge_from_integer")]
        asm!(".inst 0x82600422", in("x1") KERNEL_DATA, out("x2") _);
        // MRS_C0_DDC, MSR_CVBAR_EL1_C0: an EL1 capability register from EL0.
        #[cfg(case = "cheri_msr_cvbar")]
        asm!(".inst 0xc29b4120", ".inst 0xc288c000", out("x0") _);
        // MSR_DDC_C1 with x1 an integer (an untagged c1), then an ordinary load of its own
        // system data block, which goes through DDC: a tag fault, not a wider reach.
        #[cfg(case = "cheri_msr_ddc_integer")]
        asm!(".inst 0xc28b4121", "ldrb w2, [x3]", in("x1") 0x1000u64, in("x3") sys, out("x2") _);
        // MRS_C0_DDC, SEAL_C0_C0_RB (a sentry: sealing needs no key), LDRB_W2_C0: a sealed
        // capability cannot be used for data (a seal fault).
        #[cfg(case = "cheri_seal_sentry")]
        asm!(".inst 0xc29b4120", ".inst 0xc2c33000", ".inst 0x82600402", out("x0") _, out("x2") _);
        // The system data block of the sandbox in the slot below (or above) its own: under `cheri`
        // (tests/tests/cheri.rs) a neighbour running on the other compute core, whose inputs
        // are there. One 32 GiB slot each from 1 TiB, the block 4 GiB into a slot
        // (compute-engines/native/src/layout.rs); the shared tables map it at EL0, only the
        // capabilities stop the read.
        #[cfg(case = "read_live_neighbour")]
        {
            const SLOTS: u64 = 1 << 40;
            const SLOT: u64 = 1 << 35;
            const SYS_OFFSET: u64 = 1 << 32;
            let index = (sys as u64 - SYS_OFFSET - SLOTS) / SLOT;
            let other = if index > 1 { index - 1 } else { index + 1 };
            core::ptr::read_volatile((SLOTS + other * SLOT + SYS_OFFSET) as *const u64);
        }
        #[cfg(case = "mrs_sctlr")]
        asm!("mrs {}, sctlr_el1", out(reg) _);
        #[cfg(case = "msr_ttbr0")]
        asm!("msr ttbr0_el1, {}", in(reg) 0u64);
        #[cfg(case = "msr_vbar")]
        asm!("msr vbar_el1, {}", in(reg) KERNEL_DATA);
        #[cfg(case = "msr_daif")]
        asm!("msr daifset, #2");
        #[cfg(case = "mrs_counter")]
        asm!("mrs {}, cntvct_el0", out(reg) _);
        #[cfg(case = "msr_timer")]
        asm!("msr cntv_ctl_el0, {}", in(reg) 0u64);
        #[cfg(case = "eret")]
        asm!("eret");
        // A forged exception return: an SPSR for EL1h and an ELR in kernel text, then `eret`.
        #[cfg(case = "forged_eret")]
        asm!("msr spsr_el1, {}", "msr elr_el1, {}", "eret", in(reg) 0x3c5u64, in(reg) KERNEL_TEXT);
        #[cfg(case = "hvc")]
        asm!("hvc #0", in("x0") 0x8400_0008u64);
        #[cfg(case = "smc")]
        asm!("smc #0", in("x0") 0x8400_0008u64);
        #[cfg(case = "dc_civac")]
        asm!("dc civac, {}", in(reg) KERNEL_DATA);
        #[cfg(case = "dc_zva_kernel")]
        asm!("dc zva, {}", in(reg) KERNEL_DATA);
        #[cfg(case = "ic_iallu")]
        asm!("ic iallu");
        #[cfg(case = "tlbi")]
        asm!("tlbi vmalle1is");
        #[cfg(case = "wfi")]
        asm!("wfi");
        #[cfg(case = "unaligned_kernel")]
        core::ptr::read_volatile((KERNEL_DATA + 1) as *const u64);
        // Exclusive loads must be aligned even to normal memory: an alignment fault.
        #[cfg(case = "unaligned_exclusive")]
        {
            let heap = sys.add(6).read();
            asm!("ldxr {}, [{}]", out(reg) _, in(reg) heap + 1);
        }
        #[cfg(case = "unaligned_pc")]
        asm!("br {}", in(reg) (_start as *const () as u64) + 2);
        #[cfg(case = "forged_code")]
        {
            // `svc #0` written to the heap, then jumped to: data is never executable.
            let heap = sys.add(6).read() as *mut u32;
            core::ptr::write_volatile(heap, 0xd400_0001);
            asm!("blr {}", in(reg) heap, out("x30") _);
        }
        #[cfg(case = "infinite_loop")]
        asm!("2: b 2b");
        #[cfg(case = "stack_overflow")]
        asm!("2: str x0, [sp, #-16]!", "b 2b");
        #[cfg(case = "long_loop")]
        {
            // The x86_64 case's computation, in general and vector registers: preempted many
            // times, its answer is right only if every register came back each time.
            let (r11, v): (u64, u64);
            asm!(
                "movi v0.2d, #0",
                "fmov d1, {one}",
                "2:",
                "add x12, x12, #1",
                "add x13, x13, x12",
                "eor x14, x14, x13",
                "ror x14, x14, #57",
                "add x15, x15, x14",
                "add v0.2d, v0.2d, v1.2d",
                "add v1.2d, v1.2d, v0.2d",
                "subs x16, x16, #1",
                "b.ne 2b",
                "fmov {v}, d1",
                one = in(reg) 1u64,
                v = out(reg) v,
                inout("x16") LONG_LOOP_ITERATIONS => _,
                inout("x12") 0u64 => _,
                inout("x13") 0u64 => _,
                inout("x14") 0u64 => _,
                inout("x15") 0u64 => r11,
                out("v0") _,
                out("v1") _,
            );
            OUT[0] = r11;
            OUT[1] = v;
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 16]);
        }
        // Leaves marks in TPIDR_EL0, FPCR, NZCV and every vector register for whoever runs next.
        #[cfg(case = "leave_state")]
        asm!(
            "msr tpidr_el0, {m}",
            "msr fpcr, {fpcr}",
            "msr nzcv, {nzcv}",
            "dup v0.2d, {m}", "dup v1.2d, {m}", "dup v2.2d, {m}", "dup v3.2d, {m}",
            "dup v4.2d, {m}", "dup v5.2d, {m}", "dup v6.2d, {m}", "dup v7.2d, {m}",
            "dup v8.2d, {m}", "dup v9.2d, {m}", "dup v10.2d, {m}", "dup v11.2d, {m}",
            "dup v12.2d, {m}", "dup v13.2d, {m}", "dup v14.2d, {m}", "dup v15.2d, {m}",
            "dup v16.2d, {m}", "dup v17.2d, {m}", "dup v18.2d, {m}", "dup v19.2d, {m}",
            "dup v20.2d, {m}", "dup v21.2d, {m}", "dup v22.2d, {m}", "dup v23.2d, {m}",
            "dup v24.2d, {m}", "dup v25.2d, {m}", "dup v26.2d, {m}", "dup v27.2d, {m}",
            "dup v28.2d, {m}", "dup v29.2d, {m}", "dup v30.2d, {m}", "dup v31.2d, {m}",
            "svc #0",
            m = in(reg) 0x5a5a_5a5a_5a5a_5a5au64,
            fpcr = in(reg) 0x0340_0000u64, // FZ, RMode = toward zero
            nzcv = in(reg) 0xf000_0000u64,
            in("x8") 0, in("x0") 0, in("x1") 0, in("x2") 0,
            options(noreturn),
        );
        // What this run finds: TPIDR_EL0, TPIDRRO_EL0, FPCR, FPSR, NZCV, and the OR of every
        // vector register's halves, one 8-byte word each.
        #[cfg(case = "read_state")]
        {
            let (tpidr, tpidrro, fpcr, fpsr, nzcv, v): (u64, u64, u64, u64, u64, u64);
            asm!(
                "mrs {tpidr}, tpidr_el0",
                "mrs {tpidrro}, tpidrro_el0",
                "mrs {fpcr}, fpcr",
                "mrs {fpsr}, fpsr",
                "mrs {nzcv}, nzcv",
                "orr v0.16b, v0.16b, v1.16b", "orr v0.16b, v0.16b, v2.16b", "orr v0.16b, v0.16b, v3.16b",
                "orr v0.16b, v0.16b, v4.16b", "orr v0.16b, v0.16b, v5.16b", "orr v0.16b, v0.16b, v6.16b",
                "orr v0.16b, v0.16b, v7.16b", "orr v0.16b, v0.16b, v8.16b", "orr v0.16b, v0.16b, v9.16b",
                "orr v0.16b, v0.16b, v10.16b", "orr v0.16b, v0.16b, v11.16b", "orr v0.16b, v0.16b, v12.16b",
                "orr v0.16b, v0.16b, v13.16b", "orr v0.16b, v0.16b, v14.16b", "orr v0.16b, v0.16b, v15.16b",
                "orr v0.16b, v0.16b, v16.16b", "orr v0.16b, v0.16b, v17.16b", "orr v0.16b, v0.16b, v18.16b",
                "orr v0.16b, v0.16b, v19.16b", "orr v0.16b, v0.16b, v20.16b", "orr v0.16b, v0.16b, v21.16b",
                "orr v0.16b, v0.16b, v22.16b", "orr v0.16b, v0.16b, v23.16b", "orr v0.16b, v0.16b, v24.16b",
                "orr v0.16b, v0.16b, v25.16b", "orr v0.16b, v0.16b, v26.16b", "orr v0.16b, v0.16b, v27.16b",
                "orr v0.16b, v0.16b, v28.16b", "orr v0.16b, v0.16b, v29.16b", "orr v0.16b, v0.16b, v30.16b",
                "orr v0.16b, v0.16b, v31.16b",
                "mov {v}, v0.d[0]",
                "mov {t}, v0.d[1]",
                "orr {v}, {v}, {t}",
                tpidr = out(reg) tpidr,
                tpidrro = out(reg) tpidrro,
                fpcr = out(reg) fpcr,
                fpsr = out(reg) fpsr,
                nzcv = out(reg) nzcv,
                v = out(reg) v,
                t = out(reg) _,
                out("v0") _,
            );
            static mut STATE: [u64; 6] = [0; 6];
            STATE = [tpidr, tpidrro, fpcr, fpsr, nzcv, v];
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const STATE) as u64, 48]);
        }
        #[cfg(case = "residue")]
        {
            // As the x86_64 case: the nonzero words this run finds in the pages a pooled space
            // keeps between runs (its stack's top page below its own frame, its heap's first
            // page, and past 512 bytes its system data page when its input set is empty); then
            // it fills that part of the stack and the heap's first page for whoever runs next.
            let mut found = 0u64;
            let sp: u64;
            asm!("mov {}, sp", out(reg) sp);
            let page = sp & !0xfff;
            let end = sp - 256;
            let mut at = page;
            while at < end {
                found += u64::from(core::ptr::read_volatile(at as *const u64) != 0);
                at += 8;
            }
            let sets = sys.add(2).read();
            let descs = sys.add(3).read() as *const u64;
            if sets == 0 || descs.add(2).read() == 0 {
                for i in (512..4096).step_by(8) {
                    found += u64::from(core::ptr::read_volatile((sys as *const u8).add(i).cast::<u64>()) != 0);
                }
            }
            let heap = sys.add(6).read();
            for i in (0..4096).step_by(8) {
                found += u64::from(core::ptr::read_volatile((heap + i) as *const u64) != 0);
            }
            let mut at = page;
            while at < end {
                core::ptr::write_volatile(at as *mut u64, 0x5a5a_5a5a_5a5a_5a5a);
                at += 8;
            }
            for i in (0..4096).step_by(8) {
                core::ptr::write_volatile((heap + i) as *mut u64, 0xa5a5_a5a5_a5a5_a5a5);
            }
            found += image_residue();
            OUT[0] = found;
            exit_with([0, 0, NAME.as_ptr() as u64, 4, (&raw const OUT) as u64, 8]);
        }
        #[cfg(case = "touch_all_memory")]
        {
            // Every byte of the heap, written, then the stack below us.
            let heap = sys.add(6).read() as *mut u8;
            let len = sys.add(7).read() as usize;
            for i in 0..len {
                core::ptr::write_volatile(heap.add(i), 0xa5);
            }
            let sp: u64;
            asm!("mov {}, sp", out(reg) sp);
            let bottom = (sp & !0xf_ffff) as *mut u8;
            for i in 0..((sp - 256) as usize - bottom as usize) {
                core::ptr::write_volatile(bottom.add(i), 0x5a);
            }
            let mut sum = 0u8;
            for i in 0..4096usize {
                sum = sum.wrapping_add(core::ptr::read_volatile((sys as *const u8).add(i)));
            }
            core::hint::black_box(sum);
        }
    }
}
