//! Responses: a small builder, JSON error bodies and serialisation to HTTP/1.1 bytes.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use kcore::ascii::eq_ignore_case;

/// An HTTP response to serialise.
///
/// Framing is the serialiser's job: a `content-length` (or `transfer-encoding`) header set here
/// is dropped and `content-length` is always written from the body's length (except for 1xx, 204
/// and 304, which carry none). A `connection: close` header set here makes the connection close
/// after this response; other `connection` headers are dropped. Header names or values containing
/// CR, LF or NUL are dropped rather than written, so a value built from client input cannot
/// inject header lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// The first `content-type` set, kept apart from the other fields: nearly every response
    /// has one, and so most have no list to allocate. Written first.
    content_type: Option<Cow<'static, str>>,
    /// The other header fields in order, as given (a `&'static str` name or value is kept
    /// without a copy).
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self { status, content_type: None, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header field (builder style).
    #[must_use]
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        if self.content_type.is_none() && eq_ignore_case(name.as_bytes(), b"content-type") {
            self.content_type = Some(value.into());
        } else {
            self.headers.push((name, value.into()));
        }
        self
    }

    /// Every header field set, in the order they are written.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let content_type = self.content_type.as_deref().map(|v| ("content-type", v));
        content_type.into_iter().chain(self.headers.iter().map(|(n, v)| (&**n, &**v)))
    }

    /// Sets the body (builder style).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A response whose body is the given JSON text, with `content-type: application/json`.
    pub fn json(status: u16, json: impl Into<Vec<u8>>) -> Self {
        Self::new(status).header("content-type", "application/json").body(json)
    }

    /// The front door's error shape: `{"error":{"code":…,"message":…}}` as JSON.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let mut json = String::with_capacity(32 + code.len() + message.len());
        json.push_str("{\"error\":{\"code\":");
        push_json_string(&mut json, code);
        json.push_str(",\"message\":");
        push_json_string(&mut json, message);
        json.push_str("}}");
        Self::json(status, json)
    }

    /// The first value of a header set on this response, by case-insensitive name.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.fields().find(|(n, _)| eq_ignore_case(n.as_bytes(), name.as_bytes())).map(|(_, v)| v)
    }

    /// Whether this response asks for the connection to close (`connection: close` set).
    pub fn asks_close(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| eq_ignore_case(n.as_bytes(), b"connection"))
            .any(|(_, v)| has_token(v.as_bytes(), b"close"))
    }

    /// Serialises the whole response. `close` adds `connection: close`.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = self.encode_head(Framing { close, keep_alive_1_0: false }, self.body.len());
        if carries_body(self.status) {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// The status line and header section, terminating empty line included, in a buffer with
    /// room for `body` more bytes behind it. Written piece by piece (no `core::fmt`: this is on
    /// every response's path).
    pub(crate) fn encode_head(&self, framing: Framing, body: usize) -> Vec<u8> {
        let mut head = Vec::new();
        self.encode_head_into(framing, body, &mut head);
        head
    }

    /// [`encode_head`](Self::encode_head) appended to `head` (a buffer kept from an earlier
    /// response, so that it need not be allocated).
    pub(crate) fn encode_head_into(&self, framing: Framing, body: usize, head: &mut Vec<u8>) {
        let fields: usize = self.fields().map(|(n, v)| n.len() + v.len() + 4).sum();
        head.reserve(96 + fields + body);
        let mut digits = [0; 20];
        if self.status == 200 {
            head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            head.extend_from_slice(b"HTTP/1.1 ");
            head.extend_from_slice(kcore::ascii::decimal(u64::from(self.status), &mut digits));
            head.push(b' ');
            head.extend_from_slice(reason(self.status).as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        for (name, value) in self.fields() {
            if name.is_empty() || framing_field(name) || !field_ok(name) || !field_ok(value) {
                continue;
            }
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                head.extend_from_slice(part);
            }
        }
        if carries_body(self.status) {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(kcore::ascii::decimal(self.body.len() as u64, &mut digits));
            head.extend_from_slice(b"\r\n");
        }
        if framing.close {
            head.extend_from_slice(b"connection: close\r\n");
        } else if framing.keep_alive_1_0 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
        head.extend_from_slice(b"\r\n");
    }
}

/// How the connection frames a response: whether it says it closes, or (for an HTTP/1.0 client
/// that asked for keep-alive) that it stays open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub close: bool,
    pub keep_alive_1_0: bool,
}

/// The interim response sent when a handler accepts an `Expect: 100-continue` request.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The bytes to send on a connection that gets no slot (503, JSON error, `retry-after: 1`,
/// `connection: close`); send them and close.
pub fn service_unavailable() -> Vec<u8> {
    Response::error(503, "service_unavailable", "no connection slot is free; retry later")
        .header("retry-after", "1")
        .to_bytes(true)
}

/// An error the connection detected on its own, with the status it answers with.
///
/// The connection has already queued the matching response (see [`HttpError::to_response`]) and
/// closes after it: after a framing error the start of the next request is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The status code: 400, 408, 411, 413, 431, 501 or 505.
    pub status: u16,
    /// The machine-readable code, e.g. `payload_too_large`.
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
}

