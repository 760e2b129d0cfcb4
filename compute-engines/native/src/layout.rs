//! Where a sandbox's regions lie.

use alloc::vec::Vec;

use model::Bytes;

/// The image, at base + 4 MiB (2 MiB aligned; the first 4 MiB unmapped).
pub const IMAGE_OFFSET: u64 = 0x40_0000;
/// The most image span a function may have.
pub const MAX_IMAGE_SPAN: u64 = 256 << 20;
/// The system data block (read-only), at base + 4 GiB.
pub const SYS_OFFSET: u64 = 0x1_0000_0000;
/// The heap (read-write, mapped on first touch), at base + 8 GiB.
pub const HEAP_OFFSET: u64 = 0x2_0000_0000;
/// The stack's top, base + 16 GiB; it grows down over [`STACK_SIZE`], below it a guard gap of
/// [`GUARD`] that nothing is ever mapped in.
pub const STACK_TOP_OFFSET: u64 = 0x4_0000_0000;
pub const STACK_SIZE: u64 = 1 << 20;
pub const GUARD: u64 = 1 << 30;
/// The room one sandbox's layout takes: the MPK engine's slot size (32 GiB). Key `k`'s slot is
/// `k × SLOT_SIZE`, so slots 1..=15 lie in the lower half's first 512 GiB.
pub const SLOT_SIZE: u64 = 1 << 35;

const PAGE: u64 = 4096;

/// Where an aarch64 sandbox's layout starts: level-0 entry 2 of its translation table (1 TiB).
pub const AARCH64_OWN_BASE: u64 = 1 << 40;

/// Where a sandbox's regions lie, relative to its base (0 for the paging engine, whose
/// sandboxes each have an address space of their own; the key's slot for the MPK engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    base: u64,
}

impl Layout {
    /// A sandbox with an address space of its own (paging): at 0 on x86_64, at
    /// [`AARCH64_OWN_BASE`] on aarch64 (the kernel's identity map lies below it).
    pub const fn own() -> Self {
        Self::own_at(if cfg!(target_arch = "aarch64") { AARCH64_OWN_BASE } else { 0 })
    }

    /// A sandbox with an address space of its own whose user part starts at `base`.
    pub const fn own_at(base: u64) -> Self {
        Self { base }
    }

    /// The `cheri` engine's slot `index` (1..=15) in its one shared aarch64 address space:
    /// [`AARCH64_OWN_BASE`] + `index` × [`SLOT_SIZE`], so slot 15 ends where level-0 entry 2
    /// (the user half) ends.
    pub const fn cheri_slot(index: u8) -> Self {
        Self { base: AARCH64_OWN_BASE + index as u64 * SLOT_SIZE }
    }

    /// The MPK slot of protection key `key`.
    pub const fn slot(key: u8) -> Self {
        Self { base: key as u64 * SLOT_SIZE }
    }

    pub const fn base(self) -> u64 {
        self.base
    }
    pub const fn image(self) -> u64 {
        self.base + IMAGE_OFFSET
    }
    pub const fn sys(self) -> u64 {
        self.base + SYS_OFFSET
    }
    pub const fn heap(self) -> u64 {
        self.base + HEAP_OFFSET
    }
    pub const fn stack_top(self) -> u64 {
        self.base + STACK_TOP_OFFSET
    }
    pub const fn stack_bottom(self) -> u64 {
        self.stack_top() - STACK_SIZE
    }

    /// The unmapped gap below the stack: a fault there is a stack overflow.
    pub fn guard(self) -> core::ops::Range<u64> {
        self.stack_bottom() - GUARD..self.stack_bottom()
    }

    /// The heap's size for `memory_bytes` (the limit less the image): less the stack, at most
    /// up to the guard.
    pub fn heap_len(self, memory_bytes: u64) -> u64 {
        (memory_bytes.saturating_sub(STACK_SIZE) & !(PAGE - 1)).min(STACK_TOP_OFFSET - STACK_SIZE - GUARD - HEAP_OFFSET)
    }

    /// Whether `page` lies in the heap (up to `heap_end`) or the stack, which are mapped on
    /// first touch (zero until then).
    pub fn lazy(self, heap_end: u64, page: u64) -> bool {
        (self.heap()..heap_end).contains(&page) || (self.stack_bottom()..self.stack_top()).contains(&page)
    }
}

