//! The composition planner: a pure state machine (no threads, no I/O) that turns a composition
//! and its input sets into runnable function instances and collects their outputs.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
