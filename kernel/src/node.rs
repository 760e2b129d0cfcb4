//! The serving node: the one root that owns the network, the front door, the control plane and
//! the function runtime, and runs the I/O loop over them.
//!
//! Where each part's state lives:
//!
//! | part | owns |
//! |---|---|
//! | `net::Net` | the NIC, smoltcp's interface and socket set |
//! | `frontdoor::FrontDoor` | the listening socket pool, each socket's HTTP connection, HTTP counters, the operator token |
//! | `control::ControlPlane` | tenants, their functions and compositions, invocations in flight, tenants' memory accounts |
//! | `runtime::KernelRuntime` | the function runtime the control plane runs on: the dispatcher's handle and the `http` function's client |
//! | `compute::Dispatcher` (static, shared with the compute cores) | the run queue, parked runs, per-core state, completed results |
//! | `fleet::FleetSync` (fleet nodes only) | the sync with etcd: its state machine, its HTTP client's sockets |
//!
//! One pass of the loop, in ordinary kernel context on the I/O core (never inside an interrupt
//! or an engine): poll the NIC; move the `http` function's sockets; hand the compute cores'
//! results to the control plane and let it start what became ready; serve every connection,
//! whose requests go to the control plane through [`Backend`]; in single-core mode run one turn
//! of a function. `/metrics` is rendered from the parts' [`Export`]s in one list
//! ([`Services::metrics`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use control::{ControlPlane, Credentials, InvocationId, Reply};
use drivers::net::virtio::NicStats;
use pappus_http::{Request, Response};

use crate::compute::Dispatcher;
use crate::fleet::FleetSync;
use crate::frontdoor::{Backend, FrontDoor};
use crate::metrics::{self, Export, Exposition, Kind};
use crate::net::Net;
use crate::runtime::KernelRuntime;
use crate::{serve, time};

pub struct Node {
    net: Box<Net>,
    door: FrontDoor,
    control: ControlPlane,
    runtime: KernelRuntime,
    dispatcher: &'static Dispatcher,
    fleet: Option<FleetSync>,
}

impl Node {
    pub fn new(
        net: Box<Net>,
        door: FrontDoor,
        control: ControlPlane,
        runtime: KernelRuntime,
        dispatcher: &'static Dispatcher,
        fleet: Option<FleetSync>,
    ) -> Self {
        Self { net, door, control, runtime, dispatcher, fleet }
    }

    /// One pass over every part; whether anything moved.
    pub fn pass(&mut self) -> bool {
        let Self { net, door, control, runtime, dispatcher, fleet } = self;
        // One clock read for the pass: smoltcp's timestamps and the front door's ms.
        let ts = crate::net::now();
        let now = ts.total_millis() as u64;
        let mut busy = net.receive_with(ts, &mut |sockets| door.top_up(sockets));
        busy |= runtime.poll_comm(net, now);
        if let Some(fleet) = fleet.as_mut() {
            busy |= fleet.poll(net, control, runtime, now);
        }
        busy |= control.poll(now, runtime);
        // Sampled once a pass for `/metrics` (a walk of the socket set), not once a service.
        let figures = NetFigures { nic: net.nic_stats(), sockets: net.sockets.iter().count() };
        let mut services = Services { control, runtime, dispatcher, net: figures, fleet: fleet.as_ref() };
        busy |= door.service(net, &mut services, now);
        // Every frame this pass queued goes out once, here: responses in the pass that
        // answered, not at the start of the next (one walk of the sockets per pass).
        busy |= net.flush(ts);
        // Single-core mode: one turn of a function run (at most about 10 ms: a long run is
        // parked and queued again), so the front door is served between turns, here.
        if dispatcher.run_inline() {
            // Its result answered in this pass, not the next: the control plane takes it, the
            // front door writes the answer, and it goes out.
            busy = true;
            control.poll(now, runtime);
            let mut services = Services { control, runtime, dispatcher, net: figures, fleet: fleet.as_ref() };
            door.service(net, &mut services, now);
            net.flush(ts);
        }
        busy
    }

    /// With compute cores, after a pass that moved nothing: one turn of queued work that no
    /// compute core is free to take, on this core (`Dispatcher::help`). Whether it ran one.
    pub fn help(&mut self, pass_moved: bool) -> bool {
        self.dispatcher.help(pass_moved)
    }

    /// When the control plane (a `sleep` ending, a deadline) or a communication function (a
    /// timeout) next needs a pass, in ms since boot.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        let fleet = self.fleet.as_ref().and_then(FleetSync::next_wakeup_ms);
        [self.control.next_poll_ms(), self.runtime.next_wakeup_ms(), fleet].into_iter().flatten().min()
    }

    pub fn net(&mut self) -> &mut Net {
        &mut self.net
    }

    /// Serves until the machine stops.
    pub fn serve_forever(self) -> ! {
        serve::forever(self)
    }
}

fn millis() -> u64 {
    time::micros_since_boot().unwrap_or(0) / 1000
}

/// What the front door's requests reach during a pass: the node's parts, borrowed.
struct Services<'a> {
    control: &'a mut ControlPlane,
    runtime: &'a mut KernelRuntime,
    dispatcher: &'static Dispatcher,
    net: NetFigures,
    fleet: Option<&'a FleetSync>,
}

