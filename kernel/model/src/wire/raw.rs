//! The raw mode: a request body that is the data of one item (`curl --data-binary @file`), and a
//! response body that is the data of the one output item, for clients that want bytes, not JSON.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::error::{SetRef, WireError, WireErrorKind, path};
use super::limits::WireLimits;
use crate::name;
use crate::{Bytes, Item, Set};

/// The body as one item (named `item_name`, no key) of one set named `set_name` (the function's
/// single input set). The body is not copied.
pub fn decode(body: Bytes, set_name: &str, item_name: &str, limits: &WireLimits) -> Result<Vec<Set>, WireError> {
    let set = || path(SetRef::Name(set_name), None, None);
    let item = |field| path(SetRef::Name(set_name), Some(0), Some(field));
    if limits.max_sets == 0 {
        return Err(WireError::new(String::new(), WireErrorKind::TooManySets { max: 0 }));
    }
    if limits.max_items == 0 {
        return Err(WireError::new(set(), WireErrorKind::TooManyItems { max: 0 }));
    }
    name::validate_set_name_within(set_name, limits.max_name_len)
        .map_err(|e| WireError::new(set(), WireErrorKind::BadName(e)))?;
    name::validate_item_name_within(item_name, limits.max_name_len)
        .map_err(|e| WireError::new(item("name"), WireErrorKind::BadName(e)))?;
    if body.len() > limits.max_total_bytes {
        return Err(WireError::new(item("data"), WireErrorKind::TooManyBytes { max: limits.max_total_bytes }));
    }
    let item = Item { name: item_name.into(), key: None, data: body };
    Ok(vec![Set { name: set_name.into(), items: vec![item] }])
}

/// The data of the only item of the only set, without copying; any other shape is an error
/// (the client should ask for JSON).
pub fn encode(sets: &[Set]) -> Result<Bytes, WireError> {
    let items = sets.iter().fold(0usize, |n, s| n.saturating_add(s.items.len()));
    match sets {
        [Set { items: only, .. }] => match only.as_slice() {
            [item] => Ok(item.data.clone()),
            _ => Err(WireError::new(String::new(), WireErrorKind::NotOneItem { sets: 1, items })),
        },
        _ => Err(WireError::new(String::new(), WireErrorKind::NotOneItem { sets: sets.len(), items })),
    }
}
