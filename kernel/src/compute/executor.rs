//! A compute core's life: take an instance, run it, hand the result back, halt when there is
//! nothing to do.

use super::dispatcher::Dispatcher;
use crate::{arch, time};

/// How long an idle compute core halts before it looks at the queue again by itself. A submit
/// wakes it at once (an IPI); this bounds the cost of a wake-up lost in a race.
const IDLE_MICROS: u64 = 10_000;

/// The entry of every compute core (`arch::start_cpus`).
pub fn executor(cpu: usize) -> ! {
    let dispatcher = Dispatcher::wait();
    let Some(core) = dispatcher.core_of(cpu) else {
        log::info!("cpu {cpu}: no role (not a compute core), halting");
        arch::idle()
    };
    log::debug!("cpu {cpu}: compute core");
    loop {
        if dispatcher.run_one(core, None) {
            continue;
        }
        if dispatcher.may_idle(core) {
            let ticks = u128::from(IDLE_MICROS) * u128::from(time::ticks_per_second()) / 1_000_000;
            arch::sleep_until(time::ticks() + ticks as u64);
        }
    }
}
