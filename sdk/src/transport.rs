//! How the SDK reaches the platform: one trait, one implementation per transport.
//!
//! The [`Context`](crate::Context) API is written against this trait only, so the wasm imports,
//! the host mock, and later the native engines' system data block are interchangeable.

use crate::abi::ItemInfo;

/// The ABI's operations, in Rust types. Indices are the ABI's (declaration order).
pub(crate) trait Transport {
    /// Number of input sets.
    fn input_set_count(&self) -> usize;
    /// Copies up to `buf.len()` bytes of input set `set`'s name; returns its full length.
    fn input_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize>;
    /// Number of items in input set `set`.
    fn input_item_count(&self, set: usize) -> Option<usize>;
    /// The descriptor of an input item.
    fn input_item_info(&self, set: usize, item: usize) -> Option<ItemInfo>;
    /// Copies up to `buf.len()` bytes of an input item's name; returns its full length.
    fn input_item_name(&self, set: usize, item: usize, buf: &mut [u8]) -> Option<usize>;
    /// Copies an input item's data from `offset` into `buf`; returns the count copied.
    fn input_item_read(&self, set: usize, item: usize, offset: u64, buf: &mut [u8]) -> Option<usize>;
    /// Number of declared output sets.
    fn output_set_count(&self) -> usize;
    /// Copies up to `buf.len()` bytes of output set `set`'s name; returns its full length.
    fn output_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize>;
    /// Appends an item to output set `set`. Bad output ends the run (wasm: the host never
    /// returns; the mock records the error and ignores further output).
    fn output_push(&self, set: usize, name: &str, key: Option<u64>, data: &[u8]);
}
