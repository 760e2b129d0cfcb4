//! The run queue shared by the I/O core and the compute cores, the results on their way back,
//! and what each compute core is doing.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use control::{HostError, StoredFunction, Ticket};
use dispatch::{CoreStats, RunQueue};
use engine::PreparedImage;
use model::{Set, TenantId};
use spin::{Mutex, Once};

use crate::engines::Engines;
use crate::{arch, time};

/// Instances queued at most, over all tenants. A full queue pushes back: the control plane keeps
/// the instances it could not start (a wide `each` waits in the planner for room) and refuses
/// new invocations with 503 and `Retry-After` until there is room again.
pub const RUN_QUEUE_CAPACITY: usize = 1024;

/// One instance on its way to a core.
pub struct Job {
    pub ticket: Ticket,
    pub tenant: TenantId,
    pub function: Arc<StoredFunction>,
    pub prepared: PreparedImage,
    pub inputs: Vec<Set>,
}

/// One core that runs instances: a compute core, or the I/O core in single-core mode.
pub struct Core {
    pub cpu: usize,
    /// The invocation whose instance runs here, plus one (0: none). Written under the queue lock,
    /// so that [`Dispatcher::cancel`] sees every instance that left the queue.
    running: AtomicU64,
    /// Set by [`Dispatcher::cancel`]; the engine's deadline check reads it.
    cancel: AtomicBool,
    /// Halted, waiting for work: a submit wakes it.
    idle: AtomicBool,
    pub stats: Mutex<CoreStats>,
}

pub type Completion = (Ticket, Result<Vec<Set>, HostError>);

/// What the run queue holds: an instance not started yet, or a native run preempted at the end
/// of its time slice (its sandbox parked with its whole context), which any core resumes when
/// the fair-share queue comes back to it.
enum Work {
    Fresh {
        job: Job,
        /// Whether it already found every protection key held (counted once per run).
        waited_for_key: bool,
    },
    #[cfg(target_arch = "x86_64")]
    Resume(Parked),
}

#[cfg(target_arch = "x86_64")]
struct Parked {
    ticket: Ticket,
    tenant: TenantId,
    sandbox: crate::native::Sandbox,
    /// Ticks its earlier slices took.
    ran: u64,
}

impl Work {
    /// (tenant index, invocation) for the queue.
    fn ids(&self) -> (u32, u64) {
        match self {
            Work::Fresh { job, .. } => (job.tenant.index(), job.ticket.invocation),
            #[cfg(target_arch = "x86_64")]
            Work::Resume(p) => (p.tenant.index(), p.ticket.invocation),
        }
    }
}

/// What one turn on a core came to.
enum After {
    /// The run ended (its result), after earlier slices of this many ticks.
    Done(Ticket, Result<Vec<Set>, HostError>, u64),
    /// It goes back in the queue (preempted, or waiting for a protection key).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Again(Work),
}

/// A native run's deadline check between its slices: only the dispatcher's cancellation flag
/// (its time budget is the sandbox's own, counted over its slices only).
#[cfg(target_arch = "x86_64")]
struct Cancelled<'a>(&'a AtomicBool);

#[cfg(target_arch = "x86_64")]
impl engine::Deadline for Cancelled<'_> {
    fn expired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Dispatcher {
    engines: Engines,
    queue: Mutex<RunQueue<Work>>,
    done: Mutex<VecDeque<Completion>>,
    cores: Vec<Core>,
    /// The CPU whose loop collects results (woken when one arrives).
    io_cpu: usize,
    /// No compute cores: the I/O core runs instances itself.
    inline: bool,
}

static DISPATCHER: Once<Dispatcher> = Once::new();

