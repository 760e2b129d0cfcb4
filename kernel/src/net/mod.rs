//! The kernel's own network stack: the virtio-net NIC found on PCI, smoltcp over it (ARP, IPv4,
//! ICMP echo, TCP; DHCPv4 or a static address), the pool of TCP sockets that the HTTP front
//! door serves, and the client sockets of the communication functions (crate::comm).

#[allow(unsafe_code)] // virtio-drivers' `Hal`: DMA memory and MMIO mappings
pub mod hal;
#[allow(unsafe_code)] // configuration space, the MSI-X table and virtio's common configuration
mod pci;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use drivers::net::virtio::{NicStats, VirtioNet};
use kcore::cmdline::CommandLine;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::FaultInjector;
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Address, Ipv4Cidr};
use virtio_drivers::transport::pci::PciTransport;

use crate::arch;
use crate::boot::BootInfo;
use crate::time;
use hal::KernelHal;

type Nic = VirtioNet<KernelHal, PciTransport, 256>;

/// The NIC as smoltcp sees it: the device itself, or (`netfault=` on the command line) wrapped
/// in smoltcp's `FaultInjector`, which drops frames and flips bits in both directions.
// `Net` is boxed as a whole; the plain NIC stays inline so its path has no extra indirection.
#[allow(clippy::large_enum_variant)]
enum Device {
    Plain(Nic),
    /// The NIC's own counters are out of reach inside the injector: `/metrics` shows zeros.
    Faulty(Box<FaultInjector<Nic>>),
}

/// Per-socket buffer sizes: a 64 KiB receive window keeps TCP streaming under emulation.
const RX_BUFFER: usize = 64 * 1024;
const TX_BUFFER: usize = 64 * 1024;
/// A client socket mostly sends a small request head: a smaller send buffer will do.
const CLIENT_TX_BUFFER: usize = 16 * 1024;
/// Storage reserved in the socket set.
const SOCKET_SLOTS: usize = 192;

pub struct Net {
    device: Device,
    iface: Interface,
    pub sockets: SocketSet<'static>,
    dhcp: Dhcp,
    /// Where the DHCP client waits while parked: a set of its own, so that smoltcp can say
    /// when it next needs to run.
    aside: SocketSet<'static>,
    address: Option<Ipv4Cidr>,
    /// The receive queue's interrupt, when the NIC and the architecture have one.
    wake: Option<pci::ReceiveInterrupt>,
}

/// The DHCP client. smoltcp offers every socket in the set each frame to send (a DHCP socket
/// builds its whole next message to find it has none: ~280 instructions of every request), so
/// while a lease runs and nothing is due before its renewal, the client waits outside the set.
#[derive(Clone, Copy)]
enum Dhcp {
    /// A static address: no client.
    Off,
    /// In the socket set: discovering, requesting, renewing.
    Live(SocketHandle),
    /// In `aside` with nothing to send or receive before `until` (its renewal time): an ACK
    /// was just processed and no request is outstanding.
    Parked { handle: SocketHandle, until: Instant },
}

/// A client is parked only when its next step is at least this far off.
const PARK_AT_LEAST: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(1);

pub fn now() -> Instant {
    Instant::from_micros(time::micros_since_boot().unwrap_or(0) as i64)
}

