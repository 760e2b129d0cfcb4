//! The node's own settings in the boot configuration: its address, its core roles and its
//! limits (docs/configuration.md). Each may also be given on the kernel command line, which
//! wins; without either, the node asks DHCP, uses every CPU but the I/O core for compute, and
//! keeps the control plane's default limits.
//!
//! ```text
//! ip       10.0.0.7/24       # a static address instead of DHCP
//! gateway  10.0.0.1
//! compute  6                 # compute cores (0: single-core mode)
//! limit    invocations 128   # see `Limit`
//! etcd     http://10.77.0.1:2379       # a fleet node: where the desired state is (docs/fleet.md)
//! blobs    http://10.77.0.1:8081/blobs # and the images it names
//! ```

use core::fmt;
use core::net::Ipv4Addr;

/// A limit the operator may set, by the name it has on a `limit` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Invocations held at once over all tenants (503 beyond): `limit invocations N`.
    Invocations,
    /// Functions one tenant may register: `limit functions N`.
    Functions,
    /// Compositions one tenant may register: `limit compositions N`.
    Compositions,
    /// The largest function image, in bytes: `limit image_bytes N`.
    ImageBytes,
    /// How long one invocation may take, in milliseconds: `limit invocation_ms N`.
    InvocationMs,
    /// Kernel heap bytes each tenant may hold (images, prepared modules, compositions,
    /// invocation data, wasm memory): `limit tenant_memory N`.
    TenantMemory,
    /// Frame bytes each tenant's native sandboxes may map at once: `limit tenant_sandbox_memory N`.
    TenantSandboxMemory,
    /// How many instances an application with adaptive inputs (`anyEach`, `anyKeyed`) aims at:
    /// `limit any_partitions N` (default: the compute cores).
    AnyPartitions,
}

impl Limit {
    pub const ALL: [Self; 8] = [
        Self::Invocations,
        Self::Functions,
        Self::Compositions,
        Self::ImageBytes,
        Self::InvocationMs,
        Self::TenantMemory,
        Self::TenantSandboxMemory,
        Self::AnyPartitions,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Invocations => "invocations",
            Self::Functions => "functions",
            Self::Compositions => "compositions",
            Self::ImageBytes => "image_bytes",
            Self::InvocationMs => "invocation_ms",
            Self::TenantMemory => "tenant_memory",
            Self::TenantSandboxMemory => "tenant_sandbox_memory",
            Self::AnyPartitions => "any_partitions",
        }
    }

    /// The accepted values: at least 1, and not absurd.
    pub const fn range(self) -> (u64, u64) {
        match self {
            Self::Invocations => (1, 65_536),
            Self::Functions | Self::Compositions => (1, 65_536),
            Self::ImageBytes => (1, 1 << 30),
            Self::InvocationMs => (1, 24 * 3_600_000),
            Self::TenantMemory | Self::TenantSandboxMemory => (1 << 20, 1 << 44),
            Self::AnyPartitions => (1, 65_536),
        }
    }
}

/// What a `limit`, `ip`, `gateway` or `compute` line got wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingError {
    /// `ip` without `A.B.C.D/N`.
    BadAddress,
    BadGateway,
    BadCompute,
    /// `limit` with a name not in [`Limit::ALL`].
    UnknownLimit,
    BadLimitValue(Limit),
    ExtraField,
    /// `etcd` or `blobs` without an `http://` URL (the setting's name).
    BadUrl(&'static str),
    /// The same setting again; the first is on `first_line`.
    Duplicate {
        setting: &'static str,
        first_line: usize,
    },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress => f.write_str("bad address: expected `ip <a.b.c.d>/<prefix>`, e.g. `ip 10.0.0.7/24`"),
            Self::BadGateway => f.write_str("bad gateway: expected `gateway <a.b.c.d>`"),
            Self::BadCompute => f.write_str("bad core count: expected `compute <N>`, N in 0..=4096"),
            Self::UnknownLimit => f.write_str(
                "unknown limit (expected one of invocations, functions, compositions, image_bytes, invocation_ms, \
                 tenant_memory, tenant_sandbox_memory, any_partitions)",
            ),
            Self::BadLimitValue(limit) => {
                let (lo, hi) = limit.range();
                write!(f, "bad value for limit {}: expected a whole number in {lo}..={hi}", limit.name())
            }
            Self::ExtraField => f.write_str("unexpected text after the value"),
            Self::BadUrl(setting) => write!(
                f,
                "bad URL: expected `{setting} http://<a.b.c.d>:<port>[/path]` (at most {MAX_URL_BYTES} bytes)"
            ),
            Self::Duplicate { setting, first_line } => write!(f, "{setting} already set on line {first_line}"),
        }
    }
}

/// The node settings a configuration gave (each `None` when it did not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSettings {
    /// A static address and prefix length.
    pub address: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub compute_cores: Option<usize>,
    /// A fleet node's etcd client URL (`etcd http://A.B.C.D:2379`).
    pub etcd: Option<alloc::string::String>,
    /// A fleet node's blob server URL (`blobs http://A.B.C.D:P/path`).
    pub blobs: Option<alloc::string::String>,
    limits: [Option<u64>; Limit::ALL.len()],
    /// Where each setting was given, for duplicate errors: address, gateway, compute, limits,
    /// etcd, blobs.
    lines: [usize; 5 + Limit::ALL.len()],
}

/// The longest `etcd` or `blobs` URL.
pub const MAX_URL_BYTES: usize = 200;

