//! Tenants and their bearer tokens.
//!
//! Tokens come from the boot configuration, never from a request (DESIGN.md, "The front door").
//! The configuration is text, one tenant per line:
//!
//! ```text
//! # Comments start with '#' and run to the end of the line; blank lines are ignored.
//! tenant alice pappus-3f9c2a7d1e6b4c8f0a5d9e2b7c4f1a6d
//! tenant bob   Zm9vYmFyYmF6cXV4LXRva2VuLTI=   # fields are separated by spaces or tabs
//! ```
//!
//! - `tenant <name> <token>` declares a tenant (the other directive, `host`, is
//!   [`crate::HostTable`]'s, and so is `dns`; [`crate::BootConfig`] reads them all). The name follows the
//!   function-name rule (1..=64 of `[A-Za-z0-9_.-]`, starting with a letter or digit).
//! - A token is [`MIN_TOKEN_LEN`]..=[`MAX_TOKEN_LEN`] characters of `[A-Za-z0-9-._~+/]` followed by
//!   any number of `=` (RFC 6750's `b64token`, so it can be sent as is in `Authorization: Bearer`).
//!   `#` can never be part of a token, which is what makes comments after a token unambiguous.
//! - Names and tokens must each be unique. At most [`MAX_TENANTS`] tenants and [`MAX_CONFIG_BYTES`]
//!   bytes. Lines may end in `\n` or `\r\n`; the text must be UTF-8.
//!
//! Errors name the line. They never quote a token, which would leak it to a log.
//!
//! The tokens themselves are not kept. For each token the table keeps its SHA-256 (to refuse a
//! token given twice, the operator's included) and a 128-bit keyed tag ([`TokenTag`]: two
//! SipHash-2-4 under a 256-bit key drawn from the SHA-256 of the whole configuration text, so
//! the key is as secret as the tokens in it). A presented token is tagged, which costs a few
//! hundred instructions where SHA-256 cost thousands on every request, and its tag is compared
//! with every tenant's, in full, with `subtle`'s constant-time primitives: the time taken depends
//! on the presented token's length and the number of tenants, never on which bytes match.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::BootConfig;
use crate::hosts::HostLineError;
use crate::name::{self, NameError};
use crate::settings::SettingError;

/// The most tenants one configuration may declare.
pub const MAX_TENANTS: usize = 1024;
/// The shortest token accepted: 16 characters, so a token cannot be trivially guessed.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 256;
/// The largest configuration text accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// A tenant, as the registries know it: a small number, cheap to copy and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(u32);

impl TenantId {
    /// The tenant with this index (the order of the configuration's lines, from 0).
    pub const fn new(index: u32) -> Self {
        Self(index)
    }
    pub const fn index(self) -> u32 {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant#{}", self.0)
    }
}

/// What is wrong with a configuration line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The whole text is larger than [`MAX_CONFIG_BYTES`].
    TooLarge {
        len: usize,
    },
    InvalidUtf8,
    /// The line starts with none of `tenant`, `host`, `dns` (the word, shortened to 32 bytes).
    UnknownDirective(String),
    MissingName,
    MissingToken,
    /// Something follows the token.
    ExtraField,
    BadName(NameError),
    /// The token breaks a rule; the text says which (never the token itself).
    BadToken(&'static str),
    /// This tenant name was already declared on `first_line`.
    DuplicateName {
        first_line: usize,
    },
    /// This token was already given to the tenant on `first_line`.
    DuplicateToken {
        first_line: usize,
    },
    TooManyTenants,
    /// A second `operator` line (the first was on `first_line`).
    DuplicateOperator {
        first_line: usize,
    },
    /// A `host` or `dns` line's problem (crate::hosts, `HostTable`).
    Host(HostLineError),
    /// An `ip`, `gateway`, `compute` or `limit` line's problem (crate::settings).
    Setting(SettingError),
}

