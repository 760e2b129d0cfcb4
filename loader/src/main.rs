//! The Pappus UEFI boot loader (x86_64).
//!
//! Loaded by the firmware from the EFI system partition (`EFI/BOOT/BOOTX64.EFI`) or over the
//! network (PXE/TFTP, as `bootx64.efi`), it reads two files from the same place — the kernel ELF
//! `pappus-kernel` and the boot configuration `pappus.conf` (optional) — copies the kernel to its
//! physical load address, fills a [`bootinfo::BootBlock`], exits boot services and jumps to the
//! kernel's 64-bit entry (found in the kernel's `Pappus` ELF note) with the block's address in
//! `rdi`. The command line is the image's load options (UEFI shell or iPXE arguments), without a
//! leading `*.efi` word.
//!
//! Every failure before `ExitBootServices` is printed on the console as `pappus-loader: error:
//! …` and returned to the firmware as an error status, which then tries its next boot option.

#![no_std]
#![no_main]
// The loader has no heap, so its error carries its message inline (a few hundred bytes); it is
// made at most once per boot.
#![allow(clippy::result_large_err)]

use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr};
use core::ptr::NonNull;

use bootinfo::{BootBlock, MemoryRegion};
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::{MemoryMap, MemoryMapMut};
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::media::file::{File, FileAttribute, FileMode, RegularFile};
use uefi::proto::network::pxe::BaseCode;
use uefi::table::cfg::ConfigTableEntry;
use uefi::{CStr8, CStr16, Status, println};

const KERNEL_FILE: &str = "pappus-kernel";
const CONFIG_FILE: &str = "pappus.conf";
/// docs/configuration.md: the file is at most 1 MiB.
const CONFIG_MAX: u64 = 1 << 20;
const KERNEL_MAX: u64 = 64 << 20;
const CMDLINE_MAX: usize = 4095;
/// Room for the memory map handed to the kernel (merged entries; OVMF has ~100 raw ones).
const MEMMAP_MAX: usize = 1024;
const PAGE: u64 = 4096;
/// The block and everything it points at stay below 4 GiB (the kernel's early tables map that).
const BELOW_4G: u64 = 0xffff_ffff;

/// A loader error: the message printed on the console and the status the firmware gets.
struct Failure(Status, heapless_msg::Msg);

mod heapless_msg {
    /// A fixed-size message buffer (the loader has no allocator).
    pub struct Msg {
        buf: [u8; 256],
        len: usize,
    }
    impl Msg {
        pub fn new() -> Self {
            Msg { buf: [0; 256], len: 0 }
        }
        pub fn as_str(&self) -> &str {
            // Only whole `str`s are written, cut at a char boundary below.
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
        }
    }
    impl core::fmt::Write for Msg {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = self.buf.len() - self.len;
            let mut n = s.len().min(room);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
}

macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {{
        let mut m = heapless_msg::Msg::new();
        let _ = write!(m, $($arg)*);
        Failure($status, m)
    }};
}

type Result<T> = core::result::Result<T, Failure>;

#[uefi::entry]
fn main() -> Status {
    // SAFETY: RDTSC has no side effects; every x86_64 CPU has it.
    let entry_tsc = unsafe { core::arch::x86_64::_rdtsc() };
    println!("pappus-loader {}: starting", env!("CARGO_PKG_VERSION"));
    match run(entry_tsc) {
        Ok(never) => match never {},
        Err(Failure(status, message)) => {
            println!("pappus-loader: error: {}", message.as_str());
            println!("pappus-loader: returning to the firmware ({status:?})");
            status
        }
    }
}

/// Where the files come from.
enum Source {
    Disk(uefi::boot::ScopedProtocol<uefi::proto::media::fs::SimpleFileSystem>),
    Tftp(uefi::boot::ScopedProtocol<BaseCode>, IpAddr),
}

impl Source {
    fn describe(&self, out: &mut heapless_msg::Msg) {
        let _ = match self {
            Source::Disk(_) => write!(out, "the EFI system partition"),
            Source::Tftp(_, ip) => write!(out, "TFTP server {ip}"),
        };
    }

