//! What every boot protocol hands the kernel, in one shape.

use kcore::memmap::MemoryMap;

pub struct BootInfo {
    /// The protocol that started us (`pvh`, `dtb` …), for the boot log.
    pub protocol: &'static str,
    pub cmdline: &'static str,
    /// Usable RAM, with the kernel image and boot data already carved out.
    pub memory: MemoryMap,
    /// The tick counter at the start of the boot path the ready line measures from: the kernel's
    /// very first instructions, or the loader's entry where a loader reports it (UEFI).
    pub entry_ticks: u64,
    /// Ticks the loader spent before the kernel's first instruction, where it reports its entry.
    pub loader_ticks: Option<u64>,
    /// The boot configuration file (tenants and their tokens), as a physical range the memory
    /// map already excludes: a PVH module (QEMU `-initrd`) today, the UEFI loader's block later.
    pub config: Option<PhysRange>,
    /// The ACPI root pointer, where the loader knows it.
    #[allow(dead_code)] // read by the ACPI/SMP work
    pub rsdp: Option<u64>,
}

/// A physical address range `[start, start + len)`.
#[derive(Clone, Copy, Debug)]
pub struct PhysRange {
    pub start: u64,
    pub len: u64,
}
