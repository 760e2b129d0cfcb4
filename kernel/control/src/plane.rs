//! The control plane's state and its entry points: the kernel hands it requests, polls it, and
//! collects the answers of invocations that did not finish at once.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::{fmt, mem};

use pappus_http::{Request, Response};

use model::{Registry, TenantId, TenantMemory, TokenTable};

use crate::api::{self, Method, Resource, Route};
use crate::auth::Credentials;
use crate::compositions::StoredComposition;
use crate::errors::ApiError;
use crate::invocation::{Invocation, Step};
use crate::limits::ControlLimits;
use crate::runtime::{Runtime, StoredFunction};
use crate::stats::{InvocationStats, Outcome};
use kcore::small_map::SmallMap;

/// Names an invocation that is still running (or finished and not yet collected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvocationId(u64);

impl InvocationId {
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invocation#{}", self.0)
    }
}

/// What [`ControlPlane::handle`] answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The response, ready to send.
    Now(Response),
    /// An invocation that waits (on instances the runtime runs, a `sleep`, or past its per-step
    /// instance budget): call
    /// [`ControlPlane::poll`] and send [`ControlPlane::take_response`] once it returns `Some`,
    /// or [`ControlPlane::cancel`] it when the client goes away.
    Pending(InvocationId),
}

/// Figures for `/metrics`: invocations by outcome (counted since boot) and what is held now.
///
/// An invocation's outcome is its response status: 2xx `ok`; 4xx and 503 `rejected` (bad input,
/// unknown name, unresolved function, saturation); 504 `timed_out`; any other 5xx `failed`.
/// Requests refused before the target is looked up (authentication, route, method, name) are
/// not counted; everything after, an unknown target included, is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub invocations_ok: u64,
    pub invocations_rejected: u64,
    pub invocations_failed: u64,
    pub invocations_timed_out: u64,
    /// Pending invocations dropped by [`ControlPlane::cancel`].
    pub invocations_cancelled: u64,
    /// Invocations held now: running, waiting, or finished and not yet taken.
    pub invocations_live: usize,
    /// Functions registered now, over all tenants (builtins not counted).
    pub functions: usize,
    /// Compositions registered now, over all tenants.
    pub compositions: usize,
}

/// The `/v1` API over the tenants' registries and their invocations.
pub struct ControlPlane {
    pub(crate) tokens: TokenTable,
    pub(crate) limits: ControlLimits,
    pub(crate) functions: Registry<Arc<StoredFunction>>,
    pub(crate) compositions: Registry<StoredComposition>,
    /// Boxed: an invocation is some 800 bytes, which every insert and removal would move
    /// through the map's layers.
    invocations: SmallMap<InvocationId, Box<Invocation>>,
    /// Finished invocations' answers, not yet taken, with their tenant.
    finished: SmallMap<InvocationId, (TenantId, Response)>,
    /// [`poll`](Self::poll)'s list of the invocations that answered in a pass (kept empty
    /// between polls, its room reused).
    answered: Vec<(InvocationId, Response)>,
    next_invocation: u64,
    pub(crate) counters: Counters,
    stats: InvocationStats,
    /// What each tenant holds, against its budgets.
    pub(crate) memory: TenantMemory,
}

