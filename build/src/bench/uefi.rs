//! The UEFI boot figures of suite `boot`: OVMF boots the disk image (`cargo xtask image --disk`)
//! under `-icount shift=0`; the kernel's ready line then counts from the loader's entry
//! (`boot_ticks`) and says how much of that the loader took (`loader_ticks`), in guest
//! instructions. The firmware before the loader is not counted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pappus_tests::protocol::{READY_PREFIX, Ready};
use pappus_tests::{ExitCodes, Marker, Qemu, SpawnOptions};

use crate::image;
use crate::util::{Failure, Result};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// (instructions from the loader's entry to ready, the loader's share), one boot.
pub fn measure(kernel: &Path) -> Result<(u64, u64)> {
    if !Path::new(OVMF_CODE).is_file() {
        return Err(Failure(format!("{OVMF_CODE} missing: apt-get install -y --no-install-recommends ovmf")));
    }
    let dir = pappus_tests::target_dir().join("bench").join("uefi");
    std::fs::create_dir_all(&dir)?;
    let loader = image::build_loader()?;
    let stripped = dir.join("pappus-kernel");
    image::strip(kernel, &stripped)?;
    let config = dir.join("pappus.conf");
    std::fs::write(&config, "tenant bench bench-token-0123456789abcdef\n")?;
    let disk = dir.join("pappus.img");
    image::disk_image(&disk, &loader, &stripped, &config)?;
    let vars = dir.join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars)?;

    let mut command = Command::new("qemu-system-x86_64");
    command.args(["-M", "q35", "-cpu", "max", "-accel", "tcg", "-icount", "shift=0", "-m", "512M", "-smp", "1"]);
    command.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none"]);
    command.arg("-drive").arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
    command.arg("-drive").arg(format!("if=pflash,format=raw,file={}", vars.display()));
    command.arg("-drive").arg(format!("file={},format=raw", disk.display()));
    let line = format!("{command:?}");
    let options =
        SpawnOptions { log_name: "bench-uefi".into(), time_limit: Duration::from_secs(600), echo_to_stderr: false };
    let mut qemu = Qemu::spawn_command(command, &line, ExitCodes { pass: 33, fail: 35 }, options)?;
    let ready = qemu.wait_for(Marker::starts_with(READY_PREFIX), Duration::from_secs(600))?;
    qemu.kill();
    let parsed = Ready::parse(&ready).ok_or_else(|| Failure(format!("bad ready line {ready:?}")))?;
    let loader_ticks = parsed
        .fields
        .get("loader_ticks")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure(format!("the UEFI boot's ready line has no loader_ticks: {ready}")))?;
    Ok((parsed.boot_ticks, loader_ticks))
}
