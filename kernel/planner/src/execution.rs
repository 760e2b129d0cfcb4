//! The execution of one composition: the state machine the dispatcher drives.
//!
//! The caller loops: take instances with [`Execution::next_ready`], run them anywhere, report each
//! with [`Execution::complete`] in any order, until [`Execution::status`] is `Done` or `Failed`.
//! Planning happens inside those calls, driven by a work queue rather than recursion, so nested
//! compositions cost no stack.
//!
//! Bounded steps: work proportional to a set's size (cutting an application's instances, moving
//! their results into the sets it defines) is queued in pieces of one unit each, and every call
//! spends at most the fuel left ([`PlanLimits::max_work_per_step`], given back by
//! [`Execution::refuel`]). Completions are recorded at once and applied, in the order they came,
//! once no planning work is queued before them. The work is done in exactly the order an unbounded
//! run does it, only spread over calls: instance ids, instance order and outputs are the same
//! whatever the bound (the property tests run both). The one piece done whole is grouping a
//! `keyed` input and joining (a sort, O(n log n)), charged to the step that does it.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;

use dsl::ast::Program;
use kcore::small_deque::SmallDeque;
use kcore::small_map::SmallMap;
use model::Set;

use crate::compile::{Callee, CompPlan, SetId, compile};
use crate::distribute::{Combinations, Cut, Share, cut};
use crate::error::PlanError;
use crate::frame::{AppRun, Cutting, Frame, FrameId, Frames, SetSlot, SlotRef};
use crate::instance::{Instance, InstanceId};
use crate::limits::PlanLimits;
use crate::status::{Completion, Failure, FailureCause, Status};

/// One run of a composition on its inputs. Pure: no threads, no I/O, no clock.
#[derive(Debug)]
pub struct Execution {
    /// Shared so planning can read a plan while it mutates frames.
    plans: Arc<[CompPlan]>,
    limits: PlanLimits,
    frames: Frames,
    /// Planned function instances, in planning order.
    ready: SmallDeque<Instance>,
    /// Every function instance planned and not completed, ready or handed out.
    pending: SmallMap<InstanceId, Pending>,
    /// How many of `pending` were handed out.
    running: usize,
    next_id: u64,
    /// Instances planned so far, composition expansions included (for `max_total_instances`).
    planned: usize,
    work: VecDeque<Work>,
    /// Completions recorded by [`Execution::complete`], applied in order once `work` is empty.
    arrived: VecDeque<Arrived>,
    /// Units of planning work this step may still do; `usize::MAX` when unbounded.
    fuel: usize,
    /// Units of planning work done since the start.
    spent: u64,
    state: State,
    /// The function of a single-instance execution ([`Execution::single`]): no frames, its one
    /// instance's outputs are the execution's.
    single: Option<model::Name>,
}

/// A completion waiting to be applied.
#[derive(Debug)]
struct Arrived {
    id: InstanceId,
    at: SlotRef,
    /// The outputs, or why the instance failed (an error, or a wrong number of output sets).
    result: Result<Vec<Set>, String>,
}

#[derive(Debug)]
struct Pending {
    at: SlotRef,
    output_count: usize,
    yielded: bool,
}

/// Planning steps queued by state changes.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Every input of the application exists: check its instance count and start cutting.
    Expand(FrameId, usize),
    /// Cut the application's next instances (queued first again until all are cut).
    Cut(FrameId, usize),
    /// Every instance of the application completed: move its next results into the sets it
    /// defines (queued first again until all are moved), then define them.
    Collect(FrameId, usize),
    /// Every application of the frame is done: hand its outputs up.
    FrameDone(FrameId),
}

#[derive(Debug)]
enum State {
    Running,
    Done(Vec<Set>),
    Failed(Failure),
}

/// A composition compiled with every composition it applies: what [`Execution::start`] compiles
/// on every call, kept to start many executions of the same program without compiling it again
/// ([`Execution::start_plan`]). Immutable; clones share it.
#[derive(Clone, Debug)]
pub struct Plan {
    plans: Arc<[CompPlan]>,
    root: usize,
}

