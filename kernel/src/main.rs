//! The Pappus kernel.
//!
//! Boot order: the architecture's entry code builds a [`boot::BootInfo`] and calls
//! [`kernel_main`], which brings up the console, the frame allocator, the architecture's own
//! state (page tables, traps, timers), the heap, and then either runs the self-tests (`test` on
//! the command line; the other CPUs parked for them, see `smp.rs`) or starts the other CPUs as
//! compute cores, reports ready and serves.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

// Unsafe code is fenced: denied at the crate root, allowed in the modules (or items) below
// that touch hardware or raw memory, each `unsafe` with its SAFETY comment. The rest of the
// kernel (the I/O loop, the front door, the control plane's glue, the dispatcher) is safe Rust.
#[allow(unsafe_code)] // the hardware layer: page tables, traps, MSRs and MMIO, per-CPU blocks, ring 3
mod arch;
mod boot;
mod boot_cell;
mod comm;
mod compute;
mod config;
mod console;
mod engines;
mod fleet;
mod frontdoor;
mod metrics;
#[allow(unsafe_code)] // frames and the kernel heap: raw memory
mod mm;
#[allow(unsafe_code)] // native sandboxes: their memory mapped, written and entered
mod native;
mod net;
mod node;
mod panic;
mod profile;
mod runtime;
#[allow(unsafe_code)] // boot self-tests that write raw frames and take expected faults
mod selftest;
mod serve;
mod smp;
mod time;
mod wall_events;

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
    let profile = cmdline.profile().unwrap_or_else(|e| {
        log::error!("{e}; the profiler stays off");
        None
    });
    for word in cmdline.unknown(&[]) {
        log::warn!("command line: unknown key `{word}` ignored");
    }

    mm::init_frames(&info);
    arch::init(&info);
    mm::init_heap();
    time::log_calibration();
    profile::init(profile);

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
        // The other CPUs, parked: the self-tests give them work.
        smp::start(&info);
        profile::add_cpus(arch::cpu_count());
        let passed = selftest::run_all(cmdline.selftest_filter());
        arch::exit(passed);
    }

    let config = config::read(&info);
    if let Some(mut net) = net::init(&info, &cmdline, &config.node) {
        // The `http` communication function's client, with the configuration's host table.
        let limits =
            pappus_fetch::FetchLimits { body_memory: pappus_http::MemoryGate(mm::heap_room_for), ..Default::default() };
        let http = comm::http::HttpComm::new(config.hosts, limits);
        let engines = engines::Engines::new().unwrap_or_else(|e| panic!("compute engines: {e}"));
        let dispatcher = start_compute(&info, &cmdline, config.node.compute_cores, engines);
        dispatcher.share_among(config.tenants.len());
        let limits = config::control_limits(&config.node, config.tenants.len(), dispatcher.cores().len());
        let control = control::ControlPlane::new(config.tenants, limits);
        let runtime = runtime::KernelRuntime::new(dispatcher, http);
        let door = frontdoor::FrontDoor::new(&mut net, config.operator);
        let max_image = control.limits().max_image_bytes;
        let fleet = fleet::settings(&cmdline, &config.node)
            .map(|(etcd, blobs)| fleet::FleetSync::new(&etcd, &blobs, max_image));
        let address = serve::wait_for_address(&mut net);
        report_ready(&info, Some((address, frontdoor::PORT)));
        node::Node::new(net, door, control, runtime, dispatcher, fleet).serve_forever();
    }

    // No network, so no dispatcher: the other CPUs are started and parked.
    smp::start(&info);
    profile::add_cpus(arch::cpu_count());
    report_ready(&info, None);
    arch::idle()
}

/// Starts the compute cores (`compute=N` on the command line, else `compute N` in the boot
/// configuration, else every CPU but this one) and the dispatcher that feeds them; with none,
/// this core runs instances between its I/O passes.
fn start_compute(
    info: &boot::BootInfo,
    cmdline: &CommandLine<'_>,
    configured: Option<usize>,
    engines: engines::Engines,
) -> &'static compute::Dispatcher {
    let wanted = cmdline
        .compute_cores()
        .unwrap_or_else(|e| {
            log::error!("{e}; ignored");
            None
        })
        .or(configured);
    // Every CPU starts; those without a role (past `compute`) halt in the executor's entry.
    let online = arch::start_cpus(info, usize::MAX, compute::executor);
    profile::add_cpus(online);
    let io = arch::cpu_index();
    let compute: alloc::vec::Vec<usize> = (0..online).filter(|&c| c != io).take(wanted.unwrap_or(usize::MAX)).collect();
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
