//! virtio-net as a smoltcp device, on `virtio-drivers`' non-blocking raw queue API.
//!
//! Every receive descriptor always has a buffer posted; a received frame is handed to smoltcp
//! in place and its buffer re-posted right after, so the receive path never allocates. Transmit
//! buffers come from a fixed pool that completed sends return to; when the pool is empty,
//! smoltcp is told "not now" and retries on the next poll, instead of waiting for the device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ptr::NonNull;

use smoltcp::phy::{self, DeviceCapabilities, Medium};

use super::checksum;
use crate::pci::{ConfigurationAccess, DeviceFunction, PciRoot};
use smoltcp::time::Instant;
use virtio_drivers::Hal;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::Transport;

/// Room for a full Ethernet frame plus the virtio-net header.
const BUFFER_LEN: usize = 2048;
const MTU: usize = 1514;

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Transmits refused because every buffer was in flight (smoltcp retries them).
    pub tx_busy: u64,
    /// Receive or transmit errors reported by the queue layer.
    pub errors: u64,
    /// Received TCP segments dropped for a wrong checksum (checksum offload on).
    pub rx_bad_checksum: u64,
}

struct Inner<H: Hal, T: Transport, const QS: usize> {
    raw: VirtIONetRaw<H, T, QS>,
    rx_buffers: Vec<Box<[u8]>>,
    /// Descriptor token -> receive buffer index.
    rx_slot_of_token: [usize; QS],
    tx_free: Vec<Box<[u8]>>,
    /// Descriptor token -> transmit buffer in flight.
    tx_in_flight: Vec<Option<Box<[u8]>>>,
    stats: NicStats,
    /// Whether this driver fills and checks TCP checksums instead of smoltcp ([`checksum`]).
    offload: bool,
}

pub struct VirtioNet<H: Hal, T: Transport, const QS: usize> {
    inner: RefCell<Inner<H, T, QS>>,
    mac: [u8; 6],
}

/// Why the NIC could not be brought up.
#[derive(Debug)]
pub struct InitError(pub virtio_drivers::Error);

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "virtio-net initialisation failed: {}", self.0)
    }
}

impl<H: Hal, T: Transport, const QS: usize> VirtioNet<H, T, QS> {
    pub fn new(transport: T) -> Result<Self, InitError> {
        let mut raw = VirtIONetRaw::<H, T, QS>::new(transport).map_err(InitError)?;
        let mac = raw.mac_address();
        // Poll mode: the I/O loop looks at the queues itself. (With RING_EVENT_IDX, which
        // `virtio-drivers` negotiates, this sets nothing: the device signals each first frame
        // after the driver's last look. The kernel gates that with the MSI-X mask instead.)
        raw.disable_interrupts();
        let mut rx_buffers: Vec<Box<[u8]>> = (0..QS).map(|_| alloc::vec![0u8; BUFFER_LEN].into_boxed_slice()).collect();
        let mut rx_slot_of_token = [0; QS];
        for (slot, buf) in rx_buffers.iter_mut().enumerate() {
            // SAFETY: the buffer stays allocated and untouched until its completion is popped.
            let token = unsafe { raw.receive_begin(buf) }.map_err(InitError)?;
            rx_slot_of_token[usize::from(token)] = slot;
        }
        let tx_free = (0..QS).map(|_| alloc::vec![0u8; BUFFER_LEN].into_boxed_slice()).collect();
        let tx_in_flight = (0..QS).map(|_| None).collect();
        let inner = Inner {
            raw,
            rx_buffers,
            rx_slot_of_token,
            tx_free,
            tx_in_flight,
            stats: NicStats::default(),
            offload: true,
        };
        Ok(Self { inner: RefCell::new(inner), mac })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the driver does TCP checksums ([`checksum`]; on by default). Off, smoltcp does
    /// them: needed when something between the driver and smoltcp alters frames (smoltcp's
    /// `FaultInjector` corrupts them after the driver has seen them).
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.inner.get_mut().offload = on;
    }