/// Checks an `etcd` or `blobs` URL (`setting`): `http://`, a host, printable ASCII, not too long.
pub fn check_fleet_url(setting: &'static str, value: Option<&str>) -> Result<alloc::string::String, SettingError> {
    let url = value.ok_or(SettingError::BadUrl(setting))?;
    let rest = url.strip_prefix("http://").ok_or(SettingError::BadUrl(setting))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.len() > MAX_URL_BYTES
        || !url.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(SettingError::BadUrl(setting));
    }
    Ok(alloc::string::String::from(url.trim_end_matches('/')))
}

impl NodeSettings {
    /// The value a `limit` line gave.
    pub fn limit(&self, limit: Limit) -> Option<u64> {
        self.limits[limit as usize]
    }

    /// Parses the fields after `ip`, `gateway`, `compute` or `limit` (`directive`).
    pub(crate) fn parse<'a>(
        &mut self,
        directive: &str,
        mut fields: impl Iterator<Item = &'a str>,
        line: usize,
    ) -> Result<(), SettingError> {
        let value = fields.next();
        let (slot, setting) = match directive {
            "ip" => {
                let (addr, prefix) = value.and_then(|v| v.split_once('/')).ok_or(SettingError::BadAddress)?;
                let addr = addr.parse::<Ipv4Addr>().map_err(|_| SettingError::BadAddress)?;
                let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= 32).ok_or(SettingError::BadAddress)?;
                self.address = Some((addr, prefix));
                (0, "ip")
            }
            "gateway" => {
                self.gateway = Some(value.and_then(|v| v.parse().ok()).ok_or(SettingError::BadGateway)?);
                (1, "gateway")
            }
            "compute" => {
                let n = value.and_then(|v| v.parse::<usize>().ok()).filter(|n| *n <= 4096);
                self.compute_cores = Some(n.ok_or(SettingError::BadCompute)?);
                (2, "compute")
            }
            "etcd" => {
                self.etcd = Some(check_fleet_url("etcd", value)?);
                (3, "etcd")
            }
            "blobs" => {
                self.blobs = Some(check_fleet_url("blobs", value)?);
                (4, "blobs")
            }
            _ => {
                let limit =
                    Limit::ALL.into_iter().find(|l| Some(l.name()) == value).ok_or(SettingError::UnknownLimit)?;
                let (lo, hi) = limit.range();
                let n = fields.next().and_then(|v| v.parse::<u64>().ok()).filter(|n| (lo..=hi).contains(n));
                self.limits[limit as usize] = Some(n.ok_or(SettingError::BadLimitValue(limit))?);
                (5 + limit as usize, limit.name())
            }
        };
        if fields.next().is_some() {
            return Err(SettingError::ExtraField);
        }
        match self.lines[slot] {
            0 => {
                self.lines[slot] = line;
                Ok(())
            }
            first_line => Err(SettingError::Duplicate { setting, first_line }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<NodeSettings, (usize, SettingError)> {
        let mut s = NodeSettings::default();
        for (i, line) in lines.iter().enumerate() {
            let mut fields = line.split_ascii_whitespace();
            let directive = fields.next().unwrap();
            s.parse(directive, fields, i + 1).map_err(|e| (i + 1, e))?;
        }
        Ok(s)
    }

    #[test]
    fn good_settings() {
        let s = parse(&[
            "ip 10.0.0.7/24",
            "gateway 10.0.0.1",
            "compute 0",
            "limit invocations 128",
            "limit invocation_ms 5000",
            "etcd http://10.77.0.1:2379/",
            "blobs http://10.77.0.1:8081/blobs",
        ])
        .unwrap();
        assert_eq!(s.etcd.as_deref(), Some("http://10.77.0.1:2379"));
        assert_eq!(s.blobs.as_deref(), Some("http://10.77.0.1:8081/blobs"));
        assert_eq!(s.address, Some((Ipv4Addr::new(10, 0, 0, 7), 24)));
        assert_eq!(s.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.compute_cores, Some(0));
        assert_eq!(
            (s.limit(Limit::Invocations), s.limit(Limit::InvocationMs), s.limit(Limit::Functions)),
            (Some(128), Some(5000), None)
        );
        assert_eq!(parse(&[]).unwrap(), NodeSettings::default());
    }

    #[test]
    fn bad_settings_say_what() {
        for (line, want) in [
            ("ip 10.0.0.7", SettingError::BadAddress),
            ("ip 10.0.0.7/33", SettingError::BadAddress),
            ("ip", SettingError::BadAddress),
            ("gateway ten", SettingError::BadGateway),
            ("compute -1", SettingError::BadCompute),
            ("compute 5000", SettingError::BadCompute),
            ("limit bananas 3", SettingError::UnknownLimit),
            ("limit invocations 0", SettingError::BadLimitValue(Limit::Invocations)),
            ("limit invocations", SettingError::BadLimitValue(Limit::Invocations)),
            ("compute 2 3", SettingError::ExtraField),
            ("etcd", SettingError::BadUrl("etcd")),
            ("etcd https://10.0.0.1:2379", SettingError::BadUrl("etcd")),
            ("blobs http://", SettingError::BadUrl("blobs")),
            ("blobs http:///x", SettingError::BadUrl("blobs")),
        ] {
            assert_eq!(parse(&[line]).unwrap_err(), (1, want), "{line}");
        }
        let dup = parse(&["compute 1", "limit functions 3", "compute 2"]).unwrap_err();
        assert_eq!(dup, (3, SettingError::Duplicate { setting: "compute", first_line: 1 }));
        assert_eq!(alloc::format!("{}", dup.1), "compute already set on line 1");
    }
}
