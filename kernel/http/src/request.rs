//! The request a connection hands to its handler.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use kcore::ascii::eq_ignore_case;

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
    /// An absolute-form target (`http://host/p`) is reduced to its path.
    pub path: String,
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
#[derive(Clone, Debug, Default)]
pub struct Headers {
    text: Vec<u8>,
    /// Per field: where its name starts and ends, and where its value starts and ends, in `text`.
    fields: Vec<[u32; 4]>,
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

    /// The fields of a parsed head: `head` copied, each of `fields` (slices of `head`) kept as
    /// its ranges. A field that is not a slice of `head` is copied after it.
    pub(crate) fn from_head<'h>(head: &'h [u8], fields: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8])>) -> Self {
        let mut headers = Self { text: Vec::with_capacity(head.len()), fields: Vec::with_capacity(fields.len()) };
        headers.text.extend_from_slice(head);
        let base = head.as_ptr() as usize;
        let range = |part: &[u8]| {
            let start = (part.as_ptr() as usize).wrapping_sub(base);
            (start <= head.len() && part.len() <= head.len() - start)
                .then_some([start as u32, (start + part.len()) as u32])
        };
        for (name, value) in fields {
            match (range(name), range(value)) {
                (Some([ns, ne]), Some([vs, ve])) => headers.fields.push([ns, ne, vs, ve]),
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
        self.fields.push([name_start, name_end, name_end, self.text.len() as u32]);
    }

    /// Every field as (name bytes, value).
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(move |&[ns, ne, vs, ve]| {
            let text = |start: u32, end: u32| self.text.get(start as usize..end as usize).unwrap_or_default();
            (text(ns, ne), text(vs, ve))
        })
    }

    /// The first value of field `name`, as bytes (values may hold non-UTF-8 octets).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields().find(|(n, _)| eq_ignore_case(n, name.as_bytes())).map(|(_, v)| v)
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
