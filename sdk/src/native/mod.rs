//! The native transport (x86_64: the `mpk` and `paging` engines; aarch64: `paging`), one for
//! both architectures: the system data block the
//! platform maps read-only before entry, output descriptors handed back through the exit call,
//! a bump allocator over the heap the block announces, and the panic handler. Compiled when the
//! function is built with `--cfg pappus_native` (docs/writing-functions.md, "Native builds").
#![allow(unsafe_code)]

mod heap;

/// Whether the heap refused an allocation (always false without the SDK's allocator).
fn heap_refused() -> bool {
    #[cfg(feature = "allocator")]
    return heap::refused();
    #[cfg(not(feature = "allocator"))]
    false
}
// aarch64-unknown-none's `compiler_builtins` has the memory functions; the hosted x86_64
// target expects a C library for them.
#[cfg(target_arch = "x86_64")]
mod mem;
mod panic;
mod sys;

use alloc::vec::Vec;
use core::cell::RefCell;

use crate::abi::{ITEM_FLAG_KEY, ITEM_INFO_SIZE, ItemInfo, native};
use crate::context::Context;
use crate::transport::Transport;

/// Runs the entry function: called by `_start` with the system data block's address.
pub(crate) fn run(main: crate::Entry, block: *const u8) -> ! {
    let sys = SysBlock(block);
    if sys.word(0) != native::MAGIC || sys.word(8) != native::VERSION {
        sys::exit_abort(b"pappus-sdk: the system data block has the wrong magic or version");
    }
    let transport = Native { sys, outputs: RefCell::new(Vec::new()) };
    if let Err(error) = main(&mut Context::new(&transport)) {
        if heap_refused() {
            sys::exit_out_of_memory(error.message().as_bytes());
        }
        sys::exit_abort(error.message().as_bytes());
    }
    let outputs = transport.outputs.into_inner();
    let descriptors: Vec<[u64; 6]> = outputs
        .iter()
        .map(|o| {
            let set_flags = u64::from(o.set) | (u64::from(o.flags) << 32);
            [set_flags, o.key, o.name.as_ptr() as u64, o.name.len() as u64, o.data.as_ptr() as u64, o.data.len() as u64]
        })
        .collect();
    sys::exit_done(descriptors.as_ptr().cast(), descriptors.len())
}

/// An output item kept until the exit call hands it over.
struct Out {
    set: u32,
    flags: u32,
    key: u64,
    name: Vec<u8>,
    data: Vec<u8>,
}

/// The read-only block; every read is of memory the platform mapped for this run.
#[derive(Clone, Copy)]
struct SysBlock(*const u8);

impl SysBlock {
    fn word_at(addr: u64) -> u64 {
        // SAFETY: `addr` lies in the system data block (the platform's tables), 8-byte aligned.
        unsafe { (addr as *const u64).read() }
    }

    fn word(self, offset: usize) -> u64 {
        Self::word_at(self.0 as u64 + offset as u64)
    }

    fn bytes<'a>(ptr: u64, len: u64) -> &'a [u8] {
        // SAFETY: a name or data range the platform described; it lives for the whole run.
        unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) }
    }

    fn input_set(self, set: usize) -> Option<u64> {
        (set < self.word(16) as usize).then(|| self.word(24) + (set * native::SET_DESC_SIZE) as u64)
    }

    fn item(self, set: usize, item: usize) -> Option<u64> {
        let desc = self.input_set(set)?;
        (item < Self::word_at(desc + 16) as usize)
            .then(|| Self::word_at(desc + 24) + (item * native::ITEM_DESC_SIZE) as u64)
    }
}

fn copy_name(name: &[u8], buf: &mut [u8]) -> usize {
    let n = name.len().min(buf.len());
    buf[..n].copy_from_slice(&name[..n]);
    name.len()
}

struct Native {
    sys: SysBlock,
    outputs: RefCell<Vec<Out>>,
}

impl Transport for Native {
    fn input_set_count(&self) -> usize {
        self.sys.word(16) as usize
    }

    fn input_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        let desc = self.sys.input_set(set)?;
        Some(copy_name(SysBlock::bytes(SysBlock::word_at(desc), SysBlock::word_at(desc + 8)), buf))
    }

    fn input_item_count(&self, set: usize) -> Option<usize> {
        Some(SysBlock::word_at(self.sys.input_set(set)? + 16) as usize)
    }

    fn input_item_info(&self, set: usize, item: usize) -> Option<ItemInfo> {
        let desc = self.sys.item(set, item)?;
        let bytes: &[u8; ITEM_INFO_SIZE] = SysBlock::bytes(desc, ITEM_INFO_SIZE as u64).try_into().ok()?;
        Some(ItemInfo::decode(bytes))
    }

    fn input_item_name(&self, set: usize, item: usize, buf: &mut [u8]) -> Option<usize> {
        let desc = self.sys.item(set, item)?;
        let info = self.input_item_info(set, item)?;
        Some(copy_name(SysBlock::bytes(SysBlock::word_at(desc + 24), u64::from(info.name_len)), buf))
    }

    fn input_item_read(&self, set: usize, item: usize, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let desc = self.sys.item(set, item)?;
        let info = self.input_item_info(set, item)?;
        let data = SysBlock::bytes(SysBlock::word_at(desc + 32), info.data_len);
        let start = usize::try_from(offset).ok()?.min(data.len());
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        Some(n)
    }

    fn output_set_count(&self) -> usize {
        self.sys.word(32) as usize
    }

    fn output_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        if set >= self.output_set_count() {
            return None;
        }
        let desc = self.sys.word(40) + (set * native::NAME_DESC_SIZE) as u64;
        Some(copy_name(SysBlock::bytes(SysBlock::word_at(desc), SysBlock::word_at(desc + 8)), buf))
    }

    fn output_push(&self, set: usize, name: &str, key: Option<u64>, data: &[u8]) {
        // Checked by the platform at exit (set, flags, name, limits), like every transport.
        self.outputs.borrow_mut().push(Out {
            set: u32::try_from(set).unwrap_or(u32::MAX),
            flags: if key.is_some() { ITEM_FLAG_KEY } else { 0 },
            key: key.unwrap_or(0),
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
        });
    }
}
