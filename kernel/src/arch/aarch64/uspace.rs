//! Sandbox address spaces for the paging engine on aarch64: one level-0 table per sandbox, in
//! TTBR0_EL1 with an ASID of its own while the sandbox runs. Its level-0 entries are the
//! kernel's (the same level-1 tables: global, EL1-only, never executable at EL0), but for entry
//! 2 ([`USER_START`] .. [`USER_END`]), which holds only the sandbox's user pages: non-global
//! (tagged with the space's ASID, so switching spaces flushes no TLB), EL0-accessible,
//! never executable at EL1 (PXN, and PXNTable on every table above them), and never writable
//! and executable together (W^X).
//!
//! The kernel reaches sandbox memory only through this module's accessors, which go through the
//! identity map after checking the sandbox's own tables (PAN stays on: the kernel never
//! dereferences a user address).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{Readable, TTBR0_EL1, Writeable};
use spin::Mutex;

use super::paging::{self, bits::*};
use super::phys_to_virt;
use crate::mm;
use crate::wall_events::{self, Event};

/// The level-0 entry that holds user pages: 1 TiB .. 1.5 TiB, clear of everything the kernel
/// maps on QEMU `virt` (RAM, MMIO and the high PCIe windows all lie below 1 TiB).
const USER_L0: usize = 2;
/// The sandboxes' part of the address space.
pub const USER_START: u64 = (USER_L0 as u64) << 39;
pub const USER_END: u64 = USER_START + (1 << 39);
/// A leaf entry's software bit (bits 58:55 are ignored by the MMU): the frame is not the
/// space's but shared (a prepared image's read-only or executable page), so unmapping it does
/// not free it.
const SHARED: u64 = 1 << 55;

/// Access rights of a user page (always readable). Never writable and executable together (W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Writable,
    Executable,
}

/// A leaf entry of one space (its address in the identity map), found once with
/// [`AddressSpace::leaf`] so that a page the space keeps mapped is reached again without a
/// walk. Valid as long as its space: tables are freed only with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf(u64);

/// A sandbox's tables and its ASID. Dropping it frees every frame of its user part (tables and
/// pages), forgets its ASID's TLB entries and frees the ASID.
pub struct AddressSpace {
    root: u64,
    asid: u16,
    /// The kernel tables' generation and the kernel root its entries were last copied from.
    upper: (u64, u64),
    /// Whether a leaf was cleared since the ASID's TLB entries were last invalidated.
    stale: bool,
}

/// Frames holding user tables below the level-0 tables, in every space.
static TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

/// User table frames held now.
pub fn table_frames() -> u64 {
    TABLE_FRAMES.load(Ordering::Relaxed)
}

/// ASIDs in use (bit set), 0 (the kernel's) always; at most 65536.
static ASIDS: Mutex<[u64; 1024]> = Mutex::new({
    let mut a = [0u64; 1024];
    a[0] = 1;
    a
});

fn alloc_asid() -> Option<u16> {
    let limit = paging::asid_count() as usize;
    let mut map = ASIDS.lock();
    for (w, word) in map.iter_mut().enumerate().take(limit / 64) {
        if *word != u64::MAX {
            let bit = word.trailing_ones() as usize;
            *word |= 1 << bit;
            return u16::try_from(w * 64 + bit).ok();
        }
    }
    None
}

fn free_asid(asid: u16) {
    ASIDS.lock()[usize::from(asid) / 64] &= !(1 << (asid % 64));
}

/// Forgets every TLB entry of `asid`, on every CPU.
fn invalidate_asid(asid: u16) {
    // SAFETY: TLB maintenance only; the `dsb` orders it after the table writes before it.
    unsafe {
        core::arch::asm!("dsb ishst", "tlbi aside1is, {}", "dsb ish", "isb", in(reg) u64::from(asid) << 48, options(nostack));
    }
    wall_events::count(Event::TlbInvalidation);
}

/// Makes table writes visible to the table walkers before the sandbox runs again.
fn publish() {
    // SAFETY: barriers only.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
}

