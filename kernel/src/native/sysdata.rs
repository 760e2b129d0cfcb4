//! The system data block of the native transport (docs/function-abi.md): the header, the input
//! set and item descriptors, the output set names, then every name and every item's data, each
//! 8-byte aligned. Built in kernel memory and mapped read-only into the sandbox at `base`.

use alloc::string::String;
use alloc::vec::Vec;

use model::Set;
use pappus_sdk::abi::native;

fn put(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The block for `inputs` and `outputs`, as seen at address `base`; `None` when the kernel has
/// no memory for it.
pub fn build(base: u64, inputs: &[Set], outputs: &[String], heap: u64, heap_len: u64) -> Option<Vec<u8>> {
    let items: usize = inputs.iter().map(|s| s.items.len()).sum();
    let tables = native::HEADER_SIZE
        + inputs.len() * native::SET_DESC_SIZE
        + items * native::ITEM_DESC_SIZE
        + outputs.len() * native::NAME_DESC_SIZE;
    let payload: usize = inputs
        .iter()
        .map(|s| {
            s.name.len().next_multiple_of(8)
                + s.items
                    .iter()
                    .map(|i| i.name.len().next_multiple_of(8) + i.data.len().next_multiple_of(8))
                    .sum::<usize>()
        })
        .sum::<usize>()
        + outputs.iter().map(|n| n.len().next_multiple_of(8)).sum::<usize>();
    let total = tables.checked_add(payload)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(total).ok()?;
    buf.resize(total, 0);

    let mut strings = tables; // where the next name or data goes
    let mut place = |buf: &mut Vec<u8>, bytes: &[u8]| -> u64 {
        let at = strings;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        strings += bytes.len().next_multiple_of(8);
        base + at as u64
    };

    put(&mut buf, 0, native::MAGIC);
    put(&mut buf, 8, native::VERSION);
    put(&mut buf, 16, inputs.len() as u64);
    let sets_at = native::HEADER_SIZE;
    put(&mut buf, 24, base + sets_at as u64);
    let mut items_at = sets_at + inputs.len() * native::SET_DESC_SIZE;
    let outputs_at = items_at + items * native::ITEM_DESC_SIZE;
    put(&mut buf, 32, outputs.len() as u64);
    put(&mut buf, 40, base + outputs_at as u64);
    put(&mut buf, 48, heap);
    put(&mut buf, 56, heap_len);

    for (i, set) in inputs.iter().enumerate() {
        let desc = sets_at + i * native::SET_DESC_SIZE;
        let name = place(&mut buf, set.name.as_bytes());
        put(&mut buf, desc, name);
        put(&mut buf, desc + 8, set.name.len() as u64);
        put(&mut buf, desc + 16, set.items.len() as u64);
        put(&mut buf, desc + 24, base + items_at as u64);
        for item in &set.items {
            let info = engine::abi::item_info(item).encode();
            buf[items_at..items_at + info.len()].copy_from_slice(&info);
            let name = place(&mut buf, item.name.as_bytes());
            let data = place(&mut buf, &item.data);
            put(&mut buf, items_at + 24, name);
            put(&mut buf, items_at + 32, data);
            items_at += native::ITEM_DESC_SIZE;
        }
    }
    for (i, name) in outputs.iter().enumerate() {
        let desc = outputs_at + i * native::NAME_DESC_SIZE;
        let ptr = place(&mut buf, name.as_bytes());
        put(&mut buf, desc, ptr);
        put(&mut buf, desc + 8, name.len() as u64);
    }
    Some(buf)
}
