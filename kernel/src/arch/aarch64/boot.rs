//! The aarch64 boot entry: QEMU `virt` (`-kernel` with an ELF), or any loader that enters the
//! image at `_start` at EL1 or EL2 with the MMU off and `x0` pointing at a device tree.
//!
//! The assembly below reads CNTVCT_EL0 first (the boot benchmark's zero), parks every CPU but
//! the boot CPU, drops from EL2 to EL1 if need be, enables FP/SIMD (the target uses NEON),
//! turns the MMU on over early identity-mapped tables (1 GiB blocks: the first GiB Device,
//! the next three Normal write-back), installs the exception vectors, sets up the boot stack,
//! zeroes `.bss` and calls [`boot_entry`]. With the MMU off every data access is Device memory,
//! where unaligned accesses fault, so no Rust runs before the MMU is on. Rust then reads the
//! device tree and later replaces the early tables with its own (see `paging.rs`).
//!
//! QEMU puts the device tree of a non-Linux ELF at the start of RAM (0x4000_0000) and does not
//! set `x0`; a Linux-style loader passes it in `x0`. Both are tried. QEMU does so only when the
//! tree fits below the image, and `virt`'s tree is 1 MiB: hence the image's link address of
//! 0x4020_0000 (at 0x4008_0000 QEMU silently leaves the tree out).

use core::arch::global_asm;

use drivers::pci::{BarWindow, EcamWindow};
use fdt::Fdt;
use kcore::cmdline::CommandLine;
use kcore::memmap::{MemoryMap, Region, RegionKind};

use super::stacks;
use crate::boot::{BootInfo, PhysRange};
use crate::boot_cell::BootCell;

/// MAIR_EL1: attr0 Device-nGnRnE, attr1 Normal write-back RW-allocate, attr2 Normal
/// non-cacheable, attr3 Device-nGnRE.
pub const MAIR: u64 = 0x0444_ff00;
/// TCR_EL1 for the early tables: T0SZ = 25 (39-bit VA, walks start at level 1), 4 KiB granule,
/// walks inner/outer write-back, inner shareable, TTBR1 walks disabled (EPD1). IPS is filled in
/// from ID_AA64MMFR0_EL1.PARange.
const EARLY_TCR: u64 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23);
/// A 1 GiB block: Device-nGnRnE, access flag, execute-never at EL1 and EL0.
const EARLY_DEVICE_BLOCK: u64 = 0x1 | (1 << 10) | (1 << 53) | (1 << 54);
/// A 1 GiB block: Normal write-back, inner shareable, access flag, EL1 RWX, EL0 execute-never.
const EARLY_NORMAL_BLOCK: u64 = 0x1 | (1 << 2) | (3 << 8) | (1 << 10) | (1 << 54);
/// SCTLR_EL1 bits set: M (MMU), C (data cache), SA (stack alignment check), I (instruction cache).
const SCTLR_SET: u64 = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);
/// SCTLR_EL1 bits cleared: A (alignment faults), WXN, E0E and EE (little-endian data).
const SCTLR_CLEAR: u64 = (1 << 1) | (1 << 19) | (1 << 24) | (1 << 25);

global_asm!(
    include_str!("boot.S"),
    mair = const MAIR,
    tcr = const EARLY_TCR,
    sctlr_set = const SCTLR_SET,
    sctlr_clear = const SCTLR_CLEAR,
    device = const EARLY_DEVICE_BLOCK,
    normal = const EARLY_NORMAL_BLOCK,
    vectors = sym super::traps::exception_vectors,
    stacks = sym stacks::BOOT_STACKS,
    stack_size = const stacks::BLOCK,
    entry = sym boot_entry,
);

/// Where QEMU puts the device tree of a non-Linux ELF kernel: the start of RAM.
const QEMU_DTB: u64 = 0x4000_0000;
const FDT_MAGIC: u32 = 0xd00d_feed;
const CMDLINE_MAX: usize = 4096;
/// RAM ranges kept for the page tables (the memory map proper has the reservations cut out).
const MAX_RAM: usize = 16;

/// The command line, copied out of the device tree before that memory becomes usable RAM.
static CMDLINE: BootCell<[u8; CMDLINE_MAX]> = BootCell::new([0; CMDLINE_MAX]);

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