/// Cleans `[phys, phys + len)` to the point of unification and invalidates the instruction
/// caches, so that code the kernel wrote through its data side is what EL0 fetches.
pub fn sync_code(phys: u64, len: usize) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4u64 << ((ctr >> 16) & 0xf); // DminLine: log2 of words
    let mut at = phys & !(line - 1);
    while at < phys + len as u64 {
        // SAFETY: cache maintenance of an identity-mapped frame the caller owns.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) phys_to_virt(at), options(nostack)) };
        at += line;
    }
    // SAFETY: cache maintenance and barriers only.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// The kernel's level-0 table (what TTBR0_EL1 holds outside sandbox runs). The name is the
/// x86_64 one: `native` calls the same function on both.
pub fn current_cr3() -> u64 {
    TTBR0_EL1.get() & ADDR_MASK
}

/// The kernel's tables, whose entries every space copies: TTBR0_EL1 outside runs (no space
/// stays loaded after a run here: [`AddressSpace::make_resident`]).
pub fn kernel_root() -> u64 {
    current_cr3()
}

fn table(phys: u64) -> *mut u64 {
    phys_to_virt(phys).cast()
}

fn copy_kernel_entries(kernel: u64, root: u64) {
    for i in (0..512).filter(|&i| i != USER_L0) {
        // SAFETY: both are whole level-0 tables in the identity map; the user entry is left.
        unsafe { table(root).add(i).write(table(kernel).add(i).read()) };
    }
}

impl AddressSpace {
    /// A fresh space: the kernel's entries, no user page, an ASID of its own (`None` when
    /// frames or ASIDs run out).
    pub fn new() -> Option<Self> {
        let root = mm::alloc_frame()?;
        let Some(asid) = alloc_asid() else {
            let _ = mm::free_frame(root);
            return None;
        };
        let kernel = paging::kernel_root();
        let generation = paging::kernel_tables_generation();
        // SAFETY: reading the kernel's entry that must stay empty for users.
        if unsafe { table(kernel).add(USER_L0).read() } & VALID != 0 {
            log::error!("uspace: the kernel maps level-0 entry {USER_L0}, the sandboxes' part");
            free_asid(asid);
            let _ = mm::free_frame(root);
            return None;
        }
        copy_kernel_entries(kernel, root);
        Some(Self { root, asid, upper: (generation, kernel), stale: false })
    }

    /// The leaf slot for `virt`, creating intermediate tables when `create`.
    fn entry(&mut self, virt: u64, create: bool) -> Option<*mut u64> {
        if !(USER_START..USER_END).contains(&virt) {
            return None;
        }
        let mut t = self.root;
        for shift in [39u32, 30, 21] {
            // SAFETY: `t` is a table of this space (or its root), in the identity map.
            let slot = unsafe { table(t).add(((virt >> shift) & 511) as usize) };
            // SAFETY: as above.
            let value = unsafe { slot.read() };
            if value & VALID == 0 {
                if !create {
                    return None;
                }
                let frame = mm::alloc_frame()?;
                TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
                // SAFETY: as above; nothing below a user table is ever executable at EL1.
                unsafe { slot.write(frame | VALID | TABLE | PXN_TABLE) };
                t = frame;
            } else {
                t = value & ADDR_MASK;
            }
        }
        // SAFETY: `t` is a level-3 table of this space.
        Some(unsafe { table(t).add(((virt >> 12) & 511) as usize) })
    }

    /// Maps the frame `phys` at `virt` (user, `access`); the frame becomes the space's. `key`
    /// is the x86_64 protection key: aarch64 has none, so it must be 0.
    pub fn map_keyed(&mut self, virt: u64, phys: u64, access: Access, key: u8) -> Result<(), ()> {
        if key != 0 {
            return Err(());
        }
        self.map_entry(virt, phys, access, 0)
    }

