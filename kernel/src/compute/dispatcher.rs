//! The run queue shared by the I/O core and the compute cores, the results on their way back,
//! and what each compute core is doing.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use control::{RunError, StoredFunction, Ticket};
use dispatch::{CoreStats, RunQueue};
use engine::PreparedImage;
use model::{Set, TenantId};
use spin::{Mutex, Once};
use wasm::{WasmRun, WasmStep};

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
    /// Woken for queued work and not yet back at the queue: as good as idle for that work
    /// (the helping I/O core leaves it alone, `Dispatcher::help`).
    woken: AtomicBool,
    pub stats: Mutex<CoreStats>,
}

pub type Completion = (Ticket, Result<Vec<Set>, RunError>);

/// What the run queue holds: an instance not started yet, or a run whose turn ended (a native
/// sandbox preempted at its slice's end with its whole context, or a wasm run paused between
/// fuel slices), which any core resumes when the fair-share queue comes back to it.
enum Work {
    Fresh {
        job: Job,
        /// Whether it already found every protection key held (counted once per run).
        waited_for_key: bool,
    },
    Resume(Parked),
}

/// A run between two turns.
struct Parked {
    ticket: Ticket,
    tenant: TenantId,
    /// Exactly one (on the heap: queue entries stay small).
    paused: Vec<Paused>,
    /// Ticks its earlier turns took.
    ran: u64,
    /// Ticks left of its wall-clock backstop (wasm; a native sandbox keeps its own budget).
    wall_left: u64,
}

/// (Only ever on the heap, one per parked run: the variants' sizes do not matter.)
#[allow(clippy::large_enum_variant)]
enum Paused {
    Native(crate::native::Sandbox),
    Wasm(WasmRun),
}

impl Work {
    /// (tenant index, invocation) for the queue.
    fn ids(&self) -> (u32, u64) {
        match self {
            Work::Fresh { job, .. } => (job.tenant.index(), job.ticket.invocation),
            Work::Resume(p) => (p.tenant.index(), p.ticket.invocation),
        }
    }

    fn ticket(&self) -> Ticket {
        match self {
            Work::Fresh { job, .. } => job.ticket,
            Work::Resume(p) => p.ticket,
        }
    }
}

/// What one turn on a core came to.
enum After {
    /// The run ended (its result), after earlier turns of this many ticks.
    Done(Ticket, Result<Vec<Set>, RunError>, u64),
    /// It goes back in the queue (its turn is over, or it waits for a protection key).
    Again(Work),
}

/// The deadline a turn runs under: the dispatcher's cancellation flag, the run's wall-clock
/// backstop (`wall_end`; a native sandbox keeps its own budget: never), and the turn's end.
struct TurnDeadline<'a> {
    cancel: &'a AtomicBool,
    wall_end: u64,
    turn_end: u64,
}

impl<'a> TurnDeadline<'a> {
    /// A turn from `start` of a run with `wall_left` ticks of its backstop.
    fn new(cancel: &'a AtomicBool, start: u64, wall_left: u64) -> Self {
        let turn = time::micros_to_ticks(native::SLICE_MICROS);
        Self { cancel, wall_end: start.saturating_add(wall_left), turn_end: start.saturating_add(turn) }
    }
}

impl engine::Deadline for TurnDeadline<'_> {
    fn expired(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || time::ticks() >= self.wall_end
    }

    fn turn_over(&self) -> bool {
        time::ticks() >= self.turn_end
    }
}

/// Runs whose turn ended and that went back in the queue (all cores).
static PREEMPTIONS: AtomicU64 = AtomicU64::new(0);

/// Runs whose turn ended and that went back in the queue so far.
pub fn preemptions() -> u64 {
    PREEMPTIONS.load(Ordering::Relaxed)
}

/// Idle compute cores that found queued work only at their backstop, nobody having woken them
/// for it (all cores): each such find is work that waited up to the backstop for nothing.
static STALLS: AtomicU64 = AtomicU64::new(0);

/// Queued work found by a backstop instead of a wake-up, so far.
pub fn stalls() -> u64 {
    STALLS.load(Ordering::Relaxed)
}

/// `value` on the heap (a vector of one), or back when the heap has no room (a request's
/// allocation: it must fail cleanly, never panic).
fn on_heap<T>(value: T) -> Result<Vec<T>, T> {
    let mut one = Vec::new();
    if one.try_reserve_exact(1).is_err() {
        return Err(value);
    }
    one.push(value);
    Ok(one)
}

