//! Function declarations: what `PUT /v1/functions/{name}?engine=E&inputs=A,B&outputs=C&memory=16MiB&timeout_ms=1000`
//! registers, validated once at the front door so the kernel can trust every field afterwards.
//!
//! Query parameters (values percent-decoded, `+` is a space, each parameter at most once):
//!
//! | parameter    | value                                              | default                  |
//! |--------------|----------------------------------------------------|--------------------------|
//! | `engine`     | `wasm`, `mpk`, `paging` or `native`                | required                 |
//! | `inputs`     | comma-separated set names, possibly none           | none                     |
//! | `outputs`    | comma-separated set names, at least one            | required                 |
//! | `memory`     | bytes, or a number with `B`, `KiB`, `MiB` or `GiB` | [`DEFAULT_MEMORY_BYTES`] |
//! | `timeout_ms` | milliseconds                                       | [`DEFAULT_TIMEOUT_MS`]   |
//!
//! Set names bind to a composition's sets by position, so their order is kept. A function with no
//! output set could have no effect at all (it has no I/O), so at least one output is required; a
//! function with no input (a generator) is fine. `builtin` functions (the HTTP communication
//! function) are part of the platform and cannot be uploaded.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::digest::ImageDigest;
use crate::json_text;
use crate::name::{self, NameError, shorten};
use crate::query;

/// The fewest bytes a function may ask for: one wasm page.
pub const MIN_MEMORY_BYTES: u64 = 64 << 10;
/// Memory given when the registration does not say.
pub const DEFAULT_MEMORY_BYTES: u64 = 16 << 20;
/// The most memory one function may ask for: all a wasm32 module can address.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// The shortest time budget.
pub const MIN_TIMEOUT_MS: u64 = 1;
/// Time budget given when the registration does not say.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// The longest time budget: five minutes; longer work belongs in a composition of shorter steps.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// The most input sets, and separately the most output sets, one function may declare.
pub const MAX_SETS_PER_SIDE: usize = 16;
/// The longest registration query string accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 8 << 10;

/// How a function is isolated and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    /// A WebAssembly module, run by the interpreter (software isolation).
    Wasm,
    /// A native ELF isolated by x86 protection keys.
    Mpk,
    /// A native ELF isolated by its own page tables (CPUs without PKU).
    Paging,
    /// A native aarch64 ELF confined by CHERI capabilities in one shared address space (Arm
    /// Morello).
    Cheri,
    /// A native ELF: MPK where the CPU has PKU, `cheri` on an Arm Morello CPU, else paging; the
    /// kernel picks at registration.
    Native,
    /// Trusted platform code (communication functions); never uploaded.
    Builtin,
}

impl EngineKind {
    pub const ALL: [Self; 6] = [Self::Wasm, Self::Mpk, Self::Paging, Self::Cheri, Self::Native, Self::Builtin];

    /// The spelling used in URLs and listings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wasm => "wasm",
            Self::Mpk => "mpk",
            Self::Paging => "paging",
            Self::Cheri => "cheri",
            Self::Native => "native",
            Self::Builtin => "builtin",
        }
    }

    /// The engine spelled `text` exactly (lowercase), if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether a user may upload an image for this engine (everything but `builtin`).
    pub const fn is_uploadable(self) -> bool {
        !matches!(self, Self::Builtin)
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registration parameter, to say which one is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// The function name (from the URL path, not the query).
    Name,
    Engine,
    Inputs,
    Outputs,
    Memory,
    TimeoutMs,
}

impl Param {
    const QUERY: [Self; 5] = [Self::Engine, Self::Inputs, Self::Outputs, Self::Memory, Self::TimeoutMs];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Engine => "engine",
            Self::Inputs => "inputs",
            Self::Outputs => "outputs",
            Self::Memory => "memory",
            Self::TimeoutMs => "timeout_ms",
        }
    }
}

/// Why a registration was refused; the message names the parameter and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The query string is longer than [`MAX_QUERY_LEN`].
    QueryTooLong { len: usize },
    /// A parameter this API does not know (name shortened to 64 bytes).
    UnknownParameter(String),
    /// A parameter given more than once.
    DuplicateParameter(Param),
    /// A required parameter is absent.
    MissingParameter(Param),
    /// A parameter's value is wrong; `reason` says how.
    Invalid { param: Param, reason: String },
}

