//! A panic's message and location, formatted without allocating (the allocator may be why it
//! panics), for the transports' panic handlers to end the run with.
#![cfg(feature = "panic-handler")]

use core::fmt::Write;
use core::panic::PanicInfo;

/// Up to 1 KiB of `panicked at src/lib.rs:10:5:\n<message>`, cut at a character boundary.
pub(crate) struct PanicMessage {
    bytes: [u8; 1024],
    len: usize,
}

impl PanicMessage {
    pub(crate) fn of(info: &PanicInfo<'_>) -> Self {
        let mut message = Self { bytes: [0; 1024], len: 0 };
        let _ = write!(message, "{info}");
        message
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Write for PanicMessage {
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
