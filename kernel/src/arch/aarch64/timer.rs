//! Deadlines on the generic timer's virtual timer (CNTV), each CPU its own: it compares
//! CNTVCT_EL0, the kernel's clock, against CNTV_CVAL_EL0 and raises its PPI (a level
//! interrupt) while the condition holds and the timer is enabled and unmasked. The handler
//! disables it, which drops the level.

use core::sync::atomic::Ordering;

use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Writeable};

use super::percpu::{self, PerCpu};

/// Arms this CPU's timer to interrupt when the counter reaches `deadline` (at once if it has).
pub fn arm(deadline: u64) {
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Stops this CPU's timer (no interrupt until it is armed again).
pub fn disarm() {
    CNTV_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// The timer's interrupt: disarm (the level drops) and record.
pub fn on_interrupt(cpu: &PerCpu) {
    disarm();
    cpu.timer_fired_at.store(super::ticks(), Ordering::Relaxed);
    cpu.timer_firings.fetch_add(1, Ordering::Relaxed);
}

/// Counter value at this CPU's last timer interrupt and how many it has taken.
pub fn last_firing() -> (u64, u64) {
    let cpu = percpu::current();
    (cpu.timer_fired_at.load(Ordering::Relaxed), cpu.timer_firings.load(Ordering::Relaxed))
}