/// What a sandbox has mapped in its layout, so that emptying it visits only that: the image,
/// the system data block and the input items mapped after it, and the lazily mapped heap and
/// stack pages between the lowest and highest it touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    layout: Layout,
    image_end: u64,
    sys_end: u64,
    heap_end: u64,
    stack_start: u64,
    /// The input items whose pages are mapped in the system region ([`crate::mapped`]): held
    /// here, so that whoever empties the region drops them after (their pages are the heap's
    /// again only once no sandbox can reach them).
    mapped: Vec<Bytes>,
}

impl Footprint {
    /// Nothing mapped yet.
    pub const fn new(layout: Layout) -> Self {
        Self {
            layout,
            image_end: layout.image(),
            sys_end: layout.sys(),
            heap_end: layout.heap(),
            stack_start: layout.stack_top(),
            mapped: Vec::new(),
        }
    }

    /// The image's `span` bytes are mapped.
    pub fn image(&mut self, span: u64) {
        self.image_end = self.image_end.max(self.layout.image() + span.next_multiple_of(PAGE));
    }

    /// The image stays mapped after the run (kept by the slot or space): not emptied with the rest.
    pub fn keep_image(&mut self) {
        self.image_end = self.layout.image();
    }

    /// `bytes`' pages are mapped in the system region, up to `sys_bytes` from its start; held
    /// until the footprint is dropped. `Err` (nothing noted) when the heap has no room for the
    /// note: the caller must not map them.
    pub fn map_input(&mut self, bytes: &Bytes, sys_bytes: u64) -> Result<(), crate::MapError> {
        self.mapped.try_reserve(1).map_err(|_| crate::MapError)?;
        self.mapped.push(bytes.clone());
        self.sys(sys_bytes);
        Ok(())
    }

    /// The system data block's `bytes` are mapped.
    pub fn sys(&mut self, bytes: u64) {
        self.sys_end = self.sys_end.max(self.layout.sys() + bytes.next_multiple_of(PAGE));
    }

    /// A lazily mapped page (heap or stack; any other is ignored, as nothing else is mapped
    /// lazily: [`Layout::lazy`]).
    pub fn lazy(&mut self, page: u64) {
        let page = page & !(PAGE - 1);
        if (self.layout.heap()..self.layout.stack_bottom() - GUARD).contains(&page) {
            self.heap_end = self.heap_end.max(page + PAGE);
        } else if (self.layout.stack_bottom()..self.layout.stack_top()).contains(&page) {
            self.stack_start = self.stack_start.min(page);
        }
    }

    /// The address ranges to empty: every page noted lies in one of them.
    pub fn ranges(&self) -> [core::ops::Range<u64>; 4] {
        let l = self.layout;
        [l.image()..self.image_end, l.sys()..self.sys_end, l.heap()..self.heap_end, self.stack_start..l.stack_top()]
    }
}

