//! The Arm PL011 UART (QEMU `virt` has one at 0x0900_0000), transmit side, polled.

use core::ptr::NonNull;

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 reached through memory-mapped registers.
pub struct Pl011 {
    base: NonNull<u32>,
}

// SAFETY: the registers are plain MMIO; the kernel serialises access with its console lock.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must map a PL011's registers (Device memory) for as long as this value lives,
    /// and nothing else may drive that UART.
    pub const unsafe fn new(base: NonNull<u32>) -> Self {
        Self { base }
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    fn put(&mut self, byte: u8) {
        // SAFETY: `base` maps the PL011 (constructor contract); FR and DR are within its page.
        unsafe {
            let fr = self.base.byte_add(FR).as_ptr();
            while fr.read_volatile() & FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            self.base.byte_add(DR).as_ptr().write_volatile(u32::from(byte));
        }
    }
}
