//! One request's life, independent of sockets and clocks: Connecting → Sending → Receiving →
//! Done or Failed. The caller (the kernel's driver, or a test) says what the socket did and
//! passes the time in ms; the exchange decides what it means, including timeouts.

use alloc::format;
use core::net::Ipv4Addr;

use crate::error::{ErrorClass, FetchError};
use crate::link::{Link, Phase};
use crate::request::Request;
use crate::response::{ParseError, Response, ResponseParser};

/// Limits of the `http` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// From the first SYN to an established connection.
    pub connect_timeout_ms: u64,
    /// The longest wait for the server once connected: for room to send, or for response
    /// bytes. Every byte moved restarts it.
    pub read_timeout_ms: u64,
    /// The longest a whole exchange may take, however steadily bytes trickle in.
    pub total_timeout_ms: u64,
    /// The largest response body, after chunked decoding.
    pub max_response_bytes: usize,
    /// The most response bytes (heads and bodies) one instance may collect in all: its outputs
    /// are held until its last request ends, and the heap is finite.
    pub max_instance_bytes: usize,
    /// The largest response head (status line and header fields).
    pub max_head_bytes: usize,
    /// The most connections open at once, across all instances; further requests wait.
    pub max_in_flight: usize,
    /// Asked before a response body's buffer grows (a kernel keeps its heap reserve with it);
    /// a no ends that request as too large.
    pub body_memory: pappus_http::MemoryGate,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            read_timeout_ms: 10_000,
            total_timeout_ms: 60_000,
            max_response_bytes: 16 << 20,
            max_instance_bytes: 64 << 20,
            max_head_bytes: 64 << 10,
            max_in_flight: 32,
            body_memory: pappus_http::MemoryGate::ALWAYS,
        }
    }
}

/// One request in flight.
pub struct Exchange {
    link: Link,
    parser: ResponseParser,
    limits: FetchLimits,
    outcome: Option<Result<Response, FetchError>>,
}

impl Exchange {
    /// An exchange for `request`, sent to `address`, starting (connecting) at `now_ms`.
    pub fn new(request: &Request, address: Ipv4Addr, limits: &FetchLimits, now_ms: u64) -> Self {
        Self {
            link: Link::new(request, address, now_ms),
            parser: ResponseParser::new(limits.max_head_bytes, limits.max_response_bytes, request.expects_no_body())
                .with_memory_gate(limits.body_memory),
            limits: *limits,
            outcome: None,
        }
    }

    /// The server's address and port.
    pub fn remote(&self) -> (Ipv4Addr, u16) {
        (self.link.address, self.link.port)
    }

    pub fn phase(&self) -> Phase {
        self.link.phase
    }

    pub fn is_finished(&self) -> bool {
        self.link.is_finished()
    }

    /// The connection is established.
    pub fn connected(&mut self, now_ms: u64) {
        self.link.connected(now_ms);
    }

    /// The request bytes still to send.
    pub fn pending_output(&self) -> &[u8] {
        self.link.pending_output()
    }

    /// The socket took `n` more bytes of [`Self::pending_output`].
    pub fn sent(&mut self, n: usize, now_ms: u64) {
        self.link.sent(n, now_ms);
    }

    /// Bytes arrived. A server may answer before it has read the whole request (an early 413,
    /// say): that answer counts.
    pub fn received(&mut self, data: &[u8], now_ms: u64) {
        if !self.link.takes(data, now_ms) {
            return;
        }
        match self.parser.feed(data) {
            Ok(true) => self.complete(),
            Ok(false) => {}
            Err(e) => self.parse_failed(e),
        }
    }

    /// The server closed the connection (or reset it) before or after answering.
    pub fn peer_closed(&mut self) {
        match self.link.phase {
            Phase::Connecting => self.refused(),
            Phase::Sending | Phase::Receiving => match self.parser.end_of_stream() {
                Ok(()) => self.complete(),
                Err(e) => self.parse_failed(e),
            },
            Phase::Done | Phase::Failed => {}
        }
    }

    /// The server answered the connection attempt with a reset.
    pub fn refused(&mut self) {
        let (class, what) = self.link.refused();
        self.fail(class, &what);
    }

    /// There is no way to the server (`why` says which).
    pub fn unreachable(&mut self, why: &str) {
        let (class, what) = self.link.unreachable(why);
        self.fail(class, &what);
    }

