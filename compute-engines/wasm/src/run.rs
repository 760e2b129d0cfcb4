//! One run: a fresh store and instance, the entry call under a fuel budget, the outputs. With
//! a deadline the run goes in fuel slices; at a slice boundary where the deadline says the
//! turn is over, the run is parked ([`WasmStep::Paused`]) with its store and paused call, to be
//! resumed later, on any core ([`WasmRun::resume`]).

use alloc::boxed::Box;
use alloc::sync::Arc;
use engine::{Completion, Deadline, EngineError, Invocation, Limits};
use wasmi::{Extern, ResumableCall, ResumableCallOutOfFuel, Store};

use crate::WasmEngine;
use crate::abi;
use crate::classify::{classify, classify_instantiation};
use crate::prepare::WasmImage;
use crate::reuse::{self, Ready, Reuse};
use crate::state::HostState;

/// How far one turn of a wasm run got.
// A step is returned once and moved on at once (the kernel parks a paused run on its heap,
// fallibly); boxing here would be an infallible allocation on every turn.
#[allow(clippy::large_enum_variant)]
pub enum WasmStep {
    /// The run ended: its outputs, or why it failed.
    Done(Result<Completion, EngineError>),
    /// Its turn is over (the deadline said so between fuel slices): resume it later.
    Paused(WasmRun),
}

/// A wasm run between two turns: its store (instance, memory, inputs, outputs so far, fuel)
/// and the entry call, paused at a fuel slice's end.
pub struct WasmRun {
    held: Held,
    paused: ResumableCallOutOfFuel,
    limits: Limits,
    slice: u64,
}

impl core::fmt::Debug for WasmRun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WasmRun").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl WasmRun {
    /// Runs the next turn: until the run ends or `deadline` says this turn is over too.
    pub fn resume(self, deadline: Option<&dyn Deadline>) -> WasmStep {
        let WasmRun { mut held, paused, limits, slice } = self;
        let step = paused.resume(held.store(), &mut []);
        drive(held, step, limits, deadline, slice)
    }
}

pub(crate) fn run(
    engine: &WasmEngine,
    image: &WasmImage,
    invocation: Invocation<'_>,
) -> Result<Completion, EngineError> {
    let deadline = invocation.deadline;
    let mut step = start(engine, image, invocation);
    loop {
        match step {
            WasmStep::Done(result) => return result,
            WasmStep::Paused(run) => step = run.resume(deadline),
        }
    }
}

pub(crate) fn start(engine: &WasmEngine, image: &WasmImage, invocation: Invocation<'_>) -> WasmStep {
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    let state = HostState::new(inputs, outputs, &limits, &engine.config);
    let slice = engine.config.fuel_slice.max(1);
    if let Some(reuse) = &image.reuse
        && let Some(ready) = reuse.take(&limits)
    {
        return start_kept(reuse, ready, state, limits, deadline, slice);
    }
    let mut store = Store::new(&image.wasmi, state);
    store.limiter(|state| &mut state.limiter);
    // Instantiation (data segments, tables) may cost fuel and cannot be resumed: it gets the
    // whole budget; with a deadline, all but one slice goes back to the reserve afterwards.
    if let Err(e) = grant(&mut store, 0, slice, false) {
        return WasmStep::Done(Err(e));
    }
    // The module's imports, resolved against the ABI at prepare time: one host function each.
    let instance = match reuse::instantiate(&mut store, &image.module, &image.imports) {
        Ok(instance) => instance,
        Err(e) => return WasmStep::Done(Err(classify_instantiation(e, store.data(), &limits))),
    };
    if deadline.is_some()
        && let Err(e) = reclaim(&mut store, slice)
    {
        return WasmStep::Done(Err(e));
    }
    store.data_mut().memory = match instance.get_export(&store, abi::MEMORY) {
        Some(Extern::Memory(memory)) => Some(memory),
        _ => None,
    };
    let Some(entry) = instance.get_func(&store, abi::ENTRY) else {
        // Checked at prepare time; an image from elsewhere must still not panic.
        return WasmStep::Done(Err(EngineError::internal("the instance has no entry function")));
    };
    // A reusable image's fresh store can be kept after this run, if the kept one is taken.
    let mut held = match image.reuse.as_ref().and_then(|reuse| Some((reuse, reuse.handles(&store, instance)?))) {
        Some((reuse, handles)) => Held::Kept(reuse.clone(), Box::new(Ready { store, handles })),
        None => Held::Own(store),
    };
    let step = entry.call_resumable(held.store(), &[], &mut []);
    drive(held, step, limits, deadline, slice)
}

