//! The 8254 PIT, used once: as the reference clock that measures the TSC when the CPU does
//! not report its frequency (as under QEMU's TCG).
//!
//! Channel 0 counts down at 1.193182 MHz; we latch and read it in a loop instead of using
//! channel 2's gate on port 0x61, which `-M microvm` does not have.

use x86_64::instructions::port::Port;

pub const HZ: u64 = 1_193_182;

/// Reads the TSC across `pit_ticks` PIT ticks (at most 0xFFFF); returns the TSC delta.
pub fn measure_tsc(pit_ticks: u16) -> u64 {
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch0: Port<u8> = Port::new(0x40);
    // SAFETY: the PIT's command and channel-0 ports; the kernel does not use the PIT otherwise
    // (its IRQ is masked at the PIC), so reprogramming channel 0 disturbs nothing.
    unsafe {
        cmd.write(0x30); // channel 0, lobyte/hibyte, mode 0, binary
        ch0.write(0xff);
        ch0.write(0xff);
    }
    let read = || -> u16 {
        let mut cmd: Port<u8> = Port::new(0x43);
        let mut ch0: Port<u8> = Port::new(0x40);
        // SAFETY: latch command then two data reads, as the 8254 protocol requires.
        unsafe {
            cmd.write(0x00);
            let lo = ch0.read();
            let hi = ch0.read();
            u16::from_le_bytes([lo, hi])
        }
    };
    // Wait for the counter to start moving, then time `pit_ticks` of it.
    let first = read();
    let mut start = read();
    while start == first {
        start = read();
    }
    let tsc0 = super::rdtsc();
    loop {
        let now = read();
        if start.wrapping_sub(now) >= pit_ticks {
            return super::rdtsc() - tsc0;
        }
    }
}

/// Masks every line of both legacy 8259 PICs: the kernel uses the local APIC only.
pub fn mask_legacy_pic() {
    let mut master: Port<u8> = Port::new(0x21);
    let mut slave: Port<u8> = Port::new(0xa1);
    // SAFETY: writing the interrupt mask registers only masks interrupts.
    unsafe {
        master.write(0xff);
        slave.write(0xff);
    }
}
