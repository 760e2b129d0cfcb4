//! The Pappus function SDK.
//!
//! A function reads its declared input sets and writes its declared output sets; nothing else.
//!
//! ```
//! // In a function crate: #![no_std] on wasm32, and `extern crate alloc;`.
//! use pappus_sdk::{Context, Error};
//!
//! pappus_sdk::entry!(uppercase);
//!
//! fn uppercase(ctx: &mut Context) -> Result<(), Error> {
//!     let out = ctx.output(0).ok_or("no output declared")?;
//!     for set in ctx.inputs() {
//!         for item in set.items() {
//!             out.push_item(&item.name(), item.key(), &item.data().to_ascii_uppercase());
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! - [`Context`] is the whole API: input sets and items (name, key, bytes), output sets by
//!   declaration index or name, and `push`.
//! - [`entry!`] exports the entry point; returning `Err` or panicking ends the run with the
//!   message (`function_aborted`).
//! - On wasm32 the SDK brings a panic handler and a bump allocator (features `panic-handler`,
//!   `allocator`). On other targets it compiles as a plain library, and [`mock`] runs a
//!   function on the host for unit tests.
//!
//! The API does not depend on the transport: wasm host imports today, the native engines'
//! system data block later (docs/function-abi.md).
#![no_std]
#![deny(unsafe_code)] // allowed only in `wasm::sys`, `wasm::heap` and `native`

extern crate alloc;

pub mod abi;
mod context;
mod entry;
mod error;
// A host-side stand-in: on wasm32 a `Context` is bound to the host imports (`context::Tx`).
#[cfg(not(target_arch = "wasm32"))]
pub mod mock;
#[cfg(all(pappus_native, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod native;
#[cfg(any(target_arch = "wasm32", all(pappus_native, any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod panic_message;
mod transport;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use context::{Context, InputItem, InputSet, Output};
#[doc(hidden)]
pub use entry::__private;
pub use entry::Entry;
pub use error::Error;