impl Dispatcher {
    /// Sets up the dispatcher for `compute_cpus` (empty: single-core mode, the I/O core runs
    /// instances). Compute cores may already be waiting in [`executor`](super::executor).
    pub fn init(engines: Engines, io_cpu: usize, compute_cpus: &[usize]) -> &'static Self {
        let inline = compute_cpus.is_empty();
        let now = time::ticks();
        let core = |cpu| Core {
            cpu,
            running: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            stats: Mutex::new(CoreStats::new(now)),
        };
        let cores = if inline { alloc::vec![core(io_cpu)] } else { compute_cpus.iter().map(|&c| core(c)).collect() };
        DISPATCHER.call_once(|| Self {
            engines,
            queue: Mutex::new(RunQueue::new(RUN_QUEUE_CAPACITY)),
            done: Mutex::new(VecDeque::new()),
            cores,
            io_cpu,
            inline,
        })
    }

    /// The dispatcher, once [`init`](Self::init) ran (compute cores wait here at boot).
    pub fn wait() -> &'static Self {
        DISPATCHER.wait()
    }

    pub fn get() -> Option<&'static Self> {
        DISPATCHER.get()
    }

    pub fn engines(&self) -> &Engines {
        &self.engines
    }

    pub fn cores(&self) -> &[Core] {
        &self.cores
    }

    pub fn is_inline(&self) -> bool {
        self.inline
    }

    pub fn core_of(&self, cpu: usize) -> Option<&Core> {
        self.cores.iter().find(|c| c.cpu == cpu)
    }

    /// Single-core mode: runs one queued instance on this, the I/O core, calling `io_pass`
    /// between its fuel slices so that the network is served while it computes. Returns
    /// whether it ran one; with compute cores it never does.
    pub fn run_inline(&self, io_pass: &mut dyn FnMut()) -> bool {
        match self.cores.as_slice() {
            [core] if self.inline => self.run_one(core, Some(io_pass)),
            _ => false,
        }
    }

    /// Queues an instance and wakes an idle core; a full queue hands the job back.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let (tenant, composition) = (job.tenant.index(), job.ticket.invocation);
        {
            let mut queue = self.queue.lock();
            // (Checked here so that the job comes back as it went in; the push then fits.)
            if queue.len() >= queue.capacity() {
                return Err(job);
            }
            let _ = queue.push(tenant, composition, Work::Fresh { job, waited_for_key: false });
        }
        if let Some(core) = self.cores.iter().find(|c| c.idle.swap(false, Ordering::AcqRel))
            && core.cpu != arch::cpu_index()
        {
            arch::wake(core.cpu);
        }
        Ok(())
    }

    /// Whether the run queue is full.
    pub fn saturated(&self) -> bool {
        let queue = self.queue.lock();
        queue.len() >= queue.capacity()
    }

    /// Queued instances now, per tenant index.
    pub fn queue_depths(&self) -> Vec<(u32, usize)> {
        self.queue.lock().depths().collect()
    }

    /// One finished instance's result, if any.
    pub fn take_completed(&self) -> Option<Completion> {
        self.done.lock().pop_front()
    }

    /// Drops the queued instances of `invocation` and stops its running ones at their next
    /// deadline check (their results are then dropped by the control plane).
    /// A parked (preempted) native run of `invocation` is dropped with the queue's other
    /// instances, which frees its sandbox.
    pub fn cancel(&self, invocation: u64) {
        let mut queue = self.queue.lock();
        let removed = queue.cancel_composition(invocation);
        for core in &self.cores {
            if core.running.load(Ordering::Acquire) == invocation + 1 {
                core.cancel.store(true, Ordering::Release);
            }
        }
        drop(queue);
        // Freed outside the queue lock (a parked MPK sandbox empties its slot).
        let dropped = removed.len();
        drop(removed);
        if dropped > 0 {
            log::debug!("dispatcher: invocation {invocation} cancelled, {dropped} queued instance(s) dropped");
        }
    }

    /// Runs the next queued work on `core` (this CPU) for one turn: a new instance, or a slice
    /// of a preempted native run. Returns whether there was any. A native run whose slice ends
    /// goes back in the queue behind the other tenants' work; a wasm run goes to its end, and
    /// `between_slices` runs at every deadline check of its engine (see `Engines::run`).
    pub fn run_one(&self, core: &Core, between_slices: Option<&mut dyn FnMut()>) -> bool {
        let work = {
            let mut queue = self.queue.lock();
            let Some((_, work)) = queue.pop() else { return false };
            core.cancel.store(false, Ordering::Relaxed);
            core.running.store(work.ids().1 + 1, Ordering::Release);
            work
        };
        core.stats.lock().begin(time::ticks());
        match self.turn(work, &core.cancel, between_slices) {
            After::Done(ticket, result, earlier) => {
                core.stats.lock().end_resumed(time::ticks(), earlier);
                core.running.store(0, Ordering::Release);
                self.finish(core, ticket, result);
            }
            After::Again(work) => {
                core.stats.lock().pause(time::ticks());
                let (tenant, invocation) = work.ids();
                let mut queue = self.queue.lock();
                // Cancelled during its slice (after the last check): not queued again.
                if core.cancel.load(Ordering::Acquire) {
                    core.running.store(0, Ordering::Release);
                    drop(queue);
                    let ticket = match &work {
                        Work::Fresh { job, .. } => job.ticket,
                        #[cfg(target_arch = "x86_64")]
                        Work::Resume(p) => p.ticket,
                    };
                    drop(work);
                    let cancelled = HostError::new(503, "cancelled", "the invocation was cancelled");
                    self.finish(core, ticket, Err(cancelled));
                } else {
                    queue.requeue(tenant, invocation, work);
                    core.running.store(0, Ordering::Release);
                }
            }
        }
        true
    }

    fn finish(&self, core: &Core, ticket: Ticket, result: Result<Vec<Set>, HostError>) {
        self.done.lock().push_back((ticket, result));
        if self.io_cpu != core.cpu {
            arch::wake(self.io_cpu);
        }
    }

    /// One turn of `work` on this core.
    fn turn(&self, work: Work, cancel: &AtomicBool, between_slices: Option<&mut dyn FnMut()>) -> After {
        match work {
            Work::Fresh { job, waited_for_key } => {
                #[cfg(not(target_arch = "x86_64"))]
                let _ = waited_for_key;
                #[cfg(target_arch = "x86_64")]
                let image = job.prepared.clone();
                #[cfg(target_arch = "x86_64")]
                if let Some(native) = self.engines.native(job.function.spec(), &image) {
                    let Job { ticket, tenant, function, prepared, inputs } = job;
                    let spec = function.spec();
                    let outputs: Vec<alloc::string::String> = spec.outputs().to_vec();
                    let deadline = Cancelled(cancel);
                    let limits = crate::engines::limits(spec);
                    let invocation =
                        engine::Invocation { inputs, outputs: &outputs, limits, deadline: Some(&deadline) };
                    let start = time::ticks();
                    return match native.start(invocation) {
                        crate::native::Step::NoKey(inputs) => {
                            if !waited_for_key {
                                crate::native::count_key_wait();
                            }
                            let job = Job { ticket, tenant, function, prepared, inputs };
                            After::Again(Work::Fresh { job, waited_for_key: true })
                        }
                        step => after_step(step, ticket, tenant, 0, start),
                    };
                }
                let Job { ticket, tenant, function, prepared, inputs } = job;
                let result = self.engines.run(tenant, &function, &prepared, inputs, cancel, between_slices);
                After::Done(ticket, result, 0)
            }
            #[cfg(target_arch = "x86_64")]
            Work::Resume(Parked { ticket, tenant, sandbox, ran }) => {
                let start = time::ticks();
                after_step(sandbox.resume(Some(&Cancelled(cancel))), ticket, tenant, ran, start)
            }
        }
    }

    /// Halts `core` (this CPU) until a submit wakes it, or at the latest at tick `backstop`.
    /// Race-free: the idle mark goes up first and the queue is checked with interrupts off, so
    /// a submit is either seen here or its wake-up interrupt ends the halt.
    pub fn idle(&self, core: &Core, backstop: u64) {
        core.idle.store(true, Ordering::Release);
        arch::wait_for_work(Some(backstop), || !self.queue.lock().is_empty());
        core.idle.store(false, Ordering::Release);
    }

    /// Whether results wait for the I/O core (it checks before it halts).
    pub fn has_completions(&self) -> bool {
        !self.done.lock().is_empty()
    }
}

/// What a native slice that started at `start`, after earlier slices of `ran` ticks, came to.
#[cfg(target_arch = "x86_64")]
fn after_step(step: crate::native::Step, ticket: Ticket, tenant: TenantId, ran: u64, start: u64) -> After {
    let ran_now = ran.saturating_add(time::ticks().saturating_sub(start));
    match step {
        crate::native::Step::Done(result) => {
            crate::engines::count_run(ran_now);
            let result = result.map(|c| c.outputs).map_err(crate::engines::host_error);
            After::Done(ticket, result, ran)
        }
        crate::native::Step::Preempted(sandbox) => {
            After::Again(Work::Resume(Parked { ticket, tenant, sandbox, ran: ran_now }))
        }
        crate::native::Step::NoKey(_) => {
            After::Done(ticket, Err(HostError::new(500, "internal", "a resumed sandbox asked for a key")), ran)
        }
    }
}
