//! The HTTP front door: a pool of TCP sockets on port 8080, each driven through a
//! `pappus_http::Connection`, and the routes the kernel answers.
//!
//! Endpoints now: `GET /healthz`, `GET /metrics` (Prometheus text), `POST /v1/echo`. The pool
//! holds `MAX_CONNECTIONS` served connections plus a few spare listeners: a connection that
//! arrives when all served slots are busy is answered `503` with `Retry-After` and closed,
//! instead of being reset by the TCP stack.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use pappus_http::{Connection, Event, Limits, Request, Response};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use drivers::net::virtio::NicStats;

use crate::net::Net;
use crate::{arch, mm, time};

pub const PORT: u16 = 8080;
const MAX_CONNECTIONS: usize = 128;
const SPARE_LISTENERS: usize = 8;

struct Slot {
    handle: SocketHandle,
    conn: Option<Connection>,
}

#[derive(Default)]
struct Metrics {
    /// (status, count), few distinct statuses.
    responses: Vec<(u16, u64)>,
    bytes_in: u64,
    bytes_out: u64,
    connections: u64,
    rejected_busy: u64,
}

impl Metrics {
    fn count(&mut self, status: u16) {
        match self.responses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.responses.push((status, 1)),
        }
    }
}

pub struct FrontDoor {
    slots: Vec<Slot>,
    metrics: Metrics,
    active: usize,
}

fn millis() -> u64 {
    time::micros_since_boot().unwrap_or(0) / 1000
}

impl FrontDoor {
    pub fn new(net: &mut Net) -> Self {
        let handles = net.listeners(PORT, MAX_CONNECTIONS + SPARE_LISTENERS);
        let slots = handles.into_iter().map(|handle| Slot { handle, conn: None }).collect();
        Self { slots, metrics: Metrics::default(), active: 0 }
    }

    /// Moves every connection forward as far as it can go without waiting. True if anything
    /// moved (bytes in or out, a connection opened or closed).
    pub fn service(&mut self, net: &mut Net) -> bool {
        let now = millis();
        let mut progress = false;
        for i in 0..self.slots.len() {
            progress |= self.service_slot(i, net, now);
        }
        progress
    }

    fn service_slot(&mut self, i: usize, net: &mut Net, now: u64) -> bool {
        let handle = self.slots[i].handle;
        let nic = net.nic_stats();
        let mut progress = false;
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);

        if self.slots[i].conn.is_none() {
            match socket.state() {
                tcp::State::Listen | tcp::State::SynReceived => return false,
                tcp::State::Established | tcp::State::CloseWait => {
                    self.metrics.connections += 1;
                    let conn = Connection::new(Limits::default(), now);
                    self.active += 1;
                    if self.active > MAX_CONNECTIONS {
                        // Every served slot is busy: say so and close, rather than leave the
                        // client hanging or reset.
                        self.metrics.rejected_busy += 1;
                        drop(conn);
                        let body = pappus_http::service_unavailable();
                        let _ = socket.send_slice(&body);
                        self.metrics.bytes_out += body.len() as u64;
                        self.metrics.count(503);
                        socket.close();
                        self.active -= 1;
                        return true;
                    }
                    self.slots[i].conn = Some(conn);
                    progress = true;
                }
                _ => {
                    // Closed, TIME-WAIT, or a half-closed socket nobody serves: recycle it (a
                    // socket left in TIME-WAIT would reset the next connection to reach it).
                    socket.abort();
                    if socket.state() == tcp::State::Closed {
                        let _ = socket.listen(PORT);
                    }
                    return false;
                }
            }
        }

        let Some(conn) = self.slots[i].conn.as_mut() else { return progress };

