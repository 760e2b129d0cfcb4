//! Program headers: which segments to load where, with which permissions, and which other
//! segments the loader accepts. The rules come from what the engines need to map an image:
//! one set of permissions per page (so loadable segments may not share a page), W^X per segment,
//! everything inside the file and inside the size limit, and no segment asking for a runtime the
//! sandbox does not have (a dynamic linker, thread-local storage, an executable stack).

use alloc::vec::Vec;
use core::ops::Range;

use crate::Limits;
use crate::abi::{
    PF_R, PF_W, PF_X, PHDR_SIZE, PT_DYNAMIC, PT_GNU_EH_FRAME, PT_GNU_PROPERTY, PT_GNU_RELRO, PT_GNU_SFRAME,
    PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE, PT_NULL, PT_PHDR, PT_TLS,
};
use crate::error::{ElfError, Place, Problem};
use crate::header::Header;
use crate::image::{Perms, Segment};
use crate::read::{file_range, page_ceil, page_floor, u32_at, u64_at};

/// One `Elf64_Phdr`, fields as read (`p_paddr` is meaningless for an image and skipped).
#[derive(Clone, Copy, Debug)]
struct ProgramHeader {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    memory_size: u64,
    align: u64,
}

/// A checked `PT_LOAD`, with its program header index for messages.
#[derive(Clone, Debug)]
pub(crate) struct Load {
    pub index: usize,
    pub segment: Segment,
}

impl Load {
    /// End of its bytes in memory (offset from the image base); cannot overflow once checked.
    pub fn end(&self) -> u64 {
        self.segment.offset.saturating_add(self.segment.memory_size)
    }

    /// End of its file-backed bytes in memory.
    pub fn file_end(&self) -> u64 {
        self.segment.offset.saturating_add(self.segment.file_size())
    }
}

/// The checked program headers.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// Non-empty `PT_LOAD`s in ascending address order, no two sharing a page.
    pub loads: Vec<Load>,
    /// `PT_DYNAMIC`: its program header index and its bytes in the file.
    pub dynamic: Option<(usize, Range<usize>)>,
    /// `PT_GNU_RELRO`: addresses that may be made read-only once relocated.
    pub relro: Option<Range<u64>>,
    /// Alignment the image base needs: a page, or the largest `p_align` of a `PT_LOAD`.
    pub align: u64,
    /// Bytes from the image base to the end of the last loaded page.
    pub span: u64,
}

impl Layout {
    /// The loadable segment whose memory holds `len` bytes at `addr`, if one does.
    pub fn load_holding(&self, addr: u64, len: u64) -> Option<&Load> {
        let after = self.loads.partition_point(|load| load.segment.offset <= addr);
        let load = self.loads.get(after.checked_sub(1)?)?;
        (addr.checked_add(len)? <= load.end()).then_some(load)
    }
}

fn read_program_header(file: &[u8], offset: u64) -> Option<ProgramHeader> {
    Some(ProgramHeader {
        p_type: u32_at(file, offset)?,
        flags: u32_at(file, offset.checked_add(4)?)?,
        offset: u64_at(file, offset.checked_add(8)?)?,
        vaddr: u64_at(file, offset.checked_add(16)?)?,
        file_size: u64_at(file, offset.checked_add(32)?)?,
        memory_size: u64_at(file, offset.checked_add(40)?)?,
        align: u64_at(file, offset.checked_add(48)?)?,
    })
}

