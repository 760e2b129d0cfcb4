//! Just enough ACPI to find PCIe's ECAM window (MCFG) and the processors (MADT): RSDP → XSDT
//! (or RSDT) → the table, each table's signature, length and checksum checked before its
//! contents are believed.
//!
//! The tables are reached through a caller-supplied mapping function (physical address and
//! length to a readable pointer), so this module knows nothing of the kernel's page tables.

use alloc::vec::Vec;
use core::fmt;

use crate::pci::EcamWindow;

/// The standard table header's size.
const HEADER: usize = 36;
/// No table we read is larger than this; a bigger length is taken as corruption.
const MAX_TABLE: u32 = 1 << 20;
/// MCFG: the header, 8 reserved bytes, then 16-byte allocation entries.
const MCFG_ENTRIES: usize = HEADER + 8;
const MCFG_ENTRY: usize = 16;
/// MADT: the header, the local APIC address (u32), flags (u32), then variable-length entries.
const MADT_ENTRIES: usize = HEADER + 8;
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_APIC_OVERRIDE: u8 = 5;
const MADT_LOCAL_X2APIC: u8 = 9;
/// Processor flags (Local APIC and x2APIC entries): usable now, or may be enabled at run time.
const MADT_ENABLED: u32 = 1 << 0;
const MADT_ONLINE_CAPABLE: u32 = 1 << 1;

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

/// Finds the table with `signature` through the RSDP's root table (XSDT, or RSDT for ACPI 1.0),
/// checks it, and hands its bytes to `parse`; `Ok(None)` when the root names no such table.
///
/// # Safety
/// As [`find_ecam`].
unsafe fn with_table<F, R>(
    rsdp: u64,
    map: F,
    signature: &[u8; 4],
    parse: impl FnOnce(&[u8]) -> R,
) -> Result<Option<R>, AcpiError>
where
    F: Fn(u64, usize) -> *const u8,
{
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
        if header != signature {
            continue;
        }
        // SAFETY: as above.
        let (_, table) = unsafe { tables.table(phys, Some(signature)) }?;
        return Ok(Some(parse(table)));
    }
    Ok(None)
}

/// The first ECAM window of PCI segment 0 that the MCFG table describes; `Ok(None)` when the
/// platform has no MCFG (or no segment-0 entry).
///
/// # Safety
/// `map(phys, len)` must return a pointer readable for `len` bytes at physical `phys` for every
/// address the firmware's tables name, and `rsdp` must be the firmware's RSDP address.
pub unsafe fn find_ecam(rsdp: u64, map: impl Fn(u64, usize) -> *const u8) -> Result<Option<EcamWindow>, AcpiError> {
    // SAFETY: the caller's contract, passed on.
    let found = unsafe { with_table(rsdp, map, b"MCFG", parse_mcfg) }?;
    Ok(found.flatten())
}

fn parse_mcfg(mcfg: &[u8]) -> Option<EcamWindow> {
    let allocations = mcfg.get(MCFG_ENTRIES..).unwrap_or_default();
    allocations.chunks_exact(MCFG_ENTRY).find_map(|a| {
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
    })
}

/// One processor the MADT lists as usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadtCpu {
    /// Its local APIC id (x2APIC id for an x2APIC entry).
    pub apic_id: u32,
    /// The ACPI processor UID that ties it to the namespace.
    pub acpi_uid: u32,
    /// Enabled now (`false`: not enabled, but online-capable: the firmware lets the OS start it).
    pub enabled: bool,
    /// Listed by an x2APIC entry (ids above 254 only fit there).
    pub x2apic: bool,
}

/// What the MADT says about the processors and their interrupt controllers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Madt {
    /// The local APIC's physical address (the 32-bit field, or the 64-bit override entry).
    pub local_apic_phys: u64,
    /// Processors that are enabled or online-capable, in table order, each APIC id once.
    /// Disabled ones (neither flag) are left out.
    pub cpus: Vec<MadtCpu>,
    /// Entries that were cut short or make no sense (skipped, for the log).
    pub malformed: usize,
}

/// The processors listed in the MADT (signature `APIC`); `Ok(None)` when there is no MADT.
///
/// # Safety
/// As [`find_ecam`].
pub unsafe fn find_madt(rsdp: u64, map: impl Fn(u64, usize) -> *const u8) -> Result<Option<Madt>, AcpiError> {
    // SAFETY: the caller's contract, passed on.
    unsafe { with_table(rsdp, map, b"APIC", parse_madt) }
}

