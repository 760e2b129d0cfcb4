//! The binary invoke format, `application/x-pappus-sets`: a compact little-endian framing that
//! needs no base64 and no parsing of text, and whose decoder copies no item data: every item's
//! data is a [`Bytes::slice`] of the input buffer. Byte for byte (docs/wire-formats.md too):
//!
//! ```text
//! document := "PSET" version:u8=1 flags:u8=0 set_count:u32 set*
//! set      := name_len:u8 name[name_len] item_count:u32 item*
//! item     := name_len:u8 name[name_len] flags:u8 [key:u64 if flags bit 0] data_len:u64 data[data_len]
//! ```
//!
//! Names are UTF-8 (set names 1..=255 bytes, item names 0..=255, so one length byte suffices).
//! Item flags: bit 0 = a key follows; other bits, and the header flags, must be 0 so that later
//! versions can give them meaning. Nothing may follow the last set.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::WireFormat;
use super::encoder::Encoder;
use super::error::{SetRef, WireError, WireErrorKind, path};
use super::limits::WireLimits;
use crate::name;
use crate::{Bytes, Item, Name, Set};

/// The first four bytes of every document.
pub const MAGIC: [u8; 4] = *b"PSET";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;
/// Item flag: a u64 key follows the flags byte.
pub const ITEM_HAS_KEY: u8 = 0x01;

/// The fewest bytes a set can take (an empty name is not valid, but bounds are what matter):
/// name length and item count.
const MIN_SET_LEN: usize = 1 + 4;
/// The fewest bytes an item can take: name length, flags, data length.
const MIN_ITEM_LEN: usize = 1 + 1 + 8;

/// Decodes a binary document. Item data share `input`'s buffer.
pub fn decode(input: &Bytes, limits: &WireLimits) -> Result<Vec<Set>, WireError> {
    let mut r = Reader { input, pos: 0 };
    let header = || String::from("header");
    if r.array(header)? != MAGIC {
        return Err(WireError::new(header(), WireErrorKind::BadMagic));
    }
    let version = r.u8(header)?;
    if version != VERSION {
        return Err(WireError::new(header(), WireErrorKind::UnsupportedVersion(version)));
    }
    let flags = r.u8(header)?;
    if flags != 0 {
        return Err(WireError::new(header(), WireErrorKind::ReservedBits(flags)));
    }
    let set_count = r.count(header)?;
    if set_count > limits.max_sets {
        return Err(WireError::new(header(), WireErrorKind::TooManySets { max: limits.max_sets }));
    }
    let mut sets: Vec<Set> = Vec::with_capacity(set_count.min(r.left() / MIN_SET_LEN));
    let (mut items_total, mut bytes_total) = (0usize, 0usize);
    let mut names = BTreeSet::new();
    for index in 0..set_count {
        let set_name = r.name(|| path(SetRef::Index(index), None, Some("name")))?;
        let at = |item, field| path(SetRef::Name(&set_name), item, field);
        name::validate_set_name_within(&set_name, limits.max_name_len)
            .map_err(|e| WireError::new(at(None, None), WireErrorKind::BadName(e)))?;
        if super::repeats(&set_name, sets.iter().map(|s| s.name.as_str()), &mut names) {
            return Err(WireError::new(at(None, None), WireErrorKind::DuplicateSet));
        }
        let item_count = r.count(|| at(None, None))?;
        items_total = items_total.saturating_add(item_count);
        if items_total > limits.max_items {
            return Err(WireError::new(at(None, None), WireErrorKind::TooManyItems { max: limits.max_items }));
        }
        let mut items = Vec::with_capacity(item_count.min(r.left() / MIN_ITEM_LEN));
        for i in 0..item_count {
            let item_name = r.name(|| at(Some(i), Some("name")))?;
            name::validate_item_name_within(&item_name, limits.max_name_len)
                .map_err(|e| WireError::new(at(Some(i), Some("name")), WireErrorKind::BadName(e)))?;
            let flags = r.u8(|| at(Some(i), Some("flags")))?;
            if flags & !ITEM_HAS_KEY != 0 {
                return Err(WireError::new(at(Some(i), Some("flags")), WireErrorKind::ReservedBits(flags)));
            }
            let key = if flags & ITEM_HAS_KEY != 0 { Some(r.u64(|| at(Some(i), Some("key")))?) } else { None };
            let data_at = || at(Some(i), Some("data"));
            let len = r.u64(data_at)?;
            let fits = usize::try_from(len).ok().and_then(|len| bytes_total.checked_add(len));
            bytes_total = match fits {
                Some(total) if total <= limits.max_total_bytes => total,
                _ => {
                    return Err(WireError::new(data_at(), WireErrorKind::TooManyBytes { max: limits.max_total_bytes }));
                }
            };
            let data = r.slice(len, data_at)?;
            items.push(Item { name: item_name, key, data });
        }
        sets.push(Set { name: set_name, items });
    }
    if r.left() > 0 {
        return Err(WireError::new(String::from("body"), WireErrorKind::TrailingBytes { offset: r.pos }));
    }
    Ok(sets)
}

