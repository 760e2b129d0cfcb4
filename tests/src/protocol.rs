//! The lines the kernel prints on its serial console, parsed.
//!
//! - banner: `pappus <version> (<arch>) booting via <protocol> cmdline="<...>"`
//! - log: `[    0.001234] INFO  <target>: message`
//! - self-tests: `SELFTEST PASS <name> <detail>`, `SELFTEST FAIL <name> <reason>`, then
//!   `SELFTEST DONE passed=<n> failed=<m>`
//! - ready: `PAPPUS READY boot_ticks=<N> tick_hz=<F> mem_total=<bytes> mem_free=<bytes>
//!   heap_total=<bytes> heap_used=<bytes> cpus=<n>` (and more `key=value` fields)

use std::collections::BTreeMap;

/// The prefix of the ready line.
pub const READY_PREFIX: &str = "PAPPUS READY";
/// The prefix of the line that ends a self-test run.
pub const SELFTEST_DONE_PREFIX: &str = "SELFTEST DONE";

/// `pappus <version> (<arch>) booting via <protocol> cmdline="<...>"`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    pub version: String,
    pub arch: String,
    pub protocol: String,
    pub cmdline: String,
}

impl Banner {
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("pappus ")?;
        let (version, rest) = rest.split_once(" (")?;
        let (arch, rest) = rest.split_once(") booting via ")?;
        let (protocol, rest) = rest.split_once(" cmdline=\"")?;
        let cmdline = rest.strip_suffix('"')?;
        Some(Banner {
            version: version.to_string(),
            arch: arch.to_string(),
            protocol: protocol.to_string(),
            cmdline: cmdline.to_string(),
        })
    }
}

/// One self-test's result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestResult {
    pub passed: bool,
    pub name: String,
    /// The detail (for a pass) or the reason (for a failure); may be empty.
    pub detail: String,
}

impl SelftestResult {
    pub fn parse(line: &str) -> Option<Self> {
        let (passed, rest) = if let Some(rest) = line.strip_prefix("SELFTEST PASS ") {
            (true, rest)
        } else {
            (false, line.strip_prefix("SELFTEST FAIL ")?)
        };
        let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        if name.is_empty() {
            return None;
        }
        Some(SelftestResult { passed, name: name.to_string(), detail: detail.trim().to_string() })
    }
}

/// `SELFTEST DONE passed=<n> failed=<m>`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelftestDone {
    pub passed: u64,
    pub failed: u64,
}

impl SelftestDone {
    pub fn parse(line: &str) -> Option<Self> {
        let fields = key_values(line.strip_prefix(SELFTEST_DONE_PREFIX)?);
        Some(SelftestDone { passed: fields.get("passed")?.parse().ok()?, failed: fields.get("failed")?.parse().ok()? })
    }
}

/// The ready line, with the counters it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// Counter ticks from the kernel's first instruction to the ready line (x86: TSC;
    /// aarch64: CNTVCT at `tick_hz`).
    pub boot_ticks: u64,
    pub tick_hz: f64,
    pub mem_total: u64,
    pub mem_free: u64,
    pub heap_total: u64,
    pub heap_used: u64,
    /// Every `key=value` on the line, the ones above included.
    pub fields: BTreeMap<String, String>,
}

impl Ready {
    pub fn parse(line: &str) -> Option<Self> {
        let fields = key_values(line.strip_prefix(READY_PREFIX)?);
        let int = |key: &str| fields.get(key)?.parse::<u64>().ok();
        Some(Ready {
            boot_ticks: int("boot_ticks")?,
            tick_hz: fields.get("tick_hz")?.parse::<f64>().ok().filter(|hz| *hz >= 0.0)?,
            mem_total: int("mem_total")?,
            mem_free: int("mem_free")?,
            heap_total: int("heap_total")?,
            heap_used: int("heap_used")?,
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
    }

    /// CPUs online (`cpus=`), where the kernel reports them.
    pub fn cpus(&self) -> Option<u64> {
        self.fields.get("cpus")?.parse().ok()
    }

    /// Guest instructions from the first kernel instruction to ready, when the guest ran under
    /// `-icount shift=0`: on x86 the TSC ticks once per instruction; on aarch64 the virtual
    /// counter runs at `tick_hz` while one instruction takes one nanosecond.
    pub fn icount_instructions(&self, arch: pappus_qemu::Arch) -> u64 {
        match arch {
            pappus_qemu::Arch::X86_64 => self.boot_ticks,
            pappus_qemu::Arch::Aarch64 if self.tick_hz > 0.0 => {
                (self.boot_ticks as f64 * 1e9 / self.tick_hz).round() as u64
            }
            pappus_qemu::Arch::Aarch64 => 0,
        }
    }
}

/// A log line: `[    0.001234] INFO  <target>: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub seconds: f64,
    pub level: String,
    pub target: String,
    pub message: String,
}

impl LogLine {
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix('[')?;
        let (time, rest) = rest.split_once(']')?;
        let seconds = time.trim().parse().ok()?;
        let rest = rest.trim_start();
        let (level, rest) = rest.split_once(' ')?;
        if !matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE") {
            return None;
        }
        let (target, message) = rest.trim_start().split_once(": ")?;
        Some(LogLine { seconds, level: level.to_string(), target: target.to_string(), message: message.to_string() })
    }
}

