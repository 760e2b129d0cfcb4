//! Bare-metal boot under QEMU: OVMF (UEFI) on q35 boots the Pappus UEFI loader over the
//! network (PXE/TFTP from QEMU's user networking) and from a GPT disk image, the loader loads
//! the kernel and `pappus.conf`, and the node serves HTTP through a host port forward. Bad
//! inputs (no kernel, a corrupt kernel, a malformed configuration) each give a clear console
//! message within a time limit. The images come from `cargo xtask image --pxe --disk`.
//!
//! Needs Debian `ovmf` (and `mtools`, `gdisk` for the disk image); `.ci/run` installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use pappus_tests::node::Node;
use pappus_tests::{ExitCodes, Marker, Qemu, SpawnOptions, qemu_tests_enabled, target_dir};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";
/// Firmware start, DHCP, TFTP and the kernel's boot under TCG; about a minute here.
const BOOT_LIMIT: Duration = Duration::from_secs(300);
const TOKEN: &str = "uefi-test-token-0123456789abcdef";

struct Images {
    pxe: PathBuf,
    disk: PathBuf,
}

/// The TFTP root and disk image, made once by `cargo xtask image`.
fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        assert!(Path::new(OVMF_CODE).is_file(), "{OVMF_CODE} missing: apt-get install -y --no-install-recommends ovmf");
        let dir = target_dir().join("tmp").join("uefi");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("test.conf");
        std::fs::write(&config, format!("# uefi suite\ntenant alice {TOKEN}\n")).unwrap();
        let (pxe, disk) = (dir.join("tftp"), dir.join("disk.img"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(pappus_tests::workspace_root())
            .args(["xtask", "image", "--pxe"])
            .arg(&pxe)
            .arg("--disk")
            .arg(&disk)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("cannot run cargo xtask image");
        assert!(out.status.success(), "cargo xtask image failed:\n{}", String::from_utf8_lossy(&out.stderr));
        Images { pxe, disk }
    })
}

/// A copy of the TFTP root with `change` applied, for the bad-input tests.
fn pxe_variant(name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let pxe = &images().pxe; // first: making the images clears their folder
    let dir = target_dir().join("tmp").join("uefi").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(pxe).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    change(&dir);
    dir
}

