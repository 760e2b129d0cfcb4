//! A checked image and how to load it. An [`Image`] exists only for a file that passed every
//! check, the forbidden-instruction scan included, so holding one means "safe to map and run".

use alloc::vec::Vec;
use core::ops::Range;

use crate::error::{ElfError, Place, Problem};
use crate::read::{page_ceil, page_floor};
use crate::relocate::Relocation;
use crate::scan::Scanner;
use crate::{Limits, dynamic, header, relocate, segments};

/// Access rights of a loaded segment, from its `p_flags`. Never both `write` and `execute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub execute: bool,
}

/// One loadable segment, as the engine maps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where it starts, as an offset from the image base (`p_vaddr`).
    pub offset: u64,
    /// Its size in memory (`p_memsz`); past the file bytes it is zero (bss).
    pub memory_size: u64,
    /// Its bytes in the file (`p_offset .. p_offset + p_filesz`), copied to `offset`.
    pub file_bytes: Range<usize>,
    /// Its access rights.
    pub perms: Perms,
}

impl Segment {
    /// Number of bytes that come from the file.
    pub fn file_size(&self) -> u64 {
        self.file_bytes.len() as u64
    }

    /// The pages it occupies, as offsets from the image base: what gets mapped with `perms`.
    /// No two segments of an [`Image`] share a page. Bytes of these pages outside the segment
    /// are zero after [`Image::load_into`].
    pub fn pages(&self) -> Range<u64> {
        let end = self.offset.saturating_add(self.memory_size);
        page_floor(self.offset)..page_ceil(end).unwrap_or(u64::MAX)
    }
}

/// A function image that passed every check: what to map, where to enter, how to relocate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    segments: Vec<Segment>,
    relocations: Vec<Relocation>,
    entry: u64,
    span: u64,
    align: u64,
    relro: Option<Range<u64>>,
    file_len: usize,
}

impl Image {
    /// Checks `file` with the default [`Limits`]; see [`Image::parse_with`].
    pub fn parse(file: &[u8]) -> Result<Image, ElfError> {
        Self::parse_with(file, &Limits::default())
    }

    /// Checks `file` as a static position-independent function image for `limits.machine`:
    /// the ELF header, every program header, the dynamic section, every relocation, and (x86_64)
    /// the executable bytes for forbidden instructions, in memory layout. The first problem found is returned.
    pub fn parse_with(file: &[u8], limits: &Limits) -> Result<Image, ElfError> {
        let header = header::parse(file, limits.machine)?;
        let layout = segments::parse(file, &header, limits)?;
        let executable = |load: &&segments::Load| load.segment.perms.execute;
        let in_code = layout.loads.iter().filter(executable).any(|load| {
            let segment = &load.segment;
            segment.offset <= header.entry && header.entry < segment.offset.saturating_add(segment.memory_size)
        });
        if !in_code {
            return Err(ElfError::new(
                Place::HeaderField("e_entry"),
                Problem::EntryNotExecutable { entry: header.entry },
            ));
        }
        let table = dynamic::parse(file, &layout)?;
        let relocations = relocate::parse(file, &table, &layout, limits.machine)?;
        let segments: Vec<Segment> = layout.loads.into_iter().map(|load| load.segment).collect();
        let image = Image {
            segments,
            relocations,
            entry: header.entry,
            span: layout.span,
            align: layout.align,
            relro: layout.relro,
            file_len: file.len(),
        };
        if limits.machine == crate::Machine::X86_64 {
            image.scan(file)?;
        }
        Ok(image)
    }

