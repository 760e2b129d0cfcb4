//! The kernel's translation tables: 48-bit VA, 4 KiB granule, TTBR0_EL1, identity-mapped.
//!
//! [`init`] replaces the entry code's early 1 GiB-block map with tables that map
//! - the first GiB (QEMU virt's MMIO) as one Device-nGnRnE block, execute-never;
//! - every RAM range of the device tree as Normal write-back, read-write, execute-never, in
//!   2 MiB blocks where they fit, except
//! - the kernel image, in 4 KiB pages: text read-only executable, rodata read-only, data and
//!   bss read-write; the stack guard pages are left unmapped.
//!
//! Physical memory stays identity-mapped (`phys_to_virt` is the identity), which the table
//! code itself relies on to reach the tables.
//!
//! Every kernel mapping is global (nG clear), EL1-only (AP[1] clear) and execute-never at EL0
//! (UXN), and lies below 512 GiB (level-0 entry 0; QEMU `virt` puts nothing the kernel maps
//! higher). The native sandboxes' tables (`uspace.rs`) share these level-0 entries and add
//! their own, non-global, ASID-tagged user pages in level-0 entry 2 (1 TiB ..): the same split
//! as x86_64, where the kernel's half is in every PML4 and supervisor-only.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};
use spin::Mutex;

use super::{boot, stacks};
use crate::mm;

pub const PAGE: u64 = 4096;
const ENTRIES: usize = 512;

const VALID: u64 = 1 << 0;
/// At levels 0-2: a table descriptor (else a block); at level 3 it must be set (a page).
const TABLE: u64 = 1 << 1;
const ATTR_DEVICE: u64 = 0 << 2; // MAIR attr0
const ATTR_NORMAL: u64 = 1 << 2; // MAIR attr1
const ATTR_MASK: u64 = 7 << 2;
const AP_USER: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESSED: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
/// Morello's hardware-use bits of a page or block descriptor (live when TCR_EL1.HPD0 and the
/// HWU059..HWU062 bits are set): SC (bit 60) lets capabilities be stored with their tags, LC
/// (bits 62:61) = 0b01 lets them be loaded with their tags. Without them a tagged store is a
/// capability page permission fault and a load clears the tag.
const MORELLO_SC: u64 = 1 << 60;
const MORELLO_LC_LOAD: u64 = 1 << 61;
/// TCR_EL1.HPD0 (bit 41; table descriptors' hierarchical permission bits ignored, as these
/// tables never set them) and HWU059..HWU062 (bits 46:43) for TTBR0 walks, on Morello.
const TCR_MORELLO: u64 = (1 << 41) | (0xf << 43);
/// Set by [`init`] on a Morello CPU: kernel data mappings carry SC and LC.
static CAP_PAGES: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// The descriptor bits the sandbox tables (`uspace.rs`) build their entries from.
pub(super) mod bits {
    pub const VALID: u64 = super::VALID;
    pub const TABLE: u64 = super::TABLE;
    pub const ATTR_NORMAL: u64 = super::ATTR_NORMAL;
    pub const INNER_SHAREABLE: u64 = super::INNER_SHAREABLE;
    pub const ACCESSED: u64 = super::ACCESSED;
    pub const AP_USER: u64 = super::AP_USER;
    pub const AP_READ_ONLY: u64 = super::AP_READ_ONLY;
    /// Not global: the TLB entry belongs to the ASID current when it was made.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    pub const PXN: u64 = super::PXN;
    pub const UXN: u64 = super::UXN;
    /// A table descriptor's PXNTable: nothing below it is executable at EL1.
    pub const PXN_TABLE: u64 = 1 << 59;
    pub const ADDR_MASK: u64 = super::ADDR_MASK;
}

/// TCR_EL1: T0SZ = 16 (48-bit VA, walks start at level 0), 4 KiB granule, walks inner/outer
/// write-back and inner shareable, TTBR1 walks disabled (EPD1); IPS from
/// ID_AA64MMFR0_EL1.PARange, AS (16-bit ASIDs, from TTBR0_EL1) where ASIDBits says so.
const TCR: u64 = 16 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23);
const TCR_AS: u64 = 1 << 36;

/// ASIDs the CPU has: 1 << 8 or 1 << 16 (ID_AA64MMFR0_EL1.ASIDBits).
pub fn asid_count() -> u32 {
    if (ID_AA64MMFR0_EL1.get() >> 4) & 0xf == 0b0010 { 1 << 16 } else { 1 << 8 }
}

/// Bumped each time the kernel's level-0 table gains an entry, so that a sandbox table made
/// earlier copies the kernel's entries again (`uspace::AddressSpace::refresh_kernel_half`).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The kernel tables' generation ([`GENERATION`]).
pub fn kernel_tables_generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Physical address of the kernel's level-0 table.
pub fn kernel_root() -> u64 {
    ROOT.load(Ordering::Relaxed)
}

/// How a page is mapped, in the terms the kernel cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub writable: bool,
    pub executable: bool,
    pub user: bool,
    pub device: bool,
}

