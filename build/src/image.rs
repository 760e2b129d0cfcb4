//! `cargo xtask image`: kernel ELFs for QEMU, and for bare metal a PXE/TFTP root (`--pxe DIR`)
//! and a GPT disk image with an EFI system partition (`--disk FILE`), both holding the UEFI
//! loader, the kernel and the boot configuration (docs/bare-metal.md). The TFTP root also holds
//! the kernel as a multiboot1 image for legacy-BIOS machines, which iPXE boots directly.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use pappus_qemu::Arch;

use crate::args::{Args, Spec};
use crate::util::{self, Failure, Result, cargo, say};

pub const SPEC: Spec = Spec { values: &["target", "arch", "pxe", "disk", "config"], switches: &[], max_positionals: 0 };

/// The UEFI target the loader builds for.
pub const LOADER_TARGET: &str = "x86_64-unknown-uefi";
/// The names the loader looks for, next to itself (loader/src/main.rs).
pub const KERNEL_NAME: &str = "pappus-kernel";
pub const CONFIG_NAME: &str = "pappus.conf";
/// The kernel as a multiboot1 image (legacy BIOS through iPXE; see multiboot.rs).
pub const MULTIBOOT_NAME: &str = "pappus-kernel.mb";
/// The iPXE script in a TFTP root.
pub const IPXE_SCRIPT_NAME: &str = "boot.ipxe";
/// The loader's name in a TFTP root (the DHCP boot file name) and on an ESP.
pub const PXE_LOADER_NAME: &str = "bootx64.efi";
pub const ESP_LOADER_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

const IPXE_SCRIPT: &str = "\
#!ipxe
# Pappus, booted by iPXE (docs/bare-metal.md). Give this script to iPXE clients as the DHCP
# boot file (\"boot.ipxe\"), or type its lines at the iPXE prompt. File names are relative to
# where the script came from: this TFTP root. Arguments after a kernel's file name become the
# kernel command line (e.g. log=debug).
isset ${ip} || dhcp
iseq ${platform} efi && goto uefi ||
# Legacy BIOS: the kernel as a multiboot1 image, the boot configuration as its first module.
kernel pappus-kernel.mb || goto failed
module pappus.conf || echo Pappus: no pappus.conf, the kernel boots without tenants
boot || goto failed
:uefi
# UEFI: the Pappus loader fetches pappus-kernel and pappus.conf from this same TFTP server.
chain --autofree bootx64.efi || goto failed
:failed
echo Pappus: boot failed, see the iPXE error above (docs/bare-metal.md)
exit 1
";

pub fn main(args: &Args) -> Result {
    crate::prereq::rust()?;
    let pxe = args.value("pxe").map(PathBuf::from);
    let disk = args.value("disk").map(PathBuf::from);
    let named = args.value("target").or(args.value("arch"));
    let bare_metal = pxe.is_some() || disk.is_some();
    let arches = match named {
        // The UEFI loader and its images are x86_64 only.
        None if bare_metal => vec![Arch::X86_64],
        _ => util::arches(named)?,
    };
    if bare_metal && arches != [Arch::X86_64] {
        return Err(Failure("--pxe and --disk make x86_64 images (the UEFI loader is x86_64 only)".into()));
    }
    let dir = pappus_tests::target_dir().join("images");
    fs::create_dir_all(&dir)?;
    let kernels = util::build_kernels(&arches)?;
    for (arch, kernel) in &kernels {
        let image = dir.join(format!("pappus-{arch}.elf"));
        fs::copy(kernel, &image)?;
        println!("{}", util::relative(&image));
    }
    if pxe.is_none() && disk.is_none() {
        return Ok(());
    }
    let kernel = &kernels[0].1;
    let loader = build_loader()?;
    let (config, token) = boot_config(args.value("config"))?;
    // The kernel without its debug sections: a tenth of the size, which TFTP notices.
    let stripped = dir.join(KERNEL_NAME);
    strip(kernel, &stripped)?;
    if let Some(root) = &pxe {
        pxe_root(root, &loader, &stripped, &config)?;
        println!("{}", root.display());
    }
    if let Some(file) = &disk {
        disk_image(file, &loader, &stripped, &config)?;
        println!("{}", file.display());
    }
    if let Some(token) = token {
        say(format!("the configuration's tenant `dev` has token {token}"));
    }
    Ok(())
}

/// Builds the UEFI loader (release) and returns the `.efi`.
pub fn build_loader() -> Result<PathBuf> {
    let mut installed = Command::new("rustup");
    installed.args(["target", "list", "--installed"]);
    if util::output(installed).is_ok_and(|list| !list.lines().any(|l| l.trim() == LOADER_TARGET)) {
        let mut add = Command::new("rustup");
        add.args(["target", "add", LOADER_TARGET]);
        util::run(add)?;
    }
    let mut command = cargo();
    command.args(["build", "-p", "pappus-loader", "--release", "--target", LOADER_TARGET]);
    util::run(command)?;
    let efi = pappus_tests::target_dir().join(LOADER_TARGET).join("release").join("pappus-loader.efi");
    if !efi.is_file() {
        return Err(Failure(format!("the build succeeded but left no loader at {}", efi.display())));
    }
    Ok(efi)
}

