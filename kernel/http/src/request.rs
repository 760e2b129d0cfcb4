//! The request a connection hands to its handler.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use kcore::ascii::eq_ignore_case;
use smol_str::SmolStr;

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the client asks for keep-alive.
    Http10,
    /// HTTP/1.1: the connection stays open unless either side says `Connection: close`.
    Http11,
}

/// A request's method token as sent (methods are case-sensitive). The common methods are kept
/// without an allocation; it reads as a `&str`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Method(Cow<'static, str>);

impl Method {
    pub fn new(token: &str) -> Self {
        const COMMON: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
        match COMMON.iter().find(|m| **m == token) {
            Some(m) => Self(Cow::Borrowed(m)),
            None => Self(Cow::Owned(token.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::ops::Deref for Method {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl From<&str> for Method {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl From<String> for Method {
    fn from(token: String) -> Self {
        Self::new(&token)
    }
}

impl From<Method> for Cow<'static, str> {
    fn from(method: Method) -> Self {
        method.0
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::fmt::Debug for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&*self.0, f)
    }
}

/// A complete request: head and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method token as sent (methods are case-sensitive), e.g. `GET`.
    pub method: Method,
    /// The path, without query string, as sent (not percent-decoded); `*` for `OPTIONS *`.
    /// An absolute-form target (`http://host/p`) is reduced to its path. Inline up to 23 bytes.
    pub path: SmolStr,
    /// What followed the first `?` of the target, if there was one (not percent-decoded).
    pub query: Option<String>,
    /// The request's HTTP version.
    pub version: Version,
    /// The header fields, in order.
    pub headers: Headers,
    /// The body, de-chunked; empty when the request had none.
    pub body: Vec<u8>,
}

/// Header fields in the order received; lookups ignore ASCII case in names.
///
/// All names and values live in one buffer, each field ranges into it: a parsed head costs two
/// allocations however many fields it has (it cost two per field), and its fields are not
/// copied one by one: the buffer is a copy of the whole head, the ranges where httparse found
/// them (~250 guest instructions a request of six fields in `cargo xtask profile
/// matmul3-native`). Equality is of the fields, not of the buffer.
///
/// The fields every request is asked for ([`KNOWN`]: `Authorization`, `Content-Type`, ...) are
/// found without a walk: the first field of each such name is noted as it is added, and a
/// lookup of one of those names goes straight to it (a lookup compared every field's name,
/// several lookups a request).
#[derive(Clone, Debug, Default)]
pub struct Headers {
    text: Vec<u8>,
    /// Per field: where its name starts and ends, and where its value starts and ends, in `text`.
    fields: Vec<[u32; 4]>,
    /// Per name of [`KNOWN`]: its first field's index plus one, 0 when there is none.
    first: [u32; KNOWN.len()],
}

/// The field names [`Headers`] finds without a walk, lowercase; [`known`] gives their index
/// (`HOST`... below), which the head parser's checks use too.
const KNOWN: [&str; 8] =
    ["host", "authorization", "content-type", "content-length", "connection", "expect", "transfer-encoding", "accept"];
pub(crate) const HOST: usize = 0;
pub(crate) const AUTHORIZATION: usize = 1;
pub(crate) const CONTENT_TYPE: usize = 2;
pub(crate) const CONTENT_LENGTH: usize = 3;
pub(crate) const CONNECTION: usize = 4;
pub(crate) const EXPECT: usize = 5;
pub(crate) const TRANSFER_ENCODING: usize = 6;
const ACCEPT: usize = 7;

/// Which of [`KNOWN`] `name` is (ASCII case ignored), if any: a name is compared only with
/// those of its length (a test holds this to `KNOWN`).
pub(crate) fn known(name: &[u8]) -> Option<usize> {
    let is = |k: usize| eq_ignore_case(name, KNOWN[k].as_bytes()).then_some(k);
    match name.len() {
        4 => is(HOST),
        6 => is(EXPECT).or_else(|| is(ACCEPT)),
        10 => is(CONNECTION),
        12 => is(CONTENT_TYPE),
        13 => is(AUTHORIZATION),
        14 => is(CONTENT_LENGTH),
        17 => is(TRANSFER_ENCODING),
        _ => None,
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.fields().eq(other.fields())
    }
}

impl Eq for Headers {}

impl Headers {
    /// An empty set of fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fields of a parsed head: `head` copied, each of `fields` (slices of `head`, with what
    /// [`known`] says of the name) kept as its ranges. A field that is not a slice of `head` is
    /// copied after it.
    pub(crate) fn from_head<'h>(
        head: &'h [u8],
        fields: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8], Option<usize>)>,
    ) -> Self {
        let mut headers = Self {
            text: Vec::with_capacity(head.len()),
            fields: Vec::with_capacity(fields.len()),
            first: [0; KNOWN.len()],
        };
        headers.text.extend_from_slice(head);
        let base = head.as_ptr() as usize;
        let range = |part: &[u8]| {
            let start = (part.as_ptr() as usize).wrapping_sub(base);
            (start <= head.len() && part.len() <= head.len() - start)
                .then_some([start as u32, (start + part.len()) as u32])
        };
        for (name, value, known) in fields {
            match (range(name), range(value)) {
                (Some([ns, ne]), Some([vs, ve])) => headers.add([ns, ne, vs, ve], known),
                _ => headers.push_bytes(name, value),
            }
        }
        headers
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<[u8]>) {
        self.push_bytes(name.as_ref().as_bytes(), value.as_ref());
    }

    /// Appends a field whose name is known to be UTF-8 (an HTTP token, as httparse checks).
    pub(crate) fn push_bytes(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.text.len() as u32;
        self.text.extend_from_slice(name);
        let name_end = self.text.len() as u32;
        self.text.extend_from_slice(value);
        self.add([name_start, name_end, name_end, self.text.len() as u32], known(name));
    }

    /// Appends a field's ranges; `known` is [`known`] of its name.
    fn add(&mut self, field: [u32; 4], known: Option<usize>) {
        if let Some(k) = known
            && self.first[k] == 0
        {
            // (Field offsets are u32s into `text`: there are fewer than 2^32 fields.)
            self.first[k] = self.fields.len() as u32 + 1;
        }
        self.fields.push(field);
    }

    /// Field `index` as (name bytes, value).
    fn field(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let &[ns, ne, vs, ve] = self.fields.get(index)?;
        let text = |start: u32, end: u32| self.text.get(start as usize..end as usize).unwrap_or_default();
        Some((text(ns, ne), text(vs, ve)))
    }

    /// Every field as (name bytes, value).
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        (0..self.fields.len()).filter_map(|i| self.field(i))
    }