/// A configuration error at a line (counted from 1; 0 when it concerns the whole text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str("boot configuration: ")?;
        } else {
            write!(f, "boot configuration, line {}: ", self.line)?;
        }
        match &self.kind {
            ConfigErrorKind::TooLarge { len } => write!(f, "{len} bytes, at most {MAX_CONFIG_BYTES} are allowed"),
            ConfigErrorKind::InvalidUtf8 => f.write_str("not valid UTF-8"),
            ConfigErrorKind::UnknownDirective(word) => {
                write!(
                    f,
                    "unknown directive {word:?} (expected tenant, operator, host, dns, ip, gateway, compute, limit, etcd or blobs)"
                )
            }
            ConfigErrorKind::MissingName => f.write_str("missing tenant name (expected `tenant <name> <token>`)"),
            ConfigErrorKind::MissingToken => {
                f.write_str("missing token (expected `tenant <name> <token>` or `operator <token>`)")
            }
            ConfigErrorKind::ExtraField => f.write_str("unexpected text after the token"),
            ConfigErrorKind::BadName(e) => write!(f, "bad tenant name: {e}"),
            ConfigErrorKind::BadToken(why) => write!(f, "bad token: {why}"),
            ConfigErrorKind::DuplicateName { first_line } => {
                write!(f, "tenant name already declared on line {first_line}")
            }
            ConfigErrorKind::DuplicateToken { first_line } => {
                write!(f, "the same token is already given to the tenant on line {first_line}")
            }
            ConfigErrorKind::TooManyTenants => write!(f, "more than {MAX_TENANTS} tenants"),
            ConfigErrorKind::DuplicateOperator { first_line } => {
                write!(f, "the operator token is already given on line {first_line}")
            }
            ConfigErrorKind::Host(e) => write!(f, "{e}"),
            ConfigErrorKind::Setting(e) => write!(f, "{e}"),
        }
    }
}

/// Why a request was not authenticated; the front door answers 401 to all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header with another scheme (e.g. `Basic`).
    NotBearer,
    /// `Bearer` without a well-formed token after it.
    Malformed,
    /// A well-formed token that no tenant holds.
    UnknownToken,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing Authorization header (expected `Authorization: Bearer <token>`)",
            Self::NotBearer => "the Authorization header must use the Bearer scheme",
            Self::Malformed => "malformed bearer token",
            Self::UnknownToken => "unknown token",
        })
    }
}

struct Tenant {
    name: String,
    token_digest: [u8; 32],
    /// The token's [`TokenTag`] under the table's key, what a request's token is compared with.
    tag: [u8; 16],
    line: usize,
}

/// The key of the tokens' keyed tags: two SipHash-2-4 keys, from the SHA-256 of the secret it is
/// drawn from (for a boot configuration, its whole text, tokens included). A presented token's
/// tag is two SipHash-2-4 of it, one per key: 128 bits that nobody without the key can predict
/// or aim at, computed in time that depends only on the token's length.
#[derive(Clone, Copy, Default)]
pub struct TokenTag {
    keys: [(u64, u64); 2],
}

impl TokenTag {
    /// The key drawn from `secret` (SHA-256 under a label of its own, split into four words).
    pub fn from_secret(secret: &[u8]) -> Self {
        let digest: [u8; 32] =
            Sha256::new().chain_update(b"pappus token tag key\0").chain_update(secret).finalize().into();
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[i * 8..i * 8 + 8]);
            u64::from_le_bytes(bytes)
        };
        Self { keys: [(word(0), word(1)), (word(2), word(3))] }
    }

    /// The 128-bit tag of `token`.
    pub fn tag(&self, token: &[u8]) -> [u8; 16] {
        let mut tag = [0u8; 16];
        for ((k0, k1), half) in self.keys.iter().zip(tag.chunks_exact_mut(8)) {
            half.copy_from_slice(&siphash24(*k0, *k1, token).to_le_bytes());
        }
        tag
    }
}

/// Never shows the key.
impl fmt::Debug for TokenTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenTag(..)")
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012) of `data` under the key `(k0, k1)`, 64 bits.
fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut compress = |m: u64| {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    };
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        compress(u64::from_le_bytes(word));
    }
    let mut last = [0u8; 8];
    let tail = blocks.remainder();
    last[..tail.len()].copy_from_slice(tail);
    last[7] = data.len() as u8;
    compress(u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The tenants of this boot, with the digests and keyed tags of their tokens.
#[derive(Default)]
pub struct TokenTable {
    tenants: Vec<Tenant>,
    /// The key of the tenants' tags ([`BootConfig::parse`] draws it from the configuration).
    tags: TokenTag,
}

/// Lists tenant names only: token digests stay out of logs.
impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tenants.iter().map(|t| &t.name)).finish()
    }
}

impl TokenTable {
    /// Parses a boot configuration (module docs) and keeps its tenants; the other lines (`host`)
    /// are checked all the same, so a file this accepts is one [`BootConfig::parse`] accepts. An
    /// empty configuration gives an empty table; whether that is acceptable is the caller's
    /// decision.
    pub fn parse(config: &[u8]) -> Result<Self, ConfigError> {
        BootConfig::parse(config).map(|c| c.tenants)
    }

