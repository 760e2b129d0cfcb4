//! What a function sees: its input sets and items, and its declared output sets.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::abi::ItemInfo;
use crate::transport::Transport;

/// The transport behind a [`Context`]. On wasm32 it is the host imports themselves, called
/// statically: the compiler inlines the SDK into the function and links only the imports the
/// function uses (a `dyn Transport` kept every import and an indirect call per query; matmul's
/// fuel 6,600 -> 6,336, `cargo xtask bench e2e`). Elsewhere (the host mock, the native
/// transport) any [`Transport`].
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Tx<'a> = dyn Transport + 'a;
#[cfg(target_arch = "wasm32")]
pub(crate) type Tx<'a> = crate::wasm::Imports;

/// The function's view of one run, handed to the entry function.
///
/// Input and output sets are addressed by their position in the function's declaration
/// (`inputs=A,B&outputs=C` at registration: `A` is input 0, `C` is output 0), or by the declared
/// name. Everything here is a query to the platform; nothing is copied until asked for.
pub struct Context<'t> {
    transport: &'t Tx<'t>,
}

impl<'t> Context<'t> {
    pub(crate) fn new(transport: &'t Tx<'t>) -> Self {
        Self { transport }
    }

    /// How many input sets the function declared.
    #[inline]
    pub fn input_count(&self) -> usize {
        self.transport.input_set_count()
    }

    /// Input set `index` (declaration order), if declared.
    #[inline]
    pub fn input(&self, index: usize) -> Option<InputSet<'_>> {
        let len = self.transport.input_item_count(index)?;
        Some(InputSet { transport: self.transport, index, len })
    }

    /// The input set declared as `name`.
    pub fn input_named(&self, name: &str) -> Option<InputSet<'_>> {
        self.inputs().find(|set| set.name() == name)
    }

    /// All input sets, in declaration order.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = InputSet<'_>> + '_ {
        (0..self.input_count()).map(|index| {
            let len = self.transport.input_item_count(index).unwrap_or(0);
            InputSet { transport: self.transport, index, len }
        })
    }

    /// How many output sets the function declared.
    #[inline]
    pub fn output_count(&self) -> usize {
        self.transport.output_set_count()
    }

    /// Output set `index` (declaration order), if declared.
    #[inline]
    pub fn output(&self, index: usize) -> Option<Output<'_>> {
        (index < self.output_count()).then_some(Output { transport: self.transport, index })
    }

    /// The output set declared as `name`.
    pub fn output_named(&self, name: &str) -> Option<Output<'_>> {
        (0..self.output_count())
            .find(|&index| read_name(|buf| self.transport.output_set_name(index, buf)).as_deref() == Some(name))
            .map(|index| Output { transport: self.transport, index })
    }

    /// Appends an item to output set `set`. An undeclared set, an over-long name, or output
    /// beyond the run's limits ends the run with a `bad_output` error: this does not return then.
    pub fn push(&self, set: usize, name: &str, key: Option<u64>, data: &[u8]) {
        self.transport.output_push(set, name, key, data);
    }
}

/// One input set: a named, ordered list of items.
#[derive(Clone, Copy)]
pub struct InputSet<'c> {
    transport: &'c Tx<'c>,
    index: usize,
    len: usize,
}

impl<'c> InputSet<'c> {
    /// Its position in the declaration.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its declared name.
    pub fn name(&self) -> String {
        read_name(|buf| self.transport.input_set_name(self.index, buf)).unwrap_or_default()
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Item `index`, if there is one.
    #[inline]
    pub fn item(&self, index: usize) -> Option<InputItem<'c>> {
        let info = self.transport.input_item_info(self.index, index)?;
        Some(InputItem { transport: self.transport, set: self.index, index, info })
    }

    /// Its items, in order.
    #[inline]
    pub fn items(&self) -> impl ExactSizeIterator<Item = InputItem<'c>> + 'c {
        let (transport, set) = (self.transport, self.index);
        (0..self.len).map(move |index| {
            let info = transport.input_item_info(set, index).unwrap_or_default();
            InputItem { transport, set, index, info }
        })
    }
}

/// One input item: a name, an optional key, and bytes, read on demand.
#[derive(Clone, Copy)]
pub struct InputItem<'c> {
    transport: &'c Tx<'c>,
    set: usize,
    index: usize,
    info: ItemInfo,
}

