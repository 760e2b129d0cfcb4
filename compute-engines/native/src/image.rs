//! Function images: the checks at registration and loading into a sandbox through the arch's
//! page tables.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use engine::{EngineError, ImageError};

use crate::layout::{Layout, MAX_IMAGE_SPAN};

/// Largest image file accepted.
pub const MAX_IMAGE_BYTES: usize = 32 << 20;

/// A sandbox page's rights. Executable pages are never writable (W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Writable,
    Executable,
}

/// The arch could not map a page (no frame for it or for a page table, or already mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapError;

/// A sandbox's page tables, as the arch provides them: every page the sandbox can reach is
/// mapped through here, with its rights and protection key (0 where keys are not used).
pub trait SandboxSpace {
    /// Maps `pages` fresh pages at `virt` (page-aligned) holding `bytes`, zero after them.
    fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), MapError>;

    /// Maps one fresh page at `virt`, zero but for what `fill` writes into its 4096 bytes.
    fn map_filled(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MapError>;

    /// Maps one fresh page at `virt` holding what `fill` writes into its 4096 bytes, which it
    /// writes every one of: the page may come in holding anything, so the arch need not zero it
    /// first. By default a zeroed page ([`map_filled`](Self::map_filled)).
    fn map_overwritten(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MapError> {
        self.map_filled(virt, access, key, fill)
    }

    /// Maps `frame`, one of an image's shared pages ([`NativeImage::shared_pages`], filled once
    /// when the function was prepared), at `virt`. Never writable: the arch refuses
    /// [`Access::Writable`]. The frame stays the image's: unmapping it does not free it.
    fn map_shared(&mut self, virt: u64, frame: u64, access: Access, key: u8) -> Result<(), MapError>;
}

/// How one page of an image is mapped into every sandbox that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PagePlan {
    /// Offset from the image base.
    offset: u64,
    access: Access,
    /// `Some(i)`: the image's shared page `i` (read-only or executable, the same bytes at every
    /// base, so one frame serves every run). `None`: a page of a writable segment (RELRO
    /// included), filled fresh for each run from the template and relocated for its base.
    shared: Option<usize>,
}

/// A checked image, and what its runs map: the plan of its pages, the bytes of its file-backed
/// pages (the template) and its relocations by offset.
#[derive(Clone)]
pub struct NativeImage {
    image: Arc<elf::Image>,
    plan: Arc<[PagePlan]>,
    /// The image's bytes from its base, loaded but not relocated, up to the last page that
    /// holds file bytes (or a shared page); zero past it.
    template: Arc<[u8]>,
    /// Sorted by offset.
    relocations: Arc<[elf::Relocation]>,
    shared_count: usize,
}

impl NativeImage {
    /// The entry point's offset in the image.
    pub fn entry(&self) -> u64 {
        self.image.entry()
    }

    /// Pages the image's segments take once loaded (counted against the memory limit).
    pub fn pages(&self) -> u64 {
        self.plan.len() as u64
    }

    /// Bytes from the image base to the end of its last page.
    pub fn span(&self) -> u64 {
        self.image.span()
    }

    /// The bytes (4096) of each shared page, in the order [`load_image`] expects their frames:
    /// the pages of read-only and executable segments, which hold no relocation and so are
    /// the same at every base. The arch fills one frame per page when the function is prepared.
    pub fn shared_pages(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.plan.iter().filter(|p| p.shared.is_some()).map(|p| self.template_page(p.offset))
    }

    /// How many shared pages [`NativeImage::shared_pages`] gives.
    pub fn shared_count(&self) -> usize {
        self.shared_count
    }

    /// The template's bytes of the page at `offset` (shorter than a page, or empty, where the
    /// template ends: the rest is zero).
    fn template_page(&self, offset: u64) -> &[u8] {
        let start = (offset as usize).min(self.template.len());
        let end = (offset as usize + PAGE).min(self.template.len());
        &self.template[start..end]
    }

