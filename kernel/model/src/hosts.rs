//! The host table: names the `http` communication function may fetch from, each with its IPv4
//! address, declared in the boot configuration as `host <name> <a.b.c.d>` lines.
//!
//! A static table comes first because a node may have no DNS server at all, and because an
//! operator may want to pin what a name means for every tenant's functions.
//!
//! - A name is a DNS host name: 1..=253 bytes of dot-separated labels, each 1..=63 of
//!   `[A-Za-z0-9-]`, neither starting nor ending with `-`. Letter case does not matter (names
//!   are kept in lower case). An IPv4 literal is refused as a name: it already means itself.
//! - The address is four decimal octets (`10.0.2.2`), without leading zeros.
//! - Names are unique; at most [`MAX_HOSTS`] of them.
//!
//! `dns <a.b.c.d>` names a DNS server, asked (over UDP, by smoltcp) for the names the table does
//! not hold. At most one: the table is the operator's word, DNS the fallback.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

/// The most `host` lines one configuration may hold.
pub const MAX_HOSTS: usize = 4096;
/// The longest host name (RFC 1035's limit on a name's text form).
pub const MAX_HOST_NAME_LEN: usize = 253;

/// What is wrong with a `host` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostLineError {
    MissingName,
    MissingAddress,
    /// Something follows the address.
    ExtraField,
    /// The name breaks a rule; the text says which.
    BadName(&'static str),
    /// The address is not an IPv4 address in dotted decimal.
    BadAddress,
    /// This name was already declared on `first_line`.
    DuplicateName {
        first_line: usize,
    },
    TooManyHosts,
    /// A second `dns` line; the first is on `first_line`.
    DuplicateDns {
        first_line: usize,
    },
}

impl fmt::Display for HostLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingName => f.write_str("missing host name (expected `host <name> <a.b.c.d>`)"),
            Self::MissingAddress => f.write_str("missing address (expected `host <name> <a.b.c.d>`)"),
            Self::ExtraField => f.write_str("unexpected text after the host address"),
            Self::BadName(why) => write!(f, "bad host name: {why}"),
            Self::BadAddress => f.write_str("bad host address: expected an IPv4 address such as 10.0.2.2"),
            Self::DuplicateName { first_line } => write!(f, "host name already declared on line {first_line}"),
            Self::TooManyHosts => write!(f, "more than {MAX_HOSTS} hosts"),
            Self::DuplicateDns { first_line } => {
                write!(f, "a DNS server is already given on line {first_line} (at most one)")
            }
        }
    }
}

struct Host {
    name: String,
    address: Ipv4Addr,
    line: usize,
}

/// Host names and their IPv4 addresses, from the boot configuration.
#[derive(Default)]
pub struct HostTable {
    hosts: Vec<Host>,
    /// The DNS server and the line that named it.
    dns: Option<(Ipv4Addr, usize)>,
}

impl fmt::Debug for HostTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entries(self.hosts.iter().map(|h| (h.name.as_str(), h.address)));
        if let Some((dns, _)) = self.dns {
            map.entry(&"(dns)", &dns);
        }
        map.finish()
    }
}

impl HostTable {
    /// Adds `name`, which must follow the module's rules and not be declared yet. Line numbers
    /// in errors are 0 for entries added this way.
    pub fn insert(&mut self, name: &str, address: Ipv4Addr) -> Result<(), HostLineError> {
        self.add(name, address, 0)
    }

    fn add(&mut self, name: &str, address: Ipv4Addr, line: usize) -> Result<(), HostLineError> {
        check_host_name(name).map_err(HostLineError::BadName)?;
        let name = name.to_ascii_lowercase();
        if let Some(seen) = self.hosts.iter().find(|h| h.name == name) {
            return Err(HostLineError::DuplicateName { first_line: seen.line });
        }
        if self.hosts.len() >= MAX_HOSTS {
            return Err(HostLineError::TooManyHosts);
        }
        self.hosts.push(Host { name, address, line });
        Ok(())
    }

    /// Adds the host of a `host` line (`fields` follow the directive) on line `number`.
    pub(crate) fn parse_host<'a>(
        &mut self,
        mut fields: impl Iterator<Item = &'a str>,
        number: usize,
    ) -> Result<(), HostLineError> {
        let name = fields.next().ok_or(HostLineError::MissingName)?;
        let address = fields.next().ok_or(HostLineError::MissingAddress)?;
        if fields.next().is_some() {
            return Err(HostLineError::ExtraField);
        }
        let address = address.parse::<Ipv4Addr>().map_err(|_| HostLineError::BadAddress)?;
        self.add(name, address, number)
    }

    /// Adds the DNS server of a `dns` line (`fields` follow the directive) on line `number`.
    pub(crate) fn parse_dns<'a>(
        &mut self,
        mut fields: impl Iterator<Item = &'a str>,
        number: usize,
    ) -> Result<(), HostLineError> {
        let address = fields.next().ok_or(HostLineError::MissingAddress)?;
        if fields.next().is_some() {
            return Err(HostLineError::ExtraField);
        }
        let address = address.parse::<Ipv4Addr>().map_err(|_| HostLineError::BadAddress)?;
        if let Some((_, first_line)) = self.dns {
            return Err(HostLineError::DuplicateDns { first_line });
        }
        self.dns = Some((address, number));
        Ok(())
    }

    /// The DNS server for names the table does not hold, if one is configured.
    pub fn dns_server(&self) -> Option<Ipv4Addr> {
        self.dns.map(|(address, _)| address)
    }

    /// Sets (or, with `None`, removes) the DNS server.
    pub fn set_dns_server(&mut self, server: Option<Ipv4Addr>) {
        self.dns = server.map(|address| (address, 0));
    }

    /// The address of `name` (in any letter case), if the table has it.
    pub fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.address)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// All entries, in configuration order (names in lower case).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.hosts.iter().map(|h| (h.name.as_str(), h.address))
    }
}

/// Whether `name` is a DNS host name (module docs); the reason when it is not.
pub fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Err("longer than 253 bytes");
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Err("an IPv4 address is not a name");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a dot at either end)");
        }
        if label.len() > 63 {
            return Err("a label longer than 63 bytes");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("only letters, digits, `-` and `.` are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with `-`");
        }
    }
    Ok(())
}
