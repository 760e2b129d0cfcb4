//! One-shot deadlines on the local APIC timer.
//!
//! The kernel speaks TSC ticks; the timer counts APIC bus ticks, whose rate we measure against
//! the TSC at boot. `arm_deadline(t)` programs a one-shot countdown that ends at TSC `t`; the
//! interrupt runs the handler registered with `set_handler`. TSC-deadline mode would save the
//! conversion, but QEMU's TCG does not offer it; the conversion costs nothing measurable.
//!
//! Each CPU keeps the deadline its timer is armed for (`timer_deadline`, until it fires), so
//! that a sandbox's tick can reuse one already armed ([`arm_by`], [`release`]).
//!
//! Every CPU has its own local APIC timer; the ratio measured on the boot CPU is shared (the
//! APICs run off one bus clock, the TSCs off one counter), and so is the handler. What fired
//! is counted per CPU.
//!
//! With the profiler on (`profile=N`) the timer is shared: each CPU keeps its deadline and its
//! next sample, and the countdown is programmed for the earlier of the two. A sampling
//! interrupt records its sample (`sampler.rs`) and returns without running the deadline's
//! handler unless the deadline has passed too; with the profiler off nothing of this runs.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::apic::{self, REG_LVT_TIMER, REG_TIMER_CURRENT, REG_TIMER_DIVIDE, REG_TIMER_INITIAL};
use super::traps::TrapFrame;
use super::{percpu, sampler};

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
    stop();
    RATIO.store(((u128::from(counted) << 32) / u128::from(tsc_window)) as u64, Ordering::Relaxed);
    (hz, (u128::from(counted) * u128::from(hz) / u128::from(tsc_window)) as u64)
}

/// Sets up this CPU's timer like the boot CPU's (divider, masked, stopped): for application
/// processors, which use the boot CPU's calibration.
pub fn init_cpu() {
    apic::write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
    apic::write(REG_LVT_TIMER, LVT_MASKED | VECTOR as u32);
    stop();
    if sampling() {
        let cpu = percpu::current();
        cpu.sample_at.store(super::rdtsc() + SAMPLE_INTERVAL.load(Ordering::Relaxed), Ordering::Relaxed);
        reprogram(cpu);
    }
}

/// Arms a one-shot interrupt at TSC value `deadline` (at once if it has passed).
pub fn arm_deadline(deadline: u64) {
    if !sampling() {
        percpu::current().timer_deadline.store(deadline, Ordering::Relaxed);
        program(deadline);
        return;
    }
    // The sampler shares the one timer: its next sample and this deadline, whichever is first.
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current();
        cpu.timer_deadline.store(deadline, Ordering::Relaxed);
        if cpu.sample_at.load(Ordering::Relaxed) == NONE {
            cpu.sample_at.store(super::rdtsc() + SAMPLE_INTERVAL.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        reprogram(cpu);
    });
}

/// Programs the countdown to end at TSC `deadline`.
fn program(deadline: u64) {
    let now = super::rdtsc();
    let tsc_ticks = deadline.saturating_sub(now);
    let apic_ticks = ((u128::from(tsc_ticks) * u128::from(RATIO.load(Ordering::Relaxed))) >> 32).max(1);
    apic::write(REG_LVT_TIMER, VECTOR as u32);
    apic::write(REG_TIMER_INITIAL, apic_ticks.min(u128::from(u32::MAX)) as u32);
    crate::wall_events::count(crate::wall_events::Event::TimerWrite);
}

/// Stops the countdown (a zero initial count).
fn stop() {
    apic::write(REG_TIMER_INITIAL, 0);
    crate::wall_events::count(crate::wall_events::Event::TimerWrite);
}

/// An interrupt at TSC `deadline` at the latest: a deadline already armed on this CPU that
/// comes first and has not passed is kept, and nothing is written (call with interrupts off,
/// so that it cannot fire between the look and the return unnoticed). For a sandbox's ticks,
/// whose handler looks at the clock and arms the next one: each write of the APIC timer is an
/// exit from an emulator's translated code, which takes its big lock and wakes its main loop to
/// move the timer (~12 µs of wall-clock time per write under QEMU's TCG, measured); with
/// [`release`] at each exit, back-to-back runs write it about once per check interval instead
/// of twice per run.
pub fn arm_by(deadline: u64) {
    if !sampling() {
        let armed = percpu::current().timer_deadline.load(Ordering::Relaxed);
        if armed <= deadline && super::rdtsc() < armed {
            return;
        }
    }
    arm_deadline(deadline);
}