pub struct Dispatcher {
    engines: Engines,
    queue: Mutex<RunQueue<Work>>,
    done: Mutex<VecDeque<Completion>>,
    /// How many results `done` holds (changed under its lock): the I/O loop looks here on
    /// every pass without taking the lock.
    done_len: AtomicUsize,
    /// How many instances `queue` holds (changed under its lock): a core with nothing to run
    /// sees so without the lock (the I/O core in single-core mode looks on every pass).
    queued: AtomicUsize,
    cores: Vec<Core>,
    /// The I/O core as a runner of queued work beside the compute cores, when there are some
    /// ([`help`](Self::help)); in single-core mode it is `cores`' only entry instead.
    helper: Option<Core>,
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
            woken: AtomicBool::new(false),
            stats: Mutex::new(CoreStats::new(now)),
        };
        let cores = if inline { alloc::vec![core(io_cpu)] } else { compute_cpus.iter().map(|&c| core(c)).collect() };
        let helper = (!inline).then(|| core(io_cpu));
        DISPATCHER.call_once(|| Self {
            engines,
            queue: Mutex::new(RunQueue::new(RUN_QUEUE_CAPACITY)),
            done: Mutex::new(VecDeque::new()),
            done_len: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            cores,
            helper,
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

    /// The cores that take work from the queue: the compute cores (or, in single-core mode,
    /// the I/O core alone).
    pub fn cores(&self) -> &[Core] {
        &self.cores
    }

    /// The I/O core as a helper beside the compute cores (`None` in single-core mode, where it
    /// is [`cores`](Self::cores)' only entry).
    pub fn helper(&self) -> Option<&Core> {
        self.helper.as_ref()
    }

    /// Every core that ran work: the compute cores and the helping I/O core.
    fn runners(&self) -> impl Iterator<Item = &Core> {
        self.cores.iter().chain(self.helper.as_ref())
    }

    pub fn is_inline(&self) -> bool {
        self.inline
    }

    pub fn core_of(&self, cpu: usize) -> Option<&Core> {
        self.cores.iter().find(|c| c.cpu == cpu)
    }

    /// Single-core mode: runs one turn of queued work on this, the I/O core (at most a slice,
    /// about 10 ms, for native and wasm runs), so that its loop serves the network between
    /// turns. Returns whether it ran one; with compute cores it never does.
    pub fn run_inline(&self) -> bool {
        match self.cores.as_slice() {
            [core] if self.inline => self.run_one(core),
            _ => false,
        }
    }

    /// With compute cores: after a pass that moved nothing (`pass_moved` false), runs one turn
    /// of queued work on this, the I/O core, when more instances wait than compute cores are
    /// idle to take them (`dispatch::io_core_helps`). Returns whether it ran one.
    pub fn help(&self, pass_moved: bool) -> bool {
        let Some(helper) = &self.helper else { return false };
        let queued = self.queued.load(Ordering::Acquire);
        if queued == 0 {
            return false;
        }
        // A core woken for work counts as idle: the work is on its way to it (taking it here
        // instead left the core to find nothing and halt again, and the run to wait for the
        // core's backstop once this core put it back).
        let idle =
            self.cores.iter().filter(|c| c.idle.load(Ordering::Acquire) || c.woken.load(Ordering::Acquire)).count();
        dispatch::io_core_helps(pass_moved, queued, idle) && self.run_one(helper)
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
            // (Checked here so that the job comes back as it went in; the push then fits.)
            if queue.len() >= queue.capacity() || queue.depth(tenant) >= self.tenant_share.load(Ordering::Relaxed) {
                return Err(job);
            }
            let _ = queue.push(tenant, composition, Work::Fresh { job, waited_for_key: false });
            self.queued.store(queue.len(), Ordering::Release);
        }
        self.wake_an_idle_core();
        Ok(())
    }

    /// Wakes one idle compute core (other than this CPU) for work just queued.
    fn wake_an_idle_core(&self) {
        if let Some(core) = self.cores.iter().find(|c| c.idle.swap(false, Ordering::AcqRel))
            && core.cpu != arch::cpu_index()
        {
            core.woken.store(true, Ordering::Release);
            arch::wake(core.cpu);
        }
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
        if self.done_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut done = self.done.lock();
        let completion = done.pop_front();
        self.done_len.store(done.len(), Ordering::Release);
        completion
    }

    /// Drops the queued instances of `invocation` and stops its running ones at their next
    /// deadline check (their results are then dropped by the control plane).
    /// A parked (preempted) native run of `invocation` is dropped with the queue's other
    /// instances, which frees its sandbox.
    pub fn cancel(&self, invocation: u64) {
        let mut queue = self.queue.lock();
        let removed = queue.cancel_invocation(invocation);
        self.queued.store(queue.len(), Ordering::Release);
        for core in self.runners() {
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

    /// Runs the next queued work on `core` (this CPU) for one turn: a new instance, or the
    /// next turn of a parked run. Returns whether there was any. A run whose turn ends (a native
    /// slice, or wasm fuel slices for about as long) goes back in the queue behind the other
    /// tenants' work; nothing else runs inside it.
    pub fn run_one(&self, core: &Core) -> bool {
        let work = self.take(core);
        // Back at the queue: whatever it was woken for is taken now, by it or by another.
        core.woken.store(false, Ordering::Release);
        let Some(work) = work else { return false };
        core.stats.lock().begin(time::ticks());
        match self.turn(work, &core.cancel) {
            After::Done(ticket, result, earlier) => {
                core.stats.lock().end_resumed(time::ticks(), earlier);
                core.running.store(0, Ordering::Release);
                self.finish(core, ticket, result);
            }
            After::Again(work) => {
                core.stats.lock().pause(time::ticks());
                let (tenant, invocation) = work.ids();
                let mut queue = self.queue.lock();
                // Cancelled during its turn (after the last check): not queued again.
                if core.cancel.load(Ordering::Acquire) {
                    core.running.store(0, Ordering::Release);
                    drop(queue);
                    let ticket = work.ticket();
                    drop(work);
                    let cancelled = RunError::new(503, "cancelled", "the invocation was cancelled");
                    self.finish(core, ticket, Err(cancelled));
                } else {
                    if matches!(work, Work::Resume(_)) {
                        PREEMPTIONS.fetch_add(1, Ordering::Relaxed);
                    }
                    queue.requeue(tenant, invocation, work);
                    self.queued.store(queue.len(), Ordering::Release);
                    core.running.store(0, Ordering::Release);
                    drop(queue);
                    // A compute core takes the next turn itself (its loop comes straight back
                    // here); the helping I/O core goes back to the network, so an idle compute
                    // core must hear of it (else it would wait for its backstop, 100 ms).
                    if self.helper.as_ref().is_some_and(|h| core::ptr::eq(h, core)) {
                        self.wake_an_idle_core();
                    }
                }
            }
        }
        true
    }

    /// The next queued work for `core`, marked as running there.
    fn take(&self, core: &Core) -> Option<Work> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queue = self.queue.lock();
        let (_, work) = queue.pop()?;
        self.queued.store(queue.len(), Ordering::Release);
        core.cancel.store(false, Ordering::Relaxed);
        core.running.store(work.ids().1 + 1, Ordering::Release);
        Some(work)
    }

    fn finish(&self, core: &Core, ticket: Ticket, result: Result<Vec<Set>, RunError>) {
        let mut done = self.done.lock();
        done.push_back((ticket, result));
        self.done_len.store(done.len(), Ordering::Release);
        drop(done);
        // The I/O core looks for completions before it halts (`serve::sleep`); while it spins
        // it finds them without an interrupt.
        if self.io_cpu != core.cpu {
            arch::wake_if_waiting(self.io_cpu);
        }
    }

    /// One turn of `work` on this core.
    fn turn(&self, work: Work, cancel: &AtomicBool) -> After {
        match work {
            Work::Fresh { job, waited_for_key } => self.start(job, waited_for_key, cancel),
            Work::Resume(Parked { ticket, tenant, mut paused, ran, wall_left }) => {
                let start = time::ticks();
                match paused.pop() {
                    Some(Paused::Native(sandbox)) => {
                        let deadline = TurnDeadline { cancel, wall_end: u64::MAX, turn_end: u64::MAX };
                        native_after(sandbox.resume(Some(&deadline)), ticket, tenant, ran, start)
                    }
                    Some(Paused::Wasm(run)) => {
                        let deadline = TurnDeadline::new(cancel, start, wall_left);
                        wasm_after(run.resume(Some(&deadline)), ticket, tenant, ran, start, wall_left)
                    }
                    None => {
                        After::Done(ticket, Err(RunError::new(500, "internal", "a parked run without its state")), ran)
                    }
                }
            }
        }
    }

    /// The first turn of a new instance.
    fn start(&self, job: Job, waited_for_key: bool, cancel: &AtomicBool) -> After {
        let image = job.prepared.clone();
        let stored = Arc::clone(&job.function);
        let spec = stored.spec();
        let outputs = spec.outputs();
        let limits = crate::engines::limits(spec);
        let start = time::ticks();
        if let Some(native) = self.engines.native(spec, &image) {
            let Job { ticket, tenant, function, prepared, inputs } = job;
            let deadline = TurnDeadline { cancel, wall_end: u64::MAX, turn_end: u64::MAX };
            let invocation = engine::Invocation { inputs, outputs, limits, deadline: Some(&deadline) };
            // The sandbox shares the function's output names for its run (no copy).
            let names = crate::native::Names::Shared(Arc::clone(&stored) as Arc<dyn crate::native::OutputNames>);
            return match native.start(invocation, names) {
                crate::native::Step::NoKey(inputs) => {
                    if !waited_for_key {
                        crate::native::count_key_wait();
                    }
                    let job = Job { ticket, tenant, function, prepared, inputs };
                    After::Again(Work::Fresh { job, waited_for_key: true })
                }
                step => native_after(step, ticket, tenant, 0, start),
            };
        }
        if let Some((wasm, wasm_image)) = self.engines.wasm(spec, &image) {
            let Job { ticket, tenant, inputs, .. } = job;
            let wall_left = native::slice::budget_ticks(spec.timeout_ms(), time::ticks_per_second());
            let deadline = TurnDeadline::new(cancel, start, wall_left);
            let invocation = engine::Invocation { inputs, outputs, limits, deadline: Some(&deadline) };
            return wasm_after(wasm.start(wasm_image, invocation), ticket, tenant, 0, start, wall_left);
        }
        let Job { ticket, tenant, function, prepared, inputs } = job;
        let result = self.engines.run(tenant, &function, &prepared, inputs, cancel);
        After::Done(ticket, result, 0)
    }

    /// Halts `core` (this CPU) until a submit wakes it, or at the latest at tick `backstop`.
    /// Race-free: the idle mark goes up first and the queue is checked with interrupts off, so
    /// a submit is either seen here or its wake-up interrupt ends the halt.
    pub fn idle(&self, core: &Core, backstop: u64) {
        core.idle.store(true, Ordering::Release);
        arch::wait_for_work(Some(backstop), || !self.queue.lock().is_empty());
        // Still marked idle (no submit claimed this core to wake it), woken by the backstop,
        // and work waits: it was queued without a wake-up.
        if core.idle.swap(false, Ordering::AcqRel)
            && time::ticks() >= backstop
            && self.queued.load(Ordering::Acquire) != 0
        {
            STALLS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether results wait for the I/O core (it checks before it halts).
    pub fn has_completions(&self) -> bool {
        self.done_len.load(Ordering::Acquire) != 0
    }
}

/// A run's end after its turns: counted, its outputs or its error for the control plane.
fn done(result: Result<engine::Completion, engine::EngineError>, ticket: Ticket, ran: u64, ran_now: u64) -> After {
    crate::engines::count_run(ran_now);
    After::Done(ticket, result.map(|c| c.outputs).map_err(crate::engines::host_error), ran)
}

/// Parks a paused run for the queue (or fails it when the heap has no room to park it).
fn park(paused: Paused, ticket: Ticket, tenant: TenantId, ran: u64, ran_now: u64, wall_left: u64) -> After {
    match on_heap(paused) {
        Ok(paused) => After::Again(Work::Resume(Parked { ticket, tenant, paused, ran: ran_now, wall_left })),
        Err(paused) => {
            drop(paused);
            let full = RunError::new(503, "out_of_memory", "the node has no memory to park the run between its turns");
            After::Done(ticket, Err(full), ran)
        }
    }
}

/// What a native slice that started at `start`, after earlier turns of `ran` ticks, came to.
fn native_after(step: crate::native::Step, ticket: Ticket, tenant: TenantId, ran: u64, start: u64) -> After {
    let ran_now = ran.saturating_add(time::ticks().saturating_sub(start));
    match step {
        crate::native::Step::Done(result) => done(result, ticket, ran, ran_now),
        crate::native::Step::Preempted(sandbox) => park(Paused::Native(sandbox), ticket, tenant, ran, ran_now, 0),
        crate::native::Step::NoKey(_) => {
            After::Done(ticket, Err(RunError::new(500, "internal", "a resumed sandbox asked for a key")), ran)
        }
    }
}

/// What a wasm turn that started at `start`, after earlier turns of `ran` ticks and with
/// `wall_left` ticks of its backstop, came to.
fn wasm_after(step: WasmStep, ticket: Ticket, tenant: TenantId, ran: u64, start: u64, wall_left: u64) -> After {
    let took = time::ticks().saturating_sub(start);
    let ran_now = ran.saturating_add(took);
    match step {
        WasmStep::Done(result) => done(result, ticket, ran, ran_now),
        WasmStep::Paused(run) => park(Paused::Wasm(run), ticket, tenant, ran, ran_now, wall_left.saturating_sub(took)),
    }
}