impl Mapping {
    pub const DATA: Mapping = Mapping { writable: true, executable: false, user: false, device: false };
    pub const RODATA: Mapping = Mapping { writable: false, executable: false, user: false, device: false };
    pub const TEXT: Mapping = Mapping { writable: false, executable: true, user: false, device: false };
    pub const DEVICE: Mapping = Mapping { writable: true, executable: false, user: false, device: true };

    fn bits(self) -> u64 {
        let mut d = ACCESSED | if self.device { ATTR_DEVICE } else { ATTR_NORMAL | INNER_SHAREABLE };
        if !self.writable {
            d |= AP_READ_ONLY;
        }
        if self.user {
            d |= AP_USER | PXN; // never executable by the kernel
            if !self.executable {
                d |= UXN;
            }
        } else {
            d |= UXN;
            if !self.executable {
                d |= PXN;
            }
            // Kernel data on Morello: capabilities may be stored and loaded with their tags (the
            // kernel derives sandbox capabilities and clears tags in frames it hands out).
            if self.writable && !self.device && CAP_PAGES.load(Ordering::Relaxed) {
                d |= MORELLO_SC | MORELLO_LC_LOAD;
            }
        }
        d
    }

    fn from_bits(d: u64) -> Self {
        let user = d & AP_USER != 0;
        Mapping {
            writable: d & AP_READ_ONLY == 0,
            executable: if user { d & UXN == 0 } else { d & PXN == 0 },
            user,
            device: d & ATTR_MASK == ATTR_DEVICE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    AlreadyMapped,
    NotMapped,
    /// The address lies inside a larger block mapping.
    InsideBlock,
    Unaligned,
    OutOfFrames,
}

/// Physical address of the level-0 table (0 before [`init`]).
static ROOT: AtomicU64 = AtomicU64::new(0);
/// Serialises changes to the tables.
static LOCK: Mutex<()> = Mutex::new(());

global_asm!(
    r#"
    .section .text.paging, "ax"
    /* x0 = new TTBR0_EL1, x1 = new TCR_EL1. The MMU goes off for the switch, so that no TLB
       entry of the old tables can conflict with the new ones; nothing here touches memory. */
    .global aarch64_switch_tables
aarch64_switch_tables:
    dsb ish
    isb
    mrs x2, sctlr_el1
    bic x3, x2, #1
    msr sctlr_el1, x3
    isb
    msr ttbr0_el1, x0
    msr tcr_el1, x1
    isb
    tlbi vmalle1
    dsb nsh
    isb
    msr sctlr_el1, x2
    isb
    ret
    "#
);

unsafe extern "C" {
    fn aarch64_switch_tables(ttbr0: u64, tcr: u64);
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
}

fn table(phys: u64) -> &'static mut [u64; ENTRIES] {
    // SAFETY: `phys` is a table frame this module allocated (4 KiB, aligned, identity-mapped);
    // callers hold LOCK (or run before any other CPU or table user exists).
    unsafe { &mut *(phys as *mut [u64; ENTRIES]) }
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (39 - 9 * level)) & 0x1ff) as usize
}

fn alloc_table() -> Result<u64, MapError> {
    mm::alloc_frame().ok_or(MapError::OutOfFrames) // zeroed: all entries invalid
}

/// Installs a block (level 1: 1 GiB, level 2: 2 MiB) or page (level 3) descriptor.
fn map_at(root: u64, virt: u64, phys: u64, level: u32, m: Mapping) -> Result<(), MapError> {
    let size = 1u64 << (39 - 9 * level);
    if !virt.is_multiple_of(size) || !phys.is_multiple_of(size) {
        return Err(MapError::Unaligned);
    }
    let mut t = root;
    for l in 0..level {
        let e = &mut table(t)[index(virt, l)];
        if *e & VALID == 0 {
            *e = alloc_table()? | VALID | TABLE;
            if l == 0 {
                GENERATION.fetch_add(1, Ordering::Release);
            }
        } else if *e & TABLE == 0 {
            return Err(MapError::InsideBlock);
        }
        t = *e & ADDR_MASK;
    }
    let e = &mut table(t)[index(virt, level)];
    if *e & VALID != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *e = phys | m.bits() | VALID | if level == 3 { TABLE } else { 0 };
    Ok(())
}

fn invalidate(virt: u64) {
    // SAFETY: TLB maintenance for one page; `dsb` orders it after the table write.
    unsafe {
        core::arch::asm!("dsb ishst", "tlbi vaae1is, {}", "dsb ish", "isb", in(reg) virt >> 12, options(nostack));
    }
    crate::wall_events::count(crate::wall_events::Event::TlbInvalidation);
}

/// Maps one 4 KiB page.
pub fn map_page(virt: u64, phys: u64, m: Mapping) -> Result<(), MapError> {
    let _guard = LOCK.lock();
    map_at(ROOT.load(Ordering::Relaxed), virt, phys, 3, m)?;
    invalidate(virt);
    Ok(())
}

