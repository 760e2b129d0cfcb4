//! `/v1/compositions`: registering, reading, listing and deleting a tenant's compositions.
//!
//! - `PUT /v1/compositions/{name}`, body the program (UTF-8 DSL text, at most
//!   [`ControlLimits::max_source_bytes`](crate::ControlLimits) bytes, else 413). The program is
//!   parsed and checked against the tenant's functions and the builtins (declarations must have
//!   the registered input and output counts; builtins are declared like any function, e.g.
//!   `function identity (in) => (out);`). It may hold several compositions and declarations,
//!   and, as Dandelion registers a composition source, **every composition it defines is
//!   registered under its own name** (each then runs with `POST /v1/invoke/{its name}`, and may
//!   apply the program's earlier compositions). `{name}` must be one of them; a program that
//!   defines no composition at all (declarations only, which Dandelion accepts) is checked and
//!   registers nothing. A declared function that is neither registered nor a builtin is
//!   accepted with a warning: invocations fail with 409 until it exists. 201 when `{name}` was
//!   created, 200 when it was replaced (or nothing was registered), with
//!   `{"name":…,"inputs":[…],"outputs":[…],"compositions":[{"name":…,"inputs":[…],"outputs":[…]},…],"warnings":[<diagnostic>,…]}`:
//!   `{name}`'s signature (left out when nothing was registered), then every composition
//!   registered, in source order.
//! - Errors in the program: 400 `bad_composition`, the first diagnostic as the message and all
//!   of them in `diagnostics`, each `{"severity":"error","line":3,"column":17,"message":…}`.
//! - `GET /v1/compositions/{name}`: the program text as uploaded, `text/plain; charset=utf-8`.
//! - `DELETE /v1/compositions/{name}`: 204, no body.
//! - `GET /v1/compositions`: `{"compositions":[{"name":…,"inputs":[…],"outputs":[…]},…]}`,
//!   sorted by name.
//!
//! A program's functions bind to the tenant's registered functions (or builtins) by name when a
//! composition is invoked, not when it is stored; another stored composition cannot be applied
//! as a function (put the compositions that nest into one program).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use pappus_http::Response;

use dsl::ast::{Composition, Program};
use dsl::{Diagnostic, Signature};
use model::{MemoryCharge, Pool, TenantId};

use crate::builtin::Builtin;
use crate::errors::ApiError;
use crate::functions::check_not_reserved;
use crate::json;
use crate::plane::ControlPlane;
use crate::runtime::Runtime;

/// A registered program: its text as uploaded, its syntax tree, and the tenant's memory charge
/// for both (given back when the last composition registered from it is deleted or replaced).
#[derive(Debug)]
pub(crate) struct StoredProgram {
    pub source: String,
    pub program: Program,
    #[expect(dead_code, reason = "held for its Drop, which gives the bytes back")]
    pub charge: MemoryCharge,
}

/// One registered composition: the program that defines it, shared by every composition that
/// program registered.
#[derive(Debug)]
pub(crate) struct StoredComposition {
    pub shared: Arc<StoredProgram>,
}

/// What a program's syntax tree is taken to hold when the runtime cannot measure it: a generous
/// multiple of its text (names are copied, every node has its position).
const TREE_BYTES_PER_SOURCE_BYTE: u64 = 4;

impl StoredComposition {
    /// The composition the program was registered for (it is checked to exist on upload).
    pub fn root(&self, name: &str) -> Option<&Composition> {
        self.shared.program.composition(name)
    }

    pub fn program(&self) -> &Program {
        &self.shared.program
    }

    pub fn source(&self) -> &str {
        &self.shared.source
    }
}

/// 413 for a program over the limit.
pub(crate) fn program_too_large(len: u64, max: usize) -> ApiError {
    ApiError::too_large(format!("the program is {len} bytes, at most {max} are allowed"))
}

