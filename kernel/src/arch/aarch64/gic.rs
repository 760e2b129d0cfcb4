//! The Arm Generic Interrupt Controller, as the device tree describes it: GICv3 (distributor,
//! one redistributor per CPU, the CPU interface through ICC_* system registers) or GICv2
//! (distributor and a memory-mapped CPU interface).
//!
//! The kernel uses private interrupts only: the generic timer's PPI (each CPU its own) and one
//! SGI for wake-ups between CPUs. Devices are polled, so no SPI is routed. Every interrupt is
//! group 1 (non-secure) at one priority; the kernel runs with IRQs masked in PSTATE and takes
//! them only where it waits (see `mod.rs`: `wfi` wakes on a pending interrupt even while masked).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::percpu;

/// The SGI one CPU sends another to end its wait (the run queue's wake-up).
pub const SGI_WAKE: u32 = 0;
/// INTIDs 1020-1023 are special: nothing (more) to acknowledge.
const SPURIOUS: u32 = 1020;
/// The one priority every enabled interrupt has (lower is more urgent; any value below the
/// priority mask of 0xff is delivered).
const PRIORITY: u8 = 0x80;

// Distributor (both versions).
const GICD_CTLR: u64 = 0x0000;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ITARGETSR: u64 = 0x0800;
const GICD_SGIR: u64 = 0x0f00;
const GICD_CTLR_RWP: u32 = 1 << 31;
const SGIR_FILTER_SELF: u32 = 0b10 << 24;
/// GICv3 GICD_CTLR: affinity routing (ARE, bit 4) and group 1 (bit 1, EnableGrp1NS or, with
/// security disabled, EnableGrp1).
const GICD_CTLR_V3: u32 = (1 << 4) | (1 << 1);

// GICv3 redistributor: RD_base frame, then the SGI_base frame 64 KiB above it.
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = GICR_SGI_BASE + 0x0080;
const GICR_ISENABLER0: u64 = GICR_SGI_BASE + 0x0100;
const GICR_ICENABLER0: u64 = GICR_SGI_BASE + 0x0180;
const GICR_IPRIORITYR: u64 = GICR_SGI_BASE + 0x0400;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const TYPER_VLPIS: u64 = 1 << 1;
const TYPER_LAST: u64 = 1 << 4;

// GICv2 CPU interface.
const GICC_CTLR: u64 = 0x0000;
const GICC_PMR: u64 = 0x0004;
const GICC_BPR: u64 = 0x0008;
const GICC_IAR: u64 = 0x000c;
const GICC_EOIR: u64 = 0x0010;

/// 0: none (no GIC in the device tree), 2 or 3.
static VERSION: AtomicU8 = AtomicU8::new(0);
static DIST: AtomicU64 = AtomicU64::new(0);
/// GICv3: the redistributor region; GICv2: the CPU interface.
static CPU_REGION: AtomicU64 = AtomicU64::new(0);
static CPU_REGION_SIZE: AtomicU64 = AtomicU64::new(0);
/// The timer's INTID, enabled on every CPU.
static TIMER_INTID: AtomicU64 = AtomicU64::new(0);

/// Why the GIC could not be set up.
#[derive(Debug)]
pub enum Error {
    NoGic,
    /// No redistributor in the region has this MPIDR's affinity.
    NoRedistributor(u64),
    /// GICR_WAKER.ChildrenAsleep did not clear.
    RedistributorAsleep(u64),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NoGic => f.write_str("no GICv2 or GICv3 in the device tree"),
            Error::NoRedistributor(mpidr) => write!(f, "no redistributor for MPIDR {mpidr:#x}"),
            Error::RedistributorAsleep(mpidr) => write!(f, "the redistributor of MPIDR {mpidr:#x} stays asleep"),
        }
    }
}

fn read32(addr: u64) -> u32 {
    // SAFETY: callers pass addresses inside the GIC's register frames, mapped Device by `init`.
    unsafe { (addr as *const u32).read_volatile() }
}

