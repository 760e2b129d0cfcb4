//! Streaming responses: a response whose body is handed out as it arrives instead of once it
//! is complete — for a body that may never end (etcd's `/v3/watch`, which sends one JSON object
//! per event batch over a long-lived chunked response).
//!
//! - [`StreamParser`]: the head, then the body's bytes (chunked framing removed) as they come,
//!   never holding more than `max_buffered` bytes the caller has not taken;
//! - [`StreamExchange`]: one streaming request's life (connect, send, receive), told what the
//!   socket did and what time it is, like [`Exchange`](crate::Exchange) but with no total
//!   timeout: once the head is in, the stream may stay quiet as long as the server likes
//!   (unless [`StreamLimits::idle_timeout_ms`] says otherwise).
//!
//! The socket side is [`Client::open_stream`](crate::Client::open_stream). Nothing here panics
//! on any input; a stream that breaks (the connection closes inside the head or inside a chunk,
//! bad chunk framing, over the buffer limit, out of memory) ends in a clean [`FetchError`].

use alloc::format;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use pappus_http::MemoryGate;

use crate::error::{ErrorClass, FetchError};
use crate::link::{Link, Phase};
use crate::request::Request;
use crate::response::{Framing, ParseError, Parsed, append, find_head_end, parse_head};

/// Limits of one streaming request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// From the first SYN to an established connection.
    pub connect_timeout_ms: u64,
    /// The longest wait for the server until the response head is in: for room to send, or
    /// for head bytes. Every byte moved restarts it.
    pub head_timeout_ms: u64,
    /// Once the head is in, the longest the stream may stay without a byte; `None`: forever
    /// (a watch is quiet while nothing changes).
    pub idle_timeout_ms: Option<u64>,
    /// The largest response head.
    pub max_head_bytes: usize,
    /// The most body bytes held that the caller has not taken yet; one chunk larger than this
    /// is refused too.
    pub max_buffered: usize,
    /// Asked before the buffer grows; a no ends the stream as too large.
    pub memory: MemoryGate,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            head_timeout_ms: 10_000,
            idle_timeout_ms: None,
            max_head_bytes: 64 << 10,
            max_buffered: 1 << 20,
            memory: MemoryGate::ALWAYS,
        }
    }
}

enum State {
    /// Collecting the head; `scanned` bytes of `buf` hold no blank line.
    Head { buf: Vec<u8>, scanned: usize },
    /// The head is in; `framing` is `None` once the body has ended (or when there is none).
    Body { status: u16, head: Vec<u8>, framing: Option<Framing> },
    /// Failed: everything further is ignored.
    Over,
}

/// Parses one response incrementally, handing its body out in pieces (see the module docs).
pub struct StreamParser {
    max_head: usize,
    max_buffered: usize,
    no_body: bool,
    gate: MemoryGate,
    state: State,
    /// Body bytes not taken yet.
    buffered: Vec<u8>,
    received: usize,
    /// Body bytes handed out so far.
    taken: usize,
}

impl StreamParser {
    /// A parser for a head of at most `max_head` bytes, holding at most `max_buffered` body
    /// bytes that were not taken. `no_body`: the request was `HEAD`.
    pub fn new(max_head: usize, max_buffered: usize, no_body: bool) -> Self {
        Self {
            max_head,
            max_buffered,
            no_body,
            gate: MemoryGate::ALWAYS,
            state: State::Head { buf: Vec::new(), scanned: 0 },
            buffered: Vec::new(),
            received: 0,
            taken: 0,
        }
    }

    /// The same parser, asking `gate` before its buffer grows.
    #[must_use]
    pub fn with_memory_gate(mut self, gate: MemoryGate) -> Self {
        self.gate = gate;
        self
    }

    /// Bytes fed so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The status and the head (as [`Response::head`](crate::Response)), once in.
    pub fn head(&self) -> Option<(u16, &[u8])> {
        match &self.state {
            State::Body { status, head, .. } => Some((*status, head)),
            _ => None,
        }
    }

