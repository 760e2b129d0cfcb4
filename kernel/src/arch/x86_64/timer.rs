//! One-shot deadlines on the local APIC timer.
//!
//! The kernel speaks TSC ticks; the timer counts APIC bus ticks, whose rate we measure against
//! the TSC at boot. `arm_deadline(t)` programs a one-shot countdown that ends at TSC `t`; the
//! interrupt runs the handler registered with `set_handler`. TSC-deadline mode would save the
//! conversion, but QEMU's TCG does not offer it; the conversion costs nothing measurable.
//!
//! Every CPU has its own local APIC timer; the ratio measured on the boot CPU is shared (the
//! APICs run off one bus clock, the TSCs off one counter), and so is the handler. What fired
//! is counted per CPU.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::apic::{self, REG_LVT_TIMER, REG_TIMER_CURRENT, REG_TIMER_DIVIDE, REG_TIMER_INITIAL};
use super::percpu;

pub const VECTOR: u64 = 0x20;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_1: u32 = 0b1011;

/// APIC timer ticks per 2^32 TSC ticks (a fixed-point ratio, so no floating point).
static RATIO: AtomicU64 = AtomicU64::new(0);
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Measures the APIC timer's rate against the TSC while `tsc_hz` finds the TSC's frequency
/// (so the timer's calibration costs no window of its own). Returns `(TSC Hz, APIC timer Hz)`.
pub fn calibrate(tsc_hz: impl FnOnce() -> u64) -> (u64, u64) {
    apic::write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
    apic::write(REG_LVT_TIMER, LVT_MASKED | VECTOR as u32);
    apic::write(REG_TIMER_INITIAL, u32::MAX);
    let started = super::rdtsc();
    let hz = tsc_hz();
    let tsc_window = (super::rdtsc() - started).max(1);
    let counted = u64::from(u32::MAX - apic::read(REG_TIMER_CURRENT));
    apic::write(REG_TIMER_INITIAL, 0);
    RATIO.store(((u128::from(counted) << 32) / u128::from(tsc_window)) as u64, Ordering::Relaxed);
    (hz, (u128::from(counted) * u128::from(hz) / u128::from(tsc_window)) as u64)
}

/// Sets up this CPU's timer like the boot CPU's (divider, masked, stopped): for application
/// processors, which use the boot CPU's calibration.
pub fn init_cpu() {
    apic::write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
    apic::write(REG_LVT_TIMER, LVT_MASKED | VECTOR as u32);
    apic::write(REG_TIMER_INITIAL, 0);
}

/// Arms a one-shot interrupt at TSC value `deadline` (at once if it has passed).
pub fn arm_deadline(deadline: u64) {
    let now = super::rdtsc();
    let tsc_ticks = deadline.saturating_sub(now);
    let apic_ticks = ((u128::from(tsc_ticks) * u128::from(RATIO.load(Ordering::Relaxed))) >> 32).max(1);
    apic::write(REG_LVT_TIMER, VECTOR as u32);
    apic::write(REG_TIMER_INITIAL, apic_ticks.min(u128::from(u32::MAX)) as u32);
}

/// Cancels a pending deadline.
pub fn disarm() {
    apic::write(REG_TIMER_INITIAL, 0);
}

/// Registers the function the timer interrupt calls (in interrupt context).
pub fn set_handler(handler: fn()) {
    HANDLER.store(handler as usize, Ordering::Release);
}

pub(super) fn on_interrupt() {
    let cpu = percpu::current();
    cpu.timer_fired_at.store(super::rdtsc(), Ordering::Relaxed);
    cpu.timer_firings.fetch_add(1, Ordering::Relaxed);
    let handler = HANDLER.load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only `set_handler` stores here, and it stores a valid `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
        f();
    }
}

/// TSC value at this CPU's last timer interrupt and how many there were on this CPU.
pub fn last_firing() -> (u64, u64) {
    let cpu = percpu::current();
    (cpu.timer_fired_at.load(Ordering::Relaxed), cpu.timer_firings.load(Ordering::Relaxed))
}
