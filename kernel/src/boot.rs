//! What every boot protocol hands the kernel, in one shape.

use kcore::memmap::MemoryMap;

pub struct BootInfo {
    /// The protocol that started us (`pvh`, `dtb` …), for the boot log.
    pub protocol: &'static str,
    pub cmdline: &'static str,
    /// Usable RAM, with the kernel image and boot data already carved out.
    pub memory: MemoryMap,
    /// The tick counter read by the very first instructions of the kernel.
    pub entry_ticks: u64,
    /// The ACPI root pointer, where the loader knows it.
    #[allow(dead_code)] // read by the ACPI/SMP work
    pub rsdp: Option<u64>,
}
