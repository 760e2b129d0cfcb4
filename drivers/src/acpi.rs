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
