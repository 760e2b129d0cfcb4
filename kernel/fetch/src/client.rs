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
//! A host name the table does not hold is asked of the configured DNS server (one smoltcp DNS
//! socket, one query per name however many requests wait for it, answers kept for a minute)
//! before its requests take a connection slot; the connect timeout bounds the wait.
//!
//! The network stack is behind [`NetStack`]: the kernel's `Net` on the I/O core, a loopback
//! interface in the tests. Time is the caller's, in ms.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use model::{HostTable, Set};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dns, tcp};
use smoltcp::wire::{DnsQueryType, IpAddress};

use crate::batch::{Batch, Ready};
use crate::error::{ErrorClass, FetchError};
use crate::exchange::{Exchange, FetchLimits};
use crate::link::Phase;
use crate::request::Request;
use crate::response::Response;
use crate::stream::{StreamExchange, StreamLimits};
use crate::url::{Host, resolve};

/// How long a DNS answer is used before the name is asked again.
const DNS_CACHE_MS: u64 = 60_000;

/// The ephemeral port range (RFC 6335), where client connections take their local ports.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// What the client needs of a network stack. Polling the interface (frames in and out) is the
/// owner's business, between calls to [`Client::poll`].
pub trait NetStack {
    /// The interface and the socket set the client's sockets live in.
    fn parts(&mut self) -> (&mut Interface, &mut SocketSet<'static>);

    /// A new TCP socket, closed (the stack picks its buffer sizes).
    fn add_tcp_socket(&mut self) -> SocketHandle;

    /// The TCP socket `handle` (one this client added).
    fn tcp_socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.parts().1.get_mut::<tcp::Socket>(handle)
    }

    /// Starts connecting the closed socket `handle` to `remote` from `local_port`.
    fn connect(
        &mut self,
        handle: SocketHandle,
        remote: (Ipv4Addr, u16),
        local_port: u16,
    ) -> Result<(), tcp::ConnectError> {
        let (iface, sockets) = self.parts();
        sockets.get_mut::<tcp::Socket>(handle).connect(iface.context(), remote, local_port)
    }

    /// A new DNS socket asking `server`.
    fn add_dns_socket(&mut self, server: Ipv4Addr) -> SocketHandle {
        self.parts().1.add(dns::Socket::new(&[server.into()], Vec::new()))
    }

    /// The DNS socket `handle` (one this client added).
    fn dns_socket(&mut self, handle: SocketHandle) -> &mut dns::Socket<'static> {
        self.parts().1.get_mut::<dns::Socket>(handle)
    }

    /// Starts asking for the IPv4 address of `name` on the DNS socket `handle`.
    fn start_dns_query(&mut self, handle: SocketHandle, name: &str) -> Result<dns::QueryHandle, dns::StartQueryError> {
        let (iface, sockets) = self.parts();
        sockets.get_mut::<dns::Socket>(handle).start_query(iface.context(), name, DnsQueryType::A)
    }
}

/// A DNS query under way, and the requests waiting for its answer.
struct Lookup {
    query: dns::QueryHandle,
    deadline_ms: u64,
    waiting: Vec<(u64, Ready)>,
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
    /// Requests whose host DNS has just resolved: first in line for a slot.
    resolved: VecDeque<(u64, Ready)>,
    /// DNS queries under way, by name.
    lookups: BTreeMap<String, Lookup>,
    /// DNS answers, by name, with when they expire.
    dns_cache: BTreeMap<String, (Ipv4Addr, u64)>,
    /// The DNS socket, made at the first lookup.
    dns: Option<SocketHandle>,
    flights: Vec<Flight>,
    /// Sockets free for the next connection.
    idle: Vec<SocketHandle>,
    /// Sockets aborted since the last pass: their resets go out before they are reused.
    cooling: Vec<SocketHandle>,
    /// Sockets of cancelled flights, to abort on the next pass (`cancel` has no stack).
    to_abort: Vec<SocketHandle>,
    completed: VecDeque<(T, Vec<Set>)>,
    next_port: u16,
    /// Streaming requests ([`Client::open_stream`]), by id, with their sockets: beside the
    /// `max_in_flight` of the batches.
    streams: BTreeMap<u64, (StreamExchange, SocketHandle)>,
    next_stream: u64,
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
            resolved: VecDeque::new(),
            lookups: BTreeMap::new(),
            dns_cache: BTreeMap::new(),
            dns: None,
            flights: Vec::new(),
            idle: Vec::new(),
            cooling: Vec::new(),
            to_abort: Vec::new(),
            completed: VecDeque::new(),
            next_port: *EPHEMERAL_PORTS.start(),
            streams: BTreeMap::new(),
            next_stream: 0,
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
    pub fn poll(&mut self, stack: &mut impl NetStack, now_ms: u64) -> bool {
        if self.is_idle() {
            // Nothing queued, resolving, in flight or resetting: every pass of the I/O loop
            // comes here, and most have no fetch to drive.
            return false;
        }
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

        for (exchange, socket) in self.streams.values_mut() {
            if !exchange.is_finished() {
                moved |= drive(exchange, stack.tcp_socket(*socket), now_ms);
            }
        }

        moved |= self.poll_lookups(stack, now_ms);

        // A socket still sending its reset holds its slot, so there are never more sockets
        // than `max_in_flight`; a new connection waits one pass at most.
        while self.flights.len() + self.cooling.len() < self.limits.max_in_flight {
            let Some((instance, ready, address)) = self.next_request(stack, now_ms) else { break };
            moved = true;
            self.launch(stack, instance, ready, address, now_ms);
        }
        moved
    }

