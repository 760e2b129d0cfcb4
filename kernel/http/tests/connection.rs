//! Connection state machine tests: framing, keep-alive, pipelining, 100-continue, limits,
//! timeouts and read-boundary independence.

mod common;

use common::*;
use pappus_http::{CONTINUE, Connection, Event, Limits, NoRequestPending, Response, Version};

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

fn one_error(input: &[u8], limits: Limits) -> Resp {
    let (out, log, close) = run_split(limits, input, &[], false);
    let resps = parse_responses(&out, &[]);
    assert_eq!(resps.len(), 1, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(log.errors.len(), 1);
    assert_eq!(log.errors[0].status, resps[0].status);
    assert!(close, "errors close the connection");
    assert_eq!(resps[0].header("connection"), Some("close"));
    assert_eq!(resps[0].header("content-type"), Some("application/json"));
    assert_eq!(resps[0].error_code(), log.errors[0].code);
    resps[0].clone()
}

#[test]
fn simple_get_keeps_the_connection() {
    let (out, log, close) = run(GET);
    let r = parse_responses(&out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("content-length"), Some("0"));
    assert_eq!(r[0].header("connection"), None);
    assert!(!close);
    assert_eq!(log.requests[0].method, "GET");
    assert_eq!(log.requests[0].version, Version::Http11);
    assert_eq!(log.requests[0].headers.get_str("HOST"), Some("x"));
}

#[test]
fn keep_alive_serves_several_requests_one_after_another() {
    let mut conn = Connection::new(Limits::default(), 0);
    let mut log = Log::default();
    for i in 0..5u64 {
        let req = format!("POST /n{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{i}");
        conn.receive(req.as_bytes(), i * 100);
        handle(&mut conn, i * 100, &mut log);
        let r = parse_responses(&conn.take_output(), &[]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].header("x-path"), Some(format!("/n{i}").as_str()));
        assert_eq!(r[0].body, i.to_string().as_bytes());
        assert!(!conn.wants_close());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /2?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
        PUT /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
        HEAD /4 HTTP/1.1\r\nHost: x\r\n\r\n\
        DELETE /5 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (out, log, close) = run(input);
    let r = parse_responses(&out, &[3]);
    let paths: Vec<_> = r.iter().map(|r| r.header("x-path").unwrap()).collect();
    assert_eq!(paths, ["/1", "/2", "/3", "/4", "/5"]);
    assert_eq!(r[1].body, b"hello");
    assert_eq!(r[1].header("x-query"), Some("q=1"));
    assert_eq!(r[2].body, b"abc");
    assert_eq!(log.requests.len(), 5);
    assert!(!close);
}

#[test]
fn no_second_event_until_the_first_is_answered() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    let Some(Event::Request(first)) = conn.next_event(0) else { panic!() };
    assert_eq!(first.path, "/1");
    assert_eq!(conn.next_event(0), None);
    assert_eq!(conn.next_event(0), None);
    assert!(!conn.has_output());
    conn.respond(Response::new(200).body("one")).unwrap();
    let Some(Event::Request(second)) = conn.next_event(0) else { panic!() };
    assert_eq!(second.path, "/2");
    assert_eq!(conn.respond(Response::new(200).body("two")), Ok(()));
    assert_eq!(conn.respond(Response::new(200)), Err(NoRequestPending));
    assert_eq!(conn.accept_continue(), Err(NoRequestPending));
    let r = parse_responses(&conn.take_output(), &[]);
    assert_eq!((r[0].body.as_slice(), r[1].body.as_slice()), (&b"one"[..], &b"two"[..]));
}

#[test]
fn connection_close_ends_after_the_response_and_drops_what_follows() {
    let input = b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (out, log, close) = run(input);
    let r = parse_responses(&out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("connection"), Some("close"));
    assert_eq!(log.requests.len(), 1);
    assert!(close);
}

#[test]
fn handler_can_close_with_its_response() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(GET, 0);
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
    conn.respond(Response::new(500).header("Connection", "close")).unwrap();
    assert!(conn.wants_close());
    let r = parse_responses(&conn.take_output(), &[]);
    assert_eq!(r[0].header("connection"), Some("close"));
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let (out, log, close) = run(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    let r = parse_responses(&out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("connection"), Some("close"));
    assert_eq!(log.requests[0].version, Version::Http10);
    assert!(close);

    let (out, _, close) =
        run(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = parse_responses(&out, &[]);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.header("connection") == Some("keep-alive")));
    assert!(!close);
}

#[test]
fn head_responses_have_length_but_no_body() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
    conn.respond(Response::new(200).body(vec![b'z'; 10_000])).unwrap();
    assert_eq!(conn.take_output(), b"HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n");
}

