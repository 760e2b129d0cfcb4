//! The [`Engine`] trait and the shapes of one run.

use alloc::string::String;
use alloc::vec::Vec;
use model::Set;

use crate::error::EngineError;
use crate::limits::{Deadline, Limits};

/// A compute engine: prepares images once, runs instances many times.
///
/// Implementations must never panic on any image or input: every failure is an [`EngineError`]
/// that names its cause, and nothing outside the function's sandbox is touched.
pub trait Engine {
    /// The prepared form of an image: validated, compiled or loaded, ready to instantiate.
    ///
    /// It is cached by the registry and shared by concurrent runs on several cores, hence
    /// `Clone` (cheap: engines keep it behind an `Arc`) and `Send + Sync`.
    type Image: Clone + Send + Sync + 'static;

    /// The engine's name as the front door spells it (`engine=wasm`).
    fn name(&self) -> &'static str;

    /// Validates and prepares `image` at registration time, so that a bad image is refused with
    /// a 4xx there instead of failing every invocation later.
    fn prepare(&self, image: &[u8]) -> Result<Self::Image, EngineError>;

    /// Runs one instance of a prepared image to completion, its one exit path, or an error.
    fn run(&self, image: &Self::Image, invocation: Invocation<'_>) -> Result<Completion, EngineError>;
}

/// Everything one run needs besides the image.
pub struct Invocation<'a> {
    /// The input sets in the function's declaration order, each named as the function declares it.
    /// Owned so that an engine can keep them for the whole run without copying: items share their
    /// payload ([`model::Bytes`]) with the composition's sets anyway.
    pub inputs: Vec<Set>,
    /// The function's declared output set names, in declaration order. The function addresses
    /// output sets by index into this list.
    pub outputs: &'a [String],
    /// Memory, time and output limits for this run.
    pub limits: Limits,
    /// The wall-clock deadline, where the platform has a clock. Engines poll it at points that do
    /// not make the result depend on timing (wasm: between fuel slices); native engines arm their
    /// timer interrupt from [`Limits::time`] and consult it when the interrupt fires.
    pub deadline: Option<&'a dyn Deadline>,
}

impl core::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Invocation")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("limits", &self.limits)
            .field("deadline", &self.deadline.is_some())
            .finish()
    }
}

/// A run that ended through the function's one exit path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// One set per declared output, in declaration order and named as declared; a set the
    /// function wrote nothing to is present and empty.
    pub outputs: Vec<Set>,
    /// Instructions (fuel) the run consumed, where the engine counts them deterministically.
    /// Benchmarks report it next to the platform's own overhead.
    pub instructions: Option<u64>,
}
