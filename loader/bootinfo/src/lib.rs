//! The boot-information block the UEFI loader (`loader/`) hands the Pappus kernel, shared by
//! both sides, and the loader's hardware-free logic: reading the kernel ELF into a load plan and
//! mapping UEFI memory types to e820 codes. `no_std`, no `unsafe`, unit-tested on the host.
//!
//! # The handoff (x86_64)
//!
//! The loader reads the kernel ELF (`pappus-kernel`, the same file QEMU boots with `-kernel`),
//! copies every `PT_LOAD` segment to its *physical* address (`p_paddr`, from 2 MiB up; the
//! zero-filled tail of `.bss` included), exits boot services and jumps to the physical address
//! in the kernel's ELF note named [`NOTE_NAME`] of type [`NOTE_ENTRY64`] (the ELF entry field
//! stays the PVH 32-bit entry). At that jump the CPU is in 64-bit long mode on the firmware's
//! identity-mapped page tables, interrupts off, and `rdi` holds the physical address of a
//! [`BootBlock`] below 4 GiB. Everything the block points at is below 4 GiB too.

#![no_std]
#![forbid(unsafe_code)]

pub mod elf;
mod le;
pub mod multiboot;

/// `BootBlock::magic`: "PAPPUSBI", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PAPPUSBI");
/// The block's layout version; the kernel refuses others.
pub const VERSION: u32 = 1;

/// The ELF note that carries the 64-bit entry's physical address (an 8-byte descriptor).
pub const NOTE_NAME: &[u8] = b"Pappus";
/// The note type of the 64-bit entry point.
pub const NOTE_ENTRY64: u32 = 1;
/// The note type of the 32-bit multiboot1 entry point (an 8-byte descriptor, like
/// [`NOTE_ENTRY64`]'s), which
/// `cargo xtask image` puts in the multiboot image's header ([`multiboot`]). The kernel ELF
/// carries no multiboot header itself: QEMU's `-kernel` would prefer it over PVH.
pub const NOTE_MULTIBOOT32: u32 = 2;

/// Where the loader found the kernel.
pub const SOURCE_DISK: u32 = 1;
pub const SOURCE_TFTP: u32 = 2;

/// The boot-information block. All addresses are physical; a zero address means "absent".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootBlock {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// `size_of::<BootBlock>()`, for a sanity check.
    pub size: u32,
    /// The memory map after `ExitBootServices`: `memmap_entries` [`MemoryRegion`]s, sorted,
    /// adjacent regions of one kind merged, kinds as e820 codes (see [`e820_kind`]).
    pub memmap_paddr: u64,
    pub memmap_entries: u64,
    /// The ACPI RSDP (ACPI 2.0 table preferred, else 1.0), from the UEFI configuration table.
    pub rsdp_paddr: u64,
    /// The kernel command line: `cmdline_len` bytes of UTF-8 followed by a NUL.
    pub cmdline_paddr: u64,
    pub cmdline_len: u64,
    /// The boot configuration file (`pappus.conf`, docs/configuration.md), as read.
    pub config_paddr: u64,
    pub config_len: u64,
    /// The time stamp counter read at the loader's entry (0 when unknown).
    pub loader_entry_tsc: u64,
    /// [`SOURCE_DISK`] or [`SOURCE_TFTP`].
    pub source: u32,
    pub reserved: u32,
}

/// One memory map entry, laid out like PVH's `hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    /// An e820 code: 1 usable, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 unusable.
    pub kind: u32,
    pub reserved: u32,
}

pub const E820_USABLE: u32 = 1;
pub const E820_RESERVED: u32 = 2;
pub const E820_ACPI_RECLAIMABLE: u32 = 3;
pub const E820_ACPI_NVS: u32 = 4;
pub const E820_UNUSABLE: u32 = 5;

/// The e820 code for a UEFI memory type, as the kernel sees memory after `ExitBootServices`.
///
/// Loader and boot-services memory is free once boot services are gone: the kernel reserves its
/// own image and the configuration file itself, and copies the block, the memory map and the
/// command line before it allocates anything.
pub fn e820_kind(uefi_type: u32) -> u32 {
    match uefi_type {
        // LOADER_CODE, LOADER_DATA, BOOT_SERVICES_CODE, BOOT_SERVICES_DATA, CONVENTIONAL
        1..=4 | 7 => E820_USABLE,
        8 => E820_UNUSABLE,
        9 => E820_ACPI_RECLAIMABLE,
        10 => E820_ACPI_NVS,
        // reserved, runtime services code/data, MMIO, MMIO port space, PAL code, persistent,
        // unaccepted and anything newer: left alone.
        _ => E820_RESERVED,
    }
}

/// Appends `region` to `map[..*len]`, merging it into the last entry when it continues it with
/// the same kind; returns `false` when `map` is full.
pub fn push_region(map: &mut [MemoryRegion], len: &mut usize, region: MemoryRegion) -> bool {
    if region.size == 0 {
        return true;
    }
    if let Some(last) = len.checked_sub(1).map(|i| &mut map[i])
        && last.kind == region.kind
        && last.addr.checked_add(last.size) == Some(region.addr)
    {
        last.size += region.size;
        return true;
    }
    let Some(slot) = map.get_mut(*len) else { return false };
    *slot = region;
    *len += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layout_is_stable() {
        assert_eq!(core::mem::size_of::<BootBlock>(), 88);
        assert_eq!(core::mem::size_of::<MemoryRegion>(), 24);
        assert_eq!(&MAGIC.to_le_bytes(), b"PAPPUSBI");
    }

    #[test]
    fn memory_types() {
        assert_eq!(e820_kind(7), E820_USABLE);
        assert_eq!(e820_kind(3), E820_USABLE);
        assert_eq!(e820_kind(5), E820_RESERVED); // runtime services code
        assert_eq!(e820_kind(9), E820_ACPI_RECLAIMABLE);
        assert_eq!(e820_kind(10), E820_ACPI_NVS);
        assert_eq!(e820_kind(0x8000_0000), E820_RESERVED);
    }

    #[test]
    fn regions_merge() {
        let r = |addr, size, kind| MemoryRegion { addr, size, kind, reserved: 0 };
        let mut map = [MemoryRegion::default(); 2];
        let mut len = 0;
        assert!(push_region(&mut map, &mut len, r(0, 0x1000, 1)));
        assert!(push_region(&mut map, &mut len, r(0x1000, 0x1000, 1)));
        assert!(push_region(&mut map, &mut len, r(0x3000, 0x1000, 1)));
        assert!(push_region(&mut map, &mut len, r(0x4000, 0, 2)));
        assert_eq!(len, 2);
        assert_eq!(map[0], r(0, 0x2000, 1));
        assert!(!push_region(&mut map, &mut len, r(0x5000, 0x1000, 2)));
    }
}
