//! A small blocking HTTP/1.1 client over `std::net::TcpStream`: one request per connection
//! (`Connection: close`), a `Content-Length` request body, and a response read by
//! `Content-Length`, chunked, or until the server closes.
//!
//! Enough for the front door, and it keeps the `pappus` command free of an HTTP stack
//! (and its TLS and async dependencies) that a plain-HTTP loopback client does not need.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where requests go: `http://host[:port][/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// A path every request path is appended to (`""` or `/something`, no trailing slash).
    pub prefix: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                format!("{url}: https is not supported (the front door speaks plain HTTP)")
            } else {
                format!("{url:?} is not an http:// URL")
            }
        })?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal's colons are inside brackets.
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse::<u16>().map_err(|_| format!("{url}: {port:?} is not a port"))?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Endpoint { host: host.to_string(), port, prefix: path.trim_end_matches('/').to_string() })
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.prefix)
    }
}

/// One request: `path` starts with `/` and is already percent-encoded where needed.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: String,
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), headers: Vec::new(), body: &[] }
    }

    #[must_use]
    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// The request line and header section, empty line included; `expect_continue` asks the
    /// server to look at the head before the body is sent.
    pub fn head(&self, endpoint: &Endpoint, expect_continue: bool) -> Vec<u8> {
        let mut head = format!("{} {}{} HTTP/1.1\r\n", self.method, endpoint.prefix, self.path);
        head.push_str(&format!("Host: {}:{}\r\n", endpoint.host, endpoint.port));
        if !self.body.is_empty() || matches!(self.method, "PUT" | "POST") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if expect_continue {
            head.push_str("Expect: 100-continue\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub enum Error {
    /// No connection could be made; `refused` when something answered with a reset (nothing
    /// listens on the port).
    Connect { url: String, refused: bool, reason: String },
    /// The connection broke, timed out, or the answer is not HTTP.
    Exchange { url: String, reason: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect { url, reason, .. } => write!(f, "cannot connect to {url}: {reason}"),
            Error::Exchange { url, reason } => write!(f, "{url}: {reason}"),
        }
    }
}

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How an exchange is going, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// `done` of the body's `total` bytes are sent.
    Sent { done: u64, total: u64 },
    /// The request is sent; no answer yet.
    Waiting,
    /// The answer is coming: `bytes` so far.
    Receiving { bytes: u64 },
}

/// Sends `request` and reads the whole response. `timeout` bounds each wait for bytes (not the
/// whole exchange), so a large upload or a long invocation is fine as long as it progresses.
pub fn send(endpoint: &Endpoint, request: &Request, timeout: Duration) -> Result<Response, Error> {
    send_with_progress(endpoint, request, timeout, &mut |_| {})
}

/// Bodies are written this much at a time (one progress report each).
const BODY_CHUNK: usize = 256 << 10;

/// [`send`], telling `progress` how the upload and the wait go.
pub fn send_with_progress(
    endpoint: &Endpoint,
    request: &Request,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<Response, Error> {
    let url = endpoint.url();
    let exchange = |reason: String| Error::Exchange { url: url.clone(), reason };
    let mut stream = connect(endpoint)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| Error::Connect { url: url.clone(), refused: false, reason: e.to_string() })?;
    // A large body waits for the server's `100 Continue`, so that a refusal (a bad token, an
    // unknown name, a body over the limit) comes at once instead of after the whole upload.
    let expect = request.body.len() >= EXPECT_CONTINUE_FROM;
    let mut buf = Vec::new();
    let mut sent = stream.write_all(&request.head(endpoint, expect)).and_then(|()| stream.flush());
    if sent.is_ok() {
        let send_body = !expect || await_continue(&mut stream, &mut buf, timeout);
        if send_body {
            let total = request.body.len() as u64;
            let mut done = 0u64;
            for chunk in request.body.chunks(BODY_CHUNK) {
                sent = stream.write_all(chunk);
                if sent.is_err() {
                    break;
                }
                done += chunk.len() as u64;
                progress(Progress::Sent { done, total });
            }
            if sent.is_ok() {
                sent = stream.flush();
            }
        }
    }
    progress(Progress::Waiting);
    let head_only = request.method == "HEAD";
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match parse_response(&buf, false, head_only) {
            Ok(Some(response)) => return Ok(response),
            Ok(None) => {}
            Err(e) => return Err(exchange(format!("bad response: {e}"))),
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(exchange(format!("no answer within {} s", timeout.as_secs())));
            }
            // A reset right after the answer ends the stream like a close does.
            Err(_) if !buf.is_empty() => 0,
            Err(e) => {
                return Err(exchange(match sent {
                    Err(sending) => format!("sending the request failed: {sending}"),
                    Ok(()) => format!("reading the response failed: {e}"),
                }));
            }
        };
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            progress(Progress::Receiving { bytes: buf.len() as u64 });
            continue;
        }
        return match parse_response(&buf, true, head_only) {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(exchange(match &sent {
                // A server may answer early (413) and close while the body is still going; its
                // answer is read above, so here nothing came.
                Err(e) => format!("sending the request failed: {e}"),
                Ok(()) => "the connection closed without an answer (is the kernel still booting?)".into(),
            })),
            Err(e) => Err(exchange(format!("bad response: {e}"))),
        };
    }
}

