//! `pappus-kernel.mb`: the kernel as a multiboot1 image, for legacy-BIOS boots (iPXE's
//! `kernel`/`module`/`boot`, GRUB's `multiboot`, QEMU's `-kernel`).
//!
//! The kernel ELF keeps no multiboot header (QEMU's `-kernel` would prefer it over the PVH
//! note, see kernel/src/arch/x86_64/boot.rs), and multiboot loaders cannot load an ELF64 anyway.
//! So the image is flat: one page holding the header (flags: page-aligned modules, memory
//! information, address fields), then the `PT_LOAD` segments laid out by physical address, gaps
//! and each segment's zero tail written as zeros, except the last segment's tail, which the
//! header's `bss_end_addr` asks the loader to zero. The header page sits just below the image
//! (0x1FF000 for the kernel at 2 MiB): loaders refuse a header below `load_addr`. After the
//! header, the page holds the image check (`bootinfo::multiboot::CHECK_OFFSET`) that the
//! kernel's multiboot entry verifies, so that a file cut short is reported, not run.

use bootinfo::multiboot::{
    CHECK_MAGIC, CHECK_OFFSET, CHECK_UNIT, HEADER_ADDRESS, HEADER_MEMORY_INFO, HEADER_PAGE_ALIGN, Header, image_check,
};

const PAGE: u64 = 4096;

