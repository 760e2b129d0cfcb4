//! The front door's pool of TCP sockets on one port.
//!
//! Every socket the front door may ever use is made at boot, with its buffers (no allocation per
//! connection), but only the sockets that are doing something are in smoltcp's socket set: a few
//! listeners kept ready (`spare`), the open connections and those closing. The rest wait in a
//! stash, closed. smoltcp walks every socket in the set on each poll, and so did the front door:
//! with the whole pool of 136 listening, a 64-byte keep-alive echo cost 67,000 guest
//! instructions, 47,000 of them walking idle listeners (measured under icount with the pool cut
//! to six sockets: 20,600).
//!
//! Sans-I/O, like `pappus_http::Connection`: [`Pool::poll`] moves each socket's slot along
//! (listening, open, closing) and calls the front door ([`Door`]) to open, refuse and serve
//! connections; it never blocks and knows nothing of HTTP. Time is the caller's `now` in ms.
//!
//! What holds (tested in `tests/pool.rs` against real smoltcp TCP on a loopback interface):
//! - after each poll, `spare` sockets listen whenever the stash has sockets to give, and no more;
//!   a burst of more than `spare` SYNs finds no listener and is reset unless the stack calls
//!   [`Pool::top_up`] between packets (the kernel does);
//! - at most `max_open` connections are open; one more is handed to [`Door::refuse`] and closed;
//! - a closed socket leaves the set for the stash (aborted, buffers kept); sockets in the set
//!   are never more than `max_open + spare` plus those closing;
//! - every socket the pool made is in the set or in the stash, never lost.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{Socket, tcp};

/// How long a socket we closed may take to finish sending and have its FIN acknowledged before
/// it is reset and set aside (a peer that never acknowledges must not hold a socket).
pub const LINGER_MS: u64 = 10_000;

/// What one socket in the set is doing.
enum Slot<C> {
    /// Listening, or in the handshake: nothing to serve yet.
    Listening,
    /// A connection the front door serves, with its state `C`.
    Open(C),
    /// We closed it; its last bytes and FIN are on their way. Set aside once the TCP close
    /// completes, or after [`LINGER_MS`].
    Closing { since: u64 },
}

/// What serving one connection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Bytes moved, a request answered: anything.
    pub progress: bool,
    /// The connection is over (closed or closing): its slot no longer serves it.
    pub finished: bool,
}

/// The front door, as the pool calls it.
pub trait Door<C> {
    /// A listener has a connection and an open slot is free: the connection's state.
    fn open(&mut self, now: u64) -> C;
    /// A connection came while `max_open` are open: answer it (a 503); the pool closes it.
    fn refuse(&mut self, socket: &mut tcp::Socket<'static>);
    /// Moves one open connection forward as far as it goes without waiting.
    fn serve(&mut self, socket: &mut tcp::Socket<'static>, conn: &mut C, now: u64) -> Served;
    /// A connection is over; its state goes (`serve` said `finished`).
    fn close(&mut self, conn: C);
}

/// How many sockets are where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// In the set, listening or in the handshake.
    pub listening: usize,
    pub open: usize,
    pub closing: usize,
    /// Out of the set, closed, ready to listen.
    pub stashed: usize,
}

pub struct Pool<C> {
    port: u16,
    spare: usize,
    max_open: usize,
    /// The sockets in the set, each with its slot. Order is not meaningful.
    slots: Vec<(SocketHandle, Slot<C>)>,
    stash: Vec<tcp::Socket<'static>>,
    open: usize,
}

impl<C> Pool<C> {
    /// A pool of `max_open + spare` sockets made by `make` (each with its buffers), `spare` of
    /// them listening on `port` in `sockets` at once.
    pub fn new(
        sockets: &mut SocketSet<'static>,
        port: u16,
        max_open: usize,
        spare: usize,
        make: impl FnMut() -> tcp::Socket<'static>,
    ) -> Self {
        let stash = core::iter::repeat_with(make).take(max_open + spare).collect();
        let slots = Vec::with_capacity(max_open + spare);
        let mut pool = Self { port, spare: spare.max(1), max_open, slots, stash, open: 0 };
        pool.top_up(sockets);
        pool
    }

