//! The hardware-free half of the native transport (docs/function-abi.md, "The native
//! transport"): the system data block the platform maps into a sandbox, and what an exit call
//! means — the outputs it hands over, validated like `output_push`, or the failure it reports.
//! The kernel's `mpk` and `paging` engines use these; the SDK's native transport reads the block
//! and writes the descriptors (`pappus_sdk::abi::native` holds the shared numbers). Messages
//! show user addresses as they are and kernel addresses as `kernel address` ([`Redacted`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use model::{Bytes, Item, MAX_NAME_LEN, PAGE_SIZE, Page, Set};
use pappus_sdk::abi::{ITEM_FLAG_KEY, native};

use engine::{BadOutput, Completion, EngineError, Limits, Trap, TrapKind};

/// An address as a trap message may show it to the function's caller: addresses in the lower
/// (user) half as they are, anything in the upper (kernel) half as `kernel address`, so that
/// no message tells a tenant where the kernel lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redacted(pub u64);

/// The first address of the upper (kernel) half on x86_64 with 4-level paging; everything from
/// the end of the lower half up is redacted (non-canonical addresses included).
pub const KERNEL_HALF: u64 = 0x0000_8000_0000_0000;

/// Where user addresses lie on x86_64: the lower half.
pub const X86_64_USER: core::ops::Range<u64> = 0..KERNEL_HALF;
/// Where user addresses lie on aarch64: the sandboxes' level-0 entry (1 TiB .. 1.5 TiB); the
/// kernel's identity map lies below it.
pub const AARCH64_USER: core::ops::Range<u64> =
    crate::layout::AARCH64_OWN_BASE..crate::layout::AARCH64_OWN_BASE + (1 << 39);
/// The user range of the architecture this is built for.
pub const USER: core::ops::Range<u64> = if cfg!(target_arch = "aarch64") { AARCH64_USER } else { X86_64_USER };

impl Redacted {
    /// Writes the address as it would be shown where user addresses lie in `user`.
    pub fn write_for(&self, user: &core::ops::Range<u64>, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
        if user.contains(&self.0) { write!(f, "{:#x}", self.0) } else { f.write_str("kernel address") }
    }
}

impl core::fmt::Display for Redacted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write_for(&USER, f)
    }
}

/// The abort message kept, at most.
pub const MAX_ABORT_MESSAGE: u64 = 4096;

fn put(buf: &mut (impl BlockMemory + ?Sized), at: usize, value: u64) {
    buf.write_word(at, value);
}

/// Where a system data block is written ([`write_system_block`]): zero bytes, at least the
/// block's length, one buffer or (the kernel, for a block over a page) the sandbox's pages
/// themselves, so that the inputs are not first gathered into a block on the heap.
pub trait BlockMemory {
    /// Writes `bytes` at offset `at` of the block. A write past the memory's end is dropped
    /// (the block's length is computed first, and the memory made at least that long).
    fn write(&mut self, at: usize, bytes: &[u8]);

    /// Writes `value` (little-endian) at offset `at`.
    fn write_word(&mut self, at: usize, value: u64) {
        self.write(at, &value.to_le_bytes());
    }
}

impl BlockMemory for [u8] {
    fn write(&mut self, at: usize, bytes: &[u8]) {
        if let Some(slot) = self.get_mut(at..).and_then(|rest| rest.get_mut(..bytes.len())) {
            slot.copy_from_slice(bytes);
        }
    }

    fn write_word(&mut self, at: usize, value: u64) {
        // Eight bytes known at compile time: a store, not a call to `memcpy`.
        if let Some(slot) = self.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<8>) {
            *slot = value.to_le_bytes();
        }
    }
}

/// The system data block for `inputs` and `outputs` as the sandbox sees it at address `base`,
/// announcing the heap at `heap` of `heap_len` bytes: the header, the input set and item
/// descriptors, the output set names, then every name and every item's data, each 8-byte
/// aligned. `None` when the block would not fit in memory.
pub fn system_block(base: u64, inputs: &[Set], outputs: &[String], heap: u64, heap_len: u64) -> Option<Vec<u8>> {
    let total = system_block_len(inputs, outputs)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(total).ok()?;
    buf.resize(total, 0);
    write_system_block(buf.as_mut_slice(), base, inputs, outputs, heap, heap_len);
    Some(buf)
}

