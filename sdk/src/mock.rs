//! A host-side stand-in for the platform, to unit-test function logic with `cargo test`.
//!
//! ```
//! use pappus_sdk::mock::{Mock, MockItem};
//! use pappus_sdk::{Context, Error};
//!
//! fn count(ctx: &mut Context) -> Result<(), Error> {
//!     let n = ctx.input(0).ok_or("no input")?.len();
//!     ctx.push(0, "count", None, n.to_string().as_bytes());
//!     Ok(())
//! }
//!
//! let out = Mock::new()
//!     .input("lines", [MockItem::new("a", "x"), MockItem::new("b", "y")])
//!     .output("count")
//!     .run(count)
//!     .unwrap();
//! assert_eq!(out[0].items[0].data, b"2");
//! ```
//!
//! It enforces what the engines enforce about output (declared sets, name length) and reports
//! it as a [`MockError`]; limits on memory and time are the engines' business.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use crate::abi::{ITEM_FLAG_KEY, ItemInfo};
use crate::context::Context;
use crate::entry::Entry;
use crate::error::Error;
use crate::transport::Transport;

/// The longest item name the platform accepts, in bytes (the ABI's limit).
pub use crate::abi::MAX_NAME_LEN;

/// An item as the mock holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockItem {
    /// The name.
    pub name: String,
    /// The key, if any.
    pub key: Option<u64>,
    /// The data.
    pub data: Vec<u8>,
}

impl MockItem {
    /// An item without a key.
    pub fn new(name: impl Into<String>, data: impl AsRef<[u8]>) -> Self {
        Self { name: name.into(), key: None, data: data.as_ref().to_vec() }
    }

    /// An item with a key.
    pub fn keyed(name: impl Into<String>, key: u64, data: impl AsRef<[u8]>) -> Self {
        Self { key: Some(key), ..Self::new(name, data) }
    }
}

/// A set as the mock holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockSet {
    /// The declared name.
    pub name: String,
    /// The items, in order.
    pub items: Vec<MockItem>,
}

/// Why a mocked run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockError {
    /// The function returned this error (the platform reports `function_aborted`).
    Failed(Error),
    /// The function wrote to an output set it did not declare (`bad_output`).
    UndeclaredSet {
        /// The index it used.
        index: usize,
        /// How many it declared.
        declared: usize,
    },
    /// The function wrote an item whose name is too long (`bad_output`).
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "function failed: {e}"),
            Self::UndeclaredSet { index, declared } => {
                write!(f, "output set index {index} is not declared ({declared} declared)")
            }
            Self::NameTooLong { len } => write!(f, "item name of {len} bytes, the limit is {MAX_NAME_LEN}"),
        }
    }
}

/// The inputs and output declarations of one mocked run.
#[derive(Clone, Debug, Default)]
pub struct Mock {
    inputs: Vec<MockSet>,
    outputs: Vec<String>,
}

impl Mock {
    /// No inputs, no outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the next input set, with its items.
    pub fn input(mut self, name: impl Into<String>, items: impl IntoIterator<Item = MockItem>) -> Self {
        self.inputs.push(MockSet { name: name.into(), items: items.into_iter().collect() });
        self
    }

    /// Declares the next output set.
    pub fn output(mut self, name: impl Into<String>) -> Self {
        self.outputs.push(name.into());
        self
    }

    /// Runs `main` and returns the output sets (all declared ones, in order), or why it failed.
    pub fn run(&self, main: Entry) -> Result<Vec<MockSet>, MockError> {
        let transport = MockTransport {
            mock: self,
            outputs: RefCell::new(
                self.outputs.iter().map(|name| MockSet { name: name.clone(), items: Vec::new() }).collect(),
            ),
            error: RefCell::new(None),
        };
        let result = main(&mut Context::new(&transport));
        if let Some(error) = transport.error.into_inner() {
            return Err(error);
        }
        result.map_err(MockError::Failed)?;
        Ok(transport.outputs.into_inner())
    }
}

struct MockTransport<'m> {
    mock: &'m Mock,
    outputs: RefCell<Vec<MockSet>>,
    /// The first bad output; like the engines, nothing is written after it.
    error: RefCell<Option<MockError>>,
}

impl MockTransport<'_> {
    fn item(&self, set: usize, item: usize) -> Option<&MockItem> {
        self.mock.inputs.get(set)?.items.get(item)
    }
}

/// Copies what fits of `src` into `dst` and returns `src`'s length.
fn copy_prefix(src: &[u8], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    src.len()
}

impl Transport for MockTransport<'_> {
    fn input_set_count(&self) -> usize {
        self.mock.inputs.len()
    }

    fn input_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        Some(copy_prefix(self.mock.inputs.get(set)?.name.as_bytes(), buf))
    }

    fn input_item_count(&self, set: usize) -> Option<usize> {
        Some(self.mock.inputs.get(set)?.items.len())
    }

    fn input_item_info(&self, set: usize, item: usize) -> Option<ItemInfo> {
        let item = self.item(set, item)?;
        Some(ItemInfo {
            name_len: u32::try_from(item.name.len()).unwrap_or(u32::MAX),
            flags: if item.key.is_some() { ITEM_FLAG_KEY } else { 0 },
            key: item.key.unwrap_or(0),
            data_len: item.data.len() as u64,
        })
    }

    fn input_item_name(&self, set: usize, item: usize, buf: &mut [u8]) -> Option<usize> {
        Some(copy_prefix(self.item(set, item)?.name.as_bytes(), buf))
    }

    fn input_item_read(&self, set: usize, item: usize, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let data = &self.item(set, item)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Some(n)
    }

    fn output_set_count(&self) -> usize {
        self.mock.outputs.len()
    }

    fn output_set_name(&self, set: usize, buf: &mut [u8]) -> Option<usize> {
        Some(copy_prefix(self.mock.outputs.get(set)?.as_bytes(), buf))
    }

    fn output_push(&self, set: usize, name: &str, key: Option<u64>, data: &[u8]) {
        let mut error = self.error.borrow_mut();
        if error.is_some() {
            return;
        }
        let mut outputs = self.outputs.borrow_mut();
        let declared = outputs.len();
        if name.len() > MAX_NAME_LEN {
            *error = Some(MockError::NameTooLong { len: name.len() });
        } else if let Some(out) = outputs.get_mut(set) {
            out.items.push(MockItem { name: name.into(), key, data: data.to_vec() });
        } else {
            *error = Some(MockError::UndeclaredSet { index: set, declared });
        }
    }
}
