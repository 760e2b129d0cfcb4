//! A keep-alive echo through one `Connection`, for an exact instruction profile on the host:
//! `valgrind --tool=callgrind target/release/examples/echo 10000`, then `callgrind_annotate`.
//! Each round receives `POST /v1/echo` with a 64-byte body (as `cargo xtask bench net` sends
//! it), takes the request, answers with the body and consumes the output.

use pappus_http::{Connection, Event, Limits, Response};

fn main() {
    let rounds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut request = b"POST /v1/echo HTTP/1.1\r\nHost: pappus\r\nContent-Length: 64\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 64]);
    let mut conn = Connection::new(Limits::default(), 0);
    let mut sent = 0;
    for now in 0..rounds {
        conn.receive(&request, now);
        let Some(Event::Request(request)) = conn.next_event(now) else { panic!("no request") };
        let response = Response::new(200).header("content-type", "application/octet-stream").body(request.body);
        conn.respond(response).expect("a request is pending");
        sent += conn.output().len();
        let n = conn.output().len();
        conn.consume_output(n);
    }
    println!("{rounds} rounds, {sent} bytes out");
}
