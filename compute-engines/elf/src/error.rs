//! Why an image was refused, and where. Every error names a place (a header field, a program
//! header by index, a dynamic entry, a relocation with its target, an address in the code) and a
//! problem with the values found, so a function author can fix the build without a hex editor.

use core::fmt;

use crate::abi::{dynamic_tag_name, relocation_name, segment_type_name};
use crate::scan::ForbiddenInstruction;

/// An image refused by [`Image::parse`](crate::Image::parse) or a load refused by
/// [`Image::load_into`](crate::Image::load_into). Displays as `"<place>: <problem>"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfError {
    /// Where in the file (or the load) the problem is.
    pub place: Place,
    /// What is wrong there.
    pub problem: Problem,
}

impl ElfError {
    pub(crate) const fn new(place: Place, problem: Problem) -> Self {
        Self { place, problem }
    }
}

/// Where a problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// The ELF header as a whole (or the file, when it is too short for one).
    Header,
    /// One field of the ELF header, by its `Elf64_Ehdr` name (`"e_machine"`, `"EI_CLASS"`…).
    HeaderField(&'static str),
    /// The program header with this index.
    ProgramHeader(usize),
    /// The entry with this index in the `PT_DYNAMIC` segment.
    Dynamic(usize),
    /// The relocation with this index in the `DT_RELA` table, and the offset it targets.
    Relocation {
        /// Index in the table.
        index: usize,
        /// `r_offset`: where, from the image base, it would write.
        offset: u64,
    },
    /// Executable bytes at this offset from the image base.
    Code(u64),
    /// [`Image::load_into`](crate::Image::load_into): the arguments it was given.
    Load,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header => f.write_str("ELF header"),
            Place::HeaderField(field) => write!(f, "ELF header {field}"),
            Place::ProgramHeader(index) => write!(f, "program header {index}"),
            Place::Dynamic(index) => write!(f, "dynamic entry {index}"),
            Place::Relocation { index, offset } => write!(f, "relocation {index} at {offset:#x}"),
            Place::Code(offset) => write!(f, "code at {offset:#x}"),
            Place::Load => f.write_str("load"),
        }
    }
}

