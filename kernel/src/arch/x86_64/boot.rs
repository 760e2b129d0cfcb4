//! The x86_64 boot entries: PVH (QEMU `-kernel`, Xen, Firecracker-style loaders), multiboot1
//! (legacy BIOS: iPXE, GRUB, QEMU `-kernel` with `pappus-kernel.mb`) and the Pappus UEFI
//! loader (`loader/`, 64-bit, see the end of this comment). All three fill one [`BootInfo`].
//!
//! The loader enters `pvh_start32` in 32-bit protected mode, paging off, with `ebx` pointing at
//! a `hvm_start_info`. The assembly below reads the TSC first (the boot benchmark's zero), loads
//! early page tables that map the first 4 GiB three ways (identity, for this code; the direct
//! map at `PHYS_OFFSET`; and the kernel's top-2-GiB window), enters long mode and calls
//! [`pvh_entry`] on the boot stack. Rust then replaces these tables with its own
//! (see `paging.rs`).
//!
//! A multiboot1 loader enters `multiboot_start32` in the same state (32-bit, paging off, no
//! stack we may trust), with `eax` = 0x2BADB002 and `ebx` pointing at the multiboot
//! information. The kernel ELF itself carries no multiboot header (QEMU's `-kernel` would
//! prefer it over the PVH note): `cargo xtask image --pxe` makes `pappus-kernel.mb`, a flat
//! image with a multiboot header whose entry is the address in the ELF note `Pappus` of type
//! [`bootinfo::NOTE_MULTIBOOT32`]. The entry first verifies the image check that follows the
//! header (a loader handed a file cut short may run whatever followed it in memory; the check
//! fails with a line on COM1 and the CPU stops), then shares the PVH path's switch to long mode
//! and calls [`multiboot_entry`], which takes the memory map, the command line (less the image
//! name loaders put first) and the first module (the boot configuration) from the information
//! structure, and finds the ACPI RSDP by the legacy BIOS scan (multiboot1 does not pass it).
//!
//! The UEFI loader enters `uefi_start64` in 64-bit long mode on the firmware's identity-mapped
//! page tables, interrupts off, with `rdi` holding the physical address of a
//! [`bootinfo::BootBlock`] below 4 GiB. The loader finds this entry in the ELF note `Pappus`
//! of type [`bootinfo::NOTE_ENTRY64`] (the ELF header's entry field stays `pvh_start32`). The
//! assembly reads the TSC, loads the same early page tables and GDT as the PVH path, moves to
//! the boot stack and calls [`uefi_entry`], which fills the same [`BootInfo`].

use core::arch::global_asm;

use kcore::memmap::{MemoryMap, Region, RegionKind};

use super::{PHYS_OFFSET, stacks};
use crate::boot::{BootInfo, PhysRange};
use crate::boot_cell::BootCell;

global_asm!(
    include_str!("boot.S"),
    boot_stack = sym stacks::BOOT_STACK,
    boot_stack_size = const stacks::BOOT_STACK_SIZE,
    entry = sym pvh_entry,
    uefi_entry = sym uefi_entry,
    multiboot_entry = sym multiboot_entry,
    note_entry64 = const bootinfo::NOTE_ENTRY64,
    note_multiboot32 = const bootinfo::NOTE_MULTIBOOT32,
    check_offset = const bootinfo::multiboot::CHECK_OFFSET,
    check_magic_lo = const check_magic_word(0),
    check_magic_hi = const check_magic_word(4),
);

/// The image check's magic as the 32-bit words the multiboot entry compares.
const fn check_magic_word(at: usize) -> u32 {
    let m = bootinfo::multiboot::CHECK_MAGIC;
    u32::from_le_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])
}

/// `hvm_start_info`, as in Xen's `arch-x86/hvm/start_info.h`.
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `hvm_modlist_entry`: one module the loader placed in memory (QEMU: the `-initrd` file).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

const START_INFO_MAGIC: u32 = 0x336e_c578;
const CMDLINE_MAX: usize = 4096;

/// The command line, copied out of loader memory before that memory becomes usable RAM.
static CMDLINE: BootCell<[u8; CMDLINE_MAX]> = BootCell::new([0; CMDLINE_MAX]);

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