fn key_values(text: &str) -> BTreeMap<&str, &str> {
    text.split_ascii_whitespace().filter_map(|word| word.split_once('=')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pappus_qemu::Arch;

    #[test]
    fn banner() {
        let b = Banner::parse(r#"pappus 0.1.0 (x86_64) booting via pvh cmdline="test log=debug""#).unwrap();
        assert_eq!(b.version, "0.1.0");
        assert_eq!(b.arch, "x86_64");
        assert_eq!(b.protocol, "pvh");
        assert_eq!(b.cmdline, "test log=debug");
        assert_eq!(Banner::parse(r#"pappus 0.1.0 (aarch64) booting via dtb cmdline="""#).unwrap().cmdline, "");
        assert!(Banner::parse("pappus is great").is_none());
    }

    #[test]
    fn selftest_lines() {
        let p = SelftestResult::parse("SELFTEST PASS heap.stress 1000 allocations").unwrap();
        assert!(p.passed);
        assert_eq!((p.name.as_str(), p.detail.as_str()), ("heap.stress", "1000 allocations"));
        let f = SelftestResult::parse("SELFTEST FAIL fail.deliberate").unwrap();
        assert!(!f.passed);
        assert_eq!((f.name.as_str(), f.detail.as_str()), ("fail.deliberate", ""));
        assert!(SelftestResult::parse("SELFTEST DONE passed=1 failed=0").is_none());
        assert!(SelftestResult::parse("SELFTEST PASS ").is_none());
        assert_eq!(SelftestDone::parse("SELFTEST DONE passed=7 failed=0"), Some(SelftestDone { passed: 7, failed: 0 }));
        assert_eq!(SelftestDone::parse("SELFTEST DONE passed=x failed=0"), None);
    }

    #[test]
    fn ready_line() {
        let r = Ready::parse(
            "PAPPUS READY boot_ticks=123456 tick_hz=62500000 mem_total=268435456 mem_free=260000000 \
             heap_total=4194304 heap_used=1024",
        )
        .unwrap();
        assert_eq!(r.boot_ticks, 123456);
        assert_eq!(r.mem_total, 268435456);
        assert_eq!(r.heap_used, 1024);
        assert_eq!(r.icount_instructions(Arch::X86_64), 123456);
        assert_eq!(r.icount_instructions(Arch::Aarch64), 123456 * 16);
        assert!(Ready::parse("PAPPUS READY boot_ticks=1").is_none());
        let float_hz =
            Ready::parse("PAPPUS READY boot_ticks=1 tick_hz=2.5e9 mem_total=1 mem_free=1 heap_total=1 heap_used=0")
                .unwrap();
        assert_eq!(float_hz.tick_hz, 2.5e9);
        assert_eq!(float_hz.cpus(), None);
        let four = Ready::parse(
            "PAPPUS READY boot_ticks=1 tick_hz=1 mem_total=1 mem_free=1 heap_total=1 heap_used=0 cpus=4 port=8080",
        )
        .unwrap();
        assert_eq!(four.cpus(), Some(4));
    }

    #[test]
    fn log_line() {
        let l = LogLine::parse("[    0.001234] INFO  kernel::mm: 255 MiB usable").unwrap();
        assert_eq!(l.seconds, 0.001234);
        assert_eq!((l.level.as_str(), l.target.as_str()), ("INFO", "kernel::mm"));
        assert_eq!(l.message, "255 MiB usable");
        assert!(LogLine::parse("[x] INFO a: b").is_none());
        assert!(LogLine::parse("[ 1.0] NOTE a: b").is_none());
    }
}
