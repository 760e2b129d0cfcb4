//! The exit call: on x86_64 `syscall` with `rax` = [`native::SYS_EXIT`], the status in `rdi`,
//! pointer and length in `rsi`, `rdx`; on aarch64 `svc #0` with `x8` = [`native::SYS_EXIT`],
//! the status in `x0`, pointer and length in `x1`, `x2`.

use crate::abi::native;

/// The exit call with `status` and a pointer and length; never returns.
fn exit(status: u64, pointer: *const u8, len: usize) -> ! {
    // SAFETY: the exit call never returns; the platform reads what `pointer` and `len` describe
    // from our memory.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("syscall", in("rax") native::SYS_EXIT, in("rdi") status,
            in("rsi") pointer, in("rdx") len, options(noreturn, nostack))
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("svc #0", in("x8") native::SYS_EXIT, in("x0") status,
            in("x1") pointer, in("x2") len, options(noreturn, nostack))
    }
}

/// Ends the run successfully, handing over `count` output descriptors at `table`.
pub(super) fn exit_done(table: *const u8, count: usize) -> ! {
    exit(native::EXIT_DONE, table, count)
}

/// Ends the run as failed after the heap refused an allocation, with `message`.
pub(crate) fn exit_out_of_memory(message: &[u8]) -> ! {
    exit(native::EXIT_OUT_OF_MEMORY, message.as_ptr(), message.len())
}

/// Ends the run as failed with `message`.
pub(crate) fn exit_abort(message: &[u8]) -> ! {
    exit(native::EXIT_ABORT, message.as_ptr(), message.len())
}
