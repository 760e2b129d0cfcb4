//! The host-testable core of the dispatcher: pure logic, no threads, no I/O, no clock (time is
//! passed in as `u64` ticks of whatever clock the caller reads).
//!
//! **Not wired into the kernel yet**: the SMP work (issue 7) will put a [`RunQueue`] behind the
//! dispatcher's lock, feed it the ready instances from the planner, let idle compute cores
//! [`RunQueue::pop`] from it, and keep one [`CoreStats`] per core for `/metrics`.
//!
//! - [`RunQueue`]: bounded queues of work items, FIFO per tenant, weighted round-robin across
//!   tenants (the precise policy is documented on the type), one global capacity; a full queue
//!   answers [`Full`] so the front door replies `503` with `Retry-After`; every queued item of an
//!   invocation can be cancelled at once.
//! - [`CoreStats`]: per-core busy/idle tick accounting and a run-duration histogram.
//! - [`Histogram`]: fixed log2 buckets rendered as Prometheus histogram lines.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod histogram;
mod queue;
mod stats;

pub use histogram::{BUCKETS, Histogram};
pub use queue::{Full, InvocationId, Receipt, RunQueue, TenantId};
pub use stats::CoreStats;
