//! Panics end the run through `abort`, with the panic's message and location.
#![cfg(feature = "panic-handler")]

use core::fmt::Write;
use core::panic::PanicInfo;

use super::sys;

/// A fixed buffer: formatting a panic must not allocate (the allocator may be why it panics).
struct Message {
    bytes: [u8; 1024],
    len: usize,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        // Cut at a character boundary so the message stays valid UTF-8.
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut message = Message { bytes: [0; 1024], len: 0 };
    // "panicked at src/lib.rs:10:5:\n<message>"
    let _ = write!(message, "{info}");
    if super::heap_refused() {
        sys::exit_out_of_memory(&message.bytes[..message.len])
    }
    sys::exit_abort(&message.bytes[..message.len])
}
