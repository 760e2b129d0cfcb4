//! `POST /v1/invoke/{name}`: runs a composition, a function or a builtin of the tenant on the
//! request's sets and answers with the output sets.
//!
//! - **Target.** `name` is looked up among the tenant's compositions, then its functions, then
//!   the builtins (the three never share a name); none is 404.
//! - **Inputs.** By `Content-Type` ([`WireFormat::for_request`]): JSON sets, binary
//!   (`application/x-pappus-sets`), or raw for any other type (or none): the body becomes the
//!   one item (name `""`, no key) of the first declared input. JSON and binary sets bind to the
//!   declared inputs by name: a set the target does not declare is 400 `unknown_set` naming it;
//!   a declared input the request leaves out is an empty set (without `optional`, an empty
//!   input skips the applications reading it, as in any composition). A raw body to a target
//!   without inputs is 400 unless empty. Malformed documents are 400 `bad_input` with the place
//!   (`sets.A[3].data: invalid base64 at byte 17: …`); documents over the wire limits are 413.
//! - **Running.** A composition runs through the planner; every function it declares must
//!   resolve, when the invocation starts, to a tenant function or builtin with the declared
//!   input and output counts (else 409 `function_not_registered` or `signature_mismatch`). A
//!   function or builtin invoked directly runs as one instance that gets every input whole
//!   (`optional all`), so it runs even on empty inputs: [`Execution::single`], which plans
//!   nothing (no program is built or compiled for it).
//! - **Outputs.** 200 with the output sets named by the composition's (or function's) declared
//!   outputs, in the format `Accept` names ([`WireFormat::for_response`]): JSON by default,
//!   binary for `application/x-pappus-sets`, raw for `application/octet-stream`, which needs
//!   exactly one output item: a target declaring other than one output set is refused with
//!   406 before it runs, an output of other than one item with 406 after.
//! - **Failures.** The first failing instance decides: its [`RunError`](crate::RunError)'s
//!   status and code (500 `function_failed` for a fault or the `fail` builtin, 504 `timeout`,
//!   502 `bad_output` for outputs that do not match the declaration), and a message naming the
//!   instance (the planner's origin, e.g. `pipeline: app #2 'fail' instance 0: boom`) and the
//!   cause. Planner limits are 422 `plan_limit`. Too many invocations at once: 503 `saturated`
//!   with `Retry-After`.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use pappus_http::Headers;

use dsl::ast::{Ident, Program};
use model::wire::{WireError, WireFormat, WireLimits, binary, json as wire_json, raw};
use model::{Bytes, MemoryCharge, Pool, Set, TenantId};
use planner::Execution;

use crate::accounting::InvocationMemory;
use crate::builtin::Builtin;
use crate::compositions::StoredComposition;
use crate::errors::ApiError;
use crate::invocation::{Invocation, Subject, Target, plan_error};
use crate::json;
use crate::plane::{ControlPlane, Reply};
use crate::runtime::{Runtime, StoredFunction};