    /// Body bytes that arrived and were not taken yet.
    pub fn data(&self) -> &[u8] {
        &self.buffered
    }

    /// Takes the body bytes that arrived since the last take (empty if none).
    pub fn take_data(&mut self) -> Vec<u8> {
        let data = core::mem::take(&mut self.buffered);
        self.taken = self.taken.saturating_add(data.len());
        data
    }

    /// Whether the body has ended (its framing is complete; bytes after it are ignored).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Body { framing: None, .. })
    }

    /// Whether the stream was refused (an error was returned).
    pub fn has_failed(&self) -> bool {
        matches!(self.state, State::Over)
    }

    /// Feeds the next bytes of the stream; an error is final.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), ParseError> {
        self.received = self.received.saturating_add(input.len());
        let result = self.advance(input);
        if result.is_err() {
            self.state = State::Over;
            self.buffered = Vec::new();
        }
        result
    }

    /// The connection ended (FIN or reset): fine for a body that runs until the close or has
    /// ended; a broken stream otherwise.
    pub fn end_of_stream(&mut self) -> Result<(), ParseError> {
        let received = self.received;
        let bytes = self.taken.saturating_add(self.buffered.len());
        let result = match &mut self.state {
            State::Over => Err(ParseError::Bad("the stream was already refused".into())),
            State::Head { .. } if received == 0 => {
                Err(ParseError::Bad("the connection closed without a response".into()))
            }
            State::Head { .. } => {
                Err(ParseError::Bad(format!("the connection closed inside the response head ({received} bytes)")))
            }
            State::Body { framing: None, .. } => Ok(()),
            State::Body { framing, .. } => match framing {
                Some(Framing::UntilClose) => {
                    *framing = None;
                    Ok(())
                }
                _ => Err(ParseError::Bad(format!(
                    "the stream broke: the connection closed before the body ended ({bytes} body bytes)"
                ))),
            },
        };
        if result.is_err() {
            self.state = State::Over;
        }
        result
    }

    fn advance(&mut self, input: &[u8]) -> Result<(), ParseError> {
        let mut leftover: Option<Vec<u8>> = None;
        loop {
            let carried = leftover.take();
            let input = carried.as_deref().unwrap_or(input);
            match &mut self.state {
                State::Over => return Err(ParseError::Bad("the stream was already refused".into())),
                State::Head { buf, scanned } => {
                    buf.try_reserve(input.len())
                        .map_err(|_| ParseError::TooLarge("not enough memory for the response head".into()))?;
                    buf.extend_from_slice(input);
                    let Some(end) = find_head_end(buf, *scanned) else {
                        if buf.len() > self.max_head {
                            return Err(self.head_too_large());
                        }
                        *scanned = buf.len();
                        return Ok(());
                    };
                    if end > self.max_head {
                        return Err(self.head_too_large());
                    }
                    let buf = core::mem::take(buf);
                    let (head, rest) = buf.split_at(end);
                    match parse_head(head, self.no_body, usize::MAX)? {
                        Parsed::Interim => self.state = State::Head { buf: Vec::new(), scanned: 0 },
                        Parsed::Final { status, head, framing } => self.state = State::Body { status, head, framing },
                    }
                    if rest.is_empty() {
                        return Ok(());
                    }
                    leftover = Some(rest.to_vec());
                }
                State::Body { framing: None, .. } => return Ok(()),
                State::Body { framing: Some(framing), .. } => {
                    let done = match framing {
                        Framing::UntilClose => {
                            append(&mut self.buffered, input, self.max_buffered, self.gate).map_err(|_| {
                                ParseError::TooLarge(format!(
                                    "more than {} stream bytes waiting to be taken (or no memory for them)",
                                    self.max_buffered
                                ))
                            })?;
                            false
                        }
                        Framing::Decoder(decoder) => {
                            let max = self.max_buffered;
                            let progress = decoder
                                .decode(input, &mut self.buffered, max, self.max_head, self.gate)
                                .map_err(|e| match e.status {
                                    413 => ParseError::TooLarge(format!(
                                        "more than {max} stream bytes waiting to be taken (or a chunk that large)"
                                    )),
                                    503 => ParseError::TooLarge("not enough memory for the stream".into()),
                                    _ => ParseError::Bad(format!("bad chunked stream: {}", e.message)),
                                })?;
                            if self.buffered.len() > max {
                                return Err(ParseError::TooLarge(format!(
                                    "more than {max} stream bytes waiting to be taken"
                                )));
                            }
                            progress.done
                        }
                    };
                    if done && let State::Body { framing, .. } = &mut self.state {
                        *framing = None;
                    }
                    return Ok(());
                }
            }
        }
    }

    fn head_too_large(&self) -> ParseError {
        ParseError::TooLarge(format!("the response head is over the {}-byte limit", self.max_head))
    }
}

