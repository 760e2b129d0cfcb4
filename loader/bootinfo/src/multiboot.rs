//! Multiboot1 (the legacy-BIOS path: iPXE's `kernel`/`module`/`boot`, GRUB's `multiboot`, QEMU's
//! `-kernel`) as far as Pappus uses it: the image header that `cargo xtask image` writes in
//! front of `pappus-kernel.mb`, and readers for the information structure a loader hands the
//! kernel. Layouts follow the Multiboot Specification 0.6.96.
//!
//! The kernel ELF carries no multiboot header (QEMU's `-kernel` would prefer it over the PVH
//! note); `pappus-kernel.mb` is a flat image built from it on the host, whose header names the
//! entry the kernel's [`NOTE_MULTIBOOT32`](crate::NOTE_MULTIBOOT32) note gives.

use crate::le::{u32_at, u64_at};

/// The header's `magic`.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// `eax` at the kernel's entry.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Header flag: modules page-aligned.
pub const HEADER_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: the information structure must carry `mem_*` and the memory map.
pub const HEADER_MEMORY_INFO: u32 = 1 << 1;
/// Header flag: the address fields are valid (a flat image, not an ELF the loader reads).
pub const HEADER_ADDRESS: u32 = 1 << 16;

/// Information flag: `mem_lower`/`mem_upper` are valid.
pub const INFO_MEMORY: u32 = 1 << 0;
/// Information flag: `cmdline` is valid.
pub const INFO_CMDLINE: u32 = 1 << 2;
/// Information flag: `mods_count`/`mods_addr` are valid.
pub const INFO_MODS: u32 = 1 << 3;
/// Information flag: `mmap_length`/`mmap_addr` are valid.
pub const INFO_MMAP: u32 = 1 << 6;

/// Loaders look for the header in the image's first 8 KiB, 4-byte aligned.
pub const HEADER_SEARCH: usize = 8192;
/// The header's size with the address fields.
pub const HEADER_SIZE: usize = 32;
/// The bytes of the information structure the kernel reads (up to and including `mmap_addr`).
pub const INFO_SIZE: usize = 52;
/// One module list entry.
pub const MODULE_SIZE: usize = 16;

/// Where in the header page, after the multiboot header, `pappus-kernel.mb` carries its image
/// check: [`CHECK_MAGIC`], then the number of 32-bit words after the header page (a multiple
/// of [`CHECK_UNIT`] / 4: the image is padded with zeros to that), then their wrapping sum (each
/// a little-endian u32). The kernel's multiboot entry verifies it before
/// anything else, because a loader handed a file cut short may copy whatever followed the file
/// in its memory and jump into it (iPXE 2019 does).
pub const CHECK_OFFSET: usize = HEADER_SIZE;
pub const CHECK_MAGIC: [u8; 8] = *b"PAPPUSMB";
/// The checked data is a whole number of these bytes (the kernel sums 8 words per step).
pub const CHECK_UNIT: u64 = 32;

/// The image check's word count and sum over `data` (a multiple of [`CHECK_UNIT`] bytes long).
pub fn image_check(data: &[u8]) -> (u32, u32) {
    let words = data.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    ((data.len() / 4) as u32, words.fold(0u32, u32::wrapping_add))
}

/// The multiboot header with the address fields (flag bit 16): where the flat image goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    /// The physical address the header itself is loaded at.
    pub header_addr: u32,
    /// Where the image's first byte goes (at most `header_addr`).
    pub load_addr: u32,
    /// The end of the bytes loaded from the file (0: the whole file).
    pub load_end_addr: u32,
    /// The end of the zero-filled memory after them (0: none).
    pub bss_end_addr: u32,
    /// The 32-bit entry point.
    pub entry_addr: u32,
}

impl Header {
    /// The header as loaders read it: magic, flags, checksum (the three sum to zero), then the
    /// five address fields.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(self.flags);
        let fields = [
            HEADER_MAGIC,
            self.flags,
            checksum,
            self.header_addr,
            self.load_addr,
            self.load_end_addr,
            self.bss_end_addr,
            self.entry_addr,
        ];
        let mut out = [0u8; HEADER_SIZE];
        for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    /// The first valid header in `image`'s first 8 KiB and its offset, as loaders find it.
    pub fn find(image: &[u8]) -> Option<(usize, Header)> {
        let end = image.len().min(HEADER_SEARCH);
        (0..end).step_by(4).find_map(|at| {
            let word = |i: usize| u32_at(image, at + 4 * i);
            if word(0)? != HEADER_MAGIC || word(0)?.wrapping_add(word(1)?).wrapping_add(word(2)?) != 0 {
                return None;
            }
            let flags = word(1)?;
            let addr = |i| if flags & HEADER_ADDRESS != 0 { word(i) } else { Some(0) };
            Some((
                at,
                Header {
                    flags,
                    header_addr: addr(3)?,
                    load_addr: addr(4)?,
                    load_end_addr: addr(5)?,
                    bss_end_addr: addr(6)?,
                    entry_addr: addr(7)?,
                },
            ))
        })
    }
}

