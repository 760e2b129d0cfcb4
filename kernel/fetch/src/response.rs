//! An incremental HTTP/1.x response parser: fed whatever bytes arrived, in any pieces, it finds
//! the head (with `httparse`), the body's framing (`Content-Length`, chunked — decoded by the
//! front door's own decoder, `pappus_http::BodyDecoder` — or until the connection closes), and
//! keeps within its limits.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pappus_http::{BodyDecoder, MemoryGate};

/// The most header fields a response may have.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line and header fields as `HTTP/1.1 200 OK\r\nName: value\r\n…\r\n`, ending
    /// in the blank line: the head as received, with line ends made CRLF.
    pub head: Vec<u8>,
    /// The body, chunked framing removed.
    pub body: Vec<u8>,
}

/// Why a response was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Over a size limit (or out of memory).
    TooLarge(String),
    /// Not a well-formed response, or the connection ended too early.
    Bad(String),
}

enum State {
    /// Collecting the head; `scanned` bytes of `buf` hold no blank line.
    Head {
        buf: Vec<u8>,
        scanned: usize,
    },
    Body {
        status: u16,
        head: Vec<u8>,
        framing: Framing,
        body: Vec<u8>,
    },
    Done(Response),
    /// Failed or taken: everything further is ignored.
    Over,
}

pub(crate) enum Framing {
    Decoder(BodyDecoder),
    UntilClose,
}

/// Parses one response (see the module docs).
pub struct ResponseParser {
    max_head: usize,
    max_body: usize,
    /// The request was `HEAD`: no body, whatever the headers say.
    no_body: bool,
    state: State,
    received: usize,
    gate: MemoryGate,
}

impl ResponseParser {
    /// A parser for a head of at most `max_head` bytes and a body of at most `max_body`.
    pub fn new(max_head: usize, max_body: usize, no_body: bool) -> Self {
        Self {
            max_head,
            max_body,
            no_body,
            state: State::Head { buf: Vec::new(), scanned: 0 },
            received: 0,
            gate: MemoryGate::ALWAYS,
        }
    }

    /// The same parser, asking `gate` before the body's buffer grows.
    #[must_use]
    pub fn with_memory_gate(mut self, gate: MemoryGate) -> Self {
        self.gate = gate;
        self
    }

