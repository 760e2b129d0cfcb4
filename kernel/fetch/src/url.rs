//! `http://host[:port]/path?query` URLs, and finding the address of their host.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;
use core::net::Ipv4Addr;

use model::{HostTable, check_host_name};

use crate::error::{ErrorClass, FetchError};

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ipv4(Ipv4Addr),
    /// A host name, in lower case.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// An `http` URL, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: Host,
    pub port: u16,
    /// The path and query, starting with `/` (the fragment dropped): the request target.
    pub target: String,
}

impl Url {
    /// Parses `http://host[:port][/path][?query][#fragment]`. The scheme and host are matched in
    /// any letter case; `https`, other schemes, user information and IPv6 literals are refused,
    /// as are spaces, control and non-ASCII characters (percent-encode those).
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let bad = |why: &str| FetchError::bad_request(format!("{why} (URL {})", shorten(text)));
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("the URL must start with http://"))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(bad("https is not supported, only http://"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("only http:// URLs are supported"));
        }
        if let Some(b) = text.bytes().find(|&b| b <= b' ' || b >= 0x7f) {
            return Err(bad(if b.is_ascii() {
                "a space or control character in the URL"
            } else {
                "a non-ASCII character in the URL (percent-encode it)"
            }));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target.as_bytes().first() {
            None => "/".to_string(),
            Some(b'?') => format!("/{target}"),
            Some(_) => target.to_string(),
        };
        if authority.contains('@') {
            return Err(bad("user information in URLs is not supported"));
        }
        if authority.starts_with('[') {
            return Err(bad("IPv6 addresses are not supported"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, "")) => (host, 80),
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
                (host, port)
            }
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad("the URL has no host"));
        }
        let host = if let Ok(address) = host.parse::<Ipv4Addr>() {
            Host::Ipv4(address)
        } else if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad("a malformed IPv4 address"));
        } else {
            check_host_name(host).map_err(|why| bad(&format!("bad host name: {why}")))?;
            Host::Name(host.to_ascii_lowercase())
        };
        Ok(Self { host, port, target })
    }

    /// The `Host` header's value: the host, and the port unless it is 80.
    pub fn authority(&self) -> String {
        match self.port {
            80 => self.host.to_string(),
            port => format!("{}:{port}", self.host),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.target)
    }
}

/// The address of `url`'s host: an IPv4 literal is itself; a name must be in the host table.
pub fn resolve(url: &Url, hosts: &HostTable) -> Result<Ipv4Addr, FetchError> {
    match &url.host {
        Host::Ipv4(address) => Ok(*address),
        Host::Name(name) => hosts.lookup(name).ok_or_else(|| {
            FetchError::new(ErrorClass::UnknownHost, format!("{name} is not in the host table (URL {url})"))
        }),
    }
}

/// At most 200 bytes of `text` for a message (cut at a character boundary).
pub(crate) fn shorten(text: &str) -> String {
    model::shorten(text, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn parses_hosts_ports_and_targets() {
        let u = url("http://10.0.2.2:8000/docs/a.txt?x=1#frag");
        assert_eq!(u.host, Host::Ipv4(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!((u.port, u.target.as_str()), (8000, "/docs/a.txt?x=1"));
        assert_eq!(u.to_string(), "http://10.0.2.2:8000/docs/a.txt?x=1");
        let u = url("HTTP://Docs.Example");
        assert_eq!((u.host.clone(), u.port, u.target.as_str()), (Host::Name("docs.example".into()), 80, "/"));
        assert_eq!(u.authority(), "docs.example");
        assert_eq!(url("http://h?q").target, "/?q");
        assert_eq!(url("http://h:/p").port, 80);
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for (text, why) in [
            ("https://h/", "https is not supported"),
            ("ftp://h/", "only http://"),
            ("h/path", "must start with http://"),
            ("http:///x", "no host"),
            ("http://u:p@h/", "user information"),
            ("http://[::1]/", "IPv6"),
            ("http://h:0/", "port"),
            ("http://h:65536/", "port"),
            ("http://h:+80/", "port"),
            ("http://h:8a/", "port"),
            ("http://1.2.3/", "malformed IPv4"),
            ("http://1.2.3.999/", "malformed IPv4"),
            ("http://a_b/", "bad host name"),
            ("http://h/a b", "space or control"),
            ("http://h/é", "non-ASCII"),
        ] {
            let e = Url::parse(text).unwrap_err();
            assert_eq!(e.class, ErrorClass::BadRequest, "{text}");
            assert!(e.message.contains(why), "{text}: {e}");
            assert!(e.message.contains(text), "{text}: {e}");
        }
    }

    #[test]
    fn resolves_literals_and_table_names() {
        let mut hosts = HostTable::default();
        hosts.insert("docs", Ipv4Addr::new(10, 0, 2, 2)).unwrap();
        assert_eq!(resolve(&url("http://DOCS/x"), &hosts), Ok(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(resolve(&url("http://192.168.0.1/"), &hosts), Ok(Ipv4Addr::new(192, 168, 0, 1)));
        let e = resolve(&url("http://nowhere:81/x"), &hosts).unwrap_err();
        assert_eq!(e.to_string(), "unknown_host: nowhere is not in the host table (URL http://nowhere:81/x)");
    }
}