    /// The offsets (from the image base) of its private pages: those of writable segments
    /// (RELRO included), which [`load_image`] fills fresh for each base.
    pub fn private_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.plan.iter().filter(|p| p.shared.is_none()).map(|p| p.offset)
    }

    /// Writes every byte of `page` (4096 bytes, holding anything), the private page at
    /// `offset`, for an image at `base`: the template's bytes, zeros after them, then every
    /// relocation that writes into it (a value may straddle two pages: each gets its part).
    /// What [`load_image`] puts in a private page, so that a space that keeps an image mapped
    /// from one run to the next can put back a page a run wrote.
    pub fn fill_private(&self, offset: u64, base: u64, page: &mut [u8]) {
        self.fill_private_with(offset, base, page, |rest| rest.fill(0));
    }

    /// [`fill_private`](Self::fill_private) with `zero` zeroing what follows the template's
    /// bytes (the kernel passes its page zeroing).
    pub fn fill_private_with(&self, offset: u64, base: u64, page: &mut [u8], zero: impl FnOnce(&mut [u8])) {
        let bytes = self.template_page(offset);
        page[..bytes.len()].copy_from_slice(bytes);
        zero(&mut page[bytes.len()..]);
        let end = offset + PAGE as u64;
        // The first relocation that may reach this page (one starting up to 7 bytes before it).
        let first = self.relocations.partition_point(|r| r.offset + 8 <= offset);
        for r in self.relocations[first..].iter().take_while(|r| r.offset < end) {
            let value = r.value(base).to_le_bytes();
            // A value wholly in this page (nearly all): its 8 bytes at once. One straddling a
            // page boundary: the bytes that fall in this page, one by one.
            let inside = r.offset.checked_sub(offset).map(|at| at as usize);
            if let Some(slot) = inside.and_then(|at| page.get_mut(at..at.checked_add(8)?)) {
                slot.copy_from_slice(&value);
                continue;
            }
            for (i, byte) in value.iter().enumerate() {
                let at = r.offset + i as u64;
                if (offset..end).contains(&at) {
                    page[(at - offset) as usize] = *byte;
                }
            }
        }
    }
}

const PAGE: usize = 4096;

/// Checks an image for the native engines: size, every ELF rule, the forbidden-instruction
/// scan; then plans its pages: which are shared by every run (read-only and executable
/// segments) and which each run gets fresh (writable segments, RELRO included).
pub fn prepare(file: &[u8]) -> Result<NativeImage, EngineError> {
    if file.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge { size: file.len(), limit: MAX_IMAGE_BYTES }.into());
    }
    let limits = elf::Limits { machine: elf::Machine::NATIVE, max_span: MAX_IMAGE_SPAN, max_align: 2 << 20 };
    let image = elf::Image::parse_with(file, &limits)
        .map_err(|e| EngineError::from(ImageError::Malformed { reason: format!("{e}") }))?;
    let relro = image.relro().map(|r| (r.start.next_multiple_of(4096), r.end & !0xfff));
    let mut plan = Vec::new();
    let mut shared_count = 0;
    // The template reaches the end of the last file byte of a writable segment, or the end of
    // the last shared page: pages past it (bss) are zero.
    let mut template_len = 0u64;
    for segment in image.segments() {
        let range = segment.pages();
        let mut page = range.start;
        while page < range.end {
            let in_relro = relro.is_some_and(|(s, e)| page >= s && page + 4096 <= e);
            let access = match (segment.perms.execute, segment.perms.write && !in_relro) {
                (true, _) => Access::Executable,
                (false, true) => Access::Writable,
                (false, false) => Access::ReadOnly,
            };
            let shared = (!segment.perms.write).then(|| {
                shared_count += 1;
                shared_count - 1
            });
            plan.try_reserve(1).map_err(|_| internal("no memory for the image's plan"))?;
            plan.push(PagePlan { offset: page, access, shared });
            page += 4096;
        }
        let end = if segment.perms.write { segment.offset + segment.file_size() } else { range.end };
        template_len = template_len.max(end);
    }
    let mut template = Vec::new();
    template.try_reserve_exact(template_len as usize).map_err(|_| internal("no memory for the image"))?;
    template.resize(template_len as usize, 0);
    for segment in image.segments() {
        let source = file.get(segment.file_bytes.clone()).ok_or_else(|| internal("segment outside the file"))?;
        let start = segment.offset as usize;
        template
            .get_mut(start..start + source.len())
            .ok_or_else(|| internal("segment outside the template"))?
            .copy_from_slice(source);
    }
    let mut relocations = Vec::new();
    relocations.try_reserve_exact(image.relocations().len()).map_err(|_| internal("no memory for relocations"))?;
    relocations.extend_from_slice(image.relocations());
    relocations.sort_unstable_by_key(|r| r.offset);
    Ok(NativeImage {
        image: Arc::new(image),
        plan: plan.into(),
        template: template.into(),
        relocations: relocations.into(),
        shared_count,
    })
}

fn internal(what: &str) -> EngineError {
    EngineError::internal(format!("native engine: {what}"))
}