impl Backend for Services<'_> {
    fn handle(&mut self, request: Request, credentials: &mut Credentials, now_ms: u64) -> Reply {
        self.control.handle_on(request, credentials, now_ms, self.runtime)
    }

    fn check_head(&self, request: &Request) -> Option<Response> {
        self.control.check_head(request)
    }

    fn take_response(&mut self, id: InvocationId) -> Option<Response> {
        self.control.take_response(id)
    }

    fn cancel(&mut self, id: InvocationId) {
        self.control.cancel(id, self.runtime);
    }

    fn fleet_health(&self) -> Option<String> {
        self.fleet.map(FleetSync::health_json)
    }

    /// Every part's figures, in one list.
    fn metrics(&self, door: &dyn Export) -> String {
        let control = ControlFigures(self.control);
        let parts: [&dyn Export; 8] = [
            door,
            &self.net,
            &control,
            self.dispatcher,
            &metrics::Engines,
            &metrics::Memory,
            &crate::wall_events::WallEvents,
            &IoLoop,
        ];
        let mut out = Exposition::new();
        for part in parts {
            part.export(&mut out);
        }
        if let Some(fleet) = self.fleet {
            fleet.export(&mut out);
        }
        out.finish()
    }
}

/// The network's figures, sampled once per pass.
#[derive(Clone, Copy)]
struct NetFigures {
    nic: NicStats,
    sockets: usize,
}

impl Export for NetFigures {
    fn export(&self, out: &mut Exposition) {
        let nic = &self.nic;
        for (name, help, value) in [
            ("pappus_nic_rx_packets_total", "Frames received.", nic.rx_packets),
            ("pappus_nic_tx_packets_total", "Frames sent.", nic.tx_packets),
            ("pappus_nic_rx_bytes_total", "Bytes received.", nic.rx_bytes),
            ("pappus_nic_tx_bytes_total", "Bytes sent.", nic.tx_bytes),
            ("pappus_nic_tx_busy_total", "Transmits deferred: all buffers in flight.", nic.tx_busy),
            ("pappus_nic_dropped_total", "Frames dropped: queue errors on receive or transmit.", nic.errors),
            (
                "pappus_nic_rx_checksum_errors_total",
                "TCP segments dropped for a wrong checksum (checked by the driver).",
                nic.rx_bad_checksum,
            ),
        ] {
            out.single(name, help, Kind::Counter, value);
        }
        let help = "Sockets in the network stack: front-door pool, http-function clients, DHCP, DNS.";
        out.single("pappus_net_sockets", help, Kind::Gauge, self.sockets);
    }
}

/// The I/O loop's own figures.
struct IoLoop;

impl Export for IoLoop {
    fn export(&self, out: &mut Exposition) {
        let help = "TSC ticks in I/O-loop passes that moved something (instructions under icount).";
        out.single("pappus_io_work_ticks_total", help, Kind::Counter, serve::work_ticks());
        let help = "I/O-loop passes that moved something (those pappus_io_work_ticks_total counts).";
        out.single("pappus_io_work_passes_total", help, Kind::Counter, serve::work_passes());
        out.single("pappus_uptime_seconds", "Seconds since boot.", Kind::Gauge, millis() / 1000);
    }
}

/// The control plane's figures: invocations by outcome and by tenant and target, their latency,
/// what is registered, and each tenant's memory.
struct ControlFigures<'a>(&'a ControlPlane);

impl Export for ControlFigures<'_> {
    fn export(&self, out: &mut Exposition) {
        let control = self.0;
        let c = control.counters();
        out.family("pappus_invocations_total", "Invocations ended, by outcome.", Kind::Counter);
        for (outcome, n) in [
            ("ok", c.invocations_ok),
            ("rejected", c.invocations_rejected),
            ("failed", c.invocations_failed),
            ("timed_out", c.invocations_timed_out),
            ("cancelled", c.invocations_cancelled),
        ] {
            out.sample("pappus_invocations_total", &format!("outcome=\"{outcome}\""), n);
        }
        let help = "Invocations held: running, waiting, or unanswered.";
        out.single("pappus_invocations_live", help, Kind::Gauge, c.invocations_live);
        out.single("pappus_functions_registered", "Functions registered, all tenants.", Kind::Gauge, c.functions);
        let help = "Compositions registered, all tenants.";
        out.single("pappus_compositions_registered", help, Kind::Gauge, c.compositions);

        let stats = control.invocation_stats();
        let name = "pappus_invocations_by_target_total";
        out.family(name, "Invocations ended, by tenant, target and outcome.", Kind::Counter);
        for (tenant, target, outcome, n) in stats.counts() {
            let tenant = control.tenant_name(tenant).unwrap_or("?");
            out.sample(name, &format!("tenant=\"{tenant}\",target=\"{target}\",outcome=\"{}\"", outcome.label()), n);
        }
        let name = "pappus_invocation_latency_ms";
        let _ = dispatch::Histogram::render_header(
            name,
            "Milliseconds from an invocation's start to its answer.",
            out.text(),
        );
        let _ = stats.latency_ms().render(name, "", out.text());

        for (name, help, kind) in [
            ("pappus_tenant_memory_bytes", "Bytes a tenant holds now, by pool (heap, frames).", Kind::Gauge),
            ("pappus_tenant_memory_peak_bytes", "The most bytes a tenant held, by pool.", Kind::Gauge),
            ("pappus_tenant_memory_budget_bytes", "A tenant's memory budget, by pool.", Kind::Gauge),
            (
                "pappus_tenant_memory_refusals_total",
                "Charges refused as over a tenant's budget, by pool.",
                Kind::Counter,
            ),
        ] {
            out.family(name, help, kind);
            for pool in model::Pool::ALL {
                for (tenant, stats) in control.memory().stats(pool) {
                    let value = match name {
                        "pappus_tenant_memory_bytes" => stats.used,
                        "pappus_tenant_memory_peak_bytes" => stats.peak,
                        "pappus_tenant_memory_budget_bytes" => stats.budget,
                        _ => stats.refused,
                    };
                    let tenant = control.tenant_name(tenant).unwrap_or("?");
                    out.sample(name, &format!("tenant=\"{tenant}\",pool=\"{}\"", pool.name()), value);
                }
            }
        }
    }
}
