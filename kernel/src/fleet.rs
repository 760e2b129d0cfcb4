//! A fleet node's sync with etcd on the I/O core (docs/fleet.md): `pappus_fleet::Sync` (the
//! state machine, host-tested) driven through a `pappus_fetch::Client` of its own (the HTTP
//! client the `http` function uses) over the kernel's `Net` — range reads and blob fetches as
//! ordinary requests, the watch of the prefix as one streaming request whose body is handed to
//! the sync as it arrives — its changes applied through the control plane. Every pass of the
//! I/O loop calls [`FleetSync::poll`]; nothing here blocks.

use alloc::format;
use alloc::string::String;

use control::{ControlPlane, FleetChange};
use model::{Bytes, HostTable, Item, Set};
use pappus_fetch::{Client, FetchLimits, StreamLimits};
use pappus_fleet::{Action, Kind, Sync, SyncConfig};

use crate::metrics::{Export, Exposition, Kind as MetricKind};
use crate::mm;
use crate::net::Net;
use crate::runtime::KernelRuntime;

pub struct FleetSync {
    sync: Sync,
    client: Client<u64>,
    stream_limits: StreamLimits,
    /// The open watch: the sync's ticket for it and the client's stream id.
    watch: Option<(u64, u64)>,
    /// The last error logged, so a repeated one is not logged every round.
    last_logged: Option<String>,
}

impl FleetSync {
    /// A sync with etcd at `etcd` and blobs at `blobs` (checked `http://` URLs from the boot
    /// configuration or the command line); a blob may be as large as the node's largest image.
    pub fn new(etcd: &str, blobs: &str, max_image_bytes: usize) -> Self {
        let config = SyncConfig { memory: pappus_http::MemoryGate(mm::heap_room_for), ..SyncConfig::new(etcd, blobs) };
        // etcd on the fleet's own network answers in milliseconds; a node that cannot reach
        // it should say so within a second and try again, not wait the `http` function's 5 s.
        let limits = FetchLimits {
            connect_timeout_ms: 1_000,
            read_timeout_ms: 2_000,
            total_timeout_ms: 20_000,
            max_in_flight: 4,
            max_response_bytes: max_image_bytes,
            max_instance_bytes: max_image_bytes.saturating_add(64 << 10),
            body_memory: pappus_http::MemoryGate(mm::heap_room_for),
            ..FetchLimits::default()
        };
        // The watch: a quiet stream is fine (nothing changed); its messages are one event
        // batch each, bounded by etcd's own request limit (1.5 MiB, base64 makes it 2).
        let stream_limits = StreamLimits {
            connect_timeout_ms: 1_000,
            head_timeout_ms: 2_000,
            idle_timeout_ms: None,
            max_buffered: config.max_message_bytes.saturating_add(64 << 10),
            memory: pappus_http::MemoryGate(mm::heap_room_for),
            ..StreamLimits::default()
        };
        log::info!("desired state from etcd {etcd} (range read, then watch), images from {blobs}");
        Self {
            sync: Sync::new(config),
            client: Client::new(HostTable::default(), limits),
            stream_limits,
            watch: None,
            last_logged: None,
        }
    }

    /// Opens the watch the sync asks for, closes one it no longer wants, and hands it what
    /// the stream brought; whether anything moved.
    fn drive_watch(&mut self, net: &mut Net, now: u64) -> bool {
        let mut moved = false;
        if let Some((ticket, id)) = self.watch
            && self.sync.watch_ticket() != Some(ticket)
        {
            self.client.close_stream(id);
            self.watch = None;
            moved = true;
        }
        if let Some((ticket, item)) = self.sync.take_watch_request() {
            if let Some((_, id)) = self.watch.take() {
                self.client.close_stream(id);
            }
            match self.client.open_stream(net, &item, &self.stream_limits, now) {
                Ok(id) => self.watch = Some((ticket, id)),
                Err(e) => self.sync.on_watch_end(ticket, Err(&format!("{e}")), now),
            }
            moved = true;
        }
        let Some((ticket, id)) = self.watch else { return moved };
        let Some(stream) = self.client.stream(id) else { return moved };
        let mut end = None;
        match stream.head() {
            Some((200, _)) => {
                let data = stream.take_data();
                if !data.is_empty() {
                    self.sync.on_watch_data(ticket, &data, now);
                    moved = true;
                }
            }
            Some((status, _)) => end = Some(Err(format!("bad_response: etcd answered {status} to the watch"))),
            None => {}
        }
        if end.is_none()
            && let Some(outcome) = stream.take_outcome()
        {
            end = Some(outcome.map_err(|e| format!("{e}")));
        }
        if let Some(outcome) = end {
            self.client.close_stream(id);
            self.watch = None;
            self.sync.on_watch_end(ticket, outcome.as_ref().map(|_| ()).map_err(String::as_str), now);
            moved = true;
        }
        moved
    }

