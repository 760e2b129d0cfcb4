//! What the control plane needs from the kernel: something that validates function images and
//! runs functions. The kernel implements [`Runtime`] over the real engines; the tests use a
//! fake. Keeping this a trait is what lets the whole API be tested on the host machine.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;

use model::{Bytes, FunctionDecl, FunctionSpec, ImageDigest, MemoryCharge, Set, TenantId};

/// What an engine made of an image at registration (a compiled module, a loaded ELF): opaque to
/// the control plane, which keeps it with the function so it lives exactly as long as the
/// function and the invocations that run it. `bytes` is the heap it holds, as the runtime measured
/// it; the tenant is charged for it.
#[derive(Clone)]
pub struct Prepared {
    inner: Arc<dyn Any + Send + Sync>,
    bytes: u64,
}

impl Prepared {
    pub fn new<T: Any + Send + Sync>(value: T, bytes: u64) -> Self {
        Self { inner: Arc::new(value), bytes }
    }

    /// The runtime's own type, if this is one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.inner.downcast_ref()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

/// A registered function: its validated declaration, what the engine prepared from its image,
/// and the tenant's memory charge for both (given back when the last reference goes: after a
/// `DELETE` or a replacement, once no invocation runs it any more).
///
/// Invocations hold it behind an `Arc`, so replacing or deleting a function never changes what
/// an invocation already under way runs. The uploaded bytes are not kept: the prepared form is
/// all that runs, and each tenant's functions are prepared for that tenant alone (no cache
/// shared between tenants, so registration time says nothing about what others uploaded).
#[derive(Debug)]
pub struct StoredFunction {
    decl: FunctionDecl,
    prepared: Prepared,
    image_len: u64,
    charge: MemoryCharge,
}

impl StoredFunction {
    /// Binds `spec` to the prepared form of `image`, hashing the image; `charge` is what the
    /// tenant pays for holding it.
    pub fn new(spec: FunctionSpec, image: &[u8], prepared: Prepared, charge: MemoryCharge) -> Self {
        Self { decl: FunctionDecl::new(spec, image), prepared, image_len: image.len() as u64, charge }
    }

    pub fn spec(&self) -> &FunctionSpec {
        self.decl.spec()
    }

    /// The declaration (spec and digest), as listings show it.
    pub fn decl(&self) -> &FunctionDecl {
        &self.decl
    }

    /// What the runtime's engine made of the image.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The uploaded image's size in bytes.
    pub fn image_len(&self) -> u64 {
        self.image_len
    }

    /// The heap bytes charged to the tenant for this function.
    pub fn charged_bytes(&self) -> u64 {
        self.charge.bytes()
    }

    /// SHA-256 of the image.
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
pub struct RunError {
    pub status: u16,
    pub code: &'static str,
    /// For people: what happened, e.g. `page fault at 0x0 (rip 0x4010a2)`.
    pub message: String,
}

impl RunError {
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

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

/// Names one instance the runtime runs: the invocation ([`InvocationId::get`](crate::InvocationId::get))
/// and the planner's instance id within it. The runtime hands it back with the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    pub invocation: u64,
    pub instance: u64,
}

/// What starting an instance gave.
#[derive(Debug)]
pub enum Started {
    /// It ran, or was refused, at once (a runtime without other cores, a full run queue).
    Done(Result<Vec<Set>, RunError>),
    /// It runs elsewhere (another core, the network); its result comes from
    /// [`Runtime::take_completed`].
    Running,
    /// No room now (the run queue is full): the inputs come back, and the plane starts the
    /// instance again on a later poll. Back-pressure, not an error: a wide fan-out waits for
    /// room instead of failing.
    Busy(Vec<Set>),
}

/// A platform communication function: trusted code that does I/O for compositions, run by the
/// runtime next to its network stack (builtins table: `http`).
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
pub trait Runtime {
    /// Validates and prepares (compiles, loads) an image before it is registered; what it gives
    /// is kept with the function and handed back with every [`start`](Self::start). An error
    /// refuses the upload with the error's status (400 for a bad image; 503 `out_of_memory` when
    /// the node has no room to prepare it now) and message. `room` is how many heap bytes the
    /// tenant has left: a runtime may refuse (507 `memory_budget`) rather than prepare what would
    /// not fit.
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes, room: u64) -> Result<Prepared, RunError>;

    /// Heap bytes allocated, less those freed, on the calling CPU since boot (wrapping), or
    /// `None` when the runtime cannot tell. The control plane reads it around work it does for a
    /// tenant on this CPU (parsing a program) to charge what that work kept.
    fn heap_allocated_here(&self) -> Option<u64> {
        None
    }

    /// Starts `function` for `tenant` on `inputs`: one set per declared input, in declaration
    /// order, named as the function declares them. Its result is one set per declared output, in
    /// declaration order (their names are not used: outputs bind by position).
    fn start(&mut self, ticket: Ticket, tenant: TenantId, function: &Arc<StoredFunction>, inputs: Vec<Set>) -> Started;

    /// Starts a communication function on its input sets. Hosts without network I/O keep the
    /// default, which refuses with 503 `unavailable`.
    fn start_comm(&mut self, ticket: Ticket, comm: Comm, inputs: Vec<Set>) -> Started {
        let _ = (ticket, inputs);
        let message = alloc::format!("the `{}` function is not available on this node", comm.name());
        Started::Done(Err(RunError::new(503, "unavailable", message)))
    }

    /// Whether the runtime is saturated for `tenant` (its run queue is full, or holds the tenant's
    /// share of it): the tenant's new invocations are then refused with 503 and `Retry-After`,
    /// while those under way wait for room.
    fn saturated(&self, tenant: TenantId) -> bool {
        let _ = tenant;
        false
    }

    /// One result of an instance that [`start`](Self::start) or [`start_comm`](Self::start_comm)
    /// reported as running, if one has finished.
    fn take_completed(&mut self) -> Option<(Ticket, Result<Vec<Set>, RunError>)> {
        None
    }

    /// Drops every queued or running instance of invocation `invocation` (failed, cancelled or
    /// answered already): their results are no longer wanted, and may or may not be reported.
    fn cancel(&mut self, invocation: u64) {
        let _ = invocation;
    }
}
