//! The qemu-test harness: boot a Pappus image under a QEMU profile, read its serial log line by
//! line, wait for markers, and judge how it ended.
//!
//! ```no_run
//! use pappus_tests::{Boot, Marker};
//! use std::time::Duration;
//!
//! let mut qemu = Boot::profile("x86_64-q35")
//!     .kernel(pappus_tests::kernel_image(pappus_qemu::Arch::X86_64).unwrap())
//!     .cmdline("test")
//!     .log_name("example")
//!     .spawn()
//!     .unwrap();
//! qemu.wait_for(Marker::starts_with("SELFTEST DONE"), Duration::from_secs(30)).unwrap();
//! assert!(qemu.wait_exit(Duration::from_secs(10)).unwrap().is_pass());
//! ```
//!
//! Every path kills QEMU: [`Qemu`]'s `Drop` kills and reaps it, and the child is started with
//! `PR_SET_PDEATHSIG(SIGKILL)`, so no QEMU outlives the process (strictly: the thread) that
//! started it, even when that process is killed.
//!
//! The serial log is kept in memory and teed to `target/qemu-logs/<name>.log`; every error
//! carries the tail of the log, so a failed assertion shows what the kernel said.

pub mod functions;
pub mod node;
pub mod openapi;
pub mod profile;
pub mod protocol;
pub mod sets;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use pappus_qemu::{Accel, AccelChoice, Arch, ExitCodes, HostProbe, Invocation, Overrides, RealHost, Verdict};

/// Set to `1` to run the QEMU integration tests (`cargo xtask test` does).
pub const QEMU_TESTS_ENV: &str = "PAPPUS_QEMU_TESTS";

/// How many lines of serial log an error message shows.
pub const TAIL_LINES: usize = 40;

/// The workspace root (this crate's parent folder).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target folder: `$CARGO_TARGET_DIR` when set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The Python virtual environment with the OpenAPI suite's tools (`cargo xtask test` makes it;
/// build/src/prereq.rs lists them): `target/pyenv`.
pub fn pyenv_dir() -> PathBuf {
    target_dir().join("pyenv")
}

