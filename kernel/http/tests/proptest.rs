//! Property tests: arbitrary bytes and arbitrary read splits never panic and always yield
//! well-formed responses; generated valid requests round-trip; read boundaries never change the
//! outcome.

mod common;

use common::*;
use pappus_http::{Connection, Event, Limits};
use proptest::prelude::*;

/// Responses to HEAD requests carry no body; find their positions in the response stream.
fn head_indices(log: &Log) -> Vec<usize> {
    log.requests.iter().enumerate().filter(|(_, r)| r.method == "HEAD").map(|(i, _)| i).collect()
}

#[derive(Clone, Debug)]
struct GenReq {
    method: &'static str,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// None: Content-Length; Some(sizes): chunked with these chunk sizes (cycled).
    chunked: Option<Vec<usize>>,
    expect: bool,
    trailers: bool,
}

impl GenReq {
    fn has_framing(&self) -> bool {
        self.chunked.is_some() || !self.body.is_empty() || matches!(self.method, "POST" | "PUT" | "PATCH")
    }

    fn expects_continue(&self) -> bool {
        self.expect && self.has_framing() && (self.chunked.is_some() || !self.body.is_empty())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{} {}", self.method, self.path);
        if let Some(q) = &self.query {
            out += &format!("?{q}");
        }
        out += " HTTP/1.1\r\nHost: example\r\n";
        for (n, v) in &self.headers {
            out += &format!("{n}: {v}\r\n");
        }
        if self.expect {
            out += "Expect: 100-continue\r\n";
        }
        let mut out = out.into_bytes();
        match &self.chunked {
            None if self.has_framing() => {
                out.extend(format!("Content-Length: {}\r\n\r\n", self.body.len()).bytes());
                out.extend(&self.body);
            }
            None => out.extend(b"\r\n"),
            Some(sizes) => {
                out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &self.body[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].clamp(1, rest.len());
                    let ext = if i % 2 == 1 { ";a=b" } else { "" };
                    out.extend(format!("{n:X}{ext}\r\n").bytes());
                    out.extend(&rest[..n]);
                    out.extend(b"\r\n");
                    rest = &rest[n..];
                    i += 1;
                }
                out.extend(b"0\r\n");
                if self.trailers {
                    out.extend(b"X-Checksum: 123\r\n");
                }
                out.extend(b"\r\n");
            }
        }
        out
    }
}

