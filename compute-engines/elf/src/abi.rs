//! The numbers of the ELF-64 object format and the x86_64 psABI that the loader looks at, with
//! the names used in error messages. Only what this crate reads is here.

/// Size of the pages the engines map; segment permissions are applied per page.
pub const PAGE_SIZE: u64 = 4096;

pub(crate) const EHDR_SIZE: u64 = 64;
pub(crate) const PHDR_SIZE: u64 = 56;
pub(crate) const DYN_SIZE: u64 = 16;
pub(crate) const RELA_SIZE: u64 = 24;

pub(crate) const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
pub(crate) const ELFCLASS64: u8 = 2;
pub(crate) const ELFDATA2LSB: u8 = 1;
pub(crate) const EV_CURRENT: u8 = 1;
pub(crate) const ELFOSABI_NONE: u8 = 0;
pub(crate) const ELFOSABI_GNU: u8 = 3;
pub(crate) const ET_EXEC: u16 = 2;
pub(crate) const ET_DYN: u16 = 3;
pub(crate) const EM_X86_64: u16 = 62;
pub(crate) const EM_AARCH64: u16 = 183;
/// `e_phnum` value meaning "the real count is in section header 0" (extended numbering).
pub(crate) const PN_XNUM: u16 = 0xffff;

pub(crate) const PT_NULL: u32 = 0;
pub(crate) const PT_LOAD: u32 = 1;
pub(crate) const PT_DYNAMIC: u32 = 2;
pub(crate) const PT_INTERP: u32 = 3;
pub(crate) const PT_NOTE: u32 = 4;
pub(crate) const PT_PHDR: u32 = 6;
pub(crate) const PT_TLS: u32 = 7;
pub(crate) const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
pub(crate) const PT_GNU_STACK: u32 = 0x6474_e551;
pub(crate) const PT_GNU_RELRO: u32 = 0x6474_e552;
pub(crate) const PT_GNU_PROPERTY: u32 = 0x6474_e553;
pub(crate) const PT_GNU_SFRAME: u32 = 0x6474_e554;

pub(crate) const PF_X: u32 = 1;
pub(crate) const PF_W: u32 = 2;
pub(crate) const PF_R: u32 = 4;

pub(crate) const DT_NULL: i64 = 0;
pub(crate) const DT_NEEDED: i64 = 1;
pub(crate) const DT_PLTRELSZ: i64 = 2;
pub(crate) const DT_PLTGOT: i64 = 3;
pub(crate) const DT_HASH: i64 = 4;
pub(crate) const DT_STRTAB: i64 = 5;
pub(crate) const DT_SYMTAB: i64 = 6;
pub(crate) const DT_RELA: i64 = 7;
pub(crate) const DT_RELASZ: i64 = 8;
pub(crate) const DT_RELAENT: i64 = 9;
pub(crate) const DT_STRSZ: i64 = 10;
pub(crate) const DT_SYMENT: i64 = 11;
pub(crate) const DT_INIT: i64 = 12;
pub(crate) const DT_FINI: i64 = 13;
pub(crate) const DT_SONAME: i64 = 14;
pub(crate) const DT_RPATH: i64 = 15;
pub(crate) const DT_SYMBOLIC: i64 = 16;
pub(crate) const DT_REL: i64 = 17;
pub(crate) const DT_RELSZ: i64 = 18;
pub(crate) const DT_RELENT: i64 = 19;
pub(crate) const DT_PLTREL: i64 = 20;
pub(crate) const DT_DEBUG: i64 = 21;
pub(crate) const DT_TEXTREL: i64 = 22;
pub(crate) const DT_JMPREL: i64 = 23;
pub(crate) const DT_BIND_NOW: i64 = 24;
pub(crate) const DT_INIT_ARRAY: i64 = 25;
pub(crate) const DT_FINI_ARRAY: i64 = 26;
pub(crate) const DT_INIT_ARRAYSZ: i64 = 27;
pub(crate) const DT_FINI_ARRAYSZ: i64 = 28;
pub(crate) const DT_RUNPATH: i64 = 29;
pub(crate) const DT_FLAGS: i64 = 30;
pub(crate) const DT_PREINIT_ARRAY: i64 = 32;
pub(crate) const DT_PREINIT_ARRAYSZ: i64 = 33;
pub(crate) const DT_RELRSZ: i64 = 35;
pub(crate) const DT_RELR: i64 = 36;
pub(crate) const DT_RELRENT: i64 = 37;
pub(crate) const DT_GNU_HASH: i64 = 0x6fff_fef5;
pub(crate) const DT_VERSYM: i64 = 0x6fff_fff0;
pub(crate) const DT_RELACOUNT: i64 = 0x6fff_fff9;
pub(crate) const DT_RELCOUNT: i64 = 0x6fff_fffa;
pub(crate) const DT_FLAGS_1: i64 = 0x6fff_fffb;
pub(crate) const DT_VERDEF: i64 = 0x6fff_fffc;
pub(crate) const DT_VERDEFNUM: i64 = 0x6fff_fffd;
pub(crate) const DT_VERNEED: i64 = 0x6fff_fffe;
pub(crate) const DT_VERNEEDNUM: i64 = 0x6fff_ffff;