#[test]
fn empty_lines_before_a_request_are_ignored() {
    let (out, log, _) = run(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(parse_responses(&out, &[]).len(), 2);
    assert_eq!(log.requests[1].path, "/b");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let input = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1;q=\"x y\"\r\nhello\r\n1 ; y\r\n \r\n5\r\nworld\r\n0;end\r\nDigest: abc\r\nX-T: 1\r\n\r\n\
        GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    let (out, log, close) = run(input);
    let r = parse_responses(&out, &[]);
    assert_eq!(r[0].body, b"hello world");
    assert_eq!(r[1].header("x-path"), Some("/after"));
    assert_eq!(log.requests[0].body, b"hello world");
    assert!(!close);
}

#[test]
fn expect_continue_flow() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"PUT /v1/functions/f HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", 0);
    let Some(Event::ExpectContinue(head)) = conn.next_event(0) else { panic!() };
    assert_eq!(head.path, "/v1/functions/f");
    assert!(head.body.is_empty());
    assert!(!conn.has_output(), "no 100 before the handler accepts");
    assert_eq!(conn.next_event(0), None);
    conn.accept_continue().unwrap();
    assert_eq!(conn.take_output(), CONTINUE);
    assert_eq!(conn.next_event(0), None);
    conn.receive(b"da", 1);
    assert_eq!(conn.next_event(1), None);
    conn.receive(b"ta", 2);
    let Some(Event::Request(req)) = conn.next_event(2) else { panic!() };
    assert_eq!(req.body, b"data");
    conn.respond(Response::new(201)).unwrap();
    assert!(!conn.wants_close());
    assert_eq!(parse_responses(&conn.take_output(), &[])[0].status, 201);
}

#[test]
fn expect_continue_chunked_and_split() {
    let input = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n\
        4\r\nabcd\r\n0\r\n\r\n";
    for sizes in [&[][..], &[1], &[3, 7, 1]] {
        let (out, log, _) = run_split(Limits::default(), input, sizes, false);
        let r = parse_responses(&out, &[]);
        assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [100, 200]);
        assert_eq!(r[1].body, b"abcd");
        assert_eq!(log.continues.len(), 1);
    }
}

#[test]
fn refused_expect_continue_closes_without_100() {
    let input = b"PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    let (out, log, close) = run(input);
    let r = parse_responses(&out, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 401);
    assert_eq!(r[0].header("connection"), Some("close"));
    assert!(log.requests.is_empty());
    assert!(close);
}

#[test]
fn bad_request_line_is_400() {
    let r = one_error(b"GET\r\n\r\n", Limits::default());
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    assert_eq!(one_error(b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", Limits::default()).status, 400);
    assert_eq!(one_error(b"GET / HTTP/1.1\r\nHost x\r\n\r\n", Limits::default()).status, 400);
}

#[test]
fn garbage_is_answered_as_soon_as_a_line_ends() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 0);
    let Some(Event::Error(e)) = conn.next_event(0) else { panic!() };
    assert_eq!(e.status, 400);
    assert!(conn.wants_close());
    assert!(!conn.wants_input());
}

#[test]
fn framing_errors_are_400() {
    for input in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let r = one_error(input, Limits::default());
        assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"), "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn body_without_length_is_411() {
    let r = one_error(b"POST /v1/invoke/f HTTP/1.1\r\nHost: x\r\n\r\n", Limits::default());
    assert_eq!((r.status, r.error_code().as_str()), (411, "length_required"));
    assert!(r.body_str().contains("POST needs a Content-Length"));
    // GET and DELETE need none.
    assert!(parse_responses(&run(b"DELETE /f HTTP/1.1\r\nHost: x\r\n\r\n").0, &[])[0].status == 200);
}

#[test]
fn too_large_content_length_is_413_before_the_body() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 70000000\r\nExpect: 100-continue\r\n\r\n", 0);
    let Some(Event::Error(e)) = conn.next_event(0) else { panic!() };
    assert_eq!(e.status, 413);
    assert_eq!(e.message, "Content-Length 70000000 exceeds the 67108864-byte limit");
    let r = parse_responses(&conn.take_output(), &[]);
    assert_eq!(r.len(), 1, "no 100 Continue before a 413");
    assert_eq!(r[0].error_code(), "payload_too_large");
    assert!(r[0].body_str().contains("Content-Length 70000000 exceeds the 67108864-byte limit"));
    assert!(conn.wants_close());
}

