//! The QEMU profiles Pappus boots under, and the command lines they make.
//!
//! The profiles live in `qemu/profiles.toml` (embedded at build time), so that `cargo xtask run`,
//! `cargo xtask bench` and the qemu-test harness all start the very same machines. A
//! [`Profile`] plus [`Overrides`] (CPU model, SMP, accelerator, `-icount`, kernel, command line)
//! gives an [`Invocation`]: the program, its argv and the accelerator that was chosen.
//!
//! The accelerator choice ([`choose_accel`]) reads the host through [`HostProbe`], so tests can
//! stand in for `/dev/kvm` and `/sys/module/kvm_pvm`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

/// The profile data, as shipped.
pub const PROFILES_TOML: &str = include_str!("../profiles.toml");

/// The profile `run` and `test` use for x86_64 unless told otherwise.
pub const DEFAULT_X86_64: &str = "x86_64-q35";
/// The x86_64 profile with the fastest start (qboot, no PCI).
pub const MICROVM_X86_64: &str = "x86_64-microvm";
/// The profile for aarch64.
pub const DEFAULT_AARCH64: &str = "aarch64-virt";
/// The aarch64 profile on an Arm Morello (CHERI) CPU, under CTSRD-CHERI's QEMU fork.
pub const MORELLO_AARCH64: &str = "aarch64-morello";

/// The port the guest's HTTP front door listens on (see DESIGN.md); host ports forward to it.
pub const GUEST_HTTP_PORT: u16 = 8080;

/// An error in a profile, an override or the profile file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(err(format!("unknown architecture {other:?}: expected x86_64 or aarch64"))),
        }
    }

    /// The Rust target the kernel is built for.
    pub fn kernel_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none",
        }
    }

    /// The profile used for this architecture unless another is named.
    pub fn default_profile(self) -> &'static str {
        match self {
            Arch::X86_64 => DEFAULT_X86_64,
            Arch::Aarch64 => DEFAULT_AARCH64,
        }
    }

    /// The architecture this program was built for, if it is one Pappus runs on.
    pub fn host() -> Option<Self> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The QEMU exit statuses that mean pass and fail for a profile; anything else is a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitCodes {
    pub pass: i32,
    pub fail: i32,
}

/// What a QEMU exit status means for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel asked to exit with success.
    Pass,
    /// The kernel asked to exit with failure (e.g. a self-test failed).
    Fail,
    /// Any other status: QEMU's own error, a triple fault, a reset, an unexpected exit.
    Crash(i32),
}

impl ExitCodes {
    pub fn verdict(self, status: i32) -> Verdict {
        if status == self.pass {
            Verdict::Pass
        } else if status == self.fail {
            Verdict::Fail
        } else {
            Verdict::Crash(status)
        }
    }
}

/// One machine to boot, as described in `profiles.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub arch: Arch,
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub memory: String,
    pub smp: u32,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub nic: bool,
    /// Options appended to the NIC's `-device virtio-net-pci,netdev=n0` (the Morello fork needs
    /// `romfile=`: it looks for `efi-virtio.rom` in its own data folder and refuses to start).
    /// When set, a boot without a host port also gets `-nic none` (the board's default NIC
    /// would need the same ROM).
    #[serde(default)]
    pub nic_options: Option<String>,
    /// Whether several CPUs under TCG may run one host thread each (MTTCG). The Morello fork's
    /// tagged memory is not thread-safe ("capability tags may mysteriously appear/disappear"),
    /// so its profile says false and gets `-accel tcg,thread=single`.
    #[serde(default = "yes")]
    pub mttcg: bool,
    /// An environment variable that names the QEMU executable, tried before `binary` on PATH.
    #[serde(default)]
    pub binary_env: Option<String>,
    /// Where the executable lies when it is neither named by `binary_env` nor on PATH: a path
    /// relative to the repository root (a CI clone sees `../shared` beside it).
    #[serde(default)]
    pub binary_fallback: Option<String>,
    pub exit: ExitCodes,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profiles: BTreeMap<String, Profile>,
}

