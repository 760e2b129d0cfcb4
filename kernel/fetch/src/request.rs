//! Request items: `METHOD URL [HTTP/1.1]` (or just `URL`, meaning GET), header lines, a blank
//! line, the body. Lines end in `\n` or `\r\n`; the head is UTF-8, the body any bytes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use model::Bytes;

use crate::error::FetchError;
use crate::url::{Url, shorten};

/// The most header lines a request item may carry.
pub const MAX_REQUEST_HEADERS: usize = 100;
/// The longest method name.
const MAX_METHOD_LEN: usize = 32;

/// Headers the platform writes itself, so an item may not: the body's framing and the
/// connection's fate are the client's business (one request per connection).
const PLATFORM_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "upgrade"];

/// One request, parsed from an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: Url,
    /// The item's header lines, names as written, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The bytes after the blank line (shared with the item, not copied).
    pub body: Bytes,
}

impl Request {
    /// Parses a request item's data (module docs).
    pub fn parse(item: &Bytes) -> Result<Self, FetchError> {
        let mut lines = Vec::new();
        let mut pos = 0;
        let mut body_start = item.len();
        while pos < item.len() {
            let (line, next) = match item[pos..].iter().position(|&b| b == b'\n') {
                Some(at) => (&item[pos..pos + at], pos + at + 1),
                None => (&item[pos..], item.len()),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if lines.is_empty() {
                    return Err(FetchError::bad_request("the request item starts with an empty line"));
                }
                body_start = next;
                break;
            }
            let line = core::str::from_utf8(line).map_err(|_| {
                FetchError::bad_request(format!("line {} of the request head is not UTF-8", lines.len() + 1))
            })?;
            lines.push(line);
            pos = next;
        }
        let Some((first, header_lines)) = lines.split_first() else {
            return Err(FetchError::bad_request("empty request item (expected `METHOD URL` or a URL)"));
        };
        let (method, url) = request_line(first)?;
        if header_lines.len() > MAX_REQUEST_HEADERS {
            return Err(FetchError::bad_request(format!("more than {MAX_REQUEST_HEADERS} header lines")));
        }
        let headers = header_lines.iter().map(|line| header(line)).collect::<Result<Vec<_>, _>>()?;
        let body = item.slice(body_start..item.len()).unwrap_or_else(Bytes::empty);
        Ok(Self { method: method.to_string(), url, headers, body })
    }

    /// `METHOD URL` for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    /// Whether a response to this request has no body whatever its headers say.
    pub fn expects_no_body(&self) -> bool {
        self.method == "HEAD"
    }