impl InputItem<'_> {
    /// Its position in its set.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its name.
    pub fn name(&self) -> String {
        // The descriptor gave its length: an empty name (a raw invoke's body) needs no call.
        if self.info.name_len == 0 {
            return String::new();
        }
        read_name(|buf| self.transport.input_item_name(self.set, self.index, buf)).unwrap_or_default()
    }

    /// Its name's bytes, read into `buf` without allocating, when `buf` is long enough (the
    /// length is known from the item's descriptor); `None` when it is not, then use
    /// [`name`](Self::name). For comparing names: `item.name_into(&mut [0; 8]) == Some(b"a")`
    /// costs no allocation and no UTF-8 check (the platform's names are UTF-8).
    #[inline]
    pub fn name_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let len = usize::try_from(self.info.name_len).ok()?;
        let buf = buf.get_mut(..len)?;
        if len > 0 && self.transport.input_item_name(self.set, self.index, buf) != Some(len) {
            return None;
        }
        Some(buf)
    }

    /// Its key, if it has one (`keyed` distribution and joins use it).
    pub fn key(&self) -> Option<u64> {
        self.info.key()
    }

    /// The length of its data in bytes.
    pub fn len(&self) -> u64 {
        self.info.data_len
    }

    /// Whether its data is empty.
    pub fn is_empty(&self) -> bool {
        self.info.data_len == 0
    }

    /// All its data, copied into a new vector.
    #[inline]
    pub fn data(&self) -> Vec<u8> {
        // Only an item larger than the address space fails; it reads as empty.
        let Ok(len) = usize::try_from(self.info.data_len) else { return Vec::new() };
        // On wasm32: read straight into a new vector's capacity (no zeroing first).
        #[cfg(target_arch = "wasm32")]
        {
            self.transport.read_all(self.set, self.index, len)
        }
        // One zeroed allocation of the exact size, then the reads: growing an empty vector
        // (`read_into`'s reserve and resize) costs a wasm function about 340 more instructions
        // per item (matmul's fuel, `cargo xtask bench e2e`).
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut data = vec![0u8; len];
            let filled = self.fill(&mut data);
            data.truncate(filled);
            data
        }
    }

    /// All its data, into `buf` (cleared first), reusing `buf`'s allocation: functions that read
    /// many items keep one buffer, which matters because the SDK's allocator never frees.
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<(), crate::Error> {
        let len = usize::try_from(self.info.data_len).map_err(|_| {
            crate::Error::from(alloc::format!("item is too large to read here ({} bytes)", self.info.data_len))
        })?;
        buf.clear();
        buf.resize(len, 0);
        let filled = self.fill(buf);
        buf.truncate(filled);
        Ok(())
    }

    /// Reads its data from the start into `buf` until `buf` is full or the data ends; returns
    /// the count read.
    fn fill(&self, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
            match self.read(filled as u64, rest) {
                0 => break,
                n => filled += n,
            }
        }
        filled
    }

    /// Copies data from `offset` into `buf` and returns how many bytes it copied (0 at the end):
    /// for items too large to hold at once.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> usize {
        self.transport.input_item_read(self.set, self.index, offset, buf).unwrap_or(0)
    }
}

/// A declared output set, to append items to.
#[derive(Clone, Copy)]
pub struct Output<'c> {
    transport: &'c Tx<'c>,
    index: usize,
}

impl Output<'_> {
    /// Its position in the declaration.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its declared name.
    pub fn name(&self) -> String {
        read_name(|buf| self.transport.output_set_name(self.index, buf)).unwrap_or_default()
    }

    /// Appends an item without a key. See [`Context::push`] for what ends the run.
    #[inline]
    pub fn push(&self, name: &str, data: &[u8]) {
        self.transport.output_push(self.index, name, None, data);
    }

    /// Appends an item with a key.
    pub fn push_keyed(&self, name: &str, key: u64, data: &[u8]) {
        self.transport.output_push(self.index, name, Some(key), data);
    }

    /// Appends an item with an optional key (e.g. forwarding an input item's key).
    pub fn push_item(&self, name: &str, key: Option<u64>, data: &[u8]) {
        self.transport.output_push(self.index, name, key, data);
    }
}

/// Reads a name through `copy` (which copies up to the buffer's length and returns the full
/// length): one call for names up to 256 bytes, two for longer ones.
fn read_name(copy: impl Fn(&mut [u8]) -> Option<usize>) -> Option<String> {
    let mut small = [0u8; 256];
    let len = copy(&mut small)?;
    let bytes = if len <= small.len() {
        small.get(..len)?.to_vec()
    } else {
        let mut large = vec![0u8; len];
        let len = copy(&mut large)?.min(large.len());
        large.truncate(len);
        large
    };
    Some(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}
