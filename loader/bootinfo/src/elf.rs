//! The kernel ELF as the loader needs it: the `PT_LOAD` segments by physical address and the
//! 64-bit entry from the [`NOTE_NAME`](crate::NOTE_NAME) note. Every offset and size is checked
//! against the file, so a truncated or corrupt file is an error, never a wild copy.

use core::fmt;

use crate::le::{u16_at, u32_at, u64_at};

/// At most this many `PT_LOAD` segments (the kernel has four).
pub const MAX_SEGMENTS: usize = 16;

/// One segment to copy: `filesz` bytes from `offset` in the file to physical `paddr`, then
/// zeros up to `memsz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub filesz: u64,
    pub paddr: u64,
    pub memsz: u64,
}

/// What loading the kernel takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub segments: [Segment; MAX_SEGMENTS],
    pub count: usize,
    /// The physical range all segments lie in, page-aligned: `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// The physical address of the 64-bit entry.
    pub entry64: u64,
    /// The physical address of the 32-bit multiboot1 entry
    /// ([`NOTE_MULTIBOOT32`](crate::NOTE_MULTIBOOT32)); 0 when the kernel has none.
    pub multiboot32: u64,
}

impl Plan {
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf,
    Not64BitLittleEndian,
    NotX86_64(u16),
    NotExecutable(u16),
    BadProgramHeaders,
    SegmentOutsideFile(usize),
    SegmentTooLarge(usize),
    TooManySegments,
    NoSegments,
    NoEntry64,
    EntryOutsideImage(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => write!(f, "file too short for an ELF header"),
            Self::NotElf => write!(f, "not an ELF file (bad magic)"),
            Self::Not64BitLittleEndian => write!(f, "not a 64-bit little-endian ELF"),
            Self::NotX86_64(m) => write!(f, "ELF machine {m} is not x86_64 (62)"),
            Self::NotExecutable(t) => write!(f, "ELF type {t} is not an executable (2)"),
            Self::BadProgramHeaders => write!(f, "program headers lie outside the file"),
            Self::SegmentOutsideFile(i) => write!(f, "segment {i} lies outside the file"),
            Self::SegmentTooLarge(i) => write!(f, "segment {i} has memsz < filesz or overflows"),
            Self::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            Self::NoSegments => write!(f, "no loadable segments"),
            Self::NoEntry64 => write!(f, "no Pappus 64-bit entry note (is this a Pappus kernel?)"),
            Self::EntryOutsideImage(a) => write!(f, "64-bit entry {a:#x} lies outside the loaded image"),
        }
    }
}

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PAGE: u64 = 4096;

/// Reads the kernel ELF's load plan.
pub fn plan(file: &[u8]) -> Result<Plan, ElfError> {
    if !file.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if file.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if file[4] != 2 || file[5] != 1 {
        return Err(ElfError::Not64BitLittleEndian);
    }
    let bad = ElfError::BadProgramHeaders;
    let kind = u16_at(file, 16).ok_or(bad)?;
    let machine = u16_at(file, 18).ok_or(bad)?;
    if machine != 62 {
        return Err(ElfError::NotX86_64(machine));
    }
    if kind != 2 {
        return Err(ElfError::NotExecutable(kind));
    }
    let phoff = usize::try_from(u64_at(file, 32).ok_or(bad)?).map_err(|_| bad)?;
    let phentsize = usize::from(u16_at(file, 54).ok_or(bad)?);
    let phnum = usize::from(u16_at(file, 56).ok_or(bad)?);
    if phentsize < 56 || phoff.checked_add(phentsize * phnum).is_none_or(|end| end > file.len()) {
        return Err(bad);
    }
    let mut p = Plan {
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
        start: u64::MAX,
        end: 0,
        entry64: 0,
        multiboot32: 0,
    };
    let mut entry = None;
    let mut multiboot32 = None;
    for i in 0..phnum {
        let ph = &file[phoff + i * phentsize..][..phentsize];
        let (ty, offset, paddr, filesz, memsz) = (
            u32_at(ph, 0).ok_or(bad)?,
            u64_at(ph, 8).ok_or(bad)?,
            u64_at(ph, 24).ok_or(bad)?,
            u64_at(ph, 32).ok_or(bad)?,
            u64_at(ph, 40).ok_or(bad)?,
        );
        let in_file = offset.checked_add(filesz).is_some_and(|end| end <= file.len() as u64);
        match ty {
            PT_LOAD => {
                if !in_file {
                    return Err(ElfError::SegmentOutsideFile(i));
                }
                let end = paddr.checked_add(memsz).filter(|_| memsz >= filesz);
                let Some(end) = end.filter(|e| *e <= u64::MAX - PAGE) else {
                    return Err(ElfError::SegmentTooLarge(i));
                };
                if memsz == 0 {
                    continue;
                }
                if p.count == MAX_SEGMENTS {
                    return Err(ElfError::TooManySegments);
                }
                p.segments[p.count] = Segment { offset, filesz, paddr, memsz };
                p.count += 1;
                p.start = p.start.min(paddr & !(PAGE - 1));
                p.end = p.end.max(end.next_multiple_of(PAGE));
            }
            PT_NOTE => {
                if !in_file {
                    return Err(ElfError::SegmentOutsideFile(i));
                }
                // In range: checked just above.
                let notes = &file[offset as usize..(offset + filesz) as usize];
                entry = entry.or(find_note(notes, crate::NOTE_ENTRY64));
                multiboot32 = multiboot32.or(find_note(notes, crate::NOTE_MULTIBOOT32));
            }
            _ => {}
        }
    }
    if p.count == 0 {
        return Err(ElfError::NoSegments);
    }
    let entry = entry.ok_or(ElfError::NoEntry64)?;
    if !(p.start..p.end).contains(&entry) {
        return Err(ElfError::EntryOutsideImage(entry));
    }
    p.entry64 = entry;
    p.multiboot32 = multiboot32.filter(|a| (p.start..p.end).contains(a)).unwrap_or(0);
    Ok(p)
}