    /// Maps `phys`, a frame the space does not own (a prepared image's shared page), at `virt`:
    /// read-only or executable, never writable; unmapping it leaves the frame to its owner.
    pub fn map_shared(&mut self, virt: u64, phys: u64, access: Access, key: u8) -> Result<(), ()> {
        if access == Access::Writable || key != 0 {
            return Err(());
        }
        self.map_entry(virt, phys, access, SHARED)
    }

    fn map_entry(&mut self, virt: u64, phys: u64, access: Access, extra: u64) -> Result<(), ()> {
        let slot = self.entry(virt, true).ok_or(())?;
        // SAFETY: a leaf slot of this space.
        if unsafe { slot.read() } & VALID != 0 {
            return Err(());
        }
        let rights = match access {
            Access::ReadOnly => AP_READ_ONLY | UXN,
            Access::Writable => UXN,
            Access::Executable => AP_READ_ONLY,
        };
        let flags =
            VALID | TABLE | ATTR_NORMAL | INNER_SHAREABLE | ACCESSED | AP_USER | NOT_GLOBAL | PXN | rights | extra;
        // SAFETY: as above. The slot was invalid, and invalid entries are never held in a TLB.
        unsafe { slot.write(phys | flags) };
        publish();
        Ok(())
    }

    /// Maps a fresh zeroed frame at `virt`.
    pub fn map_zeroed(&mut self, virt: u64, access: Access, key: u8) -> Result<(), ()> {
        let frame = mm::alloc_frame().ok_or(())?;
        self.map_keyed(virt, frame, access, key).inspect_err(|_| {
            let _ = mm::free_frame(frame);
        })
    }