    /// The first value of field `name`, as bytes (values may hold non-UTF-8 octets).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match known(name.as_bytes()) {
            Some(k) => self.field(self.first[k].checked_sub(1)? as usize).map(|(_, v)| v),
            None => self.fields().find(|(n, _)| eq_ignore_case(n, name.as_bytes())).map(|(_, v)| v),
        }
    }

    /// The first value of field `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// Every value of field `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields().filter(move |(n, _)| eq_ignore_case(n, name.as_bytes())).map(|(_, v)| v)
    }

    /// Whether field `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All fields as (name as sent, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Names were pushed as `&str` or are HTTP tokens: always UTF-8.
        self.fields().map(|(n, v)| (core::str::from_utf8(n).unwrap_or_default(), v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use proptest::prelude::*;

    /// Field names: every known one in two cases, near misses of their lengths, and others.
    fn name() -> impl Strategy<Value = String> {
        let names = KNOWN.iter().flat_map(|k| [String::from(*k), k.to_ascii_uppercase()]).chain(
            ["hosts", "acceptx", "content-typ", "x-thing", "Content-Lengths", "authorizatioN"].map(String::from),
        );
        proptest::sample::select(names.collect::<Vec<_>>())
    }

    #[test]
    fn every_known_name_is_known_by_its_length() {
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(known(k.as_bytes()), Some(i), "{k}");
            assert_eq!(known(k.to_ascii_uppercase().as_bytes()), Some(i), "{k}");
        }
        assert_eq!(known(b"accepts"), None);
        assert_eq!(known(b"hots"), None);
    }

    proptest! {
        /// A lookup by name gives the first field of that name, ASCII case ignored, whether the
        /// name is one found without a walk or not; for parsed heads and pushed fields alike.
        #[test]
        fn lookups_find_the_first_field_of_a_name(
            fields in proptest::collection::vec((name(), "[a-z0-9]{0,6}"), 0..12),
            parsed in any::<bool>(),
        ) {
            let headers = if parsed {
                let head: String = fields.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
                let mut ranges = Vec::new();
                let mut at = 0;
                for (n, v) in &fields {
                    let name = &head.as_bytes()[at..at + n.len()];
                    ranges.push((name, &head.as_bytes()[at + n.len() + 2..at + n.len() + 2 + v.len()], known(name)));
                    at += n.len() + v.len() + 4;
                }
                Headers::from_head(head.as_bytes(), ranges.into_iter())
            } else {
                let mut headers = Headers::new();
                for (n, v) in &fields {
                    headers.push(n, v);
                }
                headers
            };
            let mut asked: Vec<String> = KNOWN.iter().map(|k| String::from(*k)).collect();
            asked.extend(["HOST", "Authorization", "x-thing", "hosts", "none"].map(String::from));
            for want in &asked {
                let first = fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(want)).map(|(_, v)| v.as_bytes());
                prop_assert_eq!(headers.get(want), first, "{}", want);
            }
        }
    }
}
