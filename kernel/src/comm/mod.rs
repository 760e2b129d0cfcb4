//! Communication functions: the trusted platform code that does I/O on behalf of compositions
//! (DESIGN.md, "The programming model"). They run on the I/O core, beside the front door, over
//! the same network interface.
//!
//! - [`http::HttpComm`]: the `http` function, an HTTP/1.1 client (requests in, responses,
//!   bodies and errors out; docs/api.md, "The http function").

// The integration (serve.rs polls `HttpComm`, the FunctionHost starts and cancels `http`
// instances) is another change; until it lands only `HttpComm::new` has a caller.
#[allow(dead_code)]
pub mod http;

/// Which instance of which invocation a communication function's work belongs to.
///
/// A placeholder until `control::Ticket` lands (the asynchronous FunctionHost interface, in
/// kernel/control/src/host.rs): the same fields, so switching is a `use` away.
#[allow(dead_code)] // Built by the integration (see above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub invocation: u64,
    pub instance: u64,
}
