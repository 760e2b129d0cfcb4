//! One run: a fresh store and instance, the entry call under a fuel budget, the outputs.

use engine::{Completion, Deadline, EngineError, Invocation, Limits};
use wasmi::{Extern, Func, ResumableCall, Store};

use crate::WasmEngine;
use crate::abi;
use crate::classify::{classify, classify_instantiation};
use crate::prepare::WasmImage;
use crate::state::HostState;

pub(crate) fn run(
    engine: &WasmEngine,
    image: &WasmImage,
    invocation: Invocation<'_>,
) -> Result<Completion, EngineError> {
    // wasmi panics on a module compiled by another wasmi engine: refuse it instead.
    if !wasmi::Engine::same(image.module.engine(), &engine.wasmi) {
        return Err(EngineError::internal("the image was prepared by another wasm engine instance"));
    }
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    let state = HostState::new(inputs, outputs, &limits, &engine.config);
    let mut store = Store::new(&engine.wasmi, state);
    store.limiter(|state| &mut state.limiter);
    // Instantiation (data segments, tables) may cost fuel and cannot be resumed: it gets the
    // whole budget; with a deadline, all but one slice goes back to the reserve afterwards.
    let slice = engine.config.fuel_slice.max(1);
    grant(&mut store, 0, slice, false)?;
    let instance = match engine.linker.instantiate_and_start(&mut store, &image.module) {
        Ok(instance) => instance,
        Err(e) => return Err(classify_instantiation(e, store.data(), &limits)),
    };
    if deadline.is_some() {
        reclaim(&mut store, slice)?;
    }
    store.data_mut().memory = match instance.get_export(&store, abi::MEMORY) {
        Some(Extern::Memory(memory)) => Some(memory),
        _ => None,
    };
    let Some(entry) = instance.get_func(&store, abi::ENTRY) else {
        // Checked at prepare time; an image from elsewhere must still not panic.
        return Err(EngineError::internal("the instance has no entry function"));
    };
    call(&mut store, entry, &limits, deadline, slice)?;

    let left = store.get_fuel().unwrap_or(0);
    let state = store.into_data();
    let used = limits.time.instructions.saturating_sub(state.fuel_reserve.saturating_add(left));
    Ok(Completion { outputs: state.outputs, instructions: Some(used) })
}

/// Calls the entry function to completion. Without a deadline the whole budget is fuel from the
/// start; with one, fuel comes in slices and the deadline is checked between them.
fn call(
    store: &mut Store<HostState>,
    entry: Func,
    limits: &Limits,
    deadline: Option<&dyn Deadline>,
    slice: u64,
) -> Result<(), EngineError> {
    let mut step = entry.call_resumable(&mut *store, &[], &mut []);
    loop {
        match step {
            Ok(ResumableCall::Finished) => return Ok(()),
            Ok(ResumableCall::HostTrap(trap)) => return Err(classify(trap.into_host_error(), store.data(), limits)),
            Ok(ResumableCall::OutOfFuel(paused)) => {
                if deadline.is_some_and(|d| d.expired()) {
                    return Err(EngineError::Timeout { budget: limits.time, wall_clock: true });
                }
                let needed = paused.required_fuel();
                let in_store = store.get_fuel().unwrap_or(0);
                if store.data().fuel_reserve.saturating_add(in_store) < needed {
                    return Err(EngineError::Timeout { budget: limits.time, wall_clock: false });
                }
                grant(store, needed, slice, deadline.is_some())?;
                step = paused.resume(&mut *store, &mut []);
            }
            Err(e) => return Err(classify(e, store.data(), limits)),
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