/// What is wrong. Variants carry the values found so messages can quote them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The file ends before the ELF header does.
    TooShort {
        /// Length of the file.
        len: usize,
    },
    /// The first four bytes are not `7F 'E' 'L' 'F'`.
    BadMagic,
    /// A field holds a value this loader does not accept.
    Unexpected {
        /// The field, by its ELF name.
        field: &'static str,
        /// The value found.
        found: u64,
        /// What would have been accepted, in words.
        expected: &'static str,
    },
    /// `e_type` is `ET_EXEC`: a fixed-address executable cannot be placed at a sandbox's base.
    FixedAddressExecutable,
    /// A range of the file named by the image ends past the end of the file.
    OutsideFile {
        /// What the range holds.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its size in bytes.
        size: u64,
        /// Length of the file.
        file_len: usize,
    },
    /// A program header of a type the loader does not support.
    UnsupportedSegment {
        /// `p_type`.
        p_type: u32,
        /// Why it is refused.
        why: &'static str,
    },
    /// `p_flags` has bits other than R, W and X.
    UnknownSegmentFlags {
        /// `p_flags`.
        flags: u32,
    },
    /// A segment is both writable and executable (W^X).
    WritableAndExecutable,
    /// `PT_GNU_STACK` asks for an executable stack.
    ExecutableStack,
    /// `p_filesz` is larger than `p_memsz`.
    FileSizeOverMemorySize {
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        memory_size: u64,
    },
    /// `p_align` is not a power of two, or is above [`Limits::max_align`](crate::Limits::max_align).
    BadAlignment {
        /// `p_align`.
        align: u64,
    },
    /// `p_vaddr` and `p_offset` are not congruent modulo `p_align`.
    Misaligned {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
        /// `p_align`.
        align: u64,
    },
    /// A segment ends past [`Limits::max_span`](crate::Limits::max_span) (or past 2^64).
    TooLarge {
        /// Where it ends, rounded up to a page (saturating).
        end: u64,
        /// The limit.
        limit: u64,
    },
    /// `PT_LOAD` headers must come in ascending `p_vaddr` order (the ELF specification says so).
    OutOfOrder {
        /// This segment's `p_vaddr`.
        vaddr: u64,
        /// The previous `PT_LOAD`'s `p_vaddr`.
        previous: u64,
    },
    /// Two loadable segments share a page: one page cannot carry two sets of permissions.
    SharedPage {
        /// The other program header.
        other: usize,
        /// The first shared page, as an offset from the image base.
        page: u64,
    },
    /// A second program header of a kind there may be only one of.
    Duplicate {
        /// The kind, e.g. `"PT_DYNAMIC"`.
        what: &'static str,
    },
    /// The image has no `PT_LOAD` with a non-zero size.
    NoLoadSegments,
    /// `e_entry` does not fall inside an executable `PT_LOAD`.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
    /// `PT_GNU_RELRO` is not inside the pages of one writable `PT_LOAD`.
    RelroNotWritable {
        /// Its `p_vaddr`.
        vaddr: u64,
        /// Its `p_memsz`.
        size: u64,
    },
    /// The dynamic section has no `DT_NULL` before its end.
    NoDynamicTerminator,
    /// A dynamic tag the loader refuses.
    UnsupportedDynamicTag {
        /// `d_tag`.
        tag: i64,
        /// Why it is refused.
        why: &'static str,
    },
    /// A dynamic tag that may appear once appears again.
    DuplicateDynamicTag {
        /// `d_tag`.
        tag: i64,
    },
    /// A dynamic tag needs a companion that is missing (`DT_RELA` without `DT_RELASZ`…).
    MissingDynamicTag {
        /// The tag that is missing.
        missing: i64,
    },
    /// A table named by address is not inside the file bytes of one `PT_LOAD`.
    NotInFile {
        /// What the table is.
        what: &'static str,
        /// Its address (offset from the image base).
        vaddr: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// A relocation type other than `R_X86_64_RELATIVE`.
    UnsupportedRelocation {
        /// The type (low 32 bits of `r_info`).
        r_type: u32,
    },
    /// A relocation's 8 target bytes are not inside one writable `PT_LOAD`.
    RelocationTarget,
    /// Executable bytes hold an instruction that could change memory protection.
    Forbidden(ForbiddenInstruction),
    /// The kernel heap could not hold what the image needs to describe.
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// How many entries it needed.
        count: usize,
    },
    /// `load_into` was given a file of another length than the one parsed.
    FileMismatch {
        /// Length of the file that was parsed.
        expected: usize,
        /// Length of the file given.
        found: usize,
    },
    /// `load_into` was given a base that is not a multiple of [`Image::align`](crate::Image::align).
    BaseMisaligned {
        /// The base given.
        base: u64,
        /// The alignment needed.
        align: u64,
    },
    /// `base + span` does not fit in 64 bits.
    BaseOverflow {
        /// The base given.
        base: u64,
    },
    /// The memory given to `load_into` is smaller than the image's span.
    MemoryTooSmall {
        /// Bytes needed ([`Image::span`](crate::Image::span)).
        needed: u64,
        /// Bytes given.
        len: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooShort { len } => write!(f, "file is {len} bytes, shorter than the 64-byte ELF header"),
            Problem::BadMagic => f.write_str("not an ELF file (magic is not 7F 45 4C 46)"),
            Problem::Unexpected { field, found, expected } => write!(f, "{field} is {found:#x}, expected {expected}"),
            Problem::FixedAddressExecutable => f.write_str(
                "type ET_EXEC (fixed-address executable) is refused: images are loaded at a per-sandbox base; \
                 build a static PIE (-C relocation-model=pie, ET_DYN)",
            ),
            Problem::OutsideFile { what, offset, size, file_len } => write!(
                f,
                "{what} at file offset {offset:#x} with {size:#x} bytes ends past the end of the file ({file_len:#x} bytes)"
            ),
            Problem::UnsupportedSegment { p_type, why } => {
                write!(f, "segment type {p_type:#x} ({}) not supported: {why}", segment_type_name(*p_type))
            }
            Problem::UnknownSegmentFlags { flags } => write!(f, "p_flags {flags:#x} has bits other than R, W, X"),
            Problem::WritableAndExecutable => f.write_str("segment is writable and executable"),
            Problem::ExecutableStack => f.write_str("PT_GNU_STACK asks for an executable stack"),
            Problem::FileSizeOverMemorySize { file_size, memory_size } => {
                write!(f, "p_filesz {file_size:#x} is larger than p_memsz {memory_size:#x}")
            }
            Problem::BadAlignment { align } => {
                write!(f, "p_align {align:#x} is not a power of two within the loader's limit")
            }
            Problem::Misaligned { vaddr, offset, align } => {
                write!(f, "p_vaddr {vaddr:#x} and p_offset {offset:#x} differ modulo p_align {align:#x}")
            }
            Problem::TooLarge { end, limit } => {
                write!(f, "segment ends at {end:#x}, past the image size limit {limit:#x}")
            }
            Problem::OutOfOrder { vaddr, previous } => {
                write!(f, "PT_LOAD at {vaddr:#x} comes after PT_LOAD at {previous:#x}; they must ascend")
            }
            Problem::SharedPage { other, page } => {
                write!(f, "segment shares the page at {page:#x} with program header {other}")
            }
            Problem::Duplicate { what } => write!(f, "second {what}; there may be only one"),
            Problem::NoLoadSegments => f.write_str("no PT_LOAD segment with a non-zero size"),
            Problem::EntryNotExecutable { entry } => {
                write!(f, "entry point {entry:#x} is not inside an executable PT_LOAD")
            }
            Problem::RelroNotWritable { vaddr, size } => write!(
                f,
                "PT_GNU_RELRO at {vaddr:#x} with {size:#x} bytes is not inside the pages of one writable PT_LOAD"
            ),
            Problem::NoDynamicTerminator => f.write_str("dynamic section ends without DT_NULL"),
            Problem::UnsupportedDynamicTag { tag, why } => {
                write!(f, "tag {tag:#x} ({}) not supported: {why}", dynamic_tag_name(*tag))
            }
            Problem::DuplicateDynamicTag { tag } => {
                write!(f, "tag {tag:#x} ({}) appears twice", dynamic_tag_name(*tag))
            }
            Problem::MissingDynamicTag { missing } => {
                write!(f, "needs tag {missing:#x} ({}), which is missing", dynamic_tag_name(*missing))
            }
            Problem::NotInFile { what, vaddr, size } => {
                write!(f, "{what} at {vaddr:#x} with {size:#x} bytes is not inside the file bytes of one PT_LOAD")
            }
            Problem::UnsupportedRelocation { r_type } => {
                write!(f, "type {r_type} ({}) not supported", relocation_name(*r_type))
            }
            Problem::RelocationTarget => f.write_str("target is not 8 bytes inside one writable PT_LOAD"),
            Problem::Forbidden(what) => write!(f, "forbidden instruction {what}"),
            Problem::OutOfMemory { what, count } => write!(f, "no memory for {what} ({count} entries)"),
            Problem::FileMismatch { expected, found } => {
                write!(f, "file is {found} bytes, but the image was parsed from {expected} bytes")
            }
            Problem::BaseMisaligned { base, align } => {
                write!(f, "base {base:#x} is not a multiple of the image alignment {align:#x}")
            }
            Problem::BaseOverflow { base } => write!(f, "base {base:#x} plus the image span overflows"),
            Problem::MemoryTooSmall { needed, len } => {
                write!(f, "memory is {len:#x} bytes, the image spans {needed:#x}")
            }
        }
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.problem)
    }
}

impl core::error::Error for ElfError {}
