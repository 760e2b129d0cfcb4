//! The pool against real smoltcp TCP: clients and the pool's sockets on one loopback Ethernet
//! interface, on a simulated clock (1 ms per pass). The door echoes what it receives and closes
//! when its peer does.

use pool::{Census, Door, LINGER_MS, Pool, Served};
use proptest::prelude::*;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{FaultInjector, Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

const PORT: u16 = 8080;
const MAX_OPEN: usize = 4;
const SPARE: usize = 2;
const BUSY: &[u8] = b"busy";

struct Echo {
    opened: usize,
    refused: usize,
    closed: usize,
}

impl Door<u64> for Echo {
    fn open(&mut self, now: u64) -> u64 {
        self.opened += 1;
        now
    }

    fn refuse(&mut self, socket: &mut tcp::Socket<'static>) {
        self.refused += 1;
        socket.send_slice(BUSY).unwrap();
    }

    fn serve(&mut self, socket: &mut tcp::Socket<'static>, _opened_at: &mut u64, _now: u64) -> Served {
        let mut served = Served::default();
        let mut buf = [0; 256];
        while socket.can_recv() && socket.send_capacity() - socket.send_queue() >= buf.len() {
            let n = socket.recv_slice(&mut buf).unwrap();
            socket.send_slice(&buf[..n]).unwrap();
            served.progress |= n > 0;
        }
        if !socket.may_recv() || buf.starts_with(b"quit") {
            socket.close();
            served.finished = true;
        }
        served
    }

    fn close(&mut self, _conn: u64) {
        self.closed += 1;
    }
}

struct Net {
    /// Drops every frame when told to (a peer gone silent).
    device: FaultInjector<Loopback>,
    iface: Interface,
    sockets: SocketSet<'static>,
    pool: Pool<u64>,
    door: Echo,
    now: u64,
    next_port: u16,
}

fn socket() -> tcp::Socket<'static> {
    tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 2048]), tcp::SocketBuffer::new(vec![0; 2048]))
}

impl Net {
    fn new() -> Self {
        let mut device = Loopback::new(Medium::Ethernet);
        let mut iface =
            Interface::new(Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]).into()), &mut device, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24)).unwrap());
        let mut sockets = SocketSet::new(vec![]);
        let pool = Pool::new(&mut sockets, PORT, MAX_OPEN, SPARE, socket);
        let door = Echo { opened: 0, refused: 0, closed: 0 };
        let device = FaultInjector::new(device, 1);
        Self { device, iface, sockets, pool, door, now: 0, next_port: 49152 }
    }

    /// One pass: the stack, then the pool; the invariants checked.
    fn pass(&mut self) {
        self.now += 1;
        self.iface.poll(Instant::from_millis(self.now as i64), &mut self.device, &mut self.sockets);
        self.pool.poll(&mut self.sockets, self.now, &mut self.door);
        let c = self.pool.census();
        assert_eq!(c.listening + c.open + c.closing + c.stashed, MAX_OPEN + SPARE, "a socket was lost: {c:?}");
        assert!(c.open <= MAX_OPEN, "{c:?}");
        assert_eq!(c.open, self.pool.open());
        let in_set = self.pool.handles().count();
        assert_eq!(in_set, c.listening + c.open + c.closing);
    }

    /// A pass as the kernel makes it: the pool tops its listeners up after each received frame.
    fn pass_topping_up(&mut self) {
        self.now += 1;
        let ts = Instant::from_millis(self.now as i64);
        self.iface.poll_maintenance(ts);
        while self.iface.poll_ingress_single(ts, &mut self.device, &mut self.sockets) != PollIngressSingleResult::None {
            self.pool.top_up(&mut self.sockets);
        }
        while self.iface.poll_egress(ts, &mut self.device, &mut self.sockets) == PollResult::SocketStateChanged {}
        self.pool.poll(&mut self.sockets, self.now, &mut self.door);
    }

    fn passes(&mut self, n: usize) {
        for _ in 0..n {
            self.pass();
        }
    }

    fn connect(&mut self) -> SocketHandle {
        let mut s = socket();
        self.next_port += 1;
        s.connect(self.iface.context(), (IpAddress::v4(10, 0, 0, 1), PORT), self.next_port).unwrap();
        self.sockets.add(s)
    }

    /// `n` clients, one per pass (as a backlog of one delivers them).
    fn connect_each(&mut self, n: usize) -> Vec<SocketHandle> {
        (0..n)
            .map(|_| {
                let c = self.connect();
                self.pass();
                c
            })
            .collect()
    }

    fn client(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    fn census(&self) -> Census {
        self.pool.census()
    }
}

#[test]
fn only_spare_listeners_are_in_the_set_at_first() {
    let net = Net::new();
    assert_eq!(net.census(), Census { listening: SPARE, open: 0, closing: 0, stashed: MAX_OPEN });
    assert_eq!(net.sockets.iter().count(), SPARE);
}

#[test]
fn the_pool_grows_to_max_open_and_keeps_spare_listeners() {
    let mut net = Net::new();
    let clients = net.connect_each(MAX_OPEN);
    net.passes(20);
    for &c in &clients {
        assert_eq!(net.client(c).state(), tcp::State::Established);
    }
    assert_eq!(net.census(), Census { listening: SPARE, open: MAX_OPEN, closing: 0, stashed: 0 });
    assert_eq!(net.door.opened, MAX_OPEN);

    // Each connection is served: an echo on every one.
    for (i, &c) in clients.iter().enumerate() {
        net.client(c).send_slice(format!("hello {i}").as_bytes()).unwrap();
    }
    net.passes(20);
    for (i, &c) in clients.iter().enumerate() {
        let mut buf = [0; 64];
        let n = net.client(c).recv_slice(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("hello {i}").as_bytes());
    }
}

