//! The 8254 PIT, used once: as the reference clock that measures the TSC when the CPU does
//! not report its frequency (as under QEMU's TCG).
//!
//! Channel 0 counts down at 1.193182 MHz; we latch and read it in a loop instead of using
//! channel 2's gate on port 0x61, which `-M microvm` does not have.

use x86_64::instructions::port::Port;

pub const HZ: u64 = 1_193_182;

/// One measurement of the TSC against the PIT.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// PIT ticks between the two edges the measurement saw.
    pub pit_ticks: u64,
    /// TSC ticks between the same two edges (their midpoints).
    pub tsc_ticks: u64,
    /// How far each edge may lie from where it was taken, in TSC ticks, both edges together:
    /// the TSC time between the read before an edge and the read that saw it. A vCPU preempted
    /// by its host mid-loop shows up here instead of as a silently wrong frequency.
    pub uncertainty: u64,
}

impl Window {
    /// The TSC frequency this window gives.
    pub fn tsc_hz(&self) -> u64 {
        (u128::from(self.tsc_ticks) * u128::from(HZ) / u128::from(self.pit_ticks.max(1))) as u64
    }
}

/// Times at least `pit_ticks` PIT ticks (at most 0xFFFF) with the TSC. Each edge (the counter
/// taking a new value) is bracketed by the TSC read before the previous latch and the one after
/// the latch that saw it; the window runs midpoint to midpoint and counts the PIT ticks actually
/// passed, so a slow loop that overshoots `pit_ticks` is still measured exactly. A vCPU its host
/// preempts between a TSC read and its latch widens that bracket (the counter may have moved on
/// meanwhile), so the caller sees a loose window rather than a wrong one: with the bracket ending
/// at the TSC read *before* the latch, a preemption there once let a 0.25 ms window take about
/// twice its PIT ticks with a tight bracket, and the clock ran twice as fast (a CI run, under
/// load: `sleep 1500` answered after 735 ms).
pub fn measure_tsc(pit_ticks: u16) -> Window {
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch0: Port<u8> = Port::new(0x40);
    // SAFETY: the PIT's command and channel-0 ports; the kernel does not use the PIT otherwise
    // (its IRQ is masked at the PIC), so reprogramming channel 0 disturbs nothing.
    unsafe {
        cmd.write(0x30); // channel 0, lobyte/hibyte, mode 0, binary
        ch0.write(0xff);
        ch0.write(0xff);
    }
    // The TSC just before the latch, the count latched, and the TSC just after it.
    let read = || -> (u64, u16, u64) {
        let mut cmd: Port<u8> = Port::new(0x43);
        let mut ch0: Port<u8> = Port::new(0x40);
        let before = super::rdtsc();
        // SAFETY: latch command then two data reads, as the 8254 protocol requires.
        let count = unsafe {
            cmd.write(0x00);
            let lo = ch0.read();
            let hi = ch0.read();
            u16::from_le_bytes([lo, hi])
        };
        (before, count, super::rdtsc())
    };
    // Waits for the count to change from `from`, `before` being the TSC before the latch that
    // last saw `from`. Returns the edge's bracket (that TSC, as updated; the TSC after the latch
    // that saw the change), the new count, and the TSC before that latch (the next edge's
    // `before`).
    let edge = |mut before: u64, from: u16| -> ((u64, u64), u16, u64) {
        loop {
            let (tsc, count, after) = read();
            if count != from {
                return ((before, after), count, tsc);
            }
            before = tsc;
        }
    };
    // Wait for the counter to start moving, then for the first edge after it (the first read
    // may land anywhere in a tick).
    let (first, count, _) = read();
    let (_, moving, at) = edge(first, count);
    let ((s0, s1), start, mut at) = edge(at, moving);
    let (mut e0, mut e1, mut now) = (s0, s1, start);
    while start.wrapping_sub(now) < pit_ticks {
        ((e0, e1), now, at) = edge(at, now);
    }
    Window {
        pit_ticks: u64::from(start.wrapping_sub(now)),
        tsc_ticks: (e0 + e1) / 2 - (s0 + s1) / 2,
        uncertainty: (s1 - s0) + (e1 - e0),
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