/// What the device tree says that later code needs (set once, before `kernel_main`).
pub struct Platform {
    /// RAM as the `/memory` nodes describe it, whole.
    pub ram: [(u64, u64); MAX_RAM],
    pub ram_count: usize,
    /// `hvc` or `smc`, from `/psci`'s `method`.
    pub psci_smc: bool,
    pub dtb: (u64, u64),
    /// The PCIe host bridge (`pci-host-ecam-generic`): its ECAM window and 32-bit MMIO window.
    pub pci: Option<(EcamWindow, Option<BarWindow>)>,
    /// The interrupt controller (the node marked `interrupt-controller` with a GIC `compatible`).
    pub gic: Option<GicDesc>,
    /// The generic timer's virtual-timer PPI as an INTID (the third entry of `/timer`'s
    /// `interrupts`: secure, non-secure physical, virtual, hypervisor), 27 when absent.
    pub timer_intid: u32,
    /// The CPUs of `/cpus` (`device_type = "cpu"`): their MPIDR affinity (`reg`), in tree order.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
}

/// The most CPUs read from the device tree (as many as the kernel starts).
pub const MAX_CPUS: usize = crate::smp::MAX_CPUS;

/// A GIC as the device tree describes it.
#[derive(Clone, Copy, Debug)]
pub struct GicDesc {
    /// 2 (`arm,cortex-a15-gic`, `arm,gic-400`, ...) or 3 (`arm,gic-v3`).
    pub version: u8,
    /// The distributor's registers.
    pub dist: (u64, u64),
    /// GICv3: the (first) redistributor region; GICv2: the CPU interface.
    pub cpu: (u64, u64),
}

static PLATFORM: BootCell<Platform> = BootCell::new(Platform {
    ram: [(0, 0); MAX_RAM],
    ram_count: 0,
    psci_smc: false,
    dtb: (0, 0),
    pci: None,
    gic: None,
    timer_intid: VIRTUAL_TIMER_INTID,
    cpus: [0; MAX_CPUS],
    cpu_count: 0,
});

/// The virtual timer's PPI on every Arm platform following the SBSA (PPI 11).
const VIRTUAL_TIMER_INTID: u32 = 27;

impl Platform {
    pub fn ram(&self) -> &[(u64, u64)] {
        &self.ram[..self.ram_count]
    }
}

/// The device tree's findings (read-only after boot).
pub fn platform() -> &'static Platform {
    // SAFETY: written only by `boot_entry` before anything else runs, read-only afterwards.
    unsafe { &*PLATFORM.get() }
}

/// Finds the device tree: `x0`, else the start of RAM.
fn find_dtb(x0: u64) -> Option<u64> {
    [x0, QEMU_DTB].into_iter().find(|&addr| {
        // SAFETY: the early tables map 1-4 GiB as Normal memory; a candidate outside that range
        // is not read. The header's first word is 4-aligned as the format requires.
        addr % 8 == 0
            && ((1 << 30)..(4 << 30) - 64).contains(&addr)
            && u32::from_be(unsafe { (addr as *const u32).read_volatile() }) == FDT_MAGIC
    })
}