    /// Whether [`poll`](Self::poll) has nothing to do.
    fn is_idle(&self) -> bool {
        self.flights.is_empty()
            && self.cooling.is_empty()
            && self.to_abort.is_empty()
            && self.lookups.is_empty()
            && self.resolved.is_empty()
            && self.waiting.is_empty()
            && self.streams.values().all(|(exchange, _)| exchange.is_finished())
    }

    /// Opens a streaming request (see [`StreamExchange`]): `item` is an `http` request item
    /// (docs/wire-formats.md) whose host is an IP literal or in the host table. Returns its
    /// id; [`Client::stream`] reads it, [`Client::close_stream`] ends it.
    pub fn open_stream(
        &mut self,
        stack: &mut impl NetStack,
        item: &[u8],
        limits: &StreamLimits,
        now_ms: u64,
    ) -> Result<u64, FetchError> {
        let request = Request::parse(&model::Bytes::from(item))?;
        let address = resolve(&request.url, &self.hosts)?;
        let mut exchange = StreamExchange::new(&request, address, limits, now_ms);
        let socket = self.idle.pop().unwrap_or_else(|| stack.add_tcp_socket());
        let local_port = self.take_port();
        if let Err(e) = stack.connect(socket, exchange.remote(), local_port) {
            self.idle.push(socket);
            exchange.unreachable(match e {
                tcp::ConnectError::Unaddressable => "no route from this node (no IPv4 address yet?)",
                tcp::ConnectError::InvalidState => "no free socket",
            });
            return Err(exchange
                .take_outcome()
                .and_then(Result::err)
                .unwrap_or_else(|| FetchError::new(ErrorClass::Unreachable, "the stream could not connect")));
        }
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(id, (exchange, socket));
        Ok(id)
    }

    /// The stream `id`, while open: its head, data and outcome.
    pub fn stream(&mut self, id: u64) -> Option<&mut StreamExchange> {
        self.streams.get_mut(&id).map(|(exchange, _)| exchange)
    }

    /// Ends the stream `id` (its connection is aborted on the next poll) and forgets it.
    pub fn close_stream(&mut self, id: u64) {
        if let Some((_, socket)) = self.streams.remove(&id) {
            self.to_abort.push(socket);
        }
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
        self.resolved.retain(|(serial, _)| !serials.contains(serial));
        for lookup in self.lookups.values_mut() {
            // The query goes on: its answer is cached for whoever asks next.
            lookup.waiting.retain(|(serial, _)| !serials.contains(serial));
        }
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
        let lookups = self.lookups.values().map(|l| l.deadline_ms);
        let streams = self.streams.values().filter_map(|(s, _)| s.deadline());
        self.flights.iter().filter_map(|f| f.exchange.deadline()).chain(lookups).chain(streams).min()
    }

