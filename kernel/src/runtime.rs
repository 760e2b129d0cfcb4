//! What the control plane runs on: its [`control::Runtime`]. Compute instances go to the
//! dispatcher's run queue (`compute/`); instances of communication functions (`http`) go to
//! their client on this, the I/O core (`comm/`). Both report back through
//! [`Runtime::take_completed`], which the control plane drains on every pass.

use alloc::sync::Arc;
use alloc::vec::Vec;

use control::{Comm, Prepared, RunError, Runtime, Started, StoredFunction, Ticket};
use engine::PreparedImage;
use model::{Bytes, FunctionSpec, Set, TenantId};

use crate::comm::http::HttpComm;
use crate::compute::{Dispatcher, Job};
use crate::mm;
use crate::net::Net;

/// Heap a prepared image may take per byte of its image, at most, as assumed before preparing
/// it (wasmi's compiled code and the loaded ELF stay well below; the charge is what was
/// measured).
const PREPARE_BYTES_PER_IMAGE_BYTE: u64 = 4;

pub struct KernelRuntime {
    dispatcher: &'static Dispatcher,
    http: HttpComm,
}

impl KernelRuntime {
    pub fn new(dispatcher: &'static Dispatcher, http: HttpComm) -> Self {
        Self { dispatcher, http }
    }

    /// Moves the communication functions' sockets; whether anything moved. Every I/O pass,
    /// after the NIC's poll.
    pub fn poll_comm(&mut self, net: &mut Net, now_ms: u64) -> bool {
        self.http.poll(net, now_ms)
    }

    /// When a communication function next needs a pass for a timeout (ms since boot).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.http.next_wakeup_ms()
    }
}

impl Runtime for KernelRuntime {
    /// Prepares on this (the I/O) core, so the heap this core allocated meanwhile, less what
    /// it freed, is what the prepared image keeps: that is its charge. Refused before any work
    /// when a generous estimate ([`PREPARE_BYTES_PER_IMAGE_BYTE`] per image byte) would not
    /// fit the tenant's room (507) or would eat into the kernel's heap reserve (503).
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes, room: u64) -> Result<Prepared, RunError> {
        let estimate = (image.len() as u64).saturating_mul(PREPARE_BYTES_PER_IMAGE_BYTE);
        if estimate > room {
            let message = alloc::format!(
                "preparing a {}-byte image takes up to {estimate} bytes, and this tenant's memory budget has {room} left",
                image.len()
            );
            return Err(RunError::new(507, "memory_budget", message));
        }
        if !mm::heap_room_for(usize::try_from(estimate).unwrap_or(usize::MAX)) {
            let message = "the node has no memory to prepare this image now; retry later";
            return Err(RunError::new(503, "out_of_memory", message));
        }
        let before = mm::heap_allocated_here();
        let prepared = self.dispatcher.engines().prepare(spec, image)?;
        let bytes = mm::heap_allocated_here().wrapping_sub(before).min(1 << 40);
        Ok(Prepared::new(prepared, bytes))
    }

    fn heap_allocated_here(&self) -> Option<u64> {
        Some(mm::heap_allocated_here())
    }

    fn start(&mut self, ticket: Ticket, tenant: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started {
        let Some(prepared) = function.prepared().get::<PreparedImage>().cloned() else {
            return Started::Done(Err(RunError::new(500, "internal", "the function was prepared by another runtime")));
        };
        let job = Job { ticket, tenant, function: Arc::clone(function), prepared, inputs };
        match self.dispatcher.submit(job) {
            Ok(()) => Started::Running,
            Err(job) => Started::Busy(job.inputs),
        }
    }

    fn start_comm(&mut self, ticket: Ticket, comm: Comm, inputs: Vec<Set>) -> Started {
        match comm {
            Comm::Http => {
                // One input set, `requests` (the builtin's signature).
                let requests = inputs.into_iter().next().unwrap_or_else(|| Set::new("requests"));
                self.http.start(ticket, requests);
                Started::Running
            }
        }
    }

    fn saturated(&self, tenant: TenantId) -> bool {
        self.dispatcher.saturated(tenant)
    }

    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, RunError>)> {
        self.dispatcher.take_completed().or_else(|| self.http.take_completed().map(|(t, sets)| (t, Ok(sets))))
    }

    fn cancel(&mut self, invocation: u64) {
        self.dispatcher.cancel(invocation);
        self.http.cancel(invocation);
    }
}