impl Plan {
    /// Compiles `composition` of `program`. Fails on an inconsistent program.
    pub fn compile(program: &Program, composition: &str) -> Result<Self, PlanError> {
        let (plans, root) = compile(program, composition)?;
        Ok(Self { plans: plans.into(), root })
    }
}

impl Execution {
    /// Starts `composition` of `program` on `inputs` (matched to its declared inputs by position)
    /// and plans everything that can run at once. Fails on an inconsistent program, a wrong input
    /// count, or a limit the first planning steps exceed.
    pub fn start(
        program: &Program,
        composition: &str,
        inputs: Vec<Set>,
        limits: PlanLimits,
    ) -> Result<Self, PlanError> {
        Self::start_plan(&Plan::compile(program, composition)?, inputs, limits)
    }

    /// [`start`](Self::start) on a composition compiled before: the same execution, without
    /// compiling the program again.
    pub fn start_plan(plan: &Plan, inputs: Vec<Set>, limits: PlanLimits) -> Result<Self, PlanError> {
        let plans = Arc::clone(&plan.plans);
        let root = plan.root;
        let root_plan = plans.get(root).ok_or_else(|| internal("no root plan"))?;
        if inputs.len() != root_plan.inputs.len() {
            return Err(PlanError::InputCount {
                composition: root_plan.name.clone(),
                expected: root_plan.inputs.len(),
                got: inputs.len(),
            });
        }
        let path = root_plan.name.clone();
        let mut execution = Self {
            plans,
            limits,
            frames: Frames::default(),
            ready: SmallDeque::new(),
            pending: SmallMap::new(),
            running: 0,
            next_id: 0,
            planned: 0,
            work: VecDeque::new(),
            arrived: VecDeque::new(),
            fuel: limits.max_work_per_step,
            spent: 0,
            state: State::Running,
            single: None,
        };
        execution.open_frame(root, 0, path, inputs, None)?;
        execution.drive();
        if let State::Failed(Failure { cause: FailureCause::Plan(e), .. }) = &execution.state {
            return Err(e.clone());
        }
        Ok(execution)
    }

    /// One instance of `function` that gets `inputs` whole, in order and with their names, and
    /// whose `output_count` output sets, named as it returns them, are the execution's outputs:
    /// what a composition of one application binding every input `optional all` plans (a direct
    /// invocation), without compiling or planning anything. Everything else behaves as for a
    /// planned execution (completion checks, failures, fuel). The instance's origin is empty:
    /// the caller names what it invoked. Fails only when `limits` allow no instance at all.
    pub fn single(
        function: &str,
        inputs: Vec<Set>,
        output_count: usize,
        limits: PlanLimits,
    ) -> Result<Self, PlanError> {
        if limits.max_instances_per_application == 0 {
            return Err(PlanError::TooManyInstances { application: String::from(function), count: 1, limit: 0 });
        }
        if limits.max_total_instances == 0 {
            return Err(PlanError::TotalInstancesExceeded { application: String::from(function), limit: 0 });
        }
        let id = InstanceId(0);
        let at = SlotRef { frame: 0, app: 0, index: 0 };
        let function = model::Name::from(function);
        let instance = Instance { id, function: function.clone(), inputs, output_count, origin: String::new() };
        let mut ready = SmallDeque::new();
        ready.push_back(instance);
        let mut pending = SmallMap::new();
        pending.insert(id, Pending { at, output_count, yielded: false });
        Ok(Self {
            plans: Arc::default(),
            limits,
            frames: Frames::default(),
            ready,
            pending,
            running: 0,
            next_id: 1,
            planned: 1,
            work: VecDeque::new(),
            arrived: VecDeque::new(),
            fuel: limits.max_work_per_step,
            spent: 0,
            state: State::Running,
            single: Some(function),
        })
    }

    /// The next planned instance, in planning order; `None` when none is ready now (more may
    /// become ready as instances complete, or with more fuel: see [`has_work`](Self::has_work))
    /// or the execution is over.
    ///
    /// Queued planning work and completions come first (within the fuel left): an instance is
    /// handed out only once nothing is queued, so the caller sees exactly the states an unbounded
    /// run shows (a limit met while planning fails the execution before any instance planned in
    /// the same breath starts).
    pub fn next_ready(&mut self) -> Option<Instance> {
        if !matches!(self.state, State::Running) {
            return None;
        }
        if self.has_work() {
            self.drive();
            if self.has_work() || !matches!(self.state, State::Running) {
                return None;
            }
        }
        let instance = self.ready.pop_front()?;
        if let Some(p) = self.pending.get_mut(&instance.id) {
            p.yielded = true;
            self.running += 1;
        }
        Some(instance)
    }

