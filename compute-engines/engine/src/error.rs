//! Why a function could not be registered or did not complete.
//!
//! Each [`EngineError`] has a stable [`code`](EngineError::code) for the JSON error body
//! (`{"error": {"code": ..., "message": ...}}`), an [`http_status`](EngineError::http_status), and
//! a `Display` message that names the precise cause (the trap, the import, the limit).

use alloc::string::String;
use core::fmt;

use crate::limits::TimeBudget;

/// A failure to prepare an image or to run a function.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The image was refused at registration (or handed to the wrong engine).
    Image(ImageError),
    /// The function faulted: a trap of the engine's machine, named.
    Trap(Trap),
    /// The function ended itself through the ABI's abort call: it returned an error or panicked.
    Aborted {
        /// The function's own message (a panic message includes its source location).
        message: String,
    },
    /// The function used up its time budget.
    Timeout {
        /// The budget it had.
        budget: TimeBudget,
        /// `true` when the wall-clock [`Deadline`](crate::Deadline) ended it, `false` when it ran
        /// out of instructions (deterministic).
        wall_clock: bool,
    },
    /// The function needed more memory than its limit allows and failed because of it.
    OutOfMemory {
        /// The limit, in bytes.
        limit_bytes: u64,
        /// What was refused and how the function ended.
        detail: String,
    },
    /// The function wrote output it may not write.
    BadOutput(BadOutput),
    /// The engine itself failed (an internal invariant, or the host ran out of memory).
    Internal {
        /// What went wrong.
        message: String,
    },
}

impl EngineError {
    /// The stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Image(ImageError::TooLarge { .. }) => "image_too_large",
            Self::Image(ImageError::ForbiddenImport { .. }) => "forbidden_import",
            Self::Image(_) => "invalid_image",
            Self::Trap(_) => "function_trap",
            Self::Aborted { .. } => "function_aborted",
            Self::Timeout { .. } => "timeout",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::BadOutput(_) => "bad_output",
            Self::Internal { .. } => "engine_internal",
        }
    }

    /// The HTTP status that fits: 4xx for a refused image (the client's fault at registration),
    /// 500 for a function that failed, 504 for one that ran out of time.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Image(ImageError::TooLarge { .. }) => 413,
            Self::Image(_) => 400,
            Self::Timeout { .. } => 504,
            Self::Trap(_) | Self::Aborted { .. } | Self::OutOfMemory { .. } | Self::BadOutput(_) => 500,
            Self::Internal { .. } => 500,
        }
    }

    /// Shorthand for an [`EngineError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into() }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "invalid image: {e}"),
            Self::Trap(t) => write!(f, "function trapped ({}): {}", t.kind.name(), t.message),
            Self::Aborted { message } => write!(f, "function aborted: {message}"),
            Self::Timeout { budget, wall_clock: false } => write!(
                f,
                "function exceeded its time budget of {} ms ({} instructions)",
                budget.millis, budget.instructions
            ),
            Self::Timeout { budget, wall_clock: true } => {
                write!(f, "function exceeded its time budget of {} ms (wall clock)", budget.millis)
            }
            Self::OutOfMemory { limit_bytes, detail } => {
                write!(f, "function ran out of memory (limit {limit_bytes} bytes): {detail}")
            }
            Self::BadOutput(e) => write!(f, "bad output: {e}"),
            Self::Internal { message } => write!(f, "engine failure: {message}"),
        }
    }
}

impl core::error::Error for EngineError {}

impl From<ImageError> for EngineError {
    fn from(e: ImageError) -> Self {
        Self::Image(e)
    }
}

impl From<Trap> for EngineError {
    fn from(t: Trap) -> Self {
        Self::Trap(t)
    }
}

impl From<BadOutput> for EngineError {
    fn from(e: BadOutput) -> Self {
        Self::BadOutput(e)
    }
}