/// Bodies from this size on are sent with `Expect: 100-continue`.
const EXPECT_CONTINUE_FROM: usize = 1 << 20;

/// How long to wait for `100 Continue` before sending the body anyway (RFC 9110 lets a client
/// go on: a server that does not know the expectation just reads the body).
const CONTINUE_WAIT: Duration = Duration::from_secs(3);

/// Waits for the answer to `Expect: 100-continue`: true to send the body (`100 Continue`, or no
/// answer in time); false when the server already gave its final answer, which stays in `buf`.
fn await_continue(stream: &mut TcpStream, buf: &mut Vec<u8>, timeout: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(CONTINUE_WAIT));
    let mut chunk = [0u8; 4096];
    let go_on = loop {
        match interim(buf) {
            Interim::Continue(consumed) => {
                buf.drain(..consumed);
                break true;
            }
            Interim::Final => break false,
            Interim::Incomplete => {}
        }
        match stream.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // No answer in time: send the body. Any other error shows up when reading the answer.
            Err(e) => break matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    go_on
}

#[derive(Debug, PartialEq, Eq)]
enum Interim {
    /// No complete response head yet.
    Incomplete,
    /// `100 Continue`, this many bytes long.
    Continue(usize),
    /// Another response: the final answer.
    Final,
}

fn interim(buf: &[u8]) -> Interim {
    match find(buf, b"\r\n\r\n") {
        None => Interim::Incomplete,
        Some(end) if buf.starts_with(b"HTTP/1.1 100 ") || buf.starts_with(b"HTTP/1.0 100 ") => {
            Interim::Continue(end + 4)
        }
        Some(_) => Interim::Final,
    }
}

fn connect(endpoint: &Endpoint) -> Result<TcpStream, Error> {
    let url = endpoint.url();
    // An IPv6 literal is written in brackets in a URL, without them for the resolver.
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let addrs = (host, endpoint.port).to_socket_addrs().map_err(|e| Error::Connect {
        url: url.clone(),
        refused: false,
        reason: format!("cannot resolve: {e}"),
    })?;
    let mut last = Error::Connect { url: url.clone(), refused: false, reason: "the host has no address".into() };
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                last = Error::Connect { url: url.clone(), refused, reason: e.to_string() };
            }
        }
    }
    Err(last)
}

/// Parses a response from the bytes received so far: `Ok(None)` while more are needed; `eof`
/// says the server closed, which ends a body framed by the close. Interim 1xx responses are
/// skipped.
pub fn parse_response(buf: &[u8], eof: bool, head_only: bool) -> Result<Option<Response>, String> {
    let mut rest = buf;
    loop {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            return if eof && !rest.is_empty() { Err("the header section is cut short".into()) } else { Ok(None) };
        };
        let head = std::str::from_utf8(&rest[..end]).map_err(|_| "the header section is not UTF-8".to_string())?;
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let (status, reason) = parse_status_line(status_line)?;
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
                Ok((name.trim().to_string(), value.trim().to_string()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if (100..200).contains(&status) && status != 101 {
            rest = body;
            continue;
        }
        let response =
            |body: Vec<u8>| Some(Response { status, reason: reason.clone(), headers: headers.clone(), body });
        let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        if head_only || status == 204 || status == 304 {
            return Ok(response(Vec::new()));
        }
        if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
            // Decoded once the server has closed (we always ask it to), so a long chunked body is
            // not re-scanned on every read.
            return if eof { decode_chunked(body).map(response) } else { Ok(None) };
        }
        if let Some(length) = header("content-length") {
            let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
            return match body.len() {
                n if n >= length => Ok(response(body[..length].to_vec())),
                n if eof => Err(format!("the connection closed after {n} of {length} body bytes")),
                _ => Ok(None),
            };
        }
        return if eof { Ok(response(body.to_vec())) } else { Ok(None) };
    }
}

