//! Configured limits and timeouts for one connection.

/// Limits a [`Connection`](crate::Connection) enforces, each with the status it answers with.
///
/// Times are in milliseconds on whatever monotonic clock the caller feeds to the connection
/// (`now` arguments); only differences between two `now` values matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and header fields, terminating empty line included);
    /// larger heads get 431. Also bounds the trailer section of a chunked body.
    pub max_head_bytes: usize,
    /// Most header fields in one request; more get 431.
    pub max_headers: usize,
    /// Largest request body; a larger `Content-Length` (or chunk total) gets 413.
    pub max_body_bytes: usize,
    /// A request head must be complete this long after its first byte arrived (for the first
    /// request: after the connection opened); otherwise 408 and close.
    pub head_timeout_ms: u64,
    /// While a body is being read, some body bytes must arrive at least this often; otherwise
    /// 408 and close.
    pub body_timeout_ms: u64,
    /// An idle keep-alive connection (a response sent, nothing of a next request received) is
    /// closed without a response after this long.
    pub keep_alive_timeout_ms: u64,
}

impl Limits {
    /// The defaults: 16 KiB heads, 64 header fields, 64 MiB bodies, 10 s to send a head,
    /// 10 s of body silence, 60 s of keep-alive idleness.
    pub const DEFAULT: Self = Self {
        max_head_bytes: 16 * 1024,
        max_headers: 64,
        max_body_bytes: 64 * 1024 * 1024,
        head_timeout_ms: 10_000,
        body_timeout_ms: 10_000,
        keep_alive_timeout_ms: 60_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
