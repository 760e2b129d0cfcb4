//! Request heads: finding where one ends, parsing it with `httparse`, and deciding how its body
//! is framed and whether the connection stays open.

use core::mem::MaybeUninit;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use smol_str::SmolStr;

use crate::limits::Limits;
use crate::request::{self, Headers, Method, Request, Version};
use crate::response::{HttpError, has_token};

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n` (0 when the request has no body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed head and what it means for the connection.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request, body still empty.
    pub request: Request,
    pub framing: Framing,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// Looks for the empty line that ends a head in `buf`, starting at `from` (an offset into `buf`
/// returned by an earlier call, so that no byte is scanned twice). Returns `Ok(end)`, the offset
/// just past the empty line, or `Err(resume)`, where to resume once more bytes arrived.
/// Line ends may be CRLF or bare LF, as `httparse` accepts both.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from;
    while let Some(off) = find_lf(&buf[i..]) {
        let lf = i + off;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Ok(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Ok(lf + 3),
            (None, _) | (Some(b'\r'), None) => return Err(lf),
            _ => i = lf + 1,
        }
    }
    Err(buf.len())
}

/// The offset of the first LF in `bytes`, eight bytes at a time (a head is scanned once, but
/// every head of every request is).
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let (words, tail) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word) ^ (ONES * u64::from(b'\n'));
        // Exact for the lowest zero byte (a borrow only runs upwards from it).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(n * 8 + (zeros.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter().position(|&b| b == b'\n').map(|i| words.len() * 8 + i)
}

/// Checks the request line (`line` ends with its LF) of a head that is not complete yet, so that
/// garbage gets its 400 (or a wrong version its 505) without waiting for a head timeout.
pub(crate) fn check_partial(line: &[u8], limits: &Limits) -> Result<(), HttpError> {
    with_header_slots(limits.max_headers, |slots| {
        httparse::Request::new(&mut [])
            .parse_with_uninit_headers(line, slots)
            .map(drop)
            .map_err(|e| map_error(e, line, limits))
    })
}

/// Header slots on the stack up to this many fields; a larger `max_headers` allocates them.
const STACK_HEADER_SLOTS: usize = 64;

/// Runs `f` with `max` uninitialised slots for httparse's header fields (filling them is
/// httparse's job: nothing is zeroed per request).
fn with_header_slots<'b, R>(max: usize, f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R) -> R {
    if max <= STACK_HEADER_SLOTS {
        let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADER_SLOTS];
        f(&mut slots[..max])
    } else {
        let mut slots: Vec<MaybeUninit<httparse::Header<'b>>> = Vec::new();
        slots.resize_with(max, MaybeUninit::uninit);
        f(&mut slots)
    }
}

/// Parses a complete head (`buf` ends with its empty line).
pub(crate) fn parse_head(buf: &[u8], limits: &Limits) -> Result<Head, HttpError> {
    with_header_slots(limits.max_headers, |slots| {
        let mut parsed = httparse::Request::new(&mut []);
        match parsed.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(_)) => head_of(&parsed, buf, limits),
            Ok(httparse::Status::Partial) => Err(HttpError::bad_request("malformed request head")),
            Err(e) => Err(map_error(e, buf, limits)),
        }
    })
}

/// The head at the start of `buf` (which may hold its body after it) and where it ends, when
/// httparse finds it there whole and well-formed; `None` otherwise, and the caller looks for
/// the head's end itself, as for a head still arriving ([`find_head_end`], then
/// [`parse_head`], which give every other case its answer). A head that arrived whole, the
/// usual case, is then read once instead of scanned for its end and then parsed (~440
/// instructions a request, `cargo xtask profile matmul3-native`).
pub(crate) fn parse_head_at_start(buf: &[u8], limits: &Limits) -> Option<(Result<Head, HttpError>, usize)> {
    with_header_slots(limits.max_headers, |slots| {
        let mut parsed = httparse::Request::new(&mut []);
        match parsed.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(end)) => Some((head_of(&parsed, &buf[..end], limits), end)),
            _ => None,
        }
    })
}

/// The head httparse parsed from `buf` (exactly the head), checked and copied.
fn head_of<'b>(parsed: &httparse::Request<'_, 'b>, buf: &'b [u8], limits: &Limits) -> Result<Head, HttpError> {
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version) else {
        return Err(HttpError::bad_request("malformed request line"));
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let (path, query) = split_target(target)?;
    let mut seen = Seen::default();
    // Each name compared once (`request::known`), for the checks below and the lookups after.
    let fields = parsed.headers.iter().map(|h| {
        let known = request::known(h.name.as_bytes());
        seen.note(known, h.value);
        (h.name.as_bytes(), h.value, known)
    });
    let headers = Headers::from_head(buf, fields);

    match seen.host {
        0 if version == Version::Http11 => {
            return Err(HttpError::bad_request("HTTP/1.1 request without a Host header"));
        }
        0 | 1 => {}
        _ => return Err(HttpError::bad_request("more than one Host header")),
    }
    // Fields whose meaning a second copy would make ambiguous (which credentials, which body
    // format): refused, rather than letting the first or the last silently win.
    for (count, shown) in [(seen.authorization, "Authorization"), (seen.content_type, "Content-Type")] {
        if count > 1 {
            return Err(HttpError::bad_request(format!("more than one {shown} header")));
        }
    }

    let framing = framing(method, version, &headers, &seen, limits)?;
    let connection = |token: &[u8]| seen.connection && headers.get_all("connection").any(|v| has_token(v, token));
    let close = connection(b"close");
    let keep_alive = !close && (version == Version::Http11 || connection(b"keep-alive"));
    let expect_continue = version == Version::Http11
        && framing != Framing::Length(0)
        && seen.expect
        && headers.get_all("expect").any(|v| has_token(v, b"100-continue"));

    let request = Request { method: Method::new(method), path, query, version, headers, body: Vec::new() };
    Ok(Head { request, framing, keep_alive, expect_continue })
}

/// Which of the fields that decide how a request is read a head has, noted in the one pass
/// that copies its fields (each name compared once; the checks then look only where needed).
/// `Authorization` and `Content-Type` are counted because a request may carry them at most
/// once (besides `Host`; `Content-Length` copies must agree instead).
/// `Content-Length` values are checked in that same pass: every copy, and every element of a
/// comma-separated list, must be the same number.
#[derive(Default)]
struct Seen<'b> {
    host: usize,
    authorization: usize,
    content_type: usize,
    transfer_encoding: bool,
    content_length: bool,
    length: Length<'b>,
    connection: bool,
    expect: bool,
}

/// What the `Content-Length` values said, in order, up to the first problem.
#[derive(Clone, Copy, Default)]
enum Length<'b> {
    #[default]
    Absent,
    /// Digits, leading zeros trimmed (one digit at least).
    Digits(&'b [u8]),
    NotANumber(&'b [u8]),
    Conflict,
}

impl<'b> Seen<'b> {
    /// A field, its name [`request::known`] as `known`.
    fn note(&mut self, known: Option<usize>, value: &'b [u8]) {
        match known {
            Some(request::HOST) => self.host += 1,
            Some(request::EXPECT) => self.expect = true,
            Some(request::CONNECTION) => self.connection = true,
            Some(request::CONTENT_TYPE) => self.content_type += 1,
            Some(request::AUTHORIZATION) => self.authorization += 1,
            Some(request::CONTENT_LENGTH) => {
                self.content_length = true;
                self.note_length(value);
            }
            Some(request::TRANSFER_ENCODING) => self.transfer_encoding = true,
            _ => {}
        }
    }

    fn note_length(&mut self, value: &'b [u8]) {
        for element in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if matches!(self.length, Length::NotANumber(_) | Length::Conflict) {
                return;
            }
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                self.length = Length::NotANumber(element);
                return;
            }
            let digits = trim_zeros(element);
            self.length = match self.length {
                Length::Digits(earlier) if earlier != digits => Length::Conflict,
                _ => Length::Digits(digits),
            };
        }
    }
}

/// Splits a request target into path and query. Accepts origin-form (`/p?q`), absolute-form
/// (`http://host/p?q`, reduced to its path) and `*`.
fn split_target(target: &str) -> Result<(SmolStr, Option<String>), HttpError> {
    let lower = |n: usize| target.get(..n).map(str::to_ascii_lowercase);
    let rest = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(scheme) = ["http://", "https://"].into_iter().find(|s| lower(s.len()).as_deref() == Some(*s)) {
        let after = &target[scheme.len()..];
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
            Some(i) => return Ok(("/".into(), Some(after[i + 1..].to_string()))),
            None => "/",
        }
    } else {
        return Err(HttpError::bad_request(format!("request target {target:?} is not a path")));
    };
    Ok(match rest.split_once('?') {
        Some((p, q)) => (p.into(), Some(q.to_string())),
        None => (rest.into(), None),
    })
}