/// Input items at least this long whose bytes are whole pages of their own
/// ([`Bytes::pages`](model::Bytes::pages): a function's output, for one) are not copied into the
/// system data block: their pages are mapped read-only after it ([`mapped_inputs`]), and their
/// descriptors point there ([`model::PAGED_MIN`]).
pub const MAP_MIN: usize = model::PAGED_MIN;

/// The pages of `item` when it is mapped rather than copied ([`MAP_MIN`]).
pub fn mapped(item: &Item) -> Option<&[Page]> {
    if item.data.len() >= MAP_MIN { item.data.pages() } else { None }
}

/// The pages of the mapped input items ([`mapped`]), in the order of their descriptors: the
/// first goes at the page after the block, each next one at the page after the one before.
pub fn mapped_inputs(inputs: &[Set]) -> impl Iterator<Item = &[Page]> {
    inputs.iter().flat_map(|s| s.items.iter()).filter_map(mapped)
}

/// The bytes from the block's start to the end of the last mapped input (the block's length,
/// rounded up to a page, when nothing is mapped); `None` if it overflows.
pub fn system_region_len(inputs: &[Set], outputs: &[String]) -> Option<usize> {
    let block = system_block_len(inputs, outputs)?.checked_next_multiple_of(PAGE_SIZE)?;
    mapped_inputs(inputs).try_fold(block, |at, pages| at.checked_add(pages.len().checked_mul(PAGE_SIZE)?))
}

/// The size in bytes of the system data block for `inputs` and `outputs` ([`system_block`]);
/// `None` if it overflows. Mapped inputs' data is not in it ([`mapped`]).
pub fn system_block_len(inputs: &[Set], outputs: &[String]) -> Option<usize> {
    let items: usize = inputs.iter().map(|s| s.items.len()).sum();
    let tables = native::HEADER_SIZE
        + inputs.len() * native::SET_DESC_SIZE
        + items * native::ITEM_DESC_SIZE
        + outputs.len() * native::NAME_DESC_SIZE;
    let data_bytes = |i: &Item| if mapped(i).is_some() { 0 } else { i.data.len().next_multiple_of(8) };
    let item_bytes = |i: &Item| i.name.len().next_multiple_of(8) + data_bytes(i);
    let set_bytes = |s: &Set| s.name.len().next_multiple_of(8) + s.items.iter().map(item_bytes).sum::<usize>();
    let payload = inputs.iter().map(set_bytes).sum::<usize>()
        + outputs.iter().map(|n| n.len().next_multiple_of(8)).sum::<usize>();
    tables.checked_add(payload)
}

/// A block over pages of 4096 bytes that are not contiguous in the kernel's view (a
/// sandbox's mapped pages): each write is cut at page boundaries and handed to `write_page`
/// (page index, offset in the page, bytes within it), which answers whether the page was there.
pub struct Paged<F: FnMut(usize, usize, &[u8]) -> bool> {
    write_page: F,
    /// Whether every write reached its page.
    pub complete: bool,
}

impl<F: FnMut(usize, usize, &[u8]) -> bool> Paged<F> {
    pub fn new(write_page: F) -> Self {
        Self { write_page, complete: true }
    }
}

impl<F: FnMut(usize, usize, &[u8]) -> bool> BlockMemory for Paged<F> {
    fn write(&mut self, mut at: usize, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let offset = at % 4096;
            let (now, rest) = bytes.split_at(bytes.len().min(4096 - offset));
            self.complete &= (self.write_page)(at / 4096, offset, now);
            at += now.len();
            bytes = rest;
        }
    }
}

