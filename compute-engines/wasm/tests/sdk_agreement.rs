//! The SDK and the engines keep separate copies of the ABI's numbers; they must agree.

use engine::abi as neutral;
use model::{Bytes, Item};
use pappus_sdk::abi as sdk;
use wasm::abi as wasm;

#[test]
fn import_names_and_namespace_agree() {
    assert_eq!(sdk::NAMESPACE, wasm::NAMESPACE);
    assert_eq!(sdk::ENTRY, wasm::ENTRY);
    let engine_names: Vec<&str> = wasm::IMPORTS.iter().map(|i| i.name).collect();
    assert_eq!(sdk::IMPORTS.to_vec(), engine_names);
}

#[test]
fn item_descriptor_agrees() {
    assert_eq!(sdk::NOT_FOUND, neutral::NOT_FOUND);
    assert_eq!(sdk::ITEM_FLAG_KEY, neutral::ITEM_FLAG_KEY);
    assert_eq!(sdk::ITEM_INFO_SIZE, neutral::ITEM_INFO_SIZE);
    let item = Item { name: "name".into(), key: Some(0xdead_beef_0000_0001), data: Bytes::from(&b"12345"[..]) };
    let encoded = neutral::item_info(&item).encode();
    let decoded = sdk::ItemInfo::decode(&encoded);
    assert_eq!((decoded.name_len, decoded.key(), decoded.data_len), (4, Some(0xdead_beef_0000_0001), 5));
    assert_eq!(decoded.encode(), encoded);
}
