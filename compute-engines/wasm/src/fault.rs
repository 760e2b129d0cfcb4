//! Why a host function ended the run: carried through wasmi as a host error.

use alloc::string::String;
use core::fmt;
use engine::BadOutput;

/// A host function's reason to end the run. wasmi hands it back unchanged from the call, and
/// [`classify`](crate::classify) turns it into the run's [`EngineError`](engine::EngineError).
#[derive(Debug)]
pub(crate) enum HostFault {
    /// The function called `abort` (it returned an error or panicked).
    Abort(String),
    /// The function wrote output it may not write.
    BadOutput(BadOutput),
    /// A pointer and length handed to an ABI call do not lie inside linear memory.
    BadPointer {
        /// The ABI call.
        call: &'static str,
        /// Which argument.
        what: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u64,
        /// The memory's size in bytes.
        memory: usize,
    },
    /// An ABI call that takes pointers, in a module without a `memory` export (refused at
    /// prepare time; kept so that the host function never assumes it).
    NoMemory(&'static str),
    /// The budget ran out while a host function charged for its work.
    OutOfFuel,
}

impl fmt::Display for HostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Abort(message) => write!(f, "aborted: {message}"),
            Self::BadOutput(e) => write!(f, "{e}"),
            Self::BadPointer { call, what, ptr, len, memory } => write!(
                f,
                "pappus.{call}: {what} at {ptr:#x} of {len} bytes lies outside linear memory ({memory} bytes)"
            ),
            Self::NoMemory(call) => write!(f, "pappus.{call}: the module exports no linear memory"),
            Self::OutOfFuel => write!(f, "time budget exhausted in a host call"),
        }
    }
}

impl core::error::Error for HostFault {}

impl wasmi::errors::HostError for HostFault {}

impl From<HostFault> for wasmi::Error {
    fn from(fault: HostFault) -> Self {
        wasmi::Error::host(fault)
    }
}