/// Parses a profile file (the shipped one is [`PROFILES_TOML`]).
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, Error> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| err(format!("qemu/profiles.toml: {e}")))?;
    let mut profiles = Vec::with_capacity(file.profiles.len());
    for (name, mut profile) in file.profiles {
        if profile.smp == 0 {
            return Err(err(format!("profile {name}: smp must be at least 1")));
        }
        profile.name = name;
        profiles.push(profile);
    }
    Ok(profiles)
}

/// The shipped profiles, parsed once.
pub fn profiles() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        // The file is part of this crate and a unit test parses it: failing here is a build bug.
        parse_profiles(PROFILES_TOML).expect("qemu/profiles.toml is valid")
    })
}

/// A shipped profile by name.
pub fn profile(name: &str) -> Result<&'static Profile, Error> {
    profiles().iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = profiles().iter().map(|p| p.name.as_str()).collect();
        err(format!("unknown QEMU profile {name:?}; known: {}", known.join(", ")))
    })
}

/// The accelerator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM where it is real and usable for this guest, TCG otherwise.
    #[default]
    Auto,
    Tcg,
    Kvm,
}

impl AccelChoice {
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "auto" => Ok(AccelChoice::Auto),
            "tcg" => Ok(AccelChoice::Tcg),
            "kvm" => Ok(AccelChoice::Kvm),
            other => Err(err(format!("unknown accelerator {other:?}: expected tcg, kvm or auto"))),
        }
    }
}

/// The accelerator chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the accelerator choice needs to know about the host.
pub trait HostProbe {
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Whether `path` opens for reading and writing (as QEMU opens `/dev/kvm`).
    fn can_open_rw(&self, path: &Path) -> bool;
    /// The host's architecture.
    fn host_arch(&self) -> Option<Arch> {
        Arch::host()
    }
    /// An environment variable (None when unset or empty).
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    /// Whether `program` is an executable file in a folder of PATH.
    fn on_path(&self, program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program))))
    }
    /// Whether `path` is an executable file.
    fn executable(&self, path: &Path) -> bool {
        is_executable(path)
    }
    /// The repository root, which a profile's `binary_fallback` is relative to.
    fn repo_root(&self) -> PathBuf {
        repo_root()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The repository root: this crate's parent folder (`qemu/..`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl HostProbe for RealHost {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn can_open_rw(&self, path: &Path) -> bool {
        std::fs::OpenOptions::new().read(true).write(true).open(path).is_ok()
    }
}

/// Present when the host's KVM is the paravirtual one that emulates guest kernels instruction by
/// instruction (see PLATFORM-NOTES.md): much slower than TCG for us.
pub const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";
/// The KVM device.
pub const DEV_KVM: &str = "/dev/kvm";

/// An accelerator and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

/// Picks the accelerator.
///
/// `icount` (deterministic instruction counting) forces TCG and refuses an explicit KVM. An
/// explicit `tcg` or `kvm` is honoured as given (KVM stays selectable for real hardware even when
/// the probe would not pick it; QEMU then reports what is wrong). `auto` picks KVM only when the
/// guest runs natively on this host, the KVM is not the paravirtual `kvm_pvm`, and `/dev/kvm`
/// opens read-write.
pub fn choose_accel(
    requested: AccelChoice,
    guest: Arch,
    icount: bool,
    probe: &dyn HostProbe,
) -> Result<AccelDecision, Error> {
    let decide = |accel, reason: &str| Ok(AccelDecision { accel, reason: reason.to_string() });
    if icount {
        return match requested {
            AccelChoice::Kvm => {
                Err(err("-icount (deterministic instruction counting) needs TCG; it cannot run with --accel kvm"))
            }
            _ => decide(Accel::Tcg, "-icount needs TCG"),
        };
    }
    match requested {
        AccelChoice::Tcg => decide(Accel::Tcg, "asked for"),
        AccelChoice::Kvm => decide(Accel::Kvm, "asked for"),
        AccelChoice::Auto => {
            if probe.host_arch() != Some(guest) {
                decide(Accel::Tcg, "the guest architecture differs from the host's")
            } else if probe.exists(Path::new(KVM_PVM_MODULE)) {
                decide(
                    Accel::Tcg,
                    "the host KVM is paravirtual (kvm_pvm) and emulates guest kernels far slower than TCG",
                )
            } else if !probe.can_open_rw(Path::new(DEV_KVM)) {
                decide(Accel::Tcg, "/dev/kvm is missing or not usable")
            } else {
                decide(Accel::Kvm, "/dev/kvm is usable")
            }
        }
    }
}

