//! The kernel command line: space-separated `key` or `key=value` words.
//!
//! Unknown keys are kept, not rejected, so that later features can read their own keys
//! (`ip=`, `roles=` …) without this module knowing them; [`CommandLine::unknown`] lets the
//! kernel warn about words nobody claimed.

/// Verbosity of the kernel log, as given by `log=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "error" => Self::Error,
            "warn" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            "trace" => Self::Trace,
            _ => return None,
        })
    }
}

/// Keys the kernel itself understands. Everything else is left for later consumers.
pub const KNOWN_KEYS: &[&str] =
    &["log", "test", "selftest", "bootconfig", "compute", "netfault", "profile", "dhcp_lease", "etcd", "blobs"];

/// The shortest and longest sampling intervals `profile=` takes, in counter ticks.
pub const PROFILE_MIN_INTERVAL: u64 = 1_000;

/// What the profiler records ([`CommandLine::profile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The interrupted stack every this many counter ticks (`profile=N`), the I/O loop's
    /// turns that found no work left out.
    Every(u64),
    /// The same, every turn kept (`profile=wall:N`): without icount the counter follows the
    /// host's clock, and a turn that found nothing still took time (arming the timer to halt).
    Wall(u64),
    /// The stack of every heap allocation (`profile=alloc`): where a request's allocations are.
    Allocations,
}
pub const PROFILE_MAX_INTERVAL: u64 = 10_000_000_000;

/// Faults to inject on the NIC (`netfault=drop:PCT,corrupt:PCT[,seed:N]`): the chance, in
/// percent, that a frame (either direction) is dropped, or has one bit flipped; for testing
/// that TCP and everything above it recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetFault {
    pub drop_pct: u8,
    pub corrupt_pct: u8,
    /// The injector's random seed (default 1; never 0, which xorshift cannot leave).
    pub seed: u32,
}

/// A parsed view over the command line; borrows the original text.
#[derive(Clone, Copy, Debug)]
pub struct CommandLine<'a> {
    text: &'a str,
}

/// Errors a value on the command line can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    BadValue { key: &'a str, value: &'a str, expected: &'static str },
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadValue { key, value, expected } => {
                write!(f, "command line: {key}={value:?} is not valid, expected {expected}")
            }
        }
    }
}

