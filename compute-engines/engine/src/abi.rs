//! The engine-neutral parts of the function ABI (docs/function-abi.md).
//!
//! Every engine presents the same information to a function — its input sets and items, its
//! declared output sets — and accepts output items the same way; only the transport differs
//! (wasm: host imports; native engines: a system data block of descriptors in the sandbox).
//! The item descriptor below is shared by both transports so that the SDK decodes one layout.
//! The SDK keeps its own copy of these numbers (it depends on nothing); the wasm engine's tests
//! check the two agree.

use model::Item;

/// The status a query returns when the set or item it names does not exist.
pub const NOT_FOUND: i32 = -1;

/// Bit in [`ItemInfo::flags`]: the item has a key.
pub const ITEM_FLAG_KEY: u32 = 1;

/// Size in bytes of an encoded [`ItemInfo`].
pub const ITEM_INFO_SIZE: usize = 24;

/// What a function learns about one input item before it reads the item's name or bytes.
///
/// Encoded little-endian, no padding, no alignment required:
///
/// | offset | size | field       |
/// |--------|------|-------------|
/// | 0      | 4    | `name_len`  |
/// | 4      | 4    | `flags`     |
/// | 8      | 8    | `key` (0 when absent) |
/// | 16     | 8    | `data_len`  |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemInfo {
    /// Length of the item's name in bytes (UTF-8).
    pub name_len: u32,
    /// [`ITEM_FLAG_KEY`] when the item has a key; other bits are zero (reserved).
    pub flags: u32,
    /// The key, or 0 when the item has none.
    pub key: u64,
    /// Length of the item's data in bytes.
    pub data_len: u64,
}

impl ItemInfo {
    /// The descriptor of `item`.
    pub fn of(item: &Item) -> Self {
        Self {
            name_len: u32::try_from(item.name.len()).unwrap_or(u32::MAX),
            flags: if item.key.is_some() { ITEM_FLAG_KEY } else { 0 },
            key: item.key.unwrap_or(0),
            data_len: u64::try_from(item.data.len()).unwrap_or(u64::MAX),
        }
    }

    /// The key, if the item has one.
    pub fn key(&self) -> Option<u64> {
        (self.flags & ITEM_FLAG_KEY != 0).then_some(self.key)
    }

    /// The wire encoding.
    pub fn encode(&self) -> [u8; ITEM_INFO_SIZE] {
        let mut out = [0u8; ITEM_INFO_SIZE];
        out[0..4].copy_from_slice(&self.name_len.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..24].copy_from_slice(&self.data_len.to_le_bytes());
        out
    }

    /// Decodes the wire encoding.
    pub fn decode(bytes: &[u8; ITEM_INFO_SIZE]) -> Self {
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at + 4)) << 32) | u64::from(u32_at(at));
        Self { name_len: u32_at(0), flags: u32_at(4), key: u64_at(8), data_len: u64_at(16) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use model::{Bytes, Item};

    #[test]
    fn item_info_round_trips() {
        let item = Item { name: "a.txt".into(), key: Some(0x0102_0304_0506_0708), data: Bytes::from(&b"hello"[..]) };
        let info = ItemInfo::of(&item);
        assert_eq!(info, ItemInfo { name_len: 5, flags: ITEM_FLAG_KEY, key: 0x0102_0304_0506_0708, data_len: 5 });
        let bytes = info.encode();
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(ItemInfo::decode(&bytes), info);
        assert_eq!(info.key(), Some(0x0102_0304_0506_0708));
    }

    #[test]
    fn keyless_item_has_no_key() {
        let item = Item { name: String::new(), key: None, data: Bytes::empty() };
        let info = ItemInfo::of(&item);
        assert_eq!(info.flags, 0);
        assert_eq!(info.key(), None);
    }
}