/// Changes to a profile for one boot.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-cpu` model instead of the profile's.
    pub cpu: Option<String>,
    /// `-smp` instead of the profile's.
    pub smp: Option<u32>,
    /// `-m` instead of the profile's.
    pub memory: Option<String>,
    pub accel: AccelChoice,
    /// Adds `-icount shift=0`: one guest instruction per nanosecond of virtual time (and per TSC
    /// tick on x86), so in-guest timings are exact instruction counts. Forces TCG.
    pub icount: bool,
    /// `-kernel`.
    pub kernel: Option<PathBuf>,
    /// `-append` (the kernel command line); left out when empty.
    pub append: Option<String>,
    /// The boot configuration file (tenants and tokens), passed as `-initrd`: a PVH module on
    /// x86_64 (docs/configuration.md).
    pub config: Option<PathBuf>,
    /// Host port forwarded to the guest's HTTP port, for profiles with a NIC.
    pub host_port: Option<u16>,
    /// Further arguments, appended last.
    pub extra_args: Vec<String>,
}

/// Where the boot configuration is loaded on aarch64 `virt`: 128 MiB into RAM, above the kernel
/// image and the device tree QEMU places at the start of RAM, inside the smallest profile's RAM.
pub const AARCH64_CONFIG_ADDR: u64 = 0x4800_0000;

/// A ready-to-run QEMU command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub profile: Profile,
    pub program: String,
    pub args: Vec<String>,
    pub accel: AccelDecision,
}

impl Profile {
    /// The QEMU executable for this profile. A profile without `binary_env` and
    /// `binary_fallback` runs `binary` as it is (looked up on PATH when QEMU starts). One with
    /// them takes, in order: the executable `$<binary_env>` names (an error when it names no
    /// executable: a wrong setting is not silently replaced), `binary` on PATH, then
    /// `binary_fallback` under the repository root. None of them: an error that says all three.
    pub fn binary_path(&self, probe: &dyn HostProbe) -> Result<String, Error> {
        if self.binary_env.is_none() && self.binary_fallback.is_none() {
            return Ok(self.binary.clone());
        }
        if let Some(var) = &self.binary_env
            && let Some(value) = probe.var(var)
        {
            return if probe.executable(Path::new(&value)) {
                Ok(value)
            } else {
                Err(err(format!("{var}={value} is not an executable file (profile {})", self.name)))
            };
        }
        if probe.on_path(&self.binary) {
            return Ok(self.binary.clone());
        }
        if let Some(fallback) = &self.binary_fallback {
            let path = probe.repo_root().join(fallback);
            if probe.executable(&path) {
                return Ok(path.to_string_lossy().into_owned());
            }
        }
        let mut places = Vec::new();
        if let Some(var) = &self.binary_env {
            places.push(format!("${var}"));
        }
        places.push(format!("{} on PATH", self.binary));
        if let Some(fallback) = &self.binary_fallback {
            places.push(format!("{}", probe.repo_root().join(fallback).display()));
        }
        Err(err(format!("no QEMU for profile {}: looked at {}", self.name, places.join(", "))))
    }