    /// Adds the tenant of a `tenant` line (`fields` follow the directive) on line `number`.
    pub(crate) fn parse_tenant<'a>(
        &mut self,
        mut fields: impl Iterator<Item = &'a str>,
        number: usize,
        operator_line: impl Fn(&[u8; 32]) -> Option<usize>,
    ) -> Result<(), ConfigErrorKind> {
        let name = fields.next().ok_or(ConfigErrorKind::MissingName)?;
        let token = fields.next().ok_or(ConfigErrorKind::MissingToken)?;
        if fields.next().is_some() {
            return Err(ConfigErrorKind::ExtraField);
        }
        name::validate_function_name(name).map_err(ConfigErrorKind::BadName)?;
        check_token(token.as_bytes())?;
        let token_digest: [u8; 32] = Sha256::digest(token).into();
        if let Some(first_line) = operator_line(&token_digest) {
            return Err(ConfigErrorKind::DuplicateToken { first_line });
        }
        for seen in &self.tenants {
            if seen.name == name {
                return Err(ConfigErrorKind::DuplicateName { first_line: seen.line });
            }
            if seen.token_digest == token_digest {
                return Err(ConfigErrorKind::DuplicateToken { first_line: seen.line });
            }
        }
        if self.tenants.len() >= MAX_TENANTS {
            return Err(ConfigErrorKind::TooManyTenants);
        }
        let tag = self.tags.tag(token.as_bytes());
        self.tenants.push(Tenant { name: name.to_owned(), token_digest, tag, line: number });
        Ok(())
    }

    /// Sets the key of the tokens' tags; only while the table is empty (tags already computed
    /// under another key would match nothing), so [`BootConfig::parse`] does it first.
    pub(crate) fn set_tag_key(&mut self, tags: TokenTag) {
        if self.tenants.is_empty() {
            self.tags = tags;
        }
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// The line of the tenant whose token has this digest, if any.
    fn line_of_digest(&self, digest: &[u8; 32]) -> Option<usize> {
        self.tenants.iter().find(|t| &t.token_digest == digest).map(|t| t.line)
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The name of tenant `id`, if it exists.
    pub fn name(&self, id: TenantId) -> Option<&str> {
        let index = usize::try_from(id.0).ok()?;
        self.tenants.get(index).map(|t| t.name.as_str())
    }

    /// The tenant named `name`, if any.
    pub fn find(&self, name: &str) -> Option<TenantId> {
        self.tenants().find(|&(_, n)| n == name).map(|(id, _)| id)
    }

    /// All tenants, in configuration order.
    pub fn tenants(&self) -> impl Iterator<Item = (TenantId, &str)> {
        self.tenants.iter().zip(0u32..).map(|(t, i)| (TenantId(i), t.name.as_str()))
    }

    /// The tenant holding `token`, in time independent of the token's contents (module docs).
    pub fn lookup(&self, token: &[u8]) -> Option<TenantId> {
        let words = |tag: &[u8; 16]| {
            let tag = u128::from_le_bytes(*tag);
            [tag as u64, (tag >> 64) as u64]
        };
        let [low, high] = words(&self.tags.tag(token));
        // `found` is the matching index plus one, or 0; every tag is compared, in full (as two
        // words: `subtle` compares a byte array byte by byte).
        let mut found = 0u32;
        for (tenant, number) in self.tenants.iter().zip(1u32..) {
            let [tenant_low, tenant_high] = words(&tenant.tag);
            let matches = tenant_low.ct_eq(&low) & tenant_high.ct_eq(&high);
            found.conditional_assign(&number, matches);
        }
        found.checked_sub(1).map(TenantId)
    }

    /// The tenant a request's `Authorization` header value (`None` when absent) authenticates.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<TenantId, AuthError> {
        let token = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
        self.lookup(token).ok_or(AuthError::UnknownToken)
    }
}

/// The operator's token (`operator <token>` in the boot configuration): it opens the node's own
/// pages that name tenants and functions (`/metrics`). Only its SHA-256 is kept, compared in
/// constant time like the tenants' tokens. Without an `operator` line no token opens them.
#[derive(Default)]
pub struct OperatorToken {
    /// The digest and the line it came from.
    digest: Option<([u8; 32], usize)>,
}

/// Never shows the digest.
impl fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() { "OperatorToken(set)" } else { "OperatorToken(none)" })
    }
}

impl OperatorToken {
    /// An operator token from its text (the same rules as a tenant's token).
    pub fn new(token: &str) -> Result<Self, ConfigErrorKind> {
        check_token(token.as_bytes())?;
        Ok(Self { digest: Some((Sha256::digest(token).into(), 0)) })
    }

    /// Whether the configuration named an operator token.
    pub fn is_set(&self) -> bool {
        self.digest.is_some()
    }