impl HttpError {
    pub(crate) fn new(status: u16, message: impl ToString) -> Self {
        let code = match status {
            400 => "bad_request",
            408 => "request_timeout",
            411 => "length_required",
            413 => "payload_too_large",
            431 => "header_fields_too_large",
            501 => "not_implemented",
            503 => "service_unavailable",
            505 => "http_version_not_supported",
            _ => "error",
        };
        Self { status, code, message: message.to_string() }
    }

    pub(crate) fn bad_request(message: impl ToString) -> Self {
        Self::new(400, message)
    }

    /// The JSON error response for this error (503s say when to come back).
    pub fn to_response(&self) -> Response {
        let response = Response::error(self.status, self.code, &self.message);
        if self.status == 503 { response.header("retry-after", "1") } else { response }
    }
}

/// Whether responses with this status carry content (and so a `content-length`).
pub(crate) fn carries_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

fn field_ok(s: &str) -> bool {
    // Eight bytes at a time (this runs over every header of every response): a word has a
    // zero byte where `x - 0x01..` borrows into a byte whose top bit `x` did not have set.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let (words, tail) = s.as_bytes().as_chunks::<8>();
    let word_ok = |w: &[u8; 8]| {
        let x = u64::from_le_bytes(*w);
        !(has_zero(x) || has_zero(x ^ (ONES * u64::from(b'\r'))) || has_zero(x ^ (ONES * u64::from(b'\n'))))
    };
    words.iter().all(word_ok) && !tail.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// Whether `name` is a field the serialiser writes itself (`content-length`,
/// `transfer-encoding`, `connection`).
fn framing_field(name: &str) -> bool {
    match name.len() {
        10 => eq_ignore_case(name.as_bytes(), b"connection"),
        14 => eq_ignore_case(name.as_bytes(), b"content-length"),
        17 => eq_ignore_case(name.as_bytes(), b"transfer-encoding"),
        _ => false,
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| eq_ignore_case(t.trim_ascii(), token))
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The reason phrase for a status code ("" for codes not listed, which HTTP allows).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-at-a-time check says what a byte-by-byte one says, wherever the bad byte is.
        #[test]
        fn field_ok_finds_every_cr_lf_and_nul(mut bytes in proptest::collection::vec(0x20u8..0x7f, 0..40), at in 0usize..40, bad in proptest::sample::select(alloc::vec![b'\r', b'\n', 0, b'a', 0x8d, 0x8a, 0x80])) {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = bad;
            }
            let s = String::from_utf8_lossy(&bytes).into_owned();
            let naive = !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
            proptest::prop_assert_eq!(field_ok(&s), naive);
        }
    }

    #[test]
    fn framing_fields_are_known_in_any_case() {
        for name in ["Content-Length", "transfer-encoding", "CONNECTION"] {
            assert!(framing_field(name));
        }
        for name in ["content-type", "connections", "", "x-content-length"] {
            assert!(!framing_field(name));
        }
    }

    fn text(bytes: &[u8]) -> &str {
        core::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn serialises_with_content_length() {
        let r = Response::new(200).header("content-type", "text/plain").body("hello");
        assert_eq!(
            text(&r.to_bytes(false)),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn empty_body_still_has_content_length_and_close() {
        let r = Response::new(404);
        assert_eq!(text(&r.to_bytes(true)), "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    }

    #[test]
    fn framing_headers_from_the_builder_are_replaced() {
        let r = Response::new(200)
            .header("Content-Length", "999")
            .header("transfer-encoding", "chunked")
            .header("Connection", "keep-alive")
            .body("ab");
        assert_eq!(text(&r.to_bytes(false)), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab");
        assert!(!r.asks_close());
        assert!(Response::new(200).header("Connection", "Close").asks_close());
    }

    #[test]
    fn header_injection_is_dropped() {
        let r = Response::new(302).header("location", "/a\r\nset-cookie: x=1").header("x-ok", "1");
        assert_eq!(text(&r.to_bytes(false)), "HTTP/1.1 302 Found\r\nx-ok: 1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn no_content_length_for_204_and_304() {
        assert_eq!(text(&Response::new(204).body("x").to_bytes(false)), "HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(text(&Response::new(304).to_bytes(false)), "HTTP/1.1 304 Not Modified\r\n\r\n");
    }

    #[test]
    fn json_error_escapes() {
        let r = Response::error(400, "bad_request", "bad \"method\" \\ \n\u{1}");
        assert_eq!(r.header_value("Content-Type"), Some("application/json"));
        assert_eq!(text(&r.body), r#"{"error":{"code":"bad_request","message":"bad \"method\" \\ \n\u0001"}}"#);
    }

    #[test]
    fn service_unavailable_closes() {
        let bytes = service_unavailable();
        let s = text(&bytes);
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("\r\ncontent-type: application/json\r\n"));
        assert!(s.contains("\r\nconnection: close\r\n"));
        assert!(s.ends_with(
            r#"{"error":{"code":"service_unavailable","message":"no connection slot is free; retry later"}}"#
        ));
    }

    #[test]
    fn error_codes() {
        for (status, code) in [
            (400, "bad_request"),
            (408, "request_timeout"),
            (411, "length_required"),
            (413, "payload_too_large"),
            (431, "header_fields_too_large"),
            (505, "http_version_not_supported"),
        ] {
            let e = HttpError::new(status, "m");
            assert_eq!(e.code, code);
            assert_eq!(e.to_response().status, status);
        }
    }
}
