//! Just enough ACPI to find PCIe's ECAM window: RSDP → XSDT (or RSDT) → MCFG, each table's
//! signature, length and checksum checked before its contents are believed.
//!
//! The tables are reached through a caller-supplied mapping function (physical address and
//! length to a readable pointer), so this module knows nothing of the kernel's page tables.

use core::fmt;

use crate::pci::EcamWindow;

/// The standard table header's size.
const HEADER: usize = 36;
/// No table we read is larger than this; a bigger length is taken as corruption.
const MAX_TABLE: u32 = 1 << 20;
/// MCFG: the header, 8 reserved bytes, then 16-byte allocation entries.
const MCFG_ENTRIES: usize = HEADER + 8;
const MCFG_ENTRY: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    BadRsdp,
    /// A table whose signature, length or checksum is wrong.
    BadTable {
        signature: [u8; 4],
        phys: u64,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRsdp => write!(f, "the RSDP's signature or checksum is wrong"),
            Self::BadTable { signature, phys } => {
                write!(f, "table {} at {phys:#x} is malformed", core::str::from_utf8(signature).unwrap_or("????"))
            }
        }
    }
}

/// Reads physical memory: `map(phys, len)` returns a pointer to `len` readable bytes at `phys`.
struct Tables<F> {
    map: F,
}

impl<F: Fn(u64, usize) -> *const u8> Tables<F> {
    /// `len` bytes at `phys`.
    ///
    /// # Safety
    /// The mapping function's contract: the pointer it returns is readable for `len` bytes, and
    /// the memory is firmware tables that nothing writes while we read them.
    unsafe fn bytes(&self, phys: u64, len: usize) -> &[u8] {
        // SAFETY: the function's contract (above).
        unsafe { core::slice::from_raw_parts((self.map)(phys, len), len) }
    }