    /// Reads `name` into fresh pages below 4 GiB; `Ok(None)` when the file does not exist.
    fn read(&mut self, name: &str, max: u64) -> Result<Option<&'static mut [u8]>> {
        match self {
            Source::Disk(fs) => {
                let mut wide = [0u16; 64];
                let path = ucs2(name, &mut wide)?;
                let mut root = fs.open_volume().map_err(|e| fail!(e.status(), "cannot open the boot volume: {e:?}"))?;
                let handle = match root.open(path, FileMode::Read, FileAttribute::empty()) {
                    Ok(h) => h,
                    Err(e) if e.status() == Status::NOT_FOUND => return Ok(None),
                    Err(e) => return Err(fail!(e.status(), "cannot open \\{name}: {:?}", e.status())),
                };
                let Some(mut file) = handle.into_regular_file() else {
                    return Err(fail!(Status::LOAD_ERROR, "\\{name} is a directory"));
                };
                file.set_position(RegularFile::END_OF_FILE)
                    .and_then(|()| file.get_position())
                    .and_then(|size| file.set_position(0).map(|()| size))
                    .map_err(|e| fail!(e.status(), "cannot size \\{name}: {:?}", e.status()))
                    .and_then(|size| {
                        let buf = alloc_buffer(name, size, max)?;
                        let mut done = 0;
                        while done < buf.len() {
                            let n = file
                                .read(&mut buf[done..])
                                .map_err(|e| fail!(e.status(), "reading \\{name}: {:?}", e.status()))?;
                            if n == 0 {
                                return Err(fail!(Status::LOAD_ERROR, "\\{name}: short read at byte {done}"));
                            }
                            done += n;
                        }
                        Ok(Some(buf))
                    })
            }
            Source::Tftp(pxe, server) => {
                let mut narrow = [0u8; 64];
                let path = ascii_cstr(name, &mut narrow)?;
                let missing = |s: Status| matches!(s, Status::TFTP_ERROR | Status::NOT_FOUND);
                // Some PXE stacks (iPXE's) cannot tell a size: read into the largest buffer.
                let (size, exact) = match pxe.tftp_get_file_size(server, path) {
                    Ok(size) => (size, true),
                    Err(e) if missing(e.status()) => return Ok(None),
                    Err(e) if e.status() == Status::UNSUPPORTED => (max, false),
                    Err(e) => return Err(fail!(e.status(), "TFTP size of {name} from {server}: {:?}", e.status())),
                };
                let buf = alloc_buffer(name, size, max)?;
                let got = match pxe.tftp_read_file(server, path, Some(&mut buf[..])) {
                    Ok(got) => got,
                    Err(e) if missing(e.status()) => return Ok(None),
                    Err(e) => return Err(fail!(e.status(), "TFTP read of {name} from {server}: {:?}", e.status())),
                };
                if (exact && got != size) || got > size {
                    return Err(fail!(Status::LOAD_ERROR, "TFTP read of {name}: {got} of {size} bytes"));
                }
                Ok(Some(&mut buf[..got as usize]))
            }
        }
    }
}

/// The device the loader came from: its file system, else its PXE base code.
fn open_source() -> Result<Source> {
    match boot::get_image_file_system(boot::image_handle()) {
        Ok(fs) => Ok(Source::Disk(fs)),
        Err(e) => open_tftp(e.status()),
    }
}

/// The PXE base code of the device the loader came from, with its TFTP server.
fn open_tftp(fs_error: Status) -> Result<Source> {
    let device = boot::open_protocol_exclusive::<LoadedImage>(boot::image_handle())
        .ok()
        .and_then(|loaded| loaded.device())
        .ok_or_else(|| fail!(Status::NOT_FOUND, "the loaded image names no device"))?;
    let mut pxe = boot::open_protocol_exclusive::<BaseCode>(device).map_err(|e| {
        fail!(e.status(), "the boot device has neither the files ({fs_error:?}) nor PXE base code ({:?})", e.status())
    })?;
    if !pxe.mode().started() {
        pxe.start(false).map_err(|e| fail!(e.status(), "PXE start: {:?}", e.status()))?;
    }
    if !pxe.mode().dhcp_ack_received() {
        pxe.dhcp(false).map_err(|e| fail!(e.status(), "PXE DHCP: {:?}", e.status()))?;
    }
    // SAFETY: after DHCP over IPv4 the cached ACK is a DHCPv4 packet (all fields plain bytes).
    let siaddr = unsafe { pxe.mode().dhcp_ack().dhcpv4.bootp_si_addr };
    if siaddr == [0; 4] {
        return Err(fail!(Status::NOT_FOUND, "the DHCP answer names no TFTP server (siaddr / next-server)"));
    }
    Ok(Source::Tftp(pxe, IpAddr::V4(Ipv4Addr::from(siaddr))))
}