    /// Reports the end of a handed-out instance: its output sets in declaration order, or the
    /// cause of its failure. An error, or a wrong number of output sets, fails the execution.
    /// Completions after the execution failed are ignored; ids never handed out, or already
    /// completed, are refused with an error and change nothing. A completion is recorded at
    /// once and applied within the fuel left (see [`refuel`](Self::refuel)); one recorded while
    /// an earlier failure waits to be applied is dropped with the rest when that failure is.
    pub fn complete(&mut self, id: InstanceId, result: Result<Vec<Set>, String>) -> Result<Completion, PlanError> {
        if id.0 >= self.next_id {
            return Err(PlanError::UnknownInstance(id));
        }
        match self.state {
            State::Failed(_) => return Ok(Completion::Ignored),
            State::Done(_) => return Err(PlanError::NotRunning(id)),
            State::Running => {}
        }
        if !self.pending.get(&id).is_some_and(|p| p.yielded) {
            return Err(PlanError::NotRunning(id));
        }
        let Some(pending) = self.pending.remove(&id) else { return Err(PlanError::NotRunning(id)) };
        self.running = self.running.saturating_sub(1);
        let result = match result {
            Ok(sets) if sets.len() != pending.output_count => {
                Err(format!("returned {} output set(s), its declaration has {}", sets.len(), pending.output_count))
            }
            other => other,
        };
        let arrived = Arrived { id, at: pending.at, result };
        if self.work.is_empty() && self.arrived.is_empty() && self.fuel > 0 {
            // Nothing is queued before it: applied now, as `drive` would at once (without a
            // trip through the queue, which a single instance's completion would allocate).
            match self.apply(arrived) {
                Ok(()) => self.burn(1),
                Err(e) => {
                    self.fail(FailureCause::Plan(e));
                    return Ok(Completion::Recorded);
                }
            }
        } else {
            self.arrived.push_back(arrived);
        }
        self.drive();
        Ok(Completion::Recorded)
    }

    /// Gives the execution a new step's fuel: [`PlanLimits::max_work_per_step`] units of planning
    /// work, which the calls until the next `refuel` share. A caller that bounds its steps
    /// calls it once per step; without a bound the fuel never runs out.
    pub fn refuel(&mut self) {
        self.fuel = self.limits.max_work_per_step;
    }

    /// Whether planning work or completions wait for fuel: the caller should [`refuel`](Self::refuel)
    /// and call [`advance`](Self::advance) (or `next_ready`) at its next step.
    pub fn has_work(&self) -> bool {
        matches!(self.state, State::Running) && !(self.work.is_empty() && self.arrived.is_empty())
    }

    /// Units of planning work done since the start (see [`PlanLimits::max_work_per_step`]), so a
    /// caller or a test can see what one step cost.
    pub fn work_done(&self) -> u64 {
        self.spent
    }

    /// Plans within the fuel left, without taking an instance. Returns whether it did anything.
    pub fn advance(&mut self) -> bool {
        let before = (self.work.len(), self.arrived.len(), self.fuel, self.ready.len());
        if !self.has_work() {
            return false;
        }
        self.drive();
        before != (self.work.len(), self.arrived.len(), self.fuel, self.ready.len())
            || !matches!(self.state, State::Running)
    }