/// One streaming request in flight (see the module docs).
pub struct StreamExchange {
    link: Link,
    parser: StreamParser,
    limits: StreamLimits,
    /// How it ended, once it has (kept until taken).
    outcome: Option<Result<(), FetchError>>,
}

impl StreamExchange {
    /// A streaming exchange for `request`, sent to `address`, connecting at `now_ms`.
    pub fn new(request: &Request, address: Ipv4Addr, limits: &StreamLimits, now_ms: u64) -> Self {
        Self {
            link: Link::new(request, address, now_ms),
            parser: StreamParser::new(limits.max_head_bytes, limits.max_buffered, request.expects_no_body())
                .with_memory_gate(limits.memory),
            limits: *limits,
            outcome: None,
        }
    }

    /// The server's address and port.
    pub fn remote(&self) -> (Ipv4Addr, u16) {
        (self.link.address, self.link.port)
    }

    /// `Done`: the server ended the body (cleanly); `Failed`: see [`Self::take_outcome`].
    pub fn phase(&self) -> Phase {
        self.link.phase
    }

    pub fn is_finished(&self) -> bool {
        self.link.is_finished()
    }

    /// The status and head, once in.
    pub fn head(&self) -> Option<(u16, &[u8])> {
        self.parser.head()
    }

    /// The body bytes that arrived since the last take (also after the stream ended).
    pub fn take_data(&mut self) -> Vec<u8> {
        self.parser.take_data()
    }

    /// How the stream ended, once it has (once): `Ok` when the server ended the body.
    pub fn take_outcome(&mut self) -> Option<Result<(), FetchError>> {
        self.outcome.take()
    }

    pub fn connected(&mut self, now_ms: u64) {
        self.link.connected(now_ms);
    }

    pub fn pending_output(&self) -> &[u8] {
        self.link.pending_output()
    }

    pub fn sent(&mut self, n: usize, now_ms: u64) {
        self.link.sent(n, now_ms);
    }

    pub fn received(&mut self, data: &[u8], now_ms: u64) {
        if !self.link.takes(data, now_ms) {
            return;
        }
        match self.parser.feed(data) {
            Ok(()) if self.parser.is_complete() => self.end(Ok(())),
            Ok(()) => {}
            Err(e) => self.parse_failed(e),
        }
    }

    pub fn peer_closed(&mut self) {
        match self.link.phase {
            Phase::Connecting => self.refused(),
            Phase::Sending | Phase::Receiving => match self.parser.end_of_stream() {
                Ok(()) => self.end(Ok(())),
                Err(e) => self.parse_failed(e),
            },
            Phase::Done | Phase::Failed => {}
        }
    }

    pub fn refused(&mut self) {
        let (class, what) = self.link.refused();
        self.fail(class, &what);
    }

    pub fn unreachable(&mut self, why: &str) {
        let (class, what) = self.link.unreachable(why);
        self.fail(class, &what);
    }

