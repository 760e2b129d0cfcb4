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
    /// Where the capability lies in configuration space (its message control is the upper half
    /// of the dword there).
    pub cap_offset: u8,
    /// Number of table entries (vectors).
    pub vectors: u16,
    /// BAR index and offset of the vector table.
    pub table_bar: u8,
    pub table_offset: u32,
    pub enabled: bool,
}

/// Message control bits, as they sit in the capability's first dword.
const MSIX_ENABLE: u32 = 1 << 31;
const MSIX_FUNCTION_MASK: u32 = 1 << 30;

/// The MSI-X capability of `function`, if it has one.
pub fn msix<C: ConfigurationAccess>(root: &PciRoot<C>, cam: &C, function: DeviceFunction) -> Option<Msix> {
    let cap = root.capabilities(function).find(|c| c.id == CAP_MSIX)?;
    // Message control is the capability's upper half-word; the table's BIR/offset dword follows.
    let control = cap.private_header;
    let table = cam.read_word(function, cap.offset.checked_add(4)?);
    Some(Msix {
        cap_offset: cap.offset,
        vectors: (control & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
        enabled: control & 0x8000 != 0,
    })
}

/// The physical address of `msix`'s vector table: its BAR's address plus the table's offset.
/// None if that BAR is not an assigned memory BAR.
pub fn msix_table_address<C: ConfigurationAccess>(cam: &C, function: DeviceFunction, msix: &Msix) -> Option<u64> {
    memory_bar_address(cam, function, msix.table_bar)?.checked_add(u64::from(msix.table_offset))
}

/// The address memory BAR `bar` of `function` holds, read without probing its size (the
/// device stays where it is); None for an I/O BAR, an unassigned one or a bad index.
pub fn memory_bar_address<C: ConfigurationAccess>(cam: &C, function: DeviceFunction, bar: u8) -> Option<u64> {
    if bar > 5 {
        return None;
    }
    let register = 0x10 + 4 * bar;
    let low = cam.read_word(function, register);
    if low & 1 != 0 {
        return None; // I/O space
    }
    let high = match (low >> 1) & 0b11 {
        0b10 if bar < 5 => cam.read_word(function, register + 4),
        0b10 => return None,
        _ => 0,
    };
    let address = (u64::from(high) << 32) | u64::from(low & !0xf);
    (address != 0).then_some(address)
}

/// Turns MSI-X on for `function`: enable set, function mask clear. From then on the function
/// signals through its vector table (an entry still masked, or a device vector left unset,
/// signals nothing) and never through INTx.
pub fn enable_msix<C: ConfigurationAccess>(cam: &mut C, function: DeviceFunction, msix: &Msix) {
    let first = cam.read_word(function, msix.cap_offset);
    // The ID and next-pointer bytes in the same dword are read-only: writing them back is a no-op.
    cam.write_word(function, msix.cap_offset, (first | MSIX_ENABLE) & !MSIX_FUNCTION_MASK);
}

/// What a device writes, and where, to raise an interrupt (an MSI or MSI-X message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// A function's MSI-X vector table: 16 bytes an entry (message address low and high, data,
/// vector control).
pub struct MsixTable {
    base: NonNull<u32>,
    vectors: u16,
}

// SAFETY: the table is device memory reached only through `&mut self`.
unsafe impl Send for MsixTable {}

impl MsixTable {
    /// # Safety
    /// `base` maps the function's vector table, `vectors` entries of 16 bytes, as device
    /// (uncached) memory, for as long as this value lives, and nothing else writes it.
    pub unsafe fn new(base: NonNull<u8>, vectors: u16) -> Self {
        Self { base: base.cast(), vectors }
    }

    /// Points entry `entry` at `message`, masked ([`set_masked`](Self::set_masked) opens it);
    /// false if the table has no such entry.
    pub fn route(&mut self, entry: u16, message: MsiMessage) -> bool {
        if entry >= self.vectors {
            return false;
        }
        self.write(entry, VECTOR_CONTROL, MASKED);
        self.write(entry, 0, message.address as u32);
        self.write(entry, 1, (message.address >> 32) as u32);
        self.write(entry, 2, message.data);
        true
    }

    /// Masks or unmasks entry `entry` (no-op for an entry the table lacks). While masked the
    /// function records a message it would send in its pending bits and sends it on unmasking:
    /// nothing raised meanwhile is lost.
    pub fn set_masked(&mut self, entry: u16, masked: bool) {
        if entry < self.vectors {
            self.write(entry, VECTOR_CONTROL, if masked { MASKED } else { 0 });
        }
    }

    fn write(&mut self, entry: u16, word: usize, value: u32) {
        // SAFETY: `entry` < `vectors` (the callers check) and `word` < 4: within the table that
        // `new`'s caller vouched for.
        unsafe { self.base.as_ptr().add(usize::from(entry) * 4 + word).write_volatile(value) };
    }
}

/// The vector control word of a table entry, and its mask bit.
const VECTOR_CONTROL: usize = 3;
const MASKED: u32 = 1;

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

#[cfg(test)]
mod tests {
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::RefCell;

    use super::*;
    use crate::net::virtio;

    /// One function's 256-byte configuration space, shared by the handles made from it.
    #[derive(Clone)]
    struct Fake(Rc<RefCell<[u32; 64]>>);

    impl ConfigurationAccess for Fake {
        fn read_word(&self, _: DeviceFunction, offset: u8) -> u32 {
            self.0.borrow()[usize::from(offset / 4)]
        }
        fn write_word(&mut self, _: DeviceFunction, offset: u8, data: u32) {
            self.0.borrow_mut()[usize::from(offset / 4)] = data;
        }
        unsafe fn unsafe_clone(&self) -> Self {
            self.clone()
        }
    }

    const F: DeviceFunction = DeviceFunction { bus: 0, device: 2, function: 0 };

    /// virtio-net as QEMU presents it: a 64-bit memory BAR 4 at 0xfe00_0000 holding the common
    /// configuration at 0 and the MSI-X table at 0x3000 (4 vectors), a 32-bit BAR 1, an I/O
    /// BAR 0; capabilities MSI-X (0x98, MSI-X off and function-masked) -> virtio common (0x84).
    fn nic() -> Fake {
        let mut s = [0u32; 64];
        s[1] = 1 << 20; // status: capability list
        s[0x10 / 4] = 0xc001; // BAR0: I/O
        s[0x14 / 4] = 0xfebf_1000; // BAR1: 32-bit memory
        s[0x20 / 4] = 0xfe00_000c; // BAR4: 64-bit prefetchable memory, low half
        s[0x24 / 4] = 0; // BAR5: its high half
        s[0x34 / 4] = 0x98; // first capability
        s[0x98 / 4] = (0x4003 << 16) | (0x84 << 8) | u32::from(CAP_MSIX); // 4 vectors, masked
        s[0x9c / 4] = 0x3000 | 4; // table in BAR4 at 0x3000
        s[0x84 / 4] = (1 << 24) | (16 << 16) | 0x09; // vendor cap: cfg_type 1, len 16, last
        s[0x88 / 4] = 4; // BAR4
        s[0x8c / 4] = 0; // offset 0
        Fake(Rc::new(RefCell::new(s)))
    }

    #[test]
    fn msix_capability_is_read_and_enabled_without_the_function_mask() {
        let cam = nic();
        let root = PciRoot::new(cam.clone());
        let msix = msix(&root, &cam, F).unwrap();
        assert_eq!(msix, Msix { cap_offset: 0x98, vectors: 4, table_bar: 4, table_offset: 0x3000, enabled: false });
        assert_eq!(msix_table_address(&cam, F, &msix), Some(0xfe00_3000));
        let mut writer = cam.clone();
        enable_msix(&mut writer, F, &msix);
        let first = cam.read_word(F, 0x98);
        assert_eq!(first >> 16, 0x8003, "enable set, function mask clear, table size kept");
        assert_eq!(first & 0xffff, (0x84 << 8) | u32::from(CAP_MSIX), "ID and next pointer written back as read");
        assert!(super::msix(&root, &cam, F).unwrap().enabled);
    }

    #[test]
    fn memory_bars_are_read_without_probing() {
        let cam = nic();
        assert_eq!(memory_bar_address(&cam, F, 0), None, "I/O BAR");
        assert_eq!(memory_bar_address(&cam, F, 1), Some(0xfebf_1000));
        assert_eq!(memory_bar_address(&cam, F, 2), None, "unassigned");
        cam.0.borrow_mut()[0x24 / 4] = 0x1;
        assert_eq!(memory_bar_address(&cam, F, 4), Some(0x1_fe00_0000), "64-bit: both halves");
        assert_eq!(memory_bar_address(&cam, F, 6), None, "no such BAR");
        cam.0.borrow_mut()[0x24 / 4] = 0xc; // BAR5 claiming to be the low half of a 64-bit BAR
        assert_eq!(memory_bar_address(&cam, F, 5), None, "a 64-bit BAR cannot start at the last slot");
    }

    #[test]
    fn virtio_common_configuration_is_found_through_its_vendor_capability() {
        let cam = nic();
        let root = PciRoot::new(cam.clone());
        assert_eq!(virtio::common_config_address(&root, &cam, F), Some(0xfe00_0000));
        cam.0.borrow_mut()[0x84 / 4] = (3 << 24) | (16 << 16) | 0x09; // cfg_type 3 (ISR) instead
        assert_eq!(virtio::common_config_address(&root, &cam, F), None);
    }

    #[test]
    fn msix_table_entries_are_written_masked_and_opened_on_demand() {
        let mut memory = vec![0xffff_ffffu32; 4 * 4];
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `memory` holds 4 entries and outlives `table`; nothing else writes it meanwhile.
        let mut table = unsafe { MsixTable::new(base, 4) };
        let message = MsiMessage { address: 0x1_fee0_1000, data: 0x30 };
        assert!(table.route(2, message));
        assert!(!table.route(4, message), "no entry 4");
        table.set_masked(7, false); // no entry: nothing written
        let entry = |m: &[u32], k: usize| [m[4 * k], m[4 * k + 1], m[4 * k + 2], m[4 * k + 3]];
        assert_eq!(entry(&memory, 2), [0xfee0_1000, 1, 0x30, 1]);
        table.set_masked(2, false);
        assert_eq!(entry(&memory, 2), [0xfee0_1000, 1, 0x30, 0]);
        table.set_masked(2, true);
        assert_eq!(entry(&memory, 2)[3], 1);
        assert!(
            memory.iter().enumerate().filter(|(i, _)| i / 4 != 2).all(|(_, &w)| w == 0xffff_ffff),
            "other entries untouched"
        );
    }

    #[test]
    fn a_queue_vector_is_set_on_the_selected_queue() {
        let mut memory = [0u16; 0x20];
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `memory` covers the structure's first 0x40 bytes and outlives `common`.
        let mut common = unsafe { virtio::CommonConfig::new(base) };
        assert!(common.set_queue_vector(1, 3), "plain memory keeps what was written");
        assert_eq!((memory[0x16 / 2], memory[0x1a / 2]), (1, 3), "queue_select, then queue_msix_vector");
    }
}
