//! The boot configuration: the tenants with their tokens, the host table of the `http`
//! communication function, and the node's own settings (address, core roles, limits). One
//! directive per line (docs/configuration.md):
//!
//! ```text
//! tenant  alice pappus-3f9c2a7d1e6b4c8f0a5d9e2b7c4f1a6d
//! operator ops-7e1f0c9a2b4d6e8f1a3c5b7d9e0f2a4c   # opens /metrics
//! host    docs.internal 10.0.2.2     # names the http function may fetch from
//! dns     10.0.2.3                   # and where it asks for other names
//! ip      10.0.0.7/24                # a static address instead of DHCP
//! gateway 10.0.0.1
//! compute 6                          # compute cores (0: single-core mode)
//! limit   invocations 128            # invocations, functions, compositions, image_bytes, invocation_ms
//! etcd    http://10.77.0.1:2379      # a fleet node (docs/fleet.md): the desired state
//! blobs   http://10.77.0.1:8081/blobs  # and the images it names
//! ```
//!
//! `#` starts a comment, blank lines are ignored, fields are separated by spaces or tabs, lines
//! end in `\n` or `\r\n`, the text is UTF-8 and at most [`MAX_CONFIG_BYTES`] long. The first
//! wrong line refuses the whole file, and the error names it.

use crate::hosts::HostTable;
use crate::name::shorten;
use crate::settings::NodeSettings;
use crate::tenant::{ConfigError, ConfigErrorKind, MAX_CONFIG_BYTES, OperatorToken, TokenTable};

/// Everything the boot configuration declares.
#[derive(Debug, Default)]
pub struct BootConfig {
    pub tenants: TokenTable,
    /// The operator's token (`operator <token>`), for `/metrics`.
    pub operator: OperatorToken,
    pub hosts: HostTable,
    pub node: NodeSettings,
}

impl BootConfig {
    /// Parses a configuration (module docs). An empty one gives no tenants and no hosts.
    pub fn parse(config: &[u8]) -> Result<Self, ConfigError> {
        if config.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError { line: 0, kind: ConfigErrorKind::TooLarge { len: config.len() } });
        }
        let mut parsed = Self::default();
        // The tokens' tags are keyed by the whole text: a key as secret as the tokens in it.
        parsed.tenants.set_tag_key(crate::tenant::TokenTag::from_secret(config));
        for (index, line) in config.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            parsed.parse_line(line, number).map_err(|kind| ConfigError { line: number, kind })?;
        }
        Ok(parsed)
    }

    fn parse_line(&mut self, line: &[u8], number: usize) -> Result<(), ConfigErrorKind> {
        let line = core::str::from_utf8(line).map_err(|_| ConfigErrorKind::InvalidUtf8)?;
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            None => Ok(()),
            Some("tenant") => self.tenants.parse_tenant(fields, number, |digest| self.operator.line_if(digest)),
            Some("operator") => self.operator.parse_operator(fields, number, &self.tenants),
            Some("host") => self.hosts.parse_host(fields, number).map_err(ConfigErrorKind::Host),
            Some("dns") => self.hosts.parse_dns(fields, number).map_err(ConfigErrorKind::Host),
            Some(setting @ ("ip" | "gateway" | "compute" | "limit" | "etcd" | "blobs")) => {
                self.node.parse(setting, fields, number).map_err(ConfigErrorKind::Setting)
            }
            Some(other) => Err(ConfigErrorKind::UnknownDirective(shorten(other, 32))),
        }
    }
}
