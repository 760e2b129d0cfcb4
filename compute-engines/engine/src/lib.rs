//! The contract between the platform and its compute engines.
//!
//! Every engine — WebAssembly on wasmi today, MPK, page-table and CHERI sandboxes later —
//! implements [`Engine`]: it turns an uploaded image into a prepared, cacheable handle at
//! registration ([`Engine::prepare`]), and runs one instance of a function on its input sets
//! under [`Limits`] ([`Engine::run`]). Nothing here names a wasm type, so the kernel's
//! dispatcher, the HTTP front door and the metrics code are written once against this crate.
//!
//! - [`error`]: the typed failures, each with a stable code string and an HTTP status.
//! - [`limits`]: memory, time (an instruction budget plus a wall-clock [`Deadline`]) and output limits.
//! - [`abi`]: the engine-neutral parts of the function ABI (docs/function-abi.md).
//! - [`dynamic`]: [`DynEngine`], the object-safe view the kernel keeps in its engine table.
//!
//! The native engines' own policy (layout, keys, exit call, slices) is `pappus-native`
//! (`compute-engines/native`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod abi;
pub mod dynamic;
pub mod error;
pub mod limits;
mod traits;

pub use dynamic::{DynEngine, PreparedImage};
pub use error::{BadOutput, EngineError, ImageError, Trap, TrapKind};
pub use limits::{Deadline, Limits, TimeBudget};
pub use traits::{Completion, Engine, Invocation};