/// The fields of the multiboot information structure the kernel uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub flags: u32,
    /// KiB of memory from 0 and from 1 MiB ([`INFO_MEMORY`]).
    pub mem_lower: u32,
    pub mem_upper: u32,
    /// A NUL-terminated command line ([`INFO_CMDLINE`]).
    pub cmdline: u32,
    /// `mods_count` [`Module`]s at `mods_addr` ([`INFO_MODS`]).
    pub mods_count: u32,
    pub mods_addr: u32,
    /// `mmap_length` bytes of size-prefixed memory map entries at `mmap_addr` ([`INFO_MMAP`]).
    pub mmap_length: u32,
    pub mmap_addr: u32,
}

impl Info {
    /// Reads the structure's first [`INFO_SIZE`] bytes.
    pub fn parse(bytes: &[u8; INFO_SIZE]) -> Info {
        let word = |at: usize| u32_at(bytes, at).unwrap_or(0);
        Info {
            flags: word(0),
            mem_lower: word(4),
            mem_upper: word(8),
            cmdline: word(16),
            mods_count: word(20),
            mods_addr: word(24),
            mmap_length: word(44),
            mmap_addr: word(48),
        }
    }

    /// The command line's physical address, when the loader gave one.
    pub fn cmdline(&self) -> Option<u32> {
        (self.flags & INFO_CMDLINE != 0 && self.cmdline != 0).then_some(self.cmdline)
    }

    /// Where the module list is and how many entries it has, when the loader gave modules.
    pub fn modules(&self) -> Option<(u32, u32)> {
        (self.flags & INFO_MODS != 0 && self.mods_count > 0 && self.mods_addr != 0)
            .then_some((self.mods_addr, self.mods_count))
    }

    /// Where the memory map is and its length in bytes, when the loader gave one.
    pub fn mmap(&self) -> Option<(u32, u32)> {
        (self.flags & INFO_MMAP != 0 && self.mmap_length > 0 && self.mmap_addr != 0)
            .then_some((self.mmap_addr, self.mmap_length))
    }

    /// Without a memory map: the two usable ranges `mem_lower`/`mem_upper` describe, as
    /// e820-style `(address, size, type)`.
    pub fn basic_memory(&self) -> Option<[(u64, u64, u32); 2]> {
        (self.flags & INFO_MEMORY != 0).then(|| {
            [
                (0, u64::from(self.mem_lower) * 1024, crate::E820_USABLE),
                (0x10_0000, u64::from(self.mem_upper) * 1024, crate::E820_USABLE),
            ]
        })
    }
}

/// One module: `[start, end)` physical, and its string (the loader's name for it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub start: u32,
    pub end: u32,
    pub string: u32,
}

impl Module {
    pub fn parse(bytes: &[u8; MODULE_SIZE]) -> Module {
        let word = |at: usize| u32_at(bytes, at).unwrap_or(0);
        Module { start: word(0), end: word(4), string: word(8) }
    }

    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The entries of a multiboot memory map, as e820-style `(address, size, type)`. Each entry is
/// `size` (u32, not counting itself), `base_addr` (u64), `length` (u64), `type` (u32); the next
/// entry starts `size + 4` bytes on. A truncated last entry is dropped.
pub fn mmap_entries(map: &[u8]) -> impl Iterator<Item = (u64, u64, u32)> + Clone + '_ {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        let size = u32_at(map, at)? as usize;
        let entry = map.get(at + 4..(at + 4).checked_add(size)?)?;
        if size < 20 {
            return None;
        }
        at += 4 + size;
        Some((u64_at(entry, 0)?, u64_at(entry, 8)?, u32_at(entry, 16)?))
    })
}