fn run(entry_tsc: u64) -> Result<core::convert::Infallible> {
    let mut source = open_source()?;
    let mut from = heapless_msg::Msg::new();
    source.describe(&mut from);
    println!("pappus-loader: loading {KERNEL_FILE} and {CONFIG_FILE} from {}", from.as_str());

    let mut kernel = source.read(KERNEL_FILE, KERNEL_MAX)?;
    if kernel.is_none() && matches!(source, Source::Disk(_)) {
        // iPXE hands its images a file system of what it downloaded; the rest is on its server.
        if let Ok(tftp) = open_tftp(Status::NOT_FOUND) {
            source = tftp;
            from = heapless_msg::Msg::new();
            source.describe(&mut from);
            println!("pappus-loader: not on the boot file system; loading from {}", from.as_str());
            kernel = source.read(KERNEL_FILE, KERNEL_MAX)?;
        }
    }
    let kernel = kernel.ok_or_else(|| fail!(Status::NOT_FOUND, "{KERNEL_FILE} not found on {}", from.as_str()))?;
    let plan = bootinfo::elf::plan(kernel)
        .map_err(|e| fail!(Status::LOAD_ERROR, "{KERNEL_FILE} ({} bytes) is not a usable kernel: {e}", kernel.len()))?;
    // A TFTP read whose size the PXE stack could not tell (iPXE's) fills its whole buffer, zero
    // padded; the configuration is text, where a NUL never belongs, so the padding goes.
    let config = source.read(CONFIG_FILE, CONFIG_MAX)?.map(|c| {
        let len = c.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        &mut c[..len]
    });
    match &config {
        Some(c) => println!("pappus-loader: {CONFIG_FILE}: {} bytes", c.len()),
        None => println!("pappus-loader: no {CONFIG_FILE}; the kernel boots without tenants"),
    }
    drop(source);

    // The kernel's physical home. LOADER_CODE: firmware that maps data NX leaves code executable.
    let pages = ((plan.end - plan.start) / PAGE) as usize;
    boot::allocate_pages(AllocateType::Address(plan.start), MemoryType::LOADER_CODE, pages).map_err(|e| {
        fail!(
            Status::OUT_OF_RESOURCES,
            "the kernel needs physical memory {:#x}..{:#x}, which the firmware does not give ({:?})",
            plan.start,
            plan.end,
            e.status()
        )
    })?;
    for s in plan.segments() {
        // SAFETY: `[paddr, paddr + memsz)` lies inside the pages just allocated at their physical
        // address (identity-mapped by UEFI), which nothing else uses; the file range was checked.
        let dst = unsafe { core::slice::from_raw_parts_mut(s.paddr as *mut u8, s.memsz as usize) };
        let (copy, zero) = dst.split_at_mut(s.filesz as usize);
        copy.copy_from_slice(&kernel[s.offset as usize..(s.offset + s.filesz) as usize]);
        zero.fill(0);
    }

    let cmdline = cmdline_from_load_options()?;
    let rsdp = uefi::system::with_config_table(|table| {
        let find = |guid| table.iter().find(|e| e.guid == guid).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID)).unwrap_or(0)
    });

    // The block and the memory map, allocated before the final memory map is taken.
    let block_bytes = size_of::<BootBlock>() + MEMMAP_MAX * size_of::<MemoryRegion>();
    let block_mem = alloc_buffer("boot block", block_bytes as u64, u64::MAX)?;
    let (block_bytes, regions_bytes) = block_mem.split_at_mut(size_of::<BootBlock>());
    let block_ptr = block_bytes.as_mut_ptr().cast::<BootBlock>();
    let regions_ptr = regions_bytes.as_mut_ptr().cast::<MemoryRegion>();
    // SAFETY: fresh, page-aligned pages of the right size, owned by us; all-zero bytes are a valid
    // MemoryRegion.
    let regions = unsafe { core::slice::from_raw_parts_mut(regions_ptr, MEMMAP_MAX) };
    let (config_paddr, config_len) = config.map_or((0, 0), |c| (c.as_ptr() as u64, c.len() as u64));
    let entry = plan.entry64;
    println!(
        "pappus-loader: kernel {:#x}..{:#x}, entry {entry:#x}; cmdline \"{}\"; exiting boot services",
        plan.start,
        plan.end,
        core::str::from_utf8(&cmdline.0[..cmdline.1]).unwrap_or("")
    );

    // SAFETY: nothing of the firmware's boot services is used after this call: no protocol is
    // held (the source was dropped), and the console is not written any more.
    let mut map = unsafe { boot::exit_boot_services(Some(MemoryType::LOADER_DATA)) };
    map.sort();
    let mut count = 0;
    for d in map.entries() {
        let region = MemoryRegion {
            addr: d.phys_start,
            size: d.page_count * PAGE,
            kind: bootinfo::e820_kind(d.ty.0),
            reserved: 0,
        };
        if !bootinfo::push_region(regions, &mut count, region) {
            break; // the kernel loses the top of a very fragmented map rather than the boot
        }
    }
    let block = BootBlock {
        magic: bootinfo::MAGIC,
        version: bootinfo::VERSION,
        size: size_of::<BootBlock>() as u32,
        memmap_paddr: regions_ptr as u64,
        memmap_entries: count as u64,
        rsdp_paddr: rsdp,
        cmdline_paddr: cmdline.0.as_ptr() as u64,
        cmdline_len: cmdline.1 as u64,
        config_paddr,
        config_len,
        loader_entry_tsc: entry_tsc,
        source: if from.as_str().starts_with("TFTP") { bootinfo::SOURCE_TFTP } else { bootinfo::SOURCE_DISK },
        reserved: 0,
    };
    // SAFETY: `block_ptr` points at our own page-aligned allocation, large enough for the block.
    unsafe { block_ptr.write(block) };
    // SAFETY: the kernel's image is in place at its physical address and `entry` is its 64-bit
    // entry (checked to lie inside it); the contract (bootinfo crate docs) is long mode, the
    // firmware's identity map, interrupts off, the block's physical address in rdi.
    unsafe {
        core::arch::asm!("cli", "jmp {entry}", entry = in(reg) entry, in("rdi") block_ptr as u64, options(noreturn))
    }
}