    /// Bytes fed so far.
    pub fn received(&self) -> usize {
        self.received
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The response, once done (once).
    pub fn take_response(&mut self) -> Option<Response> {
        match core::mem::replace(&mut self.state, State::Over) {
            State::Done(response) => Some(response),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Feeds the next bytes of the stream. `Ok(true)` once the response is complete (bytes after
    /// it are ignored); an error is final.
    pub fn feed(&mut self, input: &[u8]) -> Result<bool, ParseError> {
        self.received = self.received.saturating_add(input.len());
        let result = self.advance(input);
        if result.is_err() {
            self.state = State::Over;
        }
        result
    }

    /// The connection ended (FIN or reset): completes a body that runs until the close, and is
    /// an error for anything else unfinished.
    pub fn end_of_stream(&mut self) -> Result<(), ParseError> {
        let received = self.received;
        let result = match &mut self.state {
            State::Done(_) => return Ok(()),
            State::Over => return Err(ParseError::Bad("the response was already refused".into())),
            State::Head { buf, .. } if buf.is_empty() && received == 0 => {
                Err(ParseError::Bad("the connection closed without a response".into()))
            }
            State::Head { .. } => {
                Err(ParseError::Bad(format!("the connection closed inside the response head ({received} bytes)")))
            }
            State::Body { framing: Framing::UntilClose, .. } => Ok(()),
            State::Body { framing: Framing::Decoder(_), body, .. } => Err(ParseError::Bad(format!(
                "the connection closed before the body was complete ({} body bytes)",
                body.len()
            ))),
        };
        match result {
            Ok(()) => {
                if let State::Body { status, head, body, .. } = core::mem::replace(&mut self.state, State::Over) {
                    self.state = State::Done(Response { status, head, body });
                }
                Ok(())
            }
            Err(e) => {
                self.state = State::Over;
                Err(e)
            }
        }
    }

    fn advance(&mut self, input: &[u8]) -> Result<bool, ParseError> {
        // Bytes a head's buffer held past the head (the body's start, or the final response
        // after a 1xx): the next round's input.
        let mut leftover: Option<Vec<u8>> = None;
        loop {
            let carried = leftover.take();
            let input = carried.as_deref().unwrap_or(input);
            match &mut self.state {
                State::Done(_) => return Ok(true),
                State::Over => return Err(ParseError::Bad("the response was already refused".into())),
                State::Head { buf, scanned } => {
                    buf.extend_from_slice(input);
                    let Some(end) = find_head_end(buf, *scanned) else {
                        if buf.len() > self.max_head {
                            return Err(ParseError::TooLarge(format!(
                                "the response head is over the {}-byte limit",
                                self.max_head
                            )));
                        }
                        *scanned = buf.len();
                        return Ok(false);
                    };
                    if end > self.max_head {
                        return Err(ParseError::TooLarge(format!(
                            "the response head is over the {}-byte limit",
                            self.max_head
                        )));
                    }
                    let buf = core::mem::take(buf);
                    let (head, rest) = buf.split_at(end);
                    match parse_head(head, self.no_body, self.max_body)? {
                        Parsed::Interim => {
                            self.state = State::Head { buf: Vec::new(), scanned: 0 };
                        }
                        Parsed::Final { status, head, framing } => {
                            let body = Vec::new();
                            self.state = match framing {
                                None => State::Done(Response { status, head, body }),
                                Some(framing) => State::Body { status, head, framing, body },
                            };
                        }
                    }
                    if rest.is_empty() && !self.is_done() {
                        return Ok(false);
                    }
                    leftover = Some(rest.to_vec());
                }
                State::Body { framing, body, status, head } => {
                    let done = match framing {
                        Framing::UntilClose => {
                            append(body, input, self.max_body, self.gate)?;
                            false
                        }
                        Framing::Decoder(decoder) => {
                            let progress = decoder
                                .decode(input, body, self.max_body, self.max_head, self.gate)
                                .map_err(|e| match e.status {
                                    413 => too_large_body(self.max_body),
                                    503 => ParseError::TooLarge("not enough memory for the response body".into()),
                                    _ => ParseError::Bad(format!("bad chunked body: {}", e.message)),
                                })?;
                            progress.done
                        }
                    };
                    if !done {
                        return Ok(false);
                    }
                    let response =
                        Response { status: *status, head: core::mem::take(head), body: core::mem::take(body) };
                    self.state = State::Done(response);
                    return Ok(true);
                }
            }
        }
    }
}

fn too_large_body(max: usize) -> ParseError {
    ParseError::TooLarge(format!("the response body is over the {max}-byte limit"))
}

pub(crate) fn append(body: &mut Vec<u8>, input: &[u8], max: usize, gate: MemoryGate) -> Result<(), ParseError> {
    if body.len().saturating_add(input.len()) > max {
        return Err(too_large_body(max));
    }
    let grows = body.len() + input.len() > body.capacity();
    if grows && !(gate.allows(input.len()) && body.try_reserve(input.len()).is_ok()) {
        return Err(ParseError::TooLarge("not enough memory for the response body".into()));
    }
    body.extend_from_slice(input);
    Ok(())
}

/// The length of the head (through its blank line), if `buf` holds all of it. `scanned` bytes
/// are known to hold no blank line; the search backs up 3 bytes for one split across feeds.
pub(crate) fn find_head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    let mut i = from;
    while let Some(at) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + at;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

pub(crate) enum Parsed {
    /// A 1xx response to skip; the final one follows.
    Interim,
    /// `framing` is `None` when there is no body.
    Final { status: u16, head: Vec<u8>, framing: Option<Framing> },
}

pub(crate) fn parse_head(bytes: &[u8], no_body: bool, max_body: usize) -> Result<Parsed, ParseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ParseError::Bad("an incomplete response head".into())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ParseError::Bad(format!("more than {MAX_RESPONSE_HEADERS} header fields")));
        }
        Err(e) => return Err(ParseError::Bad(format!("a malformed response head ({e})"))),
    }
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return Err(ParseError::Bad("a malformed status line".into()));
    };
    if status == 101 {
        return Err(ParseError::Bad("101 Switching Protocols, which was not asked for".into()));
    }
    if (100..200).contains(&status) {
        return Ok(Parsed::Interim);
    }
    let mut head = format!("HTTP/1.{version} {status} {}\r\n", response.reason.unwrap_or("")).into_bytes();
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for field in response.headers.iter() {
        head.extend_from_slice(field.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(field.value);
        head.extend_from_slice(b"\r\n");
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides: chunked is self-delimiting, anything else runs to the close.
            let last = field.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            for value in field.value.split(|&b| b == b',') {
                let value = content_length(value.trim_ascii())?;
                if length.is_some_and(|l| l != value) {
                    return Err(ParseError::Bad("conflicting Content-Length values".into()));
                }
                length = Some(value);
            }
        }
    }
    head.extend_from_slice(b"\r\n");
    let framing = if no_body || status == 204 || status == 304 {
        None
    } else if let Some(chunked) = chunked {
        Some(if chunked { Framing::Decoder(BodyDecoder::chunked()) } else { Framing::UntilClose })
    } else if let Some(length) = length {
        let length = usize::try_from(length).ok().filter(|&l| l <= max_body).ok_or_else(|| {
            ParseError::TooLarge(format!("the response body of {length} bytes is over the {max_body}-byte limit"))
        })?;
        (length > 0).then(|| Framing::Decoder(BodyDecoder::length(length)))
    } else {
        Some(Framing::UntilClose)
    };
    Ok(Parsed::Final { status, head, framing })
}

