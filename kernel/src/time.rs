//! Time since boot, on the architecture's free-running counter.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch;

static BOOT_TICKS: AtomicU64 = AtomicU64::new(0);

/// The counter's raw value (TSC on x86, CNTVCT on Arm).
pub fn ticks() -> u64 {
    arch::ticks()
}

/// Counter frequency, 0 until the architecture has measured it.
pub fn ticks_per_second() -> u64 {
    arch::ticks_per_second()
}

/// `us` microseconds in counter ticks (0 until the frequency is known).
pub fn micros_to_ticks(us: u64) -> u64 {
    (u128::from(us) * u128::from(ticks_per_second()) / 1_000_000) as u64
}

/// `ms` milliseconds in counter ticks.
pub fn millis_to_ticks(ms: u64) -> u64 {
    (u128::from(ms) * u128::from(ticks_per_second()) / 1000) as u64
}

/// Marks the counter value that log timestamps count from.
pub fn set_boot_ticks(t: u64) {
    BOOT_TICKS.store(t, Ordering::Relaxed);
}

/// Microseconds since boot, or `None` before the counter frequency is known.
pub fn micros_since_boot() -> Option<u64> {
    let hz = ticks_per_second();
    (hz != 0).then(|| {
        let delta = ticks().saturating_sub(BOOT_TICKS.load(Ordering::Relaxed));
        (u128::from(delta) * 1_000_000 / u128::from(hz)) as u64
    })
}

pub fn log_calibration() {
    let hz = ticks_per_second();
    log::info!("clock: {}.{:03} MHz ({})", hz / 1_000_000, hz / 1000 % 1000, arch::clock_source());
}