#[test]
fn too_large_chunked_body_is_413() {
    let limits = Limits { max_body_bytes: 10, ..Limits::default() };
    let input = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n3\r\n";
    let r = one_error(input, limits);
    assert_eq!((r.status, r.error_code().as_str()), (413, "payload_too_large"));
    // Exactly at the limit is fine.
    let ok = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n2\r\n90\r\n0\r\n\r\n";
    let (out, _, _) = run_split(limits, ok, &[], false);
    assert_eq!(parse_responses(&out, &[])[0].body, b"1234567890");
    let ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1234567890";
    assert_eq!(parse_responses(&run_split(limits, ok, &[], false).0, &[])[0].status, 200);
    let r = one_error(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", limits);
    assert_eq!(r.status, 413);
}

#[test]
fn oversized_head_is_431() {
    let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(17_000));
    let r = one_error(big.as_bytes(), Limits::default());
    assert_eq!((r.status, r.error_code().as_str()), (431, "header_fields_too_large"));
    assert!(r.body_str().contains("16384-byte limit"));
    // Also when the head never ends: answered once the limit is passed, without waiting.
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", 0);
    for _ in 0..20 {
        conn.receive(&[b'a'; 1000], 0);
    }
    assert!(matches!(conn.next_event(0), Some(Event::Error(e)) if e.status == 431));
    // Just under the limit is fine.
    let head = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \r\n\r\n";
    let fits = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(16384 - head.len()));
    assert_eq!(fits.len(), 16384);
    assert_eq!(parse_responses(&run(fits.as_bytes()).0, &[])[0].status, 200);
}

#[test]
fn too_many_headers_is_431() {
    let fields: String = (0..64).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = one_error(format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").as_bytes(), Limits::default());
    assert_eq!(r.status, 431);
    assert!(r.body_str().contains("more than 64 header fields"));
}

#[test]
fn wrong_version_is_505() {
    let r = one_error(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Limits::default());
    assert_eq!((r.status, r.error_code().as_str()), (505, "http_version_not_supported"));
    assert_eq!(one_error(b"GET / HTTP/0.9\r\n\r\n", Limits::default()).status, 505);
}

#[test]
fn unsupported_transfer_coding_is_501() {
    let r = one_error(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Limits::default());
    assert_eq!(r.status, 501);
}

#[test]
fn silent_new_connection_gets_408() {
    let mut conn = Connection::new(Limits::default(), 1000);
    assert_eq!(conn.deadline(), Some(11_000));
    assert_eq!(conn.next_event(10_999), None);
    let Some(Event::Error(e)) = conn.next_event(11_000) else { panic!() };
    assert_eq!((e.status, e.code), (408, "request_timeout"));
    assert!(conn.wants_close());
    let r = parse_responses(&conn.take_output(), &[]);
    assert_eq!(r[0].status, 408);
    assert_eq!(r[0].header("connection"), Some("close"));
}

#[test]
fn slow_head_gets_408_even_while_bytes_trickle() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(GET, 0);
    handle(&mut conn, 0, &mut Log::default());
    conn.take_output();
    // Keep-alive idle: the head timer starts with the first byte of the next request.
    conn.receive(b"G", 30_000);
    assert_eq!(conn.deadline(), Some(40_000));
    for (i, b) in b"ET /slow HTTP/1.1\r\n".iter().enumerate() {
        conn.receive(&[*b], 30_000 + 500 * i as u64);
        assert_eq!(conn.next_event(30_000 + 500 * i as u64), None);
    }
    let Some(Event::Error(e)) = conn.next_event(40_000) else { panic!() };
    assert_eq!(e.status, 408);
    assert!(e.message.contains("10000 ms"));
}

#[test]
fn idle_keep_alive_closes_silently() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(GET, 0);
    handle(&mut conn, 5, &mut Log::default());
    conn.take_output();
    assert_eq!(conn.deadline(), Some(60_005));
    assert_eq!(conn.next_event(60_004), None);
    assert!(!conn.wants_close());
    assert_eq!(conn.next_event(60_005), None);
    assert!(conn.wants_close());
    assert!(!conn.has_output(), "no 408 on an idle keep-alive connection");
}

#[test]
fn stalled_body_gets_408_and_progress_resets_the_timer() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12", 0);
    assert_eq!(conn.next_event(0), None);
    assert_eq!(conn.deadline(), Some(10_000));
    conn.receive(b"34", 9_000);
    assert_eq!(conn.next_event(9_000), None);
    assert_eq!(conn.next_event(18_999), None);
    let Some(Event::Error(e)) = conn.next_event(19_000) else { panic!() };
    assert_eq!(e.status, 408);
    assert!(e.message.contains("4 of 10 body bytes"), "{}", e.message);
    assert!(conn.wants_close());
}

#[test]
fn no_timeout_while_the_handler_works() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(GET, 0);
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
    assert_eq!(conn.deadline(), None);
    assert_eq!(conn.next_event(1_000_000), None);
    conn.respond(Response::new(200)).unwrap();
    assert!(!conn.wants_close());
}