    /// Reads an `operator` line (`fields` follow the directive) on line `number`; `tenants` are
    /// the tenants declared so far, whose tokens it must not repeat.
    pub(crate) fn parse_operator<'a>(
        &mut self,
        mut fields: impl Iterator<Item = &'a str>,
        number: usize,
        tenants: &TokenTable,
    ) -> Result<(), ConfigErrorKind> {
        let token = fields.next().ok_or(ConfigErrorKind::MissingToken)?;
        if fields.next().is_some() {
            return Err(ConfigErrorKind::ExtraField);
        }
        if let Some((_, first_line)) = self.digest {
            return Err(ConfigErrorKind::DuplicateOperator { first_line });
        }
        check_token(token.as_bytes())?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        if let Some(first_line) = tenants.line_of_digest(&digest) {
            return Err(ConfigErrorKind::DuplicateToken { first_line });
        }
        self.digest = Some((digest, number));
        Ok(())
    }

    /// The line of the `operator` entry, if its token has this digest (a tenant line that
    /// comes later must not repeat it).
    pub(crate) fn line_if(&self, digest: &[u8; 32]) -> Option<usize> {
        self.digest.filter(|(d, _)| d == digest).map(|(_, line)| line)
    }

    /// Whether a request's `Authorization` header value (`None` when absent) carries the
    /// operator's token. With no operator token configured, every request is refused
    /// ([`AuthError::UnknownToken`] for a well-formed one).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<(), AuthError> {
        let token = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
        let presented: [u8; 32] = Sha256::digest(token).into();
        let (expected, _) = self.digest.unwrap_or(([0; 32], 0));
        // Compared in full whether or not a token is set; an unset one matches nothing.
        let matches: bool = (expected.ct_eq(&presented) & subtle::Choice::from(u8::from(self.is_set()))).into();
        if matches { Ok(()) } else { Err(AuthError::UnknownToken) }
    }
}

/// The token of an `Authorization` header value `Bearer <token>` (RFC 6750 section 2.1): the scheme
/// in any case, one or more spaces, a `b64token`; white space around the value is ignored.
pub fn bearer_token(value: &[u8]) -> Result<&[u8], AuthError> {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(at) => value.split_at(at),
        None => (value, &[][..]),
    };
    if !kcore::ascii::eq_ignore_case(scheme, b"bearer") {
        return Err(if value.is_empty() { AuthError::Malformed } else { AuthError::NotBearer });
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

fn check_token(token: &[u8]) -> Result<(), ConfigErrorKind> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(ConfigErrorKind::BadToken("shorter than 16 characters"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(ConfigErrorKind::BadToken("longer than 256 characters"));
    }
    if !is_b64token(token) {
        return Err(ConfigErrorKind::BadToken("only letters, digits, `-._~+/` and trailing `=` are allowed"));
    }
    Ok(())
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |at| at + 1);
    let (body, _padding) = token.split_at(body_len);
    !body.is_empty() && body.iter().all(|&b| B64TOKEN[usize::from(b)])
}

/// The characters of a `b64token` but its trailing `=`: letters, digits and `-._~+/` (a table:
/// every request's token is checked).
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference implementation's vectors (key 00..0f, message 00..len-1).
    #[test]
    fn siphash24_matches_the_reference_vectors() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let message: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash24(k0, k1, &message[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &message[..15]), 0xa129_ca61_49be_45e5);
    }

    /// The same as core's (deprecated) SipHash-2-4, for every length from 0 to 300 and a few keys.
    #[test]
    #[allow(deprecated)]
    fn siphash24_matches_core() {
        use core::hash::{Hasher, SipHasher};
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for (k0, k1) in [(0, 0), (1, 2), (0x0123_4567_89ab_cdef, u64::MAX), (u64::MAX, 7)] {
            for len in 0..=data.len() {
                let mut core = SipHasher::new_with_keys(k0, k1);
                core.write(&data[..len]);
                assert_eq!(siphash24(k0, k1, &data[..len]), core.finish(), "len {len}");
            }
        }
    }

    #[test]
    fn tags_depend_on_the_key_and_every_byte() {
        let a = TokenTag::from_secret(b"tenant a token-0123456789abcdef");
        let b = TokenTag::from_secret(b"tenant a token-0123456789abcdeg");
        let token = b"token-0123456789abcdef";
        assert_eq!(a.tag(token), a.tag(token));
        assert_ne!(a.tag(token), b.tag(token));
        for at in 0..token.len() {
            let mut other = *token;
            other[at] ^= 1;
            assert_ne!(a.tag(&other), a.tag(token), "byte {at}");
        }
        assert_ne!(a.tag(token), a.tag(&token[..token.len() - 1]));
    }
}