/// Leaves this CPU's deadline armed but no longer needed: it fires once, later, and its
/// interrupt only counts (or ends a halt early, or, in a sandbox, is a tick that comes early,
/// which the sandbox's session takes for what it is). Unlike [`disarm`], writes nothing.
pub fn release() {
    if sampling() {
        disarm();
    }
}

/// Cancels a pending deadline (the sampler's next sample stays armed).
pub fn disarm() {
    if !sampling() {
        percpu::current().timer_deadline.store(NONE, Ordering::Relaxed);
        stop();
        return;
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current();
        cpu.timer_deadline.store(NONE, Ordering::Relaxed);
        reprogram(cpu);
    });
}

/// No deadline (and, in `sample_at`, sampling paused on this CPU).
const NONE: u64 = u64::MAX;
/// The sampler's interval in TSC ticks; 0 while it is off (the timer is then exactly the
/// deadline timer it always was).
static SAMPLE_INTERVAL: AtomicU64 = AtomicU64::new(0);

fn sampling() -> bool {
    SAMPLE_INTERVAL.load(Ordering::Relaxed) != 0
}

/// Turns the sampler on, every `interval` TSC ticks, starting on this CPU (others start in
/// [`init_cpu`], or after their next halt).
pub fn start_sampling(interval: u64) {
    SAMPLE_INTERVAL.store(interval, Ordering::Release);
    resume_sampling();
}

/// Samples again on this CPU after a halt paused it (a wake-up, or a deadline armed).
pub fn resume_sampling() {
    if !sampling() {
        return;
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current();
        if cpu.sample_at.load(Ordering::Relaxed) == NONE {
            cpu.sample_at.store(super::rdtsc() + SAMPLE_INTERVAL.load(Ordering::Relaxed), Ordering::Relaxed);
            reprogram(cpu);
        }
    });
}

/// Programs the earlier of this CPU's deadline and next sample (interrupts off).
fn reprogram(cpu: &percpu::PerCpu) {
    let deadline = cpu.timer_deadline.load(Ordering::Relaxed);
    let sample = cpu.sample_at.load(Ordering::Relaxed);
    cpu.armed_for_sample.store(sample < deadline, Ordering::Relaxed);
    match deadline.min(sample) {
        NONE => stop(),
        at => program(at),
    }
}

/// Registers the function the timer interrupt calls (in interrupt context).
pub fn set_handler(handler: fn()) {
    HANDLER.store(handler as usize, Ordering::Release);
}

/// The timer interrupt (before EOI). Returns whether a deadline fired: the sampler's own
/// interrupts take their sample and return false, and the caller leaves a sandbox running. A
/// sample that finds the CPU halted sends it back to its halt and pauses sampling on this CPU
/// until something else ends the halt (the deadline, a wake-up), so an idle CPU is not woken
/// at every interval and waits exactly as it would without the profiler.
pub(super) fn on_interrupt(frame: &mut TrapFrame) -> bool {
    let cpu = percpu::current();
    let now = super::rdtsc();
    if sampling() {
        let for_sample = cpu.armed_for_sample.load(Ordering::Relaxed);
        let fired = !for_sample || now >= cpu.timer_deadline.load(Ordering::Relaxed);
        let interval = SAMPLE_INTERVAL.load(Ordering::Relaxed);
        let sample_at = cpu.sample_at.load(Ordering::Relaxed);
        let mut rehalt = false;
        if for_sample || now >= sample_at {
            rehalt = sampler::sample(cpu, frame) && !fired;
            // Counted from after the sample, so the interrupted code always gets `interval`
            // ticks (a slow host would otherwise spend every tick sampling).
            let next = super::rdtsc() + interval;
            cpu.sample_at.store(if rehalt { NONE } else { next }, Ordering::Relaxed);
        } else if sample_at == NONE {
            cpu.sample_at.store(now + interval, Ordering::Relaxed);
        }
        if fired {
            cpu.timer_deadline.store(NONE, Ordering::Relaxed);
        }
        reprogram(cpu);
        if !fired {
            if rehalt {
                frame.rip = super::traps::halt_address();
            }
            return false;
        }
    } else {
        cpu.timer_deadline.store(NONE, Ordering::Relaxed);
    }
    cpu.timer_fired_at.store(now, Ordering::Relaxed);
    cpu.timer_firings.fetch_add(1, Ordering::Relaxed);
    let handler = HANDLER.load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only `set_handler` stores here, and it stores a valid `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
        f();
    }
    true
}

/// TSC value at this CPU's last timer interrupt and how many there were on this CPU.
pub fn last_firing() -> (u64, u64) {
    let cpu = percpu::current();
    (cpu.timer_fired_at.load(Ordering::Relaxed), cpu.timer_firings.load(Ordering::Relaxed))
}