    /// Checks the timeouts at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        let Some(deadline) = self.deadline() else { return };
        if now_ms < deadline {
            return;
        }
        let Link { address, port, started_ms, phase, .. } = self.link;
        let what = if now_ms >= started_ms.saturating_add(self.limits.total_timeout_ms) {
            format!("the exchange took longer than {} ms", self.limits.total_timeout_ms)
        } else {
            match phase {
                Phase::Connecting => {
                    format!("no connection to {address}:{port} within {} ms", self.limits.connect_timeout_ms)
                }
                Phase::Sending => {
                    let (sent, total) = self.link.sent_of();
                    let read = self.limits.read_timeout_ms;
                    format!("{address}:{port} took no request bytes for {read} ms ({sent} of {total} sent)")
                }
                _ => format!(
                    "no response bytes from {address}:{port} for {} ms ({} received)",
                    self.limits.read_timeout_ms,
                    self.parser.received()
                ),
            }
        };
        self.fail(ErrorClass::Timeout, &what);
    }

    /// When [`Self::tick`] must next run, while unfinished (ms, the caller's clock).
    pub fn deadline(&self) -> Option<u64> {
        let Link { started_ms, progress_ms, phase, .. } = self.link;
        let total = started_ms.saturating_add(self.limits.total_timeout_ms);
        let phase = match phase {
            Phase::Connecting => started_ms.saturating_add(self.limits.connect_timeout_ms),
            Phase::Sending | Phase::Receiving => progress_ms.saturating_add(self.limits.read_timeout_ms),
            Phase::Done | Phase::Failed => return None,
        };
        Some(phase.min(total))
    }

    /// The result, once finished (once).
    pub fn take_outcome(&mut self) -> Option<Result<Response, FetchError>> {
        self.outcome.take()
    }

    fn complete(&mut self) {
        match self.parser.take_response() {
            Some(response) => {
                self.link.phase = Phase::Done;
                self.outcome = Some(Ok(response));
            }
            None => self.fail(ErrorClass::BadResponse, "the response vanished"),
        }
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
    use alloc::string::{String, ToString};
    use model::Bytes;

    fn exchange(item: &str, now: u64) -> Exchange {
        let request = Request::parse(&Bytes::from(item.as_bytes())).unwrap();
        Exchange::new(&request, Ipv4Addr::new(10, 0, 2, 2), &FetchLimits::default(), now)
    }

    fn error(mut e: Exchange) -> String {
        assert_eq!(e.phase(), Phase::Failed);
        e.take_outcome().unwrap().unwrap_err().to_string()
    }

    #[test]
    fn the_happy_path() {
        let mut e = exchange("http://10.0.2.2:8000/a", 100);
        assert_eq!((e.phase(), e.remote()), (Phase::Connecting, (Ipv4Addr::new(10, 0, 2, 2), 8000)));
        assert_eq!(e.deadline(), Some(5_100));
        assert!(e.pending_output().is_empty(), "nothing to send before the connection");
        e.connected(200);
        assert_eq!(e.phase(), Phase::Sending);
        let len = e.pending_output().len();
        e.sent(10, 210);
        assert_eq!(e.pending_output().len(), len - 10);
        e.sent(len - 10, 220);
        assert_eq!((e.phase(), e.deadline()), (Phase::Receiving, Some(10_220)));
        e.received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh", 300);
        assert_eq!(e.deadline(), Some(10_300), "bytes restart the read timeout");
        e.received(b"i", 310);
        assert_eq!((e.phase(), e.deadline()), (Phase::Done, None));
        let response = e.take_outcome().unwrap().unwrap();
        assert_eq!((response.status, response.body.as_slice()), (200, &b"hi"[..]));
        assert!(e.take_outcome().is_none());
    }

    #[test]
    fn close_delimited_response_ends_with_the_close() {
        let mut e = exchange("http://10.0.2.2/", 0);
        e.connected(1);
        e.received(b"HTTP/1.0 200 OK\r\n\r\nall of it", 2);
        assert_eq!(e.phase(), Phase::Sending, "an early answer while still sending");
        e.peer_closed();
        assert_eq!(e.take_outcome().unwrap().unwrap().body, b"all of it");
    }

    #[test]
    fn every_failure_names_its_class_and_the_request() {
        let mut e = exchange("http://10.0.2.2:9/x", 0);
        e.tick(4_999);
        assert_eq!(e.phase(), Phase::Connecting);
        e.tick(5_000);
        assert_eq!(error(e), "timeout: no connection to 10.0.2.2:9 within 5000 ms (GET http://10.0.2.2:9/x)");

        let mut e = exchange("http://10.0.2.2:9/x", 0);
        e.refused();
        e.tick(1_000_000);
        assert_eq!(error(e), "refused: 10.0.2.2:9 refused the connection (GET http://10.0.2.2:9/x)");

        let mut e = exchange("http://10.0.2.2:9/x", 0);
        e.peer_closed();
        assert!(error(e).starts_with("refused: "), "a close while connecting is a refusal");

        let mut e = exchange("http://10.0.2.2/x", 0);
        e.unreachable("no IPv4 address yet");
        assert_eq!(error(e), "unreachable: 10.0.2.2:80: no IPv4 address yet (GET http://10.0.2.2/x)");

        let mut e = exchange("http://10.0.2.2/x", 0);
        e.connected(10);
        e.tick(10_010);
        assert!(error(e).starts_with("timeout: 10.0.2.2:80 took no request bytes for 10000 ms (0 of "));

        let mut e = exchange("http://10.0.2.2/x", 0);
        e.connected(10);
        let n = e.pending_output().len();
        e.sent(n, 20);
        e.received(b"HTTP/1.1 200", 30);
        e.tick(10_029);
        assert_eq!(e.phase(), Phase::Receiving);
        e.tick(10_030);
        assert_eq!(
            error(e),
            "timeout: no response bytes from 10.0.2.2:80 for 10000 ms (12 received) (GET http://10.0.2.2/x)"
        );

        // A trickle that never ends hits the total timeout.
        let mut e = exchange("http://10.0.2.2/x", 0);
        e.connected(0);
        let n = e.pending_output().len();
        e.sent(n, 0);
        let mut now = 0;
        while e.phase() == Phase::Receiving {
            now += 5_000;
            e.received(b"x", now);
            e.tick(now);
        }
        assert_eq!(now, 60_000);
        assert!(error(e).starts_with("timeout: the exchange took longer than 60000 ms"));

        let mut e = exchange("http://10.0.2.2/x", 0);
        e.connected(0);
        e.received(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", 1);
        assert!(
            error(e).starts_with("too_large: the response body of 999999999 bytes is over the 16777216-byte limit")
        );

        let mut e = exchange("http://10.0.2.2/x", 0);
        e.connected(0);
        e.received(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 1);
        e.peer_closed();
        assert!(
            error(e).starts_with("bad_response: the connection closed before the body was complete (3 body bytes)")
        );
    }
}