    pub fn stats(&self) -> NicStats {
        self.inner.borrow().stats
    }

    /// Whether a received frame waits in the receive queue (the I/O loop's last look before it
    /// sleeps).
    pub fn receive_pending(&self) -> bool {
        self.inner.borrow().raw.poll_receive().is_some()
    }
}

/// virtio-net's receive queue (receiveq1).
pub const RECEIVE_QUEUE: u16 = 0;

/// The physical address of `function`'s virtio-pci common configuration structure: the
/// vendor capability of `cfg_type` 1 names its BAR and offset (virtio 1.2, 4.1.4).
pub fn common_config_address<C: ConfigurationAccess>(
    root: &PciRoot<C>,
    cam: &C,
    function: DeviceFunction,
) -> Option<u64> {
    let cap =
        root.capabilities(function).find(|c| c.id == CAP_VENDOR && (c.private_header >> 8) as u8 == CFG_TYPE_COMMON)?;
    let bar = (cam.read_word(function, cap.offset.checked_add(4)?) & 0xff) as u8;
    let offset = cam.read_word(function, cap.offset.checked_add(8)?);
    crate::pci::memory_bar_address(cam, function, bar)?.checked_add(u64::from(offset))
}

const CAP_VENDOR: u8 = 0x09;
const CFG_TYPE_COMMON: u8 = 1;
/// `queue_select` and `queue_msix_vector` in the common configuration structure.
const QUEUE_SELECT: usize = 0x16;
const QUEUE_MSIX_VECTOR: usize = 0x1a;

/// virtio-pci's common configuration, for the one setting `virtio-drivers` leaves alone: the
/// MSI-X vector a queue signals (`queue_msix_vector`, reset to none: with MSI-X on, a queue
/// raises nothing until the driver names a vector).
pub struct CommonConfig {
    base: NonNull<u8>,
}

impl CommonConfig {
    /// # Safety
    /// `base` maps the function's common configuration structure as device memory for as long
    /// as this value lives, and its transport is not in use meanwhile (this selects a queue).
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        Self { base }
    }

    /// Makes `queue` signal MSI-X table entry `vector`; false if the device refused it (it
    /// reads back "no vector" when it cannot map it).
    pub fn set_queue_vector(&mut self, queue: u16, vector: u16) -> bool {
        let at = |offset: usize| self.base.as_ptr().wrapping_add(offset).cast::<u16>();
        // SAFETY: both registers lie in the structure `new`'s caller vouched for, 2-aligned.
        unsafe {
            at(QUEUE_SELECT).write_volatile(queue);
            at(QUEUE_MSIX_VECTOR).write_volatile(vector);
            at(QUEUE_MSIX_VECTOR).read_volatile() == vector
        }
    }
}

impl<H: Hal, T: Transport, const QS: usize> Inner<H, T, QS> {
    /// Posts receive buffer `slot` to the device again.
    fn repost(&mut self, slot: usize) {
        let buf = &mut self.rx_buffers[slot];
        // SAFETY: the buffer is owned by `rx_buffers` and not touched until its completion.
        match unsafe { self.raw.receive_begin(buf) } {
            Ok(token) => self.rx_slot_of_token[usize::from(token)] = slot,
            Err(_) => self.stats.errors += 1,
        }
    }

    /// Returns completed transmit buffers to the pool.
    fn reap_transmits(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some(buf) = self.tx_in_flight.get_mut(usize::from(token)).and_then(Option::take) else {
                self.stats.errors += 1;
                break;
            };
            // SAFETY: `buf` is the buffer that `transmit_begin` was given for this token.
            if unsafe { self.raw.transmit_complete(token, &buf) }.is_err() {
                self.stats.errors += 1;
            }
            self.tx_free.push(buf);
        }
    }
}

pub struct RxToken<'a, H: Hal, T: Transport, const QS: usize> {
    inner: &'a RefCell<Inner<H, T, QS>>,
    slot: usize,
    start: usize,
    len: usize,
}