#[test]
fn a_connection_over_max_open_is_refused_and_closed() {
    let mut net = Net::new();
    let clients = net.connect_each(MAX_OPEN);
    net.passes(20);
    let extra = net.connect();
    net.passes(20);
    assert_eq!(net.door.refused, 1);
    let mut buf = [0; 64];
    let n = net.client(extra).recv_slice(&mut buf).unwrap();
    assert_eq!(&buf[..n], BUSY);
    assert!(!net.client(extra).may_recv(), "the refused connection was not closed");
    net.client(extra).close();
    net.passes(20);
    assert_eq!(net.census().open, MAX_OPEN);
    // The open ones are untouched.
    for &c in &clients {
        assert_eq!(net.client(c).state(), tcp::State::Established);
    }
}

#[test]
fn closed_connections_go_back_to_the_stash() {
    let mut net = Net::new();
    let clients = net.connect_each(MAX_OPEN);
    net.passes(20);
    for &c in &clients {
        net.client(c).close();
    }
    net.passes(50);
    assert_eq!(net.door.closed, MAX_OPEN);
    assert_eq!(net.census(), Census { listening: SPARE, open: 0, closing: 0, stashed: MAX_OPEN });
    // And they serve again: a stashed socket listens once more.
    let again = net.connect_each(MAX_OPEN);
    net.passes(20);
    assert_eq!(net.census().open, MAX_OPEN);
    for &c in &again {
        assert_eq!(net.client(c).state(), tcp::State::Established);
    }
}

#[test]
fn a_peer_that_never_acknowledges_our_fin_is_dropped_after_the_linger() {
    let mut net = Net::new();
    let c = net.connect_each(1)[0];
    net.passes(20);
    // The server closes; the peer goes silent before our FIN reaches it.
    net.client(c).send_slice(b"quit").unwrap();
    net.passes(2);
    net.device.set_drop_chance(100);
    net.passes(20);
    assert_eq!(net.census().closing, 1, "{:?}", net.census());
    net.passes(LINGER_MS as usize);
    assert_eq!(net.census(), Census { listening: SPARE, open: 0, closing: 0, stashed: MAX_OPEN });
}

#[test]
fn a_burst_beyond_the_spare_listeners_is_reset_and_the_pool_recovers() {
    let mut net = Net::new();
    let burst: Vec<_> = (0..SPARE + 1).map(|_| net.connect()).collect();
    net.passes(20);
    let states: Vec<_> = burst.iter().map(|&c| net.client(c).state()).collect();
    assert_eq!(states.iter().filter(|s| **s == tcp::State::Established).count(), SPARE, "{states:?}");
    assert_eq!(net.census(), Census { listening: SPARE, open: SPARE, closing: 0, stashed: MAX_OPEN - SPARE });
    let late = net.connect_each(1)[0];
    net.passes(5);
    assert_eq!(net.client(late).state(), tcp::State::Established);
}

#[test]
fn a_burst_is_served_when_listeners_are_topped_up_between_frames() {
    let mut net = Net::new();
    let burst: Vec<_> = (0..MAX_OPEN).map(|_| net.connect()).collect();
    for _ in 0..20 {
        net.pass_topping_up();
    }
    let states: Vec<_> = burst.iter().map(|&c| net.client(c).state()).collect();
    assert!(states.iter().all(|s| *s == tcp::State::Established), "{states:?}");
    assert_eq!(net.census(), Census { listening: SPARE, open: MAX_OPEN, closing: 0, stashed: 0 });
}

#[test]
fn a_reset_mid_handshake_or_connection_frees_the_socket() {
    let mut net = Net::new();
    let c = net.connect_each(1)[0];
    net.passes(20);
    net.client(c).abort();
    net.passes(20);
    assert_eq!(net.census(), Census { listening: SPARE, open: 0, closing: 0, stashed: MAX_OPEN });
}

#[derive(Clone, Debug)]
enum Step {
    Connect,
    Close(usize),
    Abort(usize),
    Send(usize),
    Passes(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Connect),
        2 => any::<usize>().prop_map(Step::Close),
        1 => any::<usize>().prop_map(Step::Abort),
        2 => any::<usize>().prop_map(Step::Send),
        2 => (1u8..30).prop_map(Step::Passes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any mix of clients coming, talking, closing and resetting: no socket is lost (checked on
    /// every pass), open connections never exceed the limit, and once every client is gone the
    /// pool is back to its spare listeners with the rest stashed.
    #[test]
    fn the_pool_holds_its_invariants(steps in prop::collection::vec(step(), 1..60)) {
        let mut net = Net::new();
        let mut clients: Vec<SocketHandle> = Vec::new();
        for s in steps {
            match s {
                Step::Connect => clients.push(net.connect()),
                Step::Close(i) if !clients.is_empty() => {
                    let c = clients[i % clients.len()];
                    net.client(c).close();
                }
                Step::Abort(i) if !clients.is_empty() => {
                    let c = clients[i % clients.len()];
                    net.client(c).abort();
                }
                Step::Send(i) if !clients.is_empty() => {
                    let c = clients[i % clients.len()];
                    if net.client(c).can_send() {
                        let _ = net.client(c).send_slice(b"ping");
                    }
                }
                Step::Passes(n) => net.passes(usize::from(n)),
                _ => {}
            }
            net.pass();
        }
        for &c in &clients {
            net.client(c).close();
        }
        net.passes(100);
        for c in clients {
            net.sockets.remove(c);
        }
        net.passes(LINGER_MS as usize + 10);
        prop_assert_eq!(net.census(), Census { listening: SPARE, open: 0, closing: 0, stashed: MAX_OPEN });
    }
}