    /// Starts a round when due, moves the requests, applies what came in; whether anything
    /// moved.
    pub fn poll(&mut self, net: &mut Net, control: &mut ControlPlane, runtime: &mut KernelRuntime, now: u64) -> bool {
        let mut moved = self.sync.poll(now);
        while let Some((ticket, item)) = self.sync.take_request() {
            let mut requests = Set::new("requests");
            requests.items.push(Item { name: format!("r{ticket}").into(), key: None, data: Bytes::from(item) });
            self.client.start(ticket, &requests);
            moved = true;
        }
        moved |= self.drive_watch(net, now);
        moved |= self.client.poll(net, now);
        moved |= self.drive_watch(net, now);
        while let Some((ticket, sets)) = self.client.take_completed() {
            moved = true;
            match outcome(&sets) {
                Ok((status, body)) => self.sync.on_response(ticket, Ok((status, body)), now),
                Err(e) => self.sync.on_response(ticket, Err(&e), now),
            }
        }
        while let Some(action) = self.sync.take_action() {
            moved = true;
            let key = action.key().clone();
            let (what, change) = match action {
                Action::PutFunction { query, image, .. } => {
                    let outcome = control.apply_fleet(
                        &key.tenant,
                        &key.name,
                        FleetChange::PutFunction { query: &query, image },
                        runtime,
                    );
                    ("registered", outcome)
                }
                Action::PutComposition { source, .. } => (
                    "registered",
                    control.apply_fleet(&key.tenant, &key.name, FleetChange::PutComposition { source }, runtime),
                ),
                Action::Delete { .. } => {
                    let change = match key.kind {
                        Kind::Function => FleetChange::DeleteFunction,
                        Kind::Composition => FleetChange::DeleteComposition,
                    };
                    ("deleted", control.apply_fleet(&key.tenant, &key.name, change, runtime))
                }
            };
            if change.is_ok() {
                log::info!("{what} {} (etcd revision {})", key.path(), self.sync.revision());
            }
            self.sync.applied(&key, change);
        }
        if let Some(e) = self.sync.take_error() {
            // etcd down fails every retry the same way: said once, until something else.
            if self.last_logged.as_deref() != Some(e.as_str()) {
                log::warn!("{e}");
                self.last_logged = Some(e);
            }
        } else if moved && self.sync.etcd() == pappus_fleet::EtcdState::Up && self.last_logged.is_some() {
            self.last_logged = None;
        }
        moved
    }

    /// When a range read is due or a request or the watch's connection times out (ms since
    /// boot).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        match (self.sync.next_wakeup_ms(), self.client.next_wakeup_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `/healthz`'s `"fleet"` member:
    /// `{"etcd":"up","watching":true,"revision":N,"held":N,"applied":N,"errors":N}`.
    pub fn health_json(&self) -> String {
        let stats = self.sync.stats();
        format!(
            r#"{{"etcd":"{}","watching":{},"revision":{},"held":{},"applied":{},"errors":{}}}"#,
            self.sync.etcd().name(),
            self.watch.is_some(),
            self.sync.revision(),
            self.sync.held(),
            stats.applied,
            stats.errors
        )
    }
}

/// One request's outcome from the client's three output sets (responses, bodies, errors):
/// the status and body, or the error line.
fn outcome(sets: &[Set]) -> Result<(u16, &[u8]), String> {
    let first = |index: usize| sets.get(index).and_then(|s| s.items.first());
    if let Some(error) = first(2) {
        return Err(String::from_utf8_lossy(&error.data).into_owned());
    }
    let head = first(0).ok_or_else(|| String::from("no response"))?;
    let status = head
        .data
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| core::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| String::from("a response without a status"))?;
    Ok((status, first(1).map_or(&[][..], |b| &b.data[..])))
}

impl Export for FleetSync {
    fn export(&self, out: &mut Exposition) {
        let stats = self.sync.stats();
        let up = u8::from(self.sync.etcd() == pappus_fleet::EtcdState::Up);
        out.single("pappus_fleet_etcd_up", "1 when the last range read from etcd succeeded.", MetricKind::Gauge, up);
        let watching = u8::from(self.watch.is_some());
        out.single("pappus_fleet_watching", "1 while the watch of the prefix is open.", MetricKind::Gauge, watching);
        let revision = self.sync.revision();
        out.single(
            "pappus_fleet_revision",
            "etcd's revision this node is in sync with (range read, then watch).",
            MetricKind::Gauge,
            revision,
        );
        let held = self.sync.held();
        let help = "Functions and compositions held from the fleet's state.";
        out.single("pappus_fleet_held", help, MetricKind::Gauge, held);
        for (name, help, value) in [
            ("pappus_fleet_rounds_total", "Range reads of the prefix started.", stats.rounds),
            ("pappus_fleet_etcd_failures_total", "Range reads that got no 200 from etcd.", stats.etcd_failures),
            ("pappus_fleet_watches_total", "Watches of the prefix opened.", stats.watches),
            ("pappus_fleet_watch_events_total", "Watch events received (puts and deletes).", stats.watch_events),
            (
                "pappus_fleet_resyncs_total",
                "Watches dropped for a range read (broken stream, compaction, cancel, bad message, lost blob).",
                stats.resyncs,
            ),
            ("pappus_fleet_applied_total", "Changes applied: register, replace, delete.", stats.applied),
            ("pappus_fleet_errors_total", "Bad results, bad values, bad blobs, refused changes.", stats.errors),
            ("pappus_fleet_digest_mismatches_total", "Blobs refused for a wrong SHA-256.", stats.digest_mismatches),
        ] {
            out.single(name, help, MetricKind::Counter, value);
        }
    }
}

/// The fleet settings: `etcd=`/`blobs=` on the command line win over the boot configuration's
/// `etcd`/`blobs` lines; both or neither.
pub fn settings(cmdline: &kcore::cmdline::CommandLine<'_>, node: &model::NodeSettings) -> Option<(String, String)> {
    let pick = |key: &'static str, configured: &Option<String>| match cmdline.get(key) {
        Some(v) => model::check_fleet_url(key, Some(v)).map_err(|e| log::error!("command line {key}=: {e}")).ok(),
        None => configured.clone(),
    };
    match (pick("etcd", &node.etcd), pick("blobs", &node.blobs)) {
        (Some(etcd), Some(blobs)) => Some((etcd, blobs)),
        (None, None) => None,
        _ => {
            log::error!("`etcd` and `blobs` go together; one is missing, so this node is not a fleet node");
            None
        }
    }
}