extern "C" fn boot_entry(x0: u64, entry_ticks: u64) -> ! {
    let dtb = find_dtb(x0).unwrap_or_else(|| panic!("no device tree: x0={x0:#x} and {QEMU_DTB:#x} hold no FDT magic"));
    // SAFETY: `dtb` holds a device tree header (magic checked); the tree lies in early-mapped RAM.
    let fdt = unsafe { Fdt::from_ptr(dtb as *const u8) }.unwrap_or_else(|e| panic!("device tree at {dtb:#x}: {e:?}"));
    let dtb_end = dtb + fdt.total_size() as u64;

    // SAFETY: runs once, on the boot CPU, before anything reads PLATFORM.
    let platform = unsafe { &mut *PLATFORM.get() };
    platform.dtb = (dtb, dtb_end);
    // Memory nodes are named `memory@<unit>` (checking the name first keeps the walk cheap).
    let is_memory = |n: &fdt::node::FdtNode<'_, '_>| {
        n.name.starts_with("memory") && n.property("device_type").and_then(|p| p.as_str()) == Some("memory")
    };
    for node in fdt.all_nodes().filter(is_memory) {
        for reg in node.reg().into_iter().flatten() {
            let start = reg.starting_address as u64;
            let end = start + reg.size.unwrap_or(0) as u64;
            if end > start && platform.ram_count < MAX_RAM {
                platform.ram[platform.ram_count] = (start, end);
                platform.ram_count += 1;
            }
        }
    }
    platform.psci_smc =
        fdt.find_node("/psci").and_then(|n| n.property("method")).and_then(|p| p.as_str()) == Some("smc");
    let raw = platform.ram().iter().map(|&(start, end)| Region { start, end, kind: RegionKind::Usable });
    let mut memory = MemoryMap::from_firmware(raw).unwrap_or_else(|e| panic!("device tree memory: {e}"));

    // The device tree, the kernel image and everything below it (firmware, boot data), the
    // reservation block and /reserved-memory.
    let (image_start, image_end) = kernel_image();
    let reserve = |memory: &mut MemoryMap, start: u64, end: u64| {
        memory.reserve(start, end).unwrap_or_else(|e| panic!("reserving {start:#x}..{end:#x}: {e}"));
    };
    reserve(&mut memory, dtb, dtb_end);
    reserve(&mut memory, 0, image_end.max(image_start));
    for r in fdt.memory_reservations() {
        let start = r.address() as u64;
        reserve(&mut memory, start, start + r.size() as u64);
    }
    if let Some(node) = fdt.find_node("/reserved-memory") {
        for reg in node.children().filter_map(|c| c.reg()).flatten() {
            let start = reg.starting_address as u64;
            reserve(&mut memory, start, start + reg.size.unwrap_or(0) as u64);
        }
    }

    let chosen = fdt.find_node("/chosen");
    let bootargs = chosen.and_then(|n| n.property("bootargs")).and_then(|p| p.as_str());
    let cmdline = copy_cmdline(bootargs.unwrap_or(""));
    // The boot configuration: a Linux-style loader's initrd (`linux,initrd-start`/`-end`).
    let initrd = |name| chosen.and_then(|n| n.property(name)).and_then(|p| cells(p.value));
    let config = match (initrd("linux,initrd-start"), initrd("linux,initrd-end")) {
        (Some(start), Some(end)) if end > start => Some(PhysRange { start, len: end - start }),
        _ => None,
    };
    // QEMU passes `-initrd` only to Linux images, so for this ELF kernel `cargo xtask run` and
    // the tests load the file with `-device loader` and say where on the command line.
    let config = config.or_else(|| match CommandLine::new(cmdline).boot_config() {
        Some(Ok((start, len))) => Some(PhysRange { start, len }),
        Some(Err(bad)) => {
            log::error!("command line: bootconfig={bad} is not ADDR,LEN; no boot configuration");
            None
        }
        None => None,
    });
    if let Some(c) = config {
        reserve(&mut memory, c.start, c.start + c.len);
    }
    platform.pci = pci_host(&fdt);
    platform.gic = gic(&fdt);
    platform.timer_intid = timer_intid(&fdt).unwrap_or(VIRTUAL_TIMER_INTID);
    for cpu in fdt.find_node("/cpus").into_iter().flat_map(|n| n.children()) {
        if cpu.property("device_type").and_then(|p| p.as_str()) != Some("cpu") || platform.cpu_count == MAX_CPUS {
            continue;
        }
        if let Some(mpidr) = cpu.property("reg").and_then(|p| cells(p.value)) {
            platform.cpus[platform.cpu_count] = mpidr;
            platform.cpu_count += 1;
        }
    }

    crate::time::set_boot_ticks(entry_ticks);
    crate::kernel_main(BootInfo {
        protocol: "dtb",
        cmdline,
        memory,
        entry_ticks,
        loader_ticks: None,
        config,
        rsdp: None,
    })
}

/// A property of one or two big-endian cells (4 or 8 bytes) as a number.
fn cells(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => Some(u64::from(u32::from_be_bytes(value.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(value.try_into().ok()?)),
        _ => None,
    }
}

/// The GIC: the first interrupt controller whose `compatible` names a GICv3 or GICv2, with its
/// first two `reg` entries (distributor; redistributors or CPU interface).
fn gic(fdt: &Fdt<'_>) -> Option<GicDesc> {
    const V3: &[&str] = &["arm,gic-v3"];
    const V2: &[&str] =
        &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic", "arm,cortex-a7-gic", "arm,arm11mp-gic"];
    fdt.all_nodes().find_map(|n| {
        n.property("interrupt-controller")?;
        let compatible = n.compatible()?;
        let version = compatible.all().find_map(|c| {
            if V3.contains(&c) {
                Some(3)
            } else if V2.contains(&c) {
                Some(2)
            } else {
                None
            }
        })?;
        let mut reg = n.reg()?;
        let mut next = || reg.next().map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64));
        Some(GicDesc { version, dist: next()?, cpu: next()? })
    })
}

