//! A compute core's life: take an instance, run it, hand the result back, halt when there is
//! nothing to do.

use super::dispatcher::Dispatcher;
use crate::{arch, time};

/// The longest an idle compute core halts before it looks at the queue by itself. A submit
/// wakes it at once (an IPI, see `Dispatcher::idle`); this is only a backstop.
const IDLE_BACKSTOP_MICROS: u64 = 100_000;

/// The entry of every compute core (`arch::start_cpus`).
pub fn executor(cpu: usize) -> ! {
    let dispatcher = Dispatcher::wait();
    let Some(core) = dispatcher.core_of(cpu) else {
        log::info!("cpu {cpu}: no role (not a compute core), halting");
        arch::idle()
    };
    log::debug!("cpu {cpu}: compute core");
    let backstop = time::micros_to_ticks(IDLE_BACKSTOP_MICROS);
    loop {
        if !dispatcher.run_one(core) {
            dispatcher.idle(core, time::ticks() + backstop);
        }
    }
}
