//! The I/O loop: passes of the [`Node`] while there is work, sleep on the timer when there is
//! none. In single-core mode a pass also runs one turn (about 10 ms) of a function instance, so
//! the network is served between turns; with compute cores, a pass that moved nothing is
//! followed by such a turn when more work is queued than idle compute cores can take
//! (`dispatch::io_core_helps`).
//!
//! The NIC runs in poll mode. After the last activity the loop keeps spinning for a short window
//! (a request's next packet usually follows within it), then sleeps, so an idle node does not
//! burn its core: until a frame comes in (the NIC's receive interrupt, open only while the loop
//! sleeps), smoltcp's next timer or the control plane's, or at most 10 ms. Without device
//! interrupts (aarch64 for now, fault injection) a frame waits for the sleep's end: at most 1 ms.

use core::sync::atomic::{AtomicU64, Ordering};

use smoltcp::wire::Ipv4Cidr;

use crate::compute::Dispatcher;
use crate::net::Net;
use crate::node::Node;
use crate::{arch, time};

const SPIN_MICROS: u64 = 2_000;
/// The longest sleep when a received frame ends it (the NIC's receive interrupt).
const MAX_SLEEP_MICROS: u64 = 10_000;
/// The longest sleep when nothing but the timer ends it (no device interrupts): the most a
/// request that finds the node asleep waits.
const POLL_SLEEP_MICROS: u64 = 1_000;
/// How long boot waits for DHCP before reporting ready without an address.
const DHCP_WAIT_MICROS: u64 = 10_000_000;

/// Ticks spent in passes of the I/O loop that moved something (bytes, connections,
/// invocations); spinning and sleeping excluded. Under `-icount shift=0` a tick is one guest
/// instruction, so `cargo xtask bench net` divides this by requests served to get the
/// instructions one request costs from RX to TX.
static WORK_TICKS: AtomicU64 = AtomicU64::new(0);
/// Passes that moved something (what [`WORK_TICKS`] counts the ticks of).
static WORK_PASSES: AtomicU64 = AtomicU64::new(0);

pub fn work_ticks() -> u64 {
    WORK_TICKS.load(Ordering::Relaxed)
}

pub fn work_passes() -> u64 {
    WORK_PASSES.load(Ordering::Relaxed)
}

/// Polls until the interface has an address (DHCP) or the wait runs out.
pub fn wait_for_address(net: &mut Net) -> Ipv4Cidr {
    let give_up = time::ticks() + time::micros_to_ticks(DHCP_WAIT_MICROS);
    loop {
        net.poll();
        if let Some(address) = net.address() {
            return address;
        }
        if time::ticks() > give_up {
            log::error!("net: no DHCP lease after 10 s; serving without an address until one comes");
            return Ipv4Cidr::new(smoltcp::wire::Ipv4Address::UNSPECIFIED, 0);
        }
        sleep(net, None);
    }
}

/// Sleeps until a frame comes in, smoltcp's next timer, the control plane's next wake-up
/// (`wake_ms`, ms since boot), or at most [`MAX_SLEEP_MICROS`] ([`POLL_SLEEP_MICROS`] when the
/// NIC cannot interrupt: a frame then waits for the tick).
fn sleep(net: &mut Net, wake_ms: Option<u64>) {
    let now_us = time::micros_since_boot().unwrap_or(0);
    let woken_by_frames = net.open_receive_interrupt();
    let most = if woken_by_frames { MAX_SLEEP_MICROS } else { POLL_SLEEP_MICROS };
    let control = wake_ms.map_or(most, |ms| (ms * 1000).saturating_sub(now_us));
    let delay = net.poll_delay_micros().unwrap_or(most).min(most).min(control);
    if delay > 0 {
        // Results from the compute cores and received frames end the halt (their interrupts,
        // or this look with interrupts off when they came just before).
        let pending = || Dispatcher::get().is_some_and(Dispatcher::has_completions) || net.receive_pending();
        arch::wait_for_work(Some(time::ticks() + time::micros_to_ticks(delay)), pending);
    }
    net.close_receive_interrupt();
}

/// The I/O loop: passes while there is work, a short spin after the last, then sleeps.
pub fn forever(mut node: Node) -> ! {
    let spin = time::micros_to_ticks(SPIN_MICROS);
    let mut last_activity = time::ticks();
    // The profiler keeps a turn's samples only if its pass did work (as WORK_TICKS counts) or
    // it helped with queued work; an idle turn (the pass that found nothing, the help check,
    // the clock, the spin) is dropped whole. It used to stage only the pass: the rest of each
    // idle turn landed in echo64's profile (a fifth of its samples).
    crate::profile::pass_begin();
    loop {
        let start = time::ticks();
        let work = node.pass();
        let kept = if work {
            // A pass that found work also polls the NIC once more before it sends: both count.
            last_activity = time::ticks();
            WORK_TICKS.fetch_add(last_activity - start, Ordering::Relaxed);
            WORK_PASSES.fetch_add(1, Ordering::Relaxed);
            true
        } else if node.help(work) {
            // A turn of queued work the compute cores had no room for (not I/O work: not
            // counted in WORK_TICKS); the next pass serves what arrived meanwhile.
            last_activity = time::ticks();
            true
        } else {
            // Within the spin window the next pass follows at once: a pass is itself the
            // pacing (hundreds of instructions of polling), and a PAUSE here is dear where it
            // matters most: QEMU's TCG leaves translated code at every PAUSE and takes its big
            // lock, which the device emulation injecting the next packet needs. Dropping it made
            // the 64-byte echo 1.6x faster in wall-clock terms (`bench e2e`, 11.6 K -> 19 K req/s).
            if time::ticks() - last_activity > spin {
                let wake = node.next_wakeup_ms();
                sleep(node.net(), wake);
            }
            false
        };
        crate::profile::pass_end(kept);
    }
}
