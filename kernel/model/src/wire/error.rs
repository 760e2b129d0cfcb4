//! Wire-format errors: what is wrong, and where, as a path into the document
//! (`sets.A[3].data: invalid base64 at byte 17: not a base64 character`), so a client can fix
//! its request without guessing.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::name::{NameError, shorten};

/// What is wrong with a wire document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireErrorKind {
    /// Malformed JSON, or a JSON value of the wrong type; the parser's message, with its position.
    Json(String),
    /// A field this format does not define (shortened to 64 bytes).
    UnknownField(String),
    MissingField(&'static str),
    DuplicateField(&'static str),
    /// A second set with the same name.
    DuplicateSet,
    BadName(NameError),
    /// Base64 text that does not decode; `at_byte` is the offset in the base64 text, when known.
    InvalidBase64 {
        at_byte: Option<usize>,
        why: &'static str,
    },
    /// More sets than [`WireLimits::max_sets`](super::WireLimits::max_sets).
    TooManySets {
        max: usize,
    },
    /// More items, over all sets, than [`WireLimits::max_items`](super::WireLimits::max_items).
    TooManyItems {
        max: usize,
    },
    /// More item data, over all items, than [`WireLimits::max_total_bytes`](super::WireLimits::max_total_bytes).
    TooManyBytes {
        max: usize,
    },
    /// A binary document that does not start with the magic bytes `PSET`.
    BadMagic,
    UnsupportedVersion(u8),
    /// Flag bits that this version does not define are set.
    ReservedBits(u8),
    /// The document ends early: `needed` more bytes at byte `offset`, but only `left` remain.
    Truncated {
        offset: usize,
        needed: u64,
        left: usize,
    },
    /// Names must be UTF-8.
    InvalidUtf8,
    /// The node could not allocate room for `bytes` of decoded item data.
    OutOfMemory {
        bytes: usize,
    },
    /// Bytes after the last set, from byte `offset`.
    TrailingBytes {
        offset: usize,
    },
    /// A raw response needs exactly one output set holding exactly one item.
    NotOneItem {
        sets: usize,
        items: usize,
    },
}

/// An error in a wire document: [`kind`](Self::kind) says what, [`at`](Self::at) says where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    at: String,
    kind: WireErrorKind,
}

impl WireError {
    pub(crate) fn new(at: String, kind: WireErrorKind) -> Self {
        Self { at, kind }
    }

    /// Where: a path such as `sets.A[3].data`, `sets["two words"]`, `sets[#2].name` (the third
    /// set, before its name is known), `header`, `body`; empty for the document as a whole.
    pub fn at(&self) -> &str {
        &self.at
    }

    pub fn kind(&self) -> &WireErrorKind {
        &self.kind
    }

    /// Whether the node ran out of memory decoding (HTTP 503, retriable).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self.kind, WireErrorKind::OutOfMemory { .. })
    }

    /// Whether a [`WireLimits`](super::WireLimits) bound was exceeded (HTTP 413) rather than the
    /// document being malformed (HTTP 400).
    pub fn is_limit(&self) -> bool {
        matches!(
            self.kind,
            WireErrorKind::TooManySets { .. } | WireErrorKind::TooManyItems { .. } | WireErrorKind::TooManyBytes { .. }
        )
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.at.is_empty() {
            write!(f, "{}: ", self.at)?;
        }
        match &self.kind {
            WireErrorKind::Json(message) => write!(f, "{message}"),
            WireErrorKind::UnknownField(name) => write!(f, "unknown field {name:?}"),
            WireErrorKind::MissingField(name) => write!(f, "missing field {name:?}"),
            WireErrorKind::DuplicateField(name) => write!(f, "field {name:?} given twice"),
            WireErrorKind::DuplicateSet => f.write_str("a set of this name was already given"),
            WireErrorKind::BadName(e) => write!(f, "{e}"),
            WireErrorKind::InvalidBase64 { at_byte: Some(at), why } => write!(f, "invalid base64 at byte {at}: {why}"),
            WireErrorKind::InvalidBase64 { at_byte: None, why } => write!(f, "invalid base64: {why}"),
            WireErrorKind::TooManySets { max } => write!(f, "more than {max} sets"),
            WireErrorKind::TooManyItems { max } => write!(f, "more than {max} items in all"),
            WireErrorKind::TooManyBytes { max } => write!(f, "more than {max} bytes of item data in all"),
            WireErrorKind::BadMagic => f.write_str("not a Pappus sets document (it must start with \"PSET\")"),
            WireErrorKind::UnsupportedVersion(v) => write!(f, "unsupported version {v} (this build reads version 1)"),
            WireErrorKind::ReservedBits(bits) => write!(f, "reserved flag bits set ({bits:#04x})"),
            WireErrorKind::Truncated { offset, needed, left } => {
                write!(f, "truncated: {needed} bytes needed at byte {offset}, only {left} left")
            }
            WireErrorKind::InvalidUtf8 => f.write_str("not valid UTF-8"),
            WireErrorKind::OutOfMemory { bytes } => write!(f, "no memory for {bytes} bytes of item data now"),
            WireErrorKind::TrailingBytes { offset } => {
                write!(f, "unexpected bytes after the last set, from byte {offset}")
            }
            WireErrorKind::NotOneItem { sets, items } => write!(
                f,
                "a raw response needs exactly one output set with exactly one item, \
                 but there are {sets} sets and {items} items; ask for JSON instead"
            ),
        }
    }
}

/// A set, as an error path can name it.
#[derive(Clone, Copy)]
pub(crate) enum SetRef<'a> {
    Name(&'a str),
    /// Its position, when the name is not known (yet).
    Index(usize),
}

/// Renders an error path: `sets.A`, `sets["a b"]`, `sets[#2]`, then `[3]` for an item and
/// `.data` for a field. Long names are shortened so messages stay bounded.
pub(crate) fn path(set: SetRef<'_>, item: Option<usize>, field: Option<&str>) -> String {
    let mut out = match set {
        SetRef::Name(name) if is_plain(name) => format!("sets.{name}"),
        SetRef::Name(name) => format!("sets[{:?}]", shorten(name, 64)),
        SetRef::Index(index) => format!("sets[#{index}]"),
    };
    if let Some(item) = item {
        out.push_str(&format!("[{item}]"));
    }
    if let Some(field) = field {
        out.push('.');
        out.push_str(field);
    }
    out
}

/// Whether a name can be written bare in a path: short, and of identifier characters only.
fn is_plain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn paths() {
        assert_eq!(path(SetRef::Name("A"), Some(3), Some("data")), "sets.A[3].data");
        assert_eq!(path(SetRef::Name("two words"), None, None), "sets[\"two words\"]");
        assert_eq!(path(SetRef::Name("a.b"), Some(0), Some("name")), "sets[\"a.b\"][0].name");
        assert_eq!(path(SetRef::Index(2), None, Some("name")), "sets[#2].name");
        let long = "x".repeat(300);
        assert!(path(SetRef::Name(&long), None, None).len() < 80);
    }

    #[test]
    fn message_names_place_and_problem() {
        let e = WireError::new(
            path(SetRef::Name("A"), Some(3), Some("data")),
            WireErrorKind::InvalidBase64 { at_byte: Some(17), why: "not a base64 character" },
        );
        assert_eq!(e.to_string(), "sets.A[3].data: invalid base64 at byte 17: not a base64 character");
        assert!(!e.is_limit());
        let e = WireError::new(String::new(), WireErrorKind::TooManyBytes { max: 10 });
        assert_eq!(e.to_string(), "more than 10 bytes of item data in all");
        assert!(e.is_limit());
    }
}