#[test]
fn peer_close_answers_what_was_buffered_then_closes() {
    let (out, log, close) = run_split(Limits::default(), &[GET, GET, GET].concat(), &[], true);
    assert_eq!(parse_responses(&out, &[]).len(), 3);
    assert_eq!(log.errors, []);
    assert!(close);
}

#[test]
fn peer_close_mid_request_is_400() {
    let (out, log, close) = run_split(Limits::default(), b"GET /a HTT", &[], true);
    assert_eq!(parse_responses(&out, &[])[0].status, 400);
    assert!(log.errors[0].message.contains("before the request head was complete"));
    assert!(close);
    let (out, log, _) =
        run_split(Limits::default(), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", &[], true);
    assert_eq!(parse_responses(&out, &[])[0].status, 400);
    assert!(log.errors[0].message.contains("3 of 9 body bytes"));
}

#[test]
fn back_pressure_while_a_request_is_pending() {
    let limits = Limits { max_head_bytes: 100, ..Limits::default() };
    let mut conn = Connection::new(limits, 0);
    conn.receive(GET, 0);
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
    assert!(conn.wants_input());
    conn.receive(&[GET; 4].concat(), 0);
    assert!(!conn.wants_input());
    conn.respond(Response::new(200)).unwrap();
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
}

#[test]
fn partial_sends_see_the_same_bytes() {
    let mut conn = Connection::new(Limits::default(), 0);
    conn.receive(GET, 0);
    assert!(matches!(conn.next_event(0), Some(Event::Request(_))));
    let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    conn.respond(Response::new(200).body(body.clone())).unwrap();
    let mut sent = Vec::new();
    while conn.has_output() {
        let n = conn.output().len().min(777);
        sent.extend_from_slice(&conn.output()[..n]);
        conn.consume_output(n);
    }
    assert_eq!(parse_responses(&sent, &[])[0].body, body);
}

/// A deterministic pseudo-random sequence of read sizes.
fn sizes(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as usize % max) + 1
        })
        .collect()
}

fn mixed_stream() -> Vec<u8> {
    let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut chunked = Vec::new();
    for piece in body.chunks(333) {
        chunked.extend(format!("{:x};e=1\r\n", piece.len()).bytes());
        chunked.extend(piece);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\nT: 1\r\n\r\n");
    [
        b"\r\nGET /one?x=y HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
        format!("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        &body,
        b"PUT /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        &chunked,
        b"HEAD /four HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /five HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    ]
    .concat()
}

#[test]
fn read_boundaries_do_not_matter() {
    let input = mixed_stream();
    let whole = run(&input);
    let r = parse_responses(&whole.0, &[3]);
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 100, 200, 200, 200]);
    assert_eq!(whole.1.requests.len(), 5);
    assert_eq!(whole.1.requests[1].body, whole.1.requests[2].body);
    let byte_by_byte = run_split(Limits::default(), &input, &[1], false);
    assert_eq!(byte_by_byte, whole);
    for seed in 1..40 {
        let split = run_split(Limits::default(), &input, &sizes(seed, 64, 700), false);
        assert_eq!(split, whole, "seed {seed}");
    }
}

#[test]
fn errors_do_not_depend_on_read_boundaries() {
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    for input in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n",
        b"\x00garbage\r\n",
        big.as_bytes(),
    ] {
        let whole = run_split(Limits::default(), input, &[], true);
        for seed in 1..10 {
            assert_eq!(run_split(Limits::default(), input, &sizes(seed, 50, 40), true), whole);
        }
        assert_eq!(run_split(Limits::default(), input, &[1], true), whole);
    }
}

#[test]
fn sixteen_mib_bodies_arrive_intact() {
    let body: Vec<u8> = (0..16u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    let mut input = format!("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    input.extend(&body);
    let mut conn = Connection::new(Limits::default(), 0);
    let mut got = None;
    for piece in input.chunks(1460) {
        conn.receive(piece, 0);
        if let Some(Event::Request(req)) = conn.next_event(0) {
            got = Some(req);
        }
    }
    let req = got.expect("request");
    assert_eq!(req.body.len(), body.len());
    assert!(req.body == body);
    assert_eq!(req.body.capacity(), body.len(), "the body buffer is never over-allocated");

    // The same as a chunked upload, in 64 KiB chunks.
    let mut input = b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(65536) {
        input.extend(format!("{:x}\r\n", piece.len()).bytes());
        input.extend(piece);
        input.extend(b"\r\n");
    }
    input.extend(b"0\r\n\r\n");
    let mut conn = Connection::new(Limits::default(), 0);
    let mut got = None;
    for piece in input.chunks(9000) {
        conn.receive(piece, 0);
        if let Some(Event::Request(req)) = conn.next_event(0) {
            got = Some(req);
        }
    }
    assert!(got.expect("request").body == body);
}
