//! The half every exchange shares, whatever it does with the answer: the server, the request
//! bytes and how many went out, the [`Phase`], and when it started and last moved.
//! [`crate::Exchange`] (a whole response) and [`crate::StreamExchange`] (a body as it comes)
//! each put their own parser and outcome beside one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::error::{ErrorClass, FetchError};
use crate::request::Request;

/// Where an exchange stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Sending,
    Receiving,
    Done,
    Failed,
}

pub(crate) struct Link {
    pub address: Ipv4Addr,
    pub port: u16,
    /// `METHOD URL`, for messages.
    describe: String,
    output: Vec<u8>,
    sent: usize,
    pub phase: Phase,
    pub started_ms: u64,
    /// When bytes last moved (or the connection was made).
    pub progress_ms: u64,
}

impl Link {
    /// `request` to `address`, connecting at `now_ms`.
    pub fn new(request: &Request, address: Ipv4Addr, now_ms: u64) -> Self {
        Self {
            address,
            port: request.url.port,
            describe: request.describe(),
            output: request.to_bytes(),
            sent: 0,
            phase: Phase::Connecting,
            started_ms: now_ms,
            progress_ms: now_ms,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    /// The connection is established.
    pub fn connected(&mut self, now_ms: u64) {
        if self.phase == Phase::Connecting {
            self.phase = if self.output.is_empty() { Phase::Receiving } else { Phase::Sending };
            self.progress_ms = now_ms;
        }
    }

    /// The request bytes still to send.
    pub fn pending_output(&self) -> &[u8] {
        match self.phase {
            Phase::Sending => self.output.get(self.sent..).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The socket took `n` more bytes of [`Self::pending_output`].
    pub fn sent(&mut self, n: usize, now_ms: u64) {
        if self.phase != Phase::Sending || n == 0 {
            return;
        }
        self.sent = (self.sent + n).min(self.output.len());
        self.progress_ms = now_ms;
        if self.sent == self.output.len() {
            self.phase = Phase::Receiving;
        }
    }

    /// `data` arrived: whether it is for the parser (a server may answer before it has read
    /// the whole request, an early 413 say: that answer counts). Counts as progress.
    pub fn takes(&mut self, data: &[u8], now_ms: u64) -> bool {
        if !matches!(self.phase, Phase::Sending | Phase::Receiving) || data.is_empty() {
            return false;
        }
        self.progress_ms = now_ms;
        true
    }

    /// "sent of total" request bytes, for a timeout's message.
    pub fn sent_of(&self) -> (usize, usize) {
        (self.sent, self.output.len())
    }

    /// What a refused connection says.
    pub fn refused(&self) -> (ErrorClass, String) {
        (ErrorClass::Refused, format!("{}:{} refused the connection", self.address, self.port))
    }

    /// What an unreachable server says (`why` says which way failed).
    pub fn unreachable(&self, why: &str) -> (ErrorClass, String) {
        (ErrorClass::Unreachable, format!("{}:{}: {why}", self.address, self.port))
    }

    /// The error `what` of class `class`, naming the request; the phase goes to `Failed`.
    pub fn fail(&mut self, class: ErrorClass, what: &str) -> FetchError {
        self.phase = Phase::Failed;
        FetchError::new(class, format!("{what} ({})", self.describe))
    }
}
