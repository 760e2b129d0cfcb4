//! The execution of one composition: the state machine the dispatcher drives.
//!
//! The caller loops: take instances with [`Execution::next_ready`], run them anywhere, report each
//! with [`Execution::complete`] in any order, until [`Execution::status`] is `Done` or `Failed`.
//! Planning happens inside those calls, driven by a work queue rather than recursion, so nested
//! compositions cost no stack.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::mem;

use dsl::ast::Program;
use model::Set;

use crate::compile::{AppPlan, Callee, CompPlan, SetId, compile};
use crate::distribute::{Combinations, Cut, Share, cut};
use crate::error::PlanError;
use crate::frame::{AppRun, Frame, FrameId, Frames, SetSlot, SlotRef};
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
    ready: VecDeque<Instance>,
    /// Every function instance planned and not completed, ready or handed out.
    pending: BTreeMap<InstanceId, Pending>,
    /// How many of `pending` were handed out.
    running: usize,
    next_id: u64,
    /// Instances planned so far, composition expansions included (for `max_total_instances`).
    planned: usize,
    work: VecDeque<Work>,
    state: State,
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
    /// Every input of the application exists: plan its instances.
    Expand(FrameId, usize),
    /// Every application of the frame is done: hand its outputs up.
    FrameDone(FrameId),
}

