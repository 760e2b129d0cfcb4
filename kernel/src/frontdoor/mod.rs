//! The HTTP front door: a pool of TCP sockets on port 8080, each driven through a
//! `pappus_http::Connection`; the kernel's own routes (`routes`) and the `/v1` control plane
//! (`control::ControlPlane`, over the compute engines).
//!
//! An invocation may take longer than one pass of the I/O loop (`sleep`, later functions on other
//! cores): its connection then waits with the invocation's id, answers nothing else meanwhile
//! (HTTP/1.1 answers in order), and picks the response up when the control plane has it. A
//! client that goes away cancels its invocation.
//!
//! The socket pool (`pool::Pool`, host-tested) holds `MAX_CONNECTIONS` served connections plus
//! a spare listener, and keeps only the sockets in use in smoltcp's set: a connection that
//! arrives when all served slots are busy is answered `503` with `Retry-After` and closed,
//! instead of being reset by the TCP stack.

mod metrics;
mod routes;

use alloc::boxed::Box;
use alloc::string::String;

use control::{ControlPlane, Credentials, InvocationId, Reply};
use model::OperatorToken;
use pappus_http::{Connection, Event, Limits, MemoryGate, Request, Response};
use pool::{Pool, Served};
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;

pub use metrics::HttpStats;

use crate::metrics::Export;
use crate::net::Net;

pub const PORT: u16 = 8080;
const MAX_CONNECTIONS: usize = 128;
/// Listeners kept ready. The pool tops them up after every received frame that changed a socket
/// (`Net::receive_with`; a SYN takes a listener), so each SYN of a burst finds one while the pool
/// has sockets, and one is enough. Every listener costs each pass smoltcp's walks over it and the
/// pool's (measured: 8 -> 2 took net.echo64 from 17,298 to 14,983; 2 -> 1 from 10,775 to 10,505).
const SPARE_LISTENERS: usize = 1;
/// Every connection's limits: the defaults, with request bodies kept out of the kernel's heap
/// reserve (a body the heap cannot hold without it is 503).
const CONNECTION_LIMITS: Limits = Limits { body_memory: MemoryGate(crate::mm::heap_room_for), ..Limits::DEFAULT };

/// An open connection: its HTTP state, and the invocation whose answer it waits for.
struct Open {
    /// Boxed: a connection is large, and the pool moves its slots.
    conn: Box<Connection>,
    pending: Option<InvocationId>,
    /// What the connection's last `/v1` request authenticated with (~100 bytes).
    credentials: Credentials,
}

/// What the front door serves besides its own routes (`routes`): the `/v1` control plane, and
/// `/metrics` as the whole node renders it. [`crate::node::Node`] implements it over the parts it
/// owns; the front door owns only its sockets, their connections and its HTTP counters.
pub trait Backend {
    /// A `/v1` request ([`ControlPlane::owns`] its path) of a connection whose last one left
    /// `credentials` ([`ControlPlane::handle_on`]).
    fn handle(&mut self, request: Request, credentials: &mut Credentials, now_ms: u64) -> Reply;
    /// The answer that makes an `Expect: 100-continue` body unnecessary, if any.
    fn check_head(&self, request: &Request) -> Option<Response>;
    /// A pending invocation's answer, once it has one.
    fn take_response(&mut self, id: InvocationId) -> Option<Response>;
    /// The client of a pending invocation went away.
    fn cancel(&mut self, id: InvocationId);
    /// The `/metrics` text, with the front door's own figures (`door`) among the node's.
    fn metrics(&self, door: &dyn Export) -> String;
    /// A fleet node's sync state for `/healthz` (a JSON object); `None` off a fleet.
    fn fleet_health(&self) -> Option<String> {
        None
    }
}

pub struct FrontDoor {
    /// The sockets: a few listening, those open and closing in smoltcp's set, the rest set
    /// aside (`pool`: smoltcp and this door walk only the ones in the set).
    pool: Pool<Open>,
    stats: HttpStats,
    /// Opens `/metrics` (`operator <token>` in the boot configuration).
    operator: OperatorToken,
}