/// The multiboot image of `elf` (the kernel ELF, stripped or not), and its header.
pub fn image(elf: &[u8]) -> Result<(Vec<u8>, Header), String> {
    let plan = bootinfo::elf::plan(elf).map_err(|e| format!("not a usable kernel: {e}"))?;
    if plan.multiboot32 == 0 {
        return Err("the kernel has no multiboot entry note (Pappus note type 2)".into());
    }
    let mut segments = plan.segments().to_vec();
    segments.sort_by_key(|s| s.paddr);
    for pair in segments.windows(2) {
        if pair[0].paddr + pair[0].memsz > pair[1].paddr {
            return Err(format!("segments at {:#x} and {:#x} overlap", pair[0].paddr, pair[1].paddr));
        }
    }
    let start = plan.start;
    let load_addr = start.checked_sub(PAGE).filter(|a| *a >= 0x10_0000).ok_or_else(|| {
        format!("the image starts at {start:#x}; a multiboot image needs it at 1 MiB + 4 KiB or above")
    })?;
    let last = segments.last().ok_or("no loadable segments")?;
    // A whole number of the image check's units (the image starts page-aligned).
    let data_end = (last.paddr + last.filesz).next_multiple_of(CHECK_UNIT);
    let bss_end = segments.iter().map(|s| s.paddr + s.memsz).max().unwrap_or(data_end).max(data_end);
    let addr32 = |a: u64| u32::try_from(a).map_err(|_| format!("address {a:#x} is above 4 GiB"));

    let header = Header {
        flags: HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO | HEADER_ADDRESS,
        header_addr: addr32(load_addr)?,
        load_addr: addr32(load_addr)?,
        load_end_addr: addr32(data_end)?,
        bss_end_addr: addr32(bss_end)?,
        entry_addr: addr32(plan.multiboot32)?,
    };
    let mut out = vec![0u8; (data_end - load_addr) as usize];
    for s in &segments {
        let at = (s.paddr - load_addr) as usize;
        out[at..at + s.filesz as usize].copy_from_slice(&elf[s.offset as usize..][..s.filesz as usize]);
    }
    out[..bootinfo::multiboot::HEADER_SIZE].copy_from_slice(&header.to_bytes());
    let (words, sum) = image_check(&out[PAGE as usize..]);
    let check = &mut out[CHECK_OFFSET..CHECK_OFFSET + 16];
    check[..8].copy_from_slice(&CHECK_MAGIC);
    check[8..12].copy_from_slice(&words.to_le_bytes());
    check[12..].copy_from_slice(&sum.to_le_bytes());
    Ok((out, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 with two `PT_LOAD` segments at physical 2 MiB (3 bytes, then a gap) and 2 MiB +
    /// 8 KiB (3 bytes and a bss up to 2 MiB + 16 KiB), and a note segment with the 64-bit and
    /// the multiboot entry notes.
    fn sample() -> Vec<u8> {
        let mut f = vec![0u8; 0x300];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&3u16.to_le_bytes());
        let mut ph = |at: usize, ty: u32, off: u64, paddr: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&ty.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        };
        // Listed out of order on purpose.
        ph(64, 1, 0x210, 0x20_2000, 3, 0x2000);
        ph(120, 1, 0x200, 0x20_0000, 3, 0x10);
        ph(176, 4, 0x240, 0, 56, 56);
        f[0x200..0x203].copy_from_slice(b"abc");
        f[0x210..0x214].copy_from_slice(b"WXYZ"); // Z is past the segment's filesz
        for (n, ty, entry) in [(0x240, 1u32, 0x20_0001u64), (0x25c, 2, 0x20_0002)] {
            f[n..n + 4].copy_from_slice(&7u32.to_le_bytes());
            f[n + 4..n + 8].copy_from_slice(&8u32.to_le_bytes());
            f[n + 8..n + 12].copy_from_slice(&ty.to_le_bytes());
            f[n + 12..n + 19].copy_from_slice(b"Pappus\0");
            f[n + 20..n + 28].copy_from_slice(&entry.to_le_bytes());
        }
        f
    }

    #[test]
    fn lays_out_segments_by_physical_address() {
        let (image, header) = image(&sample()).unwrap();
        assert_eq!(
            header,
            Header {
                flags: 0x1_0003,
                header_addr: 0x1f_f000,
                load_addr: 0x1f_f000,
                load_end_addr: 0x20_2020,
                bss_end_addr: 0x20_4000,
                entry_addr: 0x20_0002,
            }
        );
        assert_eq!(image.len(), 0x3020);
        // What a loader finds: the header at offset 0, checksum right.
        assert_eq!(Header::find(&image), Some((0, header)));
        // The first segment's bytes at 2 MiB, then zeros (its memsz tail and the gap) up to the
        // second segment's.
        assert_eq!(&image[0x1000..0x1003], b"abc");
        assert!(image[0x1003..0x3000].iter().all(|b| *b == 0));
        // Padded to the image check's unit, 32 bytes.
        assert_eq!(&image[0x3000..0x3004], b"WXY\0");
        assert!(image[0x3004..].iter().all(|b| *b == 0));
        // The image check: magic, 0x2020 bytes = 0x808 words, their sum.
        assert_eq!(&image[32..40], b"PAPPUSMB");
        assert_eq!(&image[40..44], &0x808u32.to_le_bytes());
        let sum = u32::from_le_bytes(*b"abc\0").wrapping_add(u32::from_le_bytes(*b"WXY\0"));
        assert_eq!(&image[44..48], &sum.to_le_bytes());
        assert!(image[48..0x1000].iter().all(|b| *b == 0));
    }

    #[test]
    fn refuses_unusable_kernels() {
        assert!(image(b"not an elf").unwrap_err().contains("not an ELF"));
        let mut f = sample();
        f[0x25c + 8] = 7; // no multiboot note
        assert!(image(&f).unwrap_err().contains("no multiboot entry note"));
        let mut f = sample();
        f[64 + 24..64 + 32].copy_from_slice(&0x20_0008u64.to_le_bytes()); // inside the first one's bss
        assert!(image(&f).unwrap_err().contains("overlap"));
        let mut f = sample();
        f[64 + 24..64 + 32].copy_from_slice(&0x1_0000_2000u64.to_le_bytes()); // above 4 GiB
        assert!(image(&f).unwrap_err().contains("above 4 GiB"));
    }
}