/// Checks every program header of `file` (whose header is `header`) against `limits`.
pub(crate) fn parse(file: &[u8], header: &Header, limits: &Limits) -> Result<Layout, ElfError> {
    let mut layout = Layout { loads: Vec::new(), dynamic: None, relro: None, align: crate::PAGE_SIZE, span: 0 };
    let mut relro_header = None;
    let mut seen_stack = false;
    for index in 0..usize::from(header.phnum) {
        let place = Place::ProgramHeader(index);
        let error = |problem| ElfError::new(place, problem);
        // The header check proved the whole table is inside the file.
        let at = (index as u64).checked_mul(PHDR_SIZE).and_then(|o| o.checked_add(header.phoff));
        let ph = at.and_then(|at| read_program_header(file, at)).ok_or_else(|| {
            error(Problem::OutsideFile {
                what: "program header",
                offset: at.unwrap_or(u64::MAX),
                size: PHDR_SIZE,
                file_len: file.len(),
            })
        })?;
        if ph.p_type == PT_NULL {
            // "The array element is unused; other members' values are undefined."
            continue;
        }
        if ph.flags & !(PF_R | PF_W | PF_X) != 0 {
            return Err(error(Problem::UnknownSegmentFlags { flags: ph.flags }));
        }
        let Some(bytes) = file_range(file.len(), ph.offset, ph.file_size) else {
            return Err(error(Problem::OutsideFile {
                what: "segment",
                offset: ph.offset,
                size: ph.file_size,
                file_len: file.len(),
            }));
        };
        match ph.p_type {
            PT_LOAD => {
                if let Some(load) = check_load(index, &ph, bytes, &layout, limits)? {
                    layout.align = layout.align.max(ph.align);
                    layout.span = page_ceil(load.end()).unwrap_or(u64::MAX);
                    layout.loads.push(load);
                }
            }
            PT_DYNAMIC => {
                if layout.dynamic.is_some() {
                    return Err(error(Problem::Duplicate { what: "PT_DYNAMIC" }));
                }
                layout.dynamic = Some((index, bytes));
            }
            PT_GNU_RELRO => {
                if relro_header.is_some() {
                    return Err(error(Problem::Duplicate { what: "PT_GNU_RELRO" }));
                }
                relro_header = Some((index, ph.vaddr, ph.memory_size));
            }
            PT_GNU_STACK => {
                if seen_stack {
                    return Err(error(Problem::Duplicate { what: "PT_GNU_STACK" }));
                }
                seen_stack = true;
                if ph.flags & PF_X != 0 {
                    return Err(error(Problem::ExecutableStack));
                }
            }
            // Information only (notes, unwind tables, where the headers are): nothing to do.
            PT_NOTE | PT_PHDR | PT_GNU_EH_FRAME | PT_GNU_PROPERTY | PT_GNU_SFRAME => {}
            PT_INTERP => {
                return Err(error(Problem::UnsupportedSegment {
                    p_type: ph.p_type,
                    why: "the image asks for a dynamic linker; there is none, link it static",
                }));
            }
            PT_TLS => {
                return Err(error(Problem::UnsupportedSegment {
                    p_type: ph.p_type,
                    why: "sandboxes have no thread-local storage",
                }));
            }
            _ => {
                return Err(error(Problem::UnsupportedSegment {
                    p_type: ph.p_type,
                    why: "unknown segment types may carry meaning the loader would ignore",
                }));
            }
        }
    }
    if layout.loads.is_empty() {
        return Err(ElfError::new(Place::Header, Problem::NoLoadSegments));
    }
    if let Some((index, vaddr, size)) = relro_header {
        layout.relro = Some(check_relro(index, vaddr, size, &layout)?);
    }
    Ok(layout)
}

/// Checks one `PT_LOAD` against the rules and the segments before it; `None` for an empty one.
fn check_load(
    index: usize,
    ph: &ProgramHeader,
    bytes: Range<usize>,
    layout: &Layout,
    limits: &Limits,
) -> Result<Option<Load>, ElfError> {
    let error = |problem| ElfError::new(Place::ProgramHeader(index), problem);
    if ph.flags & PF_W != 0 && ph.flags & PF_X != 0 {
        return Err(error(Problem::WritableAndExecutable));
    }
    if ph.file_size > ph.memory_size {
        return Err(error(Problem::FileSizeOverMemorySize { file_size: ph.file_size, memory_size: ph.memory_size }));
    }
    // 0 and 1 both mean "no alignment constraint".
    if ph.align > 1 {
        if !ph.align.is_power_of_two() || ph.align > limits.max_align {
            return Err(error(Problem::BadAlignment { align: ph.align }));
        }
        // Power of two, so `align - 1` is the mask of the low bits.
        let mask = ph.align.wrapping_sub(1);
        if ph.vaddr & mask != ph.offset & mask {
            return Err(error(Problem::Misaligned { vaddr: ph.vaddr, offset: ph.offset, align: ph.align }));
        }
    }
    let end = ph.vaddr.checked_add(ph.memory_size).and_then(page_ceil);
    match end {
        Some(end) if end <= limits.max_span => {}
        _ => return Err(error(Problem::TooLarge { end: end.unwrap_or(u64::MAX), limit: limits.max_span })),
    }
    if ph.memory_size == 0 {
        return Ok(None);
    }
    if let Some(previous) = layout.loads.last() {
        if ph.vaddr < previous.segment.offset {
            return Err(error(Problem::OutOfOrder { vaddr: ph.vaddr, previous: previous.segment.offset }));
        }
        let first_page = page_floor(ph.vaddr);
        if first_page < page_ceil(previous.end()).unwrap_or(u64::MAX) {
            return Err(error(Problem::SharedPage { other: previous.index, page: first_page }));
        }
    }
    let perms = Perms { read: ph.flags & PF_R != 0, write: ph.flags & PF_W != 0, execute: ph.flags & PF_X != 0 };
    Ok(Some(Load {
        index,
        segment: Segment { offset: ph.vaddr, memory_size: ph.memory_size, file_bytes: bytes, perms },
    }))
}

/// `PT_GNU_RELRO` names data that is written by relocation and read-only afterwards, so it
/// must lie in the pages of one writable segment (linkers pad it to a page end, past `p_memsz`).
fn check_relro(index: usize, vaddr: u64, size: u64, layout: &Layout) -> Result<Range<u64>, ElfError> {
    let error = || ElfError::new(Place::ProgramHeader(index), Problem::RelroNotWritable { vaddr, size });
    let end = vaddr.checked_add(size).ok_or_else(error)?;
    let after = layout.loads.partition_point(|load| load.segment.offset <= vaddr);
    let load = after.checked_sub(1).and_then(|i| layout.loads.get(i)).ok_or_else(error)?;
    let pages_end = page_ceil(load.end()).ok_or_else(error)?;
    if !load.segment.perms.write || end > pages_end {
        return Err(error());
    }
    Ok(vaddr..end)
}
