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
    /// Maps `pages` pages at `virt` (page-aligned) holding `bytes`, zero after them.
    fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), MapError>;
}

/// A checked image and its file (the loader copies segments from it at every run).
#[derive(Clone)]
pub struct NativeImage {
    image: Arc<fn_elf::Image>,
    file: Arc<[u8]>,
}

impl NativeImage {
    /// The entry point's offset in the image.
    pub fn entry(&self) -> u64 {
        self.image.entry()
    }

    /// Pages the image's segments take once loaded (counted against the memory limit).
    pub fn pages(&self) -> u64 {
        self.image.segments().iter().map(|s| (s.pages().end - s.pages().start) / 4096).sum()
    }
}

/// Checks an image for the native engines: size, every ELF rule, the forbidden-instruction scan.
pub fn prepare(file: &[u8]) -> Result<NativeImage, EngineError> {
    if file.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge { size: file.len(), limit: MAX_IMAGE_BYTES }.into());
    }
    let limits = fn_elf::Limits { max_span: MAX_IMAGE_SPAN, max_align: 2 << 20 };
    let image = fn_elf::Image::parse_with(file, &limits)
        .map_err(|e| EngineError::from(ImageError::Malformed { reason: format!("{e}") }))?;
    Ok(NativeImage { image: Arc::new(image), file: Arc::from(file) })
}

fn internal(what: &str) -> EngineError {
    EngineError::internal(format!("native engine: {what}"))
}

/// Loads the image at the layout's image address: each segment's pages with its rights
/// (executable never writable), RELRO read-only.
pub fn load_image(
    space: &mut impl SandboxSpace,
    key: u8,
    layout: Layout,
    image: &NativeImage,
) -> Result<(), EngineError> {
    let span = image.image.span();
    let mut memory = Vec::new();
    memory.try_reserve_exact(span as usize).map_err(|_| internal("no memory for the image"))?;
    memory.resize(span as usize, 0);
    image.image.load_into(&image.file, &mut memory, layout.image()).map_err(|e| internal(&format!("load: {e}")))?;
    let relro = image.image.relro().map(|r| (r.start.next_multiple_of(4096), r.end & !0xfff));
    for segment in image.image.segments() {
        let range = segment.pages();
        let mut page = range.start;
        while page < range.end {
            let in_relro = relro.is_some_and(|(s, e)| page >= s && page + 4096 <= e);
            let access = match (segment.perms.execute, segment.perms.write && !in_relro) {
                (true, _) => Access::Executable,
                (false, true) => Access::Writable,
                (false, false) => Access::ReadOnly,
            };
            let bytes = memory
                .get(page as usize..(page + 4096) as usize)
                .ok_or_else(|| internal("segment outside the span"))?;
            space.map_bytes(layout.image() + page, bytes, 1, access, key).map_err(|_| internal("mapping the image"))?;
            page += 4096;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Page tables on the host: page → (bytes, rights, key).
    #[derive(Default)]
    struct Pages(BTreeMap<u64, (Vec<u8>, Access, u8)>);

    impl SandboxSpace for Pages {
        fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), MapError> {
            for p in 0..pages {
                let at = virt + p * 4096;
                let mut page = alloc::vec![0u8; 4096];
                let from = (p * 4096) as usize;
                if from < bytes.len() {
                    let n = (bytes.len() - from).min(4096);
                    page[..n].copy_from_slice(&bytes[from..from + n]);
                }
                if self.0.insert(at, (page, access, key)).is_some() {
                    return Err(MapError);
                }
            }
            Ok(())
        }
    }

    const TINY: &[u8] = include_bytes!("../../elf/tests/fixtures/tiny_fn.elf");

    #[test]
    fn loads_a_real_image_w_xor_x_with_its_key() {
        let image = prepare(TINY).unwrap();
        let layout = Layout::slot(5);
        let mut space = Pages::default();
        load_image(&mut space, 5, layout, &image).unwrap();
        assert_eq!(space.0.len() as u64, image.pages(), "one mapping per page of the image");
        assert!(space.0.values().all(|(_, _, key)| *key == 5), "every page carries the sandbox's key");
        let kinds: Vec<Access> = space.0.values().map(|(_, a, _)| *a).collect();
        assert!(kinds.contains(&Access::Executable) && kinds.contains(&Access::ReadOnly));
        // The entry point lies in an executable page, which is never writable.
        let entry_page = (layout.image() + image.entry()) & !0xfff;
        assert_eq!(space.0[&entry_page].1, Access::Executable);
        assert!(space.0.keys().all(|p| *p >= layout.image() && *p < layout.sys()));
        // Mapping the same image twice over is refused by the space, and the error is clean.
        assert!(load_image(&mut space, 5, layout, &image).is_err());
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert_eq!(prepare(b"\x7fELF").err().map(|e| e.code()), Some("invalid_image"));
        let huge = alloc::vec![0u8; MAX_IMAGE_BYTES + 1];
        assert!(prepare(&huge).is_err());
    }
}
