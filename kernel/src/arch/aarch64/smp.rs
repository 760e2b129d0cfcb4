//! Secondary CPUs: listed in the device tree's `/cpus`, started one at a time with PSCI
//! `CPU_ON` (through `hvc` or `smc`, as `/psci`'s `method` says), each with its own per-CPU
//! block (TPIDR_EL1), stack block with guard pages, vectors, timer and GIC part.
//!
//! A secondary starts at [`ap_entry`] at EL1 (or EL2, then dropped to EL1 as the boot CPU is)
//! with the MMU off and `x0` = its index. It turns the MMU on over the kernel's own tables
//! with the boot CPU's TCR/SCTLR (from [`LAUNCH`], cleaned to the point of coherency, since
//! the CPU reads it uncached), takes its stack and calls [`ap_main`], which sets up the rest,
//! checks in and runs the entry it was given.
//!
//! Stacks: each secondary's 512 KiB block (the layout of `stacks.rs`, so the vectors' overflow
//! check and emergency stack work unchanged) lies at [`stacks::ap_block`] in a virtual region
//! of its own, mapped page by page from fresh frames, with its two guard pages left unmapped.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aarch64_cpu::registers::{CNTKCTL_EL1, Writeable};

use super::paging::{self, Mapping};
use super::{boot, gic, percpu, stacks, timer};
use crate::boot::BootInfo;
use crate::smp::MAX_CPUS;

/// PSCI 0.2+ CPU_ON (SMC64 function id).
const PSCI_CPU_ON: u64 = 0xc400_0003;
/// How long a secondary may take from CPU_ON to checking in (generous: under TCG on a busy
/// host a virtual CPU's thread may wait for a host core).
const CHECK_IN_MICROS: u64 = 2_000_000;

/// CPUs online (the boot CPU included).
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// What the next secondary needs before its MMU is on, written by the boot CPU for one
/// secondary at a time. 64-byte aligned so that one cache line holds it.
#[repr(C, align(64))]
struct Launch {
    ttbr0: AtomicU64,
    tcr: AtomicU64,
    sctlr: AtomicU64,
    stack_top: AtomicU64,
    entry: AtomicU64,
    /// The index of the secondary that checked in last (the boot CPU waits for it).
    checked_in: AtomicU64,
}

static LAUNCH: Launch = Launch {
    ttbr0: AtomicU64::new(0),
    tcr: AtomicU64::new(0),
    sctlr: AtomicU64::new(0),
    stack_top: AtomicU64::new(0),
    entry: AtomicU64::new(0),
    checked_in: AtomicU64::new(0),
};

global_asm!(
    include_str!("smp.S"),
    launch = sym LAUNCH,
    mair = const boot::MAIR,
    vectors = sym super::traps::exception_vectors,
    main = sym ap_main,
);

unsafe extern "C" {
    fn ap_entry();
}

/// CPUs online.
pub fn cpus_online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// Starts every other CPU of the device tree, at most `max` CPUs in all; each runs
/// `entry(index)`. Returns how many CPUs are online.
pub fn start_cpus(_info: &BootInfo, max: usize, entry: fn(usize) -> !) -> usize {
    let platform = boot::platform();
    let me = percpu::current().mpidr.load(Ordering::Relaxed);
    let others = platform.cpus[..platform.cpu_count].iter().copied().filter(|&m| m != me);
    let wanted = max.min(MAX_CPUS).saturating_sub(1);
    if gic::version() == 0 {
        log::warn!("smp: no GIC, so no wake-ups between CPUs; 1 CPU online");
        return 1;
    }
    let ttbr0: u64;
    let tcr: u64;
    let sctlr: u64;
    // SAFETY: reads this CPU's translation settings; no side effects.
    unsafe {
        core::arch::asm!(
            "mrs {}, ttbr0_el1", "mrs {}, tcr_el1", "mrs {}, sctlr_el1",
            out(reg) ttbr0, out(reg) tcr, out(reg) sctlr, options(nomem, nostack)
        );
    }
    LAUNCH.ttbr0.store(ttbr0, Ordering::Relaxed);
    LAUNCH.tcr.store(tcr, Ordering::Relaxed);
    LAUNCH.sctlr.store(sctlr, Ordering::Relaxed);
    LAUNCH.entry.store(entry as usize as u64, Ordering::Relaxed);
    for mpidr in others.take(wanted) {
        let index = ONLINE.load(Ordering::Relaxed);
        if let Err(e) = map_stack(index) {
            log::error!("smp: no stack for CPU {index} ({e}); not starting more CPUs");
            break;
        }
        match start_one(index, mpidr) {
            Ok(()) => ONLINE.store(index + 1, Ordering::Release),
            Err(e) => {
                log::warn!("smp: the CPU with MPIDR {mpidr:#x} did not start: {e}");
                break; // its stack is in use if it comes up late: start no other on it
            }
        }
    }
    let n = cpus_online();
    log::info!(
        "smp: {n} CPU{} online (MPIDRs {:x?}), PSCI CPU_ON via {}",
        if n == 1 { "" } else { "s" },
        (0..n).filter_map(|i| percpu::of(i).map(|c| c.mpidr.load(Ordering::Relaxed))).collect::<alloc::vec::Vec<_>>(),
        if platform.psci_smc { "smc" } else { "hvc" }
    );
    n
}

