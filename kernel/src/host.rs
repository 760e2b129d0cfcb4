//! What the control plane runs on: its [`control::FunctionHost`]. Compute instances go to the
//! dispatcher's run queue (`compute/`); instances of communication functions (`http`) go to
//! their client on this, the I/O core (`comm/`). Both report back through
//! [`FunctionHost::take_completed`], which the control plane drains on every pass.

use alloc::sync::Arc;
use alloc::vec::Vec;

use control::{Comm, FunctionHost, HostError, Started, StoredFunction, Ticket};
use model::{Bytes, FunctionSpec, ImageDigest, Set, TenantId};

use crate::comm::http::HttpComm;
use crate::compute::{Dispatcher, Job};
use crate::net::Net;

pub struct Host {
    dispatcher: &'static Dispatcher,
    http: HttpComm,
}

impl Host {
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

impl FunctionHost for Host {
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes) -> Result<(), HostError> {
        self.dispatcher.engines().prepare(spec, &ImageDigest::of(image), image).map(|_| ())
    }

    fn start(&mut self, ticket: Ticket, tenant: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started {
        let prepared = match self.dispatcher.engines().prepare(function.spec(), function.digest(), function.image()) {
            Ok(p) => p,
            Err(e) => return Started::Done(Err(e)),
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

    fn saturated(&self) -> bool {
        self.dispatcher.saturated()
    }

    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, HostError>)> {
        self.dispatcher.take_completed().or_else(|| self.http.take_completed().map(|(t, sets)| (t, Ok(sets))))
    }

    fn cancel(&mut self, invocation: u64) {
        self.dispatcher.cancel(invocation);
        self.http.cancel(invocation);
    }
}
