//! The `http` function's driver over smoltcp TCP client sockets: many instances, each a
//! [`Batch`] of requests, share one bounded pool of connections.
//!
//! Each started instance is planned at once (items that do not parse, or name an unknown host,
//! are finished there and then); its requests wait in a queue of their own. At most
//! [`FetchLimits::max_in_flight`] connections are open at a time across all instances; when a
//! connection slot frees up, the instances with waiting requests take turns (round robin, each
//! instance's requests in order), so one instance with thousands of URLs does not hold up
//! another's single fetch. Sockets are pooled, never more than `max_in_flight` of them: a finished exchange's
//! socket is aborted (a reset tells the server if it still cares) and, after one more pass —
//! during which the stack's poll sends that reset — serves the next request. Local ports are
//! taken in turn from the ephemeral range, so a new connection does not reuse the 4-tuple of
//! one the server may still hold in TIME-WAIT.
//!
//! The network stack is behind [`TcpStack`]: the kernel's `Net` on the I/O core, a loopback
//! interface in the tests. Time is the caller's, in ms.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use model::{HostTable, Set};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use crate::batch::{Batch, Ready};
use crate::error::FetchError;
use crate::exchange::{Exchange, FetchLimits, Phase};
use crate::response::Response;

/// The ephemeral port range (RFC 6335), where client connections take their local ports.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// What the client needs of a network stack. Polling the interface (frames in and out) is the
/// owner's business, between calls to [`Client::poll`].
pub trait TcpStack {
    /// A new TCP socket, closed.
    fn add_tcp_socket(&mut self) -> SocketHandle;
    /// The TCP socket `handle` (one this client added).
    fn tcp_socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static>;
    /// Starts connecting the closed socket `handle` to `remote` from `local_port`.
    fn connect(
        &mut self,
        handle: SocketHandle,
        remote: (Ipv4Addr, u16),
        local_port: u16,
    ) -> Result<(), tcp::ConnectError>;
}

/// One started instance, until all its requests have ended.
struct Instance<T> {
    ticket: T,
    batch: Batch,
}

/// A request with a connection.
struct Flight {
    /// The key of its instance in `Client::instances`.
    instance: u64,
    /// Its index in the instance's request set.
    index: usize,
    exchange: Exchange,
    socket: SocketHandle,
}

/// The driver: instances in, output sets out. `T` identifies an instance to the caller.
pub struct Client<T> {
    hosts: HostTable,
    limits: FetchLimits,
    /// Started instances by a serial number of our own (tickets are the caller's business).
    instances: BTreeMap<u64, Instance<T>>,
    next_serial: u64,
    /// Requests waiting for a connection slot: per instance (by serial), in order.
    waiting: BTreeMap<u64, VecDeque<Ready>>,
    /// The serial whose turn it is next (or the first one after it).
    turn: u64,
    flights: Vec<Flight>,
    /// Sockets free for the next connection.
    idle: Vec<SocketHandle>,
    /// Sockets aborted since the last pass: their resets go out before they are reused.
    cooling: Vec<SocketHandle>,
    /// Sockets of cancelled flights, to abort on the next pass (`cancel` has no stack).
    to_abort: Vec<SocketHandle>,
    completed: VecDeque<(T, Vec<Set>)>,
    next_port: u16,
}

impl<T: Copy> Client<T> {
    pub fn new(hosts: HostTable, limits: FetchLimits) -> Self {
        let limits = FetchLimits { max_in_flight: limits.max_in_flight.max(1), ..limits };
        Self {
            hosts,
            limits,
            instances: BTreeMap::new(),
            next_serial: 0,
            waiting: BTreeMap::new(),
            turn: 0,
            flights: Vec::new(),
            idle: Vec::new(),
            cooling: Vec::new(),
            to_abort: Vec::new(),
            completed: VecDeque::new(),
            next_port: *EPHEMERAL_PORTS.start(),
        }
    }