pub struct TxToken<'a, H: Hal, T: Transport, const QS: usize> {
    inner: &'a RefCell<Inner<H, T, QS>>,
}

impl<H: Hal, T: Transport, const QS: usize> phy::RxToken for RxToken<'_, H, T, QS> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        // The buffer leaves the device state while `f` runs: smoltcp may answer the frame
        // through the paired transmit token, which needs the device state too.
        let buf = core::mem::take(&mut self.inner.borrow_mut().rx_buffers[self.slot]);
        let result = f(&buf[self.start..self.start + self.len]);
        // Give the buffer straight back to the device.
        let mut inner = self.inner.borrow_mut();
        inner.rx_buffers[self.slot] = buf;
        inner.repost(self.slot);
        result
    }
}

impl<H: Hal, T: Transport, const QS: usize> phy::TxToken for TxToken<'_, H, T, QS> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (mut buf, header) = {
            let mut inner = self.inner.borrow_mut();
            let mut buf = inner.tx_free.pop().expect("transmit() handed out a token without a free buffer");
            let header = inner.raw.fill_buffer_header(&mut buf).unwrap_or(0);
            (buf, header)
        };
        let len = len.min(BUFFER_LEN - header);
        let result = f(&mut buf[header..header + len]);
        let mut inner = self.inner.borrow_mut();
        if inner.offload {
            checksum::fill_tcp(&mut buf[header..header + len]);
        }
        // SAFETY: the buffer moves into `tx_in_flight` and stays untouched until reaped.
        match unsafe { inner.raw.transmit_begin(&buf[..header + len]) } {
            Ok(token) => {
                inner.stats.tx_packets += 1;
                inner.stats.tx_bytes += len as u64;
                inner.tx_in_flight[usize::from(token)] = Some(buf);
            }
            Err(_) => {
                inner.stats.errors += 1;
                inner.tx_free.push(buf);
            }
        }
        result
    }
}

impl<H: Hal, T: Transport, const QS: usize> phy::Device for VirtioNet<H, T, QS> {
    type RxToken<'a>
        = RxToken<'a, H, T, QS>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, H, T, QS>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let inner = self.inner.get_mut();
        inner.reap_transmits();
        if inner.tx_free.is_empty() {
            // An answer (ACK, ARP reply) could not be sent: leave the frame queued for later.
            inner.stats.tx_busy += 1;
            return None;
        }
        loop {
            let token = inner.raw.poll_receive()?;
            let slot = inner.rx_slot_of_token[usize::from(token)];
            // SAFETY: `slot`'s buffer is the one posted with this token.
            let received = unsafe { inner.raw.receive_complete(token, &mut inner.rx_buffers[slot]) };
            let (start, len) = match received {
                Ok(r) => r,
                Err(_) => {
                    inner.stats.errors += 1;
                    return None;
                }
            };
            inner.stats.rx_packets += 1;
            inner.stats.rx_bytes += len as u64;
            if inner.offload && !checksum::tcp_ok(&inner.rx_buffers[slot][start..start + len]) {
                // Dropped here, as a NIC with checksum offload drops it; TCP sends it again.
                inner.stats.rx_bad_checksum += 1;
                inner.repost(slot);
                continue;
            }
            return Some((RxToken { inner: &self.inner, slot, start, len }, TxToken { inner: &self.inner }));
        }
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        let inner = self.inner.get_mut();
        inner.reap_transmits();
        if inner.tx_free.is_empty() || !inner.raw.can_send() {
            inner.stats.tx_busy += 1;
            return None;
        }
        Some(TxToken { inner: &self.inner })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = None;
        if self.inner.borrow().offload {
            // Filled and checked here (`checksum`); IPv4 headers, ICMP and UDP stay smoltcp's.
            caps.checksum.tcp = phy::Checksum::None;
        }
        caps
    }
}
