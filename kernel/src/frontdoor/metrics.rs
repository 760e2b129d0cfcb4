//! The front door's counters and the Prometheus text rendering of `/metrics`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use control::ControlPlane;
use dispatch::Histogram;
use drivers::net::virtio::NicStats;

use crate::mm;

#[derive(Default)]
pub struct Metrics {
    /// (status, count), few distinct statuses.
    responses: Vec<(u16, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections: u64,
    pub rejected_busy: u64,
}

impl Metrics {
    pub fn count(&mut self, status: u16) {
        match self.responses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.responses.push((status, 1)),
        }
    }
}

/// What `/metrics` shows besides the counters: live gauges sampled when it is asked.
pub struct Gauges {
    pub active_connections: usize,
    pub nic: NicStats,
    pub uptime_ms: u64,
    /// Pooled sockets by TCP state, in the order of [`super::TCP_STATES`].
    pub socket_states: [u64; super::TCP_STATES.len()],
    pub control: control::Counters,
    /// Sockets in the network stack's set: the front door's pool, the `http` function's client
    /// sockets, DHCP and DNS.
    pub sockets: usize,
}

/// MPK protection keys held by live sandboxes (0 where there is no MPK engine).
fn mpk_keys_live() -> u64 {
    #[cfg(target_arch = "x86_64")]
    return crate::native::keys_live();
    #[cfg(not(target_arch = "x86_64"))]
    0
}

