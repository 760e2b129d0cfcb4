//! The run queue shared by the I/O core and the compute cores, the results on their way back,
//! and what each compute core is doing.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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

pub struct Dispatcher {
    engines: Engines,
    queue: Mutex<RunQueue<Job>>,
    done: Mutex<VecDeque<Completion>>,
    cores: Vec<Core>,
    /// The CPU whose loop collects results (woken when one arrives).
    io_cpu: usize,
    /// No compute cores: the I/O core runs instances itself.
    inline: bool,
    /// Instances one tenant may have queued ([`share_among`](Self::share_among)).
    tenant_share: AtomicUsize,
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
            tenant_share: AtomicUsize::new(RUN_QUEUE_CAPACITY),
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

    /// Divides the run queue among `tenants`: each may have an equal share of it queued (at
    /// least one instance), so that one tenant's fan-out cannot fill it and keep the others'
    /// work out.
    pub fn share_among(&self, tenants: usize) {
        self.tenant_share.store((RUN_QUEUE_CAPACITY / tenants.max(1)).max(1), Ordering::Relaxed);
    }

    /// Queues an instance and wakes an idle core; a full queue, or a tenant at its share of it,
    /// hands the job back.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let (tenant, composition) = (job.tenant.index(), job.ticket.invocation);
        {
            let mut queue = self.queue.lock();
            if queue.depth(tenant) >= self.tenant_share.load(Ordering::Relaxed) {
                return Err(job);
            }
            queue.push(tenant, composition, job).map_err(|full| full.into_inner())?;
        }
        if let Some(core) = self.cores.iter().find(|c| c.idle.swap(false, Ordering::AcqRel))
            && core.cpu != arch::cpu_index()
        {
            arch::wake(core.cpu);
        }
        Ok(())
    }

    /// Whether the run queue is full, or holds `tenant`'s share of it.
    pub fn saturated(&self, tenant: model::TenantId) -> bool {
        let queue = self.queue.lock();
        queue.len() >= queue.capacity() || queue.depth(tenant.index()) >= self.tenant_share.load(Ordering::Relaxed)
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
    pub fn cancel(&self, invocation: u64) {
        let mut queue = self.queue.lock();
        let dropped = queue.cancel_composition(invocation).len();
        for core in &self.cores {
            if core.running.load(Ordering::Acquire) == invocation + 1 {
                core.cancel.store(true, Ordering::Release);
            }
        }
        drop(queue);
        if dropped > 0 {
            log::debug!("dispatcher: invocation {invocation} cancelled, {dropped} queued instance(s) dropped");
        }
    }

    /// Runs the next queued instance on `core` (this CPU). Returns whether there was one.
    /// `between_slices` runs at every deadline check of the engine (see `Engines::run`).
    pub fn run_one(&self, core: &Core, between_slices: Option<&mut dyn FnMut()>) -> bool {
        let job = {
            let mut queue = self.queue.lock();
            let Some((_, job)) = queue.pop() else { return false };
            core.cancel.store(false, Ordering::Relaxed);
            core.running.store(job.ticket.invocation + 1, Ordering::Release);
            job
        };
        core.stats.lock().begin(time::ticks());
        let Job { ticket, tenant, function, prepared, inputs } = job;
        let result = self.engines.run(tenant, &function, &prepared, inputs, &core.cancel, between_slices);
        core.stats.lock().end(time::ticks());
        core.running.store(0, Ordering::Release);
        self.done.lock().push_back((ticket, result));
        if self.io_cpu != core.cpu {
            arch::wake(self.io_cpu);
        }
        true
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
