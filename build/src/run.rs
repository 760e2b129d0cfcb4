//! `cargo xtask run`: build, boot in QEMU, stream the serial log, print one ready line.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pappus_qemu::{AccelChoice, Arch, Verdict};
use pappus_tests::protocol::{READY_PREFIX, Ready};
use pappus_tests::{Boot, HarnessError, Marker};

use pappus::config::{first_token, operator_token};

use crate::args::{Args, Spec};
use crate::util::{Failure, Result, human_bytes, say};
use crate::{preload, prereq, util};

pub const SPEC: Spec = Spec {
    values: &["port", "smp", "cpu", "accel", "arch", "token-file", "profile", "append"],
    switches: &["no-build", "no-preload"],
    max_positionals: 0,
};

/// How long a boot may take to reach ready before `run` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub fn main(args: &Args) -> Result {
    let arch = Arch::parse(args.value("arch").unwrap_or("x86_64"))?;
    let port: u16 = args.parsed("port")?.unwrap_or(8080);
    let accel = AccelChoice::parse(args.value("accel").unwrap_or("auto"))?;
    let profile_name = args.value("profile").unwrap_or(arch.default_profile()).to_string();
    let profile = pappus_qemu::profile(&profile_name)?;
    if profile.arch != arch {
        return Err(Failure(format!("profile {profile_name} is for {}, not {arch}", profile.arch)));
    }
    let BootFiles { config, token, operator } = boot_config(args.value("token-file"))?;
    // `cargo xtask fn` finds this token by itself (target/pappus-dev.conf).
    let token_is_dev = args.value("token-file").is_none();

    prereq::rust()?;
    if profile.binary_env.is_some() || profile.binary_fallback.is_some() {
        // An emulator outside the distribution (the Morello fork): found, or a clear error.
        let binary = profile.binary_path(&pappus_qemu::RealHost)?;
        say(format!("profile {profile_name}: QEMU {binary}"));
    } else {
        prereq::qemu(&[arch])?;
    }
    let kernel = if args.switch("no-build") {
        pappus_tests::kernel_image(arch)?
    } else {
        util::build_kernels(&[arch])?.remove(0).1
    };
    // Built now, deployed once the kernel is up: the boot does not wait for a build.
    let preload = match (args.switch("no-preload"), profile.nic) {
        (true, _) => None,
        (false, false) => {
            say(format!("profile {profile_name} has no NIC: the example functions are not preloaded"));
            None
        }
        (false, true) => Some(preload::prepare(!args.switch("no-build"))),
    };

    let mut boot = Boot::profile(&profile_name)
        .kernel(kernel)
        .config(config)
        .accel(accel)
        // Forwards 127.0.0.1:<port> to the guest's front door (profiles with a NIC).
        .host_port(port)
        .echo_to_stderr(true)
        .log_name("run")
        // `run` lasts as long as the user wants; Ctrl-C ends it (and QEMU with it).
        .time_limit(Duration::from_secs(10 * 365 * 24 * 3600));
    if let Some(smp) = args.parsed::<u32>("smp")? {
        boot = boot.smp(smp);
    }
    if let Some(cpu) = args.value("cpu") {
        boot = boot.cpu(cpu);
    }
    if let Some(append) = args.value("append") {
        boot = boot.cmdline(append);
    }
    let invocation = boot.invocation()?;
    say(format!("accelerator {} ({})", invocation.accel.accel, invocation.accel.reason));
    if !invocation.profile.nic {
        say(format!("port {port} noted; profile {profile_name} has no NIC, so nothing is forwarded"));
    }
    say(format!("$ {}", invocation.shell_line()));
    let mut qemu = boot.spawn()?;

    match qemu.wait_for(Marker::starts_with(READY_PREFIX), READY_TIMEOUT) {
        Ok(line) => {
            let ready = Ready::parse(&line)
                .ok_or_else(|| Failure(format!("the ready line does not follow the protocol: {line:?}")))?;
            let url = ready.fields.contains_key("port").then_some(port);
            let base = format!("http://127.0.0.1:{port}");
            // Deployed before the ready line, so a script that waits for it finds them there.
            let deployed = match (&preload, url) {
                (Some(preload), Some(_)) => preload::deploy(&base, &token, preload)?,
                _ => Vec::new(),
            };
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", ready_line(&ready, &token, &operator, url))?;
            stdout.flush()?;
            if url.is_some() {
                say(format!("try: curl -s {base}/healthz"));
                say(format!("     curl -s -H 'Authorization: Bearer {operator}' {base}/metrics"));
                for line in preload::examples(&deployed, &base, &token, token_is_dev) {
                    say(format!("     {line}"));
                }
            }
        }
        // With `test` on the command line the kernel runs its self-tests and exits instead.
        Err(HarnessError::Exited { exit, .. }) if exit.is_pass() => {
            say(format!("QEMU ended before a ready line: {exit}"));
            return Ok(());
        }
        Err(HarnessError::Exited { exit, .. }) => {
            return Err(Failure(format!("QEMU ended before the kernel was ready: {exit}")));
        }
        Err(e) => return Err(e.into()),
    }

    // Serve until QEMU ends (or we are interrupted, which ends QEMU too).
    loop {
        if let Some(exit) = qemu.exit() {
            say(format!("QEMU ended: {exit}"));
            return match exit.verdict {
                Some(Verdict::Pass) => Ok(()),
                _ => Err(Failure(format!("the kernel did not end cleanly ({exit})"))),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one line on stdout that scripts wait for (prefix `pappus ready: `): the front door's URL
/// when the kernel serves HTTP on a forwarded port, then the tenant's token, the operator's
/// token (for `/metrics`), then memory figures.
pub fn ready_line(ready: &Ready, token: &str, operator: &str, port: Option<u16>) -> String {
    // A kernel that reports its CPUs (`cpus=N`) gets them named first.
    let cpus = match ready.fields.get("cpus") {
        Some(n) if n == "1" => "1 CPU, ".to_string(),
        Some(n) => format!("{n} CPUs, "),
        None => String::new(),
    };
    let memory = format!(
        "{cpus}memory {}/{} free, heap {}/{}",
        human_bytes(ready.mem_free),
        human_bytes(ready.mem_total),
        human_bytes(ready.heap_used),
        human_bytes(ready.heap_total),
    );
    match port {
        Some(port) => format!("pappus ready: http://127.0.0.1:{port} token={token} operator={operator} ({memory})"),
        None => format!("pappus ready: kernel up (no network) token={token} operator={operator} ({memory})"),
    }
}

/// The boot configuration `run` passes, the tenant token it prints and the operator token.
struct BootFiles {
    config: PathBuf,
    token: String,
    operator: String,
}

/// The boot configuration to pass and the tokens to print: the `--token-file` (a boot
/// configuration: `tenant <name> <token>` lines, docs/configuration.md), checked here so a bad
/// file fails before QEMU starts; or, without one, a fresh file with one `dev` tenant. Either
/// way the node gets an operator token (`operator <token>`, which opens `/metrics`): the file's
/// own, or a fresh one, added to a copy of the file (`target/pappus-run.conf`) or written into
/// `target/pappus-dev.conf`.
fn boot_config(token_file: Option<&str>) -> Result<BootFiles> {
    std::fs::create_dir_all(pappus_tests::target_dir())?;
    if let Some(file) = token_file {
        let path = PathBuf::from(file);
        let text = std::fs::read(&path).map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let config = model::BootConfig::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))?;
        let token = first_token(&text)
            .filter(|_| !config.tenants.is_empty())
            .ok_or_else(|| Failure(format!("token file {} names no tenant", path.display())))?;
        if let Some(operator) = operator_token(&text) {
            return Ok(BootFiles { config: path, token, operator });
        }
        let operator = fresh_token("pappus-ops-")?;
        let copy = pappus_tests::target_dir().join("pappus-run.conf");
        let mut with_operator = text;
        with_operator.extend_from_slice(
            format!("\n# Added by `cargo xtask run`: the operator token (/metrics).\noperator {operator}\n").as_bytes(),
        );
        std::fs::write(&copy, with_operator)?;
        say(format!(
            "token file {} has no operator line: booting {} with operator token {operator}",
            path.display(),
            copy.display()
        ));
        return Ok(BootFiles { config: copy, token, operator });
    }
    let token = fresh_token("pappus-dev-")?;
    let operator = fresh_token("pappus-ops-")?;
    let path = pappus_tests::target_dir().join("pappus-dev.conf");
    std::fs::write(
        &path,
        format!("# Made by `cargo xtask run` (no --token-file).\ntenant dev {token}\noperator {operator}\n"),
    )?;
    say(format!(
        "no --token-file: made a dev tenant `dev` with token {token} and operator token {operator} ({})",
        path.display()
    ));
    Ok(BootFiles { config: path, token, operator })
}

/// A fresh token: `prefix` and 32 hex digits from /dev/urandom.
fn fresh_token(prefix: &str) -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(format!("{prefix}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_format() {
        let ready = Ready::parse(
            "PAPPUS READY boot_ticks=1 tick_hz=1 mem_total=266973184 mem_free=233570304 \
             heap_total=33366016 heap_used=0",
        )
        .unwrap();
        assert_eq!(
            ready_line(&ready, "t0k", "0p5", None),
            "pappus ready: kernel up (no network) token=t0k operator=0p5 (memory 222.8MiB/254.6MiB free, heap 0B/31.8MiB)"
        );
        assert_eq!(
            ready_line(&ready, "t0k", "0p5", Some(8080)),
            "pappus ready: http://127.0.0.1:8080 token=t0k operator=0p5 (memory 222.8MiB/254.6MiB free, heap 0B/31.8MiB)"
        );
        let four = Ready::parse(
            "PAPPUS READY boot_ticks=1 tick_hz=1 mem_total=266973184 mem_free=233570304 \
             heap_total=33366016 heap_used=0 cpus=4 ip=10.0.2.15/24 port=8080",
        )
        .unwrap();
        assert_eq!(
            ready_line(&four, "t0k", "0p5", Some(8080)),
            "pappus ready: http://127.0.0.1:8080 token=t0k operator=0p5 (4 CPUs, memory 222.8MiB/254.6MiB free, heap 0B/31.8MiB)"
        );
    }

    #[test]
    fn tokens() {
        let a = fresh_token("pappus-dev-").unwrap();
        assert!(a.starts_with("pappus-dev-") && a.len() == 11 + 32, "{a}");
        assert_ne!(a, fresh_token("pappus-dev-").unwrap());
        let dir = pappus_tests::target_dir().join("xtask-unit");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tenants.conf");
        std::fs::write(
            &file,
            "# two tenants\ntenant alice alice-token-0123456789\ntenant bob bob-token-0123456789ab\n",
        )
        .unwrap();
        let files = boot_config(Some(file.to_str().unwrap())).unwrap();
        // No operator line: a copy with a fresh operator token is booted instead.
        assert_eq!(files.token, "alice-token-0123456789");
        assert!(files.operator.starts_with("pappus-ops-"), "{}", files.operator);
        assert_ne!(files.config, file);
        let copy = std::fs::read(&files.config).unwrap();
        let parsed = model::BootConfig::parse(&copy).unwrap();
        assert_eq!(parsed.tenants.len(), 2);
        assert_eq!(parsed.operator.authenticate(Some(format!("Bearer {}", files.operator).as_bytes())), Ok(()));
        // With one, the file itself is booted and its operator token printed.
        std::fs::write(&file, "tenant alice alice-token-0123456789\noperator ops-token-0123456789abc\n").unwrap();
        let files = boot_config(Some(file.to_str().unwrap())).unwrap();
        assert_eq!((files.config, files.operator.as_str()), (file.clone(), "ops-token-0123456789abc"));
        std::fs::write(&file, "\n# nobody\n").unwrap();
        assert!(boot_config(Some(file.to_str().unwrap())).is_err(), "a file without tenants");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert!(boot_config(Some(file.to_str().unwrap())).is_err(), "a bare token is not a configuration");
        assert!(boot_config(Some(dir.join("missing").to_str().unwrap())).is_err());
    }
}
