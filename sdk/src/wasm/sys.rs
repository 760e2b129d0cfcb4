//! The raw `pappus` imports (docs/function-abi.md) and safe wrappers over slices.
//!
//! The only `unsafe` of the SDK's transport: the host reads and writes exactly the ranges the
//! wrappers pass (a pointer and a length taken from one slice), and checks them against linear
//! memory itself, so a wrapper cannot be misused from safe code.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::mem::MaybeUninit;

use crate::abi::{ITEM_FLAG_KEY, ITEM_INFO_SIZE};

mod raw {
    #[link(wasm_import_module = "pappus")]
    unsafe extern "C" {
        pub safe fn input_set_count() -> i32;
        pub fn input_set_name(set: usize, dst: *mut u8, cap: usize) -> i32;
        pub safe fn input_item_count(set: usize) -> i32;
        pub fn input_item_info(set: usize, item: usize, dst: *mut u8) -> i32;
        pub fn input_item_name(set: usize, item: usize, dst: *mut u8, cap: usize) -> i32;
        pub fn input_item_read(set: usize, item: usize, offset: u64, dst: *mut u8, len: usize) -> i32;
        pub safe fn output_set_count() -> i32;
        pub fn output_set_name(set: usize, dst: *mut u8, cap: usize) -> i32;
        pub fn output_push(
            set: usize,
            name: *const u8,
            name_len: usize,
            flags: u32,
            key: u64,
            data: *const u8,
            data_len: usize,
        );
        pub fn abort(message: *const u8, len: usize);
    }
}

pub(crate) use raw::{input_item_count, input_set_count, output_set_count};

#[inline]
pub(crate) fn input_set_name(set: usize, buf: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `buf.len()` bytes at `buf`'s start, which `buf` owns.
    unsafe { raw::input_set_name(set, buf.as_mut_ptr(), buf.len()) }
}

#[inline]
pub(crate) fn input_item_info(set: usize, item: usize, buf: &mut [u8; ITEM_INFO_SIZE]) -> i32 {
    // SAFETY: the host writes exactly ITEM_INFO_SIZE bytes at `buf`'s start, which `buf` owns.
    unsafe { raw::input_item_info(set, item, buf.as_mut_ptr()) }
}

#[inline]
pub(crate) fn input_item_name(set: usize, item: usize, buf: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `buf.len()` bytes at `buf`'s start, which `buf` owns.
    unsafe { raw::input_item_name(set, item, buf.as_mut_ptr(), buf.len()) }
}

#[inline]
pub(crate) fn input_item_read(set: usize, item: usize, offset: u64, buf: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `buf.len()` bytes at `buf`'s start, which `buf` owns.
    unsafe { raw::input_item_read(set, item, offset, buf.as_mut_ptr(), buf.len()) }
}

/// An input item's first `len` bytes (fewer if it has fewer) in a new vector, read straight
/// into its capacity: no zeroing first, which an interpreted function pays for (a `memory.fill`
/// per item, ~250 host instructions; `cargo xtask profile matmul3-wasm`). A negative answer
/// (no such item) or none at all ends the reading.
#[inline]
pub(crate) fn input_item_read_to_vec(set: usize, item: usize, len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = Vec::with_capacity(len);
    while data.len() < len {
        let done = data.len();
        let spare: &mut [MaybeUninit<u8>] = data.spare_capacity_mut();
        let room = spare.len().min(len - done);
        // SAFETY: the host writes at most `room` (at most `spare.len()`) bytes at `spare`'s start,
        // memory `data` owns past its length.
        let n = unsafe { raw::input_item_read(set, item, done as u64, spare.as_mut_ptr().cast(), room) };
        let Ok(n @ 1..) = usize::try_from(n) else { break };
        let filled = done + n.min(room);
        // SAFETY: the host wrote `n` bytes (at most the room it was given) from the old length
        // on, so the first `filled` bytes are initialized.
        unsafe { data.set_len(filled) };
    }
    data
}

#[inline]
pub(crate) fn output_set_name(set: usize, buf: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `buf.len()` bytes at `buf`'s start, which `buf` owns.
    unsafe { raw::output_set_name(set, buf.as_mut_ptr(), buf.len()) }
}

#[inline]
pub(crate) fn output_push(set: usize, name: &[u8], key: Option<u64>, data: &[u8]) {
    let flags = if key.is_some() { ITEM_FLAG_KEY } else { 0 };
    // SAFETY: the host only reads `name` and `data`, within their lengths, during the call.
    unsafe { raw::output_push(set, name.as_ptr(), name.len(), flags, key.unwrap_or(0), data.as_ptr(), data.len()) }
}

/// Ends the run as failed with `message`.
#[inline]
pub(crate) fn abort(message: &[u8]) -> ! {
    // SAFETY: the host only reads `message` within its length; it does not return.
    unsafe { raw::abort(message.as_ptr(), message.len()) }
    // A host that returned from `abort` breaks the ABI; trap rather than run on.
    core::arch::wasm32::unreachable()
}