    /// Moves every socket in the set along; true if anything moved (a connection opened,
    /// served, refused or closed).
    pub fn poll(&mut self, sockets: &mut SocketSet<'static>, now: u64, door: &mut impl Door<C>) -> bool {
        let mut progress = false;
        let mut listening = 0;
        let mut i = 0;
        while i < self.slots.len() {
            let (handle, slot) = &mut self.slots[i];
            let socket = sockets.get_mut::<tcp::Socket>(*handle);
            let set_aside = match slot {
                Slot::Listening => match socket.state() {
                    // More listeners than `spare` (a handshake that was reset goes back to
                    // listening, after the pool had topped up for it): the extra go.
                    tcp::State::Listen => {
                        listening += 1;
                        listening > self.spare
                    }
                    tcp::State::SynReceived => false,
                    tcp::State::Established | tcp::State::CloseWait => {
                        progress = true;
                        if self.open >= self.max_open {
                            door.refuse(socket);
                            socket.close();
                            *slot = Slot::Closing { since: now };
                        } else {
                            self.open += 1;
                            *slot = Slot::Open(door.open(now));
                        }
                        false
                    }
                    // Reset by the peer before we saw it, or a stray state.
                    _ => true,
                },
                Slot::Open(conn) => {
                    let served = door.serve(socket, conn, now);
                    progress |= served.progress || served.finished;
                    if served.finished {
                        let Slot::Open(conn) = core::mem::replace(slot, Slot::Closing { since: now }) else {
                            unreachable!("matched as open above")
                        };
                        door.close(conn);
                        self.open -= 1;
                    }
                    false
                }
                Slot::Closing { since } => {
                    let done = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
                    done || now.saturating_sub(*since) > LINGER_MS
                }
            };
            if set_aside {
                progress = true;
                let (handle, _) = self.slots.swap_remove(i);
                // Only TCP sockets are in `slots`; the pattern is irrefutable unless smoltcp is
                // built with other socket kinds, as the kernel builds it.
                #[allow(irrefutable_let_patterns)]
                if let Socket::Tcp(mut socket) = sockets.remove(handle) {
                    socket.abort();
                    self.stash.push(socket);
                }
                continue;
            }
            i += 1;
        }
        self.top_up(sockets);
        progress
    }

    /// Brings the sockets listening (in `Listen`, not mid-handshake) up to `spare`, from the
    /// stash. [`poll`](Self::poll) ends with it; the network stack calls it between received
    /// packets too, so that a burst of SYNs finds a listener for each while the stash lasts.
    pub fn top_up(&mut self, sockets: &mut SocketSet<'static>) {
        let ready = self
            .slots
            .iter()
            .filter(|(h, s)| {
                matches!(s, Slot::Listening) && sockets.get::<tcp::Socket>(*h).state() == tcp::State::Listen
            })
            .count();
        for _ in ready..self.spare {
            let Some(mut socket) = self.stash.pop() else { break };
            // A stashed socket is closed (aborted), so listening cannot fail; one that did
            // would go back to the stash rather than into the set.
            if socket.listen(self.port).is_err() {
                self.stash.push(socket);
                break;
            }
            self.slots.push((sockets.add(socket), Slot::Listening));
        }
    }

    /// The sockets in the set (for their TCP states).
    pub fn handles(&self) -> impl Iterator<Item = SocketHandle> + '_ {
        self.slots.iter().map(|(h, _)| *h)
    }

    /// Sockets in the stash (closed, out of the set).
    pub fn stashed(&self) -> usize {
        self.stash.len()
    }

    pub fn census(&self) -> Census {
        let mut c = Census { stashed: self.stash.len(), ..Census::default() };
        for (_, slot) in &self.slots {
            match slot {
                Slot::Listening => c.listening += 1,
                Slot::Open(_) => c.open += 1,
                Slot::Closing { .. } => c.closing += 1,
            }
        }
        c
    }

    /// Connections open (served).
    pub fn open(&self) -> usize {
        self.open
    }
}
