//! PCI configuration space access and bus enumeration.
//!
//! Enumeration, BARs and capabilities come from `virtio-drivers`' PCI module (`PciRoot`), which
//! is generic over how configuration space is reached; this module supplies the access
//! mechanisms and the one bus type both architectures use, [`ConfigSpace`]:
//! - [`Ecam`]: PCIe's memory-mapped configuration space (4 KiB per function), over a window
//!   that ACPI's MCFG (x86_64) or the device tree's `pci-host-ecam-generic` node (aarch64)
//!   describes. Unlike `virtio-drivers`' `MmioCam`, which needs all 256 buses mapped, it covers
//!   exactly the window's bus range and reads all-ones outside it.
//! - [`PortCam`]: the legacy x86 ports 0xCF8/0xCFC, where there is no MCFG.
//!
//! It also walks capabilities (MSI-X) and programs BARs that no firmware assigned.

use core::fmt;
use core::ptr::NonNull;

pub use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, CapabilityInfo, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, MemoryBarType,
    MmioCam, PciError, PciRoot,
};

/// An ECAM window: bus `bus_start` at physical `phys`, one MiB per bus up to `bus_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamWindow {
    pub phys: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

impl EcamWindow {
    /// Bytes the window spans (1 MiB per bus).
    pub fn size(&self) -> u64 {
        (u64::from(self.bus_end.saturating_sub(self.bus_start)) + 1) << 20
    }
}

impl fmt::Display for EcamWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x}..{:#x} (segment {}, buses {}-{})",
            self.phys,
            self.phys + self.size(),
            self.segment,
            self.bus_start,
            self.bus_end
        )
    }
}

/// PCIe enhanced configuration access over a mapped [`EcamWindow`].
#[derive(Debug)]
pub struct Ecam {
    base: NonNull<u32>,
    bus_start: u8,
    bus_end: u8,
}

// SAFETY: `Ecam` only performs volatile MMIO accesses through its pointer; the constructor's
// contract makes the window exclusively the PCI code's.
unsafe impl Send for Ecam {}

impl Ecam {
    /// # Safety
    /// `base` must map `window` (all `window.size()` bytes) as device memory for as long as the
    /// `Ecam` and its clones live, and nothing else may write configuration space meanwhile.
    pub unsafe fn new(base: NonNull<u8>, window: &EcamWindow) -> Self {
        assert!((base.as_ptr() as usize).is_multiple_of(4096), "ECAM window must be page-aligned");
        Self { base: base.cast(), bus_start: window.bus_start, bus_end: window.bus_end }
    }

    /// The dword index of `register_offset` of `function`, if the window covers it.
    fn index(&self, function: DeviceFunction, register_offset: u8) -> Option<usize> {
        if !(self.bus_start..=self.bus_end).contains(&function.bus) || !function.valid() {
            return None;
        }
        let offset = usize::from(function.bus - self.bus_start) << 20
            | usize::from(function.device) << 15
            | usize::from(function.function) << 12
            | usize::from(register_offset & 0xfc);
        Some(offset / 4)
    }
}

impl ConfigurationAccess for Ecam {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        match self.index(function, register_offset) {
            // SAFETY: the index lies inside the mapped window (checked against its bus range).
            Some(i) => unsafe { self.base.as_ptr().add(i).read_volatile() },
            None => u32::MAX, // what a missing device reads
        }
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        if let Some(i) = self.index(function, register_offset) {
            // SAFETY: as above; the caller owns the device it configures.
            unsafe { self.base.as_ptr().add(i).write_volatile(data) };
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self { base: self.base, bus_start: self.bus_start, bus_end: self.bus_end }
    }
}

/// The configuration access the kernel uses, whichever mechanism the platform offers.
#[derive(Debug)]
pub enum ConfigSpace {
    Ecam(Ecam),
    #[cfg(target_arch = "x86_64")]
    Ports(PortCam),
}

impl ConfigurationAccess for ConfigSpace {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        match self {
            Self::Ecam(c) => c.read_word(function, register_offset),
            #[cfg(target_arch = "x86_64")]
            Self::Ports(c) => c.read_word(function, register_offset),
        }
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        match self {
            Self::Ecam(c) => c.write_word(function, register_offset, data),
            #[cfg(target_arch = "x86_64")]
            Self::Ports(c) => c.write_word(function, register_offset, data),
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        match self {
            // SAFETY: the caller's contract (read-only use of the clone) passes through.
            Self::Ecam(c) => Self::Ecam(unsafe { c.unsafe_clone() }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Self::Ports(c) => Self::Ports(unsafe { c.unsafe_clone() }),
        }
    }
}

/// Configuration mechanism #1: an address written to port 0xCF8 selects a dword that port 0xCFC
/// then reads or writes. Reaches the first 256 bytes of every function, which is all that
/// enumeration and virtio's capabilities need.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub struct PortCam {
    _private: (),
}

#[cfg(target_arch = "x86_64")]
impl PortCam {
    /// # Safety
    /// Only one `PortCam` may be in use at a time (the address/data port pair is shared state),
    /// and the platform must have PCI configuration ports.
    pub const unsafe fn new() -> Self {
        Self { _private: () }
    }

