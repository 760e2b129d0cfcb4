//! The `http` communication function on the I/O core: `pappus_fetch::Client` (the socket
//! driver, tested on the host against a loopback interface) over the kernel's `Net`, with the
//! interface the integration (the I/O loop and the Runtime) calls.

use alloc::vec::Vec;

use model::Set;
use pappus_fetch::{Client, FetchLimits, HostTable};

use crate::net::Net;
use control::Ticket;

pub struct HttpComm {
    client: Client<Ticket>,
}

impl HttpComm {
    pub fn new(hosts: HostTable, limits: FetchLimits) -> Self {
        Self { client: Client::new(hosts, limits) }
    }

    /// Queues one `http` instance (`control::Builtin::Http`, `Comm::Http`): its `requests` set.
    /// `ticket` comes back with its outputs.
    pub fn start(&mut self, ticket: Ticket, requests: Set) {
        self.client.start(ticket, &requests);
    }

    /// Advances sockets; returns whether anything moved. Called on every pass of the I/O loop,
    /// after `Net::poll`.
    pub fn poll(&mut self, net: &mut Net, now_ms: u64) -> bool {
        self.client.poll(net, now_ms)
    }

    /// A finished instance: its three output sets (responses, bodies, errors), in that order.
    pub fn take_completed(&mut self) -> Option<(Ticket, Vec<Set>)> {
        self.client.take_completed()
    }

    /// Drops every queued and in-flight request of invocation `invocation` (sockets aborted on
    /// the next poll), and its outputs not taken yet.
    pub fn cancel(&mut self, invocation: u64) {
        self.client.cancel_where(|ticket| ticket.invocation == invocation);
    }

    /// When `poll` next needs to run for a timeout, if anything is in flight (ms since boot).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.client.next_wakeup_ms()
    }
}