/// Lists counts only: tokens, images and payloads stay out of logs.
impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("tenants", &self.tokens.len())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane for the tenants of `tokens`, with nothing registered.
    pub fn new(tokens: TokenTable, limits: ControlLimits) -> Self {
        Self {
            memory: TenantMemory::new(tokens.len(), limits.memory),
            tokens,
            limits,
            functions: Registry::with_limit(limits.max_functions_per_tenant),
            compositions: Registry::with_limit(limits.max_compositions_per_tenant),
            invocations: SmallMap::new(),
            finished: SmallMap::new(),
            answered: Vec::new(),
            next_invocation: 0,
            counters: Counters::default(),
            stats: InvocationStats::default(),
        }
    }

    /// Whether the kernel should route a request for `path` here: `/v1/functions`,
    /// `/v1/compositions`, `/v1/invoke` and everything under them.
    pub fn owns(path: &str) -> bool {
        api::owns(path)
    }

    pub fn limits(&self) -> &ControlLimits {
        &self.limits
    }

    /// Answers one complete request. `now_ms` is the kernel's monotonic clock; `runtime` runs
    /// functions. Never panics, whatever the request. A request of a connection that may send
    /// more goes to [`handle_on`](Self::handle_on) with that connection's [`Credentials`].
    pub fn handle(&mut self, request: Request, now_ms: u64, runtime: &mut dyn Runtime) -> Reply {
        self.handle_on(request, &mut Credentials::default(), now_ms, runtime)
    }

    /// [`handle`](Self::handle) for a request of a connection whose last authenticated request
    /// left `credentials`: the same `Authorization` value again is its tenant without a lookup.
    pub fn handle_on(
        &mut self,
        mut request: Request,
        credentials: &mut Credentials,
        now_ms: u64,
        runtime: &mut dyn Runtime,
    ) -> Reply {
        let route = match Route::parse(&self.tokens, &request, credentials) {
            Ok(route) => route,
            Err(e) => return Reply::Now(e.into_response()),
        };
        let body = core::mem::take(&mut request.body);
        let tenant = route.tenant;
        let answer = match (route.resource, route.method) {
            (Resource::Functions, _) => Ok(self.list_functions(tenant)),
            (Resource::Function(name), Method::Put) => {
                self.put_function(tenant, &name, request.query.as_deref(), body, runtime)
            }
            (Resource::Function(name), Method::Delete) => self.delete_function(tenant, &name),
            (Resource::Function(name), _) => self.get_function(tenant, &name),
            (Resource::Compositions, _) => Ok(self.list_compositions(tenant)),
            (Resource::Composition(name), Method::Put) => self.put_composition(tenant, &name, body, runtime),
            (Resource::Composition(name), Method::Delete) => self.delete_composition(tenant, &name),
            (Resource::Composition(name), _) => self.get_composition(tenant, &name),
            (Resource::Invoke(name), _) => return self.invoke(tenant, &name, &request.headers, body, now_ms, runtime),
        };
        Reply::Now(answer.unwrap_or_else(ApiError::into_response))
    }

    /// Decides an `Expect: 100-continue` request from its head alone: `Some(response)` refuses it
    /// before the client sends a body the request could never use (401, 404, 405, 400 for a bad
    /// name or function spec, 409, 413 by `Content-Length`, 503); `None` means "send 100
    /// Continue", and the full request then goes to [`handle`](Self::handle), which checks
    /// everything again.
    pub fn check_head(&self, request: &Request) -> Option<Response> {
        self.precheck(request).err().map(ApiError::into_response)
    }

    fn precheck(&self, request: &Request) -> Result<(), ApiError> {
        let route = Route::parse(&self.tokens, request, &mut Credentials::default())?;
        let length = request.headers.get_str("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let longer_than = |max: usize| length.is_some_and(|len| len > max as u64);
        match (&route.resource, route.method) {
            (Resource::Function(name), Method::Put) => {
                self.check_new_function(route.tenant, name)?;
                if longer_than(self.limits.max_image_bytes) {
                    return Err(crate::functions::image_too_large(length.unwrap_or(0), self.limits.max_image_bytes));
                }
                crate::functions::parse_spec(name, request.query.as_deref())?;
                self.check_function_room(route.tenant, name)
            }
            (Resource::Composition(name), Method::Put) => {
                self.check_new_composition(route.tenant, name)?;
                if longer_than(self.limits.source_bytes()) {
                    let len = length.unwrap_or(0);
                    return Err(crate::compositions::program_too_large(len, self.limits.source_bytes()));
                }
                self.check_composition_room(route.tenant, name)
            }
            (Resource::Invoke(name), _) => {
                self.lookup_invocable(route.tenant, name)?;
                self.check_room_for_invocation(route.tenant)
            }
            _ => Ok(()),
        }
    }

    /// Starts a pending invocation's bookkeeping: an id, or the answer when it already finished.
    pub(crate) fn settle(
        &mut self,
        mut invocation: Box<Invocation>,
        target: &str,
        now_ms: u64,
        runtime: &mut dyn Runtime,
    ) -> Reply {
        let id = InvocationId(self.next_invocation);
        self.next_invocation = self.next_invocation.wrapping_add(1);
        invocation.bind(id.0, target, now_ms, &self.limits);
        match invocation.step(now_ms, runtime, &self.limits) {
            Step::Done(response) => {
                self.end(id, &invocation, response.status, now_ms, runtime);
                Reply::Now(response)
            }
            Step::Waiting { .. } => {
                self.invocations.insert(id, invocation);
                Reply::Pending(id)
            }
        }
    }

    /// Books an invocation's end: its outcome, and the runtime told to drop what it still runs
    /// for it (an instance failed, so the others' results are no longer wanted).
    fn end(&mut self, id: InvocationId, invocation: &Invocation, status: u16, now_ms: u64, runtime: &mut dyn Runtime) {
        self.record(status);
        let latency = now_ms.saturating_sub(invocation.started_ms());
        self.stats.record(invocation.tenant(), invocation.target(), Outcome::of_status(status), Some(latency));
        if invocation.has_running() {
            runtime.cancel(id.0);
        }
    }

    /// 503 when as many invocations are held as allowed; 429 when `tenant` holds its share
    /// of them ([`tenant_invocation_share`](Self::tenant_invocation_share)), so that one tenant
    /// cannot hold every slot while the others are refused.
    pub(crate) fn check_room_for_invocation(&self, tenant: TenantId) -> Result<(), ApiError> {
        let retry = || alloc::format!("{}", self.limits.retry_after_s);
        if self.live_invocations() >= self.limits.max_live_invocations {
            let message = alloc::format!(
                "{} invocations are under way, the most this server holds; retry later",
                self.live_invocations()
            );
            return Err(ApiError::new(503, "saturated", message).header("retry-after", retry()));
        }
        let held = self.invocations.values().filter(|i| i.tenant() == tenant).count()
            + self.finished.values().filter(|(t, _)| *t == tenant).count();
        let share = self.tenant_invocation_share();
        if held >= share {
            let message = alloc::format!(
                "this tenant has {held} invocations under way, its share of the {} this server holds; retry later",
                self.limits.max_live_invocations
            );
            return Err(ApiError::new(429, "too_many_invocations", message).header("retry-after", retry()));
        }
        Ok(())
    }

    /// Invocations one tenant may hold at once: an equal share of
    /// [`ControlLimits::max_live_invocations`], at least one.
    pub fn tenant_invocation_share(&self) -> usize {
        (self.limits.max_live_invocations / self.tokens.len().max(1)).max(1)
    }

    /// 503 when the runtime's run queue is full for `tenant`: invocations under way get the room
    /// it makes.
    pub(crate) fn check_host_room(&self, runtime: &dyn Runtime, tenant: TenantId) -> Result<(), ApiError> {
        if runtime.saturated(tenant) {
            let message = "the run queue is full; retry later";
            return Err(ApiError::new(503, "saturated", message)
                .header("retry-after", alloc::format!("{}", self.limits.retry_after_s)));
        }
        Ok(())
    }

    /// Advances every pending invocation: takes the results the runtime has for it, completes
    /// `sleep`s whose time has come and starts what became ready (at most
    /// [`ControlLimits::max_instances_per_step`] instances each). Returns whether anything
    /// moved; finished invocations wait in [`take_response`](Self::take_response).
    pub fn poll(&mut self, now_ms: u64, runtime: &mut dyn Runtime) -> bool {
        let mut moved = false;
        while let Some((ticket, result)) = runtime.take_completed() {
            // Results of invocations already answered or cancelled are dropped here.
            if let Some(invocation) = self.invocations.get_mut(&InvocationId(ticket.invocation)) {
                moved |= invocation.finish(ticket.instance, result, &self.limits.wire);
            }
        }
        // Each invocation steps where it lies in the map (no id list, no removal and
        // reinsertion of every invocation on every poll); the ones that answered leave after.
        let mut done = mem::take(&mut self.answered);
        if done.try_reserve(self.invocations.len()).is_err() {
            // No heap for the list now: no invocation steps in this poll (none is lost; the
            // next poll tries again).
            self.answered = done;
            return moved;
        }
        for (&id, invocation) in &mut self.invocations {
            match invocation.step(now_ms, runtime, &self.limits) {
                Step::Done(response) => {
                    moved = true;
                    done.push((id, response));
                }
                Step::Waiting { moved: step_moved } => moved |= step_moved,
            }
        }
        for (id, response) in done.drain(..) {
            let Some(invocation) = self.invocations.remove(&id) else { continue };
            self.end(id, &invocation, response.status, now_ms, runtime);
            self.finished.insert(id, (invocation.tenant(), response));
        }
        // Its room is kept while invocations are live; once none is, what a burst grew it to
        // goes back to the heap.
        if !self.invocations.is_empty() || done.capacity() <= 4 {
            self.answered = done;
        }
        moved
    }

    /// The earliest `now_ms` at which [`poll`](Self::poll) can move something: 0 when instances
    /// are ready now, a `sleep`'s deadline otherwise; `None` when nothing is pending. The
    /// kernel may sleep until then.
    pub fn next_poll_ms(&self) -> Option<u64> {
        self.invocations.values().filter_map(|i| i.next_due_ms()).min()
    }

    /// The response of a finished invocation, once (`None` while it runs, or for an unknown or
    /// already taken id).
    pub fn take_response(&mut self, id: InvocationId) -> Option<Response> {
        self.finished.remove(&id).map(|(_, response)| response)
    }

    /// The client went away: drops the invocation, its execution and every set it holds (or its
    /// finished response), and tells the runtime to drop its instances. Unknown ids are ignored.
    pub fn cancel(&mut self, id: InvocationId, runtime: &mut dyn Runtime) {
        if let Some(invocation) = self.invocations.remove(&id) {
            self.counters.invocations_cancelled = self.counters.invocations_cancelled.saturating_add(1);
            self.stats.record(invocation.tenant(), invocation.target(), Outcome::Cancelled, None);
            if invocation.has_running() {
                runtime.cancel(id.0);
            }
        }
        self.finished.remove(&id);
    }

    /// Invocations held now: pending, plus finished ones whose response was not taken.
    pub fn live_invocations(&self) -> usize {
        self.invocations.len() + self.finished.len()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        Counters { invocations_live: self.live_invocations(), ..self.counters }
    }

    /// Invocations by target and outcome, and their latency.
    pub fn invocation_stats(&self) -> &InvocationStats {
        &self.stats
    }

    /// Every tenant's memory accounts, for `/metrics`.
    pub fn memory(&self) -> &TenantMemory {
        &self.memory
    }

    /// A tenant's name, for labels.
    pub fn tenant_name(&self, tenant: model::TenantId) -> Option<&str> {
        self.tokens.name(tenant)
    }

    /// Counts an invocation refused before it started against its target.
    pub(crate) fn record_target(&mut self, tenant: model::TenantId, target: &str, status: u16) {
        self.stats.record(tenant, target, Outcome::of_status(status), None);
    }

    /// Counts one invocation's outcome by its response status.
    pub(crate) fn record(&mut self, status: u16) {
        let c = &mut self.counters;
        let counter = match Outcome::of_status(status) {
            Outcome::Ok => &mut c.invocations_ok,
            Outcome::TimedOut => &mut c.invocations_timed_out,
            Outcome::Rejected => &mut c.invocations_rejected,
            Outcome::Failed | Outcome::Cancelled => &mut c.invocations_failed,
        };
        *counter = counter.saturating_add(1);
    }
}