/// A run on the image's kept store: its instance is as instantiation left it; this run's host
/// state replaces the idle one, and the run is charged what instantiation would have cost.
fn start_kept(
    reuse: &Arc<Reuse>,
    mut ready: Box<Ready>,
    mut state: HostState,
    limits: Limits,
    deadline: Option<&dyn Deadline>,
    slice: u64,
) -> WasmStep {
    if state.fuel_reserve < reuse.instantiation_fuel {
        reuse.give_back(ready);
        return WasmStep::Done(Err(EngineError::Timeout { budget: limits.time, wall_clock: false }));
    }
    state.fuel_reserve -= reuse.instantiation_fuel;
    state.memory = ready.handles.abi_memory;
    *ready.store.data_mut() = state;
    let fueled = match ready.store.set_fuel(0) {
        Ok(()) => grant(&mut ready.store, 0, slice, deadline.is_some()),
        Err(e) => Err(EngineError::internal(alloc::format!("setting fuel: {e}"))),
    };
    if let Err(e) = fueled {
        reuse.give_back(ready);
        return WasmStep::Done(Err(e));
    }
    let entry = ready.handles.entry;
    let step = entry.call_resumable(&mut ready.store, &[], &mut []);
    drive(Held::Kept(reuse.clone(), ready), step, limits, deadline, slice)
}

/// A run's store: its own, or one to give back to its image when the run completes.
// Moved once per run and parked on the heap by the kernel with its run; boxing the store here
// would be one more allocation for every run that instantiates.
#[allow(clippy::large_enum_variant)]
enum Held {
    Own(Store<HostState>),
    Kept(Arc<Reuse>, Box<Ready>),
}

impl Held {
    fn store(&mut self) -> &mut Store<HostState> {
        match self {
            Held::Own(store) => store,
            Held::Kept(_, ready) => &mut ready.store,
        }
    }

    /// The run failed with `error`: its store is dropped; a kept one is replaced by a new
    /// instance (`Reuse::refill`).
    fn fail(self, error: EngineError) -> WasmStep {
        if let Held::Kept(reuse, ready) = self {
            drop(ready);
            reuse.refill();
        }
        WasmStep::Done(Err(error))
    }

    /// The run's host state, after it completed; a kept store goes back to its image.
    fn finish(self) -> HostState {
        match self {
            Held::Own(store) => store.into_data(),
            Held::Kept(reuse, mut ready) => {
                let state = core::mem::replace(ready.store.data_mut(), HostState::idle());
                reuse.give_back(ready);
                state
            }
        }
    }
}

/// Runs the entry call on until it ends or its turn is over. Without a deadline the whole
/// budget is fuel from the start; with one, fuel comes in slices and the deadline is checked
/// (and asked whether the turn is over) between them.
fn drive(
    mut held: Held,
    mut step: Result<ResumableCall, wasmi::Error>,
    limits: Limits,
    deadline: Option<&dyn Deadline>,
    slice: u64,
) -> WasmStep {
    loop {
        let store = held.store();
        match step {
            Ok(ResumableCall::Finished) => {
                let left = store.get_fuel().unwrap_or(0);
                let state = held.finish();
                let used = limits.time.instructions.saturating_sub(state.fuel_reserve.saturating_add(left));
                return WasmStep::Done(Ok(Completion { outputs: state.outputs, instructions: Some(used) }));
            }
            Ok(ResumableCall::HostTrap(trap)) => {
                let error = classify(trap.into_host_error(), store.data(), &limits);
                return held.fail(error);
            }
            Ok(ResumableCall::OutOfFuel(paused)) => {
                if deadline.is_some_and(|d| d.expired()) {
                    return held.fail(EngineError::Timeout { budget: limits.time, wall_clock: true });
                }
                let needed = paused.required_fuel();
                let in_store = store.get_fuel().unwrap_or(0);
                if store.data().fuel_reserve.saturating_add(in_store) < needed {
                    return held.fail(EngineError::Timeout { budget: limits.time, wall_clock: false });
                }
                if let Err(e) = grant(store, needed, slice, deadline.is_some()) {
                    return held.fail(e);
                }
                if deadline.is_some_and(|d| d.turn_over()) {
                    return WasmStep::Paused(WasmRun { held, paused, limits, slice });
                }
                step = paused.resume(store, &mut []);
            }
            Err(e) => {
                let error = classify(e, store.data(), &limits);
                return held.fail(error);
            }
        }
    }
}

/// Moves the store's fuel beyond `keep` back into the reserve.
fn reclaim(store: &mut Store<HostState>, keep: u64) -> Result<(), EngineError> {
    let in_store = store.get_fuel().unwrap_or(0);
    let kept = in_store.min(keep);
    store.data_mut().fuel_reserve += in_store - kept;
    store.set_fuel(kept).map_err(|e| EngineError::internal(alloc::format!("setting fuel: {e}")))
}

/// Moves fuel from the reserve into the store: at least `needed`, a slice when slicing, else all.
fn grant(store: &mut Store<HostState>, needed: u64, slice: u64, slicing: bool) -> Result<(), EngineError> {
    let reserve = store.data().fuel_reserve;
    let amount = if slicing { slice.max(needed).min(reserve) } else { reserve };
    store.data_mut().fuel_reserve = reserve - amount;
    let in_store = store.get_fuel().unwrap_or(0);
    store
        .set_fuel(in_store.saturating_add(amount))
        .map_err(|e| EngineError::internal(alloc::format!("setting fuel: {e}")))
}