/// A program of [`pyenv_dir`], or a panic that says how to get it: a suite that needs it never
/// passes, or skips, without it.
pub fn pyenv_tool(name: &str) -> PathBuf {
    let path = pyenv_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask test` (or `cargo xtask openapi`) installs the Python tools the OpenAPI suite needs into {} (build/src/prereq.rs, PYTHON_TOOLS)",
        path.display(),
        pyenv_dir().display()
    );
    path
}

/// The environment variable that names the kernel image for `arch`.
pub fn kernel_env_var(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "PAPPUS_KERNEL_X86_64",
        Arch::Aarch64 => "PAPPUS_KERNEL_AARCH64",
    }
}

/// Where `cargo xtask build` leaves the kernel for `arch`.
pub fn default_kernel_image(arch: Arch) -> PathBuf {
    target_dir().join(arch.kernel_target()).join("release").join("pappus-kernel")
}

/// The kernel image for `arch`: `$PAPPUS_KERNEL_<ARCH>` or the default build output. An error
/// (saying to run `cargo xtask build`) when it does not exist.
pub fn kernel_image(arch: Arch) -> Result<PathBuf, String> {
    let from_env = std::env::var(kernel_env_var(arch)).ok();
    kernel_image_at(arch, from_env.as_deref())
}

/// [`kernel_image`] with the environment variable's value given (relative paths are taken from
/// the workspace root).
pub fn kernel_image_at(arch: Arch, from_env: Option<&str>) -> Result<PathBuf, String> {
    let var = kernel_env_var(arch);
    let path = match from_env {
        Some(path) if !path.is_empty() => workspace_root().join(path),
        _ => default_kernel_image(arch),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no {arch} kernel image at {} (set {var} or run `cargo xtask build --arch {arch}` first)",
            path.display()
        ))
    }
}

/// Whether the QEMU integration tests are switched on ([`QEMU_TESTS_ENV`]=1). When they are not,
/// writes a skip line for `test` straight to stderr (past the test harness's capture) and
/// returns false.
pub fn qemu_tests_enabled(test: &str) -> bool {
    if std::env::var(QEMU_TESTS_ENV).is_ok_and(|v| v == "1") {
        return true;
    }
    let _ = writeln!(
        io::stderr(),
        "SKIP {test}: QEMU integration test; run it with `cargo xtask test` (or {QEMU_TESTS_ENV}=1)"
    );
    false
}

/// Whether `program` is an executable on `PATH` (or a path to one).
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return is_exe(Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| is_exe(&dir.join(program))))
}

/// Whether process `pid` is still running (a zombie counts as ended).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// What a line has to look like for [`Qemu::wait_for`].
pub struct Marker {
    description: String,
    matches: Box<dyn Fn(&str) -> bool + Send>,
}

impl Marker {
    /// A line containing `text`.
    pub fn contains(text: &str) -> Self {
        let owned = text.to_string();
        Marker { description: format!("a line containing {text:?}"), matches: Box::new(move |l| l.contains(&owned)) }
    }

    /// A line starting with `text`.
    pub fn starts_with(text: &str) -> Self {
        let owned = text.to_string();
        Marker {
            description: format!("a line starting with {text:?}"),
            matches: Box::new(move |l| l.starts_with(&owned)),
        }
    }

    /// A line containing each of `words`, in this order.
    pub fn words(words: &[&str]) -> Self {
        let owned: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Marker {
            description: format!("a line containing {words:?} in order"),
            matches: Box::new(move |line| {
                let mut rest = line;
                owned.iter().all(|w| match rest.find(w.as_str()) {
                    Some(at) => {
                        rest = &rest[at + w.len()..];
                        true
                    }
                    None => false,
                })
            }),
        }
    }

    /// Any predicate, described for error messages.
    pub fn predicate(description: &str, f: impl Fn(&str) -> bool + Send + 'static) -> Self {
        Marker { description: description.to_string(), matches: Box::new(f) }
    }

    pub fn matches(&self, line: &str) -> bool {
        (self.matches)(line)
    }

    pub fn description(&self) -> &str {
        &self.description
    }
}

impl From<&str> for Marker {
    fn from(text: &str) -> Self {
        Marker::contains(text)
    }
}

impl fmt::Debug for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// How QEMU ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit status, when it exited.
    pub code: Option<i32>,
    /// The signal, when a signal ended it.
    pub signal: Option<i32>,
    /// What the status means for the profile (`None` after a signal).
    pub verdict: Option<Verdict>,
}

impl Exit {
    fn from_status(status: ExitStatus, codes: ExitCodes) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = status.code();
        Exit { code, signal: status.signal(), verdict: code.map(|c| codes.verdict(c)) }
    }

    pub fn is_pass(&self) -> bool {
        self.verdict == Some(Verdict::Pass)
    }

    pub fn is_fail(&self) -> bool {
        self.verdict == Some(Verdict::Fail)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.verdict, self.code, self.signal) {
            (Some(Verdict::Pass), Some(code), _) => write!(f, "pass (status {code})"),
            (Some(Verdict::Fail), Some(code), _) => write!(f, "fail (status {code})"),
            (Some(Verdict::Crash(code)), _, _) => {
                write!(f, "crash (status {code}: neither the pass nor the fail status)")
            }
            (_, _, Some(signal)) => write!(f, "killed by signal {signal}"),
            _ => f.write_str("unknown exit"),
        }
    }
}

/// A harness error; its text carries the tail of the serial log.
#[derive(Debug)]
pub enum HarnessError {
    /// QEMU could not be started.
    Spawn { command: String, error: io::Error },
    /// The invocation could not be built (bad profile or overrides).
    Config(String),
    /// The wait ran out of time; QEMU was killed (`wait_exit`) or is still running (`wait_for`).
    Timeout { waiting_for: String, after: Duration, tail: String },
    /// QEMU ended before the marker came.
    Exited { waiting_for: String, exit: Exit, tail: String },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Spawn { command, error } => write!(f, "cannot start `{command}`: {error}"),
            HarnessError::Config(message) => f.write_str(message),
            HarnessError::Timeout { waiting_for, after, tail } => {
                write!(f, "timed out after {after:.1?} waiting for {waiting_for}\n{tail}")
            }
            HarnessError::Exited { waiting_for, exit, tail } => {
                write!(f, "QEMU ended ({exit}) while waiting for {waiting_for}\n{tail}")
            }
        }
    }
}

impl std::error::Error for HarnessError {}

/// Options for one QEMU process, whatever starts it.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Names the log file `target/qemu-logs/<name>.log`.
    pub log_name: String,
    /// The wall-clock limit for the whole boot; no wait goes past it.
    pub time_limit: Duration,
    /// Also copy each serial line to our stderr (for `cargo xtask run`).
    pub echo_to_stderr: bool,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions { log_name: "qemu".into(), time_limit: Duration::from_secs(120), echo_to_stderr: false }
    }
}

/// A boot to make: a profile, its overrides and the harness options.
#[derive(Debug, Clone)]
pub struct Boot {
    profile: String,
    overrides: Overrides,
    options: SpawnOptions,
}

impl Boot {
    /// A boot under the named profile (see `qemu/profiles.toml`).
    pub fn profile(name: &str) -> Self {
        Boot { profile: name.to_string(), overrides: Overrides::default(), options: SpawnOptions::default() }
    }

    /// A boot under `arch`'s default profile.
    pub fn arch(arch: Arch) -> Self {
        Boot::profile(arch.default_profile())
    }

    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.kernel = Some(path.into());
        self
    }

    /// The boot configuration file (tenants and tokens; docs/configuration.md).
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.config = Some(path.into());
        self
    }

    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.overrides.append = Some(cmdline.to_string());
        self
    }

    pub fn cpu(mut self, model: &str) -> Self {
        self.overrides.cpu = Some(model.to_string());
        self
    }

    pub fn smp(mut self, cpus: u32) -> Self {
        self.overrides.smp = Some(cpus);
        self
    }

    pub fn accel(mut self, accel: AccelChoice) -> Self {
        self.overrides.accel = accel;
        self
    }

    /// Deterministic instruction counting (`-icount shift=0`, TCG).
    pub fn icount(mut self, on: bool) -> Self {
        self.overrides.icount = on;
        self
    }

    pub fn host_port(mut self, port: u16) -> Self {
        self.overrides.host_port = Some(port);
        self
    }

    pub fn extra_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.overrides.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.options.time_limit = limit;
        self
    }

    pub fn log_name(mut self, name: &str) -> Self {
        self.options.log_name = name.to_string();
        self
    }

    pub fn echo_to_stderr(mut self, on: bool) -> Self {
        self.options.echo_to_stderr = on;
        self
    }

    /// The QEMU command line this boot would run, with the accelerator chosen for this host.
    pub fn invocation(&self) -> Result<Invocation, HarnessError> {
        let profile = pappus_qemu::profile(&self.profile).map_err(|e| HarnessError::Config(e.0))?;
        profile.invocation(&self.overrides, &RealHost).map_err(|e| HarnessError::Config(e.0))
    }

    /// Starts QEMU.
    pub fn spawn(self) -> Result<Qemu, HarnessError> {
        let invocation = self.invocation()?;
        Qemu::spawn_command(invocation.command(), &invocation.shell_line(), invocation.exit_codes(), self.options)
    }
}

#[derive(Default)]
struct LogState {
    /// Serial lines (QEMU's stdout).
    lines: Vec<String>,
    /// QEMU's own messages (its stderr).
    stderr: Vec<String>,
    stdout_closed: bool,
}

struct Shared {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A reader thread that panicked leaves the log as it was; keep going with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running (or ended) QEMU, with its serial log.
pub struct Qemu {
    child: Child,
    pid: u32,
    command: String,
    exit_codes: ExitCodes,
    started: Instant,
    deadline: Instant,
    log_path: PathBuf,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    exit: Option<Exit>,
}

impl fmt::Debug for Qemu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qemu").field("pid", &self.pid).field("command", &self.command).finish()
    }
}

impl Qemu {
    /// Starts `command` as QEMU (or a stand-in for it): stdin empty, stdout read as the serial
    /// log, stderr kept as QEMU's messages. `shell_line` is how error messages show the command.
    pub fn spawn_command(
        mut command: Command,
        shell_line: &str,
        exit_codes: ExitCodes,
        options: SpawnOptions,
    ) -> Result<Qemu, HarnessError> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        kill_with_parent(&mut command);

        let log_dir = target_dir().join("qemu-logs");
        let log_path = log_dir.join(format!("{}.log", sanitize(&options.log_name)));
        let log_file = std::fs::create_dir_all(&log_dir)
            .and_then(|()| File::create(&log_path))
            .map(|mut f| {
                let _ = writeln!(f, "# {shell_line}");
                Arc::new(Mutex::new(f))
            })
            .ok();

        let started = Instant::now();
        let mut child =
            command.spawn().map_err(|error| HarnessError::Spawn { command: shell_line.to_string(), error })?;
        let pid = child.id();
        let shared = Arc::new(Shared { state: Mutex::new(LogState::default()), changed: Condvar::new() });

        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let (shared, log, echo) = (shared.clone(), log_file.clone(), options.echo_to_stderr);
            readers.push(std::thread::spawn(move || read_lines(stdout, shared, log, echo, false)));
        }
        if let Some(stderr) = child.stderr.take() {
            let (shared, log, echo) = (shared.clone(), log_file, options.echo_to_stderr);
            readers.push(std::thread::spawn(move || read_lines(stderr, shared, log, echo, true)));
        }

        Ok(Qemu {
            child,
            pid,
            command: shell_line.to_string(),
            exit_codes,
            started,
            deadline: started + options.time_limit,
            log_path,
            shared,
            readers,
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line QEMU was started with.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The serial lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// QEMU's own messages (its stderr) so far.
    pub fn qemu_messages(&self) -> Vec<String> {
        self.shared.lock().stderr.clone()
    }

    /// The last `n` serial lines, plus QEMU's own messages, framed for an error message.
    pub fn tail(&self, n: usize) -> String {
        let state = self.shared.lock();
        let start = state.lines.len().saturating_sub(n);
        let mut out = format!(
            "--- serial log, last {} of {} lines (full log: {}) ---\n",
            state.lines.len() - start,
            state.lines.len(),
            self.log_path.display()
        );
        for line in &state.lines[start..] {
            out.push_str(line);
            out.push('\n');
        }
        if !state.stderr.is_empty() {
            out.push_str("--- QEMU stderr ---\n");
            for line in state.stderr.iter().rev().take(n).rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(&format!("--- command: {} ---", self.command));
        out
    }

    /// Waits until a serial line (any, from the first) matches `marker`, and returns it. Errors
    /// when `timeout` (capped by the boot's time limit) passes or QEMU ends first; QEMU keeps
    /// running after a timeout here (drop it, or call [`Qemu::kill`]).
    pub fn wait_for(&mut self, marker: impl Into<Marker>, timeout: Duration) -> Result<String, HarnessError> {
        let marker = marker.into();
        let deadline = (Instant::now() + timeout).min(self.deadline);
        let mut state = self.shared.lock();
        loop {
            if let Some(line) = state.lines.iter().find(|l| marker.matches(l)) {
                return Ok(line.clone());
            }
            let now = Instant::now();
            if state.stdout_closed || now >= deadline {
                break;
            }
            // Also wake now and then to notice an exit whose stdout stays open.
            let wait = (deadline - now).min(Duration::from_millis(200));
            state = self.shared.changed.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0;
            if self.exit.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
                drop(state);
                self.reap_after_exit();
                state = self.shared.lock();
                if let Some(line) = state.lines.iter().find(|l| marker.matches(l)) {
                    return Ok(line.clone());
                }
                break;
            }
        }
        let closed = state.stdout_closed;
        drop(state);
        let waiting_for = marker.description().to_string();
        if closed || self.exit.is_some() {
            let exit = self.wait_exit_quietly(Duration::from_secs(5));
            return match exit {
                Some(exit) => Err(HarnessError::Exited { waiting_for, exit, tail: self.tail(TAIL_LINES) }),
                None => Err(HarnessError::Timeout {
                    waiting_for,
                    after: self.started.elapsed(),
                    tail: self.tail(TAIL_LINES),
                }),
            };
        }
        Err(HarnessError::Timeout { waiting_for, after: self.started.elapsed(), tail: self.tail(TAIL_LINES) })
    }

    /// Waits for QEMU to end and says how it ended. After `timeout` (capped by the boot's time
    /// limit) QEMU is killed and this is an error.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Exit, HarnessError> {
        match self.wait_exit_quietly(timeout) {
            Some(exit) => Ok(exit),
            None => {
                let after = self.started.elapsed();
                self.kill();
                Err(HarnessError::Timeout { waiting_for: "QEMU to exit".into(), after, tail: self.tail(TAIL_LINES) })
            }
        }
    }

    /// Waits for the exit, and requires the pass status; the error shows the log tail.
    pub fn expect_pass(&mut self, timeout: Duration) -> Result<Exit, String> {
        self.expect_verdict(timeout, Verdict::Pass)
    }

    /// Waits for the exit, and requires the fail status; the error shows the log tail.
    pub fn expect_fail(&mut self, timeout: Duration) -> Result<Exit, String> {
        self.expect_verdict(timeout, Verdict::Fail)
    }

    fn expect_verdict(&mut self, timeout: Duration, want: Verdict) -> Result<Exit, String> {
        let exit = self.wait_exit(timeout).map_err(|e| e.to_string())?;
        if exit.verdict == Some(want) {
            Ok(exit)
        } else {
            Err(format!("expected QEMU to end with {want:?}, it ended with {exit}\n{}", self.tail(TAIL_LINES)))
        }
    }

    /// How QEMU ended, if it has.
    pub fn exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
            self.reap_after_exit();
        }
        self.exit
    }

    /// Kills QEMU (SIGKILL) and reaps it. Does nothing when it has already ended.
    pub fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let _ = self.child.kill();
        self.reap_after_exit();
    }

    fn wait_exit_quietly(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(exit) = self.exit() {
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// After the child ended (or was killed): collect its status and let the readers drain.
    fn reap_after_exit(&mut self) {
        if let Ok(status) = self.child.wait() {
            self.exit = Some(Exit::from_status(status, self.exit_codes));
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Has the kernel send SIGKILL to the child when the thread that started it ends, so QEMU never
/// outlives its harness, even one that is killed itself.
fn kill_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec; it only calls `prctl` and
    // `getppid`, which are async-signal-safe, and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would send the signal.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("the parent ended before QEMU started"));
            }
            Ok(())
        });
    }
}

fn read_lines(stream: impl Read, shared: Arc<Shared>, log: Option<Arc<Mutex<File>>>, echo: bool, is_stderr: bool) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        if let Some(log) = &log
            && let Ok(mut file) = log.lock()
        {
            let _ = if is_stderr { writeln!(file, "[qemu] {line}") } else { writeln!(file, "{line}") };
        }
        if echo {
            let _ = writeln!(io::stderr(), "{}{line}", if is_stderr { "[qemu] " } else { "" });
        }
        let mut state = shared.lock();
        if is_stderr {
            state.stderr.push(line);
        } else {
            state.lines.push(line);
        }
        drop(state);
        shared.changed.notify_all();
    }
    if !is_stderr {
        shared.lock().stdout_closed = true;
        shared.changed.notify_all();
    }
}

fn sanitize(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if cleaned.is_empty() { "qemu".into() } else { cleaned }
}

/// The self-test lines of a finished (or finishing) run.
#[derive(Debug, Clone, Default)]
pub struct SelftestReport {
    pub results: Vec<protocol::SelftestResult>,
    pub done: Option<protocol::SelftestDone>,
}

impl SelftestReport {
    pub fn from_lines(lines: &[String]) -> Self {
        SelftestReport {
            results: lines.iter().filter_map(|l| protocol::SelftestResult::parse(l)).collect(),
            done: lines.iter().find_map(|l| protocol::SelftestDone::parse(l)),
        }
    }

    pub fn passed(&self) -> impl Iterator<Item = &protocol::SelftestResult> {
        self.results.iter().filter(|r| r.passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = &protocol::SelftestResult> {
        self.results.iter().filter(|r| !r.passed)
    }

    pub fn result(&self, name: &str) -> Option<&protocol::SelftestResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// A suite's tests on both architectures: for each `name => body`, a test `name` that runs
/// `body(test_name, Arch::X86_64)` (q35) and a test `aarch64::name` that runs it on the
/// aarch64 `virt` node (`body("aarch64_name", Arch::Aarch64)`), so one test body serves both
/// and `cargo xtask test` picks the aarch64 ones by the `aarch64` in their names.
#[macro_export]
macro_rules! on_both_arches {
    ($($name:ident => $body:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            $body(stringify!($name), $crate::Arch::X86_64);
        })*
        mod aarch64 {
            use super::*;
            $(#[test]
            fn $name() {
                $body(concat!("aarch64_", stringify!($name)), $crate::Arch::Aarch64);
            })*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: ExitCodes = ExitCodes { pass: 33, fail: 35 };

    fn fake(script: &str, name: &str, limit: Duration) -> Qemu {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        let options =
            SpawnOptions { log_name: format!("harness-unit-{name}"), time_limit: limit, echo_to_stderr: false };
        Qemu::spawn_command(command, &format!("sh -c {script:?}"), X86, options).unwrap()
    }

    #[test]
    fn reads_lines_and_maps_pass() {
        let mut q = fake(
            "printf 'hello\\r\\nSELFTEST PASS a b\\n'; echo oops >&2; printf 'tail'; exit 33",
            "pass",
            Duration::from_secs(10),
        );
        assert_eq!(q.wait_for("SELFTEST PASS", Duration::from_secs(5)).unwrap(), "SELFTEST PASS a b");
        let exit = q.expect_pass(Duration::from_secs(5)).unwrap();
        assert_eq!(exit.code, Some(33));
        assert_eq!(q.lines(), ["hello", "SELFTEST PASS a b", "tail"]);
        assert_eq!(q.qemu_messages(), ["oops"]);
        let log = std::fs::read_to_string(q.log_path()).unwrap();
        // stdout and stderr are read by two threads, so QEMU's own line may land between these.
        assert!(log.contains("hello\n") && log.contains("SELFTEST PASS a b\n"), "{log}");
        assert!(log.contains("[qemu] oops"), "{log}");
    }

    #[test]
    fn maps_fail_and_crash() {
        let mut q = fake("exit 35", "fail", Duration::from_secs(10));
        assert!(q.expect_fail(Duration::from_secs(5)).is_ok());
        let mut q = fake("echo last words; exit 0", "crash", Duration::from_secs(10));
        let message = q.expect_pass(Duration::from_secs(5)).unwrap_err();
        assert!(message.contains("crash (status 0"), "{message}");
        assert!(message.contains("last words"), "the tail is in the message: {message}");
    }

    #[test]
    fn exit_before_marker_is_reported_with_tail() {
        let mut q = fake("echo booting; exit 35", "early-exit", Duration::from_secs(10));
        match q.wait_for("PAPPUS READY", Duration::from_secs(5)) {
            Err(HarnessError::Exited { exit, tail, .. }) => {
                assert!(exit.is_fail());
                assert!(tail.contains("booting"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeout_kills_and_reaps() {
        let mut q = fake("echo started; exec sleep 30", "timeout", Duration::from_secs(30));
        let pid = q.pid();
        q.wait_for("started", Duration::from_secs(5)).unwrap();
        let t = Instant::now();
        let e = q.wait_for("never", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, HarnessError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("started"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(process_alive(pid));
        let e = q.wait_exit(Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, HarnessError::Timeout { .. }));
        assert!(!process_alive(pid), "wait_exit's timeout kills QEMU");
        assert_eq!(q.exit().unwrap().signal, Some(9));
    }

    #[test]
    fn time_limit_caps_waits_and_drop_kills() {
        let mut q = fake("exec sleep 30", "limit", Duration::from_millis(300));
        let pid = q.pid();
        let t = Instant::now();
        assert!(q.wait_for("x", Duration::from_secs(20)).is_err());
        assert!(t.elapsed() < Duration::from_secs(3), "the boot's time limit caps the wait");
        drop(q);
        assert!(!process_alive(pid));
    }

    #[test]
    fn markers() {
        assert!(Marker::words(&["pappus", "aarch64"]).matches("pappus 0.1 (aarch64) booting"));
        assert!(!Marker::words(&["aarch64", "pappus"]).matches("pappus 0.1 (aarch64) booting"));
        assert!(Marker::starts_with("SELFTEST").matches("SELFTEST DONE"));
        assert!(!Marker::starts_with("DONE").matches("SELFTEST DONE"));
        assert!(Marker::predicate("even length", |l| l.len().is_multiple_of(2)).matches("ab"));
        assert_eq!(sanitize("a/b c"), "a_b_c");
    }

    #[test]
    fn selftest_report() {
        let lines: Vec<String> = [
            "x",
            "SELFTEST PASS frames 12 frames",
            "SELFTEST FAIL fail.deliberate asked to",
            "SELFTEST DONE passed=1 failed=1",
        ]
        .map(String::from)
        .to_vec();
        let r = SelftestReport::from_lines(&lines);
        assert_eq!(r.passed().count(), 1);
        assert_eq!(r.failed().next().unwrap().name, "fail.deliberate");
        assert_eq!(r.done, Some(protocol::SelftestDone { passed: 1, failed: 1 }));
        assert!(r.result("frames").is_some_and(|t| t.passed));
    }

    #[test]
    fn missing_kernel_says_what_to_run() {
        let e = kernel_image_at(Arch::Aarch64, Some("does/not/exist")).unwrap_err();
        assert!(e.contains("cargo xtask build"), "{e}");
    }
}