/// `DT_FLAGS` bit: the image relocates its own code (breaks W^X).
pub(crate) const DF_TEXTREL: u64 = 0x4;
/// `DT_FLAGS` bit: the image uses the static TLS model (the sandbox has no TLS).
pub(crate) const DF_STATIC_TLS: u64 = 0x10;

/// The one relocation type a static PIE needs: write `base + addend` to the 8 bytes at `base + offset`.
pub const R_X86_64_RELATIVE: u32 = 8;
/// The one relocation type an aarch64 static PIE needs: `base + addend` into 8 bytes.
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// Name of a dynamic tag, for messages; `"unknown"` for tags this crate has no name for.
pub(crate) fn dynamic_tag_name(tag: i64) -> &'static str {
    match tag {
        DT_NULL => "DT_NULL",
        DT_NEEDED => "DT_NEEDED",
        DT_PLTRELSZ => "DT_PLTRELSZ",
        DT_PLTGOT => "DT_PLTGOT",
        DT_HASH => "DT_HASH",
        DT_STRTAB => "DT_STRTAB",
        DT_SYMTAB => "DT_SYMTAB",
        DT_RELA => "DT_RELA",
        DT_RELASZ => "DT_RELASZ",
        DT_RELAENT => "DT_RELAENT",
        DT_STRSZ => "DT_STRSZ",
        DT_SYMENT => "DT_SYMENT",
        DT_INIT => "DT_INIT",
        DT_FINI => "DT_FINI",
        DT_SONAME => "DT_SONAME",
        DT_RPATH => "DT_RPATH",
        DT_SYMBOLIC => "DT_SYMBOLIC",
        DT_REL => "DT_REL",
        DT_RELSZ => "DT_RELSZ",
        DT_RELENT => "DT_RELENT",
        DT_PLTREL => "DT_PLTREL",
        DT_DEBUG => "DT_DEBUG",
        DT_TEXTREL => "DT_TEXTREL",
        DT_JMPREL => "DT_JMPREL",
        DT_BIND_NOW => "DT_BIND_NOW",
        DT_INIT_ARRAY => "DT_INIT_ARRAY",
        DT_FINI_ARRAY => "DT_FINI_ARRAY",
        DT_INIT_ARRAYSZ => "DT_INIT_ARRAYSZ",
        DT_FINI_ARRAYSZ => "DT_FINI_ARRAYSZ",
        DT_RUNPATH => "DT_RUNPATH",
        DT_FLAGS => "DT_FLAGS",
        DT_PREINIT_ARRAY => "DT_PREINIT_ARRAY",
        DT_PREINIT_ARRAYSZ => "DT_PREINIT_ARRAYSZ",
        DT_RELRSZ => "DT_RELRSZ",
        DT_RELR => "DT_RELR",
        DT_RELRENT => "DT_RELRENT",
        DT_GNU_HASH => "DT_GNU_HASH",
        DT_VERSYM => "DT_VERSYM",
        DT_RELACOUNT => "DT_RELACOUNT",
        DT_RELCOUNT => "DT_RELCOUNT",
        DT_FLAGS_1 => "DT_FLAGS_1",
        DT_VERDEF => "DT_VERDEF",
        DT_VERDEFNUM => "DT_VERDEFNUM",
        DT_VERNEED => "DT_VERNEED",
        DT_VERNEEDNUM => "DT_VERNEEDNUM",
        _ => "unknown",
    }
}

