//! The invoke wire formats: how a request body becomes input sets and output sets become a
//! response body. Three formats, all bounded by [`WireLimits`] and all reporting a [`WireError`]
//! that says what is wrong and where (docs/wire-formats.md describes them for clients):
//!
//! - [`json`]: `{"sets":{"A":[{"name":"x","key":1,"data":"<base64>"}]}}`, the default;
//! - [`raw`]: the body is the data of one item (requests), or of the only output item (responses);
//! - [`binary`]: `application/x-pappus-sets`, compact framing decoded without copying item data.
//!
//! [`Encoder`] writes JSON or binary a few items at a time, for answers too large for one step.

mod b64;
pub mod binary;
mod encoder;
mod error;
pub mod json;
mod limits;
pub mod raw;

pub use encoder::Encoder;
pub use error::{WireError, WireErrorKind};
pub use limits::WireLimits;

use alloc::collections::BTreeSet;
use alloc::string::String;

/// Sets a document may hold before [`repeats`] keeps their names in a tree.
const FEW_SETS: usize = 8;

/// Whether `name` repeats one of `earlier`, the names of the sets before it in one document.
/// While there are fewer than [`FEW_SETS`] they are compared one by one, which allocates
/// nothing (a document of one set used to cost a copy of its name and a tree node); from then on
/// `tree` holds them (filled with `earlier` the first time), so many sets stay cheap to check.
pub(crate) fn repeats<'a>(
    name: &str,
    mut earlier: impl ExactSizeIterator<Item = &'a str>,
    tree: &mut BTreeSet<String>,
) -> bool {
    if earlier.len() < FEW_SETS {
        return earlier.any(|n| n == name);
    }
    if tree.is_empty() {
        tree.extend(earlier.map(String::from));
    }
    !tree.insert(String::from(name))
}

/// A wire format, as named by HTTP media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    Raw,
    Binary,
}

impl WireFormat {
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Raw => "application/octet-stream",
            Self::Binary => "application/x-pappus-sets",
        }
    }

    /// The format a media type names (parameters such as `; charset=utf-8` and case ignored).
    pub fn from_media_type(value: &str) -> Option<Self> {
        // Bytes, not `str::split`/`trim`: this runs for every invocation (HTTP's optional white
        // space is ASCII).
        let value = value.as_bytes();
        let essence = value.iter().position(|&b| b == b';').map_or(value, |end| &value[..end]).trim_ascii();
        [Self::Json, Self::Raw, Self::Binary]
            .into_iter()
            .find(|f| kcore::ascii::eq_ignore_case(f.media_type().as_bytes(), essence))
    }

    /// How to read a request body given its `Content-Type`: JSON and binary when named, raw for
    /// anything else or nothing, because `curl --data-binary @file` sends a form content type.
    pub fn for_request(content_type: Option<&str>) -> Self {
        match content_type.and_then(Self::from_media_type) {
            Some(Self::Json) => Self::Json,
            Some(Self::Binary) => Self::Binary,
            _ => Self::Raw,
        }
    }

    /// How to write a response given the request's `Accept`: the first listed type that is one of
    /// ours (quality values are not weighed), else JSON.
    pub fn for_response(accept: Option<&str>) -> Self {
        accept.into_iter().flat_map(|a| a.split(',')).find_map(Self::from_media_type).unwrap_or(Self::Json)
    }
}
