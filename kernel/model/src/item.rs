//! Items and sets: the only data a function ever sees.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::{Deref, Range};

/// The longest item or set name, in bytes of UTF-8 (DESIGN.md, "The programming model").
pub const MAX_NAME_LEN: usize = 255;

/// Immutable shared bytes: a range of one reference-counted buffer.
///
/// Cloning is O(1) and slicing copies nothing, so a request body can be cut into items, and an
/// `each` fan-out can hand the same item to many instances, without copying payloads. The
/// buffer is the `Vec` it was made from, kept as it is: a request body, a decoded JSON item or a
/// function's output becomes `Bytes` without being copied (an `Arc<[u8]>` would copy it behind
/// its counts, and hold both copies for a moment).
#[derive(Clone)]
pub struct Bytes {
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Bytes {
    /// Bytes that own `buf` whole.
    pub fn new(buf: Vec<u8>) -> Self {
        let len = buf.len();
        Self { buf: Arc::new(buf), range: 0..len }
    }

    /// A sub-range of these bytes sharing the same buffer, or `None` if `range` is out of bounds.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let start = self.range.start + range.start;
        Some(Self { buf: self.buf.clone(), range: start..start + range.len() })
    }

    /// An empty value (no allocation is shared with anything).
    pub fn empty() -> Self {
        Self::new(Vec::new())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Self::new(v.to_vec())
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl Eq for Bytes {}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} B)", self.len())
    }
}

/// One unit of data: a name, an optional key (used by `keyed` distribution and joins), and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub key: Option<u64>,
    pub data: Bytes,
}

/// A named, ordered list of items.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Set {
    pub name: String,
    pub items: Vec<Item>,
}

impl Set {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), items: Vec::new() }
    }

    /// Total payload bytes of all items (names not counted).
    pub fn data_len(&self) -> usize {
        self.items.iter().map(|i| i.data.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn bytes_keep_the_vec_they_are_made_from() {
        let body = vec![7u8; 4096];
        let at = body.as_ptr();
        let bytes = Bytes::from(body);
        assert_eq!(bytes.as_ptr(), at, "a body becomes bytes without a copy");
        let item = bytes.slice(100..200).unwrap();
        assert_eq!(item.as_ptr(), at.wrapping_add(100), "a slice shares the buffer");
        assert_eq!((item.len(), item.clone().as_ptr()), (100, item.as_ptr()));
        assert!(bytes.slice(4000..4097).is_none());
        assert!(Bytes::empty().is_empty());
    }
}
