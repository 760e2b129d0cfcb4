//! The fleet's desired state in etcd: one prefix, one key per function or composition.
//!
//! ```text
//! /pappus/v1/tenants/<tenant>/functions/<name>     {"query":"engine=wasm&inputs=a&outputs=b","digest":"<sha256 hex>","size":N}
//! /pappus/v1/tenants/<tenant>/compositions/<name>  the composition's source text (the DSL)
//! ```
//!
//! A function's value is the registration query a node's `PUT /v1/functions/<name>` takes (the
//! node checks it exactly as it checks that request's) and its image's SHA-256 digest and
//! size; the image itself is a blob, `<blobs>/<digest>`, on the fleet's blob server. Both the
//! node (this crate's [`Sync`](crate::Sync)) and the deploying side (`pappus`'s library) use
//! these functions, so the two cannot disagree.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

/// The prefix every key of the fleet's state starts with.
pub const PREFIX: &str = "/pappus/v1/";

/// What a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Function,
    Composition,
}

impl Kind {
    pub const fn segment(self) -> &'static str {
        match self {
            Self::Function => "functions",
            Self::Composition => "compositions",
        }
    }
}

/// A key of the layout, split: whose, what, which.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub tenant: String,
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(tenant: &str, kind: Kind, name: &str) -> Self {
        Self { tenant: tenant.to_string(), kind, name: name.to_string() }
    }

    /// `/pappus/v1/tenants/<tenant>/<kind>/<name>`.
    pub fn path(&self) -> String {
        format!("{PREFIX}tenants/{}/{}/{}", self.tenant, self.kind.segment(), self.name)
    }

    /// Splits a key; `None` for one outside the layout (other keys under the prefix are
    /// ignored, so a later layout can add some).
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(PREFIX)?.strip_prefix("tenants/")?;
        let mut parts = rest.split('/');
        let (tenant, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || tenant.is_empty() || name.is_empty() {
            return None;
        }
        let kind = match kind {
            "functions" => Kind::Function,
            "compositions" => Kind::Composition,
            _ => return None,
        };
        Some(Self::new(tenant, kind, name))
    }
}

/// The end of the range holding every key that starts with `prefix` (etcd's `range_end`: the
/// prefix with its last byte plus one).
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): etcd's "\0" means every key from `key` on.
    alloc::vec![0]
}

/// A function's value: the registration query, the image's digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionValue {
    pub query: String,
    /// Lowercase hex SHA-256 of the image.
    pub digest: String,
    pub size: u64,
}

impl FunctionValue {
    /// The value for `image` registered with `query`.
    pub fn for_image(query: &str, image: &[u8]) -> Self {
        Self { query: query.to_string(), digest: sha256_hex(image), size: image.len() as u64 }
    }

    pub fn to_json(&self) -> String {
        let value = serde_json::json!({ "query": self.query, "digest": self.digest, "size": self.size });
        value.to_string()
    }

    /// Parses a value; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("function value is not JSON: {e}"))?;
        let field = |name: &str| value.get(name).ok_or_else(|| format!("function value has no \"{name}\""));
        let query = field("query")?.as_str().ok_or("\"query\" is not a string")?.to_string();
        let digest = field("digest")?.as_str().ok_or("\"digest\" is not a string")?.to_string();
        let size = field("size")?.as_u64().ok_or("\"size\" is not a whole number")?;
        if !is_digest(&digest) {
            return Err(format!("\"digest\" is not 64 lowercase hex digits: {digest:.80}"));
        }
        Ok(Self { query, digest, size })
    }
}

/// Whether `text` is a SHA-256 digest as the layout writes it: 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_others_are_ignored() {
        let key = Key::new("acme", Kind::Function, "echo");
        assert_eq!(key.path(), "/pappus/v1/tenants/acme/functions/echo");
        assert_eq!(Key::parse(&key.path()), Some(key));
        let c = Key::new("acme", Kind::Composition, "pipe");
        assert_eq!(Key::parse("/pappus/v1/tenants/acme/compositions/pipe"), Some(c));
        for other in [
            "/pappus/v1/tenants/acme/functions/",
            "/pappus/v1/tenants//functions/x",
            "/pappus/v1/tenants/acme/widgets/x",
            "/pappus/v1/tenants/acme/functions/x/y",
            "/pappus/v2/tenants/acme/functions/x",
            "/pappus/v1/nodes/1",
        ] {
            assert_eq!(Key::parse(other), None, "{other}");
        }
    }

    #[test]
    fn range_end_is_prefix_plus_one() {
        assert_eq!(range_end(PREFIX.as_bytes()), b"/pappus/v10");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff"), b"\0");
    }

    #[test]
    fn function_values() {
        let v = FunctionValue::for_image("engine=wasm&inputs=a&outputs=b", b"abc");
        assert_eq!(v.digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(FunctionValue::parse(v.to_json().as_bytes()), Ok(v));
        for (bad, says) in [
            (&b"{"[..], "not JSON"),
            (br#"{"digest":"00","size":1}"#, "no \"query\""),
            (br#"{"query":"q","digest":"00","size":1}"#, "64 lowercase"),
            (br#"{"query":"q","digest":1,"size":1}"#, "not a string"),
            (br#"{"query":"q","digest":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":-1}"#, "whole number"),
        ] {
            let e = FunctionValue::parse(bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
