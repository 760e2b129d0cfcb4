//! From wasmi's errors and the host's faults to the engine's typed errors.

use alloc::format;
use alloc::string::{String, ToString};
use engine::{EngineError, Limits, Trap, TrapKind};
use wasmi::TrapCode;

use crate::fault::HostFault;
use crate::state::{HostState, Refusal};

/// The error a failed run reports.
///
/// The rule that makes out-of-memory precise: a run that *fails* (trap or abort) after the
/// limiter refused it memory ran out of memory, and the message keeps both the refusal and how
/// the function ended. A run that coped with the refusal and completed is fine; a timeout or bad
/// output stays what it is.
pub(crate) fn classify(error: wasmi::Error, state: &HostState, limits: &Limits) -> EngineError {
    if error.downcast_ref::<HostFault>().is_some() {
        return match error.downcast::<HostFault>() {
            Some(fault) => classify_fault(fault, state, limits),
            None => EngineError::internal("a host fault vanished while classifying it"),
        };
    }
    let Some(code) = error.as_trap_code() else {
        return failure(EngineError::internal(error.to_string()), state, limits);
    };
    let kind = match code {
        TrapCode::OutOfFuel => return timeout(limits),
        TrapCode::GrowthOperationLimited | TrapCode::OutOfSystemMemory => {
            return out_of_memory(state, limits, error.to_string());
        }
        TrapCode::UnreachableCodeReached => TrapKind::Unreachable,
        TrapCode::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        TrapCode::TableOutOfBounds => TrapKind::TableOutOfBounds,
        TrapCode::IndirectCallToNull => TrapKind::IndirectCallToNull,
        TrapCode::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        TrapCode::IntegerOverflow => TrapKind::IntegerOverflow,
        TrapCode::BadConversionToInteger => TrapKind::BadConversionToInteger,
        TrapCode::StackOverflow => TrapKind::StackOverflow,
        TrapCode::BadSignature => TrapKind::BadSignature,
    };
    failure(Trap::new(kind, error.to_string()).into(), state, limits)
}

/// The error of a failed instantiation: out of memory when the limiter refused the module's
/// initial memory or tables, else as [`classify`] says (e.g. a data segment out of bounds).
pub(crate) fn classify_instantiation(error: wasmi::Error, state: &HostState, limits: &Limits) -> EngineError {
    if state.limiter.refused.is_some() {
        return out_of_memory(state, limits, "so the instance could not be created".into());
    }
    classify(error, state, limits)
}

fn classify_fault(fault: HostFault, state: &HostState, limits: &Limits) -> EngineError {
    match fault {
        HostFault::Abort(message) => failure(EngineError::Aborted { message }, state, limits),
        HostFault::BadOutput(e) => EngineError::BadOutput(e),
        HostFault::OutOfFuel => timeout(limits),
        fault @ (HostFault::BadPointer { .. } | HostFault::NoMemory(_)) => {
            failure(Trap::new(TrapKind::MemoryOutOfBounds, fault.to_string()).into(), state, limits)
        }
    }
}

/// The run failed with `error`; after a refused allocation that is running out of memory.
fn failure(error: EngineError, state: &HostState, limits: &Limits) -> EngineError {
    if state.limiter.refused.is_none() {
        return error;
    }
    let how = match &error {
        EngineError::Trap(trap) => format!("then trapped ({}): {}", trap.kind.name(), trap.message),
        EngineError::Aborted { message } => format!("then aborted: {message}"),
        other => format!("then failed: {other}"),
    };
    out_of_memory(state, limits, how)
}

fn out_of_memory(state: &HostState, limits: &Limits, how: String) -> EngineError {
    let refused = match &state.limiter.refused {
        Some(Refusal::Memory { current, desired }) => {
            format!("linear memory growth from {current} to {desired} bytes was refused; ")
        }
        Some(Refusal::Table { current, desired }) => {
            format!("table growth from {current} to {desired} elements was refused; ")
        }
        Some(Refusal::Host(message)) => format!("the host could not allocate: {message}; "),
        None => String::new(),
    };
    EngineError::OutOfMemory { limit_bytes: limits.memory_bytes, detail: format!("{refused}{how}") }
}

fn timeout(limits: &Limits) -> EngineError {
    EngineError::Timeout { budget: limits.time, wall_clock: false }
}
