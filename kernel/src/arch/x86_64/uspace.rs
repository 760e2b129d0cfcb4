//! Sandbox address spaces for the paging engine: one PML4 per sandbox, whose upper half is the
//! kernel's (the same PDPTs, so the kernel's mappings are shared and stay supervisor-only) and
//! whose lower half holds only the sandbox's user pages.
//!
//! The kernel reaches sandbox memory only through this module's accessors, which go through the
//! direct map after checking the sandbox's own page tables (SMAP stays on: the kernel never
//! dereferences a user address).

use alloc::vec::Vec;

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

use super::phys_to_virt;
use crate::mm;
use crate::wall_events::{self, Event};

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
/// Set by the CPU when the page is written through the entry.
const DIRTY: u64 = 1 << 6;
const NO_EXECUTE: u64 = 1 << 63;
/// A leaf entry's software bit (ignored by the MMU): the frame is not the space's but shared
/// (a prepared image's read-only or executable page), so unmapping it does not free it.
const SHARED: u64 = 1 << 9;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The lower half: what a sandbox may map (PML4 entries 0..256).
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Access rights of a user page (always readable). Never writable and executable together (W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Writable,
    Executable,
}

/// A leaf page-table entry of one space (its address in the direct map), found once with
/// [`AddressSpace::leaf`] so that a page the space keeps mapped is reached again without a
/// walk. Valid as long as its space: page tables are freed only with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf(u64);

/// A sandbox's page tables. Dropping it frees every frame of its lower half (tables and pages).
pub struct AddressSpace {
    pml4: u64,
    /// The kernel tables' generation and the kernel PML4 its upper half was last copied from.
    upper: (u64, u64),
}

/// Frames holding user page tables below the PML4s, in every address space. The MPK space keeps
/// each slot's tables for good (see [`AddressSpace::clear_range`]), and so do the paging engine's
/// pooled spaces, so this grows to a bounded
/// high-water mark as more slots are used at once; `/metrics` shows it so that a frame count
/// can be read against it.
static TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

/// User page-table frames held now ([`TABLE_FRAMES`]).
pub fn table_frames() -> u64 {
    TABLE_FRAMES.load(Ordering::Relaxed)
}

/// Code written through the direct map is fetched as written on x86_64 (coherent instruction
/// caches): nothing to do. (aarch64 cleans and invalidates here.)
pub fn sync_code(_phys: u64, _len: usize) {}

/// The kernel's own tables, whose upper half every space copies
/// ([`AddressSpace::refresh_kernel_half`]).
pub fn kernel_root() -> u64 {
    match super::paging::kernel_pml4() {
        // Before `paging::init` (no sandbox runs then): the boot tables in use.
        0 => Cr3::read().0.start_address().as_u64(),
        pml4 => pml4,
    }
}

/// The PML4 of the one space that CPUs keep loaded between sandbox runs (0: none), the MPK
/// engine's shared space ([`AddressSpace::make_resident`]).
static RESIDENT: AtomicU64 = AtomicU64::new(0);

/// Bumped after every user page-table entry that a CPU's TLB may still hold is taken away (a
/// present leaf cleared by [`AddressSpace::clear_range`], before its frame is freed). Nothing
/// else changes a present user leaf: a leaf is only ever written when absent (mapping), or
/// cleared, and the dirty bit is never cleared ([`AddressSpace::written`]). So a CPU that has
/// written CR3 since the generation it last saw holds no TLB entry that contradicts the tables.
static USER_TLB_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Per CPU: [`USER_TLB_GENERATION`] as read just before its last CR3 write in
/// [`AddressSpace::activate`] (`u64::MAX`: none yet).
static FLUSHED_AT: [AtomicU64; crate::smp::MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; crate::smp::MAX_CPUS];

/// Copies the kernel's upper half (`kernel`: its PML4) into the resident space, entry by entry
/// where it differs, so that a CPU running kernel code on that space sees every top-level entry
/// the kernel has (`paging::map_page` calls this after each change to the kernel's tables).
pub fn sync_resident_kernel_half(kernel: u64) {
    let resident = RESIDENT.load(Ordering::Acquire);
    if resident == 0 || kernel == 0 {
        return;
    }
    for i in 256..512 {
        // SAFETY: both are whole PML4 frames in the direct map (the resident space is never
        // freed: its `Drop` leaks it); only upper-half entries are written, each with one
        // aligned 8-byte store, to the kernel's value (an entry already equal is not written,
        // so a CPU using the resident space never sees a torn or changed entry but a new one).
        unsafe {
            let value = table(kernel).add(i).read_volatile();
            let slot = table(resident).add(i);
            if slot.read_volatile() != value {
                slot.write_volatile(value);
            }
        }
    }
}