/// Brings up the first virtio-net device, or says why there is none.
pub fn init(info: &BootInfo, cmdline: &CommandLine<'_>, settings: &model::NodeSettings) -> Option<Box<Net>> {
    let mut found = pci::find_nic(info)?;
    let function = found.function;
    let transport = PciTransport::new::<KernelHal, _>(&mut found.root, function)
        .map_err(|e| log::error!("virtio-net at {function}: {e}"))
        .ok()?;
    let mut nic = Nic::new(transport).map_err(|e| log::error!("net: {e}")).ok()?;
    let mac = nic.mac();
    let fault = cmdline.net_fault();
    if let Ok(Some(_)) = fault {
        // The injector corrupts frames after the driver has seen them: smoltcp must check
        // (the interface reads the device's checksum capabilities once, when it is made).
        nic.set_checksum_offload(false);
    }
    let mut iface = Interface::new(Config::new(EthernetAddress(mac).into()), &mut nic, now());
    // The receive queue wakes the I/O loop from its sleeps, on this CPU (the I/O core). Not
    // under fault injection: the injector hides the queue the loop's last look reads.
    let wake = match (&fault, arch::device_interrupt_message()) {
        (Ok(Some(_)), _) => Err("fault injection"),
        (_, None) => Err("no device interrupts on this architecture yet"),
        (_, Some(message)) => pci::route_receive_interrupt(&mut found, message),
    };
    let device = match fault {
        Ok(None) => Device::Plain(nic),
        Ok(Some(fault)) => {
            let mut injector = FaultInjector::new(nic, fault.seed);
            injector.set_drop_chance(fault.drop_pct);
            injector.set_corrupt_chance(fault.corrupt_pct);
            log::warn!(
                "injecting faults: {}% of frames dropped, {}% corrupted (one bit), seed {}",
                fault.drop_pct,
                fault.corrupt_pct,
                fault.seed
            );
            Device::Faulty(Box::new(injector))
        }
        Err(e) => {
            log::error!("{e}; no faults injected");
            Device::Plain(nic)
        }
    };
    // Room for every socket that may be in the set at once (the front door's listening, open
    // and closing sockets, the `http` function's clients, DHCP, DNS), reserved at boot so that
    // the set does not grow its storage under load.
    let mut sockets = SocketSet::new(Vec::with_capacity(SOCKET_SLOTS));

    let (dhcp, address) = match static_address(cmdline).or_else(|| configured_address(settings)) {
        Some((cidr, gateway)) => {
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            });
            if let Some(gw) = gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(gw);
            }
            (Dhcp::Off, Some(cidr))
        }
        None => {
            let mut client = dhcpv4::Socket::new();
            // With a receive buffer set (empty: nothing is kept), smoltcp reports every ACK as
            // `Configured`, renewals whose lease did not change included: the client parks
            // after each (`Dhcp::Parked`), never while it waits for an answer.
            client.set_receive_packet_buffer(&mut []);
            match cmdline.dhcp_lease_secs() {
                Ok(Some(secs)) => client.set_max_lease_duration(Some(smoltcp::time::Duration::from_secs(secs))),
                Ok(None) => {}
                Err(e) => log::error!("{e}; the server's lease stands"),
            }
            (Dhcp::Live(sockets.add(client)), None)
        }
    };
    log::info!(
        "virtio-net at {function}, MAC {}, {}, {}",
        EthernetAddress(mac),
        match (found.msix, &wake) {
            (Some(m), Ok(_)) => alloc::format!("MSI-X {} vectors (polled; a frame wakes the idle loop)", m.vectors),
            (Some(m), Err(why)) => alloc::format!("MSI-X {} vectors (unused, {why}: poll mode)", m.vectors),
            (None, _) => "no MSI-X (poll mode)".into(),
        },
        if matches!(dhcp, Dhcp::Live(_)) { "asking DHCP for an address" } else { "static address" }
    );
    let aside = SocketSet::new(Vec::with_capacity(1));
    let wake = wake.ok();
    Some(Box::new(Net { device, iface, sockets, dhcp, aside, address, wake }))
}

/// `ip=A.B.C.D/N` and optional `gw=A.B.C.D` from the command line.
fn static_address(cmdline: &CommandLine<'_>) -> Option<(Ipv4Cidr, Option<Ipv4Address>)> {
    let ip = cmdline.get("ip")?;
    let Some((addr, prefix)) = ip.split_once('/') else {
        log::error!("command line: ip={ip} needs a prefix length (ip=A.B.C.D/N); using DHCP");
        return None;
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<Ipv4Address>(), prefix.parse::<u8>()) else {
        log::error!("command line: ip={ip} is not an IPv4 address with prefix; using DHCP");
        return None;
    };
    let gateway = cmdline.get("gw").and_then(|g| g.parse().map_err(|_| log::error!("command line: bad gw={g}")).ok());
    Some((Ipv4Cidr::new(addr, prefix), gateway))
}