/// 400 `bad_composition` with every diagnostic listed.
fn bad_program(diagnostics: &[Diagnostic]) -> ApiError {
    let message = diagnostics.first().map_or_else(|| String::from("the program is invalid"), |d| format!("{d}"));
    ApiError::bad_request("bad_composition", message).member("diagnostics", &diagnostics_json(diagnostics))
}

/// `[{"severity":"warning","line":1,"column":10,"message":"…"},…]`.
fn diagnostics_json(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::from("[");
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"severity\":\"{}\",\"line\":{},\"column\":{},\"message\":",
            d.severity, d.pos.line, d.pos.col
        ));
        json::push_str(&mut out, &d.message);
        out.push('}');
    }
    out.push(']');
    out
}

/// `"name":…,"inputs":[…],"outputs":[…]` of a composition's signature.
fn push_signature(out: &mut String, name: &str, composition: Option<&Composition>) {
    out.push_str("\"name\":");
    json::push_str(out, name);
    out.push_str(",\"inputs\":");
    json::push_str_array(out, composition.iter().flat_map(|c| c.inputs.iter().map(|i| i.as_str())));
    out.push_str(",\"outputs\":");
    json::push_str_array(out, composition.iter().flat_map(|c| c.outputs.iter().map(|o| o.as_str())));
}

impl ControlPlane {
    /// A name a tenant may register a composition under: not a builtin's, not one of its functions'.
    pub(crate) fn check_new_composition(&self, tenant: TenantId, name: &str) -> Result<(), ApiError> {
        check_not_reserved(name)?;
        if self.functions.get(tenant, name).is_some() {
            let message = format!("a function is named '{name}'; functions and compositions share one namespace");
            return Err(ApiError::new(409, "name_taken", message));
        }
        Ok(())
    }

    /// 409 `registry_full` when `name` is new and the tenant has as many compositions as allowed.
    pub(crate) fn check_composition_room(&self, tenant: TenantId, name: &str) -> Result<(), ApiError> {
        let max = self.limits.max_compositions_per_tenant;
        if self.compositions.get(tenant, name).is_none() && self.compositions.count(tenant) >= max {
            let message = format!("this tenant already has the maximum of {max} compositions; delete one first");
            return Err(ApiError::new(409, "registry_full", message));
        }
        Ok(())
    }

    /// The signature a declared function binds to for `tenant`: a builtin's or a registered one's.
    pub(crate) fn signature_of(&self, tenant: TenantId, name: &str) -> Option<Signature> {
        if let Some(builtin) = Builtin::find(name) {
            return Some(builtin.signature());
        }
        self.functions
            .get(tenant, name)
            .map(|f| Signature { inputs: f.spec().inputs().len(), outputs: f.spec().outputs().len() })
    }

