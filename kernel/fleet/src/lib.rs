//! A fleet node's sync with the fleet's desired state, without sockets or clocks.
//!
//! - [`layout`]: the etcd key layout and a function's value (shared with the deploying side,
//!   `pappus`'s library, so both write and read the same thing);
//! - [`Sync`]: the state machine the kernel's I/O core drives: a range read of the prefix from
//!   etcd's v3 JSON gateway, then a watch of it (a streaming response, read with
//!   `pappus-fetch`'s stream mode), blob fetches verified by SHA-256, and the register, replace
//!   and delete [`Action`]s they make; a range read again after any trouble with the watch.
//!
//! The kernel (kernel/src/fleet.rs) sends the requests through its own HTTP client
//! (`pappus-fetch`) and applies the actions through the control plane. Nothing here panics on
//! any input; everything is tested on the host. docs/fleet.md is the whole picture.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod layout;
mod sync;

pub use layout::{FunctionValue, Key, Kind, PREFIX};
pub use sync::{Action, EtcdState, Fetched, Sync, SyncConfig, SyncStats};
