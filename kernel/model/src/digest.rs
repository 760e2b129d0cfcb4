//! The SHA-256 digest that names a function image, so a listing shows exactly which binary a
//! name is bound to and identical uploads can be recognised.

use core::fmt;

use sha2::{Digest, Sha256};

/// SHA-256 of a function image (the wasm module or ELF exactly as uploaded).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageDigest([u8; 32]);

impl ImageDigest {
    /// The digest of `image`.
    pub fn of(image: &[u8]) -> Self {
        Self(Sha256::digest(image).into())
    }

    /// A digest known from elsewhere (e.g. a manifest).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits (either case), as [`Display`](fmt::Display) writes them.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            *byte = u8::try_from(hi << 4 | lo).ok()?;
        }
        Some(Self(bytes))
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// 64 lowercase hex digits, the usual spelling of a SHA-256 (`sha256sum` prints the same).
impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vectors() {
        assert_eq!(ImageDigest::of(b"").to_string(), EMPTY);
        assert_eq!(ImageDigest::of(b"abc").to_string(), ABC);
    }

    #[test]
    fn hex_round_trip() {
        let d = ImageDigest::of(b"abc");
        assert_eq!(ImageDigest::from_hex(ABC), Some(d));
        assert_eq!(ImageDigest::from_hex(&ABC.to_uppercase()), Some(d));
        assert_eq!(ImageDigest::from_hex(&ABC[1..]), None);
        assert_eq!(ImageDigest::from_hex(&ABC.replace('a', "g")), None);
        assert_eq!(ImageDigest::from_hex(&"é".repeat(32)), None);
        assert_eq!(ImageDigest::from_bytes(*d.as_bytes()), d);
    }
}