    pub fn status(&self) -> Status<'_> {
        match &self.state {
            State::Running => Status::Running { ready: self.ready.len(), running: self.running },
            State::Done(outputs) => Status::Done(outputs),
            State::Failed(failure) => Status::Failed(failure),
        }
    }

    /// Moves the composition's outputs out once it is done (`None` before, or after a failure).
    pub fn take_outputs(&mut self) -> Option<Vec<Set>> {
        match &mut self.state {
            State::Done(outputs) => Some(mem::take(outputs)),
            _ => None,
        }
    }

    /// How many composition sets are held now, across nested compositions. A set is dropped as
    /// soon as its last reader is instantiated unless it is an output of its composition.
    pub fn live_sets(&self) -> usize {
        self.frames.iter().map(|f| f.live_sets().count()).sum()
    }

    /// The held composition sets as `composition.set`, for tests and diagnostics.
    pub fn live_set_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for frame in self.frames.iter() {
            let comp = self.plans.get(frame.plan).map_or("?", |p| p.name.as_str());
            names.extend(frame.live_sets().map(|s| format!("{comp}.{}", s.name)));
        }
        names
    }

    /// Instances planned so far: function instances plus applications of compositions.
    pub fn instances_planned(&self) -> usize {
        self.planned
    }

    /// Runs queued planning steps, then queued completions, until none is left or the fuel is
    /// spent; a planning error fails the execution.
    fn drive(&mut self) {
        while matches!(self.state, State::Running) && self.fuel > 0 {
            let step = if let Some(work) = self.work.pop_front() {
                match work {
                    Work::Expand(frame, app) => self.expand(frame, app),
                    Work::Cut(frame, app) => self.cut_instances(frame, app),
                    Work::Collect(frame, app) => self.collect(frame, app),
                    Work::FrameDone(frame) => self.frame_done(frame).map(|()| 1),
                }
            } else if let Some(arrived) = self.arrived.pop_front() {
                self.apply(arrived).map(|()| 1)
            } else {
                break;
            };
            match step {
                Ok(units) => self.burn(units),
                Err(e) => {
                    self.fail(FailureCause::Plan(e));
                    return;
                }
            }
        }
        if matches!(self.state, State::Running)
            && self.pending.is_empty()
            && self.work.is_empty()
            && self.arrived.is_empty()
        {
            self.fail(FailureCause::Plan(internal("stalled: nothing ready or running")));
        }
    }

    /// Spends fuel (at least one unit per step, so the loop ends) and counts the work done.
    fn burn(&mut self, units: usize) {
        self.spent = self.spent.saturating_add(units as u64);
        if self.fuel != usize::MAX {
            self.fuel = self.fuel.saturating_sub(units.max(1));
        }
    }

    /// Applies one recorded completion: its outputs go to their slot, or its failure ends the
    /// execution.
    fn apply(&mut self, arrived: Arrived) -> Result<(), PlanError> {
        match arrived.result {
            Ok(sets) if self.single.is_some() => {
                self.state = State::Done(sets);
                Ok(())
            }
            Ok(sets) => self.complete_slot(arrived.at, sets),
            Err(cause) => {
                let (function, origin) = self.describe(arrived.at);
                self.fail(FailureCause::Instance { id: arrived.id, function, origin, cause });
                Ok(())
            }
        }
    }

    /// Creates the frame of one composition run and queues whatever can start in it.
    fn open_frame(
        &mut self,
        plan_index: usize,
        depth: usize,
        path: String,
        inputs: Vec<Set>,
        parent: Option<SlotRef>,
    ) -> Result<FrameId, PlanError> {
        let plans = self.plans.clone();
        let plan = plans.get(plan_index).ok_or_else(|| internal("plan index"))?;
        let readers_left: Vec<usize> = plan.consumers.iter().map(Vec::len).collect();
        let mut sets: Vec<SetSlot> = plan.set_names.iter().map(|_| SetSlot::Pending).collect();
        for (&id, mut set) in plan.inputs.iter().zip(inputs) {
            set.name.clone_from(plan.set_names.get(id).ok_or_else(|| internal("set id"))?);
            let slot = sets.get_mut(id).ok_or_else(|| internal("set id"))?;
            *slot = if unread(plan, &readers_left, id) { SetSlot::Freed } else { SetSlot::Live(set) };
        }
        let missing: Vec<usize> =
            plan.apps.iter().map(|a| a.sets_read.iter().filter(|s| !plan.inputs.contains(s)).count()).collect();
        let id = self.frames.insert(Frame {
            plan: plan_index,
            depth,
            path,
            sets,
            readers_left,
            missing: missing.clone(),
            apps: plan.apps.iter().map(|_| AppRun::Waiting).collect(),
            apps_left: plan.apps.len(),
            parent,
        });
        self.work.extend(missing.iter().enumerate().filter(|(_, m)| **m == 0).map(|(a, _)| Work::Expand(id, a)));
        if plan.apps.is_empty() {
            self.work.push_back(Work::FrameDone(id));
        }
        Ok(id)
    }

    /// Checks how many instances an application whose inputs all exist starts, and queues its
    /// cutting first (or, when it starts none, the collection of its empty outputs). Returns the
    /// units spent: one, or the items grouped when an input is `keyed` (grouping is done whole).
    fn expand(&mut self, frame_id: FrameId, a: usize) -> Result<usize, PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.get(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        let label = format!("{}: app #{} '{}'", frame.path, app.number, app.function);

        let mut skip = false;
        let mut cuts: Vec<Cut> = Vec::with_capacity(app.inputs.len());
        let mut units = 1usize;
        for input in &app.inputs {
            let Some(input) = input else {
                cuts.push(Cut::Empty);
                continue;
            };
            let Some(SetSlot::Live(set)) = frame.sets.get(input.set) else {
                return Err(internal("an input set is not live when its reader starts"));
            };
            skip |= set.items.is_empty() && !input.optional;
            if set.items.is_empty() {
                cuts.push(Cut::Empty);
                continue;
            }
            if !skip {
                let c = cut(set, input.distribution);
                if matches!(c, Cut::Keys(_) | Cut::AnyKeys(_)) {
                    units = units.saturating_add(set.items.len());
                }
                cuts.push(c);
            }
        }
        let mut cutting = None;
        if !skip {
            let limit = self.limits.max_instances_per_application;
            let combinations = Combinations::new(&cuts, &app.join, limit, self.limits.any_partitions)
                .map_err(|count| PlanError::TooManyInstances { application: label.clone(), count, limit })?;
            let count = combinations.len();
            if count > 0 && matches!(app.callee, Callee::Composition(_)) && frame.depth >= self.limits.max_nesting_depth
            {
                return Err(PlanError::NestingTooDeep { application: label, limit: self.limits.max_nesting_depth });
            }
            if self.planned.saturating_add(count) > self.limits.max_total_instances {
                return Err(PlanError::TotalInstancesExceeded {
                    application: label,
                    limit: self.limits.max_total_instances,
                });
            }
            if count > 0 {
                units = units.saturating_add(combinations.join_rows());
                cutting = Some(Box::new(Cutting { label, cuts, combinations, next: 0 }));
            }
        }
        let Some(cutting) = cutting else {
            // Skipped (an empty input without `optional`) or no combination: the inputs lose a
            // reader, and the application defines empty outputs.
            self.release_inputs(frame_id, a)?;
            let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
            *frame.apps.get_mut(a).ok_or_else(|| internal("app index"))? =
                AppRun::Collecting { results: Vec::new(), next: 0, items: Vec::new() };
            self.work.push_front(Work::Collect(frame_id, a));
            return Ok(units);
        };
        let count = cutting.combinations.len();
        self.planned += count;
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        *frame.apps.get_mut(a).ok_or_else(|| internal("app index"))? =
            AppRun::Running { results: Vec::with_capacity(count), left: count, cutting: Some(cutting) };
        self.work.push_front(Work::Cut(frame_id, a));
        Ok(units)
    }

    /// Cuts the next instances of an application, as many as the fuel allows; once all are cut
    /// its inputs lose a reader (and may go). Function instances become ready, compositions open
    /// their frames. Returns the units spent: one per instance.
    fn cut_instances(&mut self, frame_id: FrameId, a: usize) -> Result<usize, PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        let Some(AppRun::Running { cutting: slot, .. }) = frame.apps.get_mut(a) else {
            return Err(internal("cutting an application that is not running"));
        };
        let mut cutting = slot.take().ok_or_else(|| internal("cutting an application twice"))?;
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        let depth = frame.depth;
        let count = cutting.combinations.len();
        let end = count.min(cutting.next.saturating_add(self.fuel.max(1)));
        let mut batch: Vec<(usize, Vec<Set>, String)> = Vec::with_capacity(end.saturating_sub(cutting.next));
        for k in cutting.next..end {
            let shares = cutting.combinations.shares(k);
            let mut inputs = Vec::with_capacity(app.input_names.len());
            for (pos, name) in app.input_names.iter().enumerate() {
                let input = app.inputs.get(pos).copied().flatten();
                let share = shares.get(pos);
                // The one instance that gets a whole set no other application reads, through
                // this one input, takes it rather than a copy of its items (it would be freed
                // once this instance is cut anyway).
                let last_reader = count == 1
                    && matches!(share, Some(Share::Whole))
                    && input.is_some_and(|input| {
                        frame.readers_left.get(input.set) == Some(&1)
                            && !plan.keep.get(input.set).copied().unwrap_or(true)
                            && app.inputs.iter().flatten().filter(|other| other.set == input.set).count() == 1
                    });
                let taken = match (last_reader, input) {
                    (true, Some(input)) => match frame.sets.get_mut(input.set) {
                        Some(slot @ SetSlot::Live(_)) => match core::mem::replace(slot, SetSlot::Freed) {
                            SetSlot::Live(set) => Some(set),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                };
                inputs.push(match taken {
                    Some(mut set) => {
                        if set.name != *name {
                            set.name.clone_from(name);
                        }
                        set
                    }
                    None => {
                        let set = input.and_then(|input| match frame.sets.get(input.set) {
                            Some(SetSlot::Live(set)) => Some(set),
                            _ => None,
                        });
                        share_set(name, set, share, cutting.cuts.get(pos))
                    }
                });
            }
            batch.push((k, inputs, format!("{} instance {k}", cutting.label)));
        }
        let units = batch.len();
        cutting.next = end;
        let Some(AppRun::Running { results, cutting: slot, .. }) = frame.apps.get_mut(a) else {
            return Err(internal("cutting an application that is not running"));
        };
        results.extend(batch.iter().map(|_| None));
        if end < count {
            *slot = Some(cutting);
            self.work.push_front(Work::Cut(frame_id, a));
        }
        for (k, inputs, origin) in batch {
            let at = SlotRef { frame: frame_id, app: a, index: k };
            match app.callee {
                Callee::Function => {
                    let id = InstanceId(self.next_id);
                    self.next_id += 1;
                    let output_count = app.outputs.len();
                    self.pending.insert(id, Pending { at, output_count, yielded: false });
                    self.ready.push_back(Instance { id, function: app.function.clone(), inputs, output_count, origin });
                }
                Callee::Composition(p) => {
                    let name = plans.get(p).map_or("?", |c| c.name.as_str());
                    let path = format!("{origin} > {name}");
                    self.open_frame(p, depth + 1, path, inputs, Some(at))?;
                }
            }
        }
        if end >= count {
            // Every share is cut: the inputs lose a reader, and may go.
            self.release_inputs(frame_id, a)?;
        }
        Ok(units)
    }

    /// The application's inputs lose a reader; those with none left that are no composition
    /// output are dropped.
    fn release_inputs(&mut self, frame_id: FrameId, a: usize) -> Result<(), PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        for &s in &app.sets_read {
            let left = frame.readers_left.get_mut(s).ok_or_else(|| internal("set id"))?;
            *left = left.saturating_sub(1);
            if unread(plan, &frame.readers_left, s) {
                *frame.sets.get_mut(s).ok_or_else(|| internal("set id"))? = SetSlot::Freed;
            }
        }
        Ok(())
    }

    /// Records one instance's outputs; the last one queues the application's collection first.
    fn complete_slot(&mut self, at: SlotRef, outputs: Vec<Set>) -> Result<(), PlanError> {
        let frame = self.frames.get_mut(at.frame).ok_or_else(|| internal("frame of a completion"))?;
        let run = frame.apps.get_mut(at.app);
        let Some(AppRun::Running { results, left, cutting }) = run else {
            return Err(internal("completion for an application that is not running"));
        };
        let slot = results.get_mut(at.index).ok_or_else(|| internal("instance index"))?;
        if slot.is_some() {
            return Err(internal("instance completed twice"));
        }
        *slot = Some(outputs);
        *left = left.saturating_sub(1);
        if *left == 0 {
            if cutting.is_some() {
                return Err(internal("every instance completed before all were cut"));
            }
            let results = mem::take(results);
            if let Some(run) = frame.apps.get_mut(at.app) {
                *run = AppRun::Collecting { results, next: 0, items: Vec::new() };
            }
            self.work.push_front(Work::Collect(at.frame, at.app));
        }
        Ok(())
    }

    /// Moves the next instances' outputs, in instance order, into the items of the composition
    /// sets the application defines, as far as the fuel allows; once all are moved, defines the
    /// sets and queues whatever they make ready. Returns the units spent: one per instance and
    /// one per item moved.
    fn collect(&mut self, frame_id: FrameId, a: usize) -> Result<usize, PlanError> {
        let plans = self.plans.clone();
        let fuel = self.fuel.max(1);
        let frames = &mut self.frames;
        let frame = frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        // Outputs nobody reads and no composition output keeps are not collected at all.
        let wanted: Vec<bool> =
            app.outputs.iter().map(|t| t.is_some_and(|id| !unread(plan, &frame.readers_left, id))).collect();
        let Some(AppRun::Collecting { results, next, items }) = frame.apps.get_mut(a) else {
            return Err(internal("collecting an application that is not collecting"));
        };
        if items.len() < app.outputs.len() {
            items.resize_with(app.outputs.len(), Vec::new);
        }
        let mut units = 0usize;
        while let Some(slot) = results.get_mut(*next) {
            // One unit for the instance, one per item it hands on; an instance that does not fit
            // in what is left waits for the next step, unless it is this step's first.
            let cost = 1 + slot.as_ref().map_or(0, |outputs| {
                outputs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| wanted.get(*j) == Some(&true))
                    .map(|(_, s)| s.items.len())
                    .sum()
            });
            if units.saturating_add(cost) > fuel && (units > 0 || fuel < self.limits.max_work_per_step) {
                // Not this step: the fuel left is spent waiting (only a result larger than a
                // whole step moves at once, in a step of its own).
                if units == 0 {
                    self.fuel = 0;
                    self.work.push_front(Work::Collect(frame_id, a));
                    return Ok(0);
                }
                break;
            }
            let outputs = slot.take().unwrap_or_default();
            *next += 1;
            units = units.saturating_add(cost);
            for (j, set) in outputs.into_iter().enumerate() {
                if !wanted.get(j).copied().unwrap_or(false) {
                    continue;
                }
                let Some(into) = items.get_mut(j) else { continue };
                if into.is_empty() {
                    // The first non-empty share moves whole.
                    *into = set.items;
                } else {
                    into.extend(set.items);
                }
            }
        }
        if *next < results.len() {
            self.work.push_front(Work::Collect(frame_id, a));
            return Ok(units);
        }
        let mut items = mem::take(items);
        *frame.apps.get_mut(a).ok_or_else(|| internal("app index"))? = AppRun::Done;
        for (j, target) in app.outputs.iter().enumerate() {
            let Some(id) = *target else { continue };
            let items = items.get_mut(j).map(mem::take).unwrap_or_default();
            let name = plan.set_names.get(id).cloned().unwrap_or_default();
            define(frame, plan, frame_id, id, Set { name, items }, &mut self.work)?;
        }
        frame.apps_left = frame.apps_left.saturating_sub(1);
        if frame.apps_left == 0 {
            self.work.push_back(Work::FrameDone(frame_id));
        }
        Ok(units)
    }

    /// Hands a finished frame's outputs to its parent application, or ends the execution.
    fn frame_done(&mut self, frame_id: FrameId) -> Result<(), PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.remove(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let mut sets = frame.sets;
        let mut outputs = Vec::with_capacity(plan.outputs.len());
        for &id in &plan.outputs {
            match sets.get_mut(id).map(|s| mem::replace(s, SetSlot::Freed)) {
                Some(SetSlot::Live(set)) => outputs.push(set),
                _ => return Err(internal("a composition output is not live at the end")),
            }
        }
        drop(sets);
        match frame.parent {
            None => {
                self.state = State::Done(outputs);
                Ok(())
            }
            Some(at) => self.complete_slot(at, outputs),
        }
    }

    /// The function name and origin of a planned instance, for failure reports.
    fn describe(&self, at: SlotRef) -> (String, String) {
        if let Some(function) = &self.single {
            return (String::from(function.as_str()), String::new());
        }
        let Some(frame) = self.frames.get(at.frame) else { return (String::from("?"), String::from("?")) };
        let function = self
            .plans
            .get(frame.plan)
            .and_then(|p| p.apps.get(at.app))
            .map_or_else(|| String::from("?"), |a| String::from(a.function.as_str()));
        let number = self.plans.get(frame.plan).and_then(|p| p.apps.get(at.app)).map_or(0, |a| a.number);
        let origin = format!("{}: app #{number} '{function}' instance {}", frame.path, at.index);
        (function, origin)
    }

    /// Ends the execution: drops everything planned and lists the handed-out instances to cancel.
    fn fail(&mut self, cause: FailureCause) {
        if !matches!(self.state, State::Running) {
            return;
        }
        let cancel = self.pending.iter().filter(|(_, p)| p.yielded).map(|(id, _)| *id).collect();
        self.pending.clear();
        self.ready.clear();
        self.work.clear();
        self.arrived.clear();
        self.frames = Frames::default();
        self.running = 0;
        self.state = State::Failed(Failure { cause, cancel });
    }
}

