//! The native engines' policy: everything about `mpk` and `paging` sandboxes that needs no
//! hardware, so that it reads (and is tested) like the wasm engine beside it. The kernel's
//! `native` module is the arch half: it implements [`SandboxSpace`] on its page tables, enters
//! ring 3, takes the traps, and asks this crate what they mean.
//!
//! - [`layout`]: where a sandbox's image, system data block, heap and stack lie ([`Layout`]),
//!   the MPK slots, and which pages are mapped on first touch.
//! - [`image`]: the checks at registration ([`prepare`]) and loading an image into a sandbox
//!   through the arch's page tables ([`SandboxSpace`], [`load_image`]), W^X and RELRO kept.
//! - [`keys`]: the MPK engine's protection keys 1..=15 ([`KeyPool`]).
//! - [`fault`]: what a fault from ring 3 means: a page to map, out of memory, or a trap whose
//!   message names the cause and no kernel address.
//! - [`slice`]: time slices and the time budget: when a timer tick resumes, preempts or ends
//!   a run ([`SliceClock`]).
//! - [`exit`]: the system data block and the one exit call's checks.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod exit;
pub mod fault;
pub mod image;
pub mod keys;
pub mod layout;
pub mod slice;

pub use exit::{
    BlockMemory, ExitCall, ExitMemory, MAP_MIN, Paged, Redacted, exit_outcome, mapped, mapped_inputs, system_block,
    system_block_len, system_region_len, write_system_block,
};
pub use fault::{FaultAction, classify_fault};
pub use image::{Access, MapError, NativeImage, SandboxSpace, load_image, prepare};
pub use keys::KeyPool;
pub use layout::{Footprint, Layout, SLOT_SIZE};
pub use slice::{CHECK_MICROS, SLICE_MICROS, SliceClock, TickAction};