/// Name of an x86_64 relocation type, for messages; `"unknown"` past the psABI's list.
pub(crate) fn relocation_name(r_type: u32) -> &'static str {
    const NAMES: [&str; 43] = [
        "R_X86_64_NONE",
        "R_X86_64_64",
        "R_X86_64_PC32",
        "R_X86_64_GOT32",
        "R_X86_64_PLT32",
        "R_X86_64_COPY",
        "R_X86_64_GLOB_DAT",
        "R_X86_64_JUMP_SLOT",
        "R_X86_64_RELATIVE",
        "R_X86_64_GOTPCREL",
        "R_X86_64_32",
        "R_X86_64_32S",
        "R_X86_64_16",
        "R_X86_64_PC16",
        "R_X86_64_8",
        "R_X86_64_PC8",
        "R_X86_64_DTPMOD64",
        "R_X86_64_DTPOFF64",
        "R_X86_64_TPOFF64",
        "R_X86_64_TLSGD",
        "R_X86_64_TLSLD",
        "R_X86_64_DTPOFF32",
        "R_X86_64_GOTTPOFF",
        "R_X86_64_TPOFF32",
        "R_X86_64_PC64",
        "R_X86_64_GOTOFF64",
        "R_X86_64_GOTPC32",
        "R_X86_64_GOT64",
        "R_X86_64_GOTPCREL64",
        "R_X86_64_GOTPC64",
        "R_X86_64_GOTPLT64",
        "R_X86_64_PLTOFF64",
        "R_X86_64_SIZE32",
        "R_X86_64_SIZE64",
        "R_X86_64_GOTPC32_TLSDESC",
        "R_X86_64_TLSDESC_CALL",
        "R_X86_64_TLSDESC",
        "R_X86_64_IRELATIVE",
        "R_X86_64_RELATIVE64",
        "unknown",
        "unknown",
        "R_X86_64_GOTPCRELX",
        "R_X86_64_REX_GOTPCRELX",
    ];
    // The aarch64 psABI's numbers start at 257, past every x86_64 one: one table serves both.
    match r_type {
        257 => return "R_AARCH64_ABS64",
        258 => return "R_AARCH64_ABS32",
        1024 => return "R_AARCH64_COPY",
        1025 => return "R_AARCH64_GLOB_DAT",
        1026 => return "R_AARCH64_JUMP_SLOT",
        R_AARCH64_RELATIVE => return "R_AARCH64_RELATIVE",
        1028 => return "R_AARCH64_TLS_DTPMOD64",
        1029 => return "R_AARCH64_TLS_DTPREL64",
        1030 => return "R_AARCH64_TLS_TPREL64",
        1031 => return "R_AARCH64_TLSDESC",
        1032 => return "R_AARCH64_IRELATIVE",
        _ => {}
    }
    usize::try_from(r_type).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("unknown")
}

/// Name of a program header type, for messages.
pub(crate) fn segment_type_name(p_type: u32) -> &'static str {
    match p_type {
        PT_NULL => "PT_NULL",
        PT_LOAD => "PT_LOAD",
        PT_DYNAMIC => "PT_DYNAMIC",
        PT_INTERP => "PT_INTERP",
        PT_NOTE => "PT_NOTE",
        5 => "PT_SHLIB",
        PT_PHDR => "PT_PHDR",
        PT_TLS => "PT_TLS",
        PT_GNU_EH_FRAME => "PT_GNU_EH_FRAME",
        PT_GNU_STACK => "PT_GNU_STACK",
        PT_GNU_RELRO => "PT_GNU_RELRO",
        PT_GNU_PROPERTY => "PT_GNU_PROPERTY",
        PT_GNU_SFRAME => "PT_GNU_SFRAME",
        _ => "unknown",
    }
}