impl SpecError {
    /// The parameter at fault, as spelled in the query (`name` for the path), if one is known.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::QueryTooLong { .. } => None,
            Self::UnknownParameter(key) => Some(key),
            Self::DuplicateParameter(p) | Self::MissingParameter(p) | Self::Invalid { param: p, .. } => {
                Some(p.as_str())
            }
        }
    }

    fn invalid(param: Param, reason: impl Into<String>) -> Self {
        Self::Invalid { param, reason: reason.into() }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueryTooLong { len } => {
                write!(f, "the query string is {len} bytes long, at most {MAX_QUERY_LEN} are allowed")
            }
            Self::UnknownParameter(key) => {
                write!(f, "unknown parameter {key:?} (known: engine, inputs, outputs, memory, timeout_ms)")
            }
            Self::DuplicateParameter(p) => write!(f, "{}: given more than once", p.as_str()),
            Self::MissingParameter(Param::Engine) => f.write_str("engine: missing (one of wasm, mpk, paging, native)"),
            Self::MissingParameter(Param::Outputs) => {
                f.write_str("outputs: missing (a function needs at least one output set)")
            }
            Self::MissingParameter(p) => write!(f, "{}: missing", p.as_str()),
            Self::Invalid { param, reason } => write!(f, "{}: {reason}", param.as_str()),
        }
    }
}

/// A validated function declaration, without its image: what the query string says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    name: String,
    engine: EngineKind,
    inputs: Vec<String>,
    outputs: Vec<String>,
    memory_bytes: u64,
    timeout_ms: u64,
}

impl FunctionSpec {
    /// A spec with the default memory and time budget. Checks the name and both set lists (see the
    /// module docs); `builtin` is accepted here, because the kernel declares its own functions this way.
    pub fn new(name: &str, engine: EngineKind, inputs: &[&str], outputs: &[&str]) -> Result<Self, SpecError> {
        name::validate_function_name(name).map_err(|e| SpecError::invalid(Param::Name, e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            engine,
            inputs: set_list(Param::Inputs, inputs.iter().copied())?,
            outputs: set_list(Param::Outputs, outputs.iter().copied())?,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        })
    }

    /// The same spec with another memory limit, within [`MIN_MEMORY_BYTES`]..=[`MAX_MEMORY_BYTES`].
    pub fn with_memory(mut self, bytes: u64) -> Result<Self, SpecError> {
        if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
            return Err(SpecError::invalid(
                Param::Memory,
                format!("{bytes} bytes is outside {MIN_MEMORY_BYTES}..={MAX_MEMORY_BYTES} (64 KiB to 4 GiB)"),
            ));
        }
        self.memory_bytes = bytes;
        Ok(self)
    }

    /// The same spec with another time budget, within [`MIN_TIMEOUT_MS`]..=[`MAX_TIMEOUT_MS`].
    pub fn with_timeout_ms(mut self, ms: u64) -> Result<Self, SpecError> {
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) {
            return Err(SpecError::invalid(
                Param::TimeoutMs,
                format!("{ms} ms is outside {MIN_TIMEOUT_MS}..={MAX_TIMEOUT_MS}"),
            ));
        }
        self.timeout_ms = ms;
        Ok(self)
    }

    /// Parses the registration of function `name` (the URL path segment) from its query string
    /// (the part after `?`, still percent-encoded). See the module docs for the parameters.
    pub fn from_query(name: &str, query: &str) -> Result<Self, SpecError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(SpecError::QueryTooLong { len: query.len() });
        }
        let mut values: [Option<String>; 5] = Default::default();
        for (raw_key, raw_value) in query::pairs(query) {
            let key = query::percent_decode(raw_key).map_err(|_| SpecError::UnknownParameter(shorten(raw_key, 64)))?;
            let (index, param) = Param::QUERY
                .into_iter()
                .enumerate()
                .find(|(_, p)| p.as_str() == key)
                .ok_or_else(|| SpecError::UnknownParameter(shorten(&key, 64)))?;
            let raw_value = raw_value
                .ok_or_else(|| SpecError::invalid(param, format!("has no value (write {}=...)", param.as_str())))?;
            let value = query::percent_decode(raw_value).map_err(|e| SpecError::invalid(param, e.to_string()))?;
            match values.get_mut(index) {
                Some(slot @ None) => *slot = Some(value),
                _ => return Err(SpecError::DuplicateParameter(param)),
            }
        }
        let [engine, inputs, outputs, memory, timeout_ms] = values;

        let engine = engine.ok_or(SpecError::MissingParameter(Param::Engine))?;
        let engine = match EngineKind::parse(&engine) {
            Some(kind) if kind.is_uploadable() => kind,
            Some(_) => {
                return Err(SpecError::invalid(
                    Param::Engine,
                    "builtin functions are part of the platform and cannot be uploaded",
                ));
            }
            None => {
                return Err(SpecError::invalid(
                    Param::Engine,
                    format!("unknown engine {:?} (one of wasm, mpk, paging, native)", shorten(&engine, 64)),
                ));
            }
        };
        let inputs = inputs.unwrap_or_default();
        let outputs = outputs.ok_or(SpecError::MissingParameter(Param::Outputs))?;
        let mut spec = Self::new(name, engine, &split_sets(&inputs), &split_sets(&outputs))?;
        if let Some(memory) = memory {
            spec =
                spec.with_memory(parse_size(&memory).map_err(|reason| SpecError::invalid(Param::Memory, reason))?)?;
        }
        if let Some(timeout) = timeout_ms {
            let ms = parse_decimal(&timeout).ok_or_else(|| {
                SpecError::invalid(
                    Param::TimeoutMs,
                    format!("{:?} is not a whole number of milliseconds", shorten(&timeout, 64)),
                )
            })?;
            spec = spec.with_timeout_ms(ms)?;
        }
        Ok(spec)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn engine(&self) -> EngineKind {
        self.engine
    }
    /// Input set names, in the order the function reads them.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }
    /// Output set names, in the order the function writes them.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }
}

