//! The host-testable core of the dispatcher: pure logic, no threads, no I/O, no clock (time is
//! passed in as `u64` ticks of whatever clock the caller reads).
//!
//! The kernel's dispatcher (`kernel/src/compute/dispatcher.rs`) keeps a [`RunQueue`] behind its
//! lock, fed by the control plane's ready instances and popped by the cores that run them, and
//! one [`CoreStats`] per core for `/metrics`.
//!
//! - [`RunQueue`]: bounded queues of work items, FIFO per tenant, weighted round-robin across
//!   tenants (the precise policy is documented on the type), one global capacity; a full queue
//!   answers [`Full`] so the front door replies `503` with `Retry-After`; every queued item of an
//!   invocation can be cancelled at once.
//! - [`CoreStats`]: per-core busy/idle tick accounting and a run-duration histogram.
//! - [`Histogram`]: fixed log2 buckets rendered as Prometheus histogram lines.
//! - [`io_core_helps`]: when the I/O core runs queued work itself beside the compute cores.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod help;
mod histogram;
mod queue;
mod stats;

pub use help::io_core_helps;
pub use histogram::{BUCKETS, Histogram};
pub use queue::{Full, InvocationId, Receipt, RunQueue, TenantId};
pub use stats::CoreStats;
