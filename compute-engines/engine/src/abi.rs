//! The engine-neutral parts of the function ABI (docs/function-abi.md).
//!
//! Every engine presents the same information to a function — its input sets and items, its
//! declared output sets — and accepts output items the same way; only the transport differs
//! (wasm: host imports; native engines: a system data block of descriptors in the sandbox).
//! The numbers and the item descriptor are defined once, in the SDK (`pappus_sdk::abi`, a crate
//! without dependencies), and re-exported here, so the two sides cannot drift apart.

use model::Item;

pub use pappus_sdk::abi::{ITEM_FLAG_KEY, ITEM_INFO_SIZE, ItemInfo, NOT_FOUND};

/// The descriptor a function sees for `item`.
pub fn item_info(item: &Item) -> ItemInfo {
    ItemInfo {
        name_len: u32::try_from(item.name.len()).unwrap_or(u32::MAX),
        flags: if item.key.is_some() { ITEM_FLAG_KEY } else { 0 },
        key: item.key.unwrap_or(0),
        data_len: u64::try_from(item.data.len()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Bytes;

    #[test]
    fn item_info_round_trips() {
        let item = Item { name: "a.txt".into(), key: Some(0x0102_0304_0506_0708), data: Bytes::from(&b"hello"[..]) };
        let info = item_info(&item);
        assert_eq!(info, ItemInfo { name_len: 5, flags: ITEM_FLAG_KEY, key: 0x0102_0304_0506_0708, data_len: 5 });
        let bytes = info.encode();
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(ItemInfo::decode(&bytes), info);
        assert_eq!(info.key(), Some(0x0102_0304_0506_0708));
    }

    #[test]
    fn keyless_item_has_no_key() {
        let item = Item { name: Default::default(), key: None, data: Bytes::empty() };
        let info = item_info(&item);
        assert_eq!(info.flags, 0);
        assert_eq!(info.key(), None);
    }
}
