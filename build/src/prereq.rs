//! What the build and the QEMU runs need: the toolchain's targets and components, and QEMU.
//!
//! Rust: the targets and components `rust-toolchain.toml` lists are added with rustup when
//! missing (our machines run rustup with auto-install off). QEMU: installed from the
//! distribution when missing and we are root; otherwise the exact command is printed. The QEMU
//! suites' other needs (OVMF, iPXE ROMs, mtools, gdisk, Python's venv) likewise, before `cargo
//! xtask test` builds anything: this file is the one list. The OpenAPI suite's Python tools
//! ([`PYTHON_TOOLS`], pinned) go into a virtual environment under `target/pyenv` with pip.

use std::borrow::Cow;
use std::process::Command;

use pappus_qemu::Arch;
use serde::Deserialize;

use crate::util::{Failure, Result, is_root, output, root, run, say};

#[derive(Debug, Deserialize)]
struct ToolchainFile {
    toolchain: Toolchain,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Toolchain {
    channel: String,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
}

fn parse_toolchain(text: &str) -> Result<Toolchain> {
    let file: ToolchainFile = toml::from_str(text).map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    Ok(file.toolchain)
}

fn rustup() -> Command {
    let mut command = Command::new("rustup");
    command.current_dir(root());
    command
}

/// Whether `component` is in rustup's list of installed components (which names them with the
/// host triple appended: `clippy-x86_64-unknown-linux-gnu`).
fn component_installed(installed: &str, component: &str) -> bool {
    const ARCHES: [&str; 8] = ["x86_64", "aarch64", "i686", "arm", "riscv", "powerpc", "s390x", "loongarch"];
    let wanted = component.strip_suffix("-preview").unwrap_or(component);
    installed.lines().any(|line| {
        let line = line.trim();
        let line = line.strip_suffix(" (installed)").unwrap_or(line).replace("-preview", "");
        line == wanted
            || line
                .strip_prefix(wanted)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|triple| ARCHES.iter().any(|a| triple.starts_with(a)))
    })
}

/// Adds the targets and components `rust-toolchain.toml` lists that rustup does not have.
pub fn rust() -> Result {
    let text = std::fs::read_to_string(root().join("rust-toolchain.toml"))
        .map_err(|e| format!("cannot read rust-toolchain.toml: {e}"))?;
    let toolchain = parse_toolchain(&text)?;
    if Command::new("rustup").arg("--version").output().is_err() {
        say(format!(
            "rustup not found; make sure toolchain {} has targets {:?} and components {:?}",
            toolchain.channel, toolchain.targets, toolchain.components
        ));
        return Ok(());
    }
    let mut list = rustup();
    list.args(["target", "list", "--installed"]);
    let installed = output(list)?;
    let missing: Vec<&String> =
        toolchain.targets.iter().filter(|t| !installed.lines().any(|l| l.trim() == t.as_str())).collect();
    if !missing.is_empty() {
        let mut add = rustup();
        add.args(["target", "add"]).args(&missing);
        run(add)?;
    }
    let mut list = rustup();
    list.args(["component", "list", "--installed"]);
    let installed = output(list)?;
    let missing: Vec<&String> = toolchain.components.iter().filter(|c| !component_installed(&installed, c)).collect();
    if !missing.is_empty() {
        let mut add = rustup();
        add.args(["component", "add"]).args(&missing);
        run(add)?;
    }
    Ok(())
}

/// The Debian package that has the QEMU for `arch`.
fn qemu_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86",
        Arch::Aarch64 => "qemu-system-arm",
    }
}

