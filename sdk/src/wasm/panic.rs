//! Panics end the run through `abort`, with the panic's message and location.
#![cfg(feature = "panic-handler")]

use core::panic::PanicInfo;

use super::sys;
use crate::panic_message::PanicMessage;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    sys::abort(PanicMessage::of(info).as_bytes())
}
