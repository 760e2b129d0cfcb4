//! Communication functions: the trusted platform code that does I/O on behalf of compositions
//! (DESIGN.md, "The programming model"). They run on the I/O core, beside the front door, over
//! the same network interface.
//!
//! - [`http::HttpComm`]: the `http` function, an HTTP/1.1 client (requests in, responses,
//!   bodies and errors out; docs/wire-formats.md, "The http function").

pub mod http;
