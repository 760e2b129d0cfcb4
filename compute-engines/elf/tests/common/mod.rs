//! A small ELF writer for the tests: an ELF header, program headers and blobs of bytes at
//! chosen file offsets, every field settable, so each check can be hit on its own. `Sample`
//! lays out a valid static PIE like the one lld makes, which tests then break one field at a time.
#![allow(dead_code)]

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_PHDR: u32 = 6;
pub const PT_TLS: u32 = 7;
pub const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

pub const DT_NULL: i64 = 0;
pub const DT_NEEDED: i64 = 1;
pub const DT_PLTRELSZ: i64 = 2;
pub const DT_RELA: i64 = 7;
pub const DT_RELASZ: i64 = 8;
pub const DT_RELAENT: i64 = 9;
pub const DT_INIT: i64 = 12;
pub const DT_REL: i64 = 17;
pub const DT_TEXTREL: i64 = 22;
pub const DT_INIT_ARRAYSZ: i64 = 27;
pub const DT_FLAGS: i64 = 30;
pub const DT_RELR: i64 = 36;
pub const DT_RELACOUNT: i64 = 0x6fff_fff9;
pub const DT_FLAGS_1: i64 = 0x6fff_fffb;
pub const DT_VERNEED: i64 = 0x6fff_fffe;

pub const R_X86_64_RELATIVE: u32 = 8;

/// One `Elf64_Phdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl Phdr {
    pub fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Self {
        Phdr { p_type: PT_LOAD, flags, offset, vaddr, filesz, memsz, align: 0x1000 }
    }

    pub fn other(p_type: u32, flags: u32) -> Self {
        Phdr { p_type, flags, offset: 0, vaddr: 0, filesz: 0, memsz: 0, align: 0 }
    }
}

/// Everything in an image file, field by field.
#[derive(Clone, Debug)]
pub struct ElfWriter {
    pub ident: [u8; 16],
    pub e_type: u16,
    pub machine: u16,
    pub version: u32,
    pub entry: u64,
    pub phoff: u64,
    pub flags: u32,
    pub ehsize: u16,
    pub phentsize: u16,
    /// `e_phnum`; `None` writes `phdrs.len()`.
    pub phnum: Option<u16>,
    pub phdrs: Vec<Phdr>,
    /// Bytes placed at file offsets, after the headers (later blobs win).
    pub blobs: Vec<(usize, Vec<u8>)>,
    /// Minimum file length; the file grows to hold every header and blob.
    pub len: usize,
}