    fn select(function: DeviceFunction, register_offset: u8) {
        let address = 0x8000_0000
            | u32::from(function.bus) << 16
            | u32::from(function.device) << 11
            | u32::from(function.function) << 8
            | u32::from(register_offset & 0xfc);
        // SAFETY: writing CONFIG_ADDRESS only selects a register (constructor contract).
        unsafe { core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") address, options(nomem, nostack)) };
    }
}

#[cfg(target_arch = "x86_64")]
impl ConfigurationAccess for PortCam {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        Self::select(function, register_offset);
        let value: u32;
        // SAFETY: reading CONFIG_DATA after selecting a register.
        unsafe { core::arch::asm!("in eax, dx", in("dx") 0xcfcu16, out("eax") value, options(nomem, nostack)) };
        value
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        Self::select(function, register_offset);
        // SAFETY: writing CONFIG_DATA after selecting a register; the caller owns the device.
        unsafe { core::arch::asm!("out dx, eax", in("dx") 0xcfcu16, in("eax") data, options(nomem, nostack)) };
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self { _private: () }
    }
}

/// Every function on every bus reachable from bus 0 through PCI-to-PCI bridges. `cam` reads
/// the bridges' bus numbers (a read-only clone of the root's access).
pub fn scan<C: ConfigurationAccess>(
    root: &PciRoot<C>,
    cam: &C,
    mut visit: impl FnMut(DeviceFunction, &DeviceFunctionInfo),
) {
    let mut buses = [false; 256];
    let mut pending: [u8; 256] = [0; 256];
    let mut todo = 1; // bus 0
    buses[0] = true;
    while todo > 0 {
        todo -= 1;
        let bus = pending[todo];
        for (function, info) in root.enumerate_bus(bus) {
            if info.header_type == HeaderType::PciPciBridge {
                // Secondary bus number: byte 1 of the dword at 0x18.
                let secondary = (cam.read_word(function, 0x18) >> 8) as u8;
                if !buses[usize::from(secondary)] {
                    buses[usize::from(secondary)] = true;
                    pending[todo] = secondary;
                    todo += 1;
                }
            }
            visit(function, &info);
        }
    }
}

/// Capability ID of MSI-X.
pub const CAP_MSIX: u8 = 0x11;

/// A short name for a capability ID, for the boot log.
pub fn capability_name(id: u8) -> &'static str {
    match id {
        0x01 => "power management",
        0x05 => "MSI",
        0x09 => "vendor",
        0x10 => "PCI Express",
        CAP_MSIX => "MSI-X",
        _ => "other",
    }
}

/// What a function's MSI-X capability says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    /// Number of table entries (vectors).
    pub vectors: u16,
    /// BAR index and offset of the vector table.
    pub table_bar: u8,
    pub table_offset: u32,
    pub enabled: bool,
}

/// The MSI-X capability of `function`, if it has one.
pub fn msix<C: ConfigurationAccess>(root: &PciRoot<C>, cam: &C, function: DeviceFunction) -> Option<Msix> {
    let cap = root.capabilities(function).find(|c| c.id == CAP_MSIX)?;
    // Message control is the capability's upper half-word; the table's BIR/offset dword follows.
    let control = cap.private_header;
    let table = cam.read_word(function, cap.offset.checked_add(4)?);
    Some(Msix {
        vectors: (control & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
        enabled: control & 0x8000 != 0,
    })
}

/// A 32-bit memory window (from the host bridge's `ranges`) to place unassigned BARs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarWindow {
    /// The window's start as the bus sees it (what a BAR holds) and as the CPU sees it.
    pub pci: u64,
    pub cpu: u64,
    pub size: u64,
}

/// Bump allocation in a [`BarWindow`].
#[derive(Debug)]
pub struct BarAllocator {
    window: BarWindow,
    next: u64,
}

impl BarAllocator {
    pub fn new(window: BarWindow) -> Self {
        Self { window, next: window.pci }
    }

    /// A naturally aligned bus address for `size` bytes (a power of two), if the window has room.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        let size = size.max(16).checked_next_power_of_two()?;
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        (end <= self.window.pci + self.window.size && end <= 1 << 32).then(|| {
            self.next = end;
            start
        })
    }
}

/// Programs every memory BAR of `function` that reads back as address 0 (unassigned: no
/// firmware ran) with an address from `bars`. Returns how many it assigned; I/O BARs are left
/// alone (the kernel only uses memory space).
pub fn assign_bars<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    function: DeviceFunction,
    bars: &mut BarAllocator,
) -> Result<usize, PciError> {
    let mut assigned = 0;
    for (index, bar) in root.bars(function)?.into_iter().enumerate() {
        let Some(BarInfo::Memory { address_type, address: 0, size, .. }) = bar else { continue };
        if size == 0 {
            continue;
        }
        let Some(address) = bars.alloc(size) else {
            log::warn!("pci: {function} BAR{index} ({size:#x} bytes) does not fit the MMIO window");
            continue;
        };
        let index = index as u8;
        match address_type {
            MemoryBarType::Width64 => root.set_bar_64(function, index, address),
            _ => root.set_bar_32(function, index, address as u32),
        }
        log::debug!("pci: {function} BAR{index} at {address:#x} ({size:#x} bytes)");
        assigned += 1;
    }
    Ok(assigned)
}

/// What the platform says about its PCI host bridge.
#[derive(Clone, Copy, Debug, Default)]
pub struct PciHost {
    /// The ECAM window, if the firmware describes one.
    pub ecam: Option<EcamWindow>,
    /// Where the description came from (`ACPI MCFG`, `device tree`), for the log.
    pub source: &'static str,
    /// A 32-bit memory window for BARs no firmware assigned (aarch64 `virt` without firmware).
    pub bar_window: Option<BarWindow>,
}