/// What an invoke name refers to.
pub(crate) enum Invocable<'a> {
    Composition(&'a StoredComposition),
    Function(&'a Arc<StoredFunction>),
    Builtin(Builtin),
}

impl ControlPlane {
    /// The tenant's composition or function of this name, or a builtin; 404 otherwise.
    pub(crate) fn lookup_invocable(&self, tenant: TenantId, name: &str) -> Result<Invocable<'_>, ApiError> {
        if let Some(stored) = self.compositions.get(tenant, name) {
            return Ok(Invocable::Composition(stored));
        }
        if let Some(function) = self.functions.get(tenant, name) {
            return Ok(Invocable::Function(function));
        }
        Builtin::find(name).map(Invocable::Builtin).ok_or_else(|| ApiError::not_found("function or composition", name))
    }

    pub(crate) fn invoke(
        &mut self,
        tenant: TenantId,
        name: &str,
        headers: &Headers,
        body: Vec<u8>,
        now_ms: u64,
        runtime: &mut dyn Runtime,
    ) -> Reply {
        let started =
            self.check_host_room(runtime, tenant).and_then(|()| self.start_invocation(tenant, name, headers, body));
        match started {
            Ok(invocation) => self.settle(invocation, name, now_ms, runtime),
            Err(e) => {
                self.record(e.status);
                // Refusals of a name the tenant has (bad input, saturation) count against it;
                // unknown names do not, or any client could grow the table.
                if self.lookup_invocable(tenant, name).is_ok() {
                    self.record_target(tenant, name, e.status);
                }
                Reply::Now(e.into_response())
            }
        }
    }

    /// Everything up to the first instance: lookup, room, formats, inputs, resolution, planning.
    fn start_invocation(
        &mut self,
        tenant: TenantId,
        name: &str,
        headers: &Headers,
        body: Vec<u8>,
    ) -> Result<Box<Invocation>, ApiError> {
        let invocable = self.lookup_invocable(tenant, name)?;
        self.check_room_for_invocation(tenant)?;
        let format = WireFormat::for_response(headers.get_str("accept"));
        // The body's format, read once from its `Content-Type`.
        let body_format = WireFormat::for_request(headers.get_str("content-type"));
        let wire = &self.limits.wire;
        let target = match invocable {
            Invocable::Composition(stored) => {
                let root = stored.root(name).ok_or_else(|| ApiError::internal("the stored program lost its root"))?;
                check_accept(format, root.outputs.len(), name)?;
                let declared: Vec<&str> = root.inputs.iter().map(Ident::as_str).collect();
                let decoding = self.decoding_charge(tenant, body_format, body.len())?;
                let inputs = decode_inputs(body_format, body, &declared, name, wire)?;
                drop(decoding);
                let targets = self.resolve(tenant, stored.program(), name)?;
                let memory = InvocationMemory::new(&self.memory, tenant, &inputs).map_err(ApiError::over_budget)?;
                let execution =
                    Execution::start(stored.program(), name, inputs, self.limits.plan).map_err(|e| plan_error(&e))?;
                return Ok(Invocation::new(tenant, Subject::Composition, format, execution, targets, None, memory));
            }
            Invocable::Function(function) => Target::Function(Arc::clone(function)),
            Invocable::Builtin(builtin) => Target::Builtin(builtin),
        };
        let outputs = target.output_count();
        check_accept(format, outputs, name)?;
        let decoding = self.decoding_charge(tenant, body_format, body.len())?;
        let sets = match &target {
            Target::Function(f) => decode_inputs(body_format, body, f.spec().inputs(), name, wire)?,
            Target::Builtin(b) => decode_inputs(body_format, body, b.inputs(), name, wire)?,
        };
        drop(decoding);
        let memory = InvocationMemory::new(&self.memory, tenant, &sets).map_err(ApiError::over_budget)?;
        // One instance that gets every input whole: no program, no plan (`Execution::single`).
        let execution = Execution::single(name, sets, outputs, self.limits.plan).map_err(|e| plan_error(&e))?;
        Ok(Invocation::new(tenant, Subject::Function, format, execution, BTreeMap::new(), Some(target), memory))
    }

    /// What decoding a `len`-byte request body takes besides the body, charged to `tenant`
    /// while it lasts (the decoded inputs are charged next, in their place). Binary and raw
    /// bodies are decoded in place; JSON items become new buffers, 3/4 of their base64 text,
    /// and serde_json holds a string with escapes whole while it reads it: up to 7/4 of the
    /// body at once, which the node's heap must have room for (503 `out_of_memory` otherwise,
    /// never an allocation failure), and the decoded 3/4 must fit the tenant's budget (507).
    fn decoding_charge(
        &self,
        tenant: TenantId,
        format: WireFormat,
        len: usize,
    ) -> Result<Option<MemoryCharge>, ApiError> {
        if format != WireFormat::Json {
            return Ok(None);
        }
        let decoded = (len as u64) / 4 * 3;
        let charge = self.memory.charge(tenant, Pool::Heap, decoded).map_err(ApiError::over_budget)?;
        let transient = len.saturating_add(len / 4 * 3);
        if !self.limits.heap_room.allows(transient) {
            let message = format!(
                "the node has no memory to decode a {len}-byte JSON body now (it takes up to {transient} bytes); retry later, or send the sets in the binary format (application/x-pappus-sets), which is decoded in place"
            );
            let retry = format!("{}", self.limits.retry_after_s);
            return Err(ApiError::new(503, "out_of_memory", message).header("retry-after", retry));
        }
        Ok(Some(charge))
    }

    /// Resolves every function the composition `root` of `program` applies, directly or through
    /// the program's other compositions, to what it runs now (409 when one is missing or has
    /// other set counts than declared).
    fn resolve(&self, tenant: TenantId, program: &Program, root: &str) -> Result<BTreeMap<String, Target>, ApiError> {
        let mut targets = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(name) = stack.pop() {
            if !seen.insert(name) {
                continue;
            }
            let Some(composition) = program.composition(name) else { continue };
            for callee in composition.body.iter().map(|app| app.function.as_str()) {
                let Some(decl) = program.function(callee) else {
                    stack.push(callee);
                    continue;
                };
                if targets.contains_key(callee) {
                    continue;
                }
                let target = match Builtin::find(callee) {
                    Some(builtin) => Target::Builtin(builtin),
                    None => match self.functions.get(tenant, callee) {
                        Some(f) => Target::Function(Arc::clone(f)),
                        None => {
                            let message = format!(
                                "composition '{name}' applies '{callee}', which is neither a registered function nor a builtin"
                            );
                            return Err(ApiError::new(409, "function_not_registered", message));
                        }
                    },
                };
                let declared = (decl.inputs.len(), decl.outputs.len());
                let actual = (target.input_count(), target.output_count());
                if declared != actual {
                    let message = format!(
                        "'{callee}' is declared with {} input(s) and {} output(s), but the registered function has {} and {}",
                        declared.0, declared.1, actual.0, actual.1
                    );
                    return Err(ApiError::new(409, "signature_mismatch", message));
                }
                targets.insert(String::from(callee), target);
            }
        }
        Ok(targets)
    }
}

