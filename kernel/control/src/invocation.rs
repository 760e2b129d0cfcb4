//! One invocation in flight: a planner [`Execution`] and what its instances resolve to.
//!
//! Every invocation, a composition's or a single function's, runs as a planner [`Execution`] (a
//! single function's is [`Execution::single`], one instance and nothing planned), so there
//! is one way to run instances, to wait on `sleep`, to fail, and to drop everything on cancel.
//! [`Invocation::step`] starts ready instances (builtins at once, functions and communication
//! functions through the runtime, which may run them elsewhere and report later through
//! [`Invocation::finish`]), completes `sleep`s whose deadline has passed, and answers once the
//! execution is over; in between, the invocation is plain data the control plane keeps.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;
use kcore::small_map::SmallMap;

use pappus_http::Response;

use model::wire::{Encoder, WireErrorKind, WireFormat, WireLimits, binary, json, raw};
use model::{Set, TenantId};
use planner::{Execution, FailureCause, Instance, InstanceId, PlanError, Status};

use crate::accounting::{Admission, InvocationMemory};
use crate::builtin::{Builtin, BuiltinRun};
use crate::errors::ApiError;
use crate::limits::ControlLimits;
use crate::runtime::{RunError, Runtime, Started, StoredFunction, Ticket};

/// What a declared function name runs: resolved once, when the invocation starts, so a function
/// replaced or deleted meanwhile does not change a running invocation.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Builtin(Builtin),
    Function(Arc<StoredFunction>),
}

impl Target {
    pub fn input_count(&self) -> usize {
        match self {
            Self::Builtin(b) => b.inputs().len(),
            Self::Function(f) => f.spec().inputs().len(),
        }
    }

    pub fn output_count(&self) -> usize {
        match self {
            Self::Builtin(b) => b.outputs().len(),
            Self::Function(f) => f.spec().outputs().len(),
        }
    }

    /// Renames `sets` by position to the declared output names (extra sets keep their names),
    /// without a list of the names made for it.
    fn rename_outputs(&self, sets: &mut [Set]) {
        match self {
            Self::Builtin(b) => rename(sets, b.outputs().iter().copied()),
            Self::Function(f) => rename(sets, f.spec().outputs().iter().map(String::as_str)),
        }
    }
}

/// What was invoked, for error messages.
#[derive(Clone, Debug)]
pub(crate) enum Subject {
    /// A function (or builtin) invoked directly, by name (the invocation's target).
    Function,
    Composition,
}

/// A `sleep` instance waiting for its deadline.
#[derive(Debug)]
struct Timer {
    id: InstanceId,
    due_ms: u64,
    outputs: Vec<Set>,
}