/// Loads the image at the layout's image address: its shared pages from `shared` (the frames
/// the arch filled from [`NativeImage::shared_pages`], in that order), its writable pages
/// fresh, filled and relocated for this base; each with its rights (executable never
/// writable), RELRO read-only.
pub fn load_image(
    space: &mut impl SandboxSpace,
    key: u8,
    layout: Layout,
    image: &NativeImage,
    shared: &[u64],
) -> Result<(), EngineError> {
    if shared.len() != image.shared_count {
        return Err(internal("the image's shared pages are missing"));
    }
    let base = layout.image();
    for page in image.plan.iter() {
        let virt = base + page.offset;
        let mapped = match page.shared {
            Some(index) => space.map_shared(virt, shared[index], page.access, key),
            // Every byte is written, so the page need not be zeroed first.
            None => {
                space.map_overwritten(virt, page.access, key, &mut |bytes| image.fill_private(page.offset, base, bytes))
            }
        };
        mapped.map_err(|_| internal("mapping the image"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Page tables on the host: page → (bytes, rights, key, the shared frame it maps, if any).
    #[derive(Default)]
    struct Pages(BTreeMap<u64, (Vec<u8>, Access, u8, Option<u64>)>);

    /// Shared "frames" on the host: frame number → bytes.
    fn frames(image: &NativeImage) -> Vec<Vec<u8>> {
        image.shared_pages().map(|b| b.to_vec()).collect()
    }

    impl Pages {
        fn insert(&mut self, at: u64, entry: (Vec<u8>, Access, u8, Option<u64>)) -> Result<(), MapError> {
            if self.0.insert(at, entry).is_some() {
                return Err(MapError);
            }
            Ok(())
        }
    }

    impl SandboxSpace for Pages {
        fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), MapError> {
            for p in 0..pages {
                let mut page = alloc::vec![0u8; 4096];
                let from = (p * 4096) as usize;
                if from < bytes.len() {
                    let n = (bytes.len() - from).min(4096);
                    page[..n].copy_from_slice(&bytes[from..from + n]);
                }
                self.insert(virt + p * 4096, (page, access, key, None))?;
            }
            Ok(())
        }

        fn map_filled(
            &mut self,
            virt: u64,
            access: Access,
            key: u8,
            fill: &mut dyn FnMut(&mut [u8]),
        ) -> Result<(), MapError> {
            let mut page = alloc::vec![0u8; 4096];
            fill(&mut page);
            self.insert(virt, (page, access, key, None))
        }

        /// A page that held something else: what the sandbox sees must all be written.
        fn map_overwritten(
            &mut self,
            virt: u64,
            access: Access,
            key: u8,
            fill: &mut dyn FnMut(&mut [u8]),
        ) -> Result<(), MapError> {
            let mut page = alloc::vec![0xa5u8; 4096];
            fill(&mut page);
            self.insert(virt, (page, access, key, None))
        }

        fn map_shared(&mut self, virt: u64, frame: u64, access: Access, key: u8) -> Result<(), MapError> {
            if access == Access::Writable {
                return Err(MapError);
            }
            self.insert(virt, (Vec::new(), access, key, Some(frame)))
        }
    }

    const TINY: &[u8] = include_bytes!("../../elf/tests/fixtures/tiny_fn.elf");

    /// The frame numbers 0..n, as the arch would hand them over.
    fn numbers(image: &NativeImage) -> Vec<u64> {
        (0..image.shared_count() as u64).collect()
    }

    /// What the sandbox sees at image offset `offset` (shared pages through their frame).
    fn read(space: &Pages, frames: &[Vec<u8>], at: u64) -> u8 {
        let (bytes, _, _, frame) = &space.0[&(at & !0xfff)];
        let bytes = frame.map_or(bytes, |f| &frames[f as usize]);
        bytes.get((at & 0xfff) as usize).copied().unwrap_or(0)
    }

    #[test]
    fn loads_a_real_image_w_xor_x_with_its_key() {
        let image = prepare(TINY).unwrap();
        let layout = Layout::slot(5);
        let mut space = Pages::default();
        load_image(&mut space, 5, layout, &image, &numbers(&image)).unwrap();
        assert_eq!(space.0.len() as u64, image.pages(), "one mapping per page of the image");
        assert!(space.0.values().all(|(_, _, key, _)| *key == 5), "every page carries the sandbox's key");
        let kinds: Vec<Access> = space.0.values().map(|(_, a, _, _)| *a).collect();
        assert!(kinds.contains(&Access::Executable) && kinds.contains(&Access::ReadOnly));
        // The entry point lies in an executable page, which is never writable, and shared.
        let entry_page = (layout.image() + image.entry()) & !0xfff;
        assert_eq!(space.0[&entry_page].1, Access::Executable);
        assert!(space.0[&entry_page].3.is_some(), "code comes from the shared frames");
        assert!(space.0.values().all(|(_, a, _, f)| f.is_none() || *a != Access::Writable), "shared is never writable");
        assert!(space.0.values().all(|(_, a, _, f)| *a != Access::Writable || f.is_none()));
        assert!(space.0.keys().all(|p| *p >= layout.image() && *p < layout.sys()));
        // Mapping the same image twice over is refused by the space, and the error is clean.
        assert!(load_image(&mut space, 5, layout, &image, &numbers(&image)).is_err());
        // Without its shared frames an image is not loaded.
        assert!(load_image(&mut Pages::default(), 5, layout, &image, &[]).is_err());
    }

    /// Every byte a sandbox sees is what `elf`'s own loader puts there for that base, at two
    /// bases, while the shared pages are the same for both.
    #[test]
    fn the_sandbox_sees_what_the_elf_loader_loads_at_every_base() {
        let image = prepare(TINY).unwrap();
        let frames = frames(&image);
        assert!(frames.iter().all(|f| f.len() <= 4096));
        for key in [1u8, 9] {
            let layout = Layout::slot(key);
            let mut space = Pages::default();
            load_image(&mut space, key, layout, &image, &numbers(&image)).unwrap();
            let mut expected = alloc::vec![0u8; image.span() as usize];
            image.image.load_into(TINY, &mut expected, layout.image()).unwrap();
            for page in space.0.keys() {
                for i in 0..4096 {
                    let at = page + i;
                    let want = expected[(at - layout.image()) as usize];
                    assert_eq!(read(&space, &frames, at), want, "byte at {:#x} (key {key})", at - layout.image());
                }
            }
        }
    }

    #[test]
    fn relocations_reach_straddled_pages() {
        let image = prepare(TINY).unwrap();
        // A made-up value straddling a page boundary: each page gets its part.
        let mut with = image.clone();
        with.relocations = alloc::vec![elf::Relocation { offset: 0x1ffc, addend: 0x1122 }].into();
        let base = 0x55_0000_0000u64;
        let value = (base + 0x1122).to_le_bytes();
        // Pages that held something: every byte is written.
        let (mut low, mut high) = (alloc::vec![0x5au8; 4096], alloc::vec![0xa5u8; 4096]);
        with.template = Arc::from(&[][..]);
        with.fill_private(0x1000, base, &mut low);
        with.fill_private(0x2000, base, &mut high);
        assert_eq!(&low[0xffc..], &value[..4]);
        assert_eq!(&high[..4], &value[4..]);
        assert!(low[..0xffc].iter().chain(&high[4..]).all(|b| *b == 0));

        // Values wholly inside a page, at its first and last 8 bytes and in between, beside
        // ones straddling both of its boundaries: every byte where it belongs, nothing else.
        let offsets = [0xff9u64, 0x1000, 0x1008, 0x1123, 0x1ff8, 0x2ffd];
        with.relocations = offsets
            .iter()
            .enumerate()
            .map(|(i, &offset)| elf::Relocation { offset, addend: 0x100 * i as i64 + 7 })
            .collect::<alloc::vec::Vec<_>>()
            .into();
        let mut expected = alloc::vec![0u8; 0x4000];
        for (i, &offset) in offsets.iter().enumerate() {
            let value = (base + 0x100 * i as u64 + 7).to_le_bytes();
            expected[offset as usize..offset as usize + 8].copy_from_slice(&value);
        }
        for page_at in [0x0u64, 0x1000, 0x2000, 0x3000] {
            let mut page = alloc::vec![0x77u8; 4096];
            with.fill_private(page_at, base, &mut page);
            assert_eq!(page, &expected[page_at as usize..page_at as usize + 4096], "page {page_at:#x}");
        }
    }

    /// A page a run wrote, filled again with `fill_private`, holds what a fresh load puts
    /// there: a space that keeps the image mapped (the kernel's slots) restores exactly that.
    #[test]
    fn a_written_private_page_filled_again_is_as_loaded() {
        let image = prepare(TINY).unwrap();
        let layout = Layout::slot(3);
        let mut fresh = Pages::default();
        load_image(&mut fresh, 3, layout, &image, &numbers(&image)).unwrap();
        let private: Vec<u64> = image.private_pages().collect();
        assert!(!private.is_empty(), "the fixture has a writable page");
        let plan_private = fresh.0.values().filter(|(_, _, _, frame)| frame.is_none()).count();
        assert_eq!(private.len(), plan_private, "one offset per private page");
        for offset in private {
            let loaded = &fresh.0[&(layout.image() + offset)].0;
            let mut page = alloc::vec![0xeeu8; 4096];
            image.fill_private(offset, layout.image(), &mut page);
            assert_eq!(&page, loaded, "private page {offset:#x}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert_eq!(prepare(b"\x7fELF").err().map(|e| e.code()), Some("invalid_image"));
        let huge = alloc::vec![0u8; MAX_IMAGE_BYTES + 1];
        assert!(prepare(&huge).is_err());
    }
}
