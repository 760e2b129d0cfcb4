//! Per-run limits: memory, time, and how much a function may write.

/// Instructions one millisecond of budget buys, for engines that count instructions.
///
/// A deterministic budget: the same function on the same input ends (or times out) at the same
/// instruction on every machine, under TCG and on hardware alike. The figure is wasmi's speed
/// on a current x86_64 core, rounded down: 0.8 M fuel/ms for a bare `loop br`, 2.2 M fuel/ms for
/// a loop of arithmetic and stores (release build, docs/function-abi.md, "Time"). So a budget of
/// N ms is about N ms of work natively; under emulation it takes longer in wall-clock time, and
/// the [`Deadline`] (which the platform sets with slack) is the backstop.
pub const INSTRUCTIONS_PER_MS: u64 = 1_000_000;

/// Default cap on the number of items one run may write, over all its output sets.
pub const DEFAULT_MAX_OUTPUT_ITEMS: usize = pappus_sdk::abi::MAX_OUTPUT_ITEMS;

/// Default cap on the payload bytes one run may write, over all its output sets.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = pappus_sdk::abi::MAX_OUTPUT_BYTES;

/// A time budget in the two forms engines need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeBudget {
    /// The budget as the function was registered with it (`timeout_ms=`): native engines arm
    /// their timer from it, and error messages quote it.
    pub millis: u64,
    /// The same budget as an instruction count, for engines that meter instructions (wasm fuel).
    pub instructions: u64,
}

impl TimeBudget {
    /// A budget of `millis` milliseconds at the platform's [`INSTRUCTIONS_PER_MS`].
    pub const fn from_millis(millis: u64) -> Self {
        Self::with_rate(millis, INSTRUCTIONS_PER_MS)
    }

    /// A budget of `millis` milliseconds at `per_ms` instructions per millisecond (saturating).
    pub const fn with_rate(millis: u64, per_ms: u64) -> Self {
        Self { millis, instructions: millis.saturating_mul(per_ms) }
    }
}

/// The limits of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of memory the function's sandbox may hold (wasm: linear memory).
    pub memory_bytes: u64,
    /// How long the function may run.
    pub time: TimeBudget,
    /// The most items the function may write, over all output sets.
    pub max_output_items: usize,
    /// The most payload bytes the function may write, over all output sets (names not counted:
    /// each is at most [`model::MAX_NAME_LEN`] bytes, so `max_output_items` bounds them).
    pub max_output_bytes: u64,
}

impl Limits {
    /// Limits with the registration's memory and time, and the default output caps.
    pub const fn new(memory_bytes: u64, time: TimeBudget) -> Self {
        Self {
            memory_bytes,
            time,
            max_output_items: DEFAULT_MAX_OUTPUT_ITEMS,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }
}

/// A wall-clock deadline the platform provides (the kernel: a TSC comparison).
///
/// Deterministic budgets are the rule; this is the backstop for an engine whose instructions run
/// slower than [`INSTRUCTIONS_PER_MS`] assumes (emulation, a host call that copies a lot), and
/// the primary clock for native engines, which cannot count instructions.
pub trait Deadline {
    /// Whether the run's wall-clock budget is spent.
    fn expired(&self) -> bool;

    /// Whether the run's turn on its core is used up: an engine that can park a run (the wasm
    /// engine between fuel slices, `WasmEngine::start`) hands it back to be queued again.
    /// Engines that run to the end ignore it. Default: never.
    fn turn_over(&self) -> bool {
        false
    }
}