/// How a prerequisite is found: a program on `PATH`, a file, or Python modules that
/// `python3` on `PATH` imports.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Probe {
    Program(Cow<'static, str>),
    File(&'static str),
    PythonModules(&'static str),
}

impl Probe {
    fn present(&self) -> bool {
        match self {
            Self::Program(name) => pappus_tests::on_path(name),
            Self::File(path) => std::path::Path::new(path).is_file(),
            Self::PythonModules(modules) => Command::new("python3")
                .args(["-c", &format!("import {modules}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    fn describe(&self) -> &str {
        match self {
            Self::Program(name) => name,
            Self::File(path) | Self::PythonModules(path) => path,
        }
    }
}

/// One system prerequisite: what is looked for, the Debian package that has it, and why.
#[derive(Clone, Debug)]
struct Need {
    probe: Probe,
    package: &'static str,
    why: &'static str,
}

/// What the QEMU suites need besides QEMU itself: the one list (`.ci/run` installs nothing of
/// its own).
const SUITE_NEEDS: [Need; 9] = [
    Need { probe: Probe::File("/usr/share/OVMF/OVMF_CODE.fd"), package: "ovmf", why: "the UEFI suite boots OVMF" },
    Need {
        probe: Probe::File("/usr/lib/ipxe/qemu/efi-virtio.rom"),
        package: "ipxe-qemu",
        why: "the UEFI and BIOS suites boot through the NIC's iPXE ROM",
    },
    Need {
        probe: Probe::Program(Cow::Borrowed("mcopy")),
        package: "mtools",
        why: "`xtask image --disk` fills a FAT ESP",
    },
    Need { probe: Probe::Program(Cow::Borrowed("sgdisk")), package: "gdisk", why: "`xtask image --disk` writes a GPT" },
    Need {
        probe: Probe::PythonModules("venv, ensurepip"),
        package: "python3-venv",
        why: "the OpenAPI suite's tools (openapi-spec-validator, schemathesis) live in a venv",
    },
    Need {
        probe: Probe::Program(Cow::Borrowed("dnsmasq")),
        package: "dnsmasq",
        why: "the fleet's DHCP and TFTP (network boot)",
    },
    Need { probe: Probe::Program(Cow::Borrowed("etcd")), package: "etcd-server", why: "the fleet's desired state" },
    Need { probe: Probe::Program(Cow::Borrowed("haproxy")), package: "haproxy", why: "the fleet's load balancer" },
    Need {
        probe: Probe::Program(Cow::Borrowed("prometheus")),
        package: "prometheus",
        why: "the fleet's metrics (scrapes every node)",
    },
];

/// The systemd units the fleet's packages install and, on a host that runs systemd, start at
/// once: the fleet runs these programs only inside its own network namespace
/// (`cargo xtask fleet up`), so after installing them they are stopped and disabled.
const FLEET_UNITS: [&str; 4] = ["dnsmasq", "etcd", "haproxy", "prometheus"];

/// The Python tools the OpenAPI suite (tests/tests/openapi.rs) runs, pinned, installed with pip
/// into [`pappus_tests::pyenv_dir`] (`target/pyenv`): PyPI names and versions.
pub const PYTHON_TOOLS: [(&str, &str); 2] = [("openapi-spec-validator", "0.9.0"), ("schemathesis", "4.32.5")];

/// The file in the venv that records which [`PYTHON_TOOLS`] it holds.
const PYTHON_TOOLS_STAMP: &str = "pappus-tools.txt";

/// `name==version` lines of [`PYTHON_TOOLS`], as pip takes them and the stamp records them.
fn python_requirements() -> Vec<String> {
    PYTHON_TOOLS.iter().map(|(name, version)| format!("{name}=={version}")).collect()
}

/// Makes `target/pyenv` a venv holding [`PYTHON_TOOLS`] (needs `python3` with `venv`, see
/// [`suites`], and PyPI or a pip mirror the first time). Does nothing when the venv's stamp
/// already lists them; fails loudly when pip cannot install them.
pub fn python_tools() -> Result {
    let venv = pappus_tests::pyenv_dir();
    let wanted = python_requirements().join("\n") + "\n";
    let stamp = venv.join(PYTHON_TOOLS_STAMP);
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    let python = venv.join("bin").join("python3");
    if !python.is_file() {
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        run(create)?;
    }
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet"]).args(python_requirements());
    run(install).map_err(|e| {
        Failure(format!(
            "{}\nthe OpenAPI suite needs {} in {} (pip needs PyPI or a mirror: PIP_INDEX_URL)",
            e.0,
            python_requirements().join(", "),
            venv.display()
        ))
    })?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(())
}

/// The QEMU binaries for `arches`, as needs.
fn qemu_needs(arches: &[Arch]) -> Vec<Need> {
    arches
        .iter()
        .map(|&arch| {
            let profile = pappus_qemu::profile(arch.default_profile()).expect("shipped profile");
            Need {
                probe: Probe::Program(Cow::Owned(profile.binary.clone())),
                package: qemu_package(arch),
                why: "QEMU runs the kernel",
            }
        })
        .collect()
}

/// The packages of `needs` whose probe `present` says are missing, each once, in order.
fn missing_packages(needs: &[Need], present: impl Fn(&Probe) -> bool) -> Vec<&'static str> {
    let mut packages = Vec::new();
    for need in needs {
        if !present(&need.probe) && !packages.contains(&need.package) {
            packages.push(need.package);
        }
    }
    packages
}

/// Installs what `needs` lacks when root (one `apt-get` run), otherwise says the exact command
/// and fails before anything is built. Fails loudly if something is still missing afterwards.
fn ensure(needs: &[Need]) -> Result {
    let packages = missing_packages(needs, Probe::present);
    if packages.is_empty() {
        return Ok(());
    }
    let lacking: Vec<String> = needs
        .iter()
        .filter(|n| !n.probe.present())
        .map(|n| format!("{} ({}: {})", n.probe.describe(), n.package, n.why))
        .collect();
    let install = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if !is_root() {
        return Err(Failure(format!(
            "missing: {}\ninstall with:\n    sudo apt-get update && sudo {install}",
            lacking.join(", ")
        )));
    }
    say(format!("missing: {}; installing {}", lacking.join(", "), packages.join(" ")));
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "--no-install-recommends"]).args(&packages);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    run(install)?;
    let still: Vec<&str> = needs.iter().filter(|n| !n.probe.present()).map(|n| n.probe.describe()).collect();
    if !still.is_empty() {
        return Err(Failure(format!("still missing after the install: {}", still.join(", "))));
    }
    stop_host_services(&packages);
    Ok(())
}

/// Stops and disables the host-wide services that installing the fleet's packages started
/// (Debian starts a daemon's unit at install unless `policy-rc.d` forbids it). Only where
/// systemd runs (`/run/systemd/system`); containers without it started nothing.
fn stop_host_services(installed: &[&str]) {
    if !installed.iter().any(|p| FLEET_PACKAGES.contains(p)) || !std::path::Path::new("/run/systemd/system").is_dir() {
        return;
    }
    let mut stop = Command::new("systemctl");
    stop.args(["disable", "--now"]).args(FLEET_UNITS);
    match run(stop) {
        Ok(()) => say(format!("stopped and disabled the host services {FLEET_UNITS:?}: the fleet runs its own")),
        Err(e) => say(format!("could not stop the host services {FLEET_UNITS:?}: {}", e.0)),
    }
}

/// Makes sure the QEMU binaries for `arches` are there (`cargo xtask run`): installs them when
/// root, otherwise says what to run and fails.
pub fn qemu(arches: &[Arch]) -> Result {
    ensure(&qemu_needs(arches))
}

/// What `cargo xtask fleet up` needs: QEMU, the iPXE ROMs, and the four services.
pub fn fleet() -> Result {
    let mut needs = qemu_needs(&[Arch::X86_64]);
    needs.extend(
        SUITE_NEEDS.iter().filter(|n| FLEET_PACKAGES.contains(&n.package) || n.package == "ipxe-qemu").cloned(),
    );
    ensure(&needs)
}

/// The fleet's packages.
const FLEET_PACKAGES: [&str; 4] = ["dnsmasq", "etcd-server", "haproxy", "prometheus"];

/// Everything the QEMU suites need (`cargo xtask test`): QEMU for `arches`, OVMF, the iPXE
/// ROMs, mtools and gdisk.
pub fn suites(arches: &[Arch]) -> Result {
    let mut needs = qemu_needs(arches);
    if arches.contains(&Arch::X86_64) {
        needs.extend(SUITE_NEEDS.iter().cloned());
    }
    ensure(&needs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_toolchain_file() {
        let text = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
        let toolchain = parse_toolchain(&text).unwrap();
        assert!(toolchain.targets.iter().any(|t| t == "x86_64-unknown-none"));
        assert!(toolchain.targets.iter().any(|t| t == "aarch64-unknown-none"));
        assert!(toolchain.components.iter().any(|c| c == "clippy"));
    }

    #[test]
    fn missing_packages_are_listed_once_in_order() {
        let needs = [
            Need { probe: Probe::Program("a".into()), package: "pa", why: "" },
            Need { probe: Probe::File("/b"), package: "pb", why: "" },
            Need { probe: Probe::Program("a2".into()), package: "pa", why: "" },
            Need { probe: Probe::Program("c".into()), package: "pc", why: "" },
        ];
        let present = |p: &Probe| *p == Probe::Program("c".into());
        assert_eq!(missing_packages(&needs, present), ["pa", "pb"]);
        assert!(missing_packages(&needs, |_| true).is_empty());
        let packages: Vec<&str> = SUITE_NEEDS.iter().map(|n| n.package).collect();
        assert_eq!(
            packages,
            ["ovmf", "ipxe-qemu", "mtools", "gdisk", "python3-venv", "dnsmasq", "etcd-server", "haproxy", "prometheus"]
        );
    }

    #[test]
    fn python_tools_are_pinned() {
        assert_eq!(python_requirements(), ["openapi-spec-validator==0.9.0", "schemathesis==4.32.5"]);
        assert!(!Probe::PythonModules("no_such_module_pappus").present());
        if pappus_tests::on_path("python3") {
            assert!(Probe::PythonModules("sys").present());
        }
    }

    #[test]
    fn component_names() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                         llvm-tools-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-none\n";
        assert!(component_installed(installed, "clippy"));
        assert!(component_installed(installed, "llvm-tools"));
        assert!(component_installed(installed, "llvm-tools-preview"));
        assert!(!component_installed(installed, "rustfmt"));
        assert!(!component_installed(installed, "rust-src"));
        assert!(component_installed("rustfmt (installed)\n", "rustfmt"));
    }
}
