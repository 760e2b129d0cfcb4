//! COM ports through the `uart_16550` crate (x86 port I/O).

use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

/// The first PC serial port's I/O base.
pub const COM1: u16 = 0x3f8;

/// A 16550 UART on an x86 I/O port, initialised to 115200 8N1.
pub struct PortUart {
    inner: Uart16550<PioBackend>,
}

impl PortUart {
    /// # Safety
    /// `base` must be the I/O base of a 16550-compatible UART that nothing else drives.
    pub unsafe fn new(base: u16) -> Option<Self> {
        // SAFETY: the caller guarantees the port belongs to a UART we own.
        let mut inner = unsafe { Uart16550::new_port(base) }.ok()?;
        inner.init(Config::default()).ok()?;
        Some(Self { inner })
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.inner.send_bytes_exact(b"\r");
            }
            self.inner.send_bytes_exact(&[b]);
        }
    }
}
