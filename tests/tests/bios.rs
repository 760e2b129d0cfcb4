//! Legacy-BIOS boot under QEMU: the kernel as a multiboot1 image (`pappus-kernel.mb`, made by
//! `cargo xtask image --pxe`). Directly through QEMU's own multiboot loader (`-kernel`, the
//! configuration as `-initrd`), and the bare-metal way: SeaBIOS on q35 runs the virtio-net
//! NIC's iPXE option ROM, which gets an address by DHCP and the script `boot.ipxe` by TFTP from
//! QEMU's user networking; the script loads the kernel and `pappus.conf` as its module. The
//! node then serves HTTP through a host port forward. Bad inputs (no kernel image, an ELF in its
//! place, an image cut short, no configuration) give a clear console message within a time
//! limit.
//!
//! Needs Debian `ipxe-qemu` (the NIC's option ROM; a dependency of `qemu-system-x86`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use pappus_tests::node::Node;
use pappus_tests::{ExitCodes, Marker, Qemu, SpawnOptions, qemu_tests_enabled, target_dir};

/// The option ROM QEMU gives `virtio-net-pci` (the EFI image also carries the BIOS one).
const IPXE_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";
/// SeaBIOS, iPXE's DHCP and TFTP, and the kernel's boot under TCG.
const BOOT_LIMIT: Duration = Duration::from_secs(300);
const TOKEN: &str = "bios-test-token-0123456789abcdef";

/// The TFTP root, made once by `cargo xtask image --pxe`.
fn tftp_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = target_dir().join("tmp").join("bios");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("test.conf");
        std::fs::write(&config, format!("# bios suite\ntenant alice {TOKEN}\n")).unwrap();
        let pxe = dir.join("tftp");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(pappus_tests::workspace_root())
            .args(["xtask", "image", "--pxe"])
            .arg(&pxe)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("cannot run cargo xtask image");
        assert!(out.status.success(), "cargo xtask image failed:\n{}", String::from_utf8_lossy(&out.stderr));
        for name in ["pappus-kernel.mb", "pappus.conf", "boot.ipxe"] {
            assert!(pxe.join(name).is_file(), "the TFTP root lacks {name}");
        }
        pxe
    })
}

/// A copy of the TFTP root with `change` applied, for the bad-input tests.
fn tftp_variant(name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let root = tftp_root(); // first: making the root clears its folder
    let dir = target_dir().join("tmp").join("bios").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    change(&dir);
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

enum Boot<'a> {
    /// QEMU's `-kernel` multiboot loader, `-initrd` as the module, `-append` as arguments.
    Direct { root: &'a Path, append: &'a str },
    /// SeaBIOS, the NIC's iPXE ROM, `boot.ipxe` from the TFTP root.
    Ipxe(&'a Path),
}

/// q35 with SeaBIOS (QEMU's default firmware) and a virtio-net NIC on user networking, `port`
/// forwarded to the guest's 8080. `graphics=off` makes SeaBIOS mirror the text console (its own
/// and iPXE's messages) onto the serial port.
fn spawn(test: &str, boot: Boot<'_>, port: u16) -> Qemu {
    let mut netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080");
    let mut command = Command::new("qemu-system-x86_64");
    command.args(["-M", "q35,graphics=off", "-cpu", "max", "-accel", "tcg", "-m", "512M", "-smp", "1"]);
    command.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]);
    command.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    let nic = match boot {
        Boot::Direct { root, append } => {
            command.arg("-kernel").arg(root.join("pappus-kernel.mb"));
            command.arg("-initrd").arg(root.join("pappus.conf"));
            command.args(["-append", append]);
            // No option ROM: QEMU's multiboot ROM boots first anyway.
            "virtio-net-pci,netdev=n0,romfile="
        }
        Boot::Ipxe(root) => {
            assert!(Path::new(IPXE_ROM).is_file(), "{IPXE_ROM} missing: apt-get install -y ipxe-qemu");
            netdev += &format!(",tftp={},bootfile=boot.ipxe", root.display());
            command.args(["-boot", "n"]);
            "virtio-net-pci,netdev=n0"
        }
    };
    command.args(["-netdev", &netdev, "-device", nic]);
    let line = format!("{command:?}");
    let options = SpawnOptions { log_name: format!("bios-{test}"), time_limit: BOOT_LIMIT, echo_to_stderr: false };
    Qemu::spawn_command(command, &line, ExitCodes { pass: 33, fail: 35 }, options).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots to `PAPPUS READY` with a DHCP address and checks the front door: `/healthz`, and the