impl Default for ElfWriter {
    fn default() -> Self {
        let mut ident = [0u8; 16];
        ident[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        ElfWriter {
            ident,
            e_type: 3,
            machine: 62,
            version: 1,
            entry: 0,
            phoff: 64,
            flags: 0,
            ehsize: 64,
            phentsize: 56,
            phnum: None,
            phdrs: Vec::new(),
            blobs: Vec::new(),
            len: 0,
        }
    }
}

fn put(file: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if file.len() < at + bytes.len() {
        file.resize(at + bytes.len(), 0);
    }
    file[at..at + bytes.len()].copy_from_slice(bytes);
}

impl ElfWriter {
    pub fn build(&self) -> Vec<u8> {
        let mut file = vec![0u8; self.len.max(64)];
        put(&mut file, 0, &self.ident);
        put(&mut file, 16, &self.e_type.to_le_bytes());
        put(&mut file, 18, &self.machine.to_le_bytes());
        put(&mut file, 20, &self.version.to_le_bytes());
        put(&mut file, 24, &self.entry.to_le_bytes());
        put(&mut file, 32, &self.phoff.to_le_bytes());
        put(&mut file, 40, &0u64.to_le_bytes());
        put(&mut file, 48, &self.flags.to_le_bytes());
        put(&mut file, 52, &self.ehsize.to_le_bytes());
        put(&mut file, 54, &self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        put(&mut file, 56, &phnum.to_le_bytes());
        // e_shentsize, e_shnum, e_shstrndx: no sections.
        put(&mut file, 58, &[0; 6]);
        if let Ok(phoff) = usize::try_from(self.phoff)
            && phoff < 1 << 20
        {
            for (i, ph) in self.phdrs.iter().enumerate() {
                let at = phoff + i * 56;
                put(&mut file, at, &ph.p_type.to_le_bytes());
                put(&mut file, at + 4, &ph.flags.to_le_bytes());
                put(&mut file, at + 8, &ph.offset.to_le_bytes());
                put(&mut file, at + 16, &ph.vaddr.to_le_bytes());
                put(&mut file, at + 24, &ph.vaddr.to_le_bytes());
                put(&mut file, at + 32, &ph.filesz.to_le_bytes());
                put(&mut file, at + 40, &ph.memsz.to_le_bytes());
                put(&mut file, at + 48, &ph.align.to_le_bytes());
            }
        }
        for (at, bytes) in &self.blobs {
            put(&mut file, *at, bytes);
        }
        file
    }
}

/// A dynamic section: the entries, then `DT_NULL`.
pub fn dynamic(entries: &[(i64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(tag, value) in entries.iter().chain([(DT_NULL, 0)].iter()) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

/// A relocation table from `(r_offset, r_info, r_addend)`.
pub fn rela(entries: &[(u64, u64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(offset, info, addend) in entries {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(&addend.to_le_bytes());
    }
    out
}

/// `r_info` for a relocation type with symbol 0.
pub fn info(r_type: u32) -> u64 {
    u64::from(r_type)
}

// The sample's layout (file offset == address, as lld does for small images):
//   0x0000 R   ELF header, program headers; relocation table at 0x400
//   0x1000 R X code
//   0x2000 RW  dynamic section at 0x2000, data at 0x2100, bss up to 0x3800
pub const RELA_AT: u64 = 0x400;
pub const CODE_AT: u64 = 0x1000;
pub const DATA_AT: u64 = 0x2000;
pub const DYNAMIC_AT: u64 = 0x2000;
pub const DYNAMIC_ROOM: u64 = 0x100;
pub const PAYLOAD_AT: u64 = 0x2100;
pub const DATA_MEMSZ: u64 = 0x1800;
pub const SPAN: u64 = 0x4000;

/// Program header indexes in the sample.
pub const PH_HEADERS: usize = 0;
pub const PH_CODE: usize = 1;
pub const PH_DATA: usize = 2;
pub const PH_DYNAMIC: usize = 3;
pub const PH_RELRO: usize = 4;
pub const PH_STACK: usize = 5;

/// A valid image described by its contents; `writer()` lays it out.
#[derive(Clone, Debug)]
pub struct Sample {
    pub code: Vec<u8>,
    /// Bytes after the dynamic section in the writable segment (file-backed), at `PAYLOAD_AT`.
    pub payload: Vec<u8>,
    /// `(r_offset, r_info, r_addend)`.
    pub relas: Vec<(u64, u64, i64)>,
    /// Dynamic entries after the relocation ones.
    pub extra_dynamic: Vec<(i64, u64)>,
    /// Replaces the whole dynamic section (without the final `DT_NULL`) when set.
    pub dynamic: Option<Vec<(i64, u64)>>,
}

impl Default for Sample {
    fn default() -> Self {
        // xor eax,eax; lfence; ret; then int3 padding.
        let mut code = vec![0x31, 0xc0, 0x0f, 0xae, 0xe8, 0xc3];
        code.resize(0x40, 0xcc);
        let payload: Vec<u8> = (0..0x100u32).map(|i| (i * 7 + 1) as u8).collect();
        Sample {
            code,
            payload,
            relas: vec![
                (PAYLOAD_AT, info(R_X86_64_RELATIVE), CODE_AT as i64),
                (PAYLOAD_AT + 8, info(R_X86_64_RELATIVE), 0x2180),
                (PAYLOAD_AT + 0x100, info(R_X86_64_RELATIVE), 0x3000),
            ],
            extra_dynamic: vec![(DT_FLAGS_1, 0x0800_0000)],
            dynamic: None,
        }
    }
}

impl Sample {
    pub fn dynamic_entries(&self) -> Vec<(i64, u64)> {
        self.dynamic.clone().unwrap_or_else(|| {
            let n = self.relas.len() as u64;
            let mut entries = vec![(DT_RELA, RELA_AT), (DT_RELASZ, n * 24), (DT_RELAENT, 24), (DT_RELACOUNT, n)];
            entries.extend_from_slice(&self.extra_dynamic);
            entries
        })
    }

    pub fn writer(&self) -> ElfWriter {
        let rela_bytes = rela(&self.relas);
        let dyn_bytes = dynamic(&self.dynamic_entries());
        assert!(RELA_AT as usize + rela_bytes.len() <= 0x1000, "too many relocations for the sample");
        assert!(dyn_bytes.len() as u64 <= DYNAMIC_ROOM, "dynamic section too large for the sample");
        let headers_size = RELA_AT + rela_bytes.len() as u64;
        let data_filesz = DYNAMIC_ROOM + self.payload.len() as u64;
        ElfWriter {
            entry: CODE_AT,
            phdrs: vec![
                Phdr::load(R, 0, 0, headers_size, headers_size),
                Phdr::load(R | X, CODE_AT, CODE_AT, self.code.len() as u64, self.code.len() as u64),
                Phdr::load(R | W, DATA_AT, DATA_AT, data_filesz, DATA_MEMSZ),
                Phdr {
                    p_type: PT_DYNAMIC,
                    flags: R | W,
                    offset: DYNAMIC_AT,
                    vaddr: DYNAMIC_AT,
                    filesz: dyn_bytes.len() as u64,
                    memsz: dyn_bytes.len() as u64,
                    align: 8,
                },
                Phdr {
                    p_type: PT_GNU_RELRO,
                    flags: R,
                    offset: DATA_AT,
                    vaddr: DATA_AT,
                    filesz: DYNAMIC_ROOM,
                    memsz: 0x1000,
                    align: 1,
                },
                Phdr::other(PT_GNU_STACK, R | W),
            ],
            blobs: vec![
                (RELA_AT as usize, rela_bytes),
                (CODE_AT as usize, self.code.clone()),
                (DYNAMIC_AT as usize, dyn_bytes),
                (PAYLOAD_AT as usize, self.payload.clone()),
            ],
            len: (PAYLOAD_AT as usize) + self.payload.len(),
            ..ElfWriter::default()
        }
    }

    pub fn build(&self) -> Vec<u8> {
        self.writer().build()
    }
}

/// The naive scan, for comparison: every 3-byte window, decoded by the rules in the design.
pub fn naive_forbidden(bytes: &[u8]) -> Option<usize> {
    bytes.windows(3).position(|w| {
        let (m, reg) = (w[2] >> 6, (w[2] >> 3) & 7);
        w[0] == 0x0f
            && ((w[1] == 0x01 && w[2] == 0xef)
                || (w[1] == 0xae && reg == 5 && m != 3)
                || (w[1] == 0xc7 && reg == 3 && m != 3))
    })
}
