//! The numbers of the function ABI the SDK speaks (docs/function-abi.md).
//!
//! The engines use these same definitions (`engine::abi` re-exports them), so the SDK stays free
//! of dependencies and the two sides cannot disagree on a number.

/// The wasm import namespace of the ABI.
pub const NAMESPACE: &str = "pappus";

/// The export the engine calls (the [`entry!`](crate::entry) macro defines it).
pub const ENTRY: &str = "run";

/// The names of the wasm imports, in the order docs/function-abi.md lists them.
pub const IMPORTS: [&str; 10] = [
    "input_set_count",
    "input_set_name",
    "input_item_count",
    "input_item_info",
    "input_item_name",
    "input_item_read",
    "output_set_count",
    "output_set_name",
    "output_push",
    "abort",
];

/// The longest item name the platform accepts, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// The most items one run may write, over all its output sets (engines may be configured lower).
pub const MAX_OUTPUT_ITEMS: usize = 65_536;

/// The most payload bytes one run may write, over all its output sets.
pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;

/// What a query returns for a set or item that does not exist.
pub const NOT_FOUND: i32 = -1;

/// Bit in [`ItemInfo::flags`]: the item has a key.
pub const ITEM_FLAG_KEY: u32 = 1;

/// Size of an encoded [`ItemInfo`].
pub const ITEM_INFO_SIZE: usize = 24;

/// The descriptor of one input item: `name_len: u32, flags: u32, key: u64, data_len: u64`,
/// little-endian, no padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemInfo {
    /// Length of the name in bytes.
    pub name_len: u32,
    /// [`ITEM_FLAG_KEY`] or 0.
    pub flags: u32,
    /// The key (0 when absent).
    pub key: u64,
    /// Length of the data in bytes.
    pub data_len: u64,
}

impl ItemInfo {
    /// The key, if the item has one.
    pub fn key(&self) -> Option<u64> {
        (self.flags & ITEM_FLAG_KEY != 0).then_some(self.key)
    }

    /// Encodes the descriptor.
    pub fn encode(&self) -> [u8; ITEM_INFO_SIZE] {
        let mut out = [0u8; ITEM_INFO_SIZE];
        out[0..4].copy_from_slice(&self.name_len.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..24].copy_from_slice(&self.data_len.to_le_bytes());
        out
    }

    /// Decodes the descriptor.
    #[inline]
    pub fn decode(bytes: &[u8; ITEM_INFO_SIZE]) -> Self {
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at + 4)) << 32) | u64::from(u32_at(at));
        Self { name_len: u32_at(0), flags: u32_at(4), key: u64_at(8), data_len: u64_at(16) }
    }
}

/// The native transport (x86_64 static PIE run by the `mpk` and `paging` engines): the memory
/// layout the platform builds before entry and the exit call (docs/function-abi.md, "The
/// native transport"). Every field is a little-endian `u64` unless noted; every pointer is an
/// address in the sandbox; every table is 8-byte aligned.
pub mod native {
    /// `SysHeader::magic`: "PAPPUSN1" as a little-endian u64.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"PAPPUSN1");
    /// `SysHeader::version`.
    pub const VERSION: u64 = 1;

    /// The system data block's header, at the address in `rdi` on entry (read-only).
    ///
    /// | offset | field |
    /// |---|---|
    /// | 0 | `magic` ([`MAGIC`]) |
    /// | 8 | `version` ([`VERSION`]) |
    /// | 16 | `input_set_count` |
    /// | 24 | `input_sets`: pointer to `input_set_count` [`SET_DESC_SIZE`]-byte set descriptors |
    /// | 32 | `output_set_count` |
    /// | 40 | `output_sets`: pointer to `output_set_count` [`NAME_DESC_SIZE`]-byte name descriptors |
    /// | 48 | `heap`: start of the heap (writable, zero, mapped on first touch) |
    /// | 56 | `heap_len`: its size in bytes |
    pub const HEADER_SIZE: usize = 64;
    /// An input set: `name` pointer, `name_len`, `item_count`, `items` pointer to
    /// `item_count` [`ITEM_DESC_SIZE`]-byte item descriptors.
    pub const SET_DESC_SIZE: usize = 32;
    /// An output set's name: `name` pointer, `name_len`.
    pub const NAME_DESC_SIZE: usize = 16;
    /// An input item: the 24-byte [`ItemInfo`](super::ItemInfo) descriptor, then `name`
    /// pointer and `data` pointer (read in place, no copies).
    pub const ITEM_DESC_SIZE: usize = 40;
    /// An output item the function hands back at exit: `set` (u32), `flags` (u32, bit 0 = has
    /// a key), `key`, `name` pointer, `name_len`, `data` pointer, `data_len`.
    pub const OUT_DESC_SIZE: usize = 48;

    /// The exit call's number (`rax` at `syscall`); any other number is a violation.
    pub const SYS_EXIT: u64 = 0;
    /// `rdi` at exit: done; `rsi`/`rdx` point at / count the output descriptors.
    pub const EXIT_DONE: u64 = 0;
    /// `rdi` at exit: failed; `rsi`/`rdx` are the UTF-8 message and its length.
    pub const EXIT_ABORT: u64 = 1;
    /// `rdi` at exit: failed after the heap refused an allocation (`out_of_memory`); `rsi`/`rdx`
    /// as for [`EXIT_ABORT`].
    pub const EXIT_OUT_OF_MEMORY: u64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_info_round_trips() {
        let info = ItemInfo { name_len: 3, flags: ITEM_FLAG_KEY, key: u64::MAX - 1, data_len: 1 << 40 };
        assert_eq!(ItemInfo::decode(&info.encode()), info);
        assert_eq!(info.key(), Some(u64::MAX - 1));
        assert_eq!(ItemInfo { flags: 0, ..info }.key(), None);
    }
}
