//! The `http` communication function's client, without sockets or clocks.
//!
//! `http (requests) => (responses, bodies, errors)`: each request item (a small text head —
//! `METHOD URL`, header lines — a blank line and a body) becomes either a response (its status
//! line and headers in `responses`, its body in `bodies`) or a one-line error in `errors`, each
//! output item named like its request item. docs/wire-formats.md, "The http function", is the contract.
//!
//! The kernel (kernel/src/comm/) owns the network interface and the clock. This crate gives it:
//! - [`Request::parse`]: a request item to a [`Request`] and the bytes to send;
//! - [`Url::parse`] and [`resolve`]: `http://host[:port]/path` to an IPv4 address, through IP
//!   literals and the boot configuration's [`HostTable`] (the [`Client`] asks DNS for other
//!   names when the table names a server);
//! - [`ResponseParser`]: an incremental response parser fed arbitrary chunks, with size limits;
//! - [`Exchange`]: one request's state machine (connect, send, receive, with timeouts), told what
//!   the socket did and what time it is;
//! - [`Batch`]: one `http` instance, from its request set to its three output sets;
//! - [`StreamParser`] and [`StreamExchange`]: a streaming response (etcd's `/v3/watch`), its
//!   body handed out as it arrives, with bounded memory;
//! - [`Client`]: the driver that runs many batches over a bounded pool of smoltcp TCP sockets,
//!   behind the [`NetStack`] trait that the kernel's `Net` implements (and the tests a loopback
//!   interface).
//!
//! Nothing here panics on any input; everything is tested on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod batch;
mod client;
mod error;
mod exchange;
mod link;
mod request;
mod response;
mod stream;
mod url;

pub use batch::{BODIES, Batch, ERRORS, RESPONSES, Ready};
pub use client::{Client, EPHEMERAL_PORTS, NetStack};
pub use error::{ErrorClass, FetchError};
pub use exchange::{Exchange, FetchLimits};
pub use link::Phase;
pub use model::HostTable;
pub use request::{MAX_REQUEST_HEADERS, Request};
pub use response::{MAX_RESPONSE_HEADERS, ParseError, Response, ResponseParser};
pub use stream::{StreamExchange, StreamLimits, StreamParser};
pub use url::{Host, Url, resolve};
