//! One keep-alive HTTP/1.1 connection to a node on 127.0.0.1, for the benchmarks and the soak.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use pappus_tests::node::{Response, read_response};

use crate::util::Result;

/// Bodies up to this size go out in the same write as the head.
const SMALL_BODY: usize = 16 * 1024;

pub struct Client {
    conn: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `port`; a read or write that waits longer than `timeout` is an error.
    pub fn connect(port: u16, timeout: Duration) -> Result<Self> {
        let conn = TcpStream::connect(("127.0.0.1", port))?;
        // Head and body go in two writes: without NODELAY, Nagle holds the body until the host
        // stack's delayed ACK (40 ms) and that is what gets measured instead of Pappus.
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        let reader = BufReader::new(conn.try_clone()?);
        Ok(Self { conn, reader })
    }

    /// Sends one request and reads its response.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: pappus\r\nContent-Length: {}\r\n", body.len());
        for (n, v) in headers {
            head += &format!("{n}: {v}\r\n");
        }
        head += "\r\n";
        // A small request goes in one write, as curl and browsers send it: one segment, where
        // two writes would cost the node a pass (and the client a syscall) per segment.
        if body.len() <= SMALL_BODY {
            let mut request = head.into_bytes();
            request.extend_from_slice(body);
            self.conn.write_all(&request)?;
        } else {
            self.conn.write_all(head.as_bytes())?;
            self.conn.write_all(body)?;
        }
        Ok(read_response(&mut self.reader)?)
    }
}