/// `--config FILE` checked with the kernel's own parser, or a fresh one with a `dev` tenant
/// (and its token, to print).
fn boot_config(file: Option<&str>) -> Result<(PathBuf, Option<String>)> {
    if let Some(file) = file {
        let path = PathBuf::from(file);
        let text = fs::read(&path).map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
        model::TokenTable::parse(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
        return Ok((path, None));
    }
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let token = format!("pappus-dev-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let path = pappus_tests::target_dir().join("images").join("pappus-image.conf");
    fs::write(&path, format!("# Made by `cargo xtask image` (no --config).\ntenant dev {token}\n"))?;
    Ok((path, Some(token)))
}

/// `llvm-objcopy --strip-debug` from the toolchain's llvm-tools, else a plain copy.
pub fn strip(kernel: &Path, out: &Path) -> Result {
    let sysroot = util::output({
        let mut c = Command::new("rustc");
        c.args(["--print", "sysroot"]);
        c
    })
    .unwrap_or_default();
    let objcopy = Path::new(sysroot.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy");
    if objcopy.is_file() {
        let mut c = Command::new(objcopy);
        c.arg("--strip-debug").arg(kernel).arg(out);
        util::run(c)
    } else {
        say("llvm-objcopy not found (rustup component add llvm-tools); the kernel keeps its debug info");
        fs::copy(kernel, out)?;
        Ok(())
    }
}

/// A TFTP root: the loader as `bootx64.efi`, the kernel (ELF, and as a multiboot1 image), the
/// configuration, an iPXE script.
pub fn pxe_root(root: &Path, loader: &Path, kernel: &Path, config: &Path) -> Result {
    fs::create_dir_all(root).map_err(|e| format!("cannot make {}: {e}", root.display()))?;
    fs::copy(loader, root.join(PXE_LOADER_NAME))?;
    fs::copy(kernel, root.join(KERNEL_NAME))?;
    let (mb, header) = crate::multiboot::image(&fs::read(kernel)?)
        .map_err(|e| Failure(format!("{}: no multiboot image: {e}", kernel.display())))?;
    fs::write(root.join(MULTIBOOT_NAME), &mb)?;
    fs::copy(config, root.join(CONFIG_NAME))?;
    fs::write(root.join(IPXE_SCRIPT_NAME), IPXE_SCRIPT)?;
    say(format!(
        "TFTP root {}: {PXE_LOADER_NAME}, {KERNEL_NAME}, {MULTIBOOT_NAME} (load {:#x}..{:#x}, entry {:#x}), \
         {CONFIG_NAME}, {IPXE_SCRIPT_NAME}",
        root.display(),
        header.load_addr,
        header.bss_end_addr,
        header.entry_addr
    ));
    Ok(())
}

/// A GPT disk image with one EFI system partition (FAT, made by mtools: no root, no loop
/// devices) holding `EFI/BOOT/BOOTX64.EFI`, the kernel and the configuration in its root.
pub fn disk_image(file: &Path, loader: &Path, kernel: &Path, config: &Path) -> Result {
    for tool in ["mformat", "mmd", "mcopy", "sgdisk"] {
        if !pappus_tests::on_path(tool) {
            return Err(Failure(format!(
                "`{tool}` not found; install it: apt-get install -y --no-install-recommends mtools gdisk"
            )));
        }
    }
    const MIB: u64 = 1 << 20;
    const SECTOR: u64 = 512;
    let payload: u64 = [loader, kernel, config].iter().map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    // Room for FAT overhead and a kernel that grows; FAT16 up to 2 GiB is fine for UEFI.
    let esp_bytes = (payload + payload / 4 + 8 * MIB).div_ceil(MIB).max(34) * MIB;
    let esp = file.with_extension("esp.tmp");
    let _ = fs::remove_file(&esp);
    fs::File::create(&esp)?.set_len(esp_bytes)?;
    let esp_str = esp.to_string_lossy().to_string();
    let mtool = |tool: &str, args: &[&str]| {
        let mut c = Command::new(tool);
        c.arg("-i").arg(&esp_str).args(args);
        util::run(c)
    };
    let total_sectors = (esp_bytes / SECTOR).to_string();
    mtool("mformat", &["-T", &total_sectors, "-h", "64", "-s", "32", "-v", "PAPPUS", "::"])?;
    mtool("mmd", &["::/EFI", "::/EFI/BOOT"])?;
    for (from, to) in [
        (loader, format!("::/{ESP_LOADER_PATH}")),
        (kernel, format!("::/{KERNEL_NAME}")),
        (config, format!("::/{CONFIG_NAME}")),
    ] {
        mtool("mcopy", &["-o", &from.to_string_lossy(), &to])?;
    }

    // The disk: 1 MiB for the protective MBR and primary GPT, the ESP, 1 MiB for the backup GPT.
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let _ = fs::remove_file(file);
    fs::File::create(file)?.set_len(esp_bytes + 2 * MIB)?;
    let mut sgdisk = Command::new("sgdisk");
    let end = MIB / SECTOR + esp_bytes / SECTOR - 1;
    sgdisk
        .args([
            "--clear",
            &format!("--new=1:{}:{end}", MIB / SECTOR),
            "--typecode=1:ef00",
            "--change-name=1:EFI system",
        ])
        .arg(file);
    util::run(sgdisk)?;
    let mut disk = fs::OpenOptions::new().write(true).open(file)?;
    disk.seek(SeekFrom::Start(MIB))?;
    disk.write_all(&fs::read(&esp)?)?;
    disk.flush()?;
    fs::remove_file(&esp)?;
    say(format!(
        "disk image {}: GPT, ESP {} with {ESP_LOADER_PATH}, {KERNEL_NAME}, {CONFIG_NAME}",
        file.display(),
        util::human_bytes(esp_bytes)
    ));
    Ok(())
}
