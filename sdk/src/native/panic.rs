//! Panics end the run through the exit call: out of memory when the heap refused an allocation
//! (the usual reason to panic then), else abort, with the panic's message and location.
#![cfg(feature = "panic-handler")]

use core::panic::PanicInfo;

use super::sys;
use crate::panic_message::PanicMessage;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let message = PanicMessage::of(info);
    if super::heap_refused() {
        sys::exit_out_of_memory(message.as_bytes())
    }
    sys::exit_abort(message.as_bytes())
}