/// Unmaps one 4 KiB page (its table stays).
pub fn unmap_page(virt: u64) -> Result<(), MapError> {
    let _guard = LOCK.lock();
    let mut t = ROOT.load(Ordering::Relaxed);
    for l in 0..3 {
        let e = table(t)[index(virt, l)];
        if e & VALID == 0 {
            return Err(MapError::NotMapped);
        }
        if e & TABLE == 0 {
            return Err(MapError::InsideBlock);
        }
        t = e & ADDR_MASK;
    }
    let e = &mut table(t)[index(virt, 3)];
    if *e & VALID == 0 {
        return Err(MapError::NotMapped);
    }
    *e = 0;
    invalidate(virt);
    Ok(())
}

/// The physical address and mapping of `virt`, walking the live tables.
pub fn translate(virt: u64) -> Option<(u64, Mapping)> {
    let mut t = ROOT.load(Ordering::Relaxed);
    if t == 0 || virt >> 48 != 0 {
        return None;
    }
    for level in 0..=3 {
        let e = table(t)[index(virt, level)];
        if e & VALID == 0 {
            return None;
        }
        if level == 3 || e & TABLE == 0 {
            let size = 1u64 << (39 - 9 * level);
            let phys = (e & ADDR_MASK & !(size - 1)) | (virt & (size - 1));
            return Some((phys, Mapping::from_bits(e)));
        }
        t = e & ADDR_MASK;
    }
    None
}

/// Builds the kernel's tables from the device tree's RAM and switches to them.
pub fn init() {
    CAP_PAGES.store(super::morello::enabled(), Ordering::Relaxed);
    let root = alloc_table().unwrap_or_else(|e| panic!("page tables: {e:?}"));
    let map = |virt: u64, level: u32, m: Mapping| {
        map_at(root, virt, virt, level, m).unwrap_or_else(|e| panic!("page tables: mapping {virt:#x}: {e:?}"));
    };
    map(0, 1, Mapping::DEVICE);

    let (image_start, image_end) = boot::kernel_image();
    // Linker-defined symbols; only their addresses are used.
    let text = (&raw const __text_start as u64, &raw const __text_end as u64);
    let rodata = (&raw const __rodata_start as u64, &raw const __rodata_end as u64);
    let guards = stacks::guard_pages();
    const BLOCK: u64 = 2 << 20;
    for &(start, end) in boot::platform().ram() {
        let mut addr = start.next_multiple_of(PAGE);
        let end = end & !(PAGE - 1);
        while addr < end {
            let block_fits = addr % BLOCK == 0 && addr + BLOCK <= end;
            let holds_image = addr < image_end && addr + BLOCK > image_start;
            if block_fits && !holds_image {
                map(addr, 2, Mapping::DATA);
                addr += BLOCK;
                continue;
            }
            let m = if (text.0..text.1).contains(&addr) {
                Some(Mapping::TEXT)
            } else if (rodata.0..rodata.1).contains(&addr) {
                Some(Mapping::RODATA)
            } else if guards.contains(&addr) {
                None
            } else {
                Some(Mapping::DATA)
            };
            if let Some(m) = m {
                map(addr, 3, m);
            }
            addr += PAGE;
        }
    }

    let pa_range = ID_AA64MMFR0_EL1.get() & 7;
    let tcr = TCR
        | (pa_range << 32)
        | if CAP_PAGES.load(Ordering::Relaxed) { TCR_MORELLO } else { 0 }
        | if asid_count() > 256 { TCR_AS } else { 0 };
    ROOT.store(root, Ordering::Relaxed);
    // SAFETY: the new tables map everything the kernel touches exactly as the early tables do
    // (identity, same memory types), less the guard pages and with tighter permissions; the
    // switch routine runs with the MMU off between the old and new tables.
    unsafe { aarch64_switch_tables(root, tcr) };
    log::debug!("paging: root table at {root:#x}, PARange {pa_range}");
}

/// Maps `[phys, phys + size)` identity as Device memory where nothing maps it yet: 2 MiB blocks
/// where a whole block is free, 4 KiB pages beside existing tables; what is already mapped
/// (the first GiB's Device block, RAM) is left as it is.
pub fn ensure_device_mapped(phys: u64, size: u64) {
    const BLOCK: u64 = 2 << 20;
    let _guard = LOCK.lock();
    let root = ROOT.load(Ordering::Relaxed);
    let end = phys.saturating_add(size).next_multiple_of(PAGE);
    let mut addr = phys & !(PAGE - 1);
    while addr < end {
        if addr.is_multiple_of(BLOCK) && addr + BLOCK <= end {
            match map_at(root, addr, addr, 2, Mapping::DEVICE) {
                Ok(()) => {
                    invalidate(addr);
                    addr += BLOCK;
                    continue;
                }
                Err(MapError::InsideBlock) => {
                    addr += BLOCK; // a larger block maps it already
                    continue;
                }
                Err(MapError::AlreadyMapped) => {} // a table or block: page by page below
                Err(e) => panic!("MMIO map of {addr:#x}: {e:?}"),
            }
        }
        match map_at(root, addr, addr, 3, Mapping::DEVICE) {
            Ok(()) => invalidate(addr),
            Err(MapError::AlreadyMapped | MapError::InsideBlock) => {}
            Err(e) => panic!("MMIO map of {addr:#x}: {e:?}"),
        }
        addr += PAGE;
    }
}