/// Writes the system data block ([`system_block`]) into `buf`, which is zero and at least
/// [`system_block_len`] bytes long (the kernel writes it straight into the sandbox's pages).
pub fn write_system_block(
    buf: &mut (impl BlockMemory + ?Sized),
    base: u64,
    inputs: &[Set],
    outputs: &[String],
    heap: u64,
    heap_len: u64,
) {
    let items: usize = inputs.iter().map(|s| s.items.len()).sum();
    let tables = native::HEADER_SIZE
        + inputs.len() * native::SET_DESC_SIZE
        + items * native::ITEM_DESC_SIZE
        + outputs.len() * native::NAME_DESC_SIZE;
    let mut strings = tables; // where the next name or data goes
    // Where the next mapped input's pages go: the page after the block (worked out at the
    // first one).
    let mut pages_at = None;
    let mut place = |buf: &mut _, bytes: &[u8]| -> u64 {
        let at = strings;
        BlockMemory::write(buf, at, bytes);
        strings += bytes.len().next_multiple_of(8);
        base + at as u64
    };

    let buf = &mut *buf;
    put(buf, 0, native::MAGIC);
    put(buf, 8, native::VERSION);
    put(buf, 16, inputs.len() as u64);
    let sets_at = native::HEADER_SIZE;
    put(buf, 24, base + sets_at as u64);
    let mut items_at = sets_at + inputs.len() * native::SET_DESC_SIZE;
    let outputs_at = items_at + items * native::ITEM_DESC_SIZE;
    put(buf, 32, outputs.len() as u64);
    put(buf, 40, base + outputs_at as u64);
    put(buf, 48, heap);
    put(buf, 56, heap_len);

    for (i, set) in inputs.iter().enumerate() {
        let desc = sets_at + i * native::SET_DESC_SIZE;
        let name = place(buf, set.name.as_bytes());
        put(buf, desc, name);
        put(buf, desc + 8, set.name.len() as u64);
        put(buf, desc + 16, set.items.len() as u64);
        put(buf, desc + 24, base + items_at as u64);
        for item in &set.items {
            let info = engine::abi::item_info(item).encode();
            buf.write(items_at, &info);
            let name = place(buf, item.name.as_bytes());
            let data = match mapped(item) {
                Some(pages) => {
                    let block_end =
                        || base + system_block_len(inputs, outputs).unwrap_or(0).next_multiple_of(PAGE_SIZE) as u64;
                    let at = *pages_at.get_or_insert_with(block_end);
                    pages_at = Some(at + (pages.len() * PAGE_SIZE) as u64);
                    at
                }
                None => place(buf, &item.data),
            };
            put(buf, items_at + 24, name);
            put(buf, items_at + 32, data);
            items_at += native::ITEM_DESC_SIZE;
        }
    }
    for (i, name) in outputs.iter().enumerate() {
        let desc = outputs_at + i * native::NAME_DESC_SIZE;
        let ptr = place(buf, name.as_bytes());
        put(buf, desc, ptr);
        put(buf, desc + 8, name.len() as u64);
    }
}

/// The registers of a `syscall` out of a sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCall {
    /// `rax`: the call number ([`native::SYS_EXIT`] is the only one).
    pub number: u64,
    /// `rdi`: the status.
    pub status: u64,
    /// `rsi`: the output table or the message.
    pub pointer: u64,
    /// `rdx`: the output count or the message length.
    pub len: u64,
    /// The address of the `syscall` instruction.
    pub rip: u64,
}