/// What one step left the invocation as.
#[derive(Debug)]
pub(crate) enum Step {
    Done(Response),
    /// Still running; `moved` says whether this step changed anything.
    Waiting {
        moved: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Invocation {
    /// The plane's id for it ([`bind`](Self::bind)), which tickets carry.
    id: u64,
    tenant: TenantId,
    subject: Subject,
    /// How to write the outputs.
    format: WireFormat,
    execution: Execution,
    /// Declared function name -> what it runs (a composition's; empty for a direct invocation,
    /// whose one instance runs `output_names`).
    targets: BTreeMap<String, Target>,
    timers: Vec<Timer>,
    /// Instances the runtime runs (planner instance id -> what runs), awaiting [`finish`](Self::finish).
    running: SmallMap<u64, Target>,
    /// Ready instances the runtime had no room for ([`Started::Busy`]), started first next time.
    deferred: VecDeque<Instance>,
    /// The error of the first failed instance: its status and code become the answer's.
    failure: Option<(InstanceId, RunError)>,
    /// A direct invocation's target: what its one instance runs, and the names for the output
    /// sets (the function's or builtin's declared outputs; a composition names its own).
    output_names: Option<Target>,
    /// The planner refused a completion: a bookkeeping bug, answered as 500 rather than a panic.
    broken: Option<String>,
    /// When it started and when it must be over ([`ControlLimits::max_invocation_ms`]), in the
    /// plane's milliseconds.
    started_ms: u64,
    deadline_ms: u64,
    /// The deadline passed before the execution ended: answered 504.
    expired: bool,
    /// What was invoked, by the name in the path (for the metrics).
    target: model::Name,
    /// What it holds in its tenant's memory accounts (given back as it goes and when dropped).
    memory: InvocationMemory,
    /// The answer being encoded, a piece per step, once the execution is done.
    encoding: Option<Encoder<Vec<Set>>>,
}

/// Answer bytes one step encodes per unit of `plan.max_work_per_step` (besides at most that
/// many items): 1 MiB a step with the default 1024.
const ENCODE_BYTES_PER_UNIT: usize = 1024;

impl Invocation {
    pub fn new(
        tenant: TenantId,
        subject: Subject,
        format: WireFormat,
        execution: Execution,
        targets: BTreeMap<String, Target>,
        output_names: Option<Target>,
        memory: InvocationMemory,
    ) -> Box<Self> {
        Box::new(Self {
            id: 0,
            tenant,
            subject,
            format,
            execution,
            targets,
            timers: Vec::new(),
            running: SmallMap::new(),
            deferred: VecDeque::new(),
            failure: None,
            output_names,
            broken: None,
            started_ms: 0,
            deadline_ms: u64::MAX,
            expired: false,
            target: model::Name::default(),
            memory,
            encoding: None,
        })
    }

    /// Gives the invocation its id and its deadline, before its first step.
    pub fn bind(&mut self, id: u64, target: &str, now_ms: u64, limits: &ControlLimits) {
        self.id = id;
        self.target = model::Name::from(target);
        self.started_ms = now_ms;
        self.deadline_ms = now_ms.saturating_add(limits.max_invocation_ms);
    }

    /// When it started, in the plane's milliseconds.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The composition's or function's name, as invoked.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the runtime still runs instances of it (to cancel them when it ends early).
    pub fn has_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// An instance the runtime ran reports its result. Results for instances not running (cancelled,
    /// or a runtime reporting twice) are ignored; returns whether this one was taken.
    pub fn finish(&mut self, instance: u64, result: Result<Vec<Set>, RunError>, wire: &WireLimits) -> bool {
        let Some(target) = self.running.remove(&instance) else { return false };
        self.memory.end(instance);
        let result = result
            .and_then(|outputs| match &target {
                Target::Builtin(builtin) => builtin.adapt(outputs),
                Target::Function(_) => Ok(outputs),
            })
            .and_then(|outputs| check_outputs(outputs, &target, wire))
            .and_then(|outputs| match self.memory.charge_outputs(&outputs) {
                Ok(()) => Ok(outputs),
                Err(e) => Err(RunError::new(507, "memory_budget", format!("its outputs do not fit: {e}"))),
            });
        self.complete(InstanceId(instance), result);
        true
    }

    /// Completes the timers due at `now_ms`, then runs ready instances (at most
    /// `limits.max_instances_per_step`, at least one), and answers if the execution is over.
    ///
    /// Every step is bounded: besides those instances, at most `limits.plan.max_work_per_step`
    /// units of planning (the planner's fuel, given here once per step) and, once the execution
    /// is done, that many answer items (and about 1 KiB each) encoded.
    pub fn step(&mut self, now_ms: u64, runtime: &mut dyn Runtime, limits: &ControlLimits) -> Step {
        if self.encoding.is_some() {
            return self.encode_some(limits);
        }
        self.execution.refuel();
        let mut moved = false;
        if now_ms >= self.deadline_ms && matches!(self.execution.status(), Status::Running { .. }) {
            self.expired = true;
            return match self.answer(limits) {
                Some(response) => Step::Done(response),
                None => Step::Waiting { moved: false },
            };
        }
        if self.timers.iter().any(|t| t.due_ms <= now_ms) {
            let (due, waiting): (Vec<Timer>, Vec<Timer>) =
                mem::take(&mut self.timers).into_iter().partition(|t| t.due_ms <= now_ms);
            self.timers = waiting;
            for timer in due {
                moved = true;
                self.complete(timer.id, Ok(timer.outputs));
            }
        }
        let budget = limits.max_instances_per_step.max(1);
        let mut ran = 0;
        while ran < budget && self.broken.is_none() {
            let Some(instance) = self.deferred.pop_front().or_else(|| self.execution.next_ready()) else { break };
            if let Err(instance) = self.run(instance, now_ms, runtime, &limits.wire) {
                // The runtime is full: the rest waits for its next poll.
                self.deferred.push_front(instance);
                break;
            }
            ran += 1;
            moved = true;
        }
        moved |= self.execution.advance();
        match self.answer(limits) {
            Some(response) => Step::Done(response),
            None if self.encoding.is_some() => self.encode_some(limits),
            None => Step::Waiting { moved },
        }
    }

    /// Encodes the next piece of the answer; the last piece answers.
    fn encode_some(&mut self, limits: &ControlLimits) -> Step {
        let Some(encoder) = self.encoding.as_mut() else { return Step::Waiting { moved: false } };
        let units = limits.plan.max_work_per_step.max(1);
        match encoder.write(units, units.saturating_mul(ENCODE_BYTES_PER_UNIT)) {
            Ok(false) => Step::Waiting { moved: true },
            Ok(true) => {
                let media = self.format.media_type();
                let body = self.encoding.take().map(Encoder::into_bytes).unwrap_or_default();
                Step::Done(Response::new(200).header("content-type", media).body(body))
            }
            Err(e) => {
                self.encoding = None;
                Step::Done(ApiError::new(502, "bad_output", format!("invalid outputs: {e}")).into_response())
            }
        }
    }

    /// When a step can next move something: now (0) if instances are ready or the execution is
    /// over, else the first `sleep` deadline or the invocation's own, whichever comes first.
    pub fn next_due_ms(&self) -> Option<u64> {
        if self.encoding.is_some() || self.execution.has_work() {
            return Some(0);
        }
        match self.execution.status() {
            // Deferred instances wait for the runtime to make room, which its results announce.
            Status::Running { ready, .. } if ready > 0 && self.deferred.is_empty() => Some(0),
            Status::Running { .. } => {
                Some(self.timers.iter().map(|t| t.due_ms).min().unwrap_or(u64::MAX).min(self.deadline_ms))
            }
            Status::Done(_) | Status::Failed(_) => Some(0),
        }
    }

    /// Starts one instance: a builtin at once (or on a timer, for `sleep`), a function or a
    /// communication function through the runtime. A runtime without room hands it back.
    fn run(
        &mut self,
        instance: Instance,
        now_ms: u64,
        runtime: &mut dyn Runtime,
        wire: &WireLimits,
    ) -> Result<(), Instance> {
        let Instance { id, function, inputs, output_count, origin } = instance;
        let ticket = Ticket { invocation: self.id, instance: id.0 };
        // A direct invocation's one instance runs its target (kept to name the outputs); a
        // composition's instances run what their declared names resolved to.
        let target = match self.subject {
            Subject::Function => self.output_names.clone(),
            Subject::Composition => self.targets.get(function.as_str()).cloned(),
        };
        let Some(target) = target else {
            let message = format!("'{function}' was not resolved when the invocation started");
            self.complete(id, Err(RunError::new(500, "internal", message)));
            return Ok(());
        };
        let started = match &target {
            Target::Builtin(builtin) => match builtin.run(inputs) {
                BuiltinRun::Done(outputs) => Started::Done(Ok(outputs)),
                BuiltinRun::Failed(e) => Started::Done(Err(e)),
                BuiltinRun::After { ms: 0, outputs } => Started::Done(Ok(outputs)),
                BuiltinRun::After { ms, outputs } => {
                    self.timers.push(Timer { id, due_ms: now_ms.saturating_add(ms), outputs });
                    return Ok(());
                }
                BuiltinRun::Comm(comm, inputs) => runtime.start_comm(ticket, comm, inputs),
            },
            Target::Function(f) => {
                // The instance's memory limit, charged while it runs.
                match self.memory.admit(id.0, f.spec().engine(), f.spec().memory_bytes()) {
                    Admission::Granted => {}
                    Admission::Wait => return Err(Instance { id, function, inputs, output_count, origin }),
                    Admission::Refused(e) => {
                        let message = format!("its memory limit does not fit: {e}");
                        self.complete(id, Err(RunError::new(507, "memory_budget", message)));
                        return Ok(());
                    }
                }
                let mut inputs = inputs;
                rename(&mut inputs, f.spec().inputs().iter().map(String::as_str));
                runtime.start(ticket, self.tenant, f, inputs)
            }
        };
        match started {
            Started::Done(result) => {
                self.running.insert(id.0, target);
                self.finish(id.0, result, wire);
            }
            Started::Running => {
                self.running.insert(id.0, target);
            }
            Started::Busy(inputs) => {
                self.memory.end(id.0);
                return Err(Instance { id, function, inputs, output_count, origin });
            }
        }
        Ok(())
    }

    /// Reports an instance's end to the planner, keeping the first failure's status and code.
    fn complete(&mut self, id: InstanceId, result: Result<Vec<Set>, RunError>) {
        let result = result.map_err(|e| {
            let cause = if e.message.is_empty() { String::from(e.code) } else { e.message.clone() };
            if self.failure.is_none() {
                self.failure = Some((id, e));
            }
            cause
        });
        if let Err(e) = self.execution.complete(id, result) {
            self.broken.get_or_insert_with(|| e.to_string());
        }
    }

    /// The answer, once the execution is over. A 503 from the runtime (its run queue was full)
    /// says when to retry, like the plane's own 503.
    fn answer(&mut self, limits: &ControlLimits) -> Option<Response> {
        let retry_after_s = limits.retry_after_s;
        if let Some(bug) = &self.broken {
            return Some(ApiError::internal(format!("the invocation broke: {bug}")).into_response());
        }
        if self.expired {
            let ms = self.deadline_ms.saturating_sub(self.started_ms);
            let message = format!("the invocation ran past its deadline of {ms} ms; its instances were stopped");
            return Some(ApiError::new(504, "timeout", message).into_response());
        }
        let failure = match self.execution.status() {
            Status::Running { .. } => return None,
            Status::Done(_) => None,
            Status::Failed(failure) => {
                let error = self.failure_error(&failure.cause);
                Some(if error.status == 503 { error.header("retry-after", format!("{retry_after_s}")) } else { error })
            }
        };
        if let Some(error) = failure {
            return Some(error.into_response());
        }
        let mut outputs = self.execution.take_outputs().unwrap_or_default();
        if let Some(target) = &self.output_names {
            target.rename_outputs(&mut outputs);
        }
        let size = match self.format {
            WireFormat::Json => json::encoded_len(&outputs),
            WireFormat::Binary | WireFormat::Raw => binary::encoded_len(&outputs),
        };
        if !limits.heap_room.allows(size) {
            let message = format!("the node has no memory for a {size}-byte answer now; retry later");
            let error = ApiError::new(503, "out_of_memory", message).header("retry-after", format!("{retry_after_s}"));
            return Some(error.into_response());
        }
        if self.format == WireFormat::Raw {
            return Some(encode_raw(&outputs).unwrap_or_else(ApiError::into_response));
        }
        // JSON and binary are encoded a piece per step ([`encode_some`](Self::encode_some)),
        // into a body of the size the gate allowed.
        self.encoding = Encoder::new(self.format, outputs, size);
        None
    }

    fn failure_error(&self, cause: &FailureCause) -> ApiError {
        match cause {
            FailureCause::Instance { id, origin, cause, .. } => {
                let (status, code) = match &self.failure {
                    Some((failed, e)) if failed == id => (e.http_status(), e.code),
                    _ => (500, "function_failed"),
                };
                let message = match &self.subject {
                    Subject::Function => format!("function '{}' failed: {cause}", self.target),
                    Subject::Composition => format!("{origin}: {cause}"),
                };
                ApiError::new(status, code, message)
            }
            FailureCause::Plan(e) => plan_error(e),
        }
    }
}

/// The API error for a planner error.
pub(crate) fn plan_error(e: &PlanError) -> ApiError {
    match e {
        PlanError::TooManyInstances { .. }
        | PlanError::TotalInstancesExceeded { .. }
        | PlanError::NestingTooDeep { .. } => ApiError::new(422, "plan_limit", e.to_string()),
        PlanError::UnknownComposition(_) | PlanError::InputCount { .. } | PlanError::InvalidProgram { .. } => {
            ApiError::bad_request("bad_composition", e.to_string())
        }
        PlanError::UnknownInstance(_) | PlanError::NotRunning(_) | PlanError::Internal(_) => {
            ApiError::internal(e.to_string())
        }
    }
}

/// Sets renamed by position (functions bind sets by position); extra sets keep their names.
fn rename<'a>(sets: &mut [Set], names: impl Iterator<Item = &'a str>) {
    for (set, name) in sets.iter_mut().zip(names) {
        if set.name != name {
            set.name = name.into();
        }
    }
}

/// An instance's outputs, checked: one set per declared output, and within the wire limits and
/// the data model (valid item names). Anything else is 502 `bad_output`.
fn check_outputs(outputs: Vec<Set>, target: &Target, wire: &WireLimits) -> Result<Vec<Set>, RunError> {
    let expected = target.output_count();
    if outputs.len() != expected {
        let message = format!("returned {} output set(s), its declaration has {expected}", outputs.len());
        return Err(RunError::new(502, "bad_output", message));
    }
    let mut outputs = outputs;
    target.rename_outputs(&mut outputs);
    wire.check(&outputs).map_err(|e| RunError::new(502, "bad_output", format!("invalid outputs: {e}")))?;
    Ok(outputs)
}

/// The 200 raw answer: exactly one output item (406 otherwise).
fn encode_raw(outputs: &[Set]) -> Result<Response, ApiError> {
    let media = WireFormat::Raw.media_type();
    match raw::encode(outputs) {
        Ok(data) => Ok(Response::new(200).header("content-type", media).body(data.to_vec())),
        Err(e) if matches!(e.kind(), WireErrorKind::NotOneItem { .. }) => {
            Err(ApiError::new(406, "not_acceptable", e.to_string()))
        }
        Err(e) => Err(ApiError::new(502, "bad_output", format!("invalid outputs: {e}"))),
    }
}