enum Media<'a> {
    /// OVMF's own PXE client fetches the loader.
    Tftp(&'a Path),
    /// The NIC's iPXE ROM (Debian `ipxe-qemu`) runs `boot.ipxe`, which chains the loader; the
    /// loader then reads through iPXE's PXE base code, which cannot tell file sizes.
    Ipxe(&'a Path),
    Disk(&'a Path),
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts OVMF on q35 with a virtio-net NIC (user networking, `port` forwarded to the guest's
/// 8080) and the given boot media. The NIC has no option ROM, so OVMF's own PXE client boots,
/// except with `Media::Ipxe`.
fn spawn(test: &str, media: Media<'_>, port: u16) -> Qemu {
    let vars = target_dir().join("tmp").join("uefi").join(format!("{test}.vars.fd"));
    std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF_VARS.fd");
    let mut netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080");
    let mut command = Command::new("qemu-system-x86_64");
    command.args(["-M", "q35", "-cpu", "max", "-accel", "tcg", "-m", "512M", "-smp", "1"]);
    command.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]);
    command.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    command.arg("-drive").arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
    command.arg("-drive").arg(format!("if=pflash,format=raw,file={}", vars.display()));
    let mut nic = "virtio-net-pci,netdev=n0,romfile=";
    match media {
        Media::Tftp(dir) => netdev += &format!(",tftp={},bootfile=bootx64.efi", dir.display()),
        Media::Ipxe(dir) => {
            netdev += &format!(",tftp={},bootfile=boot.ipxe", dir.display());
            nic = "virtio-net-pci,netdev=n0";
        }
        Media::Disk(file) => {
            command.arg("-drive").arg(format!("file={},format=raw", file.display()));
        }
    }
    command.args(["-netdev", &netdev, "-device", nic]);
    let line = format!("{command:?}");
    let options = SpawnOptions { log_name: format!("uefi-{test}"), time_limit: BOOT_LIMIT, echo_to_stderr: false };
    Qemu::spawn_command(command, &line, ExitCodes { pass: 33, fail: 35 }, options).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots to `PAPPUS READY` with a DHCP address and checks the front door: `/healthz`, and the
/// `identity` builtin invoked with the configured tenant's token.
fn boot_and_serve(test: &str, media: Media<'_>) {
    let port = free_port();
    let mut qemu = spawn(test, media, port);
    let banner = qemu
        .wait_for(Marker::contains("booting via uefi"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    assert!(banner.starts_with("pappus "), "{banner}");
    let ready = qemu.wait_for(Marker::starts_with("PAPPUS READY"), BOOT_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(ready.contains("ip=10.0.2.15/24"), "DHCP address: {ready}");
    let lines = qemu.lines();
    assert!(lines.iter().any(|l| l.contains("pappus-loader: pappus.conf:")), "loader did not read the config");
    assert!(lines.iter().any(|l| l.contains("1 tenant(s) from the boot configuration")), "kernel lacks the tenant");

    let node = Node { qemu, port };
    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.text().contains("\"status\":\"ok\""), "{}", health.text());
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    let r = node.request("POST", "/v1/invoke/identity", &headers, b"over the network \x00\xff");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"over the network \x00\xff"[..]), "{}", r.text());
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", "Bearer wrong-token-0000000000")], b"x");
    assert_eq!(r.status, 401);
}

/// Boots and waits for a console line containing `message`; the loader never hangs, so the
/// line must come within the limit.
fn boot_and_expect(test: &str, media: Media<'_>, message: &str) -> Qemu {
    let mut qemu = spawn(test, media, free_port());
    qemu.wait_for(Marker::contains(message), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("expected a console line with {message:?}: {e}\n{}", qemu.tail(30)));
    qemu
}

#[test]
fn pxe_boot_serves_http() {
    if !qemu_tests_enabled("pxe_boot_serves_http") {
        return;
    }
    boot_and_serve("pxe", Media::Tftp(&images().pxe));
}

#[test]
fn ipxe_uefi_boot_serves_http() {
    if !qemu_tests_enabled("ipxe_uefi_boot_serves_http") {
        return;
    }
    boot_and_serve("ipxe", Media::Ipxe(&images().pxe));
}

#[test]
fn disk_image_boot_serves_http() {
    if !qemu_tests_enabled("disk_image_boot_serves_http") {
        return;
    }
    boot_and_serve("disk", Media::Disk(&images().disk));
}

#[test]
fn missing_kernel_is_reported() {
    if !qemu_tests_enabled("missing_kernel_is_reported") {
        return;
    }
    let dir = pxe_variant("no-kernel", |d| std::fs::remove_file(d.join("pappus-kernel")).unwrap());
    let mut qemu =
        boot_and_expect("no-kernel", Media::Tftp(&dir), "pappus-loader: error: pappus-kernel not found on TFTP server");
    qemu.wait_for(Marker::contains("pappus-loader: returning to the firmware"), Duration::from_secs(30)).unwrap();
    assert!(!qemu.lines().iter().any(|l| l.contains("booting via uefi")));
}

#[test]
fn corrupt_kernel_is_reported() {
    if !qemu_tests_enabled("corrupt_kernel_is_reported") {
        return;
    }
    // A download cut short: the ELF header is there, its segments are not.
    let dir = pxe_variant("corrupt-kernel", |d| {
        let kernel = d.join("pappus-kernel");
        let bytes = std::fs::read(&kernel).unwrap();
        std::fs::write(&kernel, &bytes[..64 * 1024]).unwrap();
    });
    let mut qemu = boot_and_expect("corrupt-kernel", Media::Tftp(&dir), "is not a usable kernel");
    let line = qemu.lines().into_iter().find(|l| l.contains("is not a usable kernel")).unwrap();
    assert!(line.contains("pappus-loader: error: pappus-kernel (65536 bytes)"), "{line}");
    assert!(line.contains("outside the file"), "{line}");
    qemu.wait_for(Marker::contains("pappus-loader: returning to the firmware"), Duration::from_secs(30)).unwrap();

    // Not an ELF at all.
    let dir = pxe_variant("not-elf", |d| std::fs::write(d.join("pappus-kernel"), b"<html>404</html>").unwrap());
    boot_and_expect("not-elf", Media::Tftp(&dir), "not an ELF file (bad magic)");
}

#[test]
fn malformed_config_is_reported() {
    if !qemu_tests_enabled("malformed_config_is_reported") {
        return;
    }
    let dir = pxe_variant("bad-config", |d| {
        std::fs::write(d.join("pappus.conf"), "tenant alice short\ntenant bob\n").unwrap();
    });
    let port = free_port();
    let mut qemu = spawn("bad-config", Media::Tftp(&dir), port);
    let line = qemu
        .wait_for(Marker::contains("boot configuration refused"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    assert!(line.contains("ERROR") && line.contains("line 1"), "{line}");
    // The node still comes up, with no tenants: every /v1 request is refused.
    qemu.wait_for(Marker::starts_with("PAPPUS READY"), BOOT_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let node = Node { qemu, port };
    assert_eq!(node.call("GET", "/healthz", b"").status, 200);
    let auth = format!("Bearer {TOKEN}");
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", auth.as_str())], b"x");
    assert_eq!(r.status, 401, "{}", r.text());
}
