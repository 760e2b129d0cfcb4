//! The control plane's view of the compute side.

use alloc::sync::Arc;
use alloc::vec::Vec;

use control::{FunctionHost, HostError, Started, StoredFunction, Ticket};
use model::{Bytes, FunctionSpec, ImageDigest, Set, TenantId};

use super::dispatcher::{Dispatcher, Job};

/// Prepares images on the I/O core and starts instances through the dispatcher.
pub struct Host {
    dispatcher: &'static Dispatcher,
}

impl Host {
    pub fn new(dispatcher: &'static Dispatcher) -> Self {
        Self { dispatcher }
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

    fn saturated(&self) -> bool {
        self.dispatcher.saturated()
    }

    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, HostError>)> {
        self.dispatcher.take_completed()
    }

    fn cancel(&mut self, invocation: u64) {
        self.dispatcher.cancel(invocation);
    }
}