    /// The bytes to send: the request line, `Host` and `User-Agent: pappus` (unless the item
    /// gives its own), the item's headers, `Content-Length` when there is a body or the method
    /// usually has one, `Connection: close`, a blank line and the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let has = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.url.target);
        if !has("host") {
            head.push_str(&format!("Host: {}\r\n", self.url.authority()));
        }
        if !has("user-agent") {
            head.push_str("User-Agent: pappus\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// `URL`, `METHOD URL` or `METHOD URL HTTP/1.1`.
fn request_line(line: &str) -> Result<(&str, Url), FetchError> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let (method, url) = match words[..] {
        [url] => ("GET", url),
        [method, url] | [method, url, "HTTP/1.1"] => (method, url),
        [_, _, version] => {
            return Err(FetchError::bad_request(format!("only HTTP/1.1 is supported, not {:?}", shorten(version))));
        }
        _ => {
            return Err(FetchError::bad_request(format!(
                "the first line must be `METHOD URL` or a URL, not {:?}",
                shorten(line)
            )));
        }
    };
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.bytes().all(is_tchar) {
        return Err(FetchError::bad_request(format!("bad method {:?}", shorten(method))));
    }
    Ok((method, Url::parse(url)?))
}

/// `Name: value`.
fn header(line: &str) -> Result<(String, String), FetchError> {
    let bad = |why: &str| FetchError::bad_request(format!("{why}: {:?}", shorten(line)));
    let (name, value) = line.split_once(':').ok_or_else(|| bad("a header line without `:`"))?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(bad("bad header name"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(bad("a control character in a header value"));
    }
    if PLATFORM_HEADERS.iter().any(|p| name.eq_ignore_ascii_case(p)) {
        return Err(FetchError::bad_request(format!("the platform sets the {name} header itself")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// RFC 9110 `tchar`: the characters of a token (methods, header names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    fn parse(text: &[u8]) -> Result<Request, FetchError> {
        Request::parse(&Bytes::from(text))
    }

    fn wire(text: &[u8]) -> String {
        String::from_utf8(parse(text).unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn a_bare_url_is_a_get() {
        let r = parse(b"http://10.0.2.2:8000/a.txt\n").unwrap();
        assert_eq!((r.method.as_str(), r.describe().as_str()), ("GET", "GET http://10.0.2.2:8000/a.txt"));
        assert!(r.headers.is_empty() && r.body.is_empty());
        assert_eq!(
            wire(b"http://10.0.2.2:8000/a.txt"),
            "GET /a.txt HTTP/1.1\r\nHost: 10.0.2.2:8000\r\nUser-Agent: pappus\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn method_headers_and_binary_body() {
        let item = b"POST http://docs/upload HTTP/1.1\r\nX-Kind:  note \r\nUser-Agent: mine\n\r\n\xff\x00body\n";
        let r = parse(item).unwrap();
        assert_eq!(r.headers, [("X-Kind".into(), "note".into()), ("User-Agent".into(), "mine".into())]);
        assert_eq!(&*r.body, b"\xff\x00body\n");
        let bytes = r.to_bytes();
        let expected = b"POST /upload HTTP/1.1\r\nHost: docs\r\nX-Kind: note\r\nUser-Agent: mine\r\nContent-Length: 7\r\nConnection: close\r\n\r\n\xff\x00body\n";
        assert_eq!(bytes, expected);
        // An item's own Host wins (virtual hosts behind an IP literal).
        assert!(
            wire(b"GET http://10.0.0.1/\nHost: site\n")
                .starts_with("GET / HTTP/1.1\r\nUser-Agent: pappus\r\nHost: site\r\n")
        );
        // POST without a body still says so.
        assert!(wire(b"POST http://h/").contains("Content-Length: 0\r\n"));
        assert!(!wire(b"DELETE http://h/").contains("Content-Length"));
    }

    #[test]
    fn every_malformed_item_is_a_bad_request() {
        for (item, why) in [
            (&b""[..], "empty request item"),
            (b"\nhttp://h/", "starts with an empty line"),
            (b"GET http://h/ HTTP/1.0", "only HTTP/1.1"),
            (b"GET http://h/ HTTP/1.1 extra", "the first line must be"),
            (b"G(T http://h/", "bad method"),
            (b"GET https://h/", "https is not supported"),
            (b"GET http://h/\nno colon", "without `:`"),
            (b"GET http://h/\nBad Name: x", "bad header name"),
            (b"GET http://h/\nX: a\x01b", "control character"),
            (b"GET http://h/\nContent-Length: 3\n\nabc", "sets the Content-Length header itself"),
            (b"GET http://h/\ntransfer-encoding: chunked", "sets the transfer-encoding header"),
            (b"GET http://h/\nConnection: keep-alive", "Connection header"),
            (b"GET http://h/\nX: \xff", "not UTF-8"),
        ] {
            let e = parse(item).unwrap_err();
            assert_eq!(e.class, ErrorClass::BadRequest, "{item:?}");
            assert!(e.message.contains(why), "{item:?}: {e}");
        }
        let many: String = core::iter::once("GET http://h/\n".to_string())
            .chain((0..=MAX_REQUEST_HEADERS).map(|i| format!("X-{i}: v\n")))
            .collect();
        assert!(parse(many.as_bytes()).unwrap_err().message.contains("more than 100 header lines"));
    }
}
