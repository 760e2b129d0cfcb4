//! Feeds arbitrary bytes to a connection in arbitrary reads at arbitrary times, answering every
//! request, and checks that it never panics and that the output is exactly one whole response per
//! answer, in order.
//!
//! Input layout: byte 0 picks the limits (default or small), byte 1 whether the peer closes at
//! the end; then records of `[len, dt, bytes…]`: `len` bytes received after `dt` × 100 ms.
//! Run with `cargo xtask fuzz --target connection` (or `cargo fuzz run -s none connection` from
//! `kernel/http/fuzz`; stable Rust suffices without a sanitizer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pappus_http::{Connection, Event, Limits, Response};

/// Answers every event; records for each final response whether it answers a HEAD request.
fn drive(conn: &mut Connection, now: u64, out: &mut Vec<u8>, finals: &mut Vec<bool>) {
    while let Some(event) = conn.next_event(now) {
        match event {
            Event::Request(req) => {
                finals.push(req.method == "HEAD");
                conn.respond(Response::new(200).body(req.body)).unwrap();
            }
            Event::ExpectContinue(req) if req.path.len() % 2 == 0 => conn.accept_continue().unwrap(),
            Event::ExpectContinue(req) => {
                finals.push(req.method == "HEAD");
                conn.respond(Response::error(401, "unauthorized", "no")).unwrap();
            }
            Event::Error(_) => finals.push(false),
        }
    }
    out.extend(conn.take_output());
}

fuzz_target!(|data: &[u8]| {
    let [mode, eof, rest @ ..] = data else { return };
    let mut rest = rest;
    let limits = if mode & 1 == 0 {
        Limits::default()
    } else {
        Limits { max_head_bytes: 256, max_headers: 4, max_body_bytes: 1024, ..Limits::default() }
    };
    let mut conn = Connection::new(limits, 0);
    let (mut now, mut out, mut finals) = (0u64, Vec::new(), Vec::new());
    while let [len, dt, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        now += u64::from(*dt) * 100;
        conn.receive(&tail[..n], now);
        rest = &tail[n..];
        drive(&mut conn, now, &mut out, &mut finals);
        if conn.wants_close() {
            break;
        }
    }
    if eof & 1 == 1 {
        conn.peer_closed();
    }
    drive(&mut conn, now, &mut out, &mut finals);

    let mut bytes = &out[..];
    let mut seen = 0;
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("response head ends") + 4;
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        let status: u16 = head[9..12].parse().expect("status");
        let len = head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.parse().unwrap());
        let body = if status < 200 {
            0
        } else {
            seen += 1;
            if finals[seen - 1] { 0 } else { len }
        };
        assert!(bytes.len() >= end + body, "truncated response");
        bytes = &bytes[end + body..];
    }
    assert_eq!(seen, finals.len(), "one response per answer");
});