/// How many bytes [`encode`] makes of `sets`, at most.
pub fn encoded_len(sets: &[Set]) -> usize {
    sets.iter().fold(10usize, |n, set| {
        set.items.iter().fold(n.saturating_add(MIN_SET_LEN + set.name.len()), |n, item| {
            n.saturating_add(MIN_ITEM_LEN + 8 + item.name.len()).saturating_add(item.data.len())
        })
    })
}

/// Encodes sets. Fails only if the sets break the data model (see [`WireLimits::check`] with
/// [`WireLimits::MODEL`]) or hold more than `u32::MAX` sets or items in one set.
pub fn encode(sets: &[Set]) -> Result<Vec<u8>, WireError> {
    let mut encoder = Encoder::new(WireFormat::Binary, sets, encoded_len(sets))
        .ok_or_else(|| WireError::new(String::from("header"), WireErrorKind::BadMagic))?;
    encoder.write(usize::MAX, usize::MAX)?;
    Ok(encoder.into_bytes())
}

/// A cursor over the input; every read is bounds-checked and names its place on failure.
struct Reader<'a> {
    input: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// The next `len` bytes as a slice of the input buffer.
    fn slice(&mut self, len: u64, at: impl FnOnce() -> String) -> Result<Bytes, WireError> {
        let truncated =
            |at: String, pos, left| WireError::new(at, WireErrorKind::Truncated { offset: pos, needed: len, left });
        let end = usize::try_from(len).ok().and_then(|len| self.pos.checked_add(len));
        match end.and_then(|end| self.input.slice(self.pos..end)) {
            Some(bytes) => {
                self.pos += bytes.len();
                Ok(bytes)
            }
            None => Err(truncated(at(), self.pos, self.left())),
        }
    }

    fn array<const N: usize>(&mut self, at: impl FnOnce() -> String) -> Result<[u8; N], WireError> {
        let bytes = self.slice(N as u64, at)?;
        Ok(<[u8; N]>::try_from(&*bytes).unwrap_or([0; N]))
    }

    fn u8(&mut self, at: impl FnOnce() -> String) -> Result<u8, WireError> {
        self.array(at).map(|[b]| b)
    }

    fn u64(&mut self, at: impl FnOnce() -> String) -> Result<u64, WireError> {
        self.array(at).map(u64::from_le_bytes)
    }

    /// A u32 count, as usize.
    fn count(&mut self, at: impl FnOnce() -> String) -> Result<usize, WireError> {
        let n = self.array(at).map(u32::from_le_bytes)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// A length-prefixed UTF-8 name.
    fn name(&mut self, at: impl Fn() -> String) -> Result<Name, WireError> {
        let len = self.u8(&at)?;
        let bytes = self.slice(u64::from(len), &at)?;
        match core::str::from_utf8(&bytes) {
            Ok(text) => Ok(Name::from(text)),
            Err(_) => Err(WireError::new(at(), WireErrorKind::InvalidUtf8)),
        }
    }
}