/// Stores a newly defined set (or drops it at once if nothing will read it) and queues the
/// applications it was the last missing input of.
fn define(
    frame: &mut Frame,
    plan: &CompPlan,
    frame_id: FrameId,
    id: SetId,
    set: Set,
    work: &mut VecDeque<Work>,
) -> Result<(), PlanError> {
    let slot = frame.sets.get_mut(id).ok_or_else(|| internal("set id"))?;
    *slot = if unread(plan, &frame.readers_left, id) { SetSlot::Freed } else { SetSlot::Live(set) };
    for &b in plan.consumers.get(id).map(Vec::as_slice).unwrap_or_default() {
        let missing = frame.missing.get_mut(b).ok_or_else(|| internal("app index"))?;
        *missing = missing.saturating_sub(1);
        if *missing == 0 {
            work.push_back(Work::Expand(frame_id, b));
        }
    }
    Ok(())
}

/// Whether set `id` can go: no reader left to instantiate and not a composition output.
fn unread(plan: &CompPlan, readers_left: &[usize], id: SetId) -> bool {
    readers_left.get(id).is_none_or(|&r| r == 0) && !plan.keep.get(id).copied().unwrap_or(false)
}

/// One instance's set for one declared input. Items are cloned, their payloads shared.
fn share_set(name: &str, set: Option<&Set>, share: Option<&Share>, cut: Option<&Cut>) -> Set {
    let mut out = Set::new(name);
    let Some(set) = set else { return out };
    match (share, cut) {
        (Some(Share::Whole), _) => out.items.clone_from(&set.items),
        (Some(Share::Item(i)), _) => out.items.extend(set.items.get(*i).cloned()),
        (Some(Share::Group(g)), Some(Cut::Keys(groups) | Cut::AnyKeys(groups))) => {
            if let Some(group) = groups.get(*g) {
                out.items.extend(group.items.iter().filter_map(|&i| set.items.get(i).cloned()));
            }
        }
        (Some(Share::Units(start, end)), Some(Cut::AnyItems(_))) => {
            out.items.extend(set.items.get(*start..*end).unwrap_or_default().iter().cloned());
        }
        (Some(Share::Units(start, end)), Some(Cut::AnyKeys(groups))) => {
            for group in groups.get(*start..*end).unwrap_or_default() {
                out.items.extend(group.items.iter().filter_map(|&i| set.items.get(i).cloned()));
            }
        }
        (Some(Share::Groups(gs)), Some(Cut::AnyKeys(groups))) => {
            for group in gs.iter().filter_map(|&g| groups.get(g)) {
                out.items.extend(group.items.iter().filter_map(|&i| set.items.get(i).cloned()));
            }
        }
        _ => {}
    }
    out
}

fn internal(what: &str) -> PlanError {
    PlanError::Internal(what.into())
}