    pub(crate) fn put_composition(
        &mut self,
        tenant: TenantId,
        name: &str,
        body: Vec<u8>,
        runtime: &dyn Runtime,
    ) -> Result<Response, ApiError> {
        check_not_reserved(name)?;
        let max = self.limits.source_bytes();
        if body.len() > max {
            return Err(program_too_large(body.len() as u64, max));
        }
        // The text, and then what parsing it kept (measured where the runtime can, else estimated).
        let mut charge = self.memory.charge(tenant, Pool::Heap, body.len() as u64).map_err(ApiError::over_budget)?;
        let before = runtime.heap_allocated_here();
        let source = String::from_utf8(body).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            ApiError::bad_request("bad_composition", format!("the program is not UTF-8 (invalid byte at offset {at})"))
        })?;
        let program = dsl::parse(&source).map_err(|d| bad_program(&d))?;
        let tree = match (before, runtime.heap_allocated_here()) {
            (Some(before), Some(after)) => after.wrapping_sub(before).min(1 << 40),
            _ => (source.len() as u64).saturating_mul(TREE_BYTES_PER_SOURCE_BYTE),
        };
        charge.grow(tree).map_err(ApiError::over_budget)?;
        let registered = |f: &str| self.signature_of(tenant, f);
        let mut warnings = dsl::check(&program, &registered).map_err(|d| bad_program(&d))?;
        if program.compositions.is_empty() && program.functions.is_empty() {
            let message = "the program is empty: it declares no function and defines no composition";
            return Err(ApiError::bad_request("bad_composition", message));
        }
        let root = program.composition(name);
        if root.is_none() && !program.compositions.is_empty() {
            let found = json::list(program.compositions.iter().map(|c| c.name.as_str()));
            let message = format!(
                "the program defines no composition named '{name}' (it defines: {found}); PUT it under one of those names"
            );
            return Err(ApiError::bad_request("bad_composition", message));
        }
        for f in &program.functions {
            if registered(f.name.as_str()).is_none() {
                let message = format!(
                    "`{}` is neither a registered function nor a builtin; invocations that apply it fail until it is registered",
                    f.name.as_str()
                );
                warnings.push(Diagnostic::warning(f.name.pos, message));
            }
        }
        warnings.sort_by_key(|d| (d.pos.offset, d.pos.line, d.pos.col));
        // Every composition the program defines is registered (the checker refused duplicates).
        let names: Vec<&str> = program.compositions.iter().map(|c| c.name.as_str()).collect();
        for &n in &names {
            self.check_new_composition(tenant, n)?;
        }
        let new = names.iter().filter(|&&n| self.compositions.get(tenant, n).is_none()).count();
        let max = self.limits.max_compositions_per_tenant;
        if new > 0 && self.compositions.count(tenant).saturating_add(new) > max {
            let message = if new == 1 {
                format!("this tenant already has the maximum of {max} compositions; delete one first")
            } else {
                format!(
                    "the program registers {new} new compositions, and this tenant may have at most {max}; delete some first"
                )
            };
            return Err(ApiError::new(409, "registry_full", message));
        }
        let mut json = String::from("{");
        if root.is_some() {
            push_signature(&mut json, name, root);
            json.push(',');
        }
        json.push_str("\"compositions\":[");
        for (i, c) in program.compositions.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('{');
            push_signature(&mut json, c.name.as_str(), Some(c));
            json.push('}');
        }
        json.push_str("],\"warnings\":");
        json.push_str(&diagnostics_json(&warnings));
        json.push('}');
        let names: Vec<String> = names.into_iter().map(String::from).collect();
        let shared = Arc::new(StoredProgram { source, program, charge });
        let mut created = false;
        for n in &names {
            match self.compositions.put(tenant, n, StoredComposition { shared: Arc::clone(&shared) }) {
                Ok(replaced) => {
                    if replaced.is_none() {
                        self.counters.compositions = self.counters.compositions.saturating_add(1);
                        created |= n == name;
                    }
                }
                Err(e) => return Err(ApiError::new(409, "registry_full", alloc::string::ToString::to_string(&e))),
            }
        }
        if created {
            Ok(Response::json(201, json).header("location", format!("/v1/compositions/{name}")))
        } else {
            Ok(Response::json(200, json))
        }
    }

    pub(crate) fn get_composition(&self, tenant: TenantId, name: &str) -> Result<Response, ApiError> {
        match self.compositions.get(tenant, name) {
            Some(stored) => Ok(Response::new(200)
                .header("content-type", "text/plain; charset=utf-8")
                .body(stored.source().as_bytes().to_vec())),
            None => Err(ApiError::not_found("composition", name)),
        }
    }

    pub(crate) fn delete_composition(&mut self, tenant: TenantId, name: &str) -> Result<Response, ApiError> {
        match self.compositions.delete(tenant, name) {
            Some(_) => {
                self.counters.compositions = self.counters.compositions.saturating_sub(1);
                Ok(Response::new(204))
            }
            None => Err(ApiError::not_found("composition", name)),
        }
    }

    pub(crate) fn list_compositions(&self, tenant: TenantId) -> Response {
        let mut json = String::from("{\"compositions\":[");
        for (i, (name, stored)) in self.compositions.list(tenant).enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('{');
            push_signature(&mut json, name, stored.root(name));
            json.push('}');
        }
        json.push_str("]}");
        Response::json(200, json)
    }
}
