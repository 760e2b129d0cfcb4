//! The Pappus data model: items, sets, function declarations, the tenant registry and the
//! invoke wire formats. `no_std` + `alloc`; everything here runs and is tested on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod item;

pub use item::{Bytes, Item, MAX_NAME_LEN, Set};