pub fn render(metrics: &Metrics, gauges: &Gauges, control: &ControlPlane) -> String {
    let mut out = String::new();
    let frames = mm::frame_stats();
    let heap = mm::heap_stats();
    let native = crate::engines::native_phase_stats();
    let _ = writeln!(out, "# HELP pappus_http_responses_total HTTP responses sent, by status.");
    let _ = writeln!(out, "# TYPE pappus_http_responses_total counter");
    for (status, n) in &metrics.responses {
        let _ = writeln!(out, "pappus_http_responses_total{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP pappus_tcp_sockets Pooled front-door sockets, by TCP state.");
    let _ = writeln!(out, "# TYPE pappus_tcp_sockets gauge");
    for ((_, state), n) in super::TCP_STATES.iter().zip(gauges.socket_states) {
        let _ = writeln!(out, "pappus_tcp_sockets{{state=\"{state}\"}} {n}");
    }
    let c = &gauges.control;
    let _ = writeln!(out, "# HELP pappus_invocations_total Invocations ended, by outcome.");
    let _ = writeln!(out, "# TYPE pappus_invocations_total counter");
    for (outcome, n) in [
        ("ok", c.invocations_ok),
        ("rejected", c.invocations_rejected),
        ("failed", c.invocations_failed),
        ("timed_out", c.invocations_timed_out),
        ("cancelled", c.invocations_cancelled),
    ] {
        let _ = writeln!(out, "pappus_invocations_total{{outcome=\"{outcome}\"}} {n}");
    }
    let nic = &gauges.nic;
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
        ("pappus_http_connections_active", "Connections being served.", "gauge", gauges.active_connections as u64),
        ("pappus_frames_total", "Physical 4 KiB frames managed.", "gauge", frames.total),
        ("pappus_frames_free", "Physical 4 KiB frames free.", "gauge", frames.free),
        ("pappus_heap_bytes_total", "Kernel heap size.", "gauge", heap.total as u64),
        ("pappus_heap_bytes_used", "Kernel heap in use.", "gauge", heap.used as u64),
        ("pappus_heap_alloc_failures_total", "Heap allocations refused.", "counter", heap.failures),
        (
            "pappus_invocations_live",
            "Invocations held: running, waiting, or unanswered.",
            "gauge",
            c.invocations_live as u64,
        ),
        ("pappus_functions_registered", "Functions registered, all tenants.", "gauge", c.functions as u64),
        ("pappus_compositions_registered", "Compositions registered, all tenants.", "gauge", c.compositions as u64),
        ("pappus_engine_runs_total", "Function runs in a compute engine.", "counter", crate::engines::run_stats().0),
        (
            "pappus_engine_run_ticks_total",
            "TSC ticks inside engine runs (instructions under icount).",
            "counter",
            crate::engines::run_stats().1,
        ),
        ("pappus_native_runs_total", "Native sandbox runs (mpk and paging).", "counter", native.0),
        (
            "pappus_native_create_ticks_total",
            "TSC ticks creating native sandboxes: space or slot, image, system data block.",
            "counter",
            native.1[0],
        ),
        (
            "pappus_native_run_ticks_total",
            "TSC ticks from sandbox entry to exit: the function, its page faults and timer ticks.",
            "counter",
            native.1[1],
        ),
        ("pappus_native_collect_ticks_total", "TSC ticks reading native sandboxes' outputs.", "counter", native.1[2]),
        (
            "pappus_native_destroy_ticks_total",
            "TSC ticks unmapping and freeing native sandboxes.",
            "counter",
            native.1[3],
        ),
        (
            "pappus_mpk_key_waits_total",
            "MPK runs that found all 15 protection keys taken and waited for one.",
            "counter",
            crate::engines::mpk_key_waits(),
        ),
        ("pappus_mpk_keys_live", "MPK protection keys held by live sandboxes (of 15).", "gauge", mpk_keys_live()),
        (
            "pappus_net_sockets",
            "Sockets in the network stack: front-door pool, http-function clients, DHCP, DNS.",
            "gauge",
            gauges.sockets as u64,
        ),
        (
            "pappus_io_work_ticks_total",
            "TSC ticks in I/O-loop passes that moved something (instructions under icount).",
            "counter",
            crate::serve::work_ticks(),
        ),
        ("pappus_uptime_seconds", "Seconds since boot.", "gauge", gauges.uptime_ms / 1000),
        ("pappus_nic_rx_packets_total", "Frames received.", "counter", nic.rx_packets),
        ("pappus_nic_tx_packets_total", "Frames sent.", "counter", nic.tx_packets),
        ("pappus_nic_rx_bytes_total", "Bytes received.", "counter", nic.rx_bytes),
        ("pappus_nic_tx_bytes_total", "Bytes sent.", "counter", nic.tx_bytes),
        ("pappus_nic_tx_busy_total", "Transmits deferred: all buffers in flight.", "counter", nic.tx_busy),
        ("pappus_nic_dropped_total", "Frames dropped: queue errors on receive or transmit.", "counter", nic.errors),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    render_invocations(&mut out, control);
    render_tenant_memory(&mut out, control);
    crate::compute::render_metrics(&mut out);
    out
}

/// Each tenant's memory accounts: what it holds, its peak, its budget and refusals, per pool.
fn render_tenant_memory(out: &mut String, control: &ControlPlane) {
    let name = "pappus_heap_reserve_bytes";
    let help = "Kernel heap kept from tenants and request bodies.";
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", mm::heap_reserve());
    for (name, help, kind) in [
        ("pappus_tenant_memory_bytes", "Bytes a tenant holds now, by pool (heap, frames).", "gauge"),
        ("pappus_tenant_memory_peak_bytes", "The most bytes a tenant held, by pool.", "gauge"),
        ("pappus_tenant_memory_budget_bytes", "A tenant's memory budget, by pool.", "gauge"),
        ("pappus_tenant_memory_refusals_total", "Charges refused as over a tenant's budget, by pool.", "counter"),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}
# TYPE {name} {kind}"
        );
        for pool in model::Pool::ALL {
            for (tenant, stats) in control.memory().stats(pool) {
                let value = match name {
                    "pappus_tenant_memory_bytes" => stats.used,
                    "pappus_tenant_memory_peak_bytes" => stats.peak,
                    "pappus_tenant_memory_budget_bytes" => stats.budget,
                    _ => stats.refused,
                };
                let tenant = control.tenant_name(tenant).unwrap_or("?");
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\",pool=\"{}\"}} {value}", pool.name());
            }
        }
    }
}

/// Invocations by tenant, target and outcome, and their start-to-answer latency.
fn render_invocations(out: &mut String, control: &ControlPlane) {
    let stats = control.invocation_stats();
    let _ =
        writeln!(out, "# HELP pappus_invocations_by_target_total Invocations ended, by tenant, target and outcome.");
    let _ = writeln!(out, "# TYPE pappus_invocations_by_target_total counter");
    for (tenant, target, outcome, n) in stats.counts() {
        let tenant = control.tenant_name(tenant).unwrap_or("?");
        let outcome = outcome.label();
        // Names are `[A-Za-z0-9_.-]` (the API's name rule): nothing to escape in a label.
        let _ = writeln!(
            out,
            "pappus_invocations_by_target_total{{tenant=\"{tenant}\",target=\"{target}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    let name = "pappus_invocation_latency_ms";
    let _ = Histogram::render_header(name, "Milliseconds from an invocation's start to its answer.", out);
    let _ = stats.latency_ms().render(name, "", out);
}