fn parse_status_line(line: &str) -> Result<(u16, String), String> {
    let mut words = line.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    let status = words.next().and_then(|s| s.parse::<u16>().ok()).filter(|s| (100..600).contains(s));
    match status {
        Some(status) if version.starts_with("HTTP/1.") => Ok((status, words.next().unwrap_or_default().to_string())),
        _ => Err(format!("bad status line {:?}", line.chars().take(80).collect::<String>())),
    }
}

/// A complete chunked body (chunk extensions and trailers ignored).
fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or("a chunk size line is cut short")?;
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap_or_default();
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a query or path component: everything but the URL's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:18090").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("127.0.0.1", 18090, ""));
        assert_eq!(e.url(), "http://127.0.0.1:18090");
        let e = Endpoint::parse("http://example.test/pappus/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("example.test", 80, "/pappus"));
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("[::1]", 8080));
        assert!(Endpoint::parse("https://x").unwrap_err().contains("https is not supported"));
        assert!(Endpoint::parse("127.0.0.1:8080").is_err());
        assert!(Endpoint::parse("http://h:http").is_err());
        assert!(Endpoint::parse("http://:80").is_err());
    }

    #[test]
    fn request_head() {
        let e = Endpoint::parse("http://127.0.0.1:8080/p").unwrap();
        let get = Request::new("GET", "/v1/functions").header("Authorization", "Bearer t");
        assert_eq!(
            String::from_utf8(get.head(&e, false)).unwrap(),
            "GET /p/v1/functions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer t\r\n\
             Connection: close\r\n\r\n"
        );
        let put = Request::new("PUT", "/v1/compositions/c").body(b"abc");
        assert!(String::from_utf8(put.head(&e, false)).unwrap().contains("\r\nContent-Length: 3\r\n"));
        assert!(
            String::from_utf8(put.head(&e, true))
                .unwrap()
                .ends_with("\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        );
        let empty = Request::new("POST", "/v1/invoke/f");
        assert!(String::from_utf8(empty.head(&e, false)).unwrap().contains("\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn continue_or_final() {
        assert_eq!(interim(b"HTTP/1.1 100 Continue\r\n"), Interim::Incomplete);
        assert_eq!(interim(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), Interim::Continue(25));
        assert_eq!(interim(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"), Interim::Final);
    }

    #[test]
    fn content_length_responses() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        for cut in 0..full.len() {
            assert_eq!(parse_response(&full[..cut], false, false), Ok(None), "cut at {cut}");
        }
        let r = parse_response(full, false, false).unwrap().unwrap();
        assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (200, "OK", &b"{}"[..]));
        assert_eq!(r.header("CONTENT-TYPE"), Some("application/json"));
        // Bytes past the body (none expected with Connection: close) are not part of it.
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", false, false).unwrap().unwrap().body,
            b"a"
        );
        let short = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true, false);
        assert_eq!(short, Err("the connection closed after 2 of 5 body bytes".into()));
    }

    #[test]
    fn other_framings() {
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false, true).unwrap().unwrap();
        assert!(r.body.is_empty(), "HEAD has no body");
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\nuntil close", false, false), Ok(None));
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nuntil close", true, false).unwrap().unwrap();
        assert_eq!(r.body, b"until close");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n";
        assert_eq!(parse_response(chunked, false, false), Ok(None));
        assert_eq!(parse_response(chunked, true, false).unwrap().unwrap().body, b"Wikipedia");
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(interim, false, false).unwrap().unwrap().status, 201);
    }

    #[test]
    fn malformed_responses() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false, false).is_err());
        assert!(parse_response(b"HTTP/1.1 999 What\r\n\r\n", false, false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false, false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", true, false).is_err());
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad_chunk, true, false).is_err());
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(percent_encode("two words/é,&"), "two%20words%2F%C3%A9%2C%26");
    }
}