fn table(phys: u64) -> *mut u64 {
    phys_to_virt(phys).cast()
}

impl AddressSpace {
    /// A fresh space: the kernel's upper half, an empty lower half.
    pub fn new() -> Option<Self> {
        let pml4 = mm::alloc_frame()?;
        let kernel = kernel_root();
        let generation = super::paging::kernel_tables_generation();
        // SAFETY: both tables are whole frames in the direct map; the new one is ours alone.
        unsafe { core::ptr::copy_nonoverlapping(table(kernel).add(256), table(pml4).add(256), 256) };
        Some(Self { pml4, upper: (generation, kernel) })
    }

    /// The leaf entry's slot for `virt`, creating intermediate tables when `create`.
    fn entry(&mut self, virt: u64, create: bool) -> Option<*mut u64> {
        if virt >= USER_END {
            return None;
        }
        let mut t = self.pml4;
        for level in [39u32, 30, 21] {
            let index = ((virt >> level) & 511) as usize;
            // SAFETY: `t` is a table frame of this space (or its PML4), mapped in the direct map.
            let slot = unsafe { table(t).add(index) };
            // SAFETY: as above.
            let value = unsafe { slot.read() };
            if value & PRESENT == 0 {
                if !create {
                    return None;
                }
                let frame = mm::alloc_frame()?;
                TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
                // SAFETY: as above; intermediate entries allow everything, leaves decide.
                unsafe { slot.write(frame | PRESENT | WRITABLE | USER) };
                t = frame;
            } else {
                t = value & ADDR_MASK;
            }
        }
        // SAFETY: `t` is a page table of this space.
        Some(unsafe { table(t).add(((virt >> 12) & 511) as usize) })
    }

    /// Maps the frame `phys` at `virt` (user, `access`, protection key `key`: bits 62:59 of the
    /// entry, 0..15). The frame becomes the space's: it is freed with it. Fails if `virt` is
    /// taken or outside the lower half, or tables run out.
    pub fn map_keyed(&mut self, virt: u64, phys: u64, access: Access, key: u8) -> Result<(), ()> {
        self.map_entry(virt, phys, access, key, 0)
    }

    /// Maps `phys`, a frame the space does not own (a prepared image's shared page, which
    /// outlives every space it is mapped in), at `virt`: read-only or executable, never
    /// writable; unmapping it leaves the frame to its owner.
    pub fn map_shared(&mut self, virt: u64, phys: u64, access: Access, key: u8) -> Result<(), ()> {
        if access == Access::Writable {
            return Err(());
        }
        self.map_entry(virt, phys, access, key, SHARED)
    }

    fn map_entry(&mut self, virt: u64, phys: u64, access: Access, key: u8, extra: u64) -> Result<(), ()> {
        let slot = self.entry(virt, true).ok_or(())?;
        // SAFETY: a leaf slot of this space.
        if unsafe { slot.read() } & PRESENT != 0 {
            return Err(());
        }
        let flags = PRESENT
            | USER
            | match access {
                Access::ReadOnly => NO_EXECUTE,
                Access::Writable => WRITABLE | NO_EXECUTE,
                Access::Executable => 0,
            }
            | extra
            | (u64::from(key & 15) << 59);
        // SAFETY: as above. The space is not active on any CPU while it is being built, or (lazy
        // faults) the slot was not present, so no TLB holds a stale entry for it.
        unsafe { slot.write(phys | flags) };
        Ok(())
    }