extern "C" fn pvh_entry(start_info: u64, entry_tsc: u64) -> ! {
    super::early_init();
    // SAFETY: the loader passes a physical pointer to its start info; the early page tables map
    // the first 4 GiB at PHYS_OFFSET, where PVH loaders place it.
    let si = unsafe { &*((start_info + PHYS_OFFSET) as *const StartInfo) };
    if si.magic != START_INFO_MAGIC {
        panic!("PVH start info at {start_info:#x} has magic {:#x}, expected {START_INFO_MAGIC:#x}", si.magic);
    }
    let cmdline = copy_cmdline(si.cmdline_paddr);
    if si.version < 1 || si.memmap_entries == 0 {
        panic!("PVH start info version {} carries no memory map", si.version);
    }
    // SAFETY: `memmap_entries` entries at `memmap_paddr`, inside the first 4 GiB (see above).
    let entries = unsafe {
        core::slice::from_raw_parts((si.memmap_paddr + PHYS_OFFSET) as *const MemmapEntry, si.memmap_entries as usize)
    };
    let mut memory = memory_map(entries.iter().map(|e| (e.addr, e.size, e.kind)));
    // The first module is the boot configuration; its pages stay out of the allocator.
    let config = (si.nr_modules > 0 && si.modlist_paddr != 0)
        .then(|| {
            // SAFETY: the loader's module list, inside the first 4 GiB like the start info.
            unsafe { *((si.modlist_paddr + PHYS_OFFSET) as *const ModlistEntry) }
        })
        .filter(|m| m.size > 0)
        .map(|m| PhysRange { start: m.paddr, len: m.size });
    if let Some(c) = config {
        memory.reserve(c.start, c.start + c.len).unwrap_or_else(|e| panic!("boot configuration module: {e}"));
    }
    crate::time::set_boot_ticks(entry_tsc);
    crate::kernel_main(BootInfo {
        protocol: "pvh",
        cmdline,
        memory,
        entry_ticks: entry_tsc,
        loader_ticks: None,
        config,
        rsdp: (si.rsdp_paddr != 0).then_some(si.rsdp_paddr),
    })
}

extern "C" fn uefi_entry(block_paddr: u64, entry_tsc: u64) -> ! {
    super::early_init();
    // SAFETY: the loader passes the physical address of its block, below 4 GiB (its contract,
    // see the bootinfo crate), which the early page tables map at PHYS_OFFSET.
    let block = unsafe { ((block_paddr + PHYS_OFFSET) as *const bootinfo::BootBlock).read() };
    if block.magic != bootinfo::MAGIC || block.version != bootinfo::VERSION {
        panic!(
            "UEFI boot block at {block_paddr:#x}: magic {:#x} version {}, expected {:#x} version {}",
            block.magic,
            block.version,
            bootinfo::MAGIC,
            bootinfo::VERSION
        );
    }
    let cmdline = copy_cmdline(block.cmdline_paddr);
    if block.memmap_entries == 0 || block.memmap_paddr == 0 {
        panic!("UEFI boot block carries no memory map");
    }
    // SAFETY: `memmap_entries` regions at `memmap_paddr`, below 4 GiB (the loader's contract).
    let entries = unsafe {
        core::slice::from_raw_parts(
            (block.memmap_paddr + PHYS_OFFSET) as *const bootinfo::MemoryRegion,
            block.memmap_entries as usize,
        )
    };
    let mut memory = memory_map(entries.iter().map(|e| (e.addr, e.size, e.kind)));
    // The block, the map and the command line are read by now (the map copied, the command line
    // too); only the configuration file is read later, so only its pages stay out of the
    // allocator.
    let config = (block.config_paddr != 0 && block.config_len > 0)
        .then_some(PhysRange { start: block.config_paddr, len: block.config_len });
    if let Some(c) = config {
        memory.reserve(c.start, c.start + c.len).unwrap_or_else(|e| panic!("boot configuration: {e}"));
    }
    crate::time::set_boot_ticks(entry_tsc);
    // The ready line counts from the loader's entry, and says how much of that was the loader's
    // (`cargo xtask bench boot`, UEFI case). A loader that reports no entry (0) leaves it out.
    let loader_entry =
        (block.loader_entry_tsc != 0 && block.loader_entry_tsc <= entry_tsc).then_some(block.loader_entry_tsc);
    crate::kernel_main(BootInfo {
        protocol: "uefi",
        cmdline,
        memory,
        entry_ticks: loader_entry.unwrap_or(entry_tsc),
        loader_ticks: loader_entry.map(|l| entry_tsc - l),
        config,
        rsdp: (block.rsdp_paddr != 0).then_some(block.rsdp_paddr),
    })
}