impl<'a> CommandLine<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Every word as `(key, value)`; a bare word has no value.
    pub fn words(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.text.split_ascii_whitespace().map(|word| match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        })
    }

    /// The value of the last occurrence of `key` (later words override earlier ones, as
    /// boot loaders append to a default line). A bare `key` yields `Some("")`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words().filter(|(k, _)| *k == key).map(|(_, v)| v.unwrap_or("")).last()
    }

    /// `bootconfig=ADDR,LEN` (hex address, decimal or hex length): where a loader without a
    /// module list (QEMU's `-device loader` on aarch64) put the boot configuration.
    /// `Some(Err(..))` when the key is there but malformed.
    pub fn boot_config(&self) -> Option<Result<(u64, u64), &'a str>> {
        let value = self.get("bootconfig")?;
        let parse = |t: &str| match t.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => t.parse().ok(),
        };
        Some(match value.split_once(',') {
            Some((addr, len)) => match (parse(addr), parse(len)) {
                (Some(a), Some(l)) if l > 0 && a.checked_add(l).is_some() => Ok((a, l)),
                _ => Err(value),
            },
            None => Err(value),
        })
    }

    /// Whether a flag is set: `key`, `key=1`, `key=on`, `key=yes`, `key=true`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("" | "1" | "on" | "yes" | "true"))
    }

    /// The log level from `log=`, `Info` when absent.
    pub fn log_level(&self) -> Result<LogLevel, CmdlineError<'a>> {
        match self.get("log") {
            None => Ok(LogLevel::Info),
            Some(value) => LogLevel::parse(value).ok_or(CmdlineError::BadValue {
                key: "log",
                value,
                expected: "one of error, warn, info, debug, trace",
            }),
        }
    }

    /// How many CPUs run functions (`compute=N`): `None` when absent (every CPU but the I/O
    /// core), `Some(0)` for single-core mode, where the I/O core runs them between its passes.
    pub fn compute_cores(&self) -> Result<Option<usize>, CmdlineError<'a>> {
        match self.get("compute") {
            None => Ok(None),
            Some(value) => match value.parse::<usize>() {
                Ok(n) if n <= 4096 => Ok(Some(n)),
                _ => Err(CmdlineError::BadValue { key: "compute", value, expected: "a number of CPUs, 0..=4096" }),
            },
        }
    }

    /// `netfault=drop:PCT,corrupt:PCT[,seed:N]` (each part optional but at least one, any
    /// order, each at most once; percentages 0..=100, seed 1..=u32::MAX): `None` when absent.
    pub fn net_fault(&self) -> Result<Option<NetFault>, CmdlineError<'a>> {
        let Some(value) = self.get("netfault") else { return Ok(None) };
        let bad = CmdlineError::BadValue {
            key: "netfault",
            value,
            expected: "drop:PCT,corrupt:PCT[,seed:N] with percentages 0..=100",
        };
        let mut fault = NetFault { drop_pct: 0, corrupt_pct: 0, seed: 1 };
        let mut seen = [false; 3];
        for part in value.split(',') {
            let (name, number) = part.split_once(':').ok_or(bad)?;
            let slot = match name {
                "drop" => 0,
                "corrupt" => 1,
                "seed" => 2,
                _ => return Err(bad),
            };
            if core::mem::replace(&mut seen[slot], true) {
                return Err(bad);
            }
            match slot {
                2 => fault.seed = number.parse().ok().filter(|&s| s != 0).ok_or(bad)?,
                _ => {
                    let pct = number.parse::<u8>().ok().filter(|&p| p <= 100).ok_or(bad)?;
                    if slot == 0 { fault.drop_pct = pct } else { fault.corrupt_pct = pct }
                }
            }
        }
        Ok(Some(fault))
    }

    /// What the profiler records (`profile=N` or `profile=alloc`): `None` when absent (the
    /// profiler is off). A sampling interval is in counter ticks (under `-icount shift=0` on
    /// x86_64 a tick is one guest instruction), at least [`PROFILE_MIN_INTERVAL`], so sampling
    /// cannot swamp the CPU it samples.
    pub fn profile(&self) -> Result<Option<Profile>, CmdlineError<'a>> {
        let Some(value) = self.get("profile") else { return Ok(None) };
        if value == "alloc" {
            return Ok(Some(Profile::Allocations));
        }
        let (wall, interval) = match value.strip_prefix("wall:") {
            Some(interval) => (true, interval),
            None => (false, value),
        };
        match interval.parse::<u64>() {
            Ok(n) if (PROFILE_MIN_INTERVAL..=PROFILE_MAX_INTERVAL).contains(&n) => {
                Ok(Some(if wall { Profile::Wall(n) } else { Profile::Every(n) }))
            }
            _ => Err(CmdlineError::BadValue {
                key: "profile",
                value,
                expected: "a sampling interval in counter ticks, 1000..=10000000000, wall:N, or alloc",
            }),
        }
    }

    /// The longest DHCP lease the node accepts, in seconds (`dhcp_lease=N`, 4..=86400): the
    /// client renews at half of it. `None` when absent (the server's lease stands).
    pub fn dhcp_lease_secs(&self) -> Result<Option<u64>, CmdlineError<'a>> {
        let Some(value) = self.get("dhcp_lease") else { return Ok(None) };
        match value.parse::<u64>() {
            Ok(n) if (4..=86_400).contains(&n) => Ok(Some(n)),
            _ => Err(CmdlineError::BadValue { key: "dhcp_lease", value, expected: "seconds, 4..=86400" }),
        }
    }

    /// Whether the kernel runs its self-tests and exits (`test`).
    pub fn test_mode(&self) -> bool {
        self.flag("test")
    }

    /// A filter on self-test names (`selftest=frames,heap`); `None` runs them all.
    pub fn selftest_filter(&self) -> Option<&'a str> {
        self.get("selftest").filter(|v| !v.is_empty())
    }

    /// Words whose key no part of the kernel knows yet, given the keys later features claim.
    pub fn unknown<'k>(&self, extra_known: &'k [&'k str]) -> impl Iterator<Item = &'a str> + 'k
    where
        'a: 'k,
    {
        self.words().map(|(k, _)| k).filter(move |k| !KNOWN_KEYS.contains(k) && !extra_known.contains(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn empty_line_has_defaults() {
        let c = CommandLine::new("");
        assert_eq!(c.log_level(), Ok(LogLevel::Info));
        assert!(!c.test_mode());
        assert_eq!(c.words().count(), 0);
    }

    #[test]
    fn parses_keys_values_and_flags() {
        let c = CommandLine::new("  log=debug   test ip=10.0.2.15/24 ");
        assert_eq!(c.log_level(), Ok(LogLevel::Debug));
        assert!(c.test_mode());
        assert_eq!(c.get("ip"), Some("10.0.2.15/24"));
        assert_eq!(c.get("gw"), None);
        let unknown: Vec<_> = c.unknown(&[]).collect();
        assert_eq!(c.boot_config(), None);
        assert_eq!(unknown, ["ip"]);
        assert_eq!(c.unknown(&["ip"]).count(), 0);
    }

    #[test]
    fn last_word_wins() {
        let c = CommandLine::new("log=error test=0 log=trace");
        assert_eq!(c.log_level(), Ok(LogLevel::Trace));
        assert!(!c.test_mode());
    }

    #[test]
    fn bad_log_level_is_an_error_naming_the_value() {
        let c = CommandLine::new("log=loud");
        let err = c.log_level().unwrap_err();
        let text = std::format!("{err}");
        assert!(text.contains("log=\"loud\""), "{text}");
        assert!(text.contains("debug"), "{text}");
    }

    #[test]
    fn compute_cores() {
        assert_eq!(CommandLine::new("log=info").compute_cores(), Ok(None));
        assert_eq!(CommandLine::new("compute=0").compute_cores(), Ok(Some(0)));
        assert_eq!(CommandLine::new("compute=3").compute_cores(), Ok(Some(3)));
        for bad in ["compute", "compute=-1", "compute=many", "compute=5000"] {
            assert!(CommandLine::new(bad).compute_cores().is_err(), "{bad}");
        }
    }

    #[test]
    fn profile() {
        assert_eq!(CommandLine::new("log=info").profile(), Ok(None));
        assert_eq!(CommandLine::new("profile=10007").profile(), Ok(Some(Profile::Every(10_007))));
        assert_eq!(CommandLine::new("profile=1000").profile(), Ok(Some(Profile::Every(1000))));
        assert_eq!(CommandLine::new("profile=alloc").profile(), Ok(Some(Profile::Allocations)));
        assert_eq!(CommandLine::new("profile=wall:52009").profile(), Ok(Some(Profile::Wall(52_009))));
        for bad in [
            "profile",
            "profile=",
            "profile=999",
            "profile=0",
            "profile=-5",
            "profile=fast",
            "profile=10000000001",
            "profile=Alloc",
            "profile=wall:",
            "profile=wall:999",
            "profile=wall",
            "profile=wall:x",
        ] {
            let e = CommandLine::new(bad).profile().unwrap_err();
            assert!(std::format!("{e}").contains("profile="), "{bad}: {e}");
        }
        assert_eq!(CommandLine::new("profile=5000").unknown(&[]).count(), 0);
    }

    #[test]
    fn net_fault() {
        assert_eq!(CommandLine::new("log=info").net_fault(), Ok(None));
        let f = |text: &'static str| CommandLine::new(text).net_fault();
        assert_eq!(f("netfault=drop:5,corrupt:2"), Ok(Some(NetFault { drop_pct: 5, corrupt_pct: 2, seed: 1 })));
        assert_eq!(f("netfault=corrupt:100"), Ok(Some(NetFault { drop_pct: 0, corrupt_pct: 100, seed: 1 })));
        assert_eq!(f("netfault=seed:77,drop:0"), Ok(Some(NetFault { drop_pct: 0, corrupt_pct: 0, seed: 77 })));
        for bad in [
            "netfault",
            "netfault=",
            "netfault=drop",
            "netfault=drop:101",
            "netfault=drop:-1",
            "netfault=drop:5,drop:6",
            "netfault=loss:5",
            "netfault=seed:0",
            "netfault=drop:5,",
            "netfault=drop:5;corrupt:1",
        ] {
            let e = f(bad).unwrap_err();
            assert!(std::format!("{e}").contains("netfault="), "{bad}: {e}");
        }
        assert_eq!(CommandLine::new("netfault=drop:1").unknown(&[]).count(), 0);
    }

    #[test]
    fn dhcp_lease_cap() {
        assert_eq!(CommandLine::new("").dhcp_lease_secs(), Ok(None));
        assert_eq!(CommandLine::new("dhcp_lease=4").dhcp_lease_secs(), Ok(Some(4)));
        assert_eq!(CommandLine::new("dhcp_lease=86400").dhcp_lease_secs(), Ok(Some(86_400)));
        for bad in ["dhcp_lease=3", "dhcp_lease=86401", "dhcp_lease=x", "dhcp_lease="] {
            let e = CommandLine::new(bad).dhcp_lease_secs().unwrap_err();
            assert!(std::format!("{e}").contains("dhcp_lease="), "{bad}: {e}");
        }
        assert_eq!(CommandLine::new("dhcp_lease=60").unknown(&[]).count(), 0);
    }

    #[test]
    fn values_may_contain_equals() {
        let c = CommandLine::new("token=abc==");
        assert_eq!(c.get("token"), Some("abc=="));
    }

    #[test]
    fn selftest_filter() {
        assert_eq!(CommandLine::new("test selftest=heap").selftest_filter(), Some("heap"));
        assert_eq!(CommandLine::new("test selftest=").selftest_filter(), None);
    }

    #[test]
    fn boot_config_location() {
        let ok = CommandLine::new("bootconfig=0x48000000,4096");
        assert_eq!(ok.boot_config(), Some(Ok((0x4800_0000, 4096))));
        assert_eq!(ok.unknown(&[]).count(), 0);
        for bad in [
            "bootconfig=",
            "bootconfig=0x10",
            "bootconfig=zz,1",
            "bootconfig=0x10,0",
            "bootconfig=0xffffffffffffffff,2",
        ] {
            assert!(matches!(CommandLine::new(bad).boot_config(), Some(Err(_))), "{bad}");
        }
    }
}
