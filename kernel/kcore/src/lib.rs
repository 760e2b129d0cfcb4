//! Kernel logic that needs no hardware.
//!
//! Everything here is `no_std` and free of `unsafe`, so `cargo test` runs it on the host and
//! fuzzers can reach it; the kernel crate wires it to the machine.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod ascii;
pub mod blocks;
pub mod cmdline;
pub mod frames;
pub mod memmap;
pub mod small_deque;
pub mod small_map;
pub mod units;
