//! The Pappus kernel.
//!
//! Boot order: the architecture's entry code builds a [`boot::BootInfo`] and calls
//! [`kernel_main`], which brings up the console, the frame allocator, the architecture's own
//! state (page tables, traps, timers), the heap, and then either runs the self-tests
//! (`test` on the command line) or reports ready and idles.

#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod boot_cell;
mod compute;
mod config;
mod console;
mod engines;
mod frontdoor;
mod mm;
#[cfg(target_arch = "x86_64")]
mod native;
mod net;
mod panic;
mod selftest;
mod serve;
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

    if cmdline.test_mode() {
        let passed = selftest::run_all(cmdline.selftest_filter());
        arch::exit(passed);
    }

    if let Some(mut net) = net::init(&info, &cmdline) {
        let tokens = config::tenants(&info);
        let engines = engines::Engines::new().unwrap_or_else(|e| panic!("compute engines: {e}"));
        let dispatcher = start_compute(&info, &cmdline, engines);
        let control = control::ControlPlane::new(tokens, control::ControlLimits::default());
        let door = frontdoor::FrontDoor::new(&mut net, control, compute::Host::new(dispatcher));
        let address = serve::wait_for_address(&mut net);
        report_ready(&info, Some((address, frontdoor::PORT)));
        serve::forever(net, door);
    }

    report_ready(&info, None);
    arch::idle()
}

/// Starts the compute cores (`compute=N`, default every CPU but this one) and the dispatcher
/// that feeds them; with none, this core runs instances between its I/O passes.
fn start_compute(
    info: &boot::BootInfo,
    cmdline: &CommandLine<'_>,
    engines: engines::Engines,
) -> &'static compute::Dispatcher {
    let wanted = cmdline.compute_cores().unwrap_or_else(|e| {
        log::error!("{e}; using every CPU");
        None
    });
    let online = arch::start_cpus(info, wanted.map_or(usize::MAX, |n| n + 1), compute::executor);
    let io = arch::cpu_index();
    let compute: alloc::vec::Vec<usize> = (0..online).filter(|&c| c != io).collect();
    if compute.is_empty() {
        log::info!("dispatcher: single-core mode, cpu {io} does I/O and runs functions");
    } else {
        log::info!("dispatcher: cpu {io} does I/O, {} compute core(s) {compute:?}", compute.len());
    }
    compute::Dispatcher::init(engines, io, &compute)
}

/// The ready line (README, "Serial protocol"): boot cost, memory, and where the node serves.
fn report_ready(info: &boot::BootInfo, serving: Option<(smoltcp::wire::Ipv4Cidr, u16)>) {
    use core::fmt::Write;
    let frames = mm::frame_stats();
    let heap = mm::heap_stats();
    let mut line = alloc::format!(
        "PAPPUS READY boot_ticks={} tick_hz={} mem_total={} mem_free={} heap_total={} heap_used={}",
        time::ticks().saturating_sub(info.entry_ticks),
        time::ticks_per_second(),
        frames.total * 4096,
        frames.free * 4096,
        heap.total,
        heap.used
    );
    if let Some(ticks) = info.loader_ticks {
        let _ = write!(line, " loader_ticks={ticks}");
    }
    if let Some((address, port)) = serving {
        let _ = write!(line, " ip={address} port={port}");
    }
    console::println(format_args!("{line}"));
}