    /// The QEMU command line for this profile with `overrides`, reading the host through `probe`.
    pub fn invocation(&self, overrides: &Overrides, probe: &dyn HostProbe) -> Result<Invocation, Error> {
        let accel = choose_accel(overrides.accel, self.arch, overrides.icount, probe)?;
        let program = self.binary_path(probe)?;
        let smp = overrides.smp.unwrap_or(self.smp);
        if smp == 0 {
            return Err(err("-smp must be at least 1"));
        }
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&["-M", &self.machine]);
        push(&["-cpu", overrides.cpu.as_deref().unwrap_or(&self.cpu)]);
        // Several CPUs under TCG: one host thread per virtual CPU (MTTCG), so they really run
        // at once. -icount needs the single-threaded round robin.
        if accel.accel == Accel::Tcg && smp > 1 && !overrides.icount {
            push(&["-accel", if self.mttcg { "tcg,thread=multi" } else { "tcg,thread=single" }]);
        } else {
            push(&["-accel", accel.accel.as_str()]);
        }
        if overrides.icount {
            push(&["-icount", "shift=0"]);
        }
        push(&["-m", overrides.memory.as_deref().unwrap_or(&self.memory)]);
        push(&["-smp", &smp.to_string()]);
        push(&["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]);
        for device in &self.devices {
            push(&["-device", device]);
        }
        for arg in &self.args {
            push(&[arg]);
        }
        // The NIC comes with a host port to forward; a port given for a profile without a NIC
        // (microvm has no PCI) is accepted and has no effect.
        if let (true, Some(port)) = (self.nic, overrides.host_port) {
            let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_HTTP_PORT}");
            let nic = match &self.nic_options {
                Some(options) => format!("virtio-net-pci,netdev=n0,{options}"),
                None => "virtio-net-pci,netdev=n0".to_string(),
            };
            push(&["-netdev", &netdev, "-device", &nic]);
        } else if self.nic_options.is_some() {
            push(&["-nic", "none"]);
        }
        if let Some(kernel) = &overrides.kernel {
            push(&["-kernel", &kernel.to_string_lossy()]);
        }
        let mut append = overrides.append.clone().unwrap_or_default();
        if let Some(config) = &overrides.config {
            if self.arch == Arch::Aarch64 {
                // QEMU's `-initrd` reaches only Linux images on Arm: load the file at a fixed
                // address in RAM instead and tell the kernel where (`bootconfig=ADDR,LEN`).
                let len = std::fs::metadata(config)
                    .map_err(|e| err(format!("boot configuration {}: {e}", config.display())))?
                    .len();
                let device = format!("loader,file={},addr={AARCH64_CONFIG_ADDR:#x},force-raw=on", config.display());
                push(&["-device", &device]);
                append = format!("{append} bootconfig={AARCH64_CONFIG_ADDR:#x},{len}").trim().to_string();
            } else {
                push(&["-initrd", &config.to_string_lossy()]);
            }
        }
        if !append.is_empty() {
            push(&["-append", &append]);
        }
        args.extend(overrides.extra_args.iter().cloned());
        Ok(Invocation { profile: self.clone(), program, args, accel })
    }
}

impl Invocation {
    /// A [`Command`] for this invocation (stdio left to the caller).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    /// The command line as a shell would take it, for logs and error messages.
    pub fn shell_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn exit_codes(&self) -> ExitCodes {
        self.profile.exit
    }
}

