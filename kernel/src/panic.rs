//! A kernel panic: report it, then stop (and, in test mode, fail the run).

use core::panic::PanicInfo;

use crate::{arch, console};

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    console::emergency_println(format_args!("KERNEL PANIC: {info}"));
    arch::exit(false)
}