/// The virtual timer's INTID from `/timer` (`arm,armv8-timer`): the third 3-cell entry of
/// `interrupts` (type 1 = PPI, number, flags); PPIs are INTIDs 16-31.
fn timer_intid(fdt: &Fdt<'_>) -> Option<u32> {
    let node = fdt
        .all_nodes()
        .find(|n| n.compatible().is_some_and(|c| c.all().any(|c| c == "arm,armv8-timer" || c == "arm,armv7-timer")))?;
    let value = node.property("interrupts")?.value;
    let cell = |i: usize| value.get(i * 4..i * 4 + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (kind, number) = (cell(6)?, cell(7)?);
    (kind == 1 && number < 16).then_some(number + 16)
}

/// The first `pci-host-ecam-generic` node: `reg` is the ECAM window (of the buses in
/// `bus-range`), and the first 32-bit memory entry of `ranges` the window for BARs. `ranges`
/// entries are (PCI address: 3 cells, CPU address: the root's `#address-cells`, size: the
/// node's `#size-cells`); the PCI address's first cell says the space (0b10: 32-bit memory).
fn pci_host(fdt: &Fdt<'_>) -> Option<(EcamWindow, Option<BarWindow>)> {
    let node =
        fdt.all_nodes().find(|n| n.compatible().is_some_and(|c| c.all().any(|c| c == "pci-host-ecam-generic")))?;
    let reg = node.reg()?.next()?;
    let (bus_start, bus_end) = match node.property("bus-range").map(|p| p.value) {
        Some(v) if v.len() == 8 => {
            (u32::from_be_bytes(v[..4].try_into().ok()?) as u8, u32::from_be_bytes(v[4..].try_into().ok()?) as u8)
        }
        _ => (0, 255),
    };
    // The window must not claim more buses than `reg` holds (1 MiB per bus).
    let buses = (reg.size.unwrap_or(0) as u64 >> 20).min(256) as u16;
    if buses == 0 {
        return None;
    }
    let bus_end = bus_end.min((u16::from(bus_start) + buses - 1).min(255) as u8);
    let ecam = EcamWindow { phys: reg.starting_address as u64, segment: 0, bus_start, bus_end };

    let parent_cells = fdt.root().cell_sizes().address_cells;
    let size_cells = node.cell_sizes().size_cells;
    let entry_cells = 3 + parent_cells + size_cells;
    let ranges = node.property("ranges").map_or(&[][..], |p| p.value);
    let read = |cells: &[u32]| cells.iter().fold(0u64, |a, &c| a << 32 | u64::from(c));
    let mut bars = None;
    let mut entry = [0u32; 16];
    let mut at = 0;
    while entry_cells <= entry.len() && at + entry_cells * 4 <= ranges.len() {
        for (i, cell) in entry[..entry_cells].iter_mut().enumerate() {
            let b = &ranges[at + i * 4..at + i * 4 + 4];
            *cell = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        at += entry_cells * 4;
        let space = (entry[0] >> 24) & 3;
        if space == 0b10 && bars.is_none() {
            bars = Some(BarWindow {
                pci: read(&entry[1..3]),
                cpu: read(&entry[3..3 + parent_cells]),
                size: read(&entry[3 + parent_cells..entry_cells]),
            });
        }
    }
    Some((ecam, bars))
}

/// The kernel image's physical extent, from the linker script.
pub fn kernel_image() -> (u64, u64) {
    // Linker-defined symbols; only their addresses are used.
    (&raw const __kernel_phys_start as u64, &raw const __kernel_phys_end as u64)
}

fn copy_cmdline(src: &str) -> &'static str {
    // SAFETY: runs once, on the boot CPU, before anything else reads CMDLINE.
    let buf = unsafe { &mut *CMDLINE.get() };
    let mut len = src.len().min(CMDLINE_MAX);
    while !src.is_char_boundary(len) {
        len -= 1;
    }
    buf[..len].copy_from_slice(&src.as_bytes()[..len]);
    core::str::from_utf8(&buf[..len]).unwrap_or("")
}
