//! What the control plane needs from the kernel: something that validates function images and
//! runs functions. The kernel implements [`FunctionHost`] over the real engines; the tests use a
//! fake. Keeping this a trait is what lets the whole API be tested on the host.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use model::{Bytes, FunctionDecl, FunctionSpec, ImageDigest, Set, TenantId};

/// A registered function: its validated declaration and its image exactly as uploaded.
///
/// Invocations hold it behind an `Arc`, so replacing or deleting a function never changes what
/// an invocation already under way runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFunction {
    decl: FunctionDecl,
    image: Bytes,
}

impl StoredFunction {
    /// Binds `spec` to `image`, hashing the image.
    pub fn new(spec: FunctionSpec, image: Bytes) -> Self {
        Self { decl: FunctionDecl::new(spec, &image), image }
    }

    pub fn spec(&self) -> &FunctionSpec {
        self.decl.spec()
    }

    /// The declaration (spec and digest), as listings show it.
    pub fn decl(&self) -> &FunctionDecl {
        &self.decl
    }

    /// The wasm module or ELF, as uploaded.
    pub fn image(&self) -> &Bytes {
        &self.image
    }

    /// SHA-256 of the image: engines may key compiled code by it.
    pub fn digest(&self) -> &ImageDigest {
        self.decl.digest()
    }

    pub fn name(&self) -> &str {
        self.decl.name()
    }
}

/// Why an engine refused an image or a function run failed, with the HTTP status and the
/// machine-readable code the client gets.
///
/// Typical values: 400 `bad_image` (prepare refused the image), 500 `function_failed` (a fault,
/// a forbidden instruction, running out of memory), 504 `timeout` (the time budget ran out),
/// 503 `unavailable` (no sandbox free). A status outside 400..=599 is answered as 500.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    pub status: u16,
    pub code: &'static str,
    /// For people: what happened, e.g. `page fault at 0x0 (rip 0x4010a2)`.
    pub message: String,
}

impl HostError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 `bad_image`: the engine refused the uploaded image.
    pub fn bad_image(message: impl Into<String>) -> Self {
        Self::new(400, "bad_image", message)
    }

    /// 500 `function_failed`: the function ended other than by its exit call.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(500, "function_failed", message)
    }

    /// 504 `timeout`: the function ran past its time budget.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "timeout", message)
    }

    /// The status to answer with: `status` when it is an error status, else 500.
    pub fn http_status(&self) -> u16 {
        if (400..=599).contains(&self.status) { self.status } else { 500 }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

/// Names one instance the host runs: the invocation ([`InvocationId::get`](crate::InvocationId::get))
/// and the planner's instance id within it. The host hands it back with the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    pub invocation: u64,
    pub instance: u64,
}

/// What starting an instance gave.
#[derive(Debug)]
pub enum Started {
    /// It ran, or was refused, at once (a host without other cores, a full run queue).
    Done(Result<Vec<Set>, HostError>),
    /// It runs elsewhere (another core, the network); its result comes from
    /// [`FunctionHost::take_completed`].
    Running,
    /// No room now (the run queue is full): the inputs come back, and the plane starts the
    /// instance again on a later poll. Back-pressure, not an error: a wide fan-out waits for
    /// room instead of failing.
    Busy(Vec<Set>),
}

/// A platform communication function: trusted code that does I/O for compositions, run by the
/// host next to its network stack (builtins table: `http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Comm {
    Http,
}

impl Comm {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
        }
    }
}

/// The engines and the I/O the control plane needs, as it sees them.
///
/// Runs are asynchronous: [`start`](Self::start) either answers at once or says the instance is
/// [`Running`](Started::Running), and the result comes back later through
/// [`take_completed`](Self::take_completed), which [`ControlPlane::poll`](crate::ControlPlane::poll)
/// drains. So the kernel can run instances on other cores, or fetch over the network, while the
/// control plane goes on answering requests.
pub trait FunctionHost {
    /// Validates (and may compile or cache) an image before it is registered. An error refuses
    /// the upload with the error's status (normally 400) and message.
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes) -> Result<(), HostError>;

    /// Starts `function` for `tenant` on `inputs`: one set per declared input, in declaration
    /// order, named as the function declares them. Its result is one set per declared output, in
    /// declaration order (their names are not used: outputs bind by position).
    fn start(&mut self, ticket: Ticket, tenant: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started;

    /// Starts a communication function on its input sets. Hosts without network I/O keep the
    /// default, which refuses with 503 `unavailable`.
    fn start_comm(&mut self, ticket: Ticket, comm: Comm, inputs: Vec<Set>) -> Started {
        let _ = (ticket, inputs);
        let message = alloc::format!("the `{}` function is not available on this node", comm.name());
        Started::Done(Err(HostError::new(503, "unavailable", message)))
    }

    /// Whether the host is saturated (its run queue is full): new invocations are then refused
    /// with 503 and `Retry-After`, while those under way wait for room.
    fn saturated(&self) -> bool {
        false
    }

    /// One result of an instance that [`start`](Self::start) or [`start_comm`](Self::start_comm)
    /// reported as running, if one has finished.
    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, HostError>)> {
        None
    }

    /// Drops every queued or running instance of invocation `invocation` (failed, cancelled or
    /// answered already): their results are no longer wanted, and may or may not be reported.
    fn cancel(&mut self, invocation: u64) {
        let _ = invocation;
    }
}