/// Parses a whole, checked MADT (header included).
pub fn parse_madt(madt: &[u8]) -> Madt {
    let mut out = Madt {
        local_apic_phys: madt.get(HEADER..HEADER + 4).map_or(0, |b| u64::from(u32_at(b, 0))),
        cpus: Vec::new(),
        malformed: 0,
    };
    let mut rest = madt.get(MADT_ENTRIES..).unwrap_or_default();
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], usize::from(rest[1]));
        if len < 2 || len > rest.len() {
            out.malformed += 1;
            break; // a zero or overlong length: nothing after it can be trusted
        }
        let entry = &rest[..len];
        rest = &rest[len..];
        let cpu = match (kind, len) {
            (MADT_LOCAL_APIC, 8..) => {
                let flags = u32_at(entry, 4);
                // 0xff is the broadcast id: no processor has it.
                (entry[3] != 0xff).then_some((u32::from(entry[3]), u32::from(entry[2]), flags, false))
            }
            (MADT_LOCAL_X2APIC, 16..) => Some((u32_at(entry, 4), u32_at(entry, 12), u32_at(entry, 8), true)),
            (MADT_LOCAL_APIC_OVERRIDE, 12..) => {
                out.local_apic_phys = u64_at(entry, 4);
                None
            }
            (MADT_LOCAL_APIC | MADT_LOCAL_X2APIC | MADT_LOCAL_APIC_OVERRIDE, _) => {
                out.malformed += 1;
                None
            }
            _ => None, // I/O APICs, overrides, NMI sources: not needed to start processors
        };
        let Some((apic_id, acpi_uid, flags, x2apic)) = cpu else { continue };
        if flags & (MADT_ENABLED | MADT_ONLINE_CAPABLE) == 0 {
            continue; // disabled: the firmware says it cannot be used
        }
        if out.cpus.iter().any(|c| c.apic_id == apic_id) {
            continue; // listed twice (an xAPIC and an x2APIC entry for one processor)
        }
        out.cpus.push(MadtCpu { apic_id, acpi_uid, enabled: flags & MADT_ENABLED != 0, x2apic });
    }
    out
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
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;

    /// Firmware memory for the tests: "physical" addresses are offsets into one buffer.
    struct Memory(Vec<u8>);

    impl Memory {
        fn new() -> Self {
            Memory(vec![0; 0x4000])
        }

        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }

        fn map(&self) -> impl Fn(u64, usize) -> *const u8 + '_ {
            move |phys, len| {
                assert!(phys as usize + len <= self.0.len(), "read past the test memory at {phys:#x}+{len}");
                // SAFETY: in bounds, checked above.
                unsafe { self.0.as_ptr().add(phys as usize) }
            }
        }
    }

    /// A table with a correct header (length, checksum) around `body`.
    fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; HEADER];
        t[..4].copy_from_slice(signature);
        t[8] = 1; // revision
        t[10..16].copy_from_slice(b"PAPPUS");
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = 0u8.wrapping_sub(checksum(&t));
        t
    }

    /// An ACPI 2.0 RSDP naming an XSDT at `xsdt`, or a 1.0 one naming an RSDT at `rsdt`.
    fn rsdp(xsdt: Option<u64>, rsdt: u32) -> Vec<u8> {
        let mut r = vec![0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(b"PAPPUS");
        r[15] = if xsdt.is_some() { 2 } else { 0 };
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.unwrap_or(0).to_le_bytes());
        r[8] = 0u8.wrapping_sub(checksum(&r[..20]));
        r[32] = 0u8.wrapping_sub(checksum(&r));
        r
    }

    fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![MADT_LOCAL_APIC, 8, uid, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn x2apic(id: u32, flags: u32, uid: u32) -> Vec<u8> {
        let mut e = vec![MADT_LOCAL_X2APIC, 16, 0, 0];
        e.extend_from_slice(&id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e
    }

    fn madt_body(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT
        for e in entries {
            b.extend_from_slice(e);
        }
        b
    }

    /// Memory with an RSDP at 0x100 → XSDT at 0x200 → the given tables at 0x1000, 0x2000, ….
    fn firmware(tables: &[Vec<u8>]) -> Memory {
        let mut m = Memory::new();
        let mut xsdt_body = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let at = 0x1000 * (i + 1);
            m.put(at, t);
            xsdt_body.extend_from_slice(&(at as u64).to_le_bytes());
        }
        m.put(0x100, &rsdp(Some(0x200), 0));
        m.put(0x200, &table(b"XSDT", &xsdt_body));
        m
    }

    fn cpu(apic_id: u32, acpi_uid: u32, enabled: bool, x2apic: bool) -> MadtCpu {
        MadtCpu { apic_id, acpi_uid, enabled, x2apic }
    }

    #[test]
    fn madt_lists_usable_processors() {
        let mut ioapic = vec![1, 12, 0, 0];
        ioapic.extend_from_slice(&[0; 8]);
        let madt = table(
            b"APIC",
            &madt_body(&[
                lapic(0, 0, MADT_ENABLED),
                ioapic,
                lapic(1, 1, MADT_ENABLED),
                lapic(2, 2, 0),                   // disabled: skipped
                lapic(3, 3, MADT_ONLINE_CAPABLE), // may be started
                lapic(4, 0xff, MADT_ENABLED),     // the broadcast id: skipped
                x2apic(1, MADT_ENABLED, 1),       // the same processor again
                x2apic(300, MADT_ENABLED, 300),
                x2apic(301, 0, 301), // disabled
            ]),
        );
        let mcfg = table(b"MCFG", &[0; 8]);
        let m = firmware(&[table(b"FACP", &[0; 8]), mcfg, madt]);
        // SAFETY: the test memory's map function bounds-checks every read.
        let found = unsafe { find_madt(0x100, m.map()) }.unwrap().unwrap();
        assert_eq!(found.local_apic_phys, 0xfee0_0000);
        assert_eq!(found.malformed, 0);
        assert_eq!(
            found.cpus,
            [cpu(0, 0, true, false), cpu(1, 1, true, false), cpu(3, 3, false, false), cpu(300, 300, true, true)]
        );
    }

    #[test]
    fn madt_through_an_acpi1_rsdt_with_an_address_override() {
        let mut override_entry = vec![MADT_LOCAL_APIC_OVERRIDE, 12, 0, 0];
        override_entry.extend_from_slice(&0x1_fee0_0000u64.to_le_bytes());
        let madt = table(b"APIC", &madt_body(&[lapic(0, 0, MADT_ENABLED), override_entry, lapic(1, 7, 1)]));
        let mut m = Memory::new();
        m.put(0x1000, &madt);
        m.put(0x100, &rsdp(None, 0x200));
        m.put(0x200, &table(b"RSDT", &0x1000u32.to_le_bytes()));
        // SAFETY: as above.
        let found = unsafe { find_madt(0x100, m.map()) }.unwrap().unwrap();
        assert_eq!(found.local_apic_phys, 0x1_fee0_0000);
        assert_eq!(found.cpus, [cpu(0, 0, true, false), cpu(7, 1, true, false)]);
    }

    #[test]
    fn madt_stops_at_a_broken_entry() {
        let mut short_lapic = lapic(1, 1, MADT_ENABLED);
        short_lapic[1] = 6; // too short for its type
        short_lapic.truncate(6);
        let zero_length = vec![0x7f, 0];
        let madt = table(b"APIC", &madt_body(&[lapic(0, 0, MADT_ENABLED), short_lapic, zero_length, lapic(2, 2, 1)]));
        let found = parse_madt(&madt);
        assert_eq!(found.cpus, [cpu(0, 0, true, false)], "nothing after a zero-length entry is believed");
        assert_eq!(found.malformed, 2);
        // An entry whose length runs past the table.
        let mut overlong = table(b"APIC", &madt_body(&[lapic(0, 0, 1)]));
        overlong.extend_from_slice(&[MADT_LOCAL_APIC, 8, 1, 1]);
        assert_eq!(parse_madt(&overlong).cpus.len(), 1);
        assert_eq!(parse_madt(&overlong).malformed, 1);
    }

    #[test]
    fn no_madt_and_bad_tables() {
        let m = firmware(&[table(b"FACP", &[0; 8])]);
        // SAFETY: as above.
        assert_eq!(unsafe { find_madt(0x100, m.map()) }, Ok(None));

        let mut bad = table(b"APIC", &madt_body(&[lapic(0, 0, 1)]));
        bad[40] ^= 1; // checksum no longer adds up
        let m = firmware(&[bad]);
        // SAFETY: as above.
        let found = unsafe { find_madt(0x100, m.map()) };
        assert_eq!(found, Err(AcpiError::BadTable { signature: *b"APIC", phys: 0x1000 }));

        let mut m = firmware(&[]);
        m.0[0x100] = b'X';
        // SAFETY: as above.
        assert_eq!(unsafe { find_madt(0x100, m.map()) }, Err(AcpiError::BadRsdp));
    }

    #[test]
    fn mcfg_window() {
        let mut body = vec![0u8; 8];
        // Segment 1 first (ignored), then segment 0 with buses 0-255.
        for (base, segment, start, end) in [(0xe000_0000u64, 1u16, 0u8, 255u8), (0xb000_0000, 0, 0, 255)] {
            body.extend_from_slice(&base.to_le_bytes());
            body.extend_from_slice(&segment.to_le_bytes());
            body.extend_from_slice(&[start, end, 0, 0, 0, 0]);
        }
        let m = firmware(&[table(b"APIC", &madt_body(&[])), table(b"MCFG", &body)]);
        // SAFETY: as above.
        let window = unsafe { find_ecam(0x100, m.map()) }.unwrap().unwrap();
        assert_eq!((window.phys, window.segment, window.bus_start, window.bus_end), (0xb000_0000, 0, 0, 255));
        let m = firmware(&[table(b"APIC", &madt_body(&[]))]);
        // SAFETY: as above.
        assert!(unsafe { find_ecam(0x100, m.map()) }.unwrap().is_none());
    }
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
