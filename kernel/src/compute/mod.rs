//! Where function instances run: the dispatcher and the compute cores.
//!
//! The control plane (on the I/O core) starts instances through `crate::runtime::KernelRuntime`, its
//! [`control::Runtime`]: the instance, with its function's prepared image, goes into the
//! [`dispatcher`]'s run queue — FIFO per tenant, weighted round-robin across tenants, one global
//! bound and an equal share of it per tenant (a full queue is 503 with `Retry-After`); runs go
//! in turns of about 10 ms, a parked run queued again behind the other tenants' work. Compute cores ([`executor`]) pop
//! and run instances and hand results back; the I/O core's loop collects them through the
//! host's `take_completed` on its next pass. A cancelled invocation's queued instances are
//! dropped and its running ones stopped at their next deadline check.
//!
//! Core roles (`compute=N` on the command line, docs/configuration.md): by default CPU 0 is the
//! I/O core (NIC, TCP/HTTP, the control plane, communication functions) and every other CPU a
//! compute core. With one CPU, or `compute=0`, the I/O core runs one turn per pass of its loop
//! between network work (single-core mode).

mod dispatcher;
mod executor;
mod metrics;

pub use dispatcher::{Dispatcher, Job, RUN_QUEUE_CAPACITY};
pub use executor::executor;