/// 406 before running when raw output is asked of a target without exactly one output set.
fn check_accept(format: WireFormat, outputs: usize, name: &str) -> Result<(), ApiError> {
    if format == WireFormat::Raw && outputs != 1 {
        let message = format!(
            "'{name}' has {outputs} output sets; application/octet-stream needs exactly one output item (ask for JSON instead)"
        );
        return Err(ApiError::new(406, "not_acceptable", message));
    }
    Ok(())
}

/// The request body as one set per declared input, in declaration order (module docs).
fn decode_inputs<D: AsRef<str>>(
    format: WireFormat,
    body: Vec<u8>,
    declared: &[D],
    name: &str,
    wire: &WireLimits,
) -> Result<Vec<Set>, ApiError> {
    let mut sets = match format {
        WireFormat::Json => wire_json::decode(&body, wire).map_err(bad_input)?,
        WireFormat::Binary => binary::decode(&Bytes::from(body), wire).map_err(bad_input)?,
        WireFormat::Raw => match declared.first() {
            Some(first) => raw::decode(Bytes::from(body), first.as_ref(), "", wire).map_err(bad_input)?,
            None if body.is_empty() => Vec::new(),
            None => {
                let message = format!("'{name}' takes no input sets, so a raw body has nowhere to go");
                return Err(ApiError::bad_request("unknown_set", message));
            }
        },
    };
    let is_declared = |n: &str| declared.iter().any(|d| d.as_ref() == n);
    if sets.iter().any(|s| !is_declared(&s.name)) {
        let unknown = sets.iter().map(|s| s.name.as_str()).filter(|n| !is_declared(n));
        let message = format!(
            "'{name}' has no input set named {} (its inputs: {})",
            json::list(unknown.map(|n| format!("'{n}'"))),
            json::list(declared.iter().map(AsRef::as_ref))
        );
        return Err(ApiError::bad_request("unknown_set", message));
    }
    // In declaration order, each from the request (set names are unique in every wire format)
    // or empty; the request's sets are moved, not copied, and no map is built for it. Sets
    // that came in that order already (one declared set, sent) are the inputs as they are.
    if sets.len() == declared.len() && sets.iter().zip(declared).all(|(s, d)| s.name == d.as_ref()) {
        return Ok(sets);
    }
    let mut inputs = Vec::with_capacity(declared.len());
    for d in declared {
        let d = d.as_ref();
        match sets.iter().position(|s| s.name == d) {
            Some(at) => inputs.push(sets.swap_remove(at)),
            None => inputs.push(Set::new(d)),
        }
    }
    Ok(inputs)
}

fn bad_input(e: WireError) -> ApiError {
    if e.is_out_of_memory() {
        ApiError::new(503, "out_of_memory", format!("{e}; retry later")).header("retry-after", "1")
    } else if e.is_limit() {
        ApiError::too_large(format!("the input is too large: {e}"))
    } else {
        ApiError::bad_request("bad_input", format!("invalid input: {e}"))
    }
}