/// Quotes one word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host where every answer is set by the test.
    struct FakeHost {
        arch: Option<Arch>,
        kvm_pvm: bool,
        dev_kvm_rw: bool,
    }

    impl HostProbe for FakeHost {
        fn exists(&self, path: &Path) -> bool {
            (path == Path::new(KVM_PVM_MODULE) && self.kvm_pvm) || (path == Path::new(DEV_KVM) && self.dev_kvm_rw)
        }
        fn can_open_rw(&self, path: &Path) -> bool {
            path == Path::new(DEV_KVM) && self.dev_kvm_rw
        }
        fn host_arch(&self) -> Option<Arch> {
            self.arch
        }
    }

    const GOOD_KVM: FakeHost = FakeHost { arch: Some(Arch::X86_64), kvm_pvm: false, dev_kvm_rw: true };
    const NO_KVM: FakeHost = FakeHost { arch: Some(Arch::X86_64), kvm_pvm: false, dev_kvm_rw: false };
    const PVM_KVM: FakeHost = FakeHost { arch: Some(Arch::X86_64), kvm_pvm: true, dev_kvm_rw: true };

    fn accel(requested: AccelChoice, guest: Arch, icount: bool, host: &FakeHost) -> Accel {
        choose_accel(requested, guest, icount, host).unwrap().accel
    }

    #[test]
    fn shipped_profiles_parse() {
        let names: Vec<&str> = profiles().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["aarch64-morello", "aarch64-virt", "x86_64-microvm", "x86_64-q35"]);
        for p in profiles() {
            assert_eq!(p.cpu, if p.name == MORELLO_AARCH64 { "morello" } else { "max" });
            assert_eq!(p.smp, 1);
            // q35 and virt have PCI for virtio-net (microvm has none); they also get the memory
            // HTTP bodies need.
            assert_eq!(p.nic, p.name != "x86_64-microvm", "{}", p.name);
            assert_eq!(p.memory, if p.nic { "512M" } else { "256M" }, "{}", p.name);
        }
        assert_eq!(profile("x86_64-q35").unwrap().exit, ExitCodes { pass: 33, fail: 35 });
        assert_eq!(profile("aarch64-virt").unwrap().exit, ExitCodes { pass: 0, fail: 1 });
        assert!(profile("nope").unwrap_err().0.contains("x86_64-q35"));
        for arch in Arch::ALL {
            assert_eq!(profile(arch.default_profile()).unwrap().arch, arch);
        }
    }

    /// A host whose environment, PATH and files are set by the test.
    struct LookupHost {
        env: Option<&'static str>,
        on_path: bool,
        files: Vec<PathBuf>,
    }

    impl HostProbe for LookupHost {
        fn exists(&self, path: &Path) -> bool {
            self.files.iter().any(|f| f == path)
        }
        fn can_open_rw(&self, _: &Path) -> bool {
            false
        }
        fn var(&self, name: &str) -> Option<String> {
            (name == "PAPPUS_QEMU_MORELLO").then(|| self.env.map(String::from)).flatten()
        }
        fn on_path(&self, program: &str) -> bool {
            self.on_path && program == "qemu-system-morello"
        }
        fn executable(&self, path: &Path) -> bool {
            self.exists(path)
        }
        fn repo_root(&self) -> PathBuf {
            PathBuf::from("/ci/pappus")
        }
    }

    /// The Morello profile: `-cpu morello` on the virt board with aarch64-virt's devices, the
    /// NIC with an empty romfile, and the emulator from $PAPPUS_QEMU_MORELLO, else PATH, else
    /// ../shared/tools/morello/bin/ beside the repository root.
    #[test]
    fn morello_profile_and_its_emulator() {
        let morello = profile(MORELLO_AARCH64).unwrap();
        let virt = profile(DEFAULT_AARCH64).unwrap();
        assert_eq!(
            (morello.arch, morello.machine.as_str(), morello.cpu.as_str()),
            (Arch::Aarch64, virt.machine.as_str(), "morello")
        );
        assert_eq!(
            (&morello.devices, &morello.args, morello.nic, morello.exit),
            (&virt.devices, &virt.args, virt.nic, virt.exit)
        );

        let fallback = PathBuf::from("/ci/pappus/../shared/tools/morello/bin/qemu-system-morello");
        let everywhere = LookupHost {
            env: Some("/opt/m/qemu-system-morello"),
            on_path: true,
            files: vec![PathBuf::from("/opt/m/qemu-system-morello"), fallback.clone()],
        };
        assert_eq!(morello.binary_path(&everywhere).unwrap(), "/opt/m/qemu-system-morello");
        let path_and_fallback = LookupHost { env: None, on_path: true, files: vec![fallback.clone()] };
        assert_eq!(morello.binary_path(&path_and_fallback).unwrap(), "qemu-system-morello");
        let fallback_only = LookupHost { env: None, on_path: false, files: vec![fallback.clone()] };
        assert_eq!(morello.binary_path(&fallback_only).unwrap(), fallback.to_string_lossy());
        // A variable that names nothing is an error, not a quiet fallback.
        let wrong_env = LookupHost { env: Some("/nope"), on_path: true, files: vec![fallback] };
        assert!(morello.binary_path(&wrong_env).unwrap_err().0.contains("PAPPUS_QEMU_MORELLO=/nope"));
        let nowhere = LookupHost { env: None, on_path: false, files: vec![] };
        let e = morello.binary_path(&nowhere).unwrap_err().0;
        assert!(
            e.contains("$PAPPUS_QEMU_MORELLO") && e.contains("on PATH") && e.contains("shared/tools/morello/bin"),
            "{e}"
        );
        assert!(morello.invocation(&Overrides::default(), &nowhere).is_err());
        // Other profiles run their binary by name, without a lookup.
        assert_eq!(virt.binary_path(&nowhere).unwrap(), "qemu-system-aarch64");

        let overrides = Overrides { kernel: Some(PathBuf::from("K")), host_port: Some(18080), ..Overrides::default() };
        let inv = morello.invocation(&overrides, &fallback_only).unwrap();
        assert!(inv.program.ends_with("shared/tools/morello/bin/qemu-system-morello"), "{}", inv.program);
        let line = inv.shell_line();
        assert!(line.contains(" -M virt,gic-version=3 -cpu morello -accel tcg -m 512M -smp 1 "), "{line}");
        assert!(line.contains("-semihosting-config enable=on,target=native"), "{line}");
        assert!(inv.args.windows(2).any(|w| w == ["-device", "virtio-net-pci,netdev=n0,romfile="]), "{line}");
        assert!(!line.contains("-nic none"), "{line}");
        // Without a port: no default NIC (it would need the ROM too); several CPUs: one thread
        // (the fork's tagged memory is not thread-safe under MTTCG).
        let smp2 = Overrides { smp: Some(2), accel: AccelChoice::Tcg, ..Overrides::default() };
        let line = morello.invocation(&smp2, &fallback_only).unwrap().shell_line();
        assert!(line.contains("-accel tcg,thread=single -m 512M -smp 2 ") && line.contains(" -nic none"), "{line}");
        let line = virt.invocation(&smp2, &fallback_only).unwrap().shell_line();
        assert!(line.contains("-accel tcg,thread=multi") && !line.contains("-nic none"), "{line}");
    }

    #[test]
    fn bad_profile_files_are_refused() {
        let unknown_field = r#"[profiles.a]
description = "d"
arch = "x86_64"
binary = "b"
machine = "m"
cpu = "c"
memory = "1M"
smp = 1
colour = "red"
exit = { pass = 0, fail = 1 }"#;
        assert!(parse_profiles(unknown_field).unwrap_err().0.contains("colour"));
        let bad_arch = unknown_field.replace("colour = \"red\"\n", "").replace("x86_64", "mips");
        assert!(parse_profiles(&bad_arch).is_err());
        let zero_smp = unknown_field.replace("colour = \"red\"\n", "").replace("smp = 1", "smp = 0");
        assert!(parse_profiles(&zero_smp).unwrap_err().0.contains("smp"));
    }

    #[test]
    fn q35_argv_matches_the_documented_line() {
        let overrides = Overrides {
            accel: AccelChoice::Tcg,
            kernel: Some(PathBuf::from("K")),
            append: Some("test log=debug".into()),
            ..Overrides::default()
        };
        let inv = profile("x86_64-q35").unwrap().invocation(&overrides, &NO_KVM).unwrap();
        assert_eq!(inv.program, "qemu-system-x86_64");
        assert_eq!(
            inv.shell_line(),
            "qemu-system-x86_64 -M q35 -cpu max -accel tcg -m 512M -smp 1 -display none \
             -serial stdio -monitor none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel K -append 'test log=debug'"
        );
        // The command line is one argv word, whatever its spaces.
        assert_eq!(inv.args.last().unwrap(), "test log=debug");
    }

    #[test]
    fn microvm_and_aarch64_argv() {
        let overrides = Overrides { kernel: Some(PathBuf::from("K")), ..Overrides::default() };
        let micro = profile("x86_64-microvm").unwrap().invocation(&overrides, &NO_KVM).unwrap();
        assert_eq!(&micro.args[..2], ["-M", "microvm"]);
        assert!(micro.args.windows(2).any(|w| w == ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]));
        assert!(!micro.args.contains(&"-append".to_string()), "no -append for an empty command line");

        let arm = profile("aarch64-virt").unwrap().invocation(&overrides, &GOOD_KVM).unwrap();
        assert_eq!(
            arm.shell_line(),
            "qemu-system-aarch64 -M virt,gic-version=3 -cpu max -accel tcg -m 512M -smp 1 -display none \
             -serial stdio -monitor none -no-reboot -semihosting-config enable=on,target=native -kernel K"
        );
        assert_eq!(arm.accel.accel, Accel::Tcg, "no KVM for a foreign guest");
    }

    #[test]
    fn overrides_apply() {
        let overrides = Overrides {
            cpu: Some("qemu64,+pku".into()),
            smp: Some(4),
            memory: Some("1G".into()),
            icount: true,
            extra_args: vec!["-d".into(), "int".into()],
            ..Overrides::default()
        };
        let inv = profile("x86_64-q35").unwrap().invocation(&overrides, &GOOD_KVM).unwrap();
        let line = inv.shell_line();
        assert!(line.contains("-cpu qemu64,+pku -accel tcg -icount shift=0 -m 1G -smp 4 "), "{line}");
        assert!(line.ends_with(" -d int"), "{line}");
        assert!(!line.contains("-kernel"));
        // Several CPUs without -icount: multi-threaded TCG; KVM as it is.
        let mttcg = Overrides { smp: Some(4), accel: AccelChoice::Tcg, ..Overrides::default() };
        let line = profile("x86_64-q35").unwrap().invocation(&mttcg, &NO_KVM).unwrap().shell_line();
        assert!(line.contains("-accel tcg,thread=multi -m 512M -smp 4 "), "{line}");
        let kvm = Overrides { smp: Some(4), accel: AccelChoice::Kvm, ..Overrides::default() };
        let line = profile("x86_64-q35").unwrap().invocation(&kvm, &NO_KVM).unwrap().shell_line();
        assert!(line.contains("-accel kvm -m 512M -smp 4 "), "{line}");
        let zero = Overrides { smp: Some(0), ..Overrides::default() };
        assert!(profile("x86_64-q35").unwrap().invocation(&zero, &NO_KVM).is_err());
    }

    /// The boot configuration: `-initrd` (a PVH module) on x86_64; on aarch64, where QEMU gives
    /// `-initrd` only to Linux images, a `-device loader` at AARCH64_CONFIG_ADDR and
    /// `bootconfig=ADDR,LEN` (the file's length) after the rest of the command line.
    #[test]
    fn boot_configuration_per_arch() {
        let dir = std::env::temp_dir().join(format!("pappus-qemu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("boot.conf");
        std::fs::write(&file, "tenant a token-0123456789abcdef0123\n").unwrap();
        let overrides = Overrides { config: Some(file.clone()), append: Some("test".into()), ..Overrides::default() };
        let arm = profile("aarch64-virt").unwrap().invocation(&overrides, &NO_KVM).unwrap();
        let loader = format!("loader,file={},addr=0x48000000,force-raw=on", file.display());
        assert!(arm.args.windows(2).any(|w| w[0] == "-device" && w[1] == loader), "{:?}", arm.args);
        assert!(arm.args.windows(2).any(|w| w == ["-append", "test bootconfig=0x48000000,36"]), "{:?}", arm.args);
        assert!(!arm.args.contains(&"-initrd".to_string()));
        let x86 = profile("x86_64-q35").unwrap().invocation(&overrides, &NO_KVM).unwrap();
        assert!(x86.args.windows(2).any(|w| w[0] == "-initrd" && w[1] == file.to_string_lossy()), "{:?}", x86.args);
        assert!(!x86.args.iter().any(|a| a.contains("bootconfig") || a.starts_with("loader,")));
        let missing = Overrides { config: Some(dir.join("missing")), ..Overrides::default() };
        assert!(profile("aarch64-virt").unwrap().invocation(&missing, &NO_KVM).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nic_only_when_the_profile_has_one() {
        let with_port = Overrides { host_port: Some(18080), ..Overrides::default() };
        let microvm = profile("x86_64-microvm").unwrap();
        let inv = microvm.invocation(&with_port, &NO_KVM).unwrap();
        assert!(!inv.args.iter().any(|a| a.contains("hostfwd")));

        let q35 = profile("x86_64-q35").unwrap();
        assert!(!q35.invocation(&Overrides::default(), &NO_KVM).unwrap().args.iter().any(|a| a.contains("netdev")));
        let inv = q35.invocation(&with_port, &NO_KVM).unwrap();
        assert!(
            inv.args.windows(2).any(|w| w == ["-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:18080-:8080"]),
            "{:?}",
            inv.args
        );
    }

    #[test]
    fn auto_accel_choice() {
        assert_eq!(accel(AccelChoice::Auto, Arch::X86_64, false, &GOOD_KVM), Accel::Kvm);
        assert_eq!(accel(AccelChoice::Auto, Arch::X86_64, false, &NO_KVM), Accel::Tcg);
        assert_eq!(accel(AccelChoice::Auto, Arch::X86_64, false, &PVM_KVM), Accel::Tcg);
        assert_eq!(accel(AccelChoice::Auto, Arch::Aarch64, false, &GOOD_KVM), Accel::Tcg);
        let unknown_host = FakeHost { arch: None, ..GOOD_KVM };
        assert_eq!(accel(AccelChoice::Auto, Arch::X86_64, false, &unknown_host), Accel::Tcg);
        let reason = choose_accel(AccelChoice::Auto, Arch::X86_64, false, &PVM_KVM).unwrap().reason;
        assert!(reason.contains("kvm_pvm"), "{reason}");
    }

    #[test]
    fn explicit_accel_is_honoured() {
        for host in [&GOOD_KVM, &NO_KVM, &PVM_KVM] {
            assert_eq!(accel(AccelChoice::Kvm, Arch::X86_64, false, host), Accel::Kvm);
            assert_eq!(accel(AccelChoice::Tcg, Arch::X86_64, false, host), Accel::Tcg);
        }
    }

    #[test]
    fn icount_forces_tcg_and_refuses_kvm() {
        assert_eq!(accel(AccelChoice::Auto, Arch::X86_64, true, &GOOD_KVM), Accel::Tcg);
        assert_eq!(accel(AccelChoice::Tcg, Arch::X86_64, true, &GOOD_KVM), Accel::Tcg);
        let e = choose_accel(AccelChoice::Kvm, Arch::X86_64, true, &GOOD_KVM).unwrap_err();
        assert!(e.0.contains("TCG"), "{e}");
    }

    #[test]
    fn verdicts() {
        let x86 = ExitCodes { pass: 33, fail: 35 };
        assert_eq!(x86.verdict(33), Verdict::Pass);
        assert_eq!(x86.verdict(35), Verdict::Fail);
        assert_eq!(x86.verdict(0), Verdict::Crash(0));
        let arm = ExitCodes { pass: 0, fail: 1 };
        assert_eq!(arm.verdict(0), Verdict::Pass);
        assert_eq!(arm.verdict(1), Verdict::Fail);
        assert_eq!(arm.verdict(-1), Verdict::Crash(-1));
    }

    #[test]
    fn parse_names() {
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Aarch64);
        assert!(Arch::parse("riscv64").is_err());
        assert_eq!(AccelChoice::parse("kvm").unwrap(), AccelChoice::Kvm);
        assert!(AccelChoice::parse("hvf").is_err());
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
