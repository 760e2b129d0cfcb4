//! Encoding output sets a piece at a time, so a server can answer a large result between other
//! work: [`Encoder::write`] writes at most so many items (and about so many bytes) per call.
//! The bytes are exactly those of [`json::encode`](super::json::encode) and
//! [`binary::encode`](super::binary::encode), which are this encoder run in one call; the sets
//! are checked against the data model as they are written (set names when a set starts, item
//! names item by item), with the same errors as [`WireLimits::check`](super::WireLimits::check)
//! with [`WireLimits::MODEL`](super::WireLimits::MODEL), in the same order.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::WireFormat;
use super::binary::{ITEM_HAS_KEY, MAGIC, VERSION};
use super::error::{SetRef, WireError, WireErrorKind, path};
use crate::{MAX_NAME_LEN, Set, json_text, name};

/// The answer being written. JSON is kept as bytes too (valid UTF-8 by construction: ASCII
/// punctuation and base64, and names that are `str`), so base64 is written into it in place.
#[derive(Debug)]
enum Body {
    Json(Vec<u8>),
    Binary(Vec<u8>),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Self::Json(b) | Self::Binary(b) => b.len(),
        }
    }
}

/// Sets being encoded in JSON or binary, a few items per [`write`](Self::write).
///
/// `S` holds the sets: owned (`Vec<Set>`) or borrowed (`&[Set]`).
#[derive(Debug)]
pub struct Encoder<S> {
    sets: S,
    body: Body,
    /// The set being written, and the next item of it; `item` is `None` until its header is.
    set: usize,
    item: Option<usize>,
    names: BTreeSet<String>,
    done: bool,
}

impl<S: AsRef<[Set]>> Encoder<S> {
    /// An encoder of `sets` in `format` (JSON or binary; raw has no pieces: see
    /// [`raw::encode`](super::raw::encode)). Nothing is written yet. `capacity` reserves the
    /// body's size when the caller knows it (0: grow as it goes).
    pub fn new(format: WireFormat, sets: S, capacity: usize) -> Option<Self> {
        let body = match format {
            WireFormat::Json => {
                let mut out = Vec::with_capacity(capacity);
                out.extend_from_slice(b"{\"sets\":{");
                Body::Json(out)
            }
            WireFormat::Binary => {
                let mut out = Vec::with_capacity(capacity);
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&[VERSION, 0]);
                Body::Binary(out)
            }
            WireFormat::Raw => return None,
        };
        Some(Self { sets, body, set: 0, item: None, names: BTreeSet::new(), done: false })
    }

    /// Writes up to `max_items` more items (set headers come free), stopping early once the body
    /// has grown by `max_bytes`. Returns whether the body is complete. An error (a set or item
    /// name the data model refuses) ends the encoding.
    pub fn write(&mut self, max_items: usize, max_bytes: usize) -> Result<bool, WireError> {
        if self.done {
            return Ok(true);
        }
        // The binary set count, before the first set.
        if self.set == 0
            && self.item.is_none()
            && let Body::Binary(out) = &mut self.body
            && out.len() == MAGIC.len() + 2
        {
            let count = u32::try_from(self.sets.as_ref().len())
                .map_err(|_| WireError::new("header".into(), WireErrorKind::TooManySets { max: u32::MAX as usize }))?;
            out.extend_from_slice(&count.to_le_bytes());
        }
        let start = self.body.len();
        let mut written = 0usize;
        while let Some(set) = self.sets.as_ref().get(self.set) {
            let at = |item, field| path(SetRef::Name(&set.name), item, field);
            let next = match self.item {
                Some(next) => next,
                None => {
                    name::validate_set_name_within(&set.name, MAX_NAME_LEN)
                        .map_err(|e| WireError::new(at(None, None), WireErrorKind::BadName(e)))?;
                    let earlier = self.sets.as_ref()[..self.set].iter().map(|s| s.name.as_str());
                    if super::repeats(&set.name, earlier, &mut self.names) {
                        return Err(WireError::new(at(None, None), WireErrorKind::DuplicateSet));
                    }
                    match &mut self.body {
                        Body::Json(out) => {
                            if self.set > 0 {
                                out.push(b',');
                            }
                            json_text::push_string_bytes(out, &set.name);
                            out.extend_from_slice(b":[");
                        }
                        Body::Binary(out) => {
                            let max = u32::MAX as usize;
                            let count = u32::try_from(set.items.len())
                                .map_err(|_| WireError::new(at(None, None), WireErrorKind::TooManyItems { max }))?;
                            push_name(out, &set.name);
                            out.extend_from_slice(&count.to_le_bytes());
                        }
                    }
                    0
                }
            };
            let mut index = next;
            while let Some(item) = set.items.get(index) {
                if written >= max_items || self.body.len() - start >= max_bytes {
                    self.item = Some(index);
                    return Ok(false);
                }
                name::validate_item_name_within(&item.name, MAX_NAME_LEN)
                    .map_err(|e| WireError::new(at(Some(index), Some("name")), WireErrorKind::BadName(e)))?;
                match &mut self.body {
                    Body::Json(out) => {
                        if index > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"{\"name\":");
                        json_text::push_string_bytes(out, &item.name);
                        if let Some(key) = item.key {
                            out.extend_from_slice(b",\"key\":");
                            out.extend_from_slice(kcore::ascii::decimal(key, &mut [0; 20]));
                        }
                        out.extend_from_slice(b",\"data\":\"");
                        super::b64::encode(&item.data, out);
                        out.extend_from_slice(b"\"}");
                    }
                    Body::Binary(out) => {
                        push_name(out, &item.name);
                        match item.key {
                            Some(key) => {
                                out.push(ITEM_HAS_KEY);
                                out.extend_from_slice(&key.to_le_bytes());
                            }
                            None => out.push(0),
                        }
                        out.extend_from_slice(&(item.data.len() as u64).to_le_bytes());
                        out.extend_from_slice(&item.data);
                    }
                }
                index += 1;
                written += 1;
            }
            if let Body::Json(out) = &mut self.body {
                out.push(b']');
            }
            self.set += 1;
            self.item = None;
        }
        if let Body::Json(out) = &mut self.body {
            out.extend_from_slice(b"}}");
        }
        self.done = true;
        Ok(true)
    }

    /// The body written: complete once [`write`](Self::write) returned `true`.
    pub fn into_bytes(self) -> Vec<u8> {
        match self.body {
            Body::Json(b) | Body::Binary(b) => b,
        }
    }

    /// The JSON body (empty for binary).
    pub(crate) fn into_string(self) -> String {
        match self.body {
            // Always UTF-8 (see `Body`); were it not, the text would still be valid JSON text.
            Body::Json(b) => {
                String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
            Body::Binary(_) => String::new(),
        }
    }
}

/// Writes a name checked against [`MAX_NAME_LEN`] (at most 255 bytes) with its length byte.
pub(crate) fn push_name(out: &mut Vec<u8>, name: &str) {
    let bytes = name.as_bytes();
    let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or_default());
}
