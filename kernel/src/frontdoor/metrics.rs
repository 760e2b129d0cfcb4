//! The front door's own figures for `/metrics`: HTTP responses by status, bytes, connections,
//! and its socket pool by TCP state.

use alloc::vec::Vec;

use crate::metrics::{Export, Exposition, Kind};

#[derive(Default)]
pub struct HttpStats {
    /// (status, count), few distinct statuses.
    responses: Vec<(u16, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections: u64,
    pub rejected_busy: u64,
    /// Connections being served now.
    pub active: usize,
    /// Pooled sockets by TCP state, in the order of [`super::TCP_STATES`], as of the last pass.
    pub socket_states: [u64; super::TCP_STATES.len()],
}

impl HttpStats {
    pub fn count(&mut self, status: u16) {
        match self.responses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.responses.push((status, 1)),
        }
    }
}

impl Export for HttpStats {
    fn export(&self, out: &mut Exposition) {
        out.family("pappus_http_responses_total", "HTTP responses sent, by status.", Kind::Counter);
        for (status, n) in &self.responses {
            out.sample("pappus_http_responses_total", &alloc::format!("status=\"{status}\""), n);
        }
        out.family("pappus_tcp_sockets", "Pooled front-door sockets, by TCP state.", Kind::Gauge);
        for ((_, state), n) in super::TCP_STATES.iter().zip(self.socket_states) {
            out.sample("pappus_tcp_sockets", &alloc::format!("state=\"{state}\""), n);
        }
        for (name, help, kind, value) in [
            ("pappus_http_bytes_in_total", "Bytes received on HTTP connections.", Kind::Counter, self.bytes_in),
            ("pappus_http_bytes_out_total", "Bytes sent on HTTP connections.", Kind::Counter, self.bytes_out),
            ("pappus_http_connections_total", "TCP connections accepted.", Kind::Counter, self.connections),
            (
                "pappus_http_rejected_busy_total",
                "Connections answered 503: no slot free.",
                Kind::Counter,
                self.rejected_busy,
            ),
            ("pappus_http_connections_active", "Connections being served.", Kind::Gauge, self.active as u64),
        ] {
            out.single(name, help, kind, value);
        }
    }
}