/// `ip` and `gateway` from the boot configuration (the command line's `ip=` wins).
fn configured_address(settings: &model::NodeSettings) -> Option<(Ipv4Cidr, Option<Ipv4Address>)> {
    let (addr, prefix) = settings.address?;
    Some((Ipv4Cidr::new(addr, prefix), settings.gateway))
}

impl Net {
    /// Before the I/O loop sleeps: lets a received frame end the sleep. False when the NIC
    /// cannot interrupt (the loop then sleeps a tick at most and looks again).
    pub fn open_receive_interrupt(&mut self) -> bool {
        self.wake.as_mut().map(pci::ReceiveInterrupt::open).is_some()
    }

    /// After the sleep: the loop polls again, and frames raise nothing.
    pub fn close_receive_interrupt(&mut self) {
        if let Some(wake) = self.wake.as_mut() {
            wake.close();
        }
    }

    /// Whether a received frame waits in the NIC's queue (the loop's last look before it
    /// sleeps, with interrupts off).
    pub fn receive_pending(&self) -> bool {
        match &self.device {
            Device::Plain(nic) => nic.receive_pending(),
            Device::Faulty(_) => false,
        }
    }

    /// Runs the stack once: frames in and out, timers, DHCP. True if anything happened.
    pub fn poll(&mut self) -> bool {
        self.poll_stack(now(), &mut |_| {}, true)
    }

    /// Timers, DHCP and every received frame, but nothing sent: the I/O loop sends once at the
    /// end of its pass ([`flush`](Self::flush)), after the sockets had their say. Calls `between`
    /// after each received frame that may have changed a socket (the front door tops its
    /// listeners up there: a SYN takes one).
    /// `ts` is the pass's time ([`now`]), read once for the whole pass.
    pub fn receive_with(&mut self, ts: Instant, between: &mut dyn FnMut(&mut SocketSet<'static>)) -> bool {
        self.poll_stack(ts, between, false)
    }

    fn poll_stack(&mut self, ts: Instant, between: &mut dyn FnMut(&mut SocketSet<'static>), send: bool) -> bool {
        let changed = match &mut self.device {
            Device::Plain(nic) => poll_stack(&mut self.iface, nic, &mut self.sockets, ts, between, send),
            Device::Faulty(injector) => {
                poll_stack(&mut self.iface, injector.as_mut(), &mut self.sockets, ts, between, send)
            }
        };
        match self.dhcp {
            Dhcp::Live(handle) => self.poll_dhcp(handle, ts),
            Dhcp::Parked { handle, until } if ts >= until => {
                let client = self.aside.remove(handle);
                self.dhcp = Dhcp::Live(self.sockets.add(client));
            }
            Dhcp::Parked { .. } | Dhcp::Off => {}
        }
        changed
    }

    fn poll_dhcp(&mut self, handle: SocketHandle, ts: Instant) {
        match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            Some(dhcpv4::Event::Configured(config)) => {
                let cidr = config.address;
                let router = config.router;
                if self.address == Some(cidr) {
                    log::info!("DHCP lease {cidr} renewed");
                } else {
                    self.iface.update_ip_addrs(|addrs| {
                        addrs.clear();
                        let _ = addrs.push(IpCidr::Ipv4(cidr));
                    });
                    log::info!("DHCP lease {cidr}, router {router:?}");
                    self.address = Some(cidr);
                }
                if let Some(router) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                }
                self.park_dhcp(handle, ts);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if self.address.is_some() {
                    log::warn!("DHCP lease lost");
                }
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.address = None;
            }
            None => {}
        }
    }