impl FrontDoor {
    pub fn new(net: &mut Net, operator: OperatorToken) -> Self {
        let pool = Pool::new(&mut net.sockets, PORT, MAX_CONNECTIONS, SPARE_LISTENERS, Net::tcp_socket);
        Self { pool, stats: HttpStats::default(), operator }
    }

    /// Moves every connection forward as far as it can go without waiting, requests going to
    /// `backend`. True if anything moved (bytes in or out, a connection opened or closed).
    pub fn service(&mut self, net: &mut Net, backend: &mut dyn Backend, now: u64) -> bool {
        // The pool's TCP states for `/metrics`, sampled once per pass rather than per request.
        self.stats.socket_states = self.socket_states(net);
        let mut door = Door { stats: &mut self.stats, backend, operator: &self.operator };
        let progress = self.pool.poll(&mut net.sockets, now, &mut door);
        self.stats.active = self.pool.open();
        progress
    }

    /// Listeners back up to their number, between received frames (see `pool::Pool::top_up`).
    pub fn top_up(&mut self, sockets: &mut SocketSet<'static>) {
        self.pool.top_up(sockets);
    }

    /// The pool's sockets by TCP state (those set aside are closed).
    fn socket_states(&self, net: &mut Net) -> [u64; TCP_STATES.len()] {
        let mut counts = [0; TCP_STATES.len()];
        counts[0] = self.pool.stashed() as u64;
        for handle in self.pool.handles() {
            counts[state_index(net.sockets.get::<tcp::Socket>(handle).state())] += 1;
        }
        counts
    }
}

/// What serving a connection needs besides the connection and its socket.
struct Door<'a> {
    stats: &'a mut HttpStats,
    backend: &'a mut dyn Backend,
    operator: &'a OperatorToken,
}

impl pool::Door<Open> for Door<'_> {
    fn open(&mut self, now: u64) -> Open {
        self.stats.connections += 1;
        Open {
            conn: Box::new(Connection::new(CONNECTION_LIMITS, now)),
            pending: None,
            credentials: Credentials::default(),
        }
    }

    /// Every served slot is busy: say so and close, rather than leave the client hanging or
    /// reset.
    fn refuse(&mut self, socket: &mut tcp::Socket<'static>) {
        self.stats.connections += 1;
        self.stats.rejected_busy += 1;
        let body = pappus_http::service_unavailable();
        let _ = socket.send_slice(&body);
        self.stats.bytes_out += body.len() as u64;
        self.stats.count(503);
    }

    fn serve(&mut self, socket: &mut tcp::Socket<'static>, open: &mut Open, now: u64) -> Served {
        let (progress, finished) = serve(open, socket, self, now);
        Served { progress, finished }
    }

    fn close(&mut self, open: Open) {
        if let Some(id) = open.pending {
            self.backend.cancel(id);
        }
    }
}

impl Door<'_> {
    /// A request to the control plane or to the kernel's own routes.
    fn dispatch(&mut self, request: Request, credentials: &mut Credentials, now: u64) -> Reply {
        if ControlPlane::owns(&request.path) {
            self.backend.handle(request, credentials, now)
        } else {
            Reply::Now(routes::route(request, now, &*self.stats, &*self.backend, self.operator))
        }
    }

    /// Whether to let the client send the body of an `Expect: 100-continue` request, or the
    /// answer that makes the body unnecessary.
    fn precheck(&mut self, request: Request, now: u64) -> Result<(), Response> {
        if ControlPlane::owns(&request.path) {
            return self.backend.check_head(&request).map_or(Ok(()), Err);
        }
        if routes::wants_body(&request) {
            return Ok(());
        }
        match self.dispatch(request, &mut Credentials::default(), now) {
            Reply::Now(response) => Err(response),
            // Only control-plane requests are ever pending, and those returned above.
            Reply::Pending(id) => {
                self.backend.cancel(id);
                Err(Response::error(500, "internal", "unexpected pending reply"))
            }
        }
    }
}

