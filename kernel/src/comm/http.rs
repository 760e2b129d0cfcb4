//! The `http` communication function's driver: smoltcp TCP client sockets, on the I/O core,
//! driving `pappus_fetch` exchanges.
//!
//! Each started instance is planned at once (items that do not parse, or name an unknown host,
//! are finished there and then); its requests join one FIFO queue. At most
//! `FetchLimits::max_in_flight` connections are open at a time across all instances; a request
//! leaves the queue when a connection slot frees up. Sockets are pooled: a finished exchange's
//! socket is aborted (a reset tells the server if it still cares) and, after one more pass of
//! the I/O loop has sent that reset, serves the next request. Local ports are taken in turn
//! from the ephemeral range, so a new connection never reuses the 4-tuple of one the server may
//! still hold in TIME-WAIT.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use model::Set;
use pappus_fetch::{Batch, Exchange, FetchLimits, HostTable, Phase, Ready};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::Ticket;
use crate::net::Net;

/// The ephemeral port range (RFC 6335), where client connections take their local ports.
const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// One started `http` instance, until all its requests have ended.
struct Instance {
    ticket: Ticket,
    batch: Batch,
}

/// A request with a connection.
struct Flight {
    /// The key of its instance in `HttpComm::instances`.
    instance: u64,
    /// Its index in the instance's request set.
    index: usize,
    exchange: Exchange,
    socket: SocketHandle,
}

pub struct HttpComm {
    hosts: HostTable,
    limits: FetchLimits,
    /// Started instances by a serial number of our own (tickets are the caller's business).
    instances: BTreeMap<u64, Instance>,
    next_serial: u64,
    /// Requests waiting for a connection slot, oldest first, with their instance's serial.
    queue: VecDeque<(u64, Ready)>,
    flights: Vec<Flight>,
    /// Sockets free for the next connection.
    idle: Vec<SocketHandle>,
    /// Sockets aborted since the last pass: their resets go out before they are reused.
    cooling: Vec<SocketHandle>,
    /// Sockets of cancelled flights, to abort on the next pass (`cancel` has no `Net`).
    to_abort: Vec<SocketHandle>,
    completed: VecDeque<(Ticket, Vec<Set>)>,
    next_port: u16,
}

impl HttpComm {
    pub fn new(hosts: HostTable, limits: FetchLimits) -> Self {
        let limits = FetchLimits { max_in_flight: limits.max_in_flight.max(1), ..limits };
        Self {
            hosts,
            limits,
            instances: BTreeMap::new(),
            next_serial: 0,
            queue: VecDeque::new(),
            flights: Vec::new(),
            idle: Vec::new(),
            cooling: Vec::new(),
            to_abort: Vec::new(),
            completed: VecDeque::new(),
            next_port: *EPHEMERAL_PORTS.start(),
        }
    }

    /// Queues one `http` instance: its `requests` set. `ticket` comes back with its outputs.
    pub fn start(&mut self, ticket: Ticket, requests: Set) {
        let (batch, ready) = Batch::plan(&requests, &self.hosts);
        if batch.is_complete() {
            self.completed.push_back((ticket, batch.into_sets()));
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.instances.insert(serial, Instance { ticket, batch });
        self.queue.extend(ready.into_iter().map(|r| (serial, r)));
    }

    /// Advances sockets: connections made, bytes sent and received, timeouts, queued requests
    /// started. Returns whether anything moved. Called on every pass of the I/O loop.
    pub fn poll(&mut self, net: &mut Net, now_ms: u64) -> bool {
        let mut moved = !self.cooling.is_empty() || !self.to_abort.is_empty();
        // The resets of last pass's aborts have gone out with the NIC poll that ran since.
        self.idle.append(&mut self.cooling);
        for socket in self.to_abort.drain(..) {
            net.sockets.get_mut::<tcp::Socket>(socket).abort();
            self.cooling.push(socket);
        }

        let mut i = 0;
        while i < self.flights.len() {
            let flight = &mut self.flights[i];
            moved |= drive(&mut flight.exchange, net.sockets.get_mut::<tcp::Socket>(flight.socket), now_ms);
            if flight.exchange.is_finished() {
                let mut flight = self.flights.swap_remove(i);
                net.sockets.get_mut::<tcp::Socket>(flight.socket).abort();
                self.cooling.push(flight.socket);
                if let Some(outcome) = flight.exchange.take_outcome() {
                    self.finish(flight.instance, flight.index, outcome);
                }
                moved = true;
            } else {
                i += 1;
            }
        }

        while self.flights.len() < self.limits.max_in_flight {
            let Some((instance, ready)) = self.queue.pop_front() else { break };
            moved = true;
            self.launch(net, instance, ready, now_ms);
        }
        moved
    }

    /// A finished instance: its three output sets (responses, bodies, errors), in that order.
    pub fn take_completed(&mut self) -> Option<(Ticket, Vec<Set>)> {
        self.completed.pop_front()
    }

    /// Drops every queued and in-flight request of invocation `invocation` (sockets aborted on
    /// the next poll), and any finished outputs of it not taken yet.
    pub fn cancel(&mut self, invocation: u64) {
        let cancelled: Vec<u64> =
            self.instances.iter().filter(|(_, i)| i.ticket.invocation == invocation).map(|(&s, _)| s).collect();
        for serial in &cancelled {
            self.instances.remove(serial);
        }
        self.queue.retain(|(serial, _)| !cancelled.contains(serial));
        let to_abort = &mut self.to_abort;
        self.flights.retain(|flight| {
            let keep = !cancelled.contains(&flight.instance);
            if !keep {
                to_abort.push(flight.socket);
            }
            keep
        });
        self.completed.retain(|(ticket, _)| ticket.invocation != invocation);
    }

    /// When `poll` next needs to run for a timeout, if anything is in flight (ms since boot).
    /// Queued requests need no wake-up of their own: they start when a flight ends.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.flights.iter().filter_map(|f| f.exchange.deadline()).min()
    }