    /// Sets the DHCP client aside until its next step, if that is at least [`PARK_AT_LEAST`] off.
    fn park_dhcp(&mut self, handle: SocketHandle, ts: Instant) {
        let aside = self.aside.add(self.sockets.remove(handle));
        match self.iface.poll_at(ts, &self.aside) {
            Some(until) if until >= ts + PARK_AT_LEAST => self.dhcp = Dhcp::Parked { handle: aside, until },
            _ => {
                let client = self.aside.remove(aside);
                self.dhcp = Dhcp::Live(self.sockets.add(client));
            }
        }
    }

    /// Sends what sockets have queued (the responses the front door just wrote, SYN-ACKs,
    /// ACKs, retransmissions, DHCP): frames out only. True if a socket may have changed.
    pub fn flush(&mut self, ts: Instant) -> bool {
        match &mut self.device {
            Device::Plain(nic) => egress(&mut self.iface, nic, &mut self.sockets, ts),
            Device::Faulty(injector) => egress(&mut self.iface, injector.as_mut(), &mut self.sockets, ts),
        }
    }

    /// How long the stack can sleep before it must be polled again.
    pub fn poll_delay_micros(&mut self) -> Option<u64> {
        let ts = now();
        let stack = self.iface.poll_delay(ts, &self.sockets);
        let dhcp = match self.dhcp {
            Dhcp::Parked { until, .. } => Some(if until > ts { until - ts } else { smoltcp::time::Duration::ZERO }),
            Dhcp::Live(_) | Dhcp::Off => None,
        };
        match (stack, dhcp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|d| d.total_micros())
    }

    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.address
    }

    pub fn nic_stats(&self) -> NicStats {
        match &self.device {
            Device::Plain(nic) => nic.stats(),
            Device::Faulty(_) => NicStats::default(),
        }
    }

    /// A closed TCP socket with server-sized buffers (the front door's pool makes its sockets
    /// with this, all at boot).
    pub fn tcp_socket() -> tcp::Socket<'static> {
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0; RX_BUFFER]), tcp::SocketBuffer::new(vec![0; TX_BUFFER]))
    }
}

/// smoltcp's `Interface::poll` taken apart: timers, each received frame in turn (then
/// `between`), then, if `send`, every frame to send. True if a socket may have changed.
fn poll_stack(
    iface: &mut Interface,
    device: &mut impl smoltcp::phy::Device,
    sockets: &mut SocketSet<'static>,
    ts: Instant,
    between: &mut dyn FnMut(&mut SocketSet<'static>),
    send: bool,
) -> bool {
    iface.poll_maintenance(ts);
    let mut changed = false;
    loop {
        match iface.poll_ingress_single(ts, device, sockets) {
            PollIngressSingleResult::None => break,
            PollIngressSingleResult::PacketProcessed => {}
            PollIngressSingleResult::SocketStateChanged => {
                changed = true;
                between(sockets);
            }
        }
    }
    if send {
        changed |= egress(iface, device, sockets, ts);
    }
    changed
}

/// Every frame the sockets have to send; true if a socket may have changed.
fn egress(
    iface: &mut Interface,
    device: &mut impl smoltcp::phy::Device,
    sockets: &mut SocketSet<'static>,
    ts: Instant,
) -> bool {
    let mut changed = false;
    while iface.poll_egress(ts, device, sockets) == PollResult::SocketStateChanged {
        changed = true;
    }
    changed
}

/// Client sockets for the communication functions (crate::comm), TCP and DNS: their driver
/// adds, connects and drives them; `Net::poll` moves their frames like every other socket's.
impl pappus_fetch::NetStack for Net {
    fn parts(&mut self) -> (&mut Interface, &mut SocketSet<'static>) {
        (&mut self.iface, &mut self.sockets)
    }

    fn add_tcp_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; RX_BUFFER]);
        let tx = tcp::SocketBuffer::new(vec![0; CLIENT_TX_BUFFER]);
        self.sockets.add(tcp::Socket::new(rx, tx))
    }
}