fn content_length(value: &[u8]) -> Result<u64, ParseError> {
    let bad = || ParseError::Bad("a malformed Content-Length".into());
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    // Digits only, so the only failure left is overflow: certainly too large.
    core::str::from_utf8(value).map_err(|_| bad())?.parse().or(Ok(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_whole(input: &[u8], close: bool) -> Result<Response, ParseError> {
        let mut p = ResponseParser::new(1024, 4096, false);
        let done = p.feed(input)?;
        if !done && close {
            p.end_of_stream()?;
        }
        p.take_response().ok_or_else(|| ParseError::Bad("not done".into()))
    }

    #[test]
    fn a_memory_gate_that_says_no_ends_the_response_as_too_large() {
        for input in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nhello",
        ] {
            let mut p = ResponseParser::new(1024, 4096, false).with_memory_gate(MemoryGate(|_| false));
            let e = p.feed(input).unwrap_err();
            assert!(matches!(e, ParseError::TooLarge(_)), "{e:?}");
        }
        let mut p = ResponseParser::new(1024, 4096, false).with_memory_gate(MemoryGate(|bytes| bytes <= 5));
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap());
    }

    #[test]
    fn content_length_body() {
        let r =
            parse_whole(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloEXTRA", false)
                .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.head, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn chunked_body_is_decoded() {
        let r = parse_whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn close_delimited_body_and_bare_lf() {
        let mut p = ResponseParser::new(1024, 4096, false);
        assert_eq!(p.feed(b"HTTP/1.0 404 Not Found\nServer: x\n\nno such"), Ok(false));
        assert_eq!(p.feed(b" page"), Ok(false));
        p.end_of_stream().unwrap();
        let r = p.take_response().unwrap();
        assert_eq!(
            (r.status, r.head.as_slice(), r.body.as_slice()),
            (404, &b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n"[..], &b"no such page"[..])
        );
        assert!(p.take_response().is_none(), "taken once");
    }

    #[test]
    fn interim_responses_are_skipped_and_some_have_no_body() {
        let r =
            parse_whole(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false)
                .unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse_whole(b"HTTP/1.1 304 Not Modified\r\n\r\n", false).unwrap();
        assert_eq!(r.status, 304);
        let r = parse_whole(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert!(r.body.is_empty());
        let mut p = ResponseParser::new(1024, 10, true);
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"), Ok(true), "HEAD: no body");
    }

    fn bad(input: &[u8], close: bool) -> String {
        match parse_whole(input, close) {
            Err(ParseError::Bad(why)) => why,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    fn too_large(input: &[u8]) -> String {
        match parse_whole(input, true) {
            Err(ParseError::TooLarge(why)) => why,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_responses_are_bad() {
        assert!(bad(b"", true).contains("without a response"));
        assert!(bad(b"HTTP/1.1 200 OK\r\nX: y", true).contains("inside the response head"));
        assert!(bad(b"SSH-2.0-OpenSSH\r\n\r\n", true).contains("malformed response head"));
        assert!(bad(b"HTTP/1.1 2000 OK\r\n\r\n", true).contains("malformed"));
        assert!(bad(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", true).contains("3 body bytes"));
        assert!(
            bad(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", true).contains("conflicting")
        );
        assert!(bad(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", true).contains("malformed Content-Length"));
        assert!(bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true).contains("bad chunked body"));
        assert!(bad(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", true).contains("101"));
        let many: Vec<u8> = [&b"HTTP/1.1 200 OK\r\n"[..], &b"X: y\r\n".repeat(101), b"\r\n"].concat();
        let mut p = ResponseParser::new(4096, 10, false);
        assert!(matches!(p.feed(&many), Err(ParseError::Bad(why)) if why.contains("more than 100 header fields")));
        // After an error, more input changes nothing.
        assert!(p.feed(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn limits_make_too_large() {
        assert!(
            too_large(b"HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n")
                .contains("4097 bytes is over the 4096-byte limit")
        );
        assert!(
            too_large(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n")
                .contains("over the 4096-byte limit")
        );
        let mut close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        close.extend([b'a'; 4097]);
        assert!(too_large(&close).contains("body is over the 4096-byte limit"));
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n".to_vec();
        chunked.extend([b'a'; 10]);
        assert!(too_large(&chunked).contains("body is over the 4096-byte limit"));
        let head = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 1100], b"\r\n\r\n"].concat();
        assert!(too_large(&head).contains("head is over the 1024-byte limit"));
        let endless = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 1100]].concat();
        assert!(too_large(&endless).contains("head is over"));
    }
}
