//! The wasm32 transport: the `pappus` host imports behind the [`Transport`] trait, the entry
//! wrapper, the panic handler and the allocator.

mod heap;
mod panic;
mod sys;

use alloc::vec::Vec;

use crate::abi::{ITEM_INFO_SIZE, ItemInfo};
use crate::context::Context;
use crate::transport::Transport;

/// Runs the entry function; an error ends the run through `abort`.
pub(crate) fn run(main: crate::Entry) {
    let transport = Imports;
    if let Err(error) = main(&mut Context::new(&transport)) {
        sys::abort(error.message().as_bytes());
    }
}

/// The host imports; stateless, the host holds the run's state.
pub(crate) struct Imports;

impl Imports {
    /// An input item's `len` bytes of data in a new vector, read without zeroing it first.
    #[inline]
    pub(crate) fn read_all(&self, set: usize, item: usize, len: usize) -> Vec<u8> {
        sys::input_item_read_to_vec(set, item, len)
    }
}

/// A count or length from the host; negative means "not found".
fn found(status: i32) -> Option<usize> {
    usize::try_from(status).ok()
}

impl Transport for Imports {
    fn input_set_count(&self) -> usize {
        found(sys::input_set_count()).unwrap_or(0)
    }

    fn input_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        found(sys::input_set_name(set, buf))
    }

    #[inline]
    fn input_item_count(&self, set: usize) -> Option<usize> {
        found(sys::input_item_count(set))
    }

    #[inline]
    fn input_item_info(&self, set: usize, item: usize) -> Option<ItemInfo> {
        let mut bytes = [0u8; ITEM_INFO_SIZE];
        found(sys::input_item_info(set, item, &mut bytes))?;
        Some(ItemInfo::decode(&bytes))
    }

    #[inline]
    fn input_item_name(&self, set: usize, item: usize, buf: &mut [u8]) -> Option<usize> {
        found(sys::input_item_name(set, item, buf))
    }

    #[inline]
    fn input_item_read(&self, set: usize, item: usize, offset: u64, buf: &mut [u8]) -> Option<usize> {
        found(sys::input_item_read(set, item, offset, buf))
    }

    #[inline]
    fn output_set_count(&self) -> usize {
        found(sys::output_set_count()).unwrap_or(0)
    }

    fn output_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        found(sys::output_set_name(set, buf))
    }

    #[inline]
    fn output_push(&self, set: usize, name: &str, key: Option<u64>, data: &[u8]) {
        sys::output_push(set, name.as_bytes(), key, data);
    }
}
