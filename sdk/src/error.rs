//! The error a function returns to fail its run.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use core::fmt;

/// Why a function failed. Returning it from the entry function ends the run through the ABI's
/// abort call; the platform reports the message as a `function_aborted` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: Cow<'static, str>,
}

impl Error {
    /// An error with `message`.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self { message: message.into() }
    }

    /// An error whose message is `value`'s `Display` form.
    pub fn msg(value: impl fmt::Display) -> Self {
        Self { message: Cow::Owned(value.to_string()) }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Error {}

impl From<&'static str> for Error {
    fn from(message: &'static str) -> Self {
        Self::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}