fn write32(addr: u64, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

fn read64(addr: u64) -> u64 {
    // SAFETY: as in `read32` (GICR_TYPER is a 64-bit register).
    unsafe { (addr as *const u64).read_volatile() }
}

fn write8(addr: u64, value: u8) {
    // SAFETY: as in `read32` (the priority registers are byte-accessible).
    unsafe { (addr as *mut u8).write_volatile(value) }
}

/// The version in use: 0 (none), 2 or 3.
pub fn version() -> u8 {
    VERSION.load(Ordering::Acquire)
}

/// Sets up the distributor (boot CPU, once) and this CPU's part; `timer_intid` is the PPI the
/// generic timer raises.
pub fn init(timer_intid: u32) -> Result<(), Error> {
    let desc = super::boot::platform().gic.ok_or(Error::NoGic)?;
    let dist = super::map_mmio(desc.dist.0, desc.dist.1.max(0x1_0000)) as u64;
    let cpu = super::map_mmio(desc.cpu.0, desc.cpu.1.max(0x2000)) as u64;
    DIST.store(dist, Ordering::Relaxed);
    CPU_REGION.store(cpu, Ordering::Relaxed);
    CPU_REGION_SIZE.store(desc.cpu.1, Ordering::Relaxed);
    TIMER_INTID.store(u64::from(timer_intid), Ordering::Relaxed);
    match desc.version {
        3 => {
            write32(dist + GICD_CTLR, 0);
            wait_rwp(dist);
            write32(dist + GICD_CTLR, GICD_CTLR_V3);
            wait_rwp(dist);
        }
        _ => write32(dist + GICD_CTLR, 1),
    }
    VERSION.store(desc.version, Ordering::Release);
    init_cpu()
}

fn wait_rwp(dist: u64) {
    for _ in 0..1_000_000 {
        if read32(dist + GICD_CTLR) & GICD_CTLR_RWP == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Sets up this CPU's interface (and, on GICv3, its redistributor): the timer PPI and the
/// wake-up SGI enabled, every priority delivered. The per-CPU block must be installed.
pub fn init_cpu() -> Result<(), Error> {
    let this = percpu::current();
    let timer = TIMER_INTID.load(Ordering::Relaxed) as u32;
    match version() {
        3 => {
            let mpidr = this.mpidr.load(Ordering::Relaxed);
            let rd = find_redistributor(mpidr).ok_or(Error::NoRedistributor(mpidr))?;
            this.gic_cpu.store(rd, Ordering::Relaxed);
            write32(rd + GICR_WAKER, read32(rd + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
            let mut awake = false;
            for _ in 0..1_000_000 {
                if read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0 {
                    awake = true;
                    break;
                }
                core::hint::spin_loop();
            }
            if !awake {
                return Err(Error::RedistributorAsleep(mpidr));
            }
            write32(rd + GICR_ICENABLER0, u32::MAX);
            write32(rd + GICR_IGROUPR0, u32::MAX);
            for intid in [timer, SGI_WAKE] {
                write8(rd + GICR_IPRIORITYR + u64::from(intid), PRIORITY);
            }
            write32(rd + GICR_ISENABLER0, (1 << timer) | (1 << SGI_WAKE));
            // SAFETY: the GICv3 CPU interface's own registers: system-register access (SRE),
            // all priorities delivered, no preemption grouping, EOI both drops priority and
            // deactivates, group 1 on. Touches no memory.
            unsafe {
                core::arch::asm!(
                    "mrs {t}, icc_sre_el1",
                    "orr {t}, {t}, #1",
                    "msr icc_sre_el1, {t}",
                    "isb",
                    "msr icc_pmr_el1, {pmr}",
                    "msr icc_bpr1_el1, xzr",
                    "msr icc_ctlr_el1, xzr",
                    "mov {t}, #1",
                    "msr icc_igrpen1_el1, {t}",
                    "isb",
                    t = out(reg) _,
                    pmr = in(reg) 0xffu64,
                    options(nostack, nomem),
                );
            }
        }
        2 => {
            let dist = DIST.load(Ordering::Relaxed);
            let cpu = CPU_REGION.load(Ordering::Relaxed);
            // The first ITARGETSR registers are banked and read as this CPU's own mask.
            this.gic_cpu.store(u64::from(read32(dist + GICD_ITARGETSR) & 0xff), Ordering::Relaxed);
            for intid in [timer, SGI_WAKE] {
                write8(dist + GICD_IPRIORITYR + u64::from(intid), PRIORITY);
            }
            write32(dist + GICD_ISENABLER, (1 << timer) | (1 << SGI_WAKE));
            write32(cpu + GICC_PMR, 0xff);
            write32(cpu + GICC_BPR, 0);
            write32(cpu + GICC_CTLR, 1);
        }
        _ => return Err(Error::NoGic),
    }
    Ok(())
}

/// The redistributor whose GICR_TYPER affinity is `mpidr`'s (Aff3.Aff2.Aff1.Aff0 in bits 63:32).
fn find_redistributor(mpidr: u64) -> Option<u64> {
    let want = (mpidr & 0xff_ffff) | ((mpidr >> 32) & 0xff) << 24;
    let base = CPU_REGION.load(Ordering::Relaxed);
    let end = base + CPU_REGION_SIZE.load(Ordering::Relaxed);
    let mut rd = base;
    while rd + 0x2_0000 <= end {
        let typer = read64(rd + GICR_TYPER);
        if typer >> 32 == want {
            return Some(rd);
        }
        if typer & TYPER_LAST != 0 {
            return None;
        }
        rd += if typer & TYPER_VLPIS != 0 { 0x4_0000 } else { 0x2_0000 };
    }
    None
}

/// Acknowledges the highest-priority pending interrupt: its raw IAR value (pass it to [`eoi`];
/// GICv2 keeps the sending CPU of an SGI in bits 12:10), or `None` when nothing is pending.
pub fn ack() -> Option<u32> {
    let raw = match version() {
        3 => {
            let iar: u64;
            // SAFETY: reads ICC_IAR1_EL1 (acknowledges the interrupt); touches no memory.
            unsafe { core::arch::asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack, nomem)) };
            iar as u32
        }
        2 => read32(CPU_REGION.load(Ordering::Relaxed) + GICC_IAR),
        _ => return None,
    };
    (raw & 0x3ff < SPURIOUS).then_some(raw)
}

/// Ends the interrupt [`ack`] returned.
pub fn eoi(raw: u32) {
    match version() {
        3 => {
            // SAFETY: writes ICC_EOIR1_EL1 (priority drop and deactivation); touches no memory.
            unsafe { core::arch::asm!("msr icc_eoir1_el1, {}", in(reg) u64::from(raw), options(nostack, nomem)) };
        }
        2 => write32(CPU_REGION.load(Ordering::Relaxed) + GICC_EOIR, raw),
        _ => {}
    }
}

/// The INTID of a raw IAR value.
pub fn intid(raw: u32) -> u32 {
    raw & 0x3ff
}

/// Sends SGI `intid` to CPU `index` (whose GIC part is set up: its per-CPU block says where).
pub fn send_sgi(index: usize, intid: u32) {
    let Some(target) = percpu::of(index) else { return };
    match version() {
        3 => {
            let mpidr = target.mpidr.load(Ordering::Relaxed);
            let aff0 = mpidr & 0xff;
            if aff0 >= 16 {
                return; // not addressable by a target list (QEMU `virt` keeps Aff0 below 16)
            }
            let value = (u64::from(intid & 0xf) << 24)
                | (((mpidr >> 8) & 0xff) << 16)
                | (((mpidr >> 16) & 0xff) << 32)
                | (((mpidr >> 32) & 0xff) << 48)
                | (1 << aff0);
            // SAFETY: writes ICC_SGI1R_EL1, which raises the SGI at the target; touches no memory.
            unsafe {
                core::arch::asm!("dsb ishst", "msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack, nomem))
            };
        }
        2 => {
            let mask = target.gic_cpu.load(Ordering::Relaxed) & 0xff;
            // SAFETY: orders earlier stores (the work the SGI announces) before the MMIO write.
            unsafe { core::arch::asm!("dsb ishst", options(nostack, nomem)) };
            // To itself: TargetListFilter 0b10 ("the requesting CPU only"), since a uniprocessor
            // GICv2 reads its target masks as zero.
            let target = if index == percpu::current_index() { SGIR_FILTER_SELF } else { (mask as u32) << 16 };
            write32(DIST.load(Ordering::Relaxed) + GICD_SGIR, target | (intid & 0xf));
        }
        _ => {}
    }
}