        // Bytes in.
        while conn.wants_input() && socket.can_recv() {
            let got = socket.recv(|buf| {
                conn.receive(buf, now);
                (buf.len(), buf.len())
            });
            match got {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.metrics.bytes_in += n as u64;
                    progress = true;
                }
            }
        }
        if !socket.may_recv() && socket.state() != tcp::State::Established {
            conn.peer_closed();
        }

        // Requests through the router.
        while let Some(event) = conn.next_event(now) {
            progress = true;
            match event {
                Event::Request(request) => {
                    let response = route(&request, &self.metrics, self.active, &nic);
                    let status = response.status;
                    if conn.respond(response).is_ok() {
                        self.metrics.count(status);
                    }
                }
                Event::ExpectContinue(request) => {
                    if routes_with_body(&request) {
                        let _ = conn.accept_continue();
                    } else {
                        let response = route(&request, &self.metrics, self.active, &nic);
                        self.metrics.count(response.status);
                        let _ = conn.respond(response);
                    }
                }
                Event::Error(error) => {
                    log::debug!("http: {error:?}");
                    self.metrics.count(error.to_response().status);
                }
            }
        }

        // Bytes out.
        while conn.has_output() && socket.can_send() {
            match socket.send_slice(conn.output()) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    conn.consume_output(n);
                    self.metrics.bytes_out += n as u64;
                    progress = true;
                }
            }
        }

        let peer_gone = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
        if peer_gone || (conn.wants_close() && !conn.has_output()) {
            socket.close();
            if peer_gone {
                socket.abort();
            }
            self.slots[i].conn = None;
            self.active -= 1;
            progress = true;
        }
        progress
    }
}

fn routes_with_body(request: &Request) -> bool {
    request.method == "POST" && request.path == "/v1/echo"
}

fn route(request: &Request, metrics: &Metrics, active: usize, nic: &NicStats) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/healthz") => Response::json(
            200,
            format!(
                r#"{{"status":"ok","version":"{}","arch":"{}","uptime_ms":{},"cores":1}}"#,
                env!("CARGO_PKG_VERSION"),
                arch::NAME,
                millis()
            ),
        ),
        ("GET", "/metrics") => Response::new(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(render_metrics(metrics, active, nic)),
        ("POST", "/v1/echo") => {
            Response::new(200).header("content-type", "application/octet-stream").body(request.body.clone())
        }
        (_, "/healthz" | "/metrics" | "/v1/echo") => Response::error(
            405,
            "method_not_allowed",
            &format!("{} is not allowed on {}", request.method, request.path),
        ),
        _ => Response::error(404, "not_found", &format!("no route for {} {}", request.method, request.path)),
    }
}

fn render_metrics(metrics: &Metrics, active: usize, nic: &NicStats) -> String {
    let mut out = String::new();
    let frames = mm::frame_stats();
    let heap = mm::heap_stats();
    let _ = writeln!(out, "# HELP pappus_http_responses_total HTTP responses sent, by status.");
    let _ = writeln!(out, "# TYPE pappus_http_responses_total counter");
    for (status, n) in &metrics.responses {
        let _ = writeln!(out, "pappus_http_responses_total{{status=\"{status}\"}} {n}");
    }
    for (name, help, kind, value) in [
        ("pappus_http_bytes_in_total", "Bytes received on HTTP connections.", "counter", metrics.bytes_in),
        ("pappus_http_bytes_out_total", "Bytes sent on HTTP connections.", "counter", metrics.bytes_out),
        ("pappus_http_connections_total", "TCP connections accepted.", "counter", metrics.connections),
        (
            "pappus_http_rejected_busy_total",
            "Connections answered 503: no slot free.",
            "counter",
            metrics.rejected_busy,
        ),
        ("pappus_http_connections_active", "Connections being served.", "gauge", active as u64),
        ("pappus_frames_total", "Physical 4 KiB frames managed.", "gauge", frames.total),
        ("pappus_frames_free", "Physical 4 KiB frames free.", "gauge", frames.free),
        ("pappus_heap_bytes_total", "Kernel heap size.", "gauge", heap.total as u64),
        ("pappus_heap_bytes_used", "Kernel heap in use.", "gauge", heap.used as u64),
        ("pappus_heap_alloc_failures_total", "Heap allocations refused.", "counter", heap.failures),
        ("pappus_uptime_seconds", "Seconds since boot.", "gauge", millis() / 1000),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    {
        let s = nic;
        for (name, help, value) in [
            ("pappus_nic_rx_packets_total", "Frames received.", s.rx_packets),
            ("pappus_nic_tx_packets_total", "Frames sent.", s.tx_packets),
            ("pappus_nic_rx_bytes_total", "Bytes received.", s.rx_bytes),
            ("pappus_nic_tx_bytes_total", "Bytes sent.", s.tx_bytes),
            ("pappus_nic_tx_busy_total", "Transmits deferred: all buffers in flight.", s.tx_busy),
            ("pappus_nic_errors_total", "Queue errors (drops).", s.errors),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
    }
    out
}
