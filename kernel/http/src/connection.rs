//! The per-connection state machine.
//!
//! One request is in flight at a time: after handing out a [`Event::Request`] the connection
//! parses nothing more until the handler has [responded](Connection::respond). Pipelined requests
//! wait in the receive buffer meanwhile, so responses go out in request order and never
//! interleave. The receive buffer is consumed through an offset (and compacted only when at least
//! half of it is spent), the head terminator search resumes where it stopped, and body bytes are
//! decoded once each, so every received byte costs O(1) however the reads are split.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::mem;

use crate::body::{self, Decoder};
use crate::limits::Limits;
use crate::parse::{self, Framing, Head};
use crate::request::{Request, Version};
use crate::response::{self, CONTINUE, HttpError, Response};

/// Bodies up to this size are copied behind their head into one output chunk; larger ones are
/// queued as their own chunk without copying.
const COALESCE_BODY: usize = 4096;

/// What a connection has for its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete request, body included. Answer it with [`Connection::respond`]; until then
    /// the connection yields no further events.
    Request(Request),
    /// A request head carrying `Expect: 100-continue`; its body is empty and the client waits
    /// before sending it. Call [`Connection::accept_continue`] to send `100 Continue` and read the
    /// body (the full request then arrives as [`Event::Request`]), or [`Connection::respond`]
    /// with a final response to refuse it, which closes the connection after that response.
    ExpectContinue(Request),
    /// The connection answered a bad or stalled request on its own: the error response is
    /// already queued and the connection closes after it. For logs and metrics.
    Error(HttpError),
}

/// [`Connection::respond`] or [`Connection::accept_continue`] was called with no request
/// waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRequestPending;

impl core::fmt::Display for NoRequestPending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("no request is waiting for an answer")
    }
}

/// One HTTP/1.1 server connection, without I/O.
///
/// The driver (the kernel's front door, or a test) loops:
/// 1. [`receive`](Self::receive) the bytes its socket read (and [`peer_closed`](Self::peer_closed)
///    when the peer sent FIN), while [`wants_input`](Self::wants_input) says so;
/// 2. take events from [`next_event`](Self::next_event) until it returns `None`, answering each
///    [`Event::Request`] with [`respond`](Self::respond) (and each [`Event::ExpectContinue`]
///    with [`accept_continue`](Self::accept_continue) or `respond`);
/// 3. send [`output`](Self::output) and report what the socket took with
///    [`consume_output`](Self::consume_output);
/// 4. close the socket once [`wants_close`](Self::wants_close) holds and no output is left.
///
/// `next_event` also enforces the timeouts of [`Limits`], so the driver calls it again by
/// [`deadline`](Self::deadline) even when no bytes arrive. Times are milliseconds on any
/// monotonic clock.
/// The largest sent buffer a connection keeps for its next response head.
const SPARE_CAPACITY: usize = 2048;

#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    /// Received bytes; those before `pos` are consumed.
    buf: Vec<u8>,
    pos: usize,
    state: State,
    /// Queued output; the front chunk is sent from `out_pos` on.
    out: VecDeque<Vec<u8>>,
    out_pos: usize,
    /// A sent chunk's buffer (at most [`SPARE_CAPACITY`]), for the next response head: a
    /// keep-alive connection encodes its heads without allocating.
    spare: Vec<u8>,
    /// The peer will send nothing more.
    eof: bool,
    /// Request heads parsed so far.
    requests: u64,
}

#[derive(Debug)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head(HeadState),
    /// An `Expect: 100-continue` head was handed out; waiting for the handler's decision.
    Continue(BodyState),
    /// Reading a body.
    Body(BodyState),
    /// A request was handed out; waiting for its response.
    Handler { head_only: bool, version: Version, keep_alive: bool },
    /// Nothing more is read; close once the output is sent.
    Closed,
}

#[derive(Debug)]
struct HeadState {
    /// Which timeout runs and since when; set on the first `next_event` or received byte.
    timer: Option<(Timer, u64)>,
    /// Bytes after `pos` already searched for the end of the head.
    scanned: usize,
    /// Whether the complete request line has been checked already.
    line_checked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Keep-alive idleness: nothing of a next request yet. Expiry closes silently.
    Idle,
    /// A head is due. Expiry answers 408.
    Head,
}