/// Maps CPU `index`'s stack block from fresh frames, guard pages left out.
fn map_stack(index: usize) -> Result<(), &'static str> {
    let block = stacks::ap_block(index);
    let guards = stacks::guards_of(block);
    for page in (block..block + stacks::BLOCK as u64).step_by(paging::PAGE as usize) {
        if guards.contains(&page) || paging::translate(page).is_some() {
            continue;
        }
        let frame = crate::mm::alloc_frame().ok_or("out of frames")?;
        paging::map_page(page, frame, Mapping::DATA).map_err(|_| "mapping failed")?;
    }
    Ok(())
}

fn start_one(index: usize, mpidr: u64) -> Result<(), &'static str> {
    LAUNCH.stack_top.store(stacks::ap_block(index) + stacks::BLOCK as u64, Ordering::Relaxed);
    LAUNCH.checked_in.store(0, Ordering::Relaxed);
    percpu::of(index).ok_or("no per-CPU block")?.mpidr.store(mpidr, Ordering::Relaxed);
    // The secondary reads LAUNCH with its MMU (so its caches) off: clean the line to the point
    // of coherency.
    // SAFETY: cache maintenance by address on LAUNCH (mapped); changes no data.
    unsafe {
        core::arch::asm!("dsb ish", "dc cvac, {}", "dsb ish", in(reg) &raw const LAUNCH as u64, options(nostack));
    }
    let status = psci_cpu_on(mpidr, ap_entry as *const () as u64, index as u64);
    if status != 0 {
        return Err(match status as i64 {
            -2 => "PSCI CPU_ON: invalid parameters",
            -3 => "PSCI CPU_ON: denied",
            -4 => "PSCI CPU_ON: already on",
            -5 => "PSCI CPU_ON: on pending",
            -6 => "PSCI CPU_ON: internal failure",
            _ => "PSCI CPU_ON failed",
        });
    }
    let done = || LAUNCH.checked_in.load(Ordering::Acquire) == index as u64;
    if crate::smp::wait_until(CHECK_IN_MICROS, done) { Ok(()) } else { Err("it never checked in") }
}

fn psci_cpu_on(mpidr: u64, entry: u64, context: u64) -> u64 {
    let mut x0 = PSCI_CPU_ON;
    if boot::platform().psci_smc {
        // SAFETY: a PSCI call (SMCCC: x0-x17 may be clobbered, declared); the new CPU starts at
        // `ap_entry`, which needs nothing but LAUNCH.
        unsafe {
            core::arch::asm!("smc #0", inout("x0") x0, in("x1") mpidr, in("x2") entry, in("x3") context,
                clobber_abi("C"), options(nostack))
        };
    } else {
        // SAFETY: as above, through the hypervisor conduit.
        unsafe {
            core::arch::asm!("hvc #0", inout("x0") x0, in("x1") mpidr, in("x2") entry, in("x3") context,
                clobber_abi("C"), options(nostack))
        };
    }
    x0
}

/// A secondary's first Rust: per-CPU block, timer, GIC; check in; run the entry.
extern "C" fn ap_main(index: usize) -> ! {
    let mpidr = percpu::of(index).map_or(0, |c| c.mpidr.load(Ordering::Relaxed));
    percpu::install(index, mpidr);
    super::usermode::init();
    CNTKCTL_EL1.set((10 << 4) | (1 << 2));
    timer::disarm();
    if let Err(e) = gic::init_cpu() {
        panic!("cpu {index}: GIC: {e}");
    }
    let entry = LAUNCH.entry.load(Ordering::Relaxed);
    LAUNCH.checked_in.store(index as u64, Ordering::Release);
    gic::send_sgi(0, gic::SGI_WAKE); // the boot CPU waits for this check-in
    // SAFETY: `start_cpus` stored a `fn(usize) -> !` here before starting any CPU.
    let entry: fn(usize) -> ! = unsafe { core::mem::transmute::<usize, fn(usize) -> !>(entry as usize) };
    entry(index)
}