fn gen_req() -> impl Strategy<Value = GenReq> {
    let method = prop::sample::select(vec!["GET", "DELETE", "POST", "PUT", "HEAD", "OPTIONS", "PATCH"]);
    let header = ("[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ -~]{0,18}[!-~])?").prop_filter("framing header", |(n, _)| {
        !["host", "content-length", "transfer-encoding", "connection", "expect"]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
    });
    (
        method,
        "/[a-zA-Z0-9/._~%-]{0,24}",
        prop::option::of("[a-z0-9=&%]{0,12}"),
        prop::collection::vec(header, 0..6),
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::option::of(prop::collection::vec(1usize..700, 1..5)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(method, path, query, headers, body, chunked, expect, trailers)| GenReq {
            method,
            path,
            query,
            headers,
            body,
            chunked,
            expect,
            trailers,
        })
}

/// Valid streams with a few bytes changed, inserted or removed: near misses reach deeper states
/// than uniform noise.
fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(gen_req(), 1..4), prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6))
        .prop_map(|(reqs, edits)| {
            let mut bytes: Vec<u8> = reqs.iter().flat_map(GenReq::encode).collect();
            for (at, b, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = at % bytes.len();
                match kind {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
}

fn small_limits() -> Limits {
    Limits { max_head_bytes: 300, max_headers: 8, max_body_bytes: 2000, ..Limits::default() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_and_splits_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(1usize..300, 0..20),
        eof in any::<bool>(),
    ) {
        for limits in [Limits::default(), small_limits()] {
            let (out, log, close) = run_split(limits, &data, &sizes, eof);
            let resps = parse_responses(&out, &head_indices(&log));
            let finals = resps.iter().filter(|r| r.status >= 200).count();
            prop_assert_eq!(finals, log.requests.len() + log.errors.len());
            if !log.errors.is_empty() {
                prop_assert!(close);
                prop_assert_eq!(log.errors.len(), 1);
                prop_assert_eq!(resps.last().unwrap().status, log.errors[0].status);
            }
        }
    }

    #[test]
    fn mutated_streams_never_panic_and_ignore_read_boundaries(
        data in mutated_stream(),
        sizes in prop::collection::vec(1usize..200, 1..20),
        eof in any::<bool>(),
    ) {
        for limits in [Limits::default(), small_limits()] {
            let whole = run_split(limits, &data, &[], eof);
            parse_responses(&whole.0, &head_indices(&whole.1));
            prop_assert_eq!(&run_split(limits, &data, &sizes, eof), &whole);
        }
    }

    #[test]
    fn valid_requests_round_trip(
        reqs in prop::collection::vec(gen_req(), 1..6),
        sizes in prop::collection::vec(1usize..400, 0..20),
    ) {
        let input: Vec<u8> = reqs.iter().flat_map(GenReq::encode).collect();
        let (out, log, close) = run_split(Limits::default(), &input, &sizes, false);
        prop_assert_eq!(&log.errors, &vec![]);
        prop_assert!(!close);
        prop_assert_eq!(log.requests.len(), reqs.len());
        let resps = parse_responses(&out, &head_indices(&log));
        let expected_statuses: Vec<u16> =
            reqs.iter().flat_map(|r| if r.expects_continue() { vec![100, 200] } else { vec![200] }).collect();
        prop_assert_eq!(resps.iter().map(|r| r.status).collect::<Vec<_>>(), expected_statuses);
        let finals: Vec<&Resp> = resps.iter().filter(|r| r.status == 200).collect();
        for ((want, got), resp) in reqs.iter().zip(&log.requests).zip(finals) {
            prop_assert_eq!(got.method.as_str(), want.method);
            prop_assert_eq!(&got.path, &want.path);
            prop_assert_eq!(&got.query, &want.query);
            prop_assert_eq!(&got.body, &want.body);
            for (n, v) in &want.headers {
                prop_assert!(got.headers.get_all(n).any(|g| g == v.as_bytes()), "header {n} lost");
            }
            prop_assert_eq!(resp.header("x-path"), Some(want.path.as_str()));
            if want.method != "HEAD" {
                prop_assert_eq!(&resp.body, &want.body);
            }
        }
    }

    #[test]
    fn timeouts_at_arbitrary_times_never_panic(
        data in mutated_stream(),
        steps in prop::collection::vec((1usize..100, 0u64..15_000), 1..30),
    ) {
        let mut conn = Connection::new(Limits::default(), 0);
        let mut now = 0;
        let mut pos = 0;
        let mut log = Log::default();
        for (n, dt) in steps {
            now += dt;
            let end = (pos + n).min(data.len());
            conn.receive(&data[pos..end], now);
            pos = end;
            handle(&mut conn, now, &mut log);
            if let Some(deadline) = conn.deadline() {
                prop_assert!(deadline > now, "a passed deadline must have been acted on");
            }
            if conn.wants_close() {
                break;
            }
        }
        let out = conn.take_output();
        parse_responses(&out, &head_indices(&log));
        for e in &log.errors {
            prop_assert!(matches!(e.status, 400 | 408 | 411 | 413 | 431 | 501 | 505));
        }
    }
}

#[test]
fn next_event_is_idempotent_when_idle() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"GET / HTTP/1.1\r\nHost: x", 0);
    for _ in 0..3 {
        assert_eq!(conn.next_event(1), None);
    }
    conn.receive(b"\r\n\r\n", 2);
    assert!(matches!(conn.next_event(2), Some(Event::Request(_))));
}