/// Decides body framing from `Transfer-Encoding` and `Content-Length` (RFC 9112 section 6).
fn framing(
    method: &str,
    version: Version,
    headers: &Headers,
    seen: &Seen<'_>,
    limits: &Limits,
) -> Result<Framing, HttpError> {
    if seen.transfer_encoding {
        if seen.content_length {
            return Err(HttpError::bad_request("both Content-Length and Transfer-Encoding are present"));
        }
        if version == Version::Http10 {
            return Err(HttpError::bad_request("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&[u8]> = headers
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty())
            .collect();
        return match codings.as_slice() {
            [c] if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            [.., last] if !last.eq_ignore_ascii_case(b"chunked") => {
                Err(HttpError::bad_request("Transfer-Encoding does not end in chunked"))
            }
            [first, ..] if first.eq_ignore_ascii_case(b"chunked") => {
                Err(HttpError::bad_request("chunked applied more than once"))
            }
            [first, ..] => Err(HttpError::new(
                501,
                format!("transfer coding {:?} is not supported; use chunked alone", String::from_utf8_lossy(first)),
            )),
            [] => Err(HttpError::bad_request("empty Transfer-Encoding")),
        };
    }

    match seen.length {
        Length::NotANumber(value) => {
            Err(HttpError::bad_request(format!("Content-Length {:?} is not a number", String::from_utf8_lossy(value))))
        }
        Length::Conflict => Err(HttpError::bad_request("conflicting Content-Length values")),
        Length::Digits(digits) => match decimal(digits) {
            Some(n) if n <= limits.max_body_bytes => Ok(Framing::Length(n)),
            _ => Err(HttpError::new(
                413,
                format!(
                    "Content-Length {} exceeds the {}-byte limit",
                    core::str::from_utf8(digits).unwrap_or(""),
                    limits.max_body_bytes
                ),
            )),
        },
        Length::Absent if matches!(method, "POST" | "PUT" | "PATCH") => {
            Err(HttpError::new(411, format!("{method} needs a Content-Length or Transfer-Encoding: chunked")))
        }
        Length::Absent => Ok(Framing::Length(0)),
    }
}

/// The value of ASCII decimal `digits`; `None` past `usize` (which is over any limit).
fn decimal(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let nonzero = digits.iter().position(|&b| b != b'0').unwrap_or(digits.len() - 1);
    &digits[nonzero..]
}

/// Maps an `httparse` error to the status it deserves.
fn map_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => {
            HttpError::new(431, format!("more than {} header fields", limits.max_headers))
        }
        httparse::Error::Version => {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default().trim_ascii_end();
            let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            match parts.as_slice() {
                [_, _, v] if looks_like_version(v) => HttpError::new(
                    505,
                    format!("{} is not supported; use HTTP/1.1 or HTTP/1.0", String::from_utf8_lossy(v)),
                ),
                _ => HttpError::bad_request("malformed request line: invalid HTTP version"),
            }
        }
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            HttpError::bad_request(format!("malformed header field: {e}"))
        }
        _ => HttpError::bad_request(format!("malformed request line or header: {e}")),
    }
}