/// A function as registered: its validated spec and the digest of its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDecl {
    spec: FunctionSpec,
    digest: ImageDigest,
}

impl FunctionDecl {
    /// Declares `spec` bound to `image`, hashing the image.
    pub fn new(spec: FunctionSpec, image: &[u8]) -> Self {
        Self { spec, digest: ImageDigest::of(image) }
    }

    /// Declares `spec` bound to an image whose digest is already known (e.g. built-in functions).
    pub fn with_digest(spec: FunctionSpec, digest: ImageDigest) -> Self {
        Self { spec, digest }
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }
    pub fn name(&self) -> &str {
        self.spec.name()
    }
    pub fn digest(&self) -> &ImageDigest {
        &self.digest
    }

    /// The declaration as a JSON object, for `GET /v1/functions[/{name}]`:
    /// `{"name":"f","engine":"wasm","digest":"<64 hex>","inputs":["A"],"outputs":["C"],"memory":16777216,"timeout_ms":1000}`.
    pub fn to_json(&self) -> String {
        let spec = &self.spec;
        let mut out = String::with_capacity(160);
        out.push_str("{\"name\":");
        json_text::push_string(&mut out, spec.name());
        // Writing to a String cannot fail.
        let _ = write!(out, ",\"engine\":\"{}\",\"digest\":\"{}\",\"inputs\":", spec.engine(), self.digest);
        json_text::push_string_array(&mut out, spec.inputs());
        out.push_str(",\"outputs\":");
        json_text::push_string_array(&mut out, spec.outputs());
        let _ = write!(out, ",\"memory\":{},\"timeout_ms\":{}}}", spec.memory_bytes(), spec.timeout_ms());
        out
    }
}

/// Parses a byte size: plain bytes (`4096`), or a whole number with a unit `B`, `KiB`, `MiB` or
/// `GiB` (`512KiB`, `16MiB`, `1GiB`; binary units, case as written, no space). The error says why.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, u32); 4] = [("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let shift = if unit.is_empty() { Some(0) } else { UNITS.iter().find(|(u, _)| *u == unit).map(|&(_, s)| s) };
    let not_a_size =
        || format!("{:?} is not a size (write bytes, or a number with B, KiB, MiB or GiB)", shorten(text, 64));
    let (Some(number), Some(shift)) = (parse_decimal(digits), shift) else {
        return Err(not_a_size());
    };
    number.checked_mul(1u64 << shift).ok_or_else(|| format!("{:?} is too large", shorten(text, 64)))
}

/// A non-empty string of ASCII digits as a u64, or `None` (also on overflow).
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits a decoded set list at commas; the empty list is no sets.
fn split_sets(list: &str) -> Vec<&str> {
    if list.is_empty() { Vec::new() } else { list.split(',').collect() }
}

/// Validates a side's set names: count, each name, no duplicates.
fn set_list<'a>(param: Param, names: impl ExactSizeIterator<Item = &'a str>) -> Result<Vec<String>, SpecError> {
    if names.len() > MAX_SETS_PER_SIDE {
        return Err(SpecError::invalid(
            param,
            format!("{} sets, at most {MAX_SETS_PER_SIDE} are allowed", names.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, set) in names.enumerate() {
        name::validate_set_name(set)
            .map_err(|e: NameError| SpecError::invalid(param, format!("set {}: {e}", i + 1)))?;
        if out.iter().any(|seen| seen == set) {
            return Err(SpecError::invalid(param, format!("set {:?} appears twice", shorten(set, 64))));
        }
        out.push(set.to_owned());
    }
    if param == Param::Outputs && out.is_empty() {
        return Err(SpecError::invalid(param, "a function needs at least one output set (it has no other effect)"));
    }
    Ok(out)
}