/// A sandbox's memory as the exit call's checks read it.
pub trait ExitMemory {
    /// Calls `f` with the `len` bytes at `addr`, in one piece; `None` (and `f` not called) when
    /// any of them is memory the sandbox does not have.
    fn read_with<R>(&mut self, addr: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R>;
}

/// A function that copies a range out (`None` outside the sandbox's memory) is such a memory.
impl<F: FnMut(u64, u64) -> Option<Vec<u8>>> ExitMemory for F {
    fn read_with<R>(&mut self, addr: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self(addr, len).map(|bytes| f(&bytes))
    }
}

/// What an exit call means for the run: the outputs (each descriptor checked against the
/// declaration and `limits`, each range read through `memory`, which answers `None` for memory
/// the sandbox does not have) or the error. `heap_len` goes into an out-of-memory message.
/// Each name and each item's data is copied once, straight into what the outputs keep.
pub fn exit_outcome(
    exit: &ExitCall,
    output_names: &[String],
    limits: &Limits,
    heap_len: u64,
    mut memory: impl ExitMemory,
) -> Result<Completion, EngineError> {
    if exit.number != native::SYS_EXIT {
        let message = format!(
            "syscall number {} at rip={}: the only system call is the exit call ({})",
            exit.number,
            Redacted(exit.rip),
            native::SYS_EXIT
        );
        return Err(Trap::new(TrapKind::InvalidInstruction, message).into());
    }
    let oob = |what: &str, addr: u64, len: u64| -> EngineError {
        Trap::new(
            TrapKind::MemoryOutOfBounds,
            format!("exit call: {what} at {} of {len} bytes lies outside the sandbox's memory", Redacted(addr)),
        )
        .into()
    };
    match exit.status {
        native::EXIT_DONE => {}
        native::EXIT_ABORT | native::EXIT_OUT_OF_MEMORY => {
            let len = exit.len.min(MAX_ABORT_MESSAGE);
            let message = match memory.read_with(exit.pointer, len, |bytes| String::from_utf8_lossy(bytes).into_owned())
            {
                Some(mut text) => {
                    if len < exit.len {
                        text.push_str(" …(truncated)");
                    }
                    text
                }
                None => format!("(message unreadable: {})", oob("message", exit.pointer, len)),
            };
            if exit.status == native::EXIT_OUT_OF_MEMORY {
                let detail = format!("the heap ({heap_len} bytes) refused an allocation, then: {message}");
                return Err(EngineError::OutOfMemory { limit_bytes: limits.memory_bytes, detail });
            }
            return Err(EngineError::Aborted { message });
        }
        other => {
            let message = format!("exit call with unknown status {other}");
            return Err(Trap::new(TrapKind::InvalidInstruction, message).into());
        }
    }
    if exit.len > limits.max_output_items as u64 {
        return Err(BadOutput::TooManyItems { limit: limits.max_output_items }.into());
    }
    let table_len = exit.len * native::OUT_DESC_SIZE as u64;
    let unreadable = || oob("output table", exit.pointer, table_len);
    // The whole table first (nothing copied), then each descriptor as it is checked.
    memory.read_with(exit.pointer, table_len, |_| ()).ok_or_else(unreadable)?;
    let mut sets: Vec<Set> = output_names.iter().map(|n| Set::new(n.as_str())).collect();
    let mut bytes_total = 0u64;
    for i in 0..exit.len {
        let at = exit.pointer.saturating_add(i * native::OUT_DESC_SIZE as u64);
        let desc = memory
            .read_with(at, native::OUT_DESC_SIZE as u64, |desc| -> [u8; native::OUT_DESC_SIZE] {
                desc.try_into().unwrap_or([0; native::OUT_DESC_SIZE])
            })
            .ok_or_else(unreadable)?;
        let u32_at = |at: usize| u32::from_le_bytes(desc[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| u64::from_le_bytes(desc[at..at + 8].try_into().unwrap_or_default());
        let (set, flags, key, name_ptr, name_len, data_ptr, data_len) =
            (u32_at(0), u32_at(4), u64_at(8), u64_at(16), u64_at(24), u64_at(32), u64_at(40));
        let declared = sets.len();
        let Some(out) = sets.get_mut(set as usize) else {
            return Err(BadOutput::UndeclaredSet { index: u64::from(set), declared }.into());
        };
        if flags & !ITEM_FLAG_KEY != 0 {
            return Err(BadOutput::ReservedFlags { flags }.into());
        }
        bytes_total = bytes_total.saturating_add(data_len);
        if bytes_total > limits.max_output_bytes {
            return Err(BadOutput::TooLarge { attempted: bytes_total, limit: limits.max_output_bytes }.into());
        }
        if name_len > MAX_NAME_LEN as u64 {
            let reason = format!("{name_len} bytes, the limit is {MAX_NAME_LEN}");
            return Err(BadOutput::InvalidName { reason }.into());
        }
        let name = memory
            .read_with(name_ptr, name_len, |name| core::str::from_utf8(name).map(model::Name::from))
            .ok_or_else(|| oob("item name", name_ptr, name_len))?
            .map_err(|e| BadOutput::InvalidName { reason: format!("not UTF-8 ({e})") })?;
        // A large item goes into whole pages of its own, so that a native function it is handed
        // to next can have them mapped rather than copied ([`MAP_MIN`]).
        let data = memory
            .read_with(data_ptr, data_len, Bytes::copy_out)
            .ok_or_else(|| oob("item data", data_ptr, data_len))?
            .ok_or_else(|| EngineError::internal(format!("no memory for a {data_len}-byte output item")))?;
        let key = (flags & ITEM_FLAG_KEY != 0).then_some(key);
        out.items.push(Item { name, key, data });
    }
    Ok(Completion { outputs: sets, instructions: None })
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn user_addresses_show_and_kernel_addresses_do_not() {
        assert_eq!(format!("{}", Redacted(0x40_1000)), "0x401000");
        assert_eq!(format!("{}", Redacted(KERNEL_HALF - 1)), "0x7fffffffffff");
        for kernel in [KERNEL_HALF, 0xffff_8000_0010_0000, 0xffff_ffff_8020_0000, u64::MAX] {
            let shown = format!("{}", Redacted(kernel));
            assert_eq!(shown, "kernel address");
            assert!(!shown.contains("0x"), "{shown}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::TimeBudget;

    const BASE: u64 = 0x1_0000_0000;

    fn word(block: &[u8], addr: u64) -> u64 {
        let at = (addr - BASE) as usize;
        u64::from_le_bytes(block[at..at + 8].try_into().unwrap())
    }

    fn bytes(block: &[u8], addr: u64, len: u64) -> &[u8] {
        let at = (addr - BASE) as usize;
        &block[at..at + len as usize]
    }

    fn set(name: &str, items: &[(&str, Option<u64>, &[u8])]) -> Set {
        Set {
            name: name.into(),
            items: items.iter().map(|(n, k, d)| Item { name: (*n).into(), key: *k, data: Bytes::from(*d) }).collect(),
        }
    }

    #[test]
    fn a_block_written_into_a_page_is_the_same_block() {
        let inputs = [set("texts", &[("a.txt", None, b"hello"), ("b", Some(7), b"")]), set("k", &[("k", None, b"3")])];
        let outputs = ["counts".into()];
        let block = system_block(BASE, &inputs, &outputs, 0x2_0000_0000, 4096).unwrap();
        assert_eq!(system_block_len(&inputs, &outputs), Some(block.len()));
        let mut page = alloc::vec![0u8; 4096];
        write_system_block(page.as_mut_slice(), BASE, &inputs, &outputs, 0x2_0000_0000, 4096);
        assert_eq!(&page[..block.len()], &block[..]);
        assert!(page[block.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_block_written_over_pages_is_the_same_block() {
        // Items across page boundaries, of odd sizes, a name spanning two pages.
        let big: alloc::vec::Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
        let odd: alloc::vec::Vec<u8> = (0..4093u32).map(|i| (i % 13) as u8 + 1).collect();
        let inputs = [set("big", &[("x", None, &big), ("odd", Some(1), &odd)]), set("s", &[("n", None, b"12345")])];
        let outputs = ["out".into()];
        let block = system_block(BASE, &inputs, &outputs, 0x2_0000_0000, 4096).unwrap();
        assert!(block.len() > 3 * 4096);
        let mut pages = alloc::vec![[0u8; 4096]; block.len().div_ceil(4096)];
        let mut writes = 0;
        let mut paged = Paged::new(|page: usize, offset: usize, bytes: &[u8]| {
            writes += 1;
            assert!(offset + bytes.len() <= 4096, "a write within one page");
            match pages.get_mut(page) {
                Some(p) => {
                    p[offset..offset + bytes.len()].copy_from_slice(bytes);
                    true
                }
                None => false,
            }
        });
        write_system_block(&mut paged, BASE, &inputs, &outputs, 0x2_0000_0000, 4096);
        assert!(paged.complete);
        let flat: alloc::vec::Vec<u8> = pages.iter().flatten().copied().collect();
        assert_eq!(&flat[..block.len()], &block[..]);
        assert!(flat[block.len()..].iter().all(|b| *b == 0));
        assert!(writes > 0);

        // A page the memory does not have: the block is reported incomplete.
        let mut missing = Paged::new(|page: usize, _: usize, _: &[u8]| page < 2);
        write_system_block(&mut missing, BASE, &inputs, &outputs, 0x2_0000_0000, 4096);
        assert!(!missing.complete);
    }

    #[test]
    fn system_block_reads_back() {
        let inputs = [set("texts", &[("a.txt", None, b"hello"), ("b", Some(7), b"")]), set("k", &[("k", None, b"3")])];
        let outputs = ["counts".into()];
        let block = system_block(BASE, &inputs, &outputs, 0x2_0000_0000, 4096).unwrap();
        assert_eq!(word(&block, BASE), native::MAGIC);
        assert_eq!(word(&block, BASE + 8), native::VERSION);
        assert_eq!(word(&block, BASE + 16), 2);
        assert_eq!((word(&block, BASE + 48), word(&block, BASE + 56)), (0x2_0000_0000, 4096));
        let sets = word(&block, BASE + 24);
        for (i, expected) in inputs.iter().enumerate() {
            let desc = sets + (i * native::SET_DESC_SIZE) as u64;
            let name = bytes(&block, word(&block, desc), word(&block, desc + 8));
            assert_eq!(name, expected.name.as_bytes());
            assert_eq!(word(&block, desc + 16), expected.items.len() as u64);
            for (j, item) in expected.items.iter().enumerate() {
                let d = word(&block, desc + 24) + (j * native::ITEM_DESC_SIZE) as u64;
                let info = engine::abi::ItemInfo::decode(bytes(&block, d, 24).try_into().unwrap());
                assert_eq!(info, engine::abi::item_info(item));
                assert_eq!(bytes(&block, word(&block, d + 24), u64::from(info.name_len)), item.name.as_bytes());
                assert_eq!(bytes(&block, word(&block, d + 32), info.data_len), &item.data[..]);
                assert_eq!(word(&block, d + 24) % 8, 0, "names are 8-byte aligned");
            }
        }
        assert_eq!(word(&block, BASE + 32), 1);
        let out = word(&block, BASE + 40);
        assert_eq!(bytes(&block, word(&block, out), word(&block, out + 8)), b"counts");
    }

    #[test]
    fn large_items_in_pages_are_mapped_after_the_block() {
        let big: Vec<u8> = (0..MAP_MIN as u32 + 5000).map(|i| (i % 249) as u8).collect();
        let paged = Bytes::copy_to_pages(&big).unwrap();
        let item = |name: &str, data: Bytes| Item { name: name.into(), key: None, data };
        let inputs = [
            Set {
                name: "s".into(),
                items: alloc::vec![item("small", Bytes::from(&b"abc"[..])), item("big", paged.clone())],
            },
            // The same bytes as heap bytes, and a part of the paged buffer: copied.
            Set {
                name: "t".into(),
                items: alloc::vec![
                    item("heap", Bytes::from(big.clone())),
                    item("part", paged.slice(1..big.len()).unwrap()),
                    item("again", paged.clone())
                ],
            },
        ];
        let outputs = ["o".into()];
        let block_len = system_block_len(&inputs, &outputs).unwrap();
        let copied = 2 * big.len() - 1;
        assert!(block_len > copied && block_len < copied + 4096, "two large copies in the block: {block_len}");
        let mapped_pages: Vec<&[Page]> = mapped_inputs(&inputs).collect();
        assert_eq!(mapped_pages.len(), 2, "the paged item, twice");
        let pages = big.len().div_ceil(PAGE_SIZE);
        assert_eq!(
            system_region_len(&inputs, &outputs),
            Some(block_len.next_multiple_of(PAGE_SIZE) + 2 * pages * PAGE_SIZE)
        );

        let block = system_block(BASE, &inputs, &outputs, 0x2_0000_0000, 4096).unwrap();
        let first = BASE + block_len.next_multiple_of(PAGE_SIZE) as u64;
        let data_of = |set: usize, index: usize| {
            let desc = word(&block, BASE + 24) + (set * native::SET_DESC_SIZE) as u64;
            let d = word(&block, desc + 24) + (index * native::ITEM_DESC_SIZE) as u64;
            let info = engine::abi::ItemInfo::decode(bytes(&block, d, 24).try_into().unwrap());
            (word(&block, d + 32), info.data_len)
        };
        assert_eq!(data_of(0, 1), (first, big.len() as u64), "the first mapped item: the page after the block");
        assert_eq!(data_of(1, 2), (first + (pages * PAGE_SIZE) as u64, big.len() as u64), "the next one after it");
        assert_eq!(bytes(&block, data_of(1, 0).0, big.len() as u64), &big[..], "heap bytes are copied");
        assert_eq!(bytes(&block, data_of(1, 1).0, big.len() as u64 - 1), &big[1..], "a part is copied");
        assert_eq!(bytes(&block, data_of(0, 0).0, 3), b"abc");
    }

    #[test]
    fn empty_block_is_just_a_header() {
        let block = system_block(BASE, &[], &[], 0, 0).unwrap();
        assert_eq!(block.len(), native::HEADER_SIZE);
    }

    /// A sandbox's memory for `exit_outcome`: one region at `start`.
    struct Memory {
        start: u64,
        bytes: Vec<u8>,
    }

    impl Memory {
        fn new() -> Self {
            Self { start: 0x2_0000_0000, bytes: Vec::new() }
        }

        fn put(&mut self, bytes: &[u8]) -> u64 {
            let at = self.start + self.bytes.len() as u64;
            self.bytes.extend_from_slice(bytes);
            self.bytes.resize(self.bytes.len().next_multiple_of(8), 0);
            at
        }

        fn desc(&mut self, set: u32, flags: u32, key: u64, name: &[u8], data: &[u8]) -> Vec<u8> {
            let (n, d) = (self.put(name), self.put(data));
            let mut out = Vec::new();
            out.extend_from_slice(&set.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for v in [key, n, name.len() as u64, d, data.len() as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out
        }

        fn read(&self, addr: u64, len: u64) -> Option<Vec<u8>> {
            let at = addr.checked_sub(self.start)?;
            let end = at.checked_add(len)?;
            self.bytes.get(at as usize..usize::try_from(end).ok()?).map(<[u8]>::to_vec)
        }
    }

    fn limits() -> Limits {
        Limits::new(1 << 20, TimeBudget::from_millis(10))
    }

    fn run(memory: &Memory, exit: ExitCall) -> Result<Completion, EngineError> {
        let outputs = ["out".into(), "extra".into()];
        exit_outcome(&exit, &outputs, &limits(), 4096, |a, l| memory.read(a, l))
    }

    fn done(memory: &mut Memory, descs: &[Vec<u8>]) -> ExitCall {
        let table: Vec<u8> = descs.concat();
        let pointer = memory.put(&table);
        ExitCall { number: 0, status: native::EXIT_DONE, pointer, len: descs.len() as u64, rip: 0x40_1000 }
    }

    #[test]
    fn outputs_are_collected() {
        let mut m = Memory::new();
        let descs =
            [m.desc(0, 0, 0, b"a", b"first"), m.desc(1, ITEM_FLAG_KEY, 9, b"b", b""), m.desc(0, 0, 0, b"c", b"x")];
        let exit = done(&mut m, &descs);
        let c = run(&m, exit).unwrap();
        assert_eq!(c.outputs.len(), 2);
        assert_eq!(c.outputs[0].name, "out");
        let names: Vec<&str> = c.outputs[0].items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(&c.outputs[0].items[0].data[..], b"first");
        assert_eq!(c.outputs[1].items[0].key, Some(9));
    }

    #[test]
    fn a_large_output_is_kept_in_pages_of_its_own() {
        let mut m = Memory::new();
        let large = alloc::vec![3u8; MAP_MIN];
        let descs = [m.desc(0, 0, 0, b"big", &large), m.desc(0, 0, 0, b"small", &large[1..])];
        let exit = done(&mut m, &descs);
        let c = run(&m, exit).unwrap();
        let [big, small] = &c.outputs[0].items[..] else { panic!("{:?}", c.outputs) };
        assert!(big.data.pages().is_some(), "an output of MAP_MIN bytes is in pages a next native function can map");
        assert!(mapped(big).is_some());
        assert!(small.data.pages().is_none() && mapped(small).is_none());
        assert_eq!((&big.data[..], &small.data[..]), (&large[..], &large[1..]));
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let cases: [(u32, u32, &[u8], u64, &str); 4] = [
            (2, 0, b"a", 1, "output set index 2"),
            (0, 2, b"a", 1, "reserved bits"),
            (0, 0, &[0xff], 1, "not UTF-8"),
            (0, 0, &[b'n'; 256], 1, "256 bytes"),
        ];
        for (set, flags, name, _, expected) in cases {
            let mut m = Memory::new();
            let d = m.desc(set, flags, 0, name, b"data");
            let exit = done(&mut m, &[d]);
            let e = run(&m, exit).unwrap_err();
            assert_eq!(e.code(), "bad_output", "{e}");
            assert!(alloc::format!("{e}").contains(expected), "{e}");
        }
    }

    #[test]
    fn ranges_outside_the_sandbox_are_traps() {
        let mut m = Memory::new();
        let mut d = m.desc(0, 0, 0, b"a", b"data");
        d[32..40].copy_from_slice(&0xffff_8000_0000_0000u64.to_le_bytes());
        let exit = done(&mut m, &[d]);
        let e = run(&m, exit).unwrap_err();
        assert_eq!(e.code(), "function_trap");
        assert!(alloc::format!("{e}").contains("item data at kernel address"), "{e}");
        let exit = ExitCall { pointer: 0x10, len: 1, ..ExitCall::default() };
        assert!(alloc::format!("{}", run(&m, exit).unwrap_err()).contains("output table"));
    }

    #[test]
    fn limits_hold() {
        let m = Memory::new();
        let e = run(&m, ExitCall { len: 1 << 40, ..ExitCall::default() }).unwrap_err();
        assert!(matches!(e, EngineError::BadOutput(BadOutput::TooManyItems { .. })), "{e}");
        let mut m = Memory::new();
        let mut d = m.desc(0, 0, 0, b"a", b"data");
        d[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let exit = done(&mut m, &[d]);
        assert!(matches!(run(&m, exit).unwrap_err(), EngineError::BadOutput(BadOutput::TooLarge { .. })));
    }

    #[test]
    fn failures_and_violations() {
        let mut m = Memory::new();
        let msg = m.put(b"it broke");
        let abort = ExitCall { status: native::EXIT_ABORT, pointer: msg, len: 8, ..ExitCall::default() };
        assert_eq!(run(&m, abort).unwrap_err(), EngineError::Aborted { message: "it broke".into() });
        let oom = ExitCall { status: native::EXIT_OUT_OF_MEMORY, ..abort };
        assert_eq!(run(&m, oom).unwrap_err().code(), "out_of_memory");
        let unreadable = ExitCall { pointer: 8, ..abort };
        assert!(alloc::format!("{}", run(&m, unreadable).unwrap_err()).contains("message unreadable"));
        let long = ExitCall { len: 1 << 20, ..abort };
        assert!(alloc::format!("{}", run(&m, long).unwrap_err()).contains("message unreadable"));
        let other = ExitCall { number: 60, rip: 0x40_0010, ..ExitCall::default() };
        let e = run(&m, other).unwrap_err();
        assert!(matches!(&e, EngineError::Trap(t) if t.kind == TrapKind::InvalidInstruction), "{e}");
        assert!(alloc::format!("{e}").contains("syscall number 60 at rip=0x400010"), "{e}");
        let status = ExitCall { status: 9, ..ExitCall::default() };
        assert!(alloc::format!("{}", run(&m, status).unwrap_err()).contains("unknown status 9"));
    }
}