#[derive(Debug)]
enum State {
    Running,
    Done(Vec<Set>),
    Failed(Failure),
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
        let (plans, root) = compile(program, composition)?;
        let plans: Arc<[CompPlan]> = plans.into();
        let root_plan = plans.get(root).ok_or_else(|| internal("no root plan"))?;
        if inputs.len() != root_plan.inputs.len() {
            return Err(PlanError::InputCount {
                composition: composition.into(),
                expected: root_plan.inputs.len(),
                got: inputs.len(),
            });
        }
        let path = root_plan.name.clone();
        let mut execution = Self {
            plans,
            limits,
            frames: Frames::default(),
            ready: VecDeque::new(),
            pending: BTreeMap::new(),
            running: 0,
            next_id: 0,
            planned: 0,
            work: VecDeque::new(),
            state: State::Running,
        };
        execution.open_frame(root, 0, path, inputs, None)?;
        execution.drive();
        if let State::Failed(Failure { cause: FailureCause::Plan(e), .. }) = &execution.state {
            return Err(e.clone());
        }
        Ok(execution)
    }

    /// The next planned instance, in planning order; `None` when none is ready now (more may
    /// become ready as instances complete) or the execution is over.
    pub fn next_ready(&mut self) -> Option<Instance> {
        if !matches!(self.state, State::Running) {
            return None;
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
    /// completed, are refused with an error and change nothing.
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
        let failure = match result {
            Err(cause) => Some(cause),
            Ok(sets) if sets.len() != pending.output_count => {
                Some(format!("returned {} output set(s), its declaration has {}", sets.len(), pending.output_count))
            }
            Ok(sets) => match self.complete_slot(pending.at, sets) {
                Ok(()) => None,
                Err(e) => {
                    self.fail(FailureCause::Plan(e));
                    return Ok(Completion::Recorded);
                }
            },
        };
        match failure {
            Some(cause) => {
                let (function, origin) = self.describe(pending.at);
                self.fail(FailureCause::Instance { id, function, origin, cause });
            }
            None => self.drive(),
        }
        Ok(Completion::Recorded)
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

    /// Runs queued planning steps until none is left; a planning error fails the execution.
    fn drive(&mut self) {
        while let Some(work) = self.work.pop_front() {
            let step = match work {
                Work::Expand(frame, app) => self.expand(frame, app),
                Work::FrameDone(frame) => self.frame_done(frame),
            };
            if let Err(e) = step {
                self.fail(FailureCause::Plan(e));
                return;
            }
        }
        if matches!(self.state, State::Running) && self.pending.is_empty() {
            self.fail(FailureCause::Plan(internal("stalled: nothing ready or running")));
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

    /// Plans the instances of an application whose inputs all exist.
    fn expand(&mut self, frame_id: FrameId, a: usize) -> Result<(), PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.get(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        let label = format!("{}: app #{} '{}'", frame.path, app.number, app.function);

        let mut sets: Vec<Option<&Set>> = Vec::with_capacity(app.inputs.len());
        let mut skip = false;
        for input in &app.inputs {
            let Some(input) = input else {
                sets.push(None);
                continue;
            };
            let Some(SetSlot::Live(set)) = frame.sets.get(input.set) else {
                return Err(internal("an input set is not live when its reader starts"));
            };
            skip |= set.items.is_empty() && !input.optional;
            sets.push(Some(set));
        }
        let mut instance_inputs: Vec<Vec<Set>> = Vec::new();
        if !skip {
            let cuts: Vec<Cut> = app
                .inputs
                .iter()
                .zip(&sets)
                .map(|(input, set)| match (input, set) {
                    (Some(input), Some(set)) if !set.items.is_empty() => cut(set, input.distribution),
                    _ => Cut::Empty,
                })
                .collect();
            let limit = self.limits.max_instances_per_application;
            let combinations = Combinations::new(&cuts, &app.join, limit)
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
            instance_inputs.reserve(count);
            for k in 0..count {
                let shares = combinations.shares(k);
                let inputs = app
                    .input_names
                    .iter()
                    .enumerate()
                    .map(|(pos, name)| {
                        share_set(name, sets.get(pos).copied().flatten(), shares.get(pos), cuts.get(pos))
                    })
                    .collect();
                instance_inputs.push(inputs);
            }
        }
        let depth = frame.depth;

        // Every share is cut: the inputs lose a reader, and may go.
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        for &s in &app.sets_read {
            let left = frame.readers_left.get_mut(s).ok_or_else(|| internal("set id"))?;
            *left = left.saturating_sub(1);
            if unread(plan, &frame.readers_left, s) {
                *frame.sets.get_mut(s).ok_or_else(|| internal("set id"))? = SetSlot::Freed;
            }
        }
        let count = instance_inputs.len();
        *frame.apps.get_mut(a).ok_or_else(|| internal("app index"))? =
            AppRun::Running { results: vec![None; count], left: count };
        if count == 0 {
            // Skipped (an empty input without `optional`) or no combination: empty outputs.
            return self.finish_app(frame_id, a, Vec::new());
        }
        self.planned += count;
        for (k, inputs) in instance_inputs.into_iter().enumerate() {
            let at = SlotRef { frame: frame_id, app: a, index: k };
            let origin = format!("{label} instance {k}");
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
        Ok(())
    }

    /// Records one instance's outputs; the last one finishes the application.
    fn complete_slot(&mut self, at: SlotRef, outputs: Vec<Set>) -> Result<(), PlanError> {
        let frame = self.frames.get_mut(at.frame).ok_or_else(|| internal("frame of a completion"))?;
        let Some(AppRun::Running { results, left }) = frame.apps.get_mut(at.app) else {
            return Err(internal("completion for an application that is not running"));
        };
        let slot = results.get_mut(at.index).ok_or_else(|| internal("instance index"))?;
        if slot.is_some() {
            return Err(internal("instance completed twice"));
        }
        *slot = Some(outputs);
        *left = left.saturating_sub(1);
        if *left == 0 {
            let results = mem::take(results);
            self.finish_app(at.frame, at.app, results)?;
        }
        Ok(())
    }

    /// Concatenates the instances' outputs in instance order into the composition sets the
    /// application defines, and queues whatever those sets make ready.
    fn finish_app(&mut self, frame_id: FrameId, a: usize, mut results: Vec<Option<Vec<Set>>>) -> Result<(), PlanError> {
        let plans = self.plans.clone();
        let frame = self.frames.get_mut(frame_id).ok_or_else(|| internal("frame id"))?;
        let plan = plans.get(frame.plan).ok_or_else(|| internal("plan index"))?;
        let app: &AppPlan = plan.apps.get(a).ok_or_else(|| internal("app index"))?;
        *frame.apps.get_mut(a).ok_or_else(|| internal("app index"))? = AppRun::Done;
        for (j, target) in app.outputs.iter().enumerate() {
            let Some(id) = *target else { continue };
            let items = if unread(plan, &frame.readers_left, id) {
                Vec::new()
            } else {
                results
                    .iter_mut()
                    .flatten()
                    .filter_map(|outputs| outputs.get_mut(j))
                    .flat_map(|set| mem::take(&mut set.items))
                    .collect()
            };
            let name = plan.set_names.get(id).cloned().unwrap_or_default();
            define(frame, plan, frame_id, id, Set { name, items }, &mut self.work)?;
        }
        frame.apps_left = frame.apps_left.saturating_sub(1);
        if frame.apps_left == 0 {
            self.work.push_back(Work::FrameDone(frame_id));
        }
        Ok(())
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
        let Some(frame) = self.frames.get(at.frame) else { return (String::from("?"), String::from("?")) };
        let function = self
            .plans
            .get(frame.plan)
            .and_then(|p| p.apps.get(at.app))
            .map_or_else(|| String::from("?"), |a| a.function.clone());
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
        (Some(Share::Group(g)), Some(Cut::Keys(groups))) => {
            if let Some(group) = groups.get(*g) {
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