/// The address in a note segment's [`NOTE_NAME`](crate::NOTE_NAME) note of type `want` (an
/// 8-byte little-endian descriptor), if any.
fn find_note(mut notes: &[u8], want: u32) -> Option<u64> {
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let ty = u32_at(notes, 8)?;
        let name = notes.get(12..12usize.checked_add(namesz)?)?;
        let desc_at = 12 + align4(namesz)?;
        let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        if name == crate::NOTE_NAME && ty == want && descsz == 8 {
            return u64_at(desc, 0);
        }
        notes = notes.get(desc_at + align4(descsz)?..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: one PT_LOAD at physical 2 MiB with a .bss tail, one PT_NOTE with the
    /// 64-bit and the multiboot entry notes.
    fn sample(note_name: &[u8]) -> [u8; 0x200] {
        let mut f = [0u8; 0x200];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |f: &mut [u8; 0x200], at: usize, ty: u32, off: u64, paddr: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&ty.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        };
        ph(&mut f, 64, PT_LOAD, 0x100, 0x20_0000, 0x40, 0x3000);
        ph(&mut f, 120, PT_NOTE, 0x180, 0, 56, 56);
        for (n, ty, entry) in [(0x180, 1u32, 0x20_0010u64), (0x19c, 2, 0x20_0020)] {
            f[n..n + 4].copy_from_slice(&7u32.to_le_bytes());
            f[n + 4..n + 8].copy_from_slice(&8u32.to_le_bytes());
            f[n + 8..n + 12].copy_from_slice(&ty.to_le_bytes());
            f[n + 12..n + 12 + note_name.len()].copy_from_slice(note_name);
            f[n + 20..n + 28].copy_from_slice(&entry.to_le_bytes());
        }
        f
    }

    #[test]
    fn reads_segments_and_entry() {
        let p = plan(&sample(b"Pappus\0")).unwrap();
        assert_eq!(p.segments(), &[Segment { offset: 0x100, filesz: 0x40, paddr: 0x20_0000, memsz: 0x3000 }]);
        assert_eq!((p.start, p.end, p.entry64), (0x20_0000, 0x20_3000, 0x20_0010));
        assert_eq!(p.multiboot32, 0x20_0020);
        // Without the multiboot note the plan is still good (the UEFI loader does not need it).
        let mut f = sample(b"Pappus\0");
        f[0x19c + 8] = 9;
        assert_eq!(plan(&f).unwrap().multiboot32, 0);
    }

    #[test]
    fn refuses_bad_files() {
        assert_eq!(plan(b"hello"), Err(ElfError::NotElf));
        assert_eq!(plan(b"\x7fELF\x02\x01"), Err(ElfError::TooShort));
        assert_eq!(plan(&[0u8; 64]), Err(ElfError::NotElf));
        assert_eq!(plan(&sample(b"Xen\0\0\0\0")), Err(ElfError::NoEntry64));
        let f = sample(b"Pappus\0");
        assert_eq!(plan(&f[..0x120]), Err(ElfError::SegmentOutsideFile(0)));
        let mut g = f;
        g[18] = 183;
        assert_eq!(plan(&g), Err(ElfError::NotX86_64(183)));
        let mut g = f;
        g[56] = 200; // program headers past the end
        assert_eq!(plan(&g), Err(ElfError::BadProgramHeaders));
    }
}