extern "C" fn multiboot_entry(info_paddr: u64, entry_tsc: u64, magic: u64) -> ! {
    use bootinfo::multiboot::{self, Info, Module};
    super::early_init();
    // The upper half of rdx is whatever the 32-bit code left: only eax was the loader's.
    let magic = magic as u32;
    if magic != multiboot::BOOTLOADER_MAGIC {
        panic!(
            "multiboot entry reached with eax = {magic:#x}, not the multiboot1 loader magic {:#x}: \
             boot pappus-kernel.mb with a multiboot1 loader (iPXE `kernel`, GRUB `multiboot`, QEMU -kernel)",
            multiboot::BOOTLOADER_MAGIC
        );
    }
    // SAFETY: a multiboot1 loader passes the physical address of its information structure in
    // ebx, a 32-bit address, which the early page tables map at PHYS_OFFSET.
    let info = Info::parse(unsafe { &*((info_paddr + PHYS_OFFSET) as *const [u8; multiboot::INFO_SIZE]) });
    let cmdline = multiboot::kernel_args(copy_cmdline(info.cmdline().map_or(0, u64::from)));
    let mut memory = if let Some((addr, len)) = info.mmap() {
        // SAFETY: `len` bytes of memory map at a 32-bit physical address (mapped, see above).
        let map = unsafe { core::slice::from_raw_parts((u64::from(addr) + PHYS_OFFSET) as *const u8, len as usize) };
        memory_map(multiboot::mmap_entries(map))
    } else if let Some(basic) = info.basic_memory() {
        memory_map(basic.into_iter())
    } else {
        panic!("multiboot information at {info_paddr:#x} (flags {:#x}) carries no memory map", info.flags);
    };
    // The first module is the boot configuration; its pages stay out of the allocator.
    let config = info
        .modules()
        .map(|(addr, _)| {
            // SAFETY: the loader's module list, at a 32-bit physical address (mapped, see above).
            Module::parse(unsafe { &*((u64::from(addr) + PHYS_OFFSET) as *const [u8; multiboot::MODULE_SIZE]) })
        })
        .filter(|m| !m.is_empty())
        .map(|m| PhysRange { start: u64::from(m.start), len: u64::from(m.len()) });
    if let Some(c) = config {
        memory.reserve(c.start, c.start + c.len).unwrap_or_else(|e| panic!("boot configuration module: {e}"));
    }
    // SAFETY: the early page tables map the first MiB (BIOS data area, EBDA, BIOS ROM) at
    // PHYS_OFFSET, and the scan reads nothing else.
    let rsdp = unsafe { drivers::acpi::find_rsdp(|phys, _| (phys + PHYS_OFFSET) as *const u8) };
    crate::time::set_boot_ticks(entry_tsc);
    crate::kernel_main(BootInfo {
        protocol: "multiboot1",
        cmdline,
        memory,
        entry_ticks: entry_tsc,
        loader_ticks: None,
        config,
        rsdp,
    })
}

/// The usable RAM of an e820-style map `(address, size, type)` (PVH, multiboot1 and the UEFI
/// loader all hand one over), with the first MiB and the kernel image already taken out.
fn memory_map(e820: impl Iterator<Item = (u64, u64, u32)> + Clone) -> MemoryMap {
    let raw = e820.map(|(addr, size, kind)| Region {
        start: addr,
        end: addr.saturating_add(size),
        kind: RegionKind::from_e820(kind),
    });
    let mut memory = MemoryMap::from_firmware(raw).unwrap_or_else(|e| panic!("{e}"));
    reserve_low_and_image(&mut memory);
    memory
}

/// The first MiB holds firmware tables and, later, the SMP trampoline; then our own image.
fn reserve_low_and_image(memory: &mut MemoryMap) {
    let (image_start, image_end) = kernel_image();
    for (start, end) in [(0, 0x10_0000), (image_start, image_end)] {
        memory.reserve(start, end).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The kernel image's physical extent, from the linker script.
pub fn kernel_image() -> (u64, u64) {
    // Linker-defined symbols; only their addresses are used.
    (&raw const __kernel_phys_start as u64, &raw const __kernel_phys_end as u64)
}

fn copy_cmdline(paddr: u64) -> &'static str {
    if paddr == 0 {
        return "";
    }
    let src = (paddr + PHYS_OFFSET) as *const u8;
    // SAFETY: runs once, on the boot CPU, before anything else reads CMDLINE; the source is a
    // NUL-terminated string in loader memory below 4 GiB, mapped by the early tables.
    let buf = unsafe { &mut *CMDLINE.get() };
    let mut len = 0;
    while len < CMDLINE_MAX - 1 {
        // SAFETY: as above; reading stops at the terminator or the buffer's end.
        let b = unsafe { src.add(len).read() };
        if b == 0 {
            break;
        }
        buf[len] = b;
        len += 1;
    }
    // A command line that is not UTF-8 is treated as empty rather than trusted half-way.
    core::str::from_utf8(&buf[..len]).unwrap_or("")
}