/// The load options as a NUL-terminated ASCII command line in pages below 4 GiB, without a
/// leading word that names the image (`bootx64.efi`, as the UEFI shell and iPXE pass it).
fn cmdline_from_load_options() -> Result<(&'static [u8], usize)> {
    let buf = alloc_buffer("command line", (CMDLINE_MAX + 1) as u64, u64::MAX)?;
    let mut len = 0;
    if let Ok(loaded) = boot::open_protocol_exclusive::<LoadedImage>(boot::image_handle())
        && let Ok(options) = loaded.load_options_as_cstr16()
    {
        let mut words = [0u8; CMDLINE_MAX];
        let mut n = 0;
        for c in options.iter() {
            let c = u16::from(*c);
            let b = if (0x20..0x7f).contains(&c) { c as u8 } else { b' ' };
            if n < CMDLINE_MAX {
                words[n] = b;
                n += 1;
            }
        }
        let text = core::str::from_utf8(&words[..n]).unwrap_or("").trim();
        let names_image = |w: &str| w.len() >= 4 && w[w.len() - 4..].eq_ignore_ascii_case(".efi");
        let text = match text.split_once(' ') {
            Some((first, rest)) if names_image(first) => rest.trim(),
            None if names_image(text) => "",
            _ => text,
        };
        len = text.len();
        buf[..len].copy_from_slice(text.as_bytes());
    }
    buf[len] = 0;
    Ok((buf, len))
}

/// `size` bytes of fresh LOADER_DATA pages below 4 GiB.
fn alloc_buffer(what: &str, size: u64, max: u64) -> Result<&'static mut [u8]> {
    if size > max {
        return Err(fail!(Status::BAD_BUFFER_SIZE, "{what} is {size} bytes, more than the {max} allowed"));
    }
    let pages = size.div_ceil(PAGE).max(1) as usize;
    let ptr: NonNull<u8> = boot::allocate_pages(AllocateType::MaxAddress(BELOW_4G), MemoryType::LOADER_DATA, pages)
        .map_err(|e| fail!(Status::OUT_OF_RESOURCES, "no memory for {what} ({size} bytes): {:?}", e.status()))?;
    // SAFETY: `pages` fresh pages from the firmware, ours until the kernel takes over; zeroed
    // before the slice is made so every byte is initialised.
    unsafe {
        ptr.as_ptr().write_bytes(0, pages * PAGE as usize);
        Ok(core::slice::from_raw_parts_mut(ptr.as_ptr(), size as usize))
    }
}

fn ucs2<'a>(name: &str, buf: &'a mut [u16; 64]) -> Result<&'a CStr16> {
    CStr16::from_str_with_buf(name, buf).map_err(|_| fail!(Status::INVALID_PARAMETER, "bad file name {name}"))
}

fn ascii_cstr<'a>(name: &str, buf: &'a mut [u8; 64]) -> Result<&'a CStr8> {
    let bytes = name.as_bytes();
    if bytes.len() >= buf.len() || !name.is_ascii() {
        return Err(fail!(Status::INVALID_PARAMETER, "bad file name {name}"));
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    buf[bytes.len()] = 0;
    CStr8::from_bytes_with_nul(&buf[..=bytes.len()])
        .map_err(|_| fail!(Status::INVALID_PARAMETER, "bad file name {name}"))
}