    pub fn tick(&mut self, now_ms: u64) {
        let Some(deadline) = self.deadline() else { return };
        if now_ms < deadline {
            return;
        }
        let Link { address, port, phase, .. } = self.link;
        let what = match (phase, self.parser.head().is_some()) {
            (Phase::Connecting, _) => {
                format!("no connection to {address}:{port} within {} ms", self.limits.connect_timeout_ms)
            }
            (_, false) => format!(
                "no response head from {address}:{port} within {} ms of quiet ({} bytes received)",
                self.limits.head_timeout_ms,
                self.parser.received()
            ),
            (_, true) => format!(
                "the stream from {address}:{port} was quiet for {} ms",
                self.limits.idle_timeout_ms.unwrap_or_default()
            ),
        };
        self.fail(ErrorClass::Timeout, &what);
    }

    /// When [`Self::tick`] must next run, if ever.
    pub fn deadline(&self) -> Option<u64> {
        let Link { started_ms, progress_ms, phase, .. } = self.link;
        match phase {
            Phase::Connecting => Some(started_ms.saturating_add(self.limits.connect_timeout_ms)),
            Phase::Sending | Phase::Receiving if self.parser.head().is_none() => {
                Some(progress_ms.saturating_add(self.limits.head_timeout_ms))
            }
            Phase::Sending | Phase::Receiving => self.limits.idle_timeout_ms.map(|t| progress_ms.saturating_add(t)),
            Phase::Done | Phase::Failed => None,
        }
    }

    fn end(&mut self, outcome: Result<(), FetchError>) {
        if self.is_finished() {
            return;
        }
        self.link.phase = if outcome.is_ok() { Phase::Done } else { Phase::Failed };
        self.outcome = Some(outcome);
    }

    fn parse_failed(&mut self, error: ParseError) {
        match error {
            ParseError::TooLarge(what) => self.fail(ErrorClass::TooLarge, &what),
            ParseError::Bad(what) => self.fail(ErrorClass::BadResponse, &what),
        }
    }