    /// Queues one instance: its `requests` set. `ticket` comes back with its outputs.
    pub fn start(&mut self, ticket: T, requests: &Set) {
        let (batch, ready) = Batch::plan(requests, &self.hosts, &self.limits);
        if batch.is_complete() {
            self.completed.push_back((ticket, batch.into_sets()));
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.instances.insert(serial, Instance { ticket, batch });
        self.waiting.insert(serial, ready.into());
    }

    /// Advances sockets: connections made, bytes sent and received, timeouts, queued requests
    /// started. Returns whether anything moved.
    pub fn poll(&mut self, stack: &mut impl TcpStack, now_ms: u64) -> bool {
        let mut moved = !self.cooling.is_empty() || !self.to_abort.is_empty();
        // The resets of last pass's aborts went out with the stack's poll since.
        self.idle.append(&mut self.cooling);
        for socket in self.to_abort.drain(..) {
            stack.tcp_socket(socket).abort();
            self.cooling.push(socket);
        }

        let mut i = 0;
        while i < self.flights.len() {
            let flight = &mut self.flights[i];
            moved |= drive(&mut flight.exchange, stack.tcp_socket(flight.socket), now_ms);
            if flight.exchange.is_finished() {
                let mut flight = self.flights.swap_remove(i);
                stack.tcp_socket(flight.socket).abort();
                self.cooling.push(flight.socket);
                if let Some(outcome) = flight.exchange.take_outcome() {
                    self.finish(flight.instance, flight.index, outcome);
                }
                moved = true;
            } else {
                i += 1;
            }
        }

        // A socket still sending its reset holds its slot, so there are never more sockets
        // than `max_in_flight`; a new connection waits one pass at most.
        while self.flights.len() + self.cooling.len() < self.limits.max_in_flight {
            let Some((instance, ready)) = self.next_waiting() else { break };
            moved = true;
            self.launch(stack, instance, ready, now_ms);
        }
        moved
    }

    /// A finished instance: its three output sets (responses, bodies, errors), in that order.
    pub fn take_completed(&mut self) -> Option<(T, Vec<Set>)> {
        self.completed.pop_front()
    }

    /// Drops every instance whose ticket `cancelled` picks: queued requests, connections
    /// (aborted on the next poll) and outputs not taken yet.
    pub fn cancel_where(&mut self, cancelled: impl Fn(&T) -> bool) {
        let serials: Vec<u64> = self.instances.iter().filter(|(_, i)| cancelled(&i.ticket)).map(|(&s, _)| s).collect();
        for serial in &serials {
            self.instances.remove(serial);
        }
        self.waiting.retain(|serial, _| !serials.contains(serial));
        let to_abort = &mut self.to_abort;
        self.flights.retain(|flight| {
            let keep = !serials.contains(&flight.instance);
            if !keep {
                to_abort.push(flight.socket);
            }
            keep
        });
        self.completed.retain(|(ticket, _)| !cancelled(ticket));
    }

    /// When `poll` next needs to run for a timeout, if anything is in flight (the caller's ms).
    /// Queued requests need no wake-up of their own: they start when a flight ends.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.flights.iter().filter_map(|f| f.exchange.deadline()).min()
    }

    /// Open connections, and requests waiting for one (for tests and metrics).
    pub fn load(&self) -> (usize, usize) {
        (self.flights.len(), self.waiting.values().map(VecDeque::len).sum())
    }

    /// The next waiting request: the first of the instance whose turn it is.
    fn next_waiting(&mut self) -> Option<(u64, Ready)> {
        let serial = self.waiting.range(self.turn..).chain(self.waiting.iter()).map(|(&s, _)| s).next()?;
        let queue = self.waiting.get_mut(&serial)?;
        let ready = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&serial);
        }
        self.turn = serial + 1;
        Some((serial, ready))
    }

    /// Opens a connection for `ready`, or finishes it with the reason it cannot be opened.
    fn launch(&mut self, stack: &mut impl TcpStack, instance: u64, ready: Ready, now_ms: u64) {
        let mut exchange = Exchange::new(&ready.request, ready.address, &self.limits, now_ms);
        let socket = self.idle.pop().unwrap_or_else(|| stack.add_tcp_socket());
        let local_port = self.take_port();
        match stack.connect(socket, exchange.remote(), local_port) {
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

    fn finish(&mut self, serial: u64, index: usize, outcome: Result<Response, FetchError>) {
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