    /// Opens a connection for `ready`, or finishes it with the reason it cannot be opened.
    fn launch(&mut self, net: &mut Net, instance: u64, ready: Ready, now_ms: u64) {
        let mut exchange = Exchange::new(&ready.request, ready.address, &self.limits, now_ms);
        let socket = self.idle.pop().unwrap_or_else(|| net.client_socket());
        let local_port = self.take_port();
        match net.connect(socket, exchange.remote(), local_port) {
            Ok(()) => self.flights.push(Flight { instance, index: ready.index, exchange, socket }),
            Err(e) => {
                self.idle.push(socket);
                exchange.unreachable(match e {
                    tcp::ConnectError::Unaddressable => "no route from this node (no IPv4 address yet?)",
                    tcp::ConnectError::InvalidState => "no free socket",
                });
                if let Some(outcome) = exchange.take_outcome() {
                    self.finish(instance, ready.index, outcome);
                }
            }
        }
    }

    fn finish(&mut self, serial: u64, index: usize, outcome: Result<pappus_fetch::Response, pappus_fetch::FetchError>) {
        let Some(instance) = self.instances.get_mut(&serial) else { return };
        instance.batch.finish(index, outcome);
        if instance.batch.is_complete()
            && let Some(instance) = self.instances.remove(&serial)
        {
            self.completed.push_back((instance.ticket, instance.batch.into_sets()));
        }
    }

    /// The next local port, in turn through the ephemeral range.
    fn take_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { port + 1 };
        port
    }
}

/// Tells `exchange` what its socket did, and moves its bytes. True if anything moved.
fn drive(exchange: &mut Exchange, socket: &mut tcp::Socket<'_>, now_ms: u64) -> bool {
    let mut moved = false;
    if exchange.phase() == Phase::Connecting {
        match socket.state() {
            tcp::State::SynSent => {}
            // A reset in answer to our SYN (smoltcp closes the socket): nobody listens there.
            tcp::State::Closed => exchange.refused(),
            _ => {
                exchange.connected(now_ms);
                moved = true;
            }
        }
    }
    while !exchange.pending_output().is_empty() && socket.can_send() {
        match socket.send_slice(exchange.pending_output()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                exchange.sent(n, now_ms);
                moved = true;
            }
        }
    }
    while matches!(exchange.phase(), Phase::Sending | Phase::Receiving) && socket.can_recv() {
        let got = socket.recv(|buf| {
            exchange.received(buf, now_ms);
            (buf.len(), buf.len())
        });
        match got {
            Ok(0) | Err(_) => break,
            Ok(_) => moved = true,
        }
    }
    // The server's FIN (all data read) or a reset: the response ends here, one way or another.
    if matches!(exchange.phase(), Phase::Sending | Phase::Receiving) && !socket.may_recv() {
        exchange.peer_closed();
        moved = true;
    }
    exchange.tick(now_ms);
    moved
}
