//! The composition planner: a pure state machine (no threads, no I/O, no clock) that turns a
//! composition and its input sets into runnable function instances and collects their outputs.
//!
//! The dispatcher owns the cores; the planner owns the dataflow. Keeping it pure makes every
//! decision (fan-out, joins, order, freeing) testable on the host and identical on every run.
//!
//! ```text
//! let mut ex = Execution::start(&program, "top_errors", vec![urls], PlanLimits::default())?;
//! while let Status::Running { .. } = ex.status() {
//!     while let Some(instance) = ex.next_ready() { dispatch(instance) }
//!     let (id, result) = wait_for_one();
//!     ex.complete(id, result)?;
//! }
//! ```
//!
//! With [`PlanLimits::max_work_per_step`] set, every call does at most that much planning work
//! (cutting instances, applying completions, collecting results) and a caller that serves other
//! work between steps calls [`Execution::refuel`] once per step, and comes back while
//! [`Execution::has_work`]. The result is the same as without the bound, only spread over steps.
//!
//! Semantics (Dandelion's composition language, see DESIGN.md):
//! - An application starts when all the sets it reads exist. Its instances get their inputs in
//!   the callee's declaration order; an input the application does not bind is an empty set.
//! - `all` gives the whole set to every instance, `each` one item per instance, `keyed` one key
//!   group per instance; items without a key form one group of their own, sorted first (see `distribute.rs`).
//! - `anyEach`/`anyKeyed` (Dandelion's adaptive distributions) cut like `each`/`keyed` and then
//!   bundle consecutive items, key groups or joined rows into as many even parts as the platform
//!   aims at ([`PlanLimits::any_partitions`], Dandelion's split; docs/compositions.md).
//! - Several distributed inputs combine as a cross product; `by` joins keyed inputs left to right.
//! - An empty input set without `optional` skips the application: no instance, empty outputs.
//!   With `optional`, the empty set goes whole to every instance and multiplies nothing.
//! - The outputs of an application's instances are concatenated in instance order, whatever
//!   order they complete in.
//! - Applying a composition expands it in place (the caller only sees its function instances);
//!   it finishes when all its applications have, and its outputs become the instance's outputs.
//! - A composition set is dropped once its last reader is instantiated, unless it is an output.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod compile;
mod distribute;
mod error;
mod execution;
mod frame;
mod instance;
mod limits;
mod status;

pub use error::PlanError;
pub use execution::{Execution, Plan};
pub use instance::{Instance, InstanceId};
pub use limits::PlanLimits;
pub use status::{Completion, Failure, FailureCause, Status};