/// `identity` builtin invoked with the configured tenant's token. Returns the banner line.
fn boot_and_serve(test: &str, boot: Boot<'_>) -> String {
    let port = free_port();
    let mut qemu = spawn(test, boot, port);
    let banner = qemu
        .wait_for(Marker::contains("booting via multiboot1"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    let ready = qemu
        .wait_for(Marker::starts_with("PAPPUS READY"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    assert!(ready.contains("ip=10.0.2.15/24"), "DHCP address: {ready}");
    let lines = qemu.lines();
    assert!(lines.iter().any(|l| l.contains("1 tenant(s) from the boot configuration")), "kernel lacks the tenant");

    let node = Node { qemu, port };
    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200, "{}", health.text());
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    let r = node.request("POST", "/v1/invoke/identity", &headers, b"through multiboot \x00\xff");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"through multiboot \x00\xff"[..]), "{}", r.text());
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", "Bearer wrong-token-0000000000")], b"x");
    assert_eq!(r.status, 401);
    banner
}

#[test]
fn direct_multiboot_boot_serves_http() {
    if !qemu_tests_enabled("direct_multiboot_boot_serves_http") {
        return;
    }
    let banner = boot_and_serve("direct", Boot::Direct { root: tftp_root(), append: "log=info" });
    // QEMU puts the kernel's file name first; the kernel keeps only what follows.
    assert!(banner.contains("cmdline=\"log=info\""), "{banner}");
}

#[test]
fn ipxe_boot_serves_http() {
    if !qemu_tests_enabled("ipxe_boot_serves_http") {
        return;
    }
    let banner = boot_and_serve("ipxe", Boot::Ipxe(tftp_root()));
    assert!(banner.contains("cmdline=\"\""), "{banner}");
}

#[test]
fn missing_or_foreign_kernel_is_reported() {
    if !qemu_tests_enabled("missing_or_foreign_kernel_is_reported") {
        return;
    }
    // No pappus-kernel.mb in the TFTP root: iPXE names the file and the error, the script says
    // the boot failed and gives the machine back to the BIOS.
    let dir = tftp_variant("no-kernel", |d| std::fs::remove_file(d.join("pappus-kernel.mb")).unwrap());
    let mut qemu = spawn("no-kernel", Boot::Ipxe(&dir), free_port());
    let line = qemu
        .wait_for(Marker::contains("pappus-kernel.mb..."), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    qemu.wait_for(Marker::contains("Pappus: boot failed, see the iPXE error above"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    let lines = qemu.lines();
    assert!(lines.iter().any(|l| l.contains("No such file or directory")), "{line}\n{}", qemu.tail(30));
    assert!(!lines.iter().any(|l| l.contains("booting via")));
    drop(qemu);

    // The ELF in its place (no multiboot header; iPXE cannot load an ELF64): refused by iPXE.
    let dir = tftp_variant("elf-kernel", |d| {
        std::fs::copy(d.join("pappus-kernel"), d.join("pappus-kernel.mb")).map(drop).unwrap()
    });
    let mut qemu = spawn("elf-kernel", Boot::Ipxe(&dir), free_port());
    qemu.wait_for(Marker::contains("Pappus: boot failed, see the iPXE error above"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    assert!(!qemu.lines().iter().any(|l| l.contains("booting via")));
}

#[test]
fn truncated_kernel_is_reported() {
    if !qemu_tests_enabled("truncated_kernel_is_reported") {
        return;
    }
    // A file cut short in the TFTP root: iPXE (2019) loads it anyway, copying whatever follows
    // it in memory; the kernel's image check refuses to run it.
    let dir = tftp_variant("truncated", |d| {
        let kernel = d.join("pappus-kernel.mb");
        let bytes = std::fs::read(&kernel).unwrap();
        std::fs::write(&kernel, &bytes[..64 * 1024]).unwrap();
    });
    let mut qemu = spawn("truncated", Boot::Ipxe(&dir), free_port());
    qemu.wait_for(Marker::contains("pappus: pappus-kernel.mb is damaged or cut short"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    assert!(!qemu.lines().iter().any(|l| l.contains("booting via")));
}

#[test]
fn missing_config_is_reported() {
    if !qemu_tests_enabled("missing_config_is_reported") {
        return;
    }
    let dir = tftp_variant("no-config", |d| std::fs::remove_file(d.join("pappus.conf")).unwrap());
    let port = free_port();
    let mut qemu = spawn("no-config", Boot::Ipxe(&dir), port);
    // Only the start of the line: SeaBIOS mirrors the text console onto the serial port lazily,
    // and the last characters before the kernel starts can be lost.
    qemu.wait_for(Marker::contains("Pappus: no pappus.conf"), BOOT_LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    // The node still comes up, with no tenants: every /v1 request is refused.
    qemu.wait_for(Marker::starts_with("PAPPUS READY"), BOOT_LIMIT).unwrap_or_else(|e| panic!("{e}\n{}", qemu.tail(30)));
    let node = Node { qemu, port };
    assert_eq!(node.call("GET", "/healthz", b"").status, 200);
    let auth = format!("Bearer {TOKEN}");
    let r = node.request("POST", "/v1/invoke/identity", &[("Authorization", auth.as_str())], b"x");
    assert_eq!(r.status, 401, "{}", r.text());
}
