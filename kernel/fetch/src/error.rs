//! Per-request errors: a class word first, then what happened and where.

use alloc::string::{String, ToString};
use core::fmt;

/// What kind of failure; the word starts the error item's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// No connection, or no response data, within the time allowed.
    Timeout,
    /// The server refused the connection (a reset in answer to the SYN).
    Refused,
    /// No route to the server (no address of our own yet, or the network said so).
    Unreachable,
    /// The request item or its URL is malformed, or asks for what is not supported (https).
    BadRequest,
    /// The response is larger than the limit.
    TooLarge,
    /// The server's response is not HTTP/1.x as it should be, or ended early.
    BadResponse,
    /// The host name is neither an IP literal nor in the host table.
    UnknownHost,
}

impl ErrorClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::BadResponse => "bad_response",
            Self::UnknownHost => "unknown_host",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that did not complete; shown as `class: message` on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    pub class: ErrorClass,
    pub message: String,
}

impl FetchError {
    /// An error; line breaks in `message` become spaces, so the item stays one line.
    pub fn new(class: ErrorClass, message: impl ToString) -> Self {
        let message = message.to_string().replace(['\r', '\n'], " ");
        Self { class, message }
    }

    pub fn bad_request(message: impl ToString) -> Self {
        Self::new(ErrorClass::BadRequest, message)
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}