    fn fail(&mut self, class: ErrorClass, what: &str) {
        if !self.is_finished() {
            self.outcome = Some(Err(self.link.fail(class, what)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use model::Bytes;

    const WATCH_HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

    fn chunk(data: &[u8]) -> Vec<u8> {
        [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
    }

    /// Feeds `input` in pieces of `step` bytes, taking the data after each; returns what was
    /// taken, in order, and the parser.
    fn feed_in_steps(input: &[u8], step: usize, max_buffered: usize) -> (Vec<u8>, StreamParser) {
        let mut p = StreamParser::new(1024, max_buffered, false);
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            p.feed(piece).unwrap();
            out.extend(p.take_data());
        }
        (out, p)
    }

    #[test]
    fn chunks_are_handed_out_as_they_arrive() {
        let mut p = StreamParser::new(1024, 4096, false);
        p.feed(&WATCH_HEAD[..20]).unwrap();
        assert!(p.head().is_none());
        let mut input = WATCH_HEAD[20..].to_vec();
        input.extend(chunk(b"{\"a\":1}\n"));
        input.extend(&chunk(b"{\"b\":2}\n")[..5]);
        p.feed(&input).unwrap();
        let (status, head) = p.head().unwrap();
        assert_eq!((status, head), (200, WATCH_HEAD));
        assert_eq!(p.take_data(), b"{\"a\":1}\n{\"");
        assert!(p.take_data().is_empty(), "taken once");
        p.feed(&chunk(b"{\"b\":2}\n")[5..]).unwrap();
        assert_eq!(p.take_data(), b"b\":2}\n");
        assert!(!p.is_complete());
        p.feed(b"0\r\n\r\nignored").unwrap();
        assert!(p.is_complete());
        assert!(p.take_data().is_empty());
        p.end_of_stream().unwrap();
    }

    #[test]
    fn any_split_gives_the_same_bytes() {
        let mut input = WATCH_HEAD.to_vec();
        let mut want = Vec::new();
        for i in 0..40u8 {
            let piece = vec![b'a' + i % 26; usize::from(i) * 7 + 1];
            input.extend(chunk(&piece));
            want.extend(piece);
        }
        input.extend(b"0\r\n\r\n");
        for step in [1, 2, 3, 7, 64, 1000, input.len()] {
            let (got, p) = feed_in_steps(&input, step, 8192);
            assert_eq!(got, want, "step {step}");
            assert!(p.is_complete());
        }
    }

    #[test]
    fn a_cut_inside_a_chunk_or_the_head_is_a_broken_stream() {
        let mut input = WATCH_HEAD.to_vec();
        input.extend(chunk(b"{\"events\":[]}\n"));
        input.extend(&chunk(b"{\"result\":{\"events\":[1]}}\n")[..9]);
        let (got, mut p) = feed_in_steps(&input, 5, 4096);
        assert_eq!(&got[..15], b"{\"events\":[]}\n{");
        let e = p.end_of_stream().unwrap_err();
        assert!(
            matches!(&e, ParseError::Bad(why) if why.contains("the stream broke") && why.contains("19 body bytes")),
            "{e:?}"
        );
        assert!(p.has_failed());

        let mut p = StreamParser::new(1024, 4096, false);
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer-").unwrap();
        assert!(matches!(p.end_of_stream(), Err(ParseError::Bad(why)) if why.contains("inside the response head")));
        let mut p = StreamParser::new(1024, 4096, false);
        assert!(matches!(p.end_of_stream(), Err(ParseError::Bad(why)) if why.contains("without a response")));
    }

    #[test]
    fn close_delimited_and_length_bodies_stream_too() {
        let (got, mut p) = feed_in_steps(b"HTTP/1.0 200 OK\r\n\r\nabcdefgh", 3, 4096);
        assert_eq!(got, b"abcdefgh");
        assert!(!p.is_complete());
        p.end_of_stream().unwrap();
        assert!(p.is_complete());
        let (got, p) = feed_in_steps(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloMORE", 4, 4096);
        assert_eq!((got.as_slice(), p.is_complete()), (&b"hello"[..], true));
        // A body longer than the buffer is fine when it is taken as it comes.
        let mut long = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec();
        long.extend([b'x'; 10000]);
        let (got, p) = feed_in_steps(&long, 100, 256);
        assert_eq!((got.len(), p.is_complete()), (10000, true));
        let (_, p) = feed_in_steps(b"HTTP/1.1 204 No Content\r\n\r\n", 1, 16);
        assert!(p.is_complete());
    }

    #[test]
    fn memory_is_bounded_per_stream() {
        // Not taken: the buffer fills up and the stream is refused, whatever the framing.
        let mut p = StreamParser::new(1024, 64, false);
        p.feed(WATCH_HEAD).unwrap();
        for _ in 0..4 {
            p.feed(&chunk(&[b'x'; 16])).unwrap();
        }
        let e = p.feed(&chunk(b"y")).unwrap_err();
        assert!(matches!(&e, ParseError::TooLarge(why) if why.contains("more than 64")), "{e:?}");
        assert!(p.feed(b"1\r\nz\r\n").is_err(), "final");
        assert!(p.data().is_empty(), "the buffer is let go");
        // One chunk larger than the buffer is refused at its size line.
        let mut p = StreamParser::new(1024, 64, false);
        p.feed(WATCH_HEAD).unwrap();
        assert!(matches!(p.feed(b"41\r\n"), Err(ParseError::TooLarge(_))));
        for input in [&b"HTTP/1.0 200 OK\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"] {
            let mut p = StreamParser::new(1024, 64, false);
            p.feed(input).unwrap();
            p.feed(&[b'x'; 64]).unwrap();
            assert!(matches!(p.feed(b"x"), Err(ParseError::TooLarge(_))), "{input:?}");
        }
        // A memory gate that says no.
        let mut p = StreamParser::new(1024, 4096, false).with_memory_gate(MemoryGate(|_| false));
        p.feed(WATCH_HEAD).unwrap();
        assert!(matches!(p.feed(&chunk(b"abc")), Err(ParseError::TooLarge(why)) if why.contains("memory")));
        // An endless head.
        let mut p = StreamParser::new(64, 4096, false);
        assert!(matches!(p.feed(&[b'H'; 100]), Err(ParseError::TooLarge(why)) if why.contains("head")));
    }

    #[test]
    fn bad_framing_is_a_clean_error() {
        let mut p = StreamParser::new(1024, 4096, false);
        p.feed(WATCH_HEAD).unwrap();
        p.feed(&chunk(b"ok")).unwrap();
        assert!(matches!(p.feed(b"zz\r\n"), Err(ParseError::Bad(why)) if why.contains("bad chunked stream")));
        let mut p = StreamParser::new(1024, 4096, false);
        assert!(matches!(p.feed(b"SSH-2.0-x\r\n\r\n"), Err(ParseError::Bad(_))));
    }

    fn exchange(limits: &StreamLimits) -> StreamExchange {
        let request = Request::parse(&Bytes::from(&b"POST http://10.0.0.1:2379/v3/watch\r\n\r\n{}"[..])).unwrap();
        StreamExchange::new(&request, Ipv4Addr::new(10, 0, 0, 1), limits, 0)
    }

    fn opened(limits: &StreamLimits) -> StreamExchange {
        let mut e = exchange(limits);
        e.connected(10);
        let n = e.pending_output().len();
        e.sent(n, 20);
        e
    }

    #[test]
    fn an_exchange_streams_and_waits_quietly_once_the_head_is_in() {
        let limits = StreamLimits::default();
        let mut e = exchange(&limits);
        assert_eq!(e.deadline(), Some(5_000));
        e.connected(10);
        assert!(e.pending_output().starts_with(b"POST /v3/watch HTTP/1.1\r\n"));
        let n = e.pending_output().len();
        e.sent(n, 20);
        assert_eq!((e.phase(), e.deadline()), (Phase::Receiving, Some(10_020)));
        e.received(WATCH_HEAD, 30);
        assert_eq!(e.head().map(|h| h.0), Some(200));
        assert_eq!(e.deadline(), None, "a quiet watch is not a failure");
        e.tick(1_000_000);
        assert_eq!(e.phase(), Phase::Receiving);
        e.received(&chunk(b"{}\n"), 1_000_001);
        assert_eq!(e.take_data(), b"{}\n");
        e.received(b"0\r\n\r\n", 1_000_002);
        assert_eq!(e.phase(), Phase::Done);
        assert_eq!(e.take_outcome(), Some(Ok(())));
    }

    #[test]
    fn an_exchange_fails_cleanly() {
        let limits = StreamLimits { idle_timeout_ms: Some(500), ..StreamLimits::default() };
        let mut e = opened(&limits);
        e.received(WATCH_HEAD, 100);
        e.received(&chunk(b"{\"a\"")[..6], 200);
        assert_eq!(e.take_data(), b"{\"a");
        assert_eq!(e.deadline(), Some(700));
        e.peer_closed();
        assert_eq!(e.phase(), Phase::Failed);
        let error = e.take_outcome().unwrap().unwrap_err().to_string();
        assert!(error.starts_with("bad_response: the stream broke"), "{error}");
        assert!(error.ends_with("(POST http://10.0.0.1:2379/v3/watch)"), "{error}");

        let mut e = opened(&limits);
        e.received(WATCH_HEAD, 100);
        e.tick(600);
        let error = e.take_outcome().unwrap().unwrap_err().to_string();
        assert!(error.starts_with("timeout: the stream from 10.0.0.1:2379 was quiet for 500 ms"), "{error}");

        let mut e = opened(&limits);
        e.tick(10_020);
        let error = e.take_outcome().unwrap().unwrap_err().to_string();
        assert!(error.starts_with("timeout: no response head"), "{error}");

        let mut e = exchange(&limits);
        e.peer_closed();
        assert!(e.take_outcome().unwrap().unwrap_err().to_string().starts_with("refused: "));
        let mut e = exchange(&limits);
        e.tick(5_000);
        assert!(e.take_outcome().unwrap().unwrap_err().to_string().starts_with("timeout: no connection"));
        e.received(WATCH_HEAD, 5_001);
        assert!(e.head().is_none(), "nothing after the end");
    }
}
