//! Items and sets: the only data a function ever sees.

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
/// its counts, and hold both copies for a moment). Or it is whole pages of its own
/// ([`Bytes::copy_to_pages`]), which a native sandbox can have mapped read-only rather than
/// copied into its memory ([`Bytes::pages`]).
///
/// Empty bytes hold no buffer (nothing allocated).
#[derive(Clone)]
pub struct Bytes {
    /// `None`: no bytes (`range` empty).
    buf: Option<Arc<Buffer>>,
    range: Range<usize>,
}

enum Buffer {
    Heap(Vec<u8>),
    /// `len` bytes at the start of whole 4 KiB pages, zero after them.
    Pages {
        pages: Vec<Page>,
        len: usize,
    },
}

/// A 4 KiB page of bytes, page-aligned: a vector of them is whole pages that hold nothing else.
#[derive(Clone, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
#[repr(C, align(4096))]
pub struct Page(pub [u8; PAGE_SIZE]);

/// The size of a [`Page`].
pub const PAGE_SIZE: usize = 4096;

/// Items at least this long are kept in whole pages of their own when the platform copies them
/// out of a function, as its outputs ([`Bytes::copy_out`]), so that a native function given
/// them next can have those pages mapped rather than copied. Under it a copy costs less than
/// the TLB flush that unmapping them after the run brings.
pub const PAGED_MIN: usize = 64 << 10;

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Pages { pages, len } => zerocopy::IntoBytes::as_bytes(pages.as_slice()).get(..*len).unwrap_or(&[]),
        }
    }
}

impl Bytes {
    /// Bytes that own `buf` whole.
    pub fn new(buf: Vec<u8>) -> Self {
        let len = buf.len();
        Self { buf: Some(Arc::new(Buffer::Heap(buf))), range: 0..len }
    }

    /// A copy of `data` in whole pages of its own, zero after it; `None` when the heap has no
    /// room for them.
    pub fn copy_to_pages(data: &[u8]) -> Option<Self> {
        // Allocated zeroed (no page value on the stack to clone).
        let mut pages = <Page as zerocopy::FromZeros>::new_vec_zeroed(data.len().div_ceil(PAGE_SIZE)).ok()?;
        zerocopy::IntoBytes::as_mut_bytes(pages.as_mut_slice())[..data.len()].copy_from_slice(data);
        let len = data.len();
        Some(Self { buf: Some(Arc::new(Buffer::Pages { pages, len })), range: 0..len })
    }

    /// A copy of `data`, a function's output: in pages of its own ([`copy_to_pages`]) when it
    /// is at least [`PAGED_MIN`] long, else on the heap. `None` when the heap has no room for
    /// the pages.
    ///
    /// [`copy_to_pages`]: Self::copy_to_pages
    pub fn copy_out(data: &[u8]) -> Option<Self> {
        if data.len() >= PAGED_MIN { Self::copy_to_pages(data) } else { Some(Self::from(data)) }
    }

    /// The pages these bytes are the start of, when they are a whole buffer of pages
    /// ([`copy_to_pages`](Self::copy_to_pages)): page-aligned, every byte of them this value's
    /// or zero. `None` for heap bytes and for a part of a buffer.
    pub fn pages(&self) -> Option<&[Page]> {
        match self.buf.as_deref()? {
            Buffer::Pages { pages, len } if self.range == (0..*len) => Some(pages),
            _ => None,
        }
    }

    /// Their length (without a look at the buffer).
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A sub-range of these bytes sharing the same buffer, or `None` if `range` is out of bounds.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let start = self.range.start + range.start;
        Some(Self { buf: self.buf.clone(), range: start..start + range.len() })
    }

    /// An empty value (nothing allocated).
    pub const fn empty() -> Self {
        Self { buf: None, range: 0..0 }
    }

    /// Stands for `range` of a buffer that is still being filled, until [`resolve`](Self::resolve)
    /// makes it a slice of that buffer: the JSON decoder's items, whose data share one buffer
    /// decoded as the document is read. No bytes can be read from it before (it reads as empty);
    /// the decoder resolves every one it made before handing its sets out.
    pub(crate) const fn pending(range: Range<usize>) -> Self {
        Self { buf: None, range }
    }

    /// A [`pending`](Self::pending) range as a slice of `whole` (empty if it is not within it).
    pub(crate) fn resolve(&self, whole: &Bytes) -> Self {
        whole.slice(self.range.clone()).unwrap_or_else(Self::empty)
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().and_then(|b| b.bytes().get(self.range.clone())).unwrap_or(&[])
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        if v.is_empty() {
            return Self::empty();
        }
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

/// The name of a set or an item: text kept inline up to 23 bytes (every name a request path
/// makes is that short in practice: `a`, `matrices`, `product`), shared when longer; a clone
/// copies 24 bytes or counts a reference, never allocates. Why: `cargo xtask profile
/// matmul3-native` counted ~10 name strings made and freed per invoke (decoding, binding an
/// instance's inputs, collecting its outputs), ~2K guest instructions of the heap's and copies.
pub type Name = smol_str::SmolStr;

/// One unit of data: a name, an optional key (used by `keyed` distribution and joins), and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: Name,
    pub key: Option<u64>,
    pub data: Bytes,
}

/// A named, ordered list of items.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Set {
    pub name: Name,
    pub items: Vec<Item>,
}

impl Set {
    pub fn new(name: impl Into<Name>) -> Self {
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
        assert!(bytes.pages().is_none(), "heap bytes are not pages");
    }

    #[test]
    fn bytes_in_pages_are_whole_pages_of_their_own() {
        let data: alloc::vec::Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let bytes = Bytes::copy_to_pages(&data).unwrap();
        assert_eq!(&*bytes, &data[..]);
        let pages = bytes.pages().expect("whole pages");
        assert_eq!(pages.len(), 3);
        assert_eq!(pages.as_ptr() as usize % PAGE_SIZE, 0, "page-aligned");
        let all: alloc::vec::Vec<u8> = pages.iter().flat_map(|p| p.0).collect();
        assert_eq!(&all[..data.len()], &data[..]);
        assert!(all[data.len()..].iter().all(|&b| b == 0), "zero after the data");
        // A part of the buffer is not offered as pages (its pages hold other bytes too).
        let part = bytes.slice(1..data.len()).unwrap();
        assert!(part.pages().is_none());
        assert_eq!(&*part, &data[1..]);
        assert!(bytes.clone().pages().is_some());
        let empty = Bytes::copy_to_pages(&[]).unwrap();
        assert!(empty.is_empty() && empty.pages().is_some_and(|p| p.is_empty()));
    }

    #[test]
    fn copies_of_every_length_read_back_and_slice() {
        for len in 0..300 {
            let data: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let bytes = Bytes::from(&data[..]);
            assert_eq!(&*bytes, &data[..], "length {len}");
            assert_eq!(bytes.len(), len);
            assert!(bytes.pages().is_none());
            if len > 2 {
                let part = bytes.slice(1..len - 1).unwrap();
                assert_eq!(&*part, &data[1..len - 1], "a slice of length {len}");
            }
            assert!(bytes.slice(0..len + 1).is_none());
            assert_eq!(bytes, Bytes::from(data.clone()), "copies compare by their bytes");
        }
        let empty = Bytes::from(&[][..]);
        assert!(empty.is_empty() && empty.slice(0..0).is_some_and(|b| b.is_empty()));
        assert!(Bytes::empty().slice(0..1).is_none());
    }
}