    /// Maps a fresh frame at `virt`, zero but for what `fill` writes into its 4096 bytes.
    pub fn map_filled(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ()> {
        let frame = mm::alloc_frame().ok_or(())?;
        // SAFETY: a fresh frame of ours in the identity map, not mapped anywhere yet.
        fill(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(frame), 4096) });
        if access == Access::Executable {
            sync_code(frame, 4096);
        }
        self.map_keyed(virt, frame, access, key).inspect_err(|_| {
            let _ = mm::free_frame(frame);
        })
    }

    /// Maps one page at `virt` holding what `fill` writes, which must be all of its 4096 bytes
    /// (the frame is not zeroed first).
    pub fn map_overwritten(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ()> {
        let frame = mm::alloc_frame_unzeroed().ok_or(())?;
        // SAFETY: a fresh frame of ours, not mapped anywhere yet; `fill` writes all of it
        // before the mapping below makes it reachable.
        fill(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(frame), 4096) });
        if access == Access::Executable {
            sync_code(frame, 4096);
        }
        self.map_keyed(virt, frame, access, key).inspect_err(|_| {
            let _ = mm::free_frame(frame);
        })
    }

    /// Maps `pages` pages at `virt` holding `bytes` then zeros.
    pub fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), ()> {
        for i in 0..pages {
            let frame = mm::alloc_frame().ok_or(())?;
            let start = (i * 4096) as usize;
            if start < bytes.len() {
                let chunk = &bytes[start..bytes.len().min(start + 4096)];
                // SAFETY: a fresh frame of ours in the identity map; the chunk fits in it.
                unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), phys_to_virt(frame), chunk.len()) };
            }
            if access == Access::Executable {
                sync_code(frame, 4096);
            }
            self.map_keyed(virt + i * 4096, frame, access, key).inspect_err(|_| {
                let _ = mm::free_frame(frame);
            })?;
        }
        Ok(())
    }

    /// The leaf entry of the page mapped at `virt`; `None` when nothing is mapped there.
    pub fn leaf(&mut self, virt: u64) -> Option<Leaf> {
        let slot = self.entry(virt, false)?;
        // SAFETY: a leaf slot of this space.
        (unsafe { slot.read() } & VALID != 0).then_some(Leaf(slot as u64))
    }

    /// The page a space owns behind `leaf`, given to `f` as its 4096 bytes through the identity
    /// map; `None` when none is mapped there any more (or it is a shared frame).
    ///
    /// # Safety
    /// `leaf` came from this space's [`AddressSpace::leaf`], and the sandbox using the page is
    /// not running (the kernel is its only writer meanwhile).
    pub unsafe fn with_page<R>(&mut self, leaf: Leaf, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        // SAFETY: the caller's word: a leaf slot of this space.
        let pte = unsafe { (leaf.0 as *const u64).read() };
        if pte & VALID == 0 || pte & SHARED != 0 {
            return None;
        }
        // SAFETY: a frame this space owns, 4096 bytes, written by nobody else now.
        Some(f(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pte & ADDR_MASK), 4096) }))
    }

    /// Whether the page behind `leaf` may have been written since it was mapped: without
    /// hardware dirty-bit management the kernel cannot tell, so a mapped page always counts as
    /// written (and is zeroed before the next run); `None` when nothing is mapped there.
    ///
    /// # Safety
    /// `leaf` came from this space's [`AddressSpace::leaf`].
    pub unsafe fn written(&mut self, leaf: Leaf) -> Option<bool> {
        // SAFETY: the caller's word: a leaf slot of this space.
        let pte = unsafe { (leaf.0 as *const u64).read() };
        (pte & VALID != 0).then_some(true)
    }

    /// The physical address behind user page `virt` and whether it is writable.
    pub fn translate(&mut self, virt: u64) -> Option<(u64, bool)> {
        let slot = self.entry(virt, false)?;
        // SAFETY: a leaf slot of this space.
        let value = unsafe { slot.read() };
        (value & VALID != 0 && value & AP_USER != 0).then_some((value & ADDR_MASK, value & AP_READ_ONLY == 0))
    }

    /// Calls `f` with the `len` bytes at user address `addr`, copied out as
    /// [`AddressSpace::read`] does (`zero_ok` as there); `None` when that answers `None`.
    pub fn read_with<R>(
        &mut self,
        addr: u64,
        len: u64,
        zero_ok: impl Fn(u64) -> bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        self.read(addr, len, zero_ok).map(|bytes| f(&bytes))
    }

    /// Copies `len` bytes at user address `addr` out of the space. Pages not mapped yet read as
    /// zero when `zero_ok(page)` says they lie in a lazily mapped region; otherwise `None`.
    pub fn read(&mut self, addr: u64, len: u64, zero_ok: impl Fn(u64) -> bool) -> Option<Vec<u8>> {
        let end = addr.checked_add(len)?;
        if len == 0 {
            return Some(Vec::new()); // nothing to read, wherever it points (as on x86_64)
        }
        if addr < USER_START || end > USER_END {
            return None;
        }
        let mut out = Vec::new();
        out.try_reserve_exact(usize::try_from(len).ok()?).ok()?;
        let mut at = addr;
        while at < end {
            let page = at & !0xfff;
            let n = (page + 4096).min(end) - at;
            match self.translate(page) {
                Some((phys, _)) => {
                    // SAFETY: a user frame of this space in the identity map; `n` stays in it.
                    let bytes = unsafe { core::slice::from_raw_parts(phys_to_virt(phys + (at - page)), n as usize) };
                    out.extend_from_slice(bytes);
                }
                None if zero_ok(page) => out.resize(out.len() + n as usize, 0),
                None => return None,
            }
            at += n;
        }
        Some(out)
    }

    /// Unmaps every page in `[start, end)` (clipped to the user part) and frees the frames the
    /// space owns; the tables stay. The ASID's TLB entries are invalidated (once) before the
    /// space runs again or is dropped ([`AddressSpace::activate`]).
    pub fn clear_range(&mut self, start: u64, end: u64) {
        let end = end.min(USER_END);
        let mut va = (start & !0xfff).max(USER_START);
        'walk: while va < end {
            let mut t = self.root;
            for shift in [39u32, 30, 21] {
                // SAFETY: `t` is a table of this space, in the identity map.
                let value = unsafe { table(t).add(((va >> shift) & 511) as usize).read() };
                if value & VALID == 0 {
                    va = ((va >> shift) + 1) << shift;
                    continue 'walk;
                }
                t = value & ADDR_MASK;
            }
            let table_end = (((va >> 21) + 1) << 21).min(end);
            while va < table_end {
                // SAFETY: `t` is the level-3 table that maps `va` in this space.
                let slot = unsafe { table(t).add(((va >> 12) & 511) as usize) };
                // SAFETY: as above.
                let pte = unsafe { slot.read() };
                if pte & VALID != 0 {
                    // SAFETY: as above.
                    unsafe { slot.write(0) };
                    self.stale = true;
                    if pte & SHARED == 0
                        && let Err(e) = mm::free_frame(pte & ADDR_MASK)
                    {
                        log::error!("uspace: freeing frame {:#x}: {e:?}", pte & ADDR_MASK);
                    }
                }
                va += 4096;
            }
        }
        if self.stale {
            // A frame freed above may be handed out at once: no CPU may keep reaching it.
            invalidate_asid(self.asid);
            self.stale = false;
        }
    }

    /// Copies the kernel's level-0 entries into this space again if they changed since the
    /// last copy (or `kernel_root` is another table).
    pub fn refresh_kernel_half(&mut self, kernel_root: u64) {
        let generation = paging::kernel_tables_generation();
        if self.upper == (generation, kernel_root) {
            return;
        }
        copy_kernel_entries(kernel_root, self.root);
        publish();
        self.upper = (generation, kernel_root);
    }

    /// Makes this space current (TTBR0_EL1 with its ASID; no TLB flush); returns the previous
    /// TTBR0_EL1 for [`AddressSpace::deactivate`].
    pub fn activate(&self) -> u64 {
        let old = TTBR0_EL1.get();
        TTBR0_EL1.set(self.root | (u64::from(self.asid) << 48));
        // SAFETY: a barrier; the kernel's entries are the same in this table, so the code, its
        // stack and data stay mapped across the switch.
        unsafe { core::arch::asm!("isb", options(nostack)) };
        wall_events::count(Event::Cr3Write);
        old
    }

    /// Never here: the kernel's identity map lives in TTBR0's range, and switching TTBR0 with
    /// an ASID flushes nothing, so every run switches back ([`AddressSpace::leave`]).
    pub fn make_resident(&self) -> bool {
        false
    }

    /// After a run: back to `previous` (what [`AddressSpace::activate`] returned).
    pub fn leave(&self, previous: u64) {
        Self::deactivate(previous);
    }

    /// Switches back to `previous` (what [`AddressSpace::activate`] returned).
    pub fn deactivate(previous: u64) {
        TTBR0_EL1.set(previous);
        // SAFETY: a barrier; `previous` is the kernel's complete table.
        unsafe { core::arch::asm!("isb", options(nostack)) };
        wall_events::count(Event::Cr3Write);
    }

    fn free_level(t: u64, level: u32) {
        for i in 0..512usize {
            if level == 0 && i != USER_L0 {
                continue; // the kernel's
            }
            // SAFETY: `t` is a table of this space at `level` (0 = root, user entry only).
            let value = unsafe { table(t).add(i).read() };
            if value & VALID == 0 {
                continue;
            }
            let next = value & ADDR_MASK;
            if level < 3 {
                Self::free_level(next, level + 1);
                TABLE_FRAMES.fetch_sub(1, Ordering::Relaxed);
            } else if value & SHARED != 0 {
                continue;
            }
            if let Err(e) = mm::free_frame(next) {
                log::error!("uspace: freeing frame {next:#x}: {e:?}");
            }
        }
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        let current = TTBR0_EL1.get();
        if current & ADDR_MASK == self.root {
            log::error!("uspace: dropping the active address space; switching to the kernel's first");
            Self::deactivate(paging::kernel_root());
        }
        Self::free_level(self.root, 0);
        invalidate_asid(self.asid);
        free_asid(self.asid);
        if let Err(e) = mm::free_frame(self.root) {
            log::error!("uspace: freeing the root table {:#x}: {e:?}", self.root);
        }
    }
}
