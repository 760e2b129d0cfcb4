//! The ELF header: what the file is (ELF-64, little endian, x86_64 or aarch64, position independent) and
//! where its program header table is. Section headers are never read: loading needs only
//! program headers, and a stripped image without sections is as good as one with them.

use crate::Machine;
use crate::abi::{
    EHDR_SIZE, ELF_MAGIC, ELFCLASS64, ELFDATA2LSB, ELFOSABI_GNU, ELFOSABI_NONE, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC,
    EV_CURRENT, PHDR_SIZE, PN_XNUM,
};
use crate::error::{ElfError, Place, Problem};
use crate::read::{file_range, u8_at, u16_at, u32_at, u64_at};

/// The ELF header fields the loader uses once they have been checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    /// `e_entry`: offset of the entry point from the image base.
    pub entry: u64,
    /// `e_phoff`: file offset of the program header table (checked to fit in the file).
    pub phoff: u64,
    /// `e_phnum`: number of program headers (at least one).
    pub phnum: u16,
}

fn unexpected(field: &'static str, found: impl Into<u64>, expected: &'static str) -> ElfError {
    ElfError::new(Place::HeaderField(field), Problem::Unexpected { field, found: found.into(), expected })
}

/// Checks the ELF header of `file`, an image for `machine`.
pub(crate) fn parse(file: &[u8], machine: Machine) -> Result<Header, ElfError> {
    let too_short = || ElfError::new(Place::Header, Problem::TooShort { len: file.len() });
    if (file.len() as u64) < EHDR_SIZE {
        return Err(too_short());
    }
    // All reads below are inside the first 64 bytes, which exist; the `?`s cannot fire but
    // keep the code free of indexing.
    let byte = |offset| u8_at(file, offset).ok_or_else(too_short);
    let half = |offset| u16_at(file, offset).ok_or_else(too_short);
    let word = |offset| u32_at(file, offset).ok_or_else(too_short);
    let quad = |offset| u64_at(file, offset).ok_or_else(too_short);

    if file.get(..4) != Some(&ELF_MAGIC[..]) {
        return Err(ElfError::new(Place::Header, Problem::BadMagic));
    }
    let class = byte(4)?;
    if class != ELFCLASS64 {
        return Err(unexpected("EI_CLASS", class, "2 (ELFCLASS64)"));
    }
    let data = byte(5)?;
    if data != ELFDATA2LSB {
        return Err(unexpected("EI_DATA", data, "1 (ELFDATA2LSB, little endian)"));
    }
    let ident_version = byte(6)?;
    if ident_version != EV_CURRENT {
        return Err(unexpected("EI_VERSION", ident_version, "1 (EV_CURRENT)"));
    }
    // An OS ABI this loader does not know may give meaning to fields it ignores.
    let os_abi = byte(7)?;
    if os_abi != ELFOSABI_NONE && os_abi != ELFOSABI_GNU {
        return Err(unexpected("EI_OSABI", os_abi, "0 (ELFOSABI_NONE) or 3 (ELFOSABI_GNU)"));
    }
    let abi_version = byte(8)?;
    if abi_version != 0 {
        return Err(unexpected("EI_ABIVERSION", abi_version, "0"));
    }
    let e_type = half(16)?;
    if e_type == ET_EXEC {
        return Err(ElfError::new(Place::HeaderField("e_type"), Problem::FixedAddressExecutable));
    }
    if e_type != ET_DYN {
        return Err(unexpected("e_type", e_type, "3 (ET_DYN, a static position-independent executable)"));
    }
    let e_machine = half(18)?;
    let (want, expected) = match machine {
        Machine::X86_64 => (EM_X86_64, "62 (EM_X86_64)"),
        Machine::Aarch64 => (EM_AARCH64, "183 (EM_AARCH64)"),
    };
    if e_machine != want {
        return Err(unexpected("e_machine", e_machine, expected));
    }
    let version = word(20)?;
    if version != u32::from(EV_CURRENT) {
        return Err(unexpected("e_version", version, "1 (EV_CURRENT)"));
    }
    let entry = quad(24)?;
    let phoff = quad(32)?;
    // Neither x86_64 nor aarch64 defines processor flags; anything set here is a file this
    // loader does not understand.
    let flags = word(48)?;
    if flags != 0 {
        return Err(unexpected("e_flags", flags, "0 (the psABI defines no flags)"));
    }
    let ehsize = half(52)?;
    if u64::from(ehsize) != EHDR_SIZE {
        return Err(unexpected("e_ehsize", ehsize, "64"));
    }
    let phentsize = half(54)?;
    if u64::from(phentsize) != PHDR_SIZE {
        return Err(unexpected("e_phentsize", phentsize, "56"));
    }
    let phnum = half(56)?;
    if phnum == 0 {
        return Err(unexpected("e_phnum", phnum, "at least one program header"));
    }
    if phnum == PN_XNUM {
        return Err(unexpected("e_phnum", phnum, "below 0xffff (extended numbering is not supported)"));
    }
    let table_size = u64::from(phnum).saturating_mul(PHDR_SIZE);
    if file_range(file.len(), phoff, table_size).is_none() {
        return Err(ElfError::new(
            Place::HeaderField("e_phoff"),
            Problem::OutsideFile {
                what: "program header table",
                offset: phoff,
                size: table_size,
                file_len: file.len(),
            },
        ));
    }
    Ok(Header { entry, phoff, phnum })
}
