//! The Pappus kernel.
//!
//! Boot order: the architecture's entry code builds a [`boot::BootInfo`] and calls
//! [`kernel_main`], which brings up the console, the frame allocator, the architecture's own
//! state (page tables, traps, timers), the heap, the other CPUs (parked, see `smp.rs`), and then
//! either runs the self-tests (`test` on the command line) or reports ready and idles.

#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod boot_cell;
mod config;
mod console;
mod engines;
mod frontdoor;
mod mm;
mod net;
mod panic;
mod selftest;
mod serve;
mod smp;
mod time;

use kcore::cmdline::CommandLine;
use kcore::units::Bytes;

/// Entered once, on the boot CPU, with interrupts off.
pub fn kernel_main(info: boot::BootInfo) -> ! {
    let cmdline = CommandLine::new(info.cmdline);
    let level_error = console::init(&cmdline);
    console::println(format_args!(
        "pappus {} ({}) booting via {} cmdline=\"{}\"",
        env!("CARGO_PKG_VERSION"),
        arch::NAME,
        info.protocol,
        info.cmdline
    ));
    if let Some(err) = level_error {
        log::error!("{err}; logging at info");
    }
    for word in cmdline.unknown(&[]) {
        log::warn!("command line: unknown key `{word}` ignored");
    }

    mm::init_frames(&info);
    arch::init(&info);
    mm::init_heap();
    time::log_calibration();

    let frames = mm::frame_stats();
    let heap = mm::heap_stats();
    log::info!(
        "memory: {} usable, {} free; heap {} ({} used)",
        Bytes(frames.total * 4096),
        Bytes(frames.free * 4096),
        Bytes(heap.total as u64),
        Bytes(heap.used as u64)
    );

    // The other CPUs, parked until the dispatcher gives them work.
    smp::start(&info);

    if cmdline.test_mode() {
        let passed = selftest::run_all(cmdline.selftest_filter());
        arch::exit(passed);
    }

    if let Some(mut net) = net::init(&info, &cmdline) {
        let tokens = config::tenants(&info);
        let engines = engines::Engines::new().unwrap_or_else(|e| panic!("compute engines: {e}"));
        let control = control::ControlPlane::new(tokens, control::ControlLimits::default());
        let door = frontdoor::FrontDoor::new(&mut net, control, engines);
        let address = serve::wait_for_address(&mut net);
        report_ready(&info, Some((address, frontdoor::PORT)));
        serve::forever(net, door);
    }

    report_ready(&info, None);
    arch::idle()
}

/// The ready line (README, "Serial protocol"): boot cost, memory, and where the node serves.
fn report_ready(info: &boot::BootInfo, serving: Option<(smoltcp::wire::Ipv4Cidr, u16)>) {
    use core::fmt::Write;
    let frames = mm::frame_stats();
    let heap = mm::heap_stats();
    let mut line = alloc::format!(
        "PAPPUS READY boot_ticks={} tick_hz={} mem_total={} mem_free={} heap_total={} heap_used={} cpus={}",
        time::ticks().saturating_sub(info.entry_ticks),
        time::ticks_per_second(),
        frames.total * 4096,
        frames.free * 4096,
        heap.total,
        heap.used,
        arch::cpu_count()
    );
    if let Some(ticks) = info.loader_ticks {
        let _ = write!(line, " loader_ticks={ticks}");
    }
    if let Some((address, port)) = serving {
        let _ = write!(line, " ip={address} port={port}");
    }
    console::println(format_args!("{line}"));
}