    /// Open connections, and requests waiting for one (for tests and metrics).
    pub fn load(&self) -> (usize, usize) {
        let waiting: usize = self.waiting.values().map(VecDeque::len).sum();
        let looking_up: usize = self.lookups.values().map(|l| l.waiting.len()).sum();
        (self.flights.len(), waiting + looking_up + self.resolved.len())
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

    /// The next request that can connect now, with its address: one whose name was just
    /// resolved, else the next in turn. Requests for names to look up are parked on the way.
    fn next_request(&mut self, stack: &mut impl NetStack, now_ms: u64) -> Option<(u64, Ready, Ipv4Addr)> {
        loop {
            let (instance, ready) = self.resolved.pop_front().or_else(|| self.next_waiting())?;
            if let Some(address) = ready.address {
                return Some((instance, ready, address));
            }
            let (Host::Name(name), Some(server)) = (&ready.request.url.host, self.hosts.dns_server()) else {
                // `Batch::plan` gives literals and table names their address, and leaves the
                // others without one only when there is a DNS server.
                let error =
                    FetchError::new(ErrorClass::UnknownHost, format!("no address ({})", ready.request.describe()));
                self.finish(instance, ready.index, Err(error));
                continue;
            };
            let name = name.clone();
            match self.dns_cache.get(&name) {
                Some(&(address, expires)) if now_ms < expires => return Some((instance, ready, address)),
                Some(_) => {
                    self.dns_cache.remove(&name);
                }
                None => {}
            }
            if let Some(lookup) = self.lookups.get_mut(&name) {
                lookup.waiting.push((instance, ready));
                continue;
            }
            let socket = *self.dns.get_or_insert_with(|| stack.add_dns_socket(server));
            match stack.start_dns_query(socket, &name) {
                Ok(query) => {
                    let deadline_ms = now_ms.saturating_add(self.limits.connect_timeout_ms);
                    self.lookups.insert(name, Lookup { query, deadline_ms, waiting: alloc::vec![(instance, ready)] });
                }
                Err(e) => {
                    let error = FetchError::new(
                        ErrorClass::UnknownHost,
                        format!("{name} cannot be asked of DNS: {e} ({})", ready.request.describe()),
                    );
                    self.finish(instance, ready.index, Err(error));
                }
            }
        }
    }

    /// Collects DNS answers (and gives up on queries past their deadline). True if any ended.
    fn poll_lookups(&mut self, stack: &mut impl NetStack, now_ms: u64) -> bool {
        let Some(socket) = self.dns else { return false };
        if self.lookups.is_empty() {
            return false;
        }
        let server = self.hosts.dns_server().map_or_else(String::new, |s| format!("{s}"));
        let mut ended = Vec::new();
        for (name, lookup) in &self.lookups {
            let outcome = match stack.dns_socket(socket).get_query_result(lookup.query) {
                Err(dns::GetQueryResultError::Pending) if now_ms < lookup.deadline_ms => continue,
                Err(dns::GetQueryResultError::Pending) => {
                    stack.dns_socket(socket).cancel_query(lookup.query);
                    Err((
                        ErrorClass::Timeout,
                        format!(
                            "DNS server {server} did not answer for {name} within {} ms",
                            self.limits.connect_timeout_ms
                        ),
                    ))
                }
                Err(dns::GetQueryResultError::Failed) => {
                    Err((ErrorClass::UnknownHost, format!("DNS server {server} has no address for {name}")))
                }
                Ok(addresses) => addresses
                    .iter()
                    .find_map(|a| match a {
                        IpAddress::Ipv4(v4) => Some(*v4),
                        #[allow(unreachable_patterns)] // IPv6 when smoltcp is built with it.
                        _ => None,
                    })
                    .ok_or_else(|| {
                        (ErrorClass::UnknownHost, format!("DNS server {server} has no IPv4 address for {name}"))
                    }),
            };
            ended.push((name.clone(), outcome));
        }
        let any = !ended.is_empty();
        for (name, outcome) in ended {
            let Some(lookup) = self.lookups.remove(&name) else { continue };
            match outcome {
                Ok(address) => {
                    self.dns_cache.insert(name, (address, now_ms.saturating_add(DNS_CACHE_MS)));
                    for (instance, mut ready) in lookup.waiting {
                        ready.address = Some(address);
                        self.resolved.push_back((instance, ready));
                    }
                }
                Err((class, what)) => {
                    for (instance, ready) in lookup.waiting {
                        let error = FetchError::new(class, format!("{what} ({})", ready.request.describe()));
                        self.finish(instance, ready.index, Err(error));
                    }
                }
            }
        }
        any
    }

    /// Opens a connection for `ready`, or finishes it with the reason it cannot be opened.
    fn launch(&mut self, stack: &mut impl NetStack, instance: u64, ready: Ready, address: Ipv4Addr, now_ms: u64) {
        let mut exchange = Exchange::new(&ready.request, address, &self.limits, now_ms);
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

/// What [`drive`] needs of an exchange: [`Exchange`] and [`StreamExchange`] alike.
trait Driven {
    fn phase(&self) -> Phase;
    fn connected(&mut self, now_ms: u64);
    fn refused(&mut self);
    fn pending_output(&self) -> &[u8];
    fn sent(&mut self, n: usize, now_ms: u64);
    fn received(&mut self, data: &[u8], now_ms: u64);
    fn peer_closed(&mut self);
    fn tick(&mut self, now_ms: u64);
}

macro_rules! driven {
    ($t:ty) => {
        impl Driven for $t {
            fn phase(&self) -> Phase {
                <$t>::phase(self)
            }
            fn connected(&mut self, now_ms: u64) {
                <$t>::connected(self, now_ms)
            }
            fn refused(&mut self) {
                <$t>::refused(self)
            }
            fn pending_output(&self) -> &[u8] {
                <$t>::pending_output(self)
            }
            fn sent(&mut self, n: usize, now_ms: u64) {
                <$t>::sent(self, n, now_ms)
            }
            fn received(&mut self, data: &[u8], now_ms: u64) {
                <$t>::received(self, data, now_ms)
            }
            fn peer_closed(&mut self) {
                <$t>::peer_closed(self)
            }
            fn tick(&mut self, now_ms: u64) {
                <$t>::tick(self, now_ms)
            }
        }
    };
}
driven!(Exchange);
driven!(StreamExchange);

/// Tells `exchange` what its socket did, and moves its bytes. True if anything moved.
fn drive(exchange: &mut impl Driven, socket: &mut tcp::Socket<'_>, now_ms: u64) -> bool {
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