#[derive(Debug)]
struct BodyState {
    request: Request,
    decoder: Decoder,
    keep_alive: bool,
    /// When body bytes last arrived (or reading began); set lazily.
    last_progress: Option<u64>,
}

enum Step {
    Event(Event),
    /// State changed; step again.
    Again,
    /// Nothing to do until more bytes, EOF or time.
    Wait,
}

impl HeadState {
    fn new(timer: Option<(Timer, u64)>) -> Self {
        Self { timer, scanned: 0, line_checked: false }
    }
}

impl Connection {
    /// A new connection, opened at `now`. Its first request head must be complete within
    /// `limits.head_timeout_ms`.
    pub fn new(limits: Limits, now: u64) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Head(HeadState::new(Some((Timer::Head, now)))),
            out: VecDeque::new(),
            out_pos: 0,
            spare: Vec::new(),
            eof: false,
            requests: 0,
        }
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Buffers bytes the peer sent, received at `now`. Nothing is parsed until
    /// [`next_event`](Self::next_event). Bytes after the connection decided to close are dropped.
    pub fn receive(&mut self, data: &[u8], now: u64) {
        if data.is_empty() || matches!(self.state, State::Closed) {
            return;
        }
        match &mut self.state {
            State::Head(h) if h.timer.is_none_or(|(t, _)| t == Timer::Idle) => h.timer = Some((Timer::Head, now)),
            State::Body(b) => b.last_progress = Some(now),
            _ => {}
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The peer closed its sending side: requests already buffered are still answered, then the
    /// connection closes; a request cut short gets 400.
    pub fn peer_closed(&mut self) {
        self.eof = true;
    }

    /// Whether the driver should read more from the socket: false once the connection is closing,
    /// and while a request awaits its answer with a full head's worth of pipelined bytes already
    /// buffered (back-pressure: the bytes stay in the TCP window instead).
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Handler { .. } | State::Continue(_) => self.buf.len() - self.pos < self.limits.max_head_bytes,
            State::Head(_) | State::Body(_) => !self.eof,
        }
    }

    /// The next thing for the driver, given the time `now`; `None` when nothing is due before
    /// more bytes arrive, the handler responds or time passes. Also answers timeouts: 408 when a
    /// head is not complete within `head_timeout_ms` or a body stalls for `body_timeout_ms`, and
    /// a silent close after `keep_alive_timeout_ms` of idleness between requests.
    pub fn next_event(&mut self, now: u64) -> Option<Event> {
        loop {
            let step = match self.state {
                State::Head(_) => self.step_head(now),
                State::Body(_) => self.step_body(now),
                State::Continue(_) | State::Handler { .. } | State::Closed => return None,
            };
            match step {
                Step::Event(e) => return Some(e),
                Step::Again => {}
                Step::Wait => return None,
            }
        }
    }

    /// When `next_event` must be called again at the latest (if no bytes arrive before) for a
    /// timeout to be noticed; `None` when no timeout runs (or `next_event` has not yet been called
    /// since the last response).
    pub fn deadline(&self) -> Option<u64> {
        match &self.state {
            State::Head(HeadState { timer: Some((Timer::Idle, t)), .. }) => {
                Some(t.saturating_add(self.limits.keep_alive_timeout_ms))
            }
            State::Head(HeadState { timer: Some((Timer::Head, t)), .. }) => {
                Some(t.saturating_add(self.limits.head_timeout_ms))
            }
            State::Body(BodyState { last_progress: Some(t), .. }) => {
                Some(t.saturating_add(self.limits.body_timeout_ms))
            }
            _ => None,
        }
    }

    /// Answers the request last handed out (or refuses an [`Event::ExpectContinue`]). The
    /// response is queued for [`output`](Self::output); the connection then closes if the request
    /// or the response said so (HTTP/1.0 without keep-alive, `Connection: close`, a refused
    /// `100-continue`), or reads the next request.
    pub fn respond(&mut self, response: Response) -> Result<(), NoRequestPending> {
        match mem::replace(&mut self.state, State::Closed) {
            State::Handler { head_only, version, keep_alive } => {
                let close = !keep_alive || response.asks_close();
                let keep_alive_1_0 = !close && version == Version::Http10;
                self.queue(response, response::Framing { close, keep_alive_1_0 }, head_only);
                if close {
                    self.close();
                } else {
                    self.state = State::Head(HeadState::new(None));
                }
            }
            State::Continue(body) => {
                let head_only = body.request.method == "HEAD";
                self.queue(response, response::Framing { close: true, keep_alive_1_0: false }, head_only);
                self.close();
            }
            other => {
                self.state = other;
                return Err(NoRequestPending);
            }
        }
        Ok(())
    }

    /// Accepts the body of the request last handed out as [`Event::ExpectContinue`]: queues
    /// `HTTP/1.1 100 Continue` and reads the body.
    pub fn accept_continue(&mut self) -> Result<(), NoRequestPending> {
        match mem::replace(&mut self.state, State::Closed) {
            State::Continue(body) => {
                self.out.push_back(CONTINUE.to_vec());
                self.state = State::Body(body);
                Ok(())
            }
            other => {
                self.state = other;
                Err(NoRequestPending)
            }
        }
    }

    /// The bytes to send next (a prefix of all queued output; empty when none is queued).
    pub fn output(&self) -> &[u8] {
        self.out.front().map_or(&[], |chunk| &chunk[self.out_pos..])
    }

    /// Marks the first `n` bytes of queued output as sent.
    pub fn consume_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front() else { break };
            let left = front.len() - self.out_pos;
            if n < left {
                self.out_pos += n;
                break;
            }
            n -= left;
            if let Some(sent) = self.out.pop_front()
                && sent.capacity() <= SPARE_CAPACITY
                && sent.capacity() > self.spare.capacity()
            {
                self.spare = sent;
            }
            self.out_pos = 0;
        }
    }

    /// Whether output is queued.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Takes all queued output at once.
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.out.iter().map(Vec::len).sum::<usize>() - self.out_pos);
        for (i, chunk) in self.out.drain(..).enumerate() {
            all.extend_from_slice(if i == 0 { &chunk[self.out_pos..] } else { &chunk });
        }
        self.out_pos = 0;
        all
    }

    /// Whether the connection is done: close the socket once [`has_output`](Self::has_output)
    /// is false.
    pub fn wants_close(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn step_head(&mut self, now: u64) -> Step {
        let State::Head(head) = &mut self.state else { unreachable!() };
        if head.scanned == 0 {
            // RFC 9112 section 2.2: ignore empty lines before a request line.
            while self.buf.get(self.pos).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                self.pos += 1;
            }
        }
        let pending = &self.buf[self.pos..];
        let fresh = if pending.is_empty() && self.requests > 0 { Timer::Idle } else { Timer::Head };
        let (timer, since) = *head.timer.get_or_insert((fresh, now));
        if pending.is_empty() && !self.eof {
            // Nothing to parse (after every response of a keep-alive connection): only a
            // timeout can happen.
            return self.head_timeout(timer, since, now);
        }
        // Only the first `max + 1` bytes matter: a head ends within them or is too large. Looking
        // no further keeps the outcome the same however the bytes were split into reads.
        let max = self.limits.max_head_bytes;
        let window = &pending[..pending.len().min(max + 1)];
        if head.scanned == 0
            && let Some((parsed, end)) = parse::parse_head_at_start(window, &self.limits)
        {
            // Whole at the first look: parsed once, its end found by the parse.
            return match parsed {
                _ if end > max => self.fail(too_large_head(max)),
                Ok(parsed) => {
                    self.pos += end;
                    self.start_request(parsed)
                }
                Err(e) => self.fail(e),
            };
        }
        match parse::find_head_end(window, head.scanned) {
            Ok(end) if end > max => self.fail(too_large_head(max)),
            Ok(end) => match parse::parse_head(&pending[..end], &self.limits) {
                Ok(parsed) => {
                    self.pos += end;
                    self.start_request(parsed)
                }
                Err(e) => self.fail(e),
            },
            Err(resume) => {
                let from = head.scanned.min(window.len());
                head.scanned = resume;
                if !head.line_checked
                    && let Some(nl) = window[from..].iter().position(|&b| b == b'\n')
                {
                    head.line_checked = true;
                    if let Err(e) = parse::check_partial(&window[..=from + nl], &self.limits) {
                        return self.fail(e);
                    }
                }
                if pending.len() > max {
                    self.fail(too_large_head(max))
                } else if self.eof && pending.is_empty() {
                    self.close();
                    Step::Wait
                } else if self.eof {
                    self.fail(HttpError::bad_request("connection closed before the request head was complete"))
                } else {
                    self.head_timeout(timer, since, now)
                }
            }
        }
    }

    /// While a head is awaited: closes an idle keep-alive connection, answers 408 to a head
    /// that is late, or waits.
    fn head_timeout(&mut self, timer: Timer, since: u64, now: u64) -> Step {
        if timer == Timer::Idle && now.saturating_sub(since) >= self.limits.keep_alive_timeout_ms {
            self.close();
            Step::Wait
        } else if timer == Timer::Head && now.saturating_sub(since) >= self.limits.head_timeout_ms {
            let ms = self.limits.head_timeout_ms;
            self.fail(HttpError::new(408, format!("request head not complete within {ms} ms")))
        } else {
            Step::Wait
        }
    }

    fn start_request(&mut self, head: Head) -> Step {
        self.requests += 1;
        let Head { request, framing, keep_alive, expect_continue } = head;
        let decoder = match framing {
            Framing::Length(0) => return self.deliver(request, keep_alive),
            // The whole body is already here (a small request in one segment): taken at once,
            // without a turn through the body state.
            Framing::Length(n) if !expect_continue && self.buf.len() - self.pos >= n => {
                let mut request = request;
                let whole = &self.buf[self.pos..self.pos + n];
                if let Err(e) = body::append(&mut request.body, whole, n, self.limits.body_memory) {
                    return self.fail(e);
                }
                self.pos += n;
                return self.deliver(request, keep_alive);
            }
            Framing::Length(n) => Decoder::length(n),
            Framing::Chunked => Decoder::chunked(),
        };
        let body = BodyState { request, decoder, keep_alive, last_progress: None };
        if expect_continue {
            let head = body.request.clone();
            self.state = State::Continue(body);
            Step::Event(Event::ExpectContinue(head))
        } else {
            self.state = State::Body(body);
            Step::Again
        }
    }

    fn step_body(&mut self, now: u64) -> Step {
        let State::Body(body) = &mut self.state else { unreachable!() };
        let last = body.last_progress.get_or_insert(now);
        let limits = &self.limits;
        let pending = &self.buf[self.pos..];
        match body.decoder.decode(
            pending,
            &mut body.request.body,
            limits.max_body_bytes,
            limits.max_head_bytes,
            limits.body_memory,
        ) {
            Err(e) => return self.fail(e),
            Ok(p) => {
                self.pos += p.consumed;
                if p.consumed > 0 {
                    *last = now;
                }
            }
        }
        if body.decoder.is_done() {
            let State::Body(body) = mem::replace(&mut self.state, State::Closed) else { unreachable!() };
            return self.deliver(body.request, body.keep_alive);
        }
        let got = body.decoder.describe_progress(body.request.body.len());
        if self.eof {
            self.fail(HttpError::bad_request(format!("connection closed before the body was complete ({got})")))
        } else if now.saturating_sub(*last) >= limits.body_timeout_ms {
            let ms = limits.body_timeout_ms;
            self.fail(HttpError::new(408, format!("no body bytes for {ms} ms ({got})")))
        } else {
            Step::Wait
        }
    }

    fn deliver(&mut self, request: Request, keep_alive: bool) -> Step {
        self.state = State::Handler { head_only: request.method == "HEAD", version: request.version, keep_alive };
        Step::Event(Event::Request(request))
    }

    fn fail(&mut self, error: HttpError) -> Step {
        self.queue(error.to_response(), response::Framing { close: true, keep_alive_1_0: false }, false);
        self.close();
        Step::Event(Event::Error(error))
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.buf = Vec::new();
        self.pos = 0;
    }

    fn queue(&mut self, response: Response, framing: response::Framing, head_only: bool) {
        let coalesce = !head_only && response.body.len() <= COALESCE_BODY;
        let mut head = mem::take(&mut self.spare);
        head.clear();
        response.encode_head_into(framing, if coalesce { response.body.len() } else { 0 }, &mut head);
        if head_only || !response::carries_body(response.status) || response.body.is_empty() {
            self.out.push_back(head);
        } else if response.body.len() <= COALESCE_BODY {
            head.extend_from_slice(&response.body);
            self.out.push_back(head);
        } else {
            self.out.push_back(head);
            self.out.push_back(response.body);
        }
    }
}

fn too_large_head(max: usize) -> HttpError {
    HttpError::new(431, format!("request head exceeds the {max}-byte limit"))
}
