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
    /// Asked before a request body's buffer grows: a kernel says no when the bytes would eat
    /// into the memory it keeps for itself, and the request gets 503 (memory for bodies is
    /// taken before the request is authenticated, so no tenant's budget can pay for it).
    pub body_memory: MemoryGate,
}

/// Whether the process may take `bytes` more for a request body ([`Limits::body_memory`]).
#[derive(Clone, Copy)]
pub struct MemoryGate(pub fn(usize) -> bool);

impl MemoryGate {
    /// Always yes: the allocator alone decides (host tests, a process with memory to spare).
    pub const ALWAYS: Self = Self(|_| true);

    pub fn allows(self, bytes: usize) -> bool {
        (self.0)(bytes)
    }
}

impl core::fmt::Debug for MemoryGate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MemoryGate")
    }
}

impl PartialEq for MemoryGate {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for MemoryGate {}

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
        body_memory: MemoryGate::ALWAYS,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
