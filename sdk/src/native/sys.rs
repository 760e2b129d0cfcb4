//! The exit call: `syscall` with `rax` = [`native::SYS_EXIT`], the status in `rdi`.

use crate::abi::native;

/// Ends the run successfully, handing over `count` output descriptors at `table`.
pub(super) fn exit_done(table: *const u8, count: usize) -> ! {
    // SAFETY: the exit call never returns; the platform reads the descriptors from our memory.
    unsafe {
        core::arch::asm!("syscall", in("rax") native::SYS_EXIT, in("rdi") native::EXIT_DONE,
            in("rsi") table, in("rdx") count, options(noreturn, nostack))
    }
}

/// Ends the run as failed after the heap refused an allocation, with `message`.
pub(crate) fn exit_out_of_memory(message: &[u8]) -> ! {
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("syscall", in("rax") native::SYS_EXIT, in("rdi") native::EXIT_OUT_OF_MEMORY,
            in("rsi") message.as_ptr(), in("rdx") message.len(), options(noreturn, nostack))
    }
}

/// Ends the run as failed with `message`.
pub(crate) fn exit_abort(message: &[u8]) -> ! {
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("syscall", in("rax") native::SYS_EXIT, in("rdi") native::EXIT_ABORT,
            in("rsi") message.as_ptr(), in("rdx") message.len(), options(noreturn, nostack))
    }
}