fn respond(conn: &mut Connection, stats: &mut HttpStats, response: Response) {
    let status = response.status;
    if conn.respond(response).is_ok() {
        stats.count(status);
    }
}

/// Bytes in, requests through the router, bytes out. Returns (progress, finished): finished
/// means the socket is closed (or closing) and the slot no longer serves it.
fn serve(open: &mut Open, socket: &mut tcp::Socket<'_>, door: &mut Door<'_>, now: u64) -> (bool, bool) {
    let Open { conn, pending, credentials } = open;
    let mut progress = false;
    while conn.wants_input() && socket.can_recv() {
        let got = socket.recv(|buf| {
            conn.receive(buf, now);
            (buf.len(), buf.len())
        });
        match got {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                door.stats.bytes_in += n as u64;
                progress = true;
            }
        }
    }
    if !socket.may_recv() && socket.state() != tcp::State::Established {
        conn.peer_closed();
    }

    loop {
        // A pending invocation holds the connection's next answer: nothing else goes first.
        if let Some(id) = *pending {
            let Some(response) = door.backend.take_response(id) else { break };
            *pending = None;
            respond(conn, door.stats, response);
            progress = true;
        }
        let Some(event) = conn.next_event(now) else { break };
        progress = true;
        match event {
            Event::Request(request) => match door.dispatch(request, credentials, now) {
                Reply::Now(response) => respond(conn, door.stats, response),
                Reply::Pending(id) => *pending = Some(id),
            },
            Event::ExpectContinue(request) => match door.precheck(request, now) {
                Ok(()) => {
                    let _ = conn.accept_continue();
                }
                Err(response) => respond(conn, door.stats, response),
            },
            Event::Error(error) => {
                log::debug!("http: {error:?}");
                door.stats.count(error.to_response().status);
            }
        }
    }

    while conn.has_output() && socket.can_send() {
        match socket.send_slice(conn.output()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                conn.consume_output(n);
                door.stats.bytes_out += n as u64;
                progress = true;
            }
        }
    }

    let peer_gone = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
    if peer_gone {
        socket.abort();
        return (progress, true);
    }
    if pending.is_none() && conn.wants_close() && !conn.has_output() {
        // Graceful close: what is in the socket's send buffer still goes out, then the FIN.
        socket.close();
        return (progress, true);
    }
    (progress, false)
}

/// Where `state` is in [`TCP_STATES`] (every pass counts the pool's sockets by state).
fn state_index(state: tcp::State) -> usize {
    match state {
        tcp::State::Closed => 0,
        tcp::State::Listen => 1,
        tcp::State::SynSent => 2,
        tcp::State::SynReceived => 3,
        tcp::State::Established => 4,
        tcp::State::FinWait1 => 5,
        tcp::State::FinWait2 => 6,
        tcp::State::CloseWait => 7,
        tcp::State::Closing => 8,
        tcp::State::LastAck => 9,
        tcp::State::TimeWait => 10,
    }
}

/// Whether [`state_index`] agrees with [`TCP_STATES`] (a self-test).
pub fn check_state_indices() -> Result<String, String> {
    for (i, (state, label)) in TCP_STATES.iter().enumerate() {
        if state_index(*state) != i {
            return Err(alloc::format!("{label} is at {i} in TCP_STATES, state_index says {}", state_index(*state)));
        }
    }
    Ok(alloc::format!("{} states", TCP_STATES.len()))
}

/// TCP states with their metric label.
pub const TCP_STATES: [(tcp::State, &str); 11] = [
    (tcp::State::Closed, "closed"),
    (tcp::State::Listen, "listen"),
    (tcp::State::SynSent, "syn_sent"),
    (tcp::State::SynReceived, "syn_received"),
    (tcp::State::Established, "established"),
    (tcp::State::FinWait1, "fin_wait1"),
    (tcp::State::FinWait2, "fin_wait2"),
    (tcp::State::CloseWait, "close_wait"),
    (tcp::State::Closing, "closing"),
    (tcp::State::LastAck, "last_ack"),
    (tcp::State::TimeWait, "time_wait"),
];