    /// Maps a fresh zeroed frame at `virt`, with protection key `key`.
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
        // SAFETY: a fresh frame of ours in the direct map, 4096 bytes, not mapped anywhere yet.
        fill(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(frame), 4096) });
        self.map_keyed(virt, frame, access, key).inspect_err(|_| {
            let _ = mm::free_frame(frame);
        })
    }

    /// Maps one page at `virt` holding what `fill` writes, which must be every one of its 4096
    /// bytes: the frame is not zeroed first (it may hold a freed page's bytes until then).
    pub fn map_overwritten(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ()> {
        let frame = mm::alloc_frame_unzeroed().ok_or(())?;
        // SAFETY: a fresh frame of ours in the direct map, 4096 bytes, not mapped anywhere yet;
        // `fill` writes all of it before the mapping below makes it reachable.
        fill(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(frame), 4096) });
        self.map_keyed(virt, frame, access, key).inspect_err(|_| {
            let _ = mm::free_frame(frame);
        })
    }

    /// Maps `pages` pages at `virt` (page-aligned) holding `bytes` then zeros, with key `key`.
    pub fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), ()> {
        for i in 0..pages {
            let frame = mm::alloc_frame().ok_or(())?;
            let start = (i * 4096) as usize;
            if start < bytes.len() {
                let chunk = &bytes[start..bytes.len().min(start + 4096)];
                // SAFETY: a fresh frame of ours in the direct map; the chunk fits in it.
                unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), phys_to_virt(frame), chunk.len()) };
            }
            self.map_keyed(virt + i * 4096, frame, access, key).inspect_err(|_| {
                let _ = mm::free_frame(frame);
            })?;
        }
        Ok(())
    }

    /// The leaf entry of the page mapped at `virt`, for [`AddressSpace::with_page`] and
    /// [`AddressSpace::written`]; `None` when nothing is mapped there.
    pub fn leaf(&mut self, virt: u64) -> Option<Leaf> {
        let slot = self.entry(virt, false)?;
        // SAFETY: a leaf slot of this space.
        (unsafe { slot.read() } & PRESENT != 0).then_some(Leaf(slot as u64))
    }

    /// The page a space owns behind `leaf` (mapped, not shared), given to `f` as its 4096 bytes
    /// through the direct map; `None` when none is mapped there any more.
    ///
    /// # Safety
    /// `leaf` came from this space's [`AddressSpace::leaf`], and the sandbox using the page is
    /// not running (the kernel is its only writer meanwhile).
    pub unsafe fn with_page<R>(&mut self, leaf: Leaf, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        // SAFETY: the caller's word: a leaf slot of this space, whose tables live as long as it.
        let pte = unsafe { (leaf.0 as *const u64).read() };
        if pte & PRESENT == 0 || pte & SHARED != 0 {
            return None;
        }
        // SAFETY: a frame this space owns, in the direct map, 4096 bytes, written by nobody else
        // now (the caller's word).
        Some(f(unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pte & ADDR_MASK), 4096) }))
    }

    /// Whether the page behind `leaf` was written through this mapping since it was mapped (its
    /// dirty bit, which is never cleared: a page once written counts as written after every
    /// later run too, and is scrubbed after each); `None` when nothing is mapped there.
    ///
    /// # Safety
    /// `leaf` came from this space's [`AddressSpace::leaf`].
    ///
    /// Why a clear bit can be trusted: the CPU sets it in the entry before a write through a
    /// TLB entry that lacks it, so a TLB entry can carry it while the page-table entry does not
    /// only if the bit was cleared after the TLB entry was made. It never is: a leaf is written
    /// only when absent (a fresh mapping, whose earlier TLB entries went when it was cleared:
    /// [`USER_TLB_GENERATION`]), or cleared.
    pub unsafe fn written(&mut self, leaf: Leaf) -> Option<bool> {
        // SAFETY: the caller's word: a leaf slot of this space.
        let pte = unsafe { (leaf.0 as *const u64).read_volatile() };
        (pte & PRESENT != 0).then_some(pte & DIRTY != 0)
    }

    /// The physical address behind user page `virt` and whether it is writable.
    pub fn translate(&mut self, virt: u64) -> Option<(u64, bool)> {
        let slot = self.entry(virt, false)?;
        // SAFETY: a leaf slot of this space.
        let value = unsafe { slot.read() };
        (value & PRESENT != 0 && value & USER != 0).then_some((value & ADDR_MASK, value & WRITABLE != 0))
    }

    /// Copies `len` bytes at user address `addr` out of the space. Pages not mapped yet read as
    /// zero when `zero_ok(page)` says they lie in a lazily mapped region; otherwise `None`.
    pub fn read(&mut self, addr: u64, len: u64, zero_ok: impl Fn(u64) -> bool) -> Option<Vec<u8>> {
        let end = addr.checked_add(len)?;
        if end > USER_END {
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
                    // SAFETY: a user frame of this space, in the direct map; `n` stays in the page.
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

    /// Calls `f` with the `len` bytes at user address `addr`: straight from the direct map when
    /// they lie in one mapped page (no copy), else copied out as [`AddressSpace::read`] does
    /// (`zero_ok` as there); `None` when [`AddressSpace::read`] would answer `None`.
    pub fn read_with<R>(
        &mut self,
        addr: u64,
        len: u64,
        zero_ok: impl Fn(u64) -> bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let page = addr & !0xfff;
        let end = addr.checked_add(len)?;
        if len > 0
            && end <= (page + 4096).min(USER_END)
            && let Some((phys, _)) = self.translate(page)
        {
            // SAFETY: a user frame of this space, in the direct map; `addr..end` stays within
            // the page. The sandbox is not running, so nothing writes it meanwhile.
            let bytes = unsafe { core::slice::from_raw_parts(phys_to_virt(phys + (addr - page)), len as usize) };
            return Some(f(bytes));
        }
        self.read(addr, len, zero_ok).map(|bytes| f(&bytes))
    }

    /// Unmaps every page in `[start, end)` (page-aligned, clipped to the lower half) and frees
    /// the frames the space owns (a shared frame stays its owner's). Absent tables are skipped
    /// whole, so the cost follows what is mapped, not the range's size. The page tables stay
    /// (reused by the next sandbox in this space or slot), so a paging-structure cache entry
    /// another CPU still holds can only lead to a table of this space, whose leaves are now
    /// absent; every CPU reloads CR3 before its next sandbox, which drops its stale entries.
    pub fn clear_range(&mut self, start: u64, end: u64) {
        let end = end.min(USER_END);
        let mut va = start & !0xfff;
        'walk: while va < end {
            let mut t = self.pml4;
            for level in [39u32, 30, 21] {
                // SAFETY: `t` is a table of this space (or its PML4), mapped in the direct map.
                let value = unsafe { table(t).add(((va >> level) & 511) as usize).read() };
                if value & PRESENT == 0 {
                    va = ((va >> level) + 1) << level;
                    continue 'walk;
                }
                t = value & ADDR_MASK;
            }
            let table_end = (((va >> 21) + 1) << 21).min(end);
            while va < table_end {
                // SAFETY: `t` is the page table that maps `va` in this space.
                let slot = unsafe { table(t).add(((va >> 12) & 511) as usize) };
                // SAFETY: as above.
                let pte = unsafe { slot.read() };
                if pte & PRESENT != 0 {
                    // SAFETY: as above; cleared before the frame goes back (zeroed when next
                    // allocated).
                    unsafe { slot.write(0) };
                    // After the entry is gone and before its frame can be used again: every CPU
                    // writes CR3 before it next enters ring 3 (`activate`).
                    USER_TLB_GENERATION.fetch_add(1, Ordering::AcqRel);
                    if pte & SHARED == 0
                        && let Err(e) = mm::free_frame(pte & ADDR_MASK)
                    {
                        log::error!("uspace: freeing frame {:#x}: {e:?}", pte & ADDR_MASK);
                    }
                }
                va += 4096;
            }
        }
    }

    /// Copies the kernel's current upper half into this space again if the kernel's tables
    /// changed since the last copy (a shared or pooled space lives long; the kernel may have
    /// added top-level entries since it was made), or `kernel_cr3` is another PML4.
    pub fn refresh_kernel_half(&mut self, kernel_cr3: u64) {
        // Read before the copy: a change made during it bumps the generation past this one, and
        // the next refresh copies again.
        let generation = super::paging::kernel_tables_generation();
        if self.upper == (generation, kernel_cr3) {
            return;
        }
        // SAFETY: both are whole PML4 frames in the direct map; only the upper half is written.
        unsafe { core::ptr::copy_nonoverlapping(table(kernel_cr3).add(256), table(self.pml4).add(256), 256) };
        self.upper = (generation, kernel_cr3);
    }

    /// Makes this space current before ring 3 runs in it; returns the previous CR3 for
    /// [`AddressSpace::deactivate`]. It writes CR3, which drops the CPU's TLB entries for user
    /// pages (what frame reuse relies on), but for one case: the CPU already has this space
    /// loaded (resident: [`AddressSpace::make_resident`]) and no user leaf has been cleared
    /// anywhere since its last CR3 write here ([`USER_TLB_GENERATION`]), so every entry its
    /// TLB holds still matches the tables. Under TCG each CR3 write flushes the emulator's
    /// whole software TLB, kernel pages included.
    pub fn activate(&self) -> u64 {
        let old = Cr3::read().0.start_address().as_u64();
        // Read before the CR3 write: a leaf cleared after this read bumps it past what is
        // recorded, and the next activation writes CR3 again.
        let generation = USER_TLB_GENERATION.load(Ordering::Acquire);
        let flushed = super::cpu_index_if_ready().and_then(|cpu| FLUSHED_AT.get(cpu));
        if old == self.pml4 && self.is_resident() && flushed.is_some_and(|f| f.load(Ordering::Relaxed) == generation) {
            return old;
        }
        // SAFETY: the upper half is the kernel's own, so the running code, its stack and data
        // stay mapped; the lower half holds only sandboxes' user pages.
        unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(self.pml4)), Cr3Flags::empty()) };
        wall_events::count(Event::Cr3Write);
        if let Some(flushed) = flushed {
            flushed.store(generation, Ordering::Relaxed);
        }
        old
    }

    /// Lets CPUs keep this space loaded between sandbox runs ([`AddressSpace::leave`] then
    /// writes no CR3), when the CPU has SMEP and SMAP (so kernel code never executes or touches
    /// the lower half's user pages it can then see) and no other space is resident. At most
    /// one space is: the kernel keeps its upper half in step with the kernel's tables
    /// ([`sync_resident_kernel_half`]), and it is never freed. Returns whether it is resident.
    ///
    /// Why the lower half may stay loaded: nothing but ring 3 uses user mappings (SMAP, SMEP),
    /// and every entry to ring 3 is preceded by [`AddressSpace::activate`], which writes CR3
    /// (dropping every TLB entry for user pages) unless no user leaf was cleared since this
    /// CPU's last CR3 write. So the TLB entries a CPU keeps between runs are never used once
    /// stale (a page since unmapped and its frame reused).
    pub fn make_resident(&self) -> bool {
        if !(super::cpu::has_smep() && super::cpu::has_smap()) {
            return false;
        }
        let resident = match RESIDENT.compare_exchange(0, self.pml4, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(other) => other == self.pml4,
        };
        if resident {
            sync_resident_kernel_half(kernel_root());
        }
        resident
    }

    fn is_resident(&self) -> bool {
        RESIDENT.load(Ordering::Relaxed) == self.pml4
    }

    /// After a run: switches back to the kernel's own tables (not `_previous`, what
    /// [`AddressSpace::activate`] returned, which may be the resident space), unless this space
    /// is resident ([`AddressSpace::make_resident`]), which stays loaded (no CR3 write).
    pub fn leave(&self, _previous: u64) {
        if !self.is_resident() {
            // SAFETY: the kernel's complete tables.
            unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(kernel_root())), Cr3Flags::empty()) };
            wall_events::count(Event::Cr3Write);
        }
    }

    /// Switches back to `previous` (what [`AddressSpace::activate`] returned).
    pub fn deactivate(previous: u64) {
        // SAFETY: `previous` was the CR3 in use before `activate`, a complete kernel table.
        unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(previous)), Cr3Flags::empty()) };
        wall_events::count(Event::Cr3Write);
    }

    fn free_level(t: u64, level: u32) {
        for i in 0..512usize {
            // SAFETY: `t` is a table of this space at `level` (4 = PML4, lower half only).
            let value = unsafe { table(t).add(i).read() };
            if level == 4 && i >= 256 {
                break;
            }
            if value & PRESENT == 0 {
                continue;
            }
            let next = value & ADDR_MASK;
            if level > 1 {
                Self::free_level(next, level - 1);
                TABLE_FRAMES.fetch_sub(1, Ordering::Relaxed);
            } else if value & SHARED != 0 {
                continue; // a prepared image's frame: its owner frees it
            }
            // Frames are zeroed when allocated again (`mm::alloc_frame`), so nothing of this
            // sandbox is ever seen by the next one.
            if let Err(e) = mm::free_frame(next) {
                log::error!("uspace: freeing frame {next:#x}: {e:?}");
            }
        }
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if self.is_resident() {
            // Other CPUs may have it loaded: its tables must outlive them (never happens: the
            // resident space is the MPK engine's, which lives as long as the kernel).
            log::error!("uspace: the resident space is never freed; leaking it");
            return;
        }
        let (current, _) = Cr3::read();
        assert_ne!(current.start_address().as_u64(), self.pml4, "dropping the active address space");
        Self::free_level(self.pml4, 4);
        if let Err(e) = mm::free_frame(self.pml4) {
            log::error!("uspace: freeing PML4 {:#x}: {e:?}", self.pml4);
        }
    }
}