/// Pages needed for `bytes`.
pub fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheri_slots_fill_the_aarch64_user_half_without_overlap() {
        // Level-0 entry 2 (the user half, 512 GiB from 1 TiB) holds slots 1..=15; slot 0 (at
        // the entry's start) is never used (the key pool hands out 1..=15).
        assert_eq!(Layout::cheri_slot(1).base(), AARCH64_OWN_BASE + SLOT_SIZE);
        assert_eq!(Layout::cheri_slot(15).base() + SLOT_SIZE, AARCH64_OWN_BASE + (1 << 39));
        for k in 1..15u8 {
            assert_eq!(Layout::cheri_slot(k).base() + SLOT_SIZE, Layout::cheri_slot(k + 1).base());
            // A slot's base is aligned to its size: its DDC's bounds are exactly representable.
            assert_eq!(Layout::cheri_slot(k).base() % SLOT_SIZE, 0);
        }
    }

    #[test]
    fn regions_are_ordered_and_inside_the_slot() {
        for layout in [
            Layout::own(),
            Layout::own_at(AARCH64_OWN_BASE),
            Layout::slot(1),
            Layout::slot(15),
            Layout::cheri_slot(1),
            Layout::cheri_slot(15),
        ] {
            let b = layout.base();
            assert!(b < layout.image() && layout.image() + MAX_IMAGE_SPAN <= layout.sys());
            assert!(layout.sys() < layout.heap());
            let heap_end = layout.heap() + layout.heap_len(u64::MAX);
            assert!(heap_end <= layout.guard().start, "the heap never reaches the guard");
            assert_eq!(layout.guard().end, layout.stack_bottom());
            assert!(layout.stack_top() <= b + SLOT_SIZE);
        }
        assert!(Layout::slot(15).base() + SLOT_SIZE <= 1 << 39, "every slot under one PML4 entry");
        assert!(Layout::slot(15).base() + SLOT_SIZE <= 0x0000_8000_0000_0000, "lower half");
        let arm = Layout::own_at(AARCH64_OWN_BASE);
        assert!(crate::exit::AARCH64_USER.contains(&arm.base()), "aarch64: inside the sandboxes' level-0 entry");
        assert!(arm.stack_top() <= crate::exit::AARCH64_USER.end);
    }

    #[test]
    fn heap_len_leaves_the_stack_and_is_page_aligned() {
        let l = Layout::own();
        assert_eq!(l.heap_len(0), 0);
        assert_eq!(l.heap_len(STACK_SIZE), 0);
        assert_eq!(l.heap_len(STACK_SIZE + 4097), 4096);
        assert_eq!(l.heap_len(16 << 20), (16 << 20) - STACK_SIZE);
    }

    #[test]
    fn a_footprint_covers_every_page_it_noted_and_no_other_slot() {
        let l = Layout::slot(7);
        let mut f = Footprint::new(l);
        assert!(f.ranges().iter().all(|r| r.is_empty()), "nothing mapped: nothing to empty");
        f.image(0x2001);
        f.sys(10);
        let pages = [l.heap() + 5 * 4096, l.heap(), l.stack_top() - 4096, l.stack_bottom(), l.heap() + (1 << 30) + 17];
        for p in pages {
            f.lazy(p);
        }
        let covered = |a: u64| f.ranges().iter().any(|r| r.contains(&a));
        for p in pages.iter().chain(&[l.image(), l.image() + 0x2000, l.sys()]) {
            assert!(covered(*p), "{p:#x} is not emptied");
        }
        assert!(!covered(l.image() + 0x3000) && !covered(l.sys() + 4096));
        assert!(f.ranges().iter().all(|r| r.start >= l.base() && r.end <= l.base() + SLOT_SIZE), "inside the slot");
        // A page outside the heap and stack changes nothing.
        let before = f.clone();
        f.lazy(l.guard().start);
        f.lazy(Layout::slot(8).heap());
        assert_eq!(f, before);
    }

    #[test]
    fn a_mapped_input_is_held_and_its_pages_emptied() {
        let l = Layout::slot(3);
        let mut f = Footprint::new(l);
        let item = Bytes::copy_to_pages(&[7u8; 5000]).unwrap();
        f.map_input(&item, 3 * 4096).unwrap();
        assert!(f.ranges()[1].contains(&(l.sys() + 2 * 4096)), "the mapped pages are emptied");
        assert!(!f.ranges()[1].contains(&(l.sys() + 3 * 4096)));
        assert_eq!(f.mapped, [item], "held until the footprint goes");
    }

    #[test]
    fn only_heap_and_stack_are_lazy() {
        let l = Layout::slot(3);
        let heap_end = l.heap() + 8192;
        assert!(l.lazy(heap_end, l.heap()));
        assert!(l.lazy(heap_end, l.heap() + 4096));
        assert!(!l.lazy(heap_end, heap_end), "past the heap's end");
        assert!(l.lazy(heap_end, l.stack_top() - 4096));
        assert!(!l.lazy(heap_end, l.stack_top()));
        assert!(!l.lazy(heap_end, l.stack_bottom() - 4096), "the guard");
        assert!(!l.lazy(heap_end, l.image()) && !l.lazy(heap_end, l.sys()));
        assert!(!Layout::slot(4).lazy(Layout::slot(4).heap() + 8192, l.heap()), "another slot's heap");
    }
}
