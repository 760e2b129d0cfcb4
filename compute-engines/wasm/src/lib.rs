//! The WebAssembly compute engine, on the wasmi interpreter.
//!
//! A function is a wasm module that imports only the `pappus` host functions of the function ABI
//! (docs/function-abi.md) and exports `run: [] -> []` and its linear memory `memory`.
//!
//! - **Prepare** (`prepare.rs`): size limit, validation and eager compilation, import and export
//!   checks. The result is a [`WasmImage`], a cheap clone of the compiled module.
//! - **Run** (`run.rs`): a fresh store and instance per run, or the image's kept one put back to
//!   its instantiated state (`reuse.rs`); fuel metering turns the instruction
//!   budget into a deterministic timeout; a resource limiter caps linear memory (`state.rs`); the
//!   host functions (`host.rs`) bounds-check every pointer (`guest_memory.rs`); traps and limits
//!   become typed [`EngineError`]s (`classify.rs`).
//!
//! wasm-to-wasm calls do not recurse on the host stack in wasmi; the call depth and value stack
//! are bounded by [`WasmConfig`], so unbounded recursion is a `stack_overflow` trap.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod abi;
mod classify;
mod config;
mod fault;
mod guest_memory;
mod host;
mod prepare;
mod reuse;
mod run;
mod state;

use engine::{Completion, Engine, EngineError, Invocation};

pub use config::WasmConfig;
pub use prepare::WasmImage;
pub use run::{WasmRun, WasmStep};

/// The engine: its configuration. Each image it prepares gets a wasmi engine of its own (the
/// compiled code), so that dropping the image
/// frees its code: one wasmi engine keeps every function it ever compiled (measured: 7 KB per
/// 50-function module, never given back), which a tenant's register/delete cycles would grow
/// without bound (tests/lifetime.rs).
pub struct WasmEngine {
    config: WasmConfig,
}

impl WasmEngine {
    /// An engine with `config` (checked by making one wasmi engine with it).
    pub fn new(config: WasmConfig) -> Result<Self, EngineError> {
        wasmi::Engine::new(&config.wasmi_config());
        Ok(Self { config })
    }

    /// Starts a run and runs it until it ends or, between two fuel slices, the invocation's
    /// deadline says its turn is over ([`Deadline::turn_over`](engine::Deadline::turn_over)):
    /// then it comes back parked, for the platform to queue again and [`WasmRun::resume`].
    pub fn start(&self, image: &WasmImage, invocation: Invocation<'_>) -> WasmStep {
        run::start(self, image, invocation)
    }

    /// The configuration this engine was made with.
    pub fn config(&self) -> &WasmConfig {
        &self.config
    }
}

impl core::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WasmEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Engine for WasmEngine {
    type Image = WasmImage;

    fn name(&self) -> &'static str {
        "wasm"
    }

    fn prepare(&self, image: &[u8]) -> Result<WasmImage, EngineError> {
        prepare::prepare(&self.config, image)
    }

    fn run(&self, image: &WasmImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        run::run(self, image, invocation)
    }
}
