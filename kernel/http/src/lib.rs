//! The front door's HTTP/1.1 server core: a sans-I/O connection state machine.
//!
//! A [`Connection`] owns no socket and reads no clock. The kernel feeds it the bytes a TCP
//! socket received and the current time; it hands back [`Event`]s (complete requests, `100
//! Continue` decisions, errors it answered itself) and bytes to send. Everything here runs and is
//! tested on the host.
//!
//! ```
//! use pappus_http::{Connection, Event, Limits, Response};
//!
//! let mut conn = Connection::new(Limits::default(), 0);
//! conn.receive(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0);
//! while let Some(event) = conn.next_event(0) {
//!     match event {
//!         Event::Request(req) => {
//!             assert_eq!(req.path, "/healthz");
//!             conn.respond(Response::json(200, r#"{"ok":true}"#)).unwrap();
//!         }
//!         Event::ExpectContinue(_) => conn.accept_continue().unwrap(),
//!         Event::Error(_) => {} // already answered
//!     }
//! }
//! let bytes = conn.take_output();
//! assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(!conn.wants_close());
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod body;
mod connection;
mod limits;
mod parse;
mod request;
mod response;

pub use body::{Decoder as BodyDecoder, Progress as BodyProgress};
pub use connection::{Connection, Event, NoRequestPending};
pub use limits::{Limits, MemoryGate};
pub use request::{Headers, Method, Request, Version};
pub use response::{CONTINUE, HttpError, Response, reason, service_unavailable};