/// `HTTP/<digits>` or `HTTP/<digits>.<digits>`.
fn looks_like_version(v: &[u8]) -> bool {
    let Some(rest) = v.strip_prefix(b"HTTP/") else { return false };
    let mut parts = rest.splitn(2, |&b| b == b'.');
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Head, HttpError> {
        parse_head(s.as_bytes(), &Limits::DEFAULT)
    }

    fn status(s: &str) -> u16 {
        parse(s).unwrap_err().status
    }

    proptest::proptest! {
        #[test]
        fn find_lf_finds_the_first_lf(bytes in proptest::collection::vec(proptest::sample::select(alloc::vec![b'\n', b'\r', b'a', 0, 0x0b, 0x8a, 0xff]), 0..40)) {
            proptest::prop_assert_eq!(find_lf(&bytes), bytes.iter().position(|&b| b == b'\n'));
        }
    }

    #[test]
    fn known_names_match_in_any_case_and_nothing_else() {
        for known in
            ["host", "expect", "connection", "content-type", "authorization", "content-length", "transfer-encoding"]
        {
            assert!(kcore::ascii::eq_ignore_case(known.as_bytes(), known.as_bytes()));
            assert!(kcore::ascii::eq_ignore_case(known.to_ascii_uppercase().as_bytes(), known.as_bytes()));
            // Every other token character in every position: never a match.
            for i in 0..known.len() {
                for c in (0x21u8..0x7f).filter(|c| !c.eq_ignore_ascii_case(&known.as_bytes()[i])) {
                    let mut name = known.as_bytes().to_vec();
                    name[i] = c;
                    assert!(
                        !kcore::ascii::eq_ignore_case(&name, known.as_bytes()),
                        "{:?} is not {known}",
                        String::from_utf8_lossy(&name)
                    );
                }
            }
        }
        assert!(!kcore::ascii::eq_ignore_case(b"hos", b"host"));
    }

    #[test]
    fn head_end_is_found_incrementally() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        assert_eq!(find_head_end(buf, 0), Ok(27));
        for cut in 0..27 {
            let resume = find_head_end(&buf[..cut], 0).unwrap_err();
            assert!(resume <= cut);
            assert_eq!(find_head_end(buf, resume), Ok(27), "cut at {cut}");
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\nx", 0), Ok(24));
    }

    #[test]
    fn target_forms() {
        let h = parse("GET /v1/functions/f?engine=wasm&x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.request.path, "/v1/functions/f");
        assert_eq!(h.request.query.as_deref(), Some("engine=wasm&x=1"));
        let h = parse("GET HTTP://example.com:80/p?q HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((h.request.path.as_str(), h.request.query.as_deref()), ("/p", Some("q")));
        let h = parse("GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((h.request.path.as_str(), h.request.query), ("/", None));
        let h = parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.request.path, "*");
        assert_eq!(status("CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn ambiguous_duplicates_are_refused() {
        let two_auth = "GET /v1/functions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer aaaaaaaaaaaaaaaa\r\n\
                        authorization: Bearer bbbbbbbbbbbbbbbb\r\n\r\n";
        let e = parse(two_auth).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "more than one Authorization header"));
        // Even two identical copies: the client's intent is unclear.
        let same = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAuthorization: Bearer x\r\n\r\n";
        assert_eq!(status(same), 400);
        let e = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nCONTENT-TYPE: b\r\nContent-Length: 0\r\n\r\n")
            .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "more than one Content-Type header"));
        let body = String::from_utf8(e.to_response().body).unwrap();
        assert!(body.contains("more than one Content-Type header"), "{body}");
        // One of each is fine, and so are repeated list fields.
        let h =
            parse("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAccept: a\r\nAccept: b\r\n\r\n").unwrap();
        assert_eq!(h.request.headers.get_all("accept").count(), 2);
    }

    #[test]
    fn headers_are_case_insensitive() {
        let h = parse("GET / HTTP/1.1\r\nHOST: a\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n").unwrap();
        assert_eq!(h.request.headers.get_str("host"), Some("a"));
        assert_eq!(h.request.headers.get_all("X-THING").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(h.request.headers.len(), 3);
    }

    #[test]
    fn framing_rules() {
        let f = |s: &str| parse(s).map(|h| h.framing);
        assert_eq!(f("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Framing::Length(0)));
        assert_eq!(f("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"), Ok(Framing::Length(7)));
        assert_eq!(
            f("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 05\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(f("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"), Ok(Framing::Chunked));
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
        assert_eq!(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nHost: a\r\n\r\n"), 411);
        assert_eq!(status("PUT / HTTP/1.0\r\n\r\n"), 411);
        let e = parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000000\r\n\r\n").unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(e.message, "Content-Length 70000000 exceeds the 67108864-byte limit");
        assert_eq!(status("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"), 413);
    }

    #[test]
    fn host_rules() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert!(parse("GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn keep_alive_and_expect() {
        let ka = |s: &str| parse(s).unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let ex = |s: &str| parse(s).unwrap().expect_continue;
        assert!(ex("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n"));
        assert!(!ex("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n"));
        assert!(!ex("PUT / HTTP/1.0\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/3\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET / FOO/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nBad Name: a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
        let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), 431);
        let ok: String = (0..63).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(parse(&format!("GET / HTTP/1.1\r\nHost: a\r\n{ok}\r\n")).is_ok());
    }

    #[test]
    fn partial_check_catches_garbage_early() {
        let l = Limits::DEFAULT;
        assert!(check_partial(b"GET / HTTP/1.1\r\n", &l).is_ok());
        assert_eq!(check_partial(b"\x00\x01garbage\r\n", &l).unwrap_err().status, 400);
        assert_eq!(check_partial(b"GET / HTTP/2.0\r\n", &l).unwrap_err().status, 505);
    }
}
