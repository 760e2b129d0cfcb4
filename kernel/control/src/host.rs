//! What the control plane needs from the kernel: something that validates function images and
//! runs functions. The kernel implements [`FunctionHost`] over the real engines; the tests use a
//! fake. Keeping this a trait is what lets the whole API be tested on the host.

use alloc::string::String;
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

/// The engines, as the control plane sees them.
///
/// Calls are synchronous for now: `run` returns when the function has ended. (A later dispatcher
/// will run instances on other cores; the control plane already keeps each invocation as a
/// resumable state machine, so only this trait will change.)
pub trait FunctionHost {
    /// Validates (and may compile or cache) an image before it is registered. An error refuses
    /// the upload with the error's status (normally 400) and message.
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes) -> Result<(), HostError>;

    /// Runs `function` for `tenant` on `inputs`: one set per declared input, in declaration
    /// order, named as the function declares them. Returns one set per declared output, in
    /// declaration order (their names are not used: outputs bind by position).
    fn run(&mut self, tenant: TenantId, function: &StoredFunction, inputs: Vec<Set>) -> Result<Vec<Set>, HostError>;
}
