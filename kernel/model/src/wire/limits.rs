//! Bounds on what a decoder accepts, so that a request can never make the kernel allocate more
//! than its operator allowed, whatever the bytes say.

use alloc::collections::BTreeSet;

use super::error::{SetRef, WireError, WireErrorKind, path};
use crate::{MAX_NAME_LEN, Set, name};

/// The bounds every decoder enforces, while it decodes (a count in a header is checked before
/// anything is allocated for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireLimits {
    /// The most sets in one document.
    pub max_sets: usize,
    /// The most items in one document, over all its sets.
    pub max_items: usize,
    /// The most item data in one document, in bytes, over all its items (names and framing not
    /// counted: the HTTP layer bounds the body as a whole).
    pub max_total_bytes: usize,
    /// The longest set or item name, in bytes; never more than [`MAX_NAME_LEN`].
    pub max_name_len: usize,
}

impl WireLimits {
    /// The defaults: 64 sets, 65,536 items, 64 MiB of data, names up to [`MAX_NAME_LEN`] bytes.
    pub const DEFAULT: Self =
        Self { max_sets: 64, max_items: 65_536, max_total_bytes: 64 << 20, max_name_len: MAX_NAME_LEN };

    /// No bounds but the data model's own (names up to [`MAX_NAME_LEN`] bytes). The encoders
    /// check their input against these.
    pub const MODEL: Self =
        Self { max_sets: usize::MAX, max_items: usize::MAX, max_total_bytes: usize::MAX, max_name_len: MAX_NAME_LEN };

    /// Checks sets built in memory (e.g. a function's outputs) against these limits and the data
    /// model: set names valid and unique, item names valid, counts and sizes within bounds.
    pub fn check(&self, sets: &[Set]) -> Result<(), WireError> {
        let whole = || alloc::string::String::new();
        if sets.len() > self.max_sets {
            return Err(WireError::new(whole(), WireErrorKind::TooManySets { max: self.max_sets }));
        }
        let mut seen = BTreeSet::new();
        let (mut items, mut bytes) = (0usize, 0usize);
        for (index, set) in sets.iter().enumerate() {
            let at = |item, field| path(SetRef::Name(&set.name), item, field);
            name::validate_set_name_within(&set.name, self.max_name_len)
                .map_err(|e| WireError::new(at(None, None), WireErrorKind::BadName(e)))?;
            if super::repeats(&set.name, sets[..index].iter().map(|s| s.name.as_str()), &mut seen) {
                return Err(WireError::new(at(None, None), WireErrorKind::DuplicateSet));
            }
            for (i, item) in set.items.iter().enumerate() {
                items = items.saturating_add(1);
                if items > self.max_items {
                    return Err(WireError::new(at(Some(i), None), WireErrorKind::TooManyItems { max: self.max_items }));
                }
                name::validate_item_name_within(&item.name, self.max_name_len)
                    .map_err(|e| WireError::new(at(Some(i), Some("name")), WireErrorKind::BadName(e)))?;
                bytes = bytes.saturating_add(item.data.len());
                if bytes > self.max_total_bytes {
                    let kind = WireErrorKind::TooManyBytes { max: self.max_total_bytes };
                    return Err(WireError::new(at(Some(i), Some("data")), kind));
                }
            }
        }
        Ok(())
    }
}

impl Default for WireLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