/// The kernel's arguments in a multiboot command line: loaders (QEMU, iPXE, GRUB) put the
/// image's name or URI first; everything after it is ours.
pub fn kernel_args(cmdline: &str) -> &str {
    let cmdline = cmdline.trim_start();
    cmdline.split_once(char::is_whitespace).map_or("", |(_, rest)| rest.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_and_round_trip() {
        let h = Header {
            flags: HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO | HEADER_ADDRESS,
            header_addr: 0x1f_f000,
            load_addr: 0x1f_f000,
            load_end_addr: 0x30_0000,
            bss_end_addr: 0x40_0000,
            entry_addr: 0x20_0040,
        };
        let bytes = h.to_bytes();
        let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(word(0), 0x1bad_b002);
        assert_eq!(word(1), 0x0001_0003);
        assert_eq!(word(0).wrapping_add(word(1)).wrapping_add(word(2)), 0);
        let mut image = [0u8; 64];
        image[8..40].copy_from_slice(&bytes);
        assert_eq!(Header::find(&image), Some((8, h)));
        image[8 + 8] ^= 1; // a bad checksum
        assert_eq!(Header::find(&image), None);
        assert_eq!(Header::find(&bytes[..20]), None, "cut short");
    }

    #[test]
    fn image_check_sums_words() {
        assert_eq!(image_check(&[]), (0, 0));
        let data = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 1, 0, 0];
        assert_eq!(image_check(&data), (3, 0x102));
        assert_eq!(u32::from_le_bytes(CHECK_MAGIC[..4].try_into().unwrap()), 0x5050_4150);
    }

    #[test]
    fn info_fields() {
        let mut mbi = [0u8; INFO_SIZE];
        let mut put = |at: usize, v: u32| mbi[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(0, INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MMAP);
        put(4, 639);
        put(8, 523_136);
        put(16, 0x9100);
        put(20, 1);
        put(24, 0x9200);
        put(44, 48);
        put(48, 0x9300);
        let info = Info::parse(&mbi);
        assert_eq!(info.cmdline(), Some(0x9100));
        assert_eq!(info.modules(), Some((0x9200, 1)));
        assert_eq!(info.mmap(), Some((0x9300, 48)));
        assert_eq!(info.basic_memory().unwrap()[1], (0x10_0000, 523_136 * 1024, 1));
        let bare = Info { flags: 0, ..info };
        assert_eq!((bare.cmdline(), bare.modules(), bare.mmap(), bare.basic_memory()), (None, None, None, None));
        let mut module = [0u8; MODULE_SIZE];
        module[..4].copy_from_slice(&0x50_0000u32.to_le_bytes());
        module[4..8].copy_from_slice(&0x50_002eu32.to_le_bytes());
        let m = Module::parse(&module);
        assert_eq!((m.start, m.len(), m.is_empty()), (0x50_0000, 46, false));
    }

    #[test]
    fn memory_map_entries() {
        let mut map = [0u8; 24 * 2 + 28];
        let mut at = 0;
        for (size, addr, len, kind) in
            [(20u32, 0u64, 0x9fc00u64, 1u32), (24, 0x10_0000, 0x1ff0_0000, 1), (20, 0xfeff_c000, 0x4000, 2)]
        {
            map[at..at + 4].copy_from_slice(&size.to_le_bytes());
            map[at + 4..at + 12].copy_from_slice(&addr.to_le_bytes());
            map[at + 12..at + 20].copy_from_slice(&len.to_le_bytes());
            map[at + 20..at + 24].copy_from_slice(&kind.to_le_bytes());
            at += 4 + size as usize;
        }
        let entries: [(u64, u64, u32); 3] = core::array::from_fn(|i| mmap_entries(&map).nth(i).unwrap());
        assert_eq!(entries, [(0, 0x9fc00, 1), (0x10_0000, 0x1ff0_0000, 1), (0xfeff_c000, 0x4000, 2)]);
        assert_eq!(mmap_entries(&map).count(), 3);
        assert_eq!(mmap_entries(&map[..50]).count(), 1, "a cut entry is dropped");
        assert_eq!(mmap_entries(&[4, 0, 0, 0, 0, 0, 0, 0]).count(), 0, "an entry too small to hold its fields");
    }

    #[test]
    fn command_line_drops_the_image_name() {
        assert_eq!(kernel_args("tftp://10.0.2.2/pappus-kernel.mb log=debug test"), "log=debug test");
        assert_eq!(kernel_args("/tmp/pappus-kernel.mb "), "");
        assert_eq!(kernel_args("pappus-kernel.mb"), "");
        assert_eq!(kernel_args(""), "");
        assert_eq!(kernel_args("  k   a  b"), "a  b");
    }
}
