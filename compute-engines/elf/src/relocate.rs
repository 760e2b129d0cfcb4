//! `R_X86_64_RELATIVE` (x86_64) and `R_AARCH64_RELATIVE` (aarch64) relocations: the only kind
//! a static PIE has. Each one asks the loader to
//! write `base + addend` into the 8 bytes at `base + offset`, which turns the link-time
//! addresses in data (function pointers, `&'static str`s in tables) into run-time ones.
//!
//! Targets are checked to be 8 bytes inside one writable loaded segment. Because writable
//! segments are never executable and no two segments share a page, a relocation can never
//! change a byte of code: the code the scan checked is the code that runs.

use alloc::vec::Vec;

use crate::Machine;
use crate::abi::{R_AARCH64_RELATIVE, R_X86_64_RELATIVE, RELA_SIZE};
use crate::dynamic::RelaTable;
use crate::error::{ElfError, Place, Problem};
use crate::read::u64_at;
use crate::segments::Layout;

/// One checked relocation: at load, `base + addend` is written at `offset` from the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// `r_offset`: where the 8-byte value goes, as an offset from the image base.
    pub offset: u64,
    /// `r_addend`: the value's offset from the image base. Not range-checked: a pointer that
    /// leads outside the sandbox only faults when used, it cannot write anywhere at load.
    pub addend: i64,
}

impl Relocation {
    /// The value to write for an image loaded at `base` (wrapping, as the hardware would add).
    pub const fn value(&self, base: u64) -> u64 {
        base.wrapping_add_signed(self.addend)
    }
}

/// Reads and checks every entry of the relocation table.
pub(crate) fn parse(
    file: &[u8],
    table: &RelaTable,
    layout: &Layout,
    machine: Machine,
) -> Result<Vec<Relocation>, ElfError> {
    let relative = match machine {
        Machine::X86_64 => R_X86_64_RELATIVE,
        Machine::Aarch64 => R_AARCH64_RELATIVE,
    };
    let bytes = file.get(table.bytes.clone()).unwrap_or_default();
    let mut relocations = Vec::new();
    // Sized by the file, which holds 24 bytes per entry: no allocation larger than the input.
    relocations.try_reserve_exact(table.count).map_err(|_| {
        ElfError::new(Place::Header, Problem::OutOfMemory { what: "the relocation list", count: table.count })
    })?;
    for index in 0..table.count {
        let at = (index as u64).saturating_mul(RELA_SIZE);
        let field = |skip: u64| u64_at(bytes, at.saturating_add(skip));
        let (Some(offset), Some(info), Some(addend)) = (field(0), field(8), field(16)) else {
            // Cannot happen: the table's size was checked against the file.
            return Err(ElfError::new(
                Place::Relocation { index, offset: 0 },
                Problem::OutsideFile {
                    what: "relocation",
                    offset: (table.bytes.start as u64).saturating_add(at),
                    size: RELA_SIZE,
                    file_len: file.len(),
                },
            ));
        };
        let error = |problem| ElfError::new(Place::Relocation { index, offset }, problem);
        // ELF64_R_TYPE is the low 32 bits of r_info; the symbol (high half) is unused by RELATIVE.
        let r_type = (info & 0xffff_ffff) as u32;
        if r_type != relative {
            return Err(error(Problem::UnsupportedRelocation { r_type }));
        }
        match layout.load_holding(offset, 8) {
            Some(load) if load.segment.perms.write => {}
            _ => return Err(error(Problem::RelocationTarget)),
        }
        // `r_addend` is an `Elf64_Sxword`: reinterpret the bits.
        relocations.push(Relocation { offset, addend: addend as i64 });
    }
    Ok(relocations)
}
