//! Deadlines on the generic timer's virtual timer (CNTV), each CPU its own: it compares
//! CNTVCT_EL0, the kernel's clock, against CNTV_CVAL_EL0 and raises its PPI (a level
//! interrupt) while the condition holds and the timer is enabled and unmasked. The handler
//! disables it, which drops the level.

use core::sync::atomic::Ordering;

use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Writeable};

use super::percpu::{self, PerCpu};

/// Arms this CPU's timer to interrupt when the counter reaches `deadline` (at once if it has).
pub fn arm(deadline: u64) {
    percpu::current().timer_deadline.store(deadline, Ordering::Relaxed);
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    crate::wall_events::count(crate::wall_events::Event::TimerWrite);
}

/// An interrupt at counter `deadline` at the latest: a deadline already armed on this CPU that
/// comes first and has not passed is kept, and no register is written (call with IRQs masked).
/// As on x86_64 (`timer::arm_by` there): each write of the timer makes QEMU's TCG move its
/// timer; with [`release`] at each exit a sandbox's back-to-back runs write it about once per
/// check interval.
pub fn arm_by(deadline: u64) {
    let armed = percpu::current().timer_deadline.load(Ordering::Relaxed);
    if armed <= deadline && super::ticks() < armed {
        return;
    }
    arm(deadline);
}

/// Leaves this CPU's deadline armed but no longer needed: it fires once, later, and its
/// interrupt only counts (or ends a wait early, or is an early tick for the next sandbox).
/// Unlike [`disarm`], writes nothing.
pub fn release() {}

/// Stops this CPU's timer (no interrupt until it is armed again).
pub fn disarm() {
    percpu::current().timer_deadline.store(u64::MAX, Ordering::Relaxed);
    CNTV_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    crate::wall_events::count(crate::wall_events::Event::TimerWrite);
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
