//! Device drivers for the Pappus kernel.
//!
//! Each driver is a thin, safe-to-use wrapper whose constructor is `unsafe` (the caller vouches
//! for the device's address); the kernel owns locking and placement.

#![no_std]

extern crate alloc;

pub mod acpi;
pub mod net;
pub mod pci;
pub mod serial;
