//! The `PT_DYNAMIC` segment. A static PIE uses it for one thing: to say where its
//! `R_X86_64_RELATIVE` relocations are (`DT_RELA`, `DT_RELASZ`, `DT_RELAENT`). Tags that only
//! describe the image (symbol tables, hashes, flags) are accepted and ignored; tags that ask the
//! loader for something it does not do (load a library, run initializers, relocate code, other
//! relocation formats) are refused, because ignoring them would run the function in a state its
//! author did not build for. Unknown tags are refused for the same reason.

use core::ops::Range;

use crate::abi::*;
use crate::error::{ElfError, Place, Problem};
use crate::read::u64_at;
use crate::segments::Layout;

/// Where the relocation table is, once checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct RelaTable {
    /// Its bytes in the file.
    pub bytes: Range<usize>,
    /// Number of 24-byte entries.
    pub count: usize,
}

/// What a tag means to this loader.
enum TagRule {
    /// Describes the image; nothing to do.
    Ignore,
    /// Refused, with the reason.
    Refuse(&'static str),
    /// Refused unless its value is zero (sizes of tables the loader would have to process).
    ZeroOnly(&'static str),
    /// One of the values the loader uses; may appear once.
    Use,
}

fn rule(tag: i64) -> TagRule {
    match tag {
        DT_RELA | DT_RELASZ | DT_RELAENT | DT_RELACOUNT | DT_FLAGS => TagRule::Use,
        DT_HASH | DT_GNU_HASH | DT_STRTAB | DT_SYMTAB | DT_STRSZ | DT_SYMENT | DT_SONAME | DT_RPATH | DT_RUNPATH
        | DT_SYMBOLIC | DT_DEBUG | DT_BIND_NOW | DT_FLAGS_1 | DT_VERSYM | DT_VERDEF | DT_VERDEFNUM | DT_PLTGOT
        | DT_PLTREL | DT_JMPREL | DT_FINI | DT_FINI_ARRAY | DT_FINI_ARRAYSZ | DT_INIT_ARRAY | DT_PREINIT_ARRAY => {
            TagRule::Ignore
        }
        DT_NEEDED => {
            TagRule::Refuse("the image needs a shared library, and there is no dynamic linker; link it static")
        }
        DT_VERNEED | DT_VERNEEDNUM => TagRule::Refuse("the image needs symbol versions from a shared library"),
        DT_TEXTREL => TagRule::Refuse("relocations in code would make executable pages writable (W^X)"),
        DT_REL | DT_RELSZ | DT_RELENT | DT_RELCOUNT => {
            TagRule::Refuse("REL relocations (without addend) are not used on x86_64; only RELA is supported")
        }
        DT_RELR | DT_RELRSZ | DT_RELRENT => {
            TagRule::Refuse("packed relative relocations are not supported; link without -z pack-relative-relocs")
        }
        DT_INIT => TagRule::Refuse("the loader runs no initialization function"),
        DT_PLTRELSZ => TagRule::ZeroOnly("PLT relocations are not supported"),
        DT_INIT_ARRAYSZ | DT_PREINIT_ARRAYSZ => TagRule::ZeroOnly("the loader runs no initialization functions"),
        _ => TagRule::Refuse("unknown dynamic tags may carry meaning the loader would ignore"),
    }
}

/// The values of the tags the loader uses, with the index of the entry that set each.
#[derive(Default)]
struct Used {
    rela: Option<(usize, u64)>,
    relasz: Option<(usize, u64)>,
    relaent: Option<(usize, u64)>,
    relacount: Option<(usize, u64)>,
    flags: Option<(usize, u64)>,
}

impl Used {
    fn slot(&mut self, tag: i64) -> Option<&mut Option<(usize, u64)>> {
        match tag {
            DT_RELA => Some(&mut self.rela),
            DT_RELASZ => Some(&mut self.relasz),
            DT_RELAENT => Some(&mut self.relaent),
            DT_RELACOUNT => Some(&mut self.relacount),
            DT_FLAGS => Some(&mut self.flags),
            _ => None,
        }
    }
}

/// Checks the dynamic section and finds the relocation table (empty when there is none).
pub(crate) fn parse(file: &[u8], layout: &Layout) -> Result<RelaTable, ElfError> {
    let Some((segment_index, bytes)) = layout.dynamic.clone() else {
        return Ok(RelaTable::default());
    };
    let section = file.get(bytes).unwrap_or_default();
    let mut used = Used::default();
    let mut index = 0usize;
    loop {
        let at = (index as u64).saturating_mul(DYN_SIZE);
        let (Some(tag), Some(value)) = (u64_at(section, at), u64_at(section, at.saturating_add(8))) else {
            return Err(ElfError::new(Place::ProgramHeader(segment_index), Problem::NoDynamicTerminator));
        };
        // `d_tag` is an `Elf64_Sxword`: reinterpret the bits.
        let tag = tag as i64;
        if tag == DT_NULL {
            break;
        }
        let error = |problem| ElfError::new(Place::Dynamic(index), problem);
        match rule(tag) {
            TagRule::Ignore => {}
            TagRule::Refuse(why) => return Err(error(Problem::UnsupportedDynamicTag { tag, why })),
            TagRule::ZeroOnly(why) if value != 0 => return Err(error(Problem::UnsupportedDynamicTag { tag, why })),
            TagRule::ZeroOnly(_) => {}
            TagRule::Use => {
                if let Some(slot) = used.slot(tag) {
                    if slot.is_some() {
                        return Err(error(Problem::DuplicateDynamicTag { tag }));
                    }
                    *slot = Some((index, value));
                }
            }
        }
        index = index.saturating_add(1);
    }
    check_used(&used, layout)
}

fn check_used(used: &Used, layout: &Layout) -> Result<RelaTable, ElfError> {
    if let Some((index, flags)) = used.flags {
        if flags & DF_TEXTREL != 0 {
            return Err(ElfError::new(
                Place::Dynamic(index),
                Problem::UnsupportedDynamicTag {
                    tag: DT_FLAGS,
                    why: "DF_TEXTREL: relocations in code would make executable pages writable (W^X)",
                },
            ));
        }
        if flags & DF_STATIC_TLS != 0 {
            return Err(ElfError::new(
                Place::Dynamic(index),
                Problem::UnsupportedDynamicTag {
                    tag: DT_FLAGS,
                    why: "DF_STATIC_TLS: sandboxes have no thread-local storage",
                },
            ));
        }
    }
    let (rela_index, rela, size) = match (used.rela, used.relasz) {
        (None, None) => {
            // Nothing to relocate; a stray DT_RELAENT or DT_RELACOUNT alone is refused as malformed.
            if let Some((index, _)) = used.relaent.or(used.relacount) {
                return Err(ElfError::new(Place::Dynamic(index), Problem::MissingDynamicTag { missing: DT_RELA }));
            }
            return Ok(RelaTable::default());
        }
        (Some((index, _)), None) => {
            return Err(ElfError::new(Place::Dynamic(index), Problem::MissingDynamicTag { missing: DT_RELASZ }));
        }
        (None, Some((index, _))) => {
            return Err(ElfError::new(Place::Dynamic(index), Problem::MissingDynamicTag { missing: DT_RELA }));
        }
        (Some((index, rela)), Some((_, size))) => (index, rela, size),
    };
    let Some((ent_index, entsize)) = used.relaent else {
        return Err(ElfError::new(Place::Dynamic(rela_index), Problem::MissingDynamicTag { missing: DT_RELAENT }));
    };
    if entsize != RELA_SIZE {
        return Err(ElfError::new(
            Place::Dynamic(ent_index),
            Problem::Unexpected { field: "DT_RELAENT", found: entsize, expected: "24 (sizeof Elf64_Rela)" },
        ));
    }
    if size % RELA_SIZE != 0 {
        return Err(ElfError::new(
            Place::Dynamic(used.relasz.map_or(rela_index, |(i, _)| i)),
            Problem::Unexpected { field: "DT_RELASZ", found: size, expected: "a multiple of 24" },
        ));
    }
    let count = size / RELA_SIZE;
    if let Some((index, relacount)) = used.relacount
        && relacount > count
    {
        return Err(ElfError::new(
            Place::Dynamic(index),
            Problem::Unexpected { field: "DT_RELACOUNT", found: relacount, expected: "at most DT_RELASZ / 24" },
        ));
    }
    let not_in_file =
        || ElfError::new(Place::Dynamic(rela_index), Problem::NotInFile { what: "DT_RELA table", vaddr: rela, size });
    // The table is read from the file, so it must sit in file-backed bytes of a loaded segment.
    let load = layout.load_holding(rela, size).ok_or_else(not_in_file)?;
    let end = rela.checked_add(size).ok_or_else(not_in_file)?;
    if end > load.file_end() {
        return Err(not_in_file());
    }
    let skip = usize::try_from(rela.saturating_sub(load.segment.offset)).map_err(|_| not_in_file())?;
    let start = load.segment.file_bytes.start.checked_add(skip).ok_or_else(not_in_file)?;
    let len = usize::try_from(size).map_err(|_| not_in_file())?;
    let stop = start.checked_add(len).ok_or_else(not_in_file)?;
    Ok(RelaTable { bytes: start..stop, count: usize::try_from(count).map_err(|_| not_in_file())? })
}
