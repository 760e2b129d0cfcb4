//! Helpers shared by the integration tests: a test driver and a response parser.
#![allow(dead_code)]

use pappus_http::{Connection, Event, HttpError, Limits, Request, Response};

/// A parsed response from the output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// The `code` of a JSON error body.
    pub fn error_code(&self) -> String {
        let body = self.body_str();
        let start = body.find("\"code\":\"").expect("error body") + 8;
        body[start..start + body[start..].find('"').unwrap()].to_string()
    }
}

/// Parses a stream of responses (1xx and 204/304 without bodies, others by content-length).
/// `head_only` marks responses to HEAD requests by index.
pub fn parse_responses(mut bytes: &[u8], head_only: &[usize]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(bytes).expect("well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("truncated response head: {:?}", String::from_utf8_lossy(bytes)),
        };
        let status = r.code.unwrap();
        let headers: Vec<(String, String)> =
            r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8(h.value.to_vec()).unwrap())).collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        let final_index = out.iter().filter(|r: &&Resp| r.status >= 200).count();
        let len = if status < 200 || head_only.contains(&final_index) { 0 } else { len };
        assert!(bytes.len() >= n + len, "truncated response body");
        out.push(Resp { status, headers, body: bytes[n..n + len].to_vec() });
        bytes = &bytes[n + len..];
    }
    out
}

/// What the test handler saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Log {
    pub requests: Vec<Request>,
    pub continues: Vec<Request>,
    pub errors: Vec<HttpError>,
}

/// The test handler: echoes the body with the path in `x-path` (and the query in `x-query`);
/// refuses `Expect: 100-continue` for paths starting with `/reject` with 401.
pub fn handle(conn: &mut Connection, now: u64, log: &mut Log) {
    while let Some(event) = conn.next_event(now) {
        match event {
            Event::Request(req) => {
                let mut resp = Response::new(200)
                    .header("x-path", req.path.to_string())
                    .header("x-method", req.method.clone())
                    .body(req.body.clone());
                if let Some(q) = &req.query {
                    resp = resp.header("x-query", q.clone());
                }
                log.requests.push(req);
                conn.respond(resp).unwrap();
            }
            Event::ExpectContinue(req) => {
                if req.path.starts_with("/reject") {
                    conn.respond(Response::error(401, "unauthorized", "no token")).unwrap();
                } else {
                    conn.accept_continue().unwrap();
                }
                log.continues.push(req);
            }
            Event::Error(e) => log.errors.push(e),
        }
    }
}

/// Feeds `input` split at the given sizes (cycled; the rest in one piece if empty), handling
/// events after each read, then EOF if asked. Returns all output, the log and whether the
/// connection wants to close.
pub fn run_split(limits: Limits, input: &[u8], sizes: &[usize], eof: bool) -> (Vec<u8>, Log, bool) {
    let mut conn = Connection::new(limits, 0);
    let mut log = Log::default();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = if sizes.is_empty() { input.len() } else { sizes[i % sizes.len()].max(1) };
        let end = (pos + n).min(input.len());
        conn.receive(&input[pos..end], 0);
        pos = end;
        i += 1;
        handle(&mut conn, 0, &mut log);
        // Drain output in small pieces to exercise partial sends.
        while conn.has_output() {
            let chunk = conn.output();
            let take = chunk.len().min(1000);
            out.extend_from_slice(&chunk[..take]);
            conn.consume_output(take);
        }
    }
    if eof {
        conn.peer_closed();
    }
    handle(&mut conn, 0, &mut log);
    out.extend(conn.take_output());
    (out, log, conn.wants_close())
}

pub fn run(input: &[u8]) -> (Vec<u8>, Log, bool) {
    run_split(Limits::default(), input, &[], false)
}