    /// A whole table at `phys`, checked: its length is sane, its checksum adds up, and its
    /// signature is `want` (any, if `None`). Returns the signature and the table's bytes.
    ///
    /// # Safety
    /// As [`Self::bytes`].
    unsafe fn table(&self, phys: u64, want: Option<&[u8; 4]>) -> Result<([u8; 4], &[u8]), AcpiError> {
        // SAFETY: the caller's contract.
        let header = unsafe { self.bytes(phys, HEADER) };
        let signature: [u8; 4] = header[..4].try_into().unwrap_or_default();
        let bad = AcpiError::BadTable { signature, phys };
        if want.is_some_and(|w| *w != signature) {
            return Err(bad);
        }
        let len = u32_at(header, 4);
        if !(HEADER as u32..=MAX_TABLE).contains(&len) {
            return Err(bad);
        }
        // SAFETY: the caller's contract.
        let table = unsafe { self.bytes(phys, len as usize) };
        if checksum(table) != 0 {
            return Err(bad);
        }
        Ok((signature, table))
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn checksum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// The first ECAM window of PCI segment 0 that the MCFG table describes; `Ok(None)` when the
/// platform has no MCFG (or no segment-0 entry).
///
/// # Safety
/// `map(phys, len)` must return a pointer readable for `len` bytes at physical `phys` for every
/// address the firmware's tables name, and `rsdp` must be the firmware's RSDP address.
pub unsafe fn find_ecam(rsdp: u64, map: impl Fn(u64, usize) -> *const u8) -> Result<Option<EcamWindow>, AcpiError> {
    let tables = Tables { map };
    // SAFETY: the caller's contract: the RSDP (20 bytes for revision 0, 36 after).
    let head = unsafe { tables.bytes(rsdp, 20) };
    if &head[..8] != b"RSD PTR " || checksum(head) != 0 {
        return Err(AcpiError::BadRsdp);
    }
    let revision = head[15];
    let (root, entry_size) = if revision >= 2 {
        // SAFETY: as above; revision 2 RSDPs are 36 bytes.
        let full = unsafe { tables.bytes(rsdp, 36) };
        if checksum(full) != 0 {
            return Err(AcpiError::BadRsdp);
        }
        match u64_at(full, 24) {
            0 => (u64::from(u32_at(head, 16)), 4),
            xsdt => (xsdt, 8),
        }
    } else {
        (u64::from(u32_at(head, 16)), 4)
    };
    let want: &[u8; 4] = if entry_size == 8 { b"XSDT" } else { b"RSDT" };
    // SAFETY: the caller's contract covers the root table it names.
    let (_, root_table) = unsafe { tables.table(root, Some(want)) }?;
    let entries = &root_table[HEADER..];
    for entry in entries.chunks_exact(entry_size) {
        let phys = if entry_size == 8 { u64_at(entry, 0) } else { u64::from(u32_at(entry, 0)) };
        // SAFETY: the caller's contract covers every table the root names.
        let header = unsafe { tables.bytes(phys, 4) };
        if header != b"MCFG" {
            continue;
        }
        // SAFETY: as above.
        let (_, mcfg) = unsafe { tables.table(phys, Some(b"MCFG")) }?;
        let allocations = mcfg.get(MCFG_ENTRIES..).unwrap_or_default();
        let window = allocations.chunks_exact(MCFG_ENTRY).find_map(|a| {
            let base = u64_at(a, 0);
            let segment = u16::from_le_bytes([a[8], a[9]]);
            let (bus_start, bus_end) = (a[10], a[11]);
            (segment == 0 && bus_end >= bus_start && base != 0).then(|| EcamWindow {
                // The MCFG base is where bus 0 would be; the window starts at its first bus.
                phys: base + (u64::from(bus_start) << 20),
                segment,
                bus_start,
                bus_end,
            })
        });
        return Ok(window);
    }
    Ok(None)
}

/// Where legacy-BIOS operating systems look for the RSDP when no loader passes it (multiboot1):
/// the first KiB of the EBDA (its segment is the BIOS data area's word at 0x40E), then the BIOS
/// ROM area 0xE0000..0xFFFFF, on 16-byte boundaries. A candidate counts when its signature and
/// checksum are right (and, from revision 2, the extended checksum over 36 bytes).
///
/// # Safety
/// `map(phys, len)` must return a pointer readable for `len` bytes at physical `phys` for every
/// range inside the first MiB.
pub unsafe fn find_rsdp(map: impl Fn(u64, usize) -> *const u8) -> Option<u64> {
    let tables = Tables { map };
    // SAFETY: the caller's contract; the BIOS data area is in the first MiB.
    let bda = unsafe { tables.bytes(0x40e, 2) };
    let ebda = u64::from(u16::from_le_bytes([bda[0], bda[1]])) << 4;
    // An EBDA outside conventional memory (or none: 0) is not searched.
    let ebda = (0x500..=0xA0000 - 1024).contains(&ebda).then_some((ebda, 1024));
    for (start, len) in ebda.into_iter().chain([(0xE0000, 0x20000)]) {
        // SAFETY: the caller's contract: both areas lie in the first MiB.
        let area = unsafe { tables.bytes(start, len) };
        for at in (0..len).step_by(16) {
            let candidate = &area[at..len.min(at + 36)];
            if candidate.len() < 20 || &candidate[..8] != b"RSD PTR " || checksum(&candidate[..20]) != 0 {
                continue;
            }
            if candidate[15] >= 2 && (candidate.len() < 36 || checksum(candidate) != 0) {
                continue;
            }
            return Some(start + at as u64);
        }
    }
    None
}

#[cfg(test)]
mod rsdp_tests {
    use alloc::{vec, vec::Vec};

    use super::*;

    /// The first MiB, with an EBDA at 0x9FC00.
    fn low_memory() -> Vec<u8> {
        let mut mem = vec![0u8; 0x10_0000];
        mem[0x40e..0x410].copy_from_slice(&(0x9fc0u16).to_le_bytes());
        mem
    }

    fn put_rsdp(mem: &mut [u8], at: usize, revision: u8) {
        let len = if revision >= 2 { 36 } else { 20 };
        let r = &mut mem[at..at + len];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(b"BOCHS ");
        r[15] = revision;
        r[16..20].copy_from_slice(&0x7fe_1234u32.to_le_bytes());
        r[8] = 0u8.wrapping_sub(checksum(&r[..20]));
        if revision >= 2 {
            r[20..24].copy_from_slice(&36u32.to_le_bytes());
            r[32] = 0u8.wrapping_sub(checksum(r));
        }
    }

    fn scan(mem: &[u8]) -> Option<u64> {
        // SAFETY: `mem` is the whole first MiB.
        unsafe { find_rsdp(|phys, _| mem[phys as usize..].as_ptr()) }
    }

    #[test]
    fn finds_the_rsdp_in_the_bios_area() {
        let mut mem = low_memory();
        assert_eq!(scan(&mem), None);
        put_rsdp(&mut mem, 0xf5a40, 0);
        assert_eq!(scan(&mem), Some(0xf5a40));
        // The EBDA comes first.
        put_rsdp(&mut mem, 0x9fc00 + 0x40, 2);
        assert_eq!(scan(&mem), Some(0x9fc40));
    }

    #[test]
    fn skips_bad_candidates() {
        let mut mem = low_memory();
        put_rsdp(&mut mem, 0xe0008, 0); // not on a 16-byte boundary
        put_rsdp(&mut mem, 0xe1000, 0);
        mem[0xe1000 + 12] ^= 0xff; // checksum broken
        put_rsdp(&mut mem, 0xe2000, 2);
        mem[0xe2000 + 30] ^= 0xff; // extended checksum broken
        assert_eq!(scan(&mem), None);
        mem[0xffff0..0xffff8].copy_from_slice(b"RSD PTR "); // the last 16 bytes cannot hold one
        assert_eq!(scan(&mem), None);
        put_rsdp(&mut mem, 0xfffe0, 0);
        assert_eq!(scan(&mem), Some(0xfffe0));
        // An EBDA pointer outside conventional memory is ignored, the ROM area still searched.
        mem[0x40e..0x410].copy_from_slice(&0xf000u16.to_le_bytes());
        assert_eq!(scan(&mem), Some(0xfffe0));
    }
}
