//! The other CPUs where the dispatcher does not take them (self-tests, a node without network):
//! started and parked.
//!
//! [`start`] asks the architecture to start every CPU it can find, each running [`park`]: a
//! loop that halts until woken, runs the one job posted for it (self-tests use this through
//! [`run_on`]), and counts its wake-ups. A serving node starts its CPUs with the dispatcher's
//! entry instead (`compute::executor`); `arch::start_cpus`, `arch::wake` and
//! `arch::wait_for_work` are the interface both build on.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::boot::BootInfo;
use crate::{arch, time};

/// The most CPUs the kernel starts.
pub const MAX_CPUS: usize = 64;

/// Per CPU: times it came back from a halt in [`park`].
static WAKEUPS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the job posted for it (a `fn(usize)` as an address; 0: none).
static JOBS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
/// Per CPU: jobs it has finished.
static JOBS_DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Starts the other CPUs, parked. Returns the number of CPUs online.
pub fn start(info: &BootInfo) -> usize {
    arch::start_cpus(info, MAX_CPUS, park)
}

/// An application processor's life until the dispatcher exists: halt, run a posted job, count.
#[allow(unsafe_code)] // the posted job word back to the `fn(usize)` it was made from
fn park(index: usize) -> ! {
    loop {
        let job = JOBS[index].swap(0, Ordering::AcqRel);
        if job != 0 {
            // SAFETY: only `run_on` posts here, and it posts a `fn(usize)`.
            let job: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(job) };
            job(index);
            JOBS_DONE[index].fetch_add(1, Ordering::AcqRel);
        }
        arch::wait_for_work(None, || JOBS[index].load(Ordering::Acquire) != 0);
        WAKEUPS[index].fetch_add(1, Ordering::AcqRel);
    }
}

/// Times CPU `index` came back from a halt in [`park`].
pub fn wakeups(index: usize) -> u64 {
    WAKEUPS.get(index).map_or(0, |w| w.load(Ordering::Acquire))
}

/// Runs `job(index)` on parked CPU `index` and waits up to `timeout_us` for it to finish.
/// False if the CPU is not online, is the caller, or did not finish in time.
pub fn run_on(index: usize, job: fn(usize), timeout_us: u64) -> bool {
    if index == 0 || index >= arch::cpu_count() || index == arch::cpu_index() || index >= MAX_CPUS {
        return false;
    }
    let done = JOBS_DONE[index].load(Ordering::Acquire);
    if JOBS[index].compare_exchange(0, job as usize, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return false; // one job at a time
    }
    arch::wake(index);
    if wait_until(timeout_us, || JOBS_DONE[index].load(Ordering::Acquire) != done) {
        return true;
    }
    // Take the job back if it never started (a CPU that is not parked).
    let _ = JOBS[index].compare_exchange(job as usize, 0, Ordering::AcqRel, Ordering::Acquire);
    false
}

/// Waits up to `timeout_us` for `done()`, halting in short steps rather than spinning (under
/// QEMU's `-icount` one host thread runs every virtual CPU in turn, and a spinning CPU keeps
/// the others from running until QEMU's 100 ms round-robin kick). Returns whether `done()`
/// held.
pub fn wait_until(timeout_us: u64, done: impl Fn() -> bool) -> bool {
    const STEP_MICROS: u64 = 20;
    let give_up = time::ticks() + time::micros_to_ticks(timeout_us);
    loop {
        if done() {
            return true;
        }
        let now = time::ticks();
        if now >= give_up {
            return done();
        }
        arch::wait_for_work(Some(give_up.min(now + time::micros_to_ticks(STEP_MICROS))), &done);
    }
}