    /// Scans the executable pages as they will be in memory: zero before and after each
    /// segment's bytes within its pages, segments on adjacent pages as one run (an instruction
    /// can straddle them), a fresh start after a gap (execution cannot cross a page that is not
    /// executable). The file bytes are what ends up there: relocations only write to writable
    /// segments, which never share a page with an executable one.
    fn scan(&self, file: &[u8]) -> Result<(), ElfError> {
        let forbidden = |f: crate::Forbidden| ElfError::new(Place::Code(f.offset), Problem::Forbidden(f.what));
        let mut scanner = Scanner::new(0);
        let mut previous_end = None;
        for segment in self.segments.iter().filter(|segment| segment.perms.execute) {
            let pages = segment.pages();
            if previous_end != Some(pages.start) {
                scanner = Scanner::new(pages.start);
            }
            let bytes = file.get(segment.file_bytes.clone()).unwrap_or_default();
            scanner.feed_zeros(segment.offset.saturating_sub(pages.start)).map_err(forbidden)?;
            scanner.feed(bytes).map_err(forbidden)?;
            let file_end = segment.offset.saturating_add(segment.file_size());
            scanner.feed_zeros(pages.end.saturating_sub(file_end)).map_err(forbidden)?;
            previous_end = Some(pages.end);
        }
        Ok(())
    }

    /// The loadable segments, in ascending address order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The relocations [`Image::load_into`] applies, in table order.
    pub fn relocations(&self) -> &[Relocation] {
        &self.relocations
    }

    /// Offset of the entry point from the image base; inside an executable segment.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// Bytes from the image base to the end of the last segment's last page: the size of the
    /// image area the sandbox needs.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// Alignment the base must have: a page, or more if a segment asks for more.
    pub fn align(&self) -> u64 {
        self.align
    }

    /// Offsets (from the base) that `PT_GNU_RELRO` asks to be made read-only once relocated,
    /// if any. Inside the pages of one writable segment; an engine that honours it rounds it
    /// inward to pages.
    pub fn relro(&self) -> Option<Range<u64>> {
        self.relro.clone()
    }

    /// Loads the image into `memory`, the sandbox's image area, which the function will see at
    /// address `base`: zeroes the first [`Image::span`] bytes (page gaps and bss included, so
    /// nothing from an earlier tenant shows through), copies each segment's file bytes and
    /// applies the relocations. `file` must be the bytes this image was parsed from; a file of
    /// another length is refused (a cheap tripwire, not a proof: the caller keeps the file).
    /// Every write is bounds-checked; on error, `memory` may be partly written.
    pub fn load_into(&self, file: &[u8], memory: &mut [u8], base: u64) -> Result<(), ElfError> {
        let error = |problem| ElfError::new(Place::Load, problem);
        if file.len() != self.file_len {
            return Err(error(Problem::FileMismatch { expected: self.file_len, found: file.len() }));
        }
        if base & self.align.wrapping_sub(1) != 0 {
            return Err(error(Problem::BaseMisaligned { base, align: self.align }));
        }
        if base.checked_add(self.span).is_none() {
            return Err(error(Problem::BaseOverflow { base }));
        }
        let len = memory.len();
        // Every segment and relocation target lies within the span (checked at parse), so past
        // the first check the others cannot fail; they keep the writes checked regardless.
        let too_small = || error(Problem::MemoryTooSmall { needed: self.span, len });
        let span = usize::try_from(self.span).map_err(|_| too_small())?;
        memory.get_mut(..span).ok_or_else(too_small)?.fill(0);
        for segment in &self.segments {
            let source = file.get(segment.file_bytes.clone()).ok_or_else(too_small)?;
            let start = usize::try_from(segment.offset).map_err(|_| too_small())?;
            let end = start.checked_add(source.len()).ok_or_else(too_small)?;
            memory.get_mut(start..end).ok_or_else(too_small)?.copy_from_slice(source);
        }
        for relocation in &self.relocations {
            let start = usize::try_from(relocation.offset).map_err(|_| too_small())?;
            let end = start.checked_add(8).ok_or_else(too_small)?;
            let target = memory.get_mut(start..end).ok_or_else(too_small)?;
            target.copy_from_slice(&relocation.value(base).to_le_bytes());
        }
        Ok(())
    }
}