/// Why an image was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// The image is larger than the engine accepts.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The engine's limit in bytes.
        limit: usize,
    },
    /// The bytes are not a well-formed, valid image for this engine (the parser's message).
    Malformed {
        /// What the parser or validator said.
        reason: String,
    },
    /// The image imports something the platform does not provide.
    ForbiddenImport {
        /// The import's module (namespace).
        module: String,
        /// The import's name.
        name: String,
        /// Why it is refused (unknown namespace, unknown name, wrong signature or kind).
        reason: String,
    },
    /// The image lacks the entry point, or the entry point has the wrong shape.
    BadEntry {
        /// What is wrong.
        reason: String,
    },
    /// The image uses a feature the engine does not support (e.g. a start function).
    Unsupported {
        /// What is not supported.
        reason: String,
    },
    /// A prepared image was handed to an engine other than the one that prepared it.
    WrongEngine {
        /// The engine that was asked to run it.
        expected: &'static str,
        /// The engine that prepared it.
        found: &'static str,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, limit } => write!(f, "image is {size} bytes, the limit is {limit} bytes"),
            Self::Malformed { reason } => f.write_str(reason),
            Self::ForbiddenImport { module, name, reason } => {
                write!(f, "import `{module}`.`{name}` is not allowed: {reason}")
            }
            Self::BadEntry { reason } => write!(f, "bad entry point: {reason}"),
            Self::Unsupported { reason } => write!(f, "unsupported: {reason}"),
            Self::WrongEngine { expected, found } => {
                write!(f, "image was prepared by engine `{found}`, not `{expected}`")
            }
        }
    }
}

/// A fault of the function's machine, with its name and the engine's details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// Which trap.
    pub kind: TrapKind,
    /// The details (wasm: the interpreter's message or the ABI call that refused a pointer;
    /// native: vector, faulting address, instruction pointer).
    pub message: String,
}

impl Trap {
    /// A trap of `kind` with `message`.
    pub fn new(kind: TrapKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// The traps engines report, named so that clients can match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapKind {
    /// wasm `unreachable` (Rust: `core::arch::wasm32::unreachable`, some aborts).
    Unreachable,
    /// The call stack or value stack limit was reached (deep or unbounded recursion).
    StackOverflow,
    /// A load or store outside the function's memory, or a pointer handed to the ABI that does
    /// not lie inside it (native: a page fault).
    MemoryOutOfBounds,
    /// An access outside a table.
    TableOutOfBounds,
    /// An indirect call through an empty table slot.
    IndirectCallToNull,
    /// An indirect call whose signature does not match.
    BadSignature,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero,
    /// Integer overflow (e.g. `i32::MIN / -1`).
    IntegerOverflow,
    /// A float-to-integer conversion of NaN or an out-of-range value.
    BadConversionToInteger,
    /// An instruction the sandbox forbids or the machine does not know (native: #UD, #GP).
    InvalidInstruction,
    /// Any other fault; the message says which.
    Other,
}

impl TrapKind {
    /// The stable name that appears in messages and that clients may match on.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::StackOverflow => "stack_overflow",
            Self::MemoryOutOfBounds => "memory_out_of_bounds",
            Self::TableOutOfBounds => "table_out_of_bounds",
            Self::IndirectCallToNull => "indirect_call_to_null",
            Self::BadSignature => "bad_signature",
            Self::IntegerDivisionByZero => "integer_division_by_zero",
            Self::IntegerOverflow => "integer_overflow",
            Self::BadConversionToInteger => "bad_conversion_to_integer",
            Self::InvalidInstruction => "invalid_instruction",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Output a function may not write. The run ends at the first such write.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadOutput {
    /// An output set index beyond the declared output sets.
    UndeclaredSet {
        /// The index the function used.
        index: u64,
        /// How many output sets it declared.
        declared: usize,
    },
    /// More items than [`Limits::max_output_items`](crate::Limits::max_output_items).
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// More payload bytes than [`Limits::max_output_bytes`](crate::Limits::max_output_bytes).
    TooLarge {
        /// The total the write would have reached.
        attempted: u64,
        /// The limit.
        limit: u64,
    },
    /// An item name that is not UTF-8 or is longer than [`model::MAX_NAME_LEN`] bytes.
    InvalidName {
        /// What is wrong with it.
        reason: String,
    },
    /// Item flags with bits the ABI reserves (they must be zero).
    ReservedFlags {
        /// The flags the function passed.
        flags: u32,
    },
}

impl fmt::Display for BadOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UndeclaredSet { index, declared } => {
                write!(f, "output set index {index} is not declared (the function declares {declared} output sets)")
            }
            Self::TooManyItems { limit } => write!(f, "more than {limit} output items"),
            Self::TooLarge { attempted, limit } => {
                write!(f, "output would reach {attempted} bytes, the limit is {limit} bytes")
            }
            Self::InvalidName { reason } => write!(f, "invalid item name: {reason}"),
            Self::ReservedFlags { flags } => write!(f, "item flags {flags:#x} set reserved bits"),
        }
    }
}
